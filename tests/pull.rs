//! A real pull from the local registry (scripts/test-env.sh runs it on 127.0.0.1:5000) shows
//! `pulling` with real progress; a failed pull ends in `error` without leaking internals.

mod common;

use common::events::Events;
use common::registry::{RegistryImage, REGISTRY};
use common::{custom_req, Daemon};
use rexec::api::{ContainerStatus, Stage};

#[tokio::test(flavor = "multi_thread")]
async fn a_pull_shows_real_progress() {
    let d = Daemon::start();
    d.ready().await;
    let image = RegistryImage::push(&d.label);
    let (_, c) = d.user("ann", "free").await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let made = c
        .create_container(&custom_req(&image.reference, None))
        .await
        .unwrap();
    assert_eq!(made.image, format!("custom:{}", image.reference));
    let progress = ev.creation(&made.db_id, 120).await;
    let last = progress.last().unwrap();
    assert_eq!(last.stage, Stage::Ready, "{progress:#?}");
    let pulling: Vec<_> = progress
        .iter()
        .filter(|p| p.stage == Stage::Pulling)
        .collect();
    assert!(pulling.len() >= 3, "several pull updates: {progress:#?}");
    assert_eq!(pulling.first().unwrap().progress, 15);
    assert_eq!(pulling.last().unwrap().progress, 40);
    let between: Vec<u8> = pulling
        .iter()
        .map(|p| p.progress)
        .filter(|p| *p > 15 && *p < 40)
        .collect();
    assert!(
        !between.is_empty(),
        "intermediate progress from the layer stream: {pulling:#?}"
    );
    assert!(
        pulling.iter().any(|p| p.message.contains(" MB")),
        "{pulling:#?}"
    );
    assert!(progress.windows(2).all(|w| w[0].progress <= w[1].progress));
    assert_eq!(
        c.get_container(&made.db_id).await.unwrap().status,
        ContainerStatus::Running
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_pull_ends_in_error_with_a_safe_message() {
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let missing = format!(
        "{REGISTRY}/rexec/missing-{}:nope",
        uuid::Uuid::new_v4().simple()
    );
    let made = c
        .create_container(&custom_req(&missing, Some("broken")))
        .await
        .unwrap();
    let progress = ev.creation(&made.db_id, 60).await;
    let last = progress.last().unwrap();
    assert_eq!(last.stage, Stage::Error, "{progress:#?}");
    assert!(last.complete);
    let msg = last.error.clone().expect("the error says why");
    for secret in [
        "docker.sock",
        "unix://",
        "/var/run",
        "127.0.0.1",
        ":5000",
        "http",
    ] {
        assert!(!msg.contains(secret), "{msg:?} names {secret}");
    }
    assert_eq!(msg, "failed to pull the image: not found or not accessible");
    let rec = c.get_container("broken").await.unwrap();
    assert_eq!(rec.status, ContainerStatus::Error);
    assert_eq!(rec.error.as_deref(), Some(msg.as_str()));
    assert!(d.docker_containers().is_empty());
    // It cannot be started; it still counts until deleted.
    let r = c
        .raw(
            hyper::Method::POST,
            "/api/containers/broken/start",
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["code"].clone()),
        (409, serde_json::json!("container_failed"))
    );
    assert_eq!(c.list_containers().await.unwrap().count, 1);
    c.delete("broken").await.unwrap();
    assert!(d.docker_volumes().is_empty());
}
