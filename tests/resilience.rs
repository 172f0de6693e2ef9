//! Docker going away and coming back, daemon restarts and SIGKILL in the middle of a
//! creation, cancelling a creation by deleting it.

mod common;

use common::events::Events;
use common::net::{Blackhole, DockerProxy};
use common::{create_req, custom_req, eventually, wait_running, Daemon};
use rexec::api::{ContainerStatus, DockerStatus, EventBody, Stage};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn docker_down_refuses_creates_serves_reads_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let proxy_path = tmp.path().join("docker.sock");
    let mut proxy = DockerProxy::start(&proxy_path);
    let d = Daemon::start_full("", Some(&proxy_path));
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let made = c
        .create_container(&create_req("alpine", Some("before")))
        .await
        .unwrap();
    wait_running(&c, &made.db_id).await;

    proxy.down();
    eventually(20, "health degraded", || async {
        let h = c.health().await.ok()?;
        (h.docker == DockerStatus::Unavailable).then_some(())
    })
    .await;
    let r = c
        .raw(
            hyper::Method::POST,
            "/api/containers",
            Some(br#"{"image":"alpine","name":"during"}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()),
        (
            503,
            json!({"error":"container service temporarily unavailable","code":"docker_unavailable"})
        )
    );
    let health = c
        .raw(hyper::Method::GET, "/health", None, &[])
        .await
        .unwrap()
        .value();
    assert_eq!(
        (health["status"].clone(), health["docker"].clone()),
        (json!("degraded"), json!("unavailable"))
    );
    // Reads still answer from the store.
    let list = c.list_containers().await.unwrap();
    assert_eq!(list.count, 1, "the refused create stored nothing");
    assert_eq!(
        c.get_container("before").await.unwrap().status,
        ContainerStatus::Running
    );
    // Operations that need Docker say so.
    let r = c
        .raw(
            hyper::Method::POST,
            "/api/containers/before/stop",
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 503);

    proxy.up();
    eventually(20, "health ok again", || async {
        let h = c.health().await.ok()?;
        (h.docker == DockerStatus::Ok).then_some(())
    })
    .await;
    let after = c
        .create_container(&create_req("alpine", Some("after")))
        .await
        .unwrap();
    wait_running(&c, &after.db_id).await;
    assert_eq!(
        c.stop("before").await.unwrap().status,
        ContainerStatus::Stopped
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restart_keeps_every_record_and_id() {
    let mut d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "pro").await;
    let a = c
        .create_container(&create_req("alpine", Some("a")))
        .await
        .unwrap();
    let b = c
        .create_container(&create_req("debian", Some("b")))
        .await
        .unwrap();
    wait_running(&c, &a.db_id).await;
    wait_running(&c, &b.db_id).await;
    c.stop("b").await.unwrap();
    let before = c.list_containers().await.unwrap();
    let mut ev = Events::new(c.events(Some(0)).await.unwrap());
    let replayed = ev.until(5, |e| matches!(&e.body, EventBody::ContainerUpdated(x) if x.name == "b" && x.status == ContainerStatus::Stopped)).await;
    let last_seq = replayed.last().unwrap().seq;

    d.restart();
    d.ready().await;
    let after = c.list_containers().await.unwrap();
    let key = |l: &rexec::api::ContainerList| {
        l.containers
            .iter()
            .map(|x| {
                (
                    x.db_id.clone(),
                    x.id.clone(),
                    x.name.clone(),
                    x.status,
                    x.created_at.clone(),
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&before), key(&after));
    // Nor does a restart change any record afterwards: the monitor replays Docker's events
    // from a second before it connected (b's start and stop among them), and must take the
    // state from Docker, not from each old event. Give the replay time, then read
    // everything after the last event before the restart: no update may be there.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let mut since = Events::new(c.events(Some(last_seq)).await.unwrap());
    while let Some(e) = since.next(1).await {
        assert!(
            !matches!(&e.body, EventBody::ContainerUpdated(_)),
            "a restart changed a record: {e:?}"
        );
    }
    // The token still works (it was a TCP client), and seq continues after the restart.
    let mut ev = Events::new(c.events(None).await.unwrap());
    c.start("b").await.unwrap();
    let e = ev
        .until(10, |e| matches!(&e.body, EventBody::ContainerUpdated(_)))
        .await;
    assert!(e.last().unwrap().seq > last_seq);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_during_creation_leaves_nothing_stuck_or_orphaned() {
    let hole = Blackhole::start();
    let mut d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "pro").await;
    let done = c
        .create_container(&create_req("alpine", Some("done")))
        .await
        .unwrap();
    wait_running(&c, &done.db_id).await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let stuck = c
        .create_container(&custom_req(&hole.image(), Some("stuck")))
        .await
        .unwrap();
    ev.until(20, |e| matches!(&e.body, EventBody::ContainerProgress(p) if p.id == stuck.db_id && p.stage == Stage::Pulling))
        .await;
    // A second creation killed right after its Docker container appeared.
    let racing = c
        .create_container(&create_req("alpine", Some("racing")))
        .await
        .unwrap();
    ev.until(
        20,
        |e| matches!(&e.body, EventBody::ContainerCreated(x) if x.db_id == racing.db_id),
    )
    .await;
    d.kill9();
    d.start_again();
    d.ready().await;

    let s = c.get_container("stuck").await.unwrap();
    assert_eq!(s.status, ContainerStatus::Error);
    assert_eq!(
        s.error.as_deref(),
        Some("creation interrupted by a daemon restart")
    );
    assert_eq!(
        c.get_container("done").await.unwrap().status,
        ContainerStatus::Running
    );
    let r = c.get_container("racing").await.unwrap();
    assert!(
        matches!(r.status, ContainerStatus::Error | ContainerStatus::Running),
        "never stuck creating: {r:?}"
    );
    // Every Docker container left belongs to a record that is not in error.
    let records = c.list_containers().await.unwrap().containers;
    let ok = eventually(20, "orphans removed", || async {
        let docker = d.docker_containers();
        let owned = |id: &String| {
            records
                .iter()
                .any(|x| x.status != ContainerStatus::Error && id.starts_with(&x.id))
        };
        docker.iter().all(owned).then_some(docker)
    })
    .await;
    assert!(!ok.is_empty());
    // A failed record can be deleted, and takes its volume with it.
    c.delete("stuck").await.unwrap();
    c.delete("racing").await.unwrap();
    c.delete("done").await.unwrap();
    assert!(d.docker_containers().is_empty());
    assert!(d.docker_volumes().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_during_creation_cancels_it() {
    let hole = Blackhole::start();
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let made = c
        .create_container(&custom_req(&hole.image(), Some("slow")))
        .await
        .unwrap();
    ev.until(20, |e| matches!(&e.body, EventBody::ContainerProgress(p) if p.id == made.db_id && p.stage == Stage::Pulling))
        .await;
    let got = c.get_container("slow").await.unwrap();
    assert_eq!(
        (got.status, got.stage, got.progress),
        (ContainerStatus::Creating, Some(Stage::Pulling), Some(15))
    );
    let r = c
        .raw(
            hyper::Method::PATCH,
            "/api/containers/slow/settings",
            Some(br#"{"memory_mb":512}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["code"].clone()),
        (409, json!("container_creating"))
    );
    for action in ["start", "stop"] {
        let r = c
            .raw(
                hyper::Method::POST,
                &format!("/api/containers/slow/{action}"),
                None,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.value()),
            (
                409,
                json!({"error":"container is being created","code":"container_creating"})
            ),
            "{action}"
        );
    }
    let del = tokio::time::timeout(std::time::Duration::from_secs(10), c.delete("slow"))
        .await
        .expect("delete does not wait for the pull")
        .unwrap();
    assert_eq!(del.db_id, made.db_id);
    let e = ev
        .until(10, |e| matches!(e.body, EventBody::ContainerDeleted(_)))
        .await;
    assert!(
        !e.iter()
            .any(|e| matches!(&e.body, EventBody::ContainerProgress(p) if p.stage == Stage::Error)),
        "a cancelled creation is not a failure: {e:#?}"
    );
    assert_eq!(c.list_containers().await.unwrap().count, 0);
    assert!(d.docker_containers().is_empty());
    assert!(d.docker_volumes().is_empty());
}
