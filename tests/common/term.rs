//! A terminal WebSocket client for tests: sends input, collects output and control frames.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rexec::client::{Client, EventSocket};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

pub struct Term {
    pub ws: EventSocket,
    pub binary: bool,
    /// Everything output so far (JSON `output` data, or binary frames).
    pub seen: Vec<u8>,
    pub exit: Option<i64>,
    pub controls: Vec<Value>,
}

impl Term {
    pub async fn open(c: &Client, path: &str, binary: bool) -> Term {
        let headers: &[(&str, &str)] = if binary {
            &[("Sec-WebSocket-Protocol", "rexec.binary")]
        } else {
            &[]
        };
        let (ws, resp) = c.websocket(path, headers).await.expect("terminal opens");
        if binary {
            assert_eq!(resp.headers()["sec-websocket-protocol"], "rexec.binary");
        }
        let mut t = Term {
            ws,
            binary,
            seen: Vec::new(),
            exit: None,
            controls: Vec::new(),
        };
        t.until(20, |t| {
            t.controls.iter().any(|c| c["type"] == "shell_ready")
        })
        .await;
        t
    }

    pub async fn send(&mut self, text: &str) {
        let msg = json!({"type":"input","data":text}).to_string();
        self.ws.send(Message::text(msg)).await.unwrap();
    }

    pub async fn raw(&mut self, m: Message) {
        self.ws.send(m).await.unwrap();
    }

    /// Reads until `done` holds (panics after `secs`).
    pub async fn until(&mut self, secs: u64, done: impl Fn(&Term) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        while !done(self) {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "timed out; last output: {:?}; controls {:?}",
                        String::from_utf8_lossy(&self.seen[self.seen.len().saturating_sub(2000)..]),
                        self.controls
                    )
                });
            match msg {
                Some(Ok(Message::Binary(b))) => {
                    assert!(self.binary, "binary output only with rexec.binary");
                    self.seen.extend_from_slice(&b);
                }
                Some(Ok(Message::Text(t))) => {
                    let v: Value = serde_json::from_str(&t).unwrap();
                    match v["type"].as_str().unwrap() {
                        "output" => {
                            assert!(!self.binary, "no JSON output in binary framing");
                            self.seen
                                .extend_from_slice(v["data"].as_str().unwrap().as_bytes());
                        }
                        "exit" => {
                            self.exit = v["code"].as_i64();
                            self.controls.push(v);
                        }
                        _ => self.controls.push(v),
                    }
                }
                Some(Ok(Message::Close(_))) | None => {
                    assert!(
                        done(self),
                        "closed early; last output {:?}",
                        String::from_utf8_lossy(&self.seen[self.seen.len().saturating_sub(2000)..])
                    );
                    return;
                }
                _ => {}
            }
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen).into_owned()
    }

    pub async fn expect(&mut self, needle: &str) {
        let n = needle.to_string();
        self.until(20, move |t| t.text().contains(&n)).await;
    }
}
