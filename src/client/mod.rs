//! The typed rexec client: the same requests over the Unix socket (hyperlocal) or TCP, plus
//! the events WebSocket. `rexecctl` and the integration tests both use it.

pub mod cli;
mod shell;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::rt::TokioExecutor;
use hyperlocal::UnixConnector;
use rustls_pki_types::ServerName;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::WebSocketStream;

use crate::api;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error body.
    #[error("{}", .body.error)]
    Api {
        status: StatusCode,
        body: Box<api::ErrorBody>,
    },
    /// The daemon could not be reached.
    #[error("cannot reach rexecd at {target}: {detail}")]
    Connect { target: String, detail: String },
    #[error("unexpected answer from rexecd: {0}")]
    Protocol(String),
    /// The client's own TLS settings are unusable (a bad `--cacert` file).
    #[error("{0}")]
    Tls(String),
    /// A local file could not be read or written.
    #[error("{0}")]
    Io(String),
}

pub type Result<T> = std::result::Result<T, ClientError>;

#[derive(Debug, Clone)]
pub enum Endpoint {
    Unix(PathBuf),
    /// `http://host:port`, or `https://host:port` for a TLS listener.
    Tcp(String),
}

/// Request bodies: JSON in one piece, or a file streamed from disk (uploads).
type ReqBody = http_body_util::combinators::BoxBody<Bytes, std::io::Error>;

/// A response's whole body; empty if it breaks off (the caller then sees bad JSON).
async fn body_or_empty(resp: hyper::Response<hyper::body::Incoming>) -> Bytes {
    resp.into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default()
}

fn whole(bytes: Vec<u8>) -> ReqBody {
    Full::new(Bytes::from(bytes))
        .map_err(|never: std::convert::Infallible| match never {})
        .boxed()
}

enum Transport {
    Unix(HttpClient<UnixConnector, ReqBody>),
    Tcp(HttpClient<HttpsConnector<HttpConnector>, ReqBody>),
}

/// TLS settings trusting the system's root certificates (loaded once).
fn system_roots() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            tls_config(roots)
        })
        .clone()
}

fn tls_config(roots: rustls::RootCertStore) -> Arc<rustls::ClientConfig> {
    // No ALPN here: hyper-rustls sets it for HTTP, and the WebSocket needs none.
    Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// TLS settings trusting only the CA certificates in a PEM file (like `curl --cacert`).
fn ca_file_config(path: &Path) -> Result<Arc<rustls::ClientConfig>> {
    let bad = |e: &dyn std::fmt::Display| ClientError::Tls(format!("CA file {e}"));
    let mut roots = rustls::RootCertStore::empty();
    for cert in crate::tls::read_pem_certs(path).map_err(|e| bad(&e))? {
        roots
            .add(cert)
            .map_err(|e| bad(&format!("{}: {e}", path.display())))?;
    }
    Ok(tls_config(roots))
}

/// A raw answer: status and body bytes.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl RawResponse {
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ClientError::Protocol(format!("{e}: {}", String::from_utf8_lossy(&self.body)))
        })
    }

    pub fn value(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

pub type EventSocket = WebSocketStream<Box<dyn AsyncStream>>;

/// A byte stream the WebSocket client runs over (Unix or TCP).
pub trait AsyncStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> AsyncStream for T {}

pub struct Client {
    endpoint: Endpoint,
    token: Option<String>,
    transport: Transport,
    /// For an `https://` endpoint: whom to trust.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client {
    pub fn unix(socket: impl AsRef<Path>) -> Self {
        Self::new(Endpoint::Unix(socket.as_ref().to_path_buf()), None)
    }

    /// An `https://` endpoint is checked against the system's root certificates.
    pub fn new(endpoint: Endpoint, token: Option<String>) -> Self {
        let tls = is_https(&endpoint).then(system_roots);
        Self::build(endpoint, token, tls)
    }

    /// An `https://` endpoint is checked against the CA certificates in `ca_file` only (other
    /// endpoints do not use it).
    pub fn with_ca_file(endpoint: Endpoint, token: Option<String>, ca_file: &Path) -> Result<Self> {
        let tls = match is_https(&endpoint) {
            true => Some(ca_file_config(ca_file)?),
            false => None,
        };
        Ok(Self::build(endpoint, token, tls))
    }

    fn build(
        endpoint: Endpoint,
        token: Option<String>,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Self {
        let transport = match &endpoint {
            Endpoint::Unix(_) => {
                Transport::Unix(HttpClient::builder(TokioExecutor::new()).build(UnixConnector))
            }
            Endpoint::Tcp(_) => {
                let mut http = HttpConnector::new();
                http.set_nodelay(true);
                http.enforce_http(false);
                let config = tls
                    .clone()
                    .unwrap_or_else(|| tls_config(rustls::RootCertStore::empty()));
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config((*config).clone())
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                Transport::Tcp(HttpClient::builder(TokioExecutor::new()).build(connector))
            }
        };
        Self {
            endpoint,
            token,
            transport,
            tls,
        }
    }

    pub fn with_token(&self, token: Option<String>) -> Self {
        Self::build(self.endpoint.clone(), token, self.tls.clone())
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn target(&self) -> String {
        match &self.endpoint {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Tcp(u) => u.clone(),
        }
    }

    fn uri(&self, path: &str) -> hyper::Uri {
        match &self.endpoint {
            Endpoint::Unix(socket) => hyperlocal::Uri::new(socket, path).into(),
            Endpoint::Tcp(base) => format!("{}{}", base.trim_end_matches('/'), path)
                .parse()
                .unwrap_or_default(),
        }
    }

    /// Sends any request; errors only when the daemon cannot be reached.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
    ) -> Result<RawResponse> {
        let mut req = self.request(method, path);
        if body.is_some() {
            req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(whole(body.unwrap_or_default()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.send(req).await?;
        let connect_err = |e: &dyn std::fmt::Display| ClientError::Connect {
            target: self.target(),
            detail: e.to_string(),
        };
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| connect_err(&e))?
            .to_bytes();
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    async fn send(&self, req: Request<ReqBody>) -> Result<hyper::Response<hyper::body::Incoming>> {
        match &self.transport {
            Transport::Unix(c) => c.request(req).await,
            Transport::Tcp(c) => c.request(req).await,
        }
        .map_err(|e| ClientError::Connect {
            target: self.target(),
            detail: error_chain(&e),
        })
    }

    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        let req = Request::builder().method(method).uri(self.uri(path));
        match &self.token {
            Some(t) => req.header(AUTHORIZATION, format!("Bearer {t}")),
            None => req,
        }
    }

    /// An error answer as a [`ClientError`].
    async fn api_error(resp: hyper::Response<hyper::body::Incoming>) -> ClientError {
        let status = resp.status();
        let bytes = body_or_empty(resp).await;
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| api::ErrorBody {
            error: String::from_utf8_lossy(&bytes).into_owned(),
            ..Default::default()
        });
        ClientError::Api {
            status,
            body: Box::new(body),
        }
    }

    /// Uploads a local file into directory `dir` of a container as `name`, streamed from disk
    /// as a multipart body.
    pub async fn upload(
        &self,
        id: &str,
        local: &Path,
        dir: &str,
        name: &str,
    ) -> Result<api::UploadResponse> {
        let file = tokio::fs::File::open(local)
            .await
            .map_err(|e| ClientError::Io(format!("{}: {e}", local.display())))?;
        let size = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let boundary = format!("rexec-{}", uuid::Uuid::new_v4().simple());
        let quoted = name.replace(['"', '\\', '\r', '\n'], "_");
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{quoted}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let length = head.len() as u64 + size + tail.len() as u64;
        use futures_util::StreamExt;
        let stream =
            futures_util::stream::once(async move { Ok::<_, std::io::Error>(Bytes::from(head)) })
                .chain(tokio_util::io::ReaderStream::new(file))
                .chain(futures_util::stream::once(
                    async move { Ok(Bytes::from(tail)) },
                ))
                .map(|r| r.map(hyper::body::Frame::data));
        let path = format!("/api/files/{}?path={}", encode(id), encode(dir));
        let req = self
            .request(Method::POST, &path)
            .header(
                CONTENT_TYPE,
                format!("multipart/form-data; boundary={boundary}"),
            )
            .header(hyper::header::CONTENT_LENGTH, length)
            .body(BodyExt::boxed(http_body_util::StreamBody::new(stream)))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(Self::api_error(resp).await);
        }
        let bytes = body_or_empty(resp).await;
        serde_json::from_slice(&bytes).map_err(|e| ClientError::Protocol(e.to_string()))
    }

    /// Downloads a container file into `out`, streamed; returns the bytes written.
    pub async fn download(
        &self,
        id: &str,
        path: &str,
        out: &mut (impl tokio::io::AsyncWrite + Unpin),
    ) -> Result<u64> {
        use tokio::io::AsyncWriteExt;
        let req = self
            .request(
                Method::GET,
                &format!("/api/files/{}?path={}", encode(id), encode(path)),
            )
            .body(whole(Vec::new()))
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        let resp = self.send(req).await?;
        if !resp.status().is_success() {
            return Err(Self::api_error(resp).await);
        }
        let mut body = resp.into_body();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ClientError::Protocol(e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                out.write_all(&data)
                    .await
                    .map_err(|e| ClientError::Protocol(e.to_string()))?;
                n += data.len() as u64;
            }
        }
        out.flush()
            .await
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        Ok(n)
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        let body = body.map(|b| serde_json::to_vec(b).unwrap_or_default());
        let resp = self.raw(method, path, body, &[]).await?;
        if !resp.status.is_success() {
            let body = resp
                .json::<api::ErrorBody>()
                .unwrap_or_else(|_| api::ErrorBody {
                    error: String::from_utf8_lossy(&resp.body).into_owned(),
                    ..Default::default()
                });
            return Err(ClientError::Api {
                status: resp.status,
                body: Box::new(body),
            });
        }
        resp.json()
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T> {
        self.call::<(), T>(Method::GET, path, None).await
    }

    pub async fn health(&self) -> Result<api::Health> {
        self.get("/health").await
    }

    pub async fn version(&self) -> Result<api::Version> {
        self.get("/api/version").await
    }

    pub async fn create_container(
        &self,
        req: &api::CreateContainerRequest,
    ) -> Result<api::CreateContainerResponse> {
        self.call(Method::POST, "/api/containers", Some(req)).await
    }

    pub async fn list_containers(&self) -> Result<api::ContainerList> {
        self.get("/api/containers").await
    }

    pub async fn get_container(&self, id: &str) -> Result<api::Container> {
        self.get(&format!("/api/containers/{}", encode(id))).await
    }

    /// A request without a body on `/api/containers/:id` + `suffix`.
    async fn container_action<T: DeserializeOwned>(
        &self,
        method: Method,
        id: &str,
        suffix: &str,
    ) -> Result<T> {
        let path = format!("/api/containers/{}{suffix}", encode(id));
        self.call::<(), _>(method, &path, None).await
    }

    pub async fn start(&self, id: &str) -> Result<api::LifecycleResponse> {
        self.container_action(Method::POST, id, "/start").await
    }

    pub async fn stop(&self, id: &str) -> Result<api::LifecycleResponse> {
        self.container_action(Method::POST, id, "/stop").await
    }

    pub async fn delete(&self, id: &str) -> Result<api::DeleteResponse> {
        self.container_action(Method::DELETE, id, "").await
    }

    /// Role and shell set-up: what was set up, when, and the last 64 KiB of its output.
    pub async fn shell_status(&self, id: &str) -> Result<api::ShellStatus> {
        self.container_action(Method::GET, id, "/shell/status")
            .await
    }

    /// Runs set-up again in the background; the answer is its state as it begins.
    pub async fn shell_setup(&self, id: &str) -> Result<api::Setup> {
        self.container_action(Method::POST, id, "/shell/setup")
            .await
    }

    pub async fn update_settings(
        &self,
        id: &str,
        req: &api::SettingsRequest,
    ) -> Result<api::Container> {
        self.call(
            Method::PATCH,
            &format!("/api/containers/{}/settings", encode(id)),
            Some(req),
        )
        .await
    }

    pub async fn exec(&self, id: &str, req: &api::ExecRequest) -> Result<api::ExecResponse> {
        self.call(
            Method::POST,
            &format!("/api/containers/{}/exec", encode(id)),
            Some(req),
        )
        .await
    }

    pub async fn images(&self) -> Result<api::ImageList> {
        self.get("/api/images").await
    }

    pub async fn roles(&self) -> Result<api::RoleList> {
        self.get("/api/roles").await
    }

    pub async fn create_user(&self, name: &str, tier: &str) -> Result<api::User> {
        let req = api::CreateUserRequest {
            name: name.into(),
            tier: Some(tier.into()),
        };
        self.call(Method::POST, "/api/admin/users", Some(&req))
            .await
    }

    pub async fn users(&self) -> Result<api::UserList> {
        self.get("/api/admin/users").await
    }

    /// Admin: another tier for a user (`user` is an id or a name).
    pub async fn set_user_tier(&self, user: &str, tier: &str) -> Result<api::User> {
        let req = api::UpdateUserRequest { tier: tier.into() };
        self.call(
            Method::PATCH,
            &format!("/api/admin/users/{}", encode(user)),
            Some(&req),
        )
        .await
    }

    /// Admin: removes a user (refused while they own containers).
    pub async fn delete_user(&self, user: &str) -> Result<api::MessageResponse> {
        let path = format!("/api/admin/users/{}", encode(user));
        self.call::<(), _>(Method::DELETE, &path, None).await
    }

    /// Revokes one of the caller's tokens.
    pub async fn revoke_token(&self, id: &str) -> Result<api::MessageResponse> {
        let path = format!("/api/tokens/{}", encode(id));
        self.call::<(), _>(Method::DELETE, &path, None).await
    }

    /// Admin: every user's containers.
    pub async fn list_all_containers(&self) -> Result<api::ContainerList> {
        self.get("/api/containers?all=true").await
    }

    /// A token for another user (admin only); `user` is an id or a name.
    pub async fn create_user_token(
        &self,
        user: &str,
        req: &api::CreateTokenRequest,
    ) -> Result<api::CreatedToken> {
        self.call(
            Method::POST,
            &format!("/api/admin/users/{}/tokens", encode(user)),
            Some(req),
        )
        .await
    }

    pub async fn create_token(&self, req: &api::CreateTokenRequest) -> Result<api::CreatedToken> {
        self.call(Method::POST, "/api/tokens", Some(req)).await
    }

    pub async fn tokens(&self) -> Result<api::TokenList> {
        self.get("/api/tokens").await
    }

    /// Opens the events WebSocket, replaying from `since` when given.
    pub async fn events(&self, since: Option<u64>) -> Result<EventSocket> {
        let path = match since {
            Some(s) => format!("/ws/events?since={s}"),
            None => "/ws/events".to_string(),
        };
        self.websocket(&path, &[]).await.map(|(ws, _)| ws)
    }

    /// Opens any WebSocket path with extra request headers.
    pub async fn websocket(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::result::Result<
        (
            EventSocket,
            tokio_tungstenite::tungstenite::handshake::client::Response,
        ),
        ClientError,
    > {
        let connect_err = |e: &dyn std::fmt::Display| ClientError::Connect {
            target: self.target(),
            detail: e.to_string(),
        };
        let (stream, host): (Box<dyn AsyncStream>, String) = match &self.endpoint {
            Endpoint::Unix(socket) => (
                Box::new(
                    tokio::net::UnixStream::connect(socket)
                        .await
                        .map_err(|e| connect_err(&e))?,
                ),
                "localhost".into(),
            ),
            Endpoint::Tcp(base) => {
                let uri: hyper::Uri = base.parse().map_err(|e| connect_err(&e))?;
                // An IPv6 literal without its brackets, for connect and for SNI.
                let host = uri
                    .host()
                    .unwrap_or_default()
                    .trim_matches(['[', ']'])
                    .to_string();
                let port = uri
                    .port_u16()
                    .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
                let authority = uri
                    .authority()
                    .map(|a| a.as_str().to_string())
                    .unwrap_or_default();
                let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
                    .await
                    .map_err(|e| connect_err(&e))?;
                let _ = tcp.set_nodelay(true);
                let stream: Box<dyn AsyncStream> = match &self.tls {
                    None => Box::new(tcp),
                    Some(config) => {
                        let name =
                            ServerName::try_from(host.clone()).map_err(|e| connect_err(&e))?;
                        let tls = tokio_rustls::TlsConnector::from(config.clone())
                            .connect(name, tcp)
                            .await
                            .map_err(|e| connect_err(&e))?;
                        Box::new(tls)
                    }
                };
                (stream, authority)
            }
        };
        let scheme = if self.tls.is_some() { "wss" } else { "ws" };
        let mut req = format!("{scheme}://{host}{path}")
            .into_client_request()
            .map_err(|e| ClientError::Protocol(e.to_string()))?;
        if let Some(t) = &self.token {
            req.headers_mut().insert(
                AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}"))
                    .map_err(|e| ClientError::Protocol(e.to_string()))?,
            );
        }
        for (k, v) in headers {
            let name = hyper::header::HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| ClientError::Protocol(e.to_string()))?;
            req.headers_mut().insert(
                name,
                HeaderValue::from_str(v).map_err(|e| ClientError::Protocol(e.to_string()))?,
            );
        }
        match tokio_tungstenite::client_async(req, stream).await {
            Ok(ok) => Ok(ok),
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let status = resp.status();
                let body = resp
                    .body()
                    .as_ref()
                    .and_then(|b| serde_json::from_slice(b).ok())
                    .unwrap_or_default();
                Err(ClientError::Api {
                    status,
                    body: Box::new(body),
                })
            }
            Err(e) => Err(connect_err(&e)),
        }
    }
}

fn is_https(endpoint: &Endpoint) -> bool {
    matches!(endpoint, Endpoint::Tcp(url) if url.starts_with("https://"))
}

/// Percent-encodes a path segment.
pub(crate) fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
