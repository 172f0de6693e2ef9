//! The listeners (Unix socket and TCP), request identity and the router. Handlers are thin:
//! they never touch the Docker client or the database.

mod admin;
mod containers;
mod events_ws;
mod files;
pub mod http;
pub mod ratelimit;
mod router;
mod system;
mod terminal_ws;
mod tokens;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, RETRY_AFTER, SEC_WEBSOCKET_PROTOCOL};
use hyper::service::service_fn;
use hyper::{Method, Request, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, warn};

use self::http::{error_response, json, HttpError, Resp};
use self::router::Route;
use super::auth::{Credentials, Principal};
use super::error::Error;
use super::listen::TcpServe;
use super::AppState;

/// One request's context for its handler.
pub struct Ctx {
    pub state: Arc<AppState>,
    principal: Option<Principal>,
}

impl Ctx {
    pub fn principal(&self) -> Result<&Principal, HttpError> {
        self.principal
            .as_ref()
            .ok_or(HttpError::Domain(Error::Unauthorized))
    }
}

/// A query parameter's raw value.
pub fn query<'a>(uri: &'a Uri, key: &str) -> Option<&'a str> {
    uri.query()?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// A query parameter, percent-decoded (paths may hold spaces and any UTF-8).
pub fn query_decoded(uri: &Uri, key: &str) -> Option<String> {
    query(uri, key).map(|v| {
        percent_encoding::percent_decode_str(v)
            .decode_utf8_lossy()
            .into_owned()
    })
}

const TOKEN_PROTOCOL_PREFIX: &str = "rexec.token.";

/// Which credentials a request carries. A bearer token, if any, decides; WebSocket routes
/// also take `?token=` and the `rexec.token.<t>` subprotocol; then the socket peer.
fn credentials(req: &Request<Incoming>, websocket: bool, peer_uid: Option<u32>) -> Credentials {
    if let Some(h) = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        // The scheme is case-insensitive (RFC 9110).
        let token = h
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        return match token {
            Some(t) if !t.is_empty() => Credentials::Bearer(t.to_string()),
            // A malformed Authorization header is a bad credential, not an absent one.
            _ => Credentials::Bearer(String::new()),
        };
    }
    if websocket {
        if let Some(t) = query(req.uri(), "token").filter(|t| !t.is_empty()) {
            return Credentials::Bearer(t.to_string());
        }
        let from_protocol = req
            .headers()
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|p| {
                p.trim()
                    .strip_prefix(TOKEN_PROTOCOL_PREFIX)
                    .map(str::to_string)
            });
        if let Some(t) = from_protocol {
            return Credentials::Bearer(t);
        }
    }
    match peer_uid {
        Some(uid) => Credentials::Peer { uid },
        None => Credentials::None,
    }
}

/// A client that has not sent its headers by then is dropped (slow-loris on TCP).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

static REQUEST_COUNTER: AtomicU64 = AtomicU64::new(1);

fn request_id() -> String {
    format!(
        "req_{:x}_{}",
        std::process::id(),
        REQUEST_COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

async fn handle(
    state: Arc<AppState>,
    peer_uid: Option<u32>,
    req: Request<Incoming>,
) -> Result<Resp, Infallible> {
    let started = Instant::now();
    let request_id = request_id();
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let route = Route::parse(&path);
    let websocket = route.as_ref().is_some_and(Route::is_websocket);
    let public = route.as_ref().is_some_and(Route::is_public);
    let result = async {
        let principal = if public {
            None
        } else {
            let creds = credentials(&req, websocket, peer_uid);
            Some(state.auth.authenticate(&creds).await?)
        };
        let route = route.ok_or(HttpError::NoRoute)?;
        if let (Some(p), false) = (&principal, method == Method::GET || method == Method::HEAD) {
            state
                .limiter
                .check(&p.user.id, Instant::now())
                .map_err(|wait| HttpError::RateLimited {
                    retry_after_secs: wait.as_secs_f64().ceil().max(1.0) as u64,
                })?;
        }
        router::dispatch(
            Ctx {
                state: state.clone(),
                principal,
            },
            route,
            req,
        )
        .await
    }
    .await;
    let resp = match result {
        Ok(r) => r,
        Err(e) => {
            if let HttpError::Domain(Error::Internal(detail)) = &e {
                error!(%request_id, %method, %path, error = %detail, "request failed");
            }
            let (status, body) = error_response(&e, &request_id);
            let mut resp = json(status, &body);
            if let HttpError::RateLimited { retry_after_secs } = e {
                resp.headers_mut()
                    .insert(RETRY_AFTER, retry_after_secs.into());
            }
            resp
        }
    };
    debug!(%request_id, %method, %path, status = resp.status().as_u16(), elapsed_us = started.elapsed().as_micros() as u64, "request");
    Ok(resp)
}

fn serve_connection<S>(state: Arc<AppState>, stream: S, peer_uid: Option<u32>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let tracker = state.tracker.clone();
    tracker.spawn(connection(state, stream, peer_uid));
}

/// Serves one connection until it closes, or until shutdown finishes the request in flight.
async fn connection<S>(state: Arc<AppState>, stream: S, peer_uid: Option<u32>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let shutdown = state.shutdown.clone();
    let svc = service_fn(move |req| handle(state.clone(), peer_uid, req));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        // Finish the request in flight, then close (idle keep-alive connections at once).
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(error = %e, "connection ended with an error");
    }
}

/// A TLS record starts with this byte (a handshake); anything else on a TLS port is plain HTTP.
const TLS_HANDSHAKE: u8 = 0x16;

/// The answer to plain HTTP on the TLS port, so that `curl http://` says what is wrong.
fn plain_http_refusal() -> Vec<u8> {
    let body = serde_json::to_vec(&http::body(
        "this port speaks only TLS: use https://",
        "tls_required",
    ))
    .unwrap_or_default();
    let mut resp = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    resp.extend_from_slice(&body);
    resp
}

/// How long a TLS client has to send its first byte and finish the handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Connections still in the handshake at once; more are closed at once, so that idle
/// unauthenticated sockets cannot use up the daemon's file descriptors.
const MAX_PENDING_HANDSHAKES: usize = 256;
/// After a failed accept (EMFILE, say), wait this long rather than spin.
const ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(100);

/// Does the TLS handshake (the first byte and the handshake within
/// [`TLS_HANDSHAKE_TIMEOUT`]), then serves the connection. Plain HTTP gets a 400 and is
/// closed, never served.
async fn serve_tls(
    state: Arc<AppState>,
    mut stream: TcpStream,
    acceptor: TlsAcceptor,
    pending: tokio::sync::OwnedSemaphorePermit,
) {
    let deadline = tokio::time::Instant::now() + TLS_HANDSHAKE_TIMEOUT;
    let mut first = [0u8; 1];
    let peeked = tokio::time::timeout_at(deadline, stream.peek(&mut first)).await;
    if !matches!(peeked, Ok(Ok(1))) {
        return;
    }
    if first[0] != TLS_HANDSHAKE {
        let _ = tokio::time::timeout_at(deadline, async {
            let _ = stream.write_all(&plain_http_refusal()).await;
            let _ = stream.shutdown().await;
            // Read what the client sent: closing with unread input would reset the
            // connection, and the client might never see the 400.
            let mut sink = [0u8; 4096];
            let mut left: usize = 64 * 1024;
            while left > 0 {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => left = left.saturating_sub(n),
                }
            }
        })
        .await;
        return;
    }
    let tls = tokio::time::timeout_at(deadline, acceptor.accept(stream)).await;
    drop(pending);
    match tls {
        Ok(Ok(tls)) => connection(state, tls, None).await,
        Ok(Err(e)) => debug!(error = %e, "tls handshake failed"),
        Err(_) => debug!("tls handshake timed out"),
    }
}

/// Accepts on the Unix socket until shutdown. Identity comes from SO_PEERCRED.
pub async fn serve_unix(state: Arc<AppState>, listener: UnixListener, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    let uid = match stream.peer_cred() {
                        Ok(c) => Some(c.uid()),
                        Err(e) => {
                            warn!(error = %e, "no peer credentials; treating as anonymous");
                            None
                        }
                    };
                    serve_connection(state.clone(), stream, uid);
                }
                Err(e) => {
                    warn!(error = %e, "unix accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = shutdown.cancelled() => return,
        }
    }
}

/// Accepts on TCP until shutdown. Identity comes from bearer tokens only.
pub async fn serve_tcp(state: Arc<AppState>, tcp: TcpServe, shutdown: CancellationToken) {
    let pending = Arc::new(tokio::sync::Semaphore::new(MAX_PENDING_HANDSHAKES));
    loop {
        tokio::select! {
            r = tcp.listener.accept() => match r {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let Some(acceptor) = &tcp.tls else {
                        serve_connection(state.clone(), stream, None);
                        continue;
                    };
                    match pending.clone().try_acquire_owned() {
                        Ok(permit) => {
                            state.tracker.spawn(serve_tls(
                                state.clone(),
                                stream,
                                acceptor.clone(),
                                permit,
                            ));
                        }
                        Err(_) => debug!("too many TLS handshakes in progress; connection closed"),
                    }
                }
                Err(e) => {
                    warn!(error = %e, "tcp accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            _ = shutdown.cancelled() => return,
        }
    }
}
