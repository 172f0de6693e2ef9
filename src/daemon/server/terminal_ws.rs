//! `GET /ws/terminal/:id`: the terminal WebSocket. JSON text framing by default; with the
//! `rexec.binary` subprotocol, output goes out as binary frames (raw bytes) and only control
//! messages as JSON.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::Request;
use hyper_tungstenite::tungstenite::Message;
use hyper_tungstenite::HyperWebsocketStream;
use tracing::debug;

use super::events_ws::{offers, SUBPROTOCOL};
use super::http::HttpResult;
use super::{query, Ctx};
use crate::api::{TerminalIn, TerminalOut};
use crate::daemon::auth::User;
use crate::daemon::error::Error;
use crate::daemon::terminal::{valid_size, Attachment, Out, Terminals};

pub const BINARY_PROTOCOL: &str = "rexec.binary";
const PING_INTERVAL: Duration = Duration::from_secs(25);

struct Params {
    conn: String,
    fresh: bool,
    size: (u16, u16),
    binary: bool,
}

fn params(req: &Request<Incoming>) -> Result<Params, Error> {
    let uri = req.uri();
    let conn = query(uri, "id")
        .filter(|v| !v.is_empty())
        .unwrap_or("default");
    if conn.len() > 128
        || !conn
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(Error::BadRequest(
            "invalid id: 1-128 of letters, digits, '-', '_', '.'".into(),
        ));
    }
    let num = |k: &str, d: u16| -> Result<u16, Error> {
        query(uri, k)
            .map(|v| {
                v.parse::<u16>()
                    .map_err(|_| Error::BadRequest(format!("invalid {k}")))
            })
            .unwrap_or(Ok(d))
    };
    let size = (num("cols", 80)?, num("rows", 24)?);
    if !valid_size(size.0, size.1) {
        return Err(Error::BadRequest("cols and rows must be 1-1000".into()));
    }
    Ok(Params {
        conn: conn.to_string(),
        fresh: query(uri, "newSession").is_some_and(|v| v == "true" || v == "1"),
        size,
        binary: offers(req, BINARY_PROTOCOL),
    })
}

pub fn upgrade(ctx: &Ctx, id: &str, mut req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let db_id = ctx.state.terminals.check(&p.user, id)?;
    let params = params(&req)?;
    if !hyper_tungstenite::is_upgrade_request(&req) {
        return Err(Error::BadRequest("expected a WebSocket upgrade".into()).into());
    }
    let protocol = if params.binary {
        Some(BINARY_PROTOCOL)
    } else {
        offers(&req, SUBPROTOCOL).then_some(SUBPROTOCOL)
    };
    let (resp, websocket) = hyper_tungstenite::upgrade(&mut req, None)
        .map_err(|e| Error::BadRequest(format!("bad WebSocket upgrade: {e}")))?;
    let mut resp = resp.map(|b| b.map_err(|never| match never {}).boxed_unsync());
    if let Some(proto) = protocol {
        resp.headers_mut()
            .insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static(proto));
    }
    let terminals = ctx.state.terminals.clone();
    let user = p.user.clone();
    let shutdown = ctx.state.shutdown.clone();
    ctx.state.tracker.spawn(async move {
        let Ok(ws) = websocket.await else { return };
        let mut t = Term {
            ws,
            binary: params.binary,
            carry: Vec::new(),
        };
        tokio::select! {
            _ = t.serve(&terminals, &user, &db_id, &params) => {}
            _ = shutdown.cancelled() => {}
        }
        let _ = t.ws.close(None).await;
    });
    Ok(resp)
}

struct Term {
    ws: HyperWebsocketStream,
    binary: bool,
    /// The start of a UTF-8 character whose end has not arrived yet (JSON framing).
    carry: Vec<u8>,
}

impl Term {
    async fn control(&mut self, m: &TerminalOut) -> Result<(), ()> {
        let text = serde_json::to_string(m).unwrap_or_default();
        self.ws.send(Message::text(text)).await.map_err(|_| ())
    }

    async fn output(&mut self, bytes: Bytes) -> Result<(), ()> {
        if self.binary {
            return self.ws.send(Message::binary(bytes)).await.map_err(|_| ());
        }
        self.carry.extend_from_slice(&bytes);
        let text = take_utf8(&mut self.carry);
        if text.is_empty() {
            return Ok(());
        }
        self.control(&TerminalOut::Output { data: text }).await
    }

    async fn serve(
        &mut self,
        terminals: &std::sync::Arc<Terminals>,
        user: &User,
        db_id: &str,
        p: &Params,
    ) {
        if self
            .control(&TerminalOut::Connected {
                data: p.conn.clone(),
            })
            .await
            .is_err()
        {
            return;
        }
        let mut a = match self.start(terminals, user, db_id, p).await {
            Ok(a) => a,
            Err(e) => {
                let _ = self
                    .control(&TerminalOut::Error {
                        data: e.to_string(),
                    })
                    .await;
                return;
            }
        };
        if self.control(&TerminalOut::ShellReady).await.is_ok() {
            self.pump(terminals, &mut a).await;
        }
        terminals.detach(a).await;
    }

    /// Waits for the container (telling the client while it does), then attaches.
    async fn start(
        &mut self,
        terminals: &std::sync::Arc<Terminals>,
        user: &User,
        db_id: &str,
        p: &Params,
    ) -> Result<Attachment, Error> {
        if let Some(status) = terminals.pending(db_id) {
            let _ = self
                .control(&TerminalOut::ContainerStatus {
                    data: status.into(),
                })
                .await;
        }
        let docker_id = terminals.wait_ready(db_id).await?;
        let _ = self.control(&TerminalOut::ShellStarting).await;
        terminals
            .attach(user, db_id, &docker_id, &p.conn, p.fresh, p.size)
            .await
    }

    async fn pump(&mut self, terminals: &Terminals, a: &mut Attachment) {
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        loop {
            let step = tokio::select! {
                out = a.rx.recv() => match out {
                    Some(Out::Data(b)) => self.output(b).await,
                    Some(Out::Exit(code)) => {
                        let _ = self.control(&TerminalOut::Exit { code }).await;
                        return;
                    }
                    None => return,
                },
                msg = self.ws.next() => match msg {
                    Some(Ok(Message::Text(t))) => match serde_json::from_str::<TerminalIn>(&t) {
                        Ok(TerminalIn::Input { data }) => {
                            terminals.touch(a).await;
                            a.input(Bytes::from(data)).await;
                            Ok(())
                        }
                        Ok(TerminalIn::Resize { cols, rows }) if valid_size(cols, rows) => {
                            if let Err(e) = terminals.resize(a, cols, rows).await {
                                debug!(error = %e, "resize failed");
                            }
                            Ok(())
                        }
                        Ok(TerminalIn::Resize { .. }) => {
                            self.control(&TerminalOut::Error { data: "cols and rows must be 1-1000".into() }).await
                        }
                        Ok(TerminalIn::Ping) => self.control(&TerminalOut::Pong).await,
                        Err(_) => {
                            terminals.touch(a).await;
                            a.input(Bytes::copy_from_slice(t.as_bytes())).await;
                            Ok(())
                        }
                    },
                    Some(Ok(Message::Binary(b))) => {
                        terminals.touch(a).await;
                        a.input(b).await;
                        Ok(())
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => Ok(()),
                },
                _ = ping.tick() => self.ws.send(Message::Ping(Default::default())).await.map_err(|_| ()),
            };
            if step.is_err() {
                return;
            }
        }
    }
}

/// Takes the longest valid UTF-8 prefix out of `buf`, leaving an incomplete trailing
/// character for the next read; invalid bytes become U+FFFD.
fn take_utf8(buf: &mut Vec<u8>) -> String {
    let mut out = String::new();
    let mut rest: &[u8] = buf;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                rest = &[];
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                match e.error_len() {
                    Some(n) => {
                        out.push('\u{FFFD}');
                        rest = &after[n..];
                    }
                    // Incomplete at the end: keep it.
                    None => {
                        rest = after;
                        break;
                    }
                }
            }
        }
    }
    let keep = rest.to_vec();
    *buf = keep;
    out
}

#[cfg(test)]
mod tests {
    use super::take_utf8;

    #[test]
    fn split_characters_are_carried_over_and_bad_bytes_replaced() {
        let euro = "€".as_bytes();
        let mut buf = vec![b'a', euro[0]];
        assert_eq!(take_utf8(&mut buf), "a");
        assert_eq!(buf, vec![euro[0]]);
        buf.extend_from_slice(&euro[1..]);
        buf.push(b'!');
        assert_eq!(take_utf8(&mut buf), "€!");
        assert!(buf.is_empty());
        let mut bad = vec![b'x', 0xff, b'y'];
        assert_eq!(take_utf8(&mut bad), "x\u{FFFD}y");
    }
}
