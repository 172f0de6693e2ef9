//! Session limits of guest and free containers, and the reaper.

mod common;

use common::events::Events;
use common::{create_req, wait_running, Daemon};
use rexec::api::{DeleteReason, EventBody};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn the_reaper_removes_expired_containers() {
    let d = Daemon::start_with("[tiers.free]\nsession_seconds = 3\n");
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let (_, p) = d.user("pat", "pro").await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let made = c
        .create_container(&create_req("alpine", Some("brief")))
        .await
        .unwrap();
    assert!(made.session_limit_seconds.unwrap() <= 3);
    let keep = p
        .create_container(&create_req("alpine", Some("lasting")))
        .await
        .unwrap();
    assert!(keep.expires_at.is_none());
    let running = wait_running(&c, &made.db_id).await;
    let events = ev
        .until(
            20,
            |e| matches!(&e.body, EventBody::ContainerDeleted(x) if x.db_id == made.db_id),
        )
        .await;
    match &events.last().unwrap().body {
        EventBody::ContainerDeleted(x) => {
            assert_eq!(x.reason, DeleteReason::Expired);
            assert_eq!(x.id, running.id);
        }
        _ => unreachable!(),
    }
    assert_eq!(c.list_containers().await.unwrap().count, 0);
    assert!(common::docker::inspect("container", &running.id).is_none());
    assert!(common::docker::inspect("volume", &format!("rexec-home-{}", made.db_id)).is_none());
    // The pro container stays.
    wait_running(&p, &keep.db_id).await;
    assert_eq!(d.docker_containers().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn starting_an_expired_container_is_refused() {
    let d = Daemon::start_with(
        "[tiers.guest]\nsession_seconds = 1\n[reaper]\ninterval_seconds = 3600\n",
    );
    d.ready().await;
    let (_, c) = d.user("gus", "guest").await;
    let made = c
        .create_container(&create_req("alpine", Some("g")))
        .await
        .unwrap();
    wait_running(&c, &made.db_id).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let r = c
        .raw(hyper::Method::POST, "/api/containers/g/start", None, &[])
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()),
        (
            403,
            json!({"error":"session expired","code":"session_expired"})
        )
    );
    let got = c.get_container("g").await.unwrap();
    assert_eq!(got.session_limit_seconds, Some(0));
}
