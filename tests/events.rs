//! The events WebSocket: replay with `?since=`, gaps, keepalive, scoping and WebSocket auth.

mod common;

use common::events::Events;
use common::{create_req, wait_running, Daemon};
use rexec::api::{EventBody, Stage};
use rexec::client::ClientError;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn since_replays_what_was_missed() {
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let mut live = Events::new(c.events(None).await.unwrap());
    let a = c
        .create_container(&create_req("alpine", Some("a")))
        .await
        .unwrap();
    let first = live.creation(&a.db_id, 30).await;
    assert_eq!(first.last().unwrap().stage, Stage::Ready);
    drop(live);
    // While disconnected:
    c.stop("a").await.unwrap();
    let b = c
        .create_container(&create_req("alpine", Some("b")))
        .await
        .unwrap();
    wait_running(&c, &b.db_id).await;

    // Replay from the start has everything, in seq order.
    let mut all = Events::new(c.events(Some(0)).await.unwrap());
    let replay = all
        .until(
            10,
            |e| matches!(&e.body, EventBody::ContainerProgress(p) if p.id == b.db_id && p.complete),
        )
        .await;
    assert!(replay.windows(2).all(|w| w[0].seq < w[1].seq));
    let stop_seq = replay
        .iter()
        .find(|e| matches!(&e.body, EventBody::ContainerUpdated(x) if x.name == "a" && x.status == rexec::api::ContainerStatus::Stopped))
        .expect("the stop is replayed")
        .seq;
    // Replay from a seq starts just after it.
    let mut from = Events::new(c.events(Some(stop_seq)).await.unwrap());
    let next = from.next(5).await.unwrap();
    assert_eq!(next.seq, stop_seq + 1);
    // Ping/pong in text.
    from.send_text(r#"{"type":"ping"}"#).await;
    let pong = loop {
        let v = from.next_json(5).await.expect("pong");
        if v["type"] == "pong" {
            break v;
        }
    };
    assert_eq!(pong, json!({"type":"pong"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_old_since_reports_a_gap() {
    let d = Daemon::start_with("[events]\nretain = 5\n");
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let a = c
        .create_container(&create_req("alpine", Some("a")))
        .await
        .unwrap();
    wait_running(&c, &a.db_id).await;
    c.stop("a").await.unwrap();
    c.start("a").await.unwrap();
    let mut ev = Events::new(c.events(Some(1)).await.unwrap());
    let gap = ev.next_json(5).await.unwrap();
    assert_eq!(gap["type"], "replay_gap");
    let oldest = gap["data"]["oldest_seq"].as_u64().unwrap();
    assert!(oldest > 2, "{gap}");
    let first = ev.next(5).await.unwrap();
    assert_eq!(first.seq, oldest);
    // A seq from another history (newer than any sent) is a gap too, then live events.
    let mut ev = Events::new(c.events(Some(1_000_000)).await.unwrap());
    let gap = ev.next_json(5).await.unwrap();
    assert_eq!(gap["type"], "replay_gap", "{gap}");
    c.stop("a").await.unwrap();
    let live = ev.next(5).await.expect("live events follow the gap");
    assert!(matches!(live.body, EventBody::ContainerUpdated(_)));
}

#[tokio::test(flavor = "multi_thread")]
async fn websocket_auth_forms_and_scoping() {
    let d = Daemon::start();
    d.ready().await;
    let (user, c) = d.user("ann", "free").await;
    let token = d.token_for(&user.id, None).await;
    let anon = d.tcp_client(None);

    // No credentials: a JSON 401 before the upgrade.
    match anon.websocket("/ws/events", &[]).await {
        Err(ClientError::Api { status, body }) => {
            assert_eq!(status, 401);
            assert_eq!(body.error, "unauthorized");
        }
        other => panic!("expected 401, got {:?}", other.map(|_| ())),
    }
    // ?token=
    let (ws, _) = anon
        .websocket(&format!("/ws/events?token={token}"), &[])
        .await
        .unwrap();
    let mut by_query = Events::new(ws);
    // The subprotocol pair; the server selects rexec.v1.
    let protocols = format!("rexec.v1, rexec.token.{token}");
    let (ws, resp) = anon
        .websocket("/ws/events", &[("Sec-WebSocket-Protocol", &protocols)])
        .await
        .unwrap();
    assert_eq!(
        resp.headers().get("sec-websocket-protocol").unwrap(),
        "rexec.v1"
    );
    let mut by_protocol = Events::new(ws);

    // ?all=true is for admins only.
    match c.websocket("/ws/events?all=true", &[]).await {
        Err(ClientError::Api { status, .. }) => assert_eq!(status, 403),
        other => panic!("expected 403, got {:?}", other.map(|_| ())),
    }
    let mut admin_all = Events::new(
        d.client()
            .websocket("/ws/events?all=true", &[])
            .await
            .unwrap()
            .0,
    );
    let mut admin_own = Events::new(d.client().events(None).await.unwrap());

    let made = c
        .create_container(&create_req("alpine", None))
        .await
        .unwrap();
    for ev in [&mut by_query, &mut by_protocol, &mut admin_all] {
        let p = ev.creation(&made.db_id, 30).await;
        assert_eq!(p.last().unwrap().stage, Stage::Ready);
    }
    assert!(
        admin_own.next(1).await.is_none(),
        "without all=true an admin sees only their own"
    );
}
