//! Reading the events WebSocket in tests.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use rexec::api;
use rexec::client::EventSocket;
use tokio_tungstenite::tungstenite::Message;

pub struct Events {
    pub ws: EventSocket,
}

impl Events {
    pub fn new(ws: EventSocket) -> Self {
        Self { ws }
    }

    /// The next text frame as JSON, skipping pings; `None` on timeout or close.
    pub async fn next_json(&mut self, secs: u64) -> Option<serde_json::Value> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .ok()??;
            match msg.ok()? {
                Message::Text(t) => return serde_json::from_str(&t).ok(),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    pub async fn next(&mut self, secs: u64) -> Option<api::Event> {
        let v = self.next_json(secs).await?;
        Some(
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("not an event ({e}): {v}")),
        )
    }

    /// Events until `done` says stop (inclusive); panics after `secs`.
    pub async fn until(
        &mut self,
        secs: u64,
        mut done: impl FnMut(&api::Event) -> bool,
    ) -> Vec<api::Event> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
        let mut out = Vec::new();
        loop {
            let left = deadline
                .saturating_duration_since(tokio::time::Instant::now())
                .as_secs()
                .max(1);
            let e = self
                .next(left)
                .await
                .unwrap_or_else(|| panic!("timed out; events so far: {out:#?}"));
            let stop = done(&e);
            out.push(e);
            if stop {
                return out;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out; events so far: {out:#?}"
            );
        }
    }

    /// The progress events of one container until its creation completes.
    pub async fn creation(&mut self, db_id: &str, secs: u64) -> Vec<api::Progress> {
        let events = self
            .until(secs, |e| matches!(&e.body, api::EventBody::ContainerProgress(p) if p.id == db_id && p.complete))
            .await;
        events
            .into_iter()
            .filter_map(|e| match e.body {
                api::EventBody::ContainerProgress(p) if p.id == db_id => Some(p),
                _ => None,
            })
            .collect()
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).await.unwrap();
    }
}
