//! `GET /ws/events`: live events of the caller's containers, with `?since=` replay from the
//! store so that a reconnecting client misses nothing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, SEC_WEBSOCKET_PROTOCOL};
use hyper::Request;
use hyper_tungstenite::tungstenite::Message;
use hyper_tungstenite::HyperWebsocketStream;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::http::HttpResult;
use super::{query, Ctx};
use crate::api::EventControl;
use crate::daemon::error::Error;
use crate::daemon::events::{EventHub, EventRecord, REPLAY_PAGE};

/// Server pings keep idle proxies from cutting the line.
const PING_INTERVAL: Duration = Duration::from_secs(25);

pub const SUBPROTOCOL: &str = "rexec.v1";

/// Whether the client offered a subprotocol.
pub fn offers(req: &Request<Incoming>, protocol: &str) -> bool {
    req.headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == protocol)
}

pub fn upgrade(ctx: &Ctx, mut req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_read()?;
    let all = query(req.uri(), "all").is_some_and(|v| v == "true" || v == "1");
    if all {
        p.require_admin()?;
    }
    let since = match query(req.uri(), "since") {
        None => None,
        Some(s) => Some(s.parse::<u64>().map_err(|_| {
            Error::BadRequest("invalid since: must be a non-negative integer".into())
        })?),
    };
    if !hyper_tungstenite::is_upgrade_request(&req) {
        return Err(Error::BadRequest("expected a WebSocket upgrade".into()).into());
    }
    let with_protocol = offers(&req, SUBPROTOCOL);
    let (resp, websocket) = hyper_tungstenite::upgrade(&mut req, None)
        .map_err(|e| Error::BadRequest(format!("bad WebSocket upgrade: {e}")))?;
    let mut resp = resp.map(|b| b.map_err(|never| match never {}).boxed_unsync());
    if with_protocol {
        resp.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    let hub = ctx.state.hub.clone();
    let user = (!all).then(|| p.user.id.clone());
    let shutdown = ctx.state.shutdown.clone();
    ctx.state.tracker.spawn(async move {
        match websocket.await {
            Ok(ws) => serve(ws, hub, user, since, shutdown).await,
            Err(e) => debug!(error = %e, "events upgrade failed"),
        }
    });
    Ok(resp)
}

struct Feed {
    ws: HyperWebsocketStream,
    user: Option<String>,
    last: u64,
}

impl Feed {
    async fn send(&mut self, e: &EventRecord) -> Result<(), ()> {
        if e.seq <= self.last {
            return Ok(());
        }
        self.last = e.seq;
        if self.user.as_deref().is_some_and(|u| u != e.user_id) {
            return Ok(());
        }
        self.ws
            .send(Message::text(e.json.clone()))
            .await
            .map_err(|_| ())
    }

    async fn control(&mut self, c: &EventControl) -> Result<(), ()> {
        let text = serde_json::to_string(c).unwrap_or_default();
        self.ws.send(Message::text(text)).await.map_err(|_| ())
    }

    /// Sends every stored event after `self.last`.
    async fn replay(&mut self, hub: &EventHub) -> Result<(), ()> {
        loop {
            let batch = hub.replay(self.last).await.map_err(|_| ())?;
            for e in &batch {
                self.send(e).await?;
            }
            if batch.len() < REPLAY_PAGE {
                return Ok(());
            }
        }
    }
}

async fn serve(
    ws: HyperWebsocketStream,
    hub: Arc<EventHub>,
    user: Option<String>,
    since: Option<u64>,
    shutdown: CancellationToken,
) {
    // Subscribe before replaying, so nothing falls between the two.
    let mut rx = hub.subscribe();
    let mut feed = Feed { ws, user, last: 0 };
    if let Some(since) = since {
        let last = hub.last_seq();
        let oldest = hub.oldest_seq().await.ok().flatten();
        // Events were pruned since then, or `since` is from another history (a newer seq
        // than was ever sent): either way the client must re-read the list.
        let gap = since > last || oldest.is_some_and(|o| since.saturating_add(1) < o);
        if gap {
            let oldest_seq = oldest.unwrap_or(last + 1);
            if feed
                .control(&EventControl::ReplayGap { oldest_seq })
                .await
                .is_err()
            {
                return;
            }
        }
        feed.last = since.min(last);
        if feed.replay(&hub).await.is_err() {
            return;
        }
    }
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
    loop {
        let step = tokio::select! {
            r = rx.recv() => match r {
                Ok(e) => feed.send(&e).await,
                // Fell behind the live channel: the store has everything.
                Err(RecvError::Lagged(_)) => feed.replay(&hub).await,
                Err(RecvError::Closed) => Err(()),
            },
            msg = feed.ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if matches!(serde_json::from_str::<EventControl>(&t), Ok(EventControl::Ping)) {
                        feed.control(&EventControl::Pong).await
                    } else {
                        Ok(())
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => Err(()),
                Some(Ok(_)) => Ok(()),
            },
            _ = ping.tick() => feed.ws.send(Message::Ping(Default::default())).await.map_err(|_| ()),
            _ = shutdown.cancelled() => {
                let _ = feed.ws.close(None).await;
                Err(())
            }
        };
        if step.is_err() {
            return;
        }
    }
}
