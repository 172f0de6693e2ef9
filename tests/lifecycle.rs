//! The happy path and the lifecycle against the real engine: events, ids, the Docker
//! mapping, stop/start, recreate, delete.

mod common;

use common::docker;
use common::events::Events;
use common::{create_req, wait_running, Daemon};
use rexec::api::{self, ContainerStatus, EventBody, Stage};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn create_reports_progress_and_builds_the_documented_container() {
    let d = Daemon::start();
    d.ready().await;
    let (user, c) = d.user("ann", "free").await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let mut req = create_req("ubuntu:24.04", Some("dev-environment"));
    req.role = Some("node".into());
    req.memory_mb = Some(2048);
    req.cpu_shares = Some(1500);
    req.labels.insert("team".into(), "core".into());
    req.environment.insert("GREETING".into(), "hello".into());
    let raw = c
        .raw(
            hyper::Method::POST,
            "/api/containers",
            Some(serde_json::to_vec(&req).unwrap()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 202);
    let body = raw.value();
    // The seed's 202 body.
    assert_eq!(body["id"], body["db_id"]);
    assert!(uuid::Uuid::parse_str(body["db_id"].as_str().unwrap()).is_ok());
    assert_eq!(body["user_id"], json!(user.id));
    assert_eq!(body["name"], "dev-environment");
    assert_eq!(body["image"], "ubuntu:24.04");
    assert_eq!(body["role"], "node");
    assert_eq!(body["status"], "creating");
    assert_eq!(body["async"], true);
    assert_eq!(
        body["message"],
        "Container is being created. This may take a moment if the image needs to be pulled."
    );
    assert_eq!(
        body["resources"],
        json!({"memory_mb":2048,"cpu_shares":1500,"disk_mb":10240})
    );
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    // Free tier: a 50 h session.
    let limit = body["session_limit_seconds"].as_i64().unwrap();
    assert!((50 * 3600 - 5..=50 * 3600).contains(&limit), "{limit}");
    assert!(body["expires_at"].is_string());
    let db_id = body["db_id"].as_str().unwrap().to_string();

    // Progress in order, non-decreasing, with seq and timestamps.
    let all = ev
        .until(
            30,
            |e| matches!(&e.body, EventBody::ContainerProgress(p) if p.complete),
        )
        .await;
    let mut last_seq = 0;
    for e in &all {
        assert!(e.seq > last_seq, "seq increases: {all:#?}");
        last_seq = e.seq;
        assert!(time::OffsetDateTime::parse(
            &e.timestamp,
            &time::format_description::well_known::Rfc3339
        )
        .is_ok());
    }
    let progress: Vec<&api::Progress> = all
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::ContainerProgress(p) => Some(p),
            _ => None,
        })
        .collect();
    let mut stages: Vec<Stage> = progress.iter().map(|p| p.stage).collect();
    // `configuring` is announced once, then once per set-up step (node on busybox: the probe,
    // the startup files and three tools, which fail without a package manager).
    let steps = stages.iter().filter(|s| **s == Stage::Configuring).count();
    assert_eq!(steps, 1 + 5, "{progress:#?}");
    stages.dedup();
    assert_eq!(
        stages,
        vec![
            Stage::Validating,
            Stage::Creating,
            Stage::Starting,
            Stage::Configuring,
            Stage::Ready
        ],
        "a local image needs no pull"
    );
    assert!(progress.windows(2).all(|w| w[0].progress <= w[1].progress));
    let mut percents: Vec<u8> = progress.iter().map(|p| p.progress).collect();
    percents.dedup();
    assert_eq!(percents, vec![10, 50, 70, 85, 100]);
    let ready = progress.last().unwrap();
    assert!(ready.complete);
    let short = ready
        .container_id
        .clone()
        .expect("ready carries container_id");
    assert_eq!(short.len(), 12);
    let obj = ready
        .container
        .as_ref()
        .expect("ready carries the container");
    assert_eq!(obj.status, ContainerStatus::Running);
    assert!(all
        .iter()
        .any(|e| matches!(&e.body, EventBody::ContainerCreated(c) if c.db_id == db_id)));

    // GET by db_id, short id, full id and name: one container.
    let by_db = c.get_container(&db_id).await.unwrap();
    assert_eq!(by_db.id, short);
    assert_eq!(by_db.status, ContainerStatus::Running);
    assert_eq!(by_db.labels.get("team").map(String::as_str), Some("core"));
    assert!(
        !by_db.disk_enforced,
        "this host cannot enforce storage-opt size"
    );
    assert!(by_db.idle_seconds >= 0.0);
    assert_eq!(c.get_container(&short).await.unwrap().db_id, db_id);
    assert_eq!(
        c.get_container("dev-environment").await.unwrap().db_id,
        db_id
    );

    // The real Docker container.
    let full = docker::inspect("container", &short).expect("docker container exists");
    assert_eq!(
        c.get_container(full["Id"].as_str().unwrap())
            .await
            .unwrap()
            .db_id,
        db_id
    );
    let hc = &full["HostConfig"];
    assert_eq!(hc["Memory"], json!(2048i64 << 20));
    assert_eq!(hc["MemorySwap"], json!(2048i64 << 20), "swap = memory");
    let ncpu = std::thread::available_parallelism().unwrap().get() as i64;
    assert_eq!(hc["NanoCpus"], json!(1500.min(ncpu * 1000) * 1_000_000));
    assert_eq!(hc["PidsLimit"], json!(1024));
    assert_eq!(hc["CapDrop"], json!(["ALL"]));
    assert!(hc["SecurityOpt"]
        .as_array()
        .unwrap()
        .contains(&json!("no-new-privileges:true")));
    assert_eq!(hc["Privileged"], false);
    assert_eq!(hc["NetworkMode"], "none");
    let labels = &full["Config"]["Labels"];
    assert_eq!(labels["rexec.managed"], "true");
    assert_eq!(labels["rexec.db_id"], json!(db_id));
    assert_eq!(labels["rexec.user_id"], json!(user.id));
    assert!(full["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&json!("GREETING=hello")));
    let mounts = full["Mounts"].as_array().unwrap();
    let home = mounts
        .iter()
        .find(|m| m["Destination"] == "/home/user")
        .expect("home volume");
    assert_eq!(home["Type"], "volume");
    let volume = home["Name"].as_str().unwrap().to_string();
    let vol = docker::inspect("volume", &volume).unwrap();
    assert_eq!(vol["Labels"]["rexec.db_id"], json!(db_id));

    // Delete removes the container and its volume, with a container_deleted event.
    let del = c.delete("dev-environment").await.unwrap();
    assert_eq!(
        (del.message.as_str(), del.id.as_str(), del.db_id.as_str()),
        ("container deleted", short.as_str(), db_id.as_str())
    );
    assert!(docker::inspect("container", &short).is_none());
    assert!(docker::inspect("volume", &volume).is_none());
    let deleted = ev
        .until(10, |e| matches!(e.body, EventBody::ContainerDeleted(_)))
        .await;
    match &deleted.last().unwrap().body {
        EventBody::ContainerDeleted(x) => {
            assert_eq!(
                (x.id.as_str(), x.db_id.as_str(), x.reason),
                (short.as_str(), db_id.as_str(), api::DeleteReason::User)
            );
        }
        _ => unreachable!(),
    }
    let r = c
        .raw(
            hyper::Method::GET,
            &format!("/api/containers/{db_id}"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()),
        (
            404,
            json!({"error":"container not found","code":"container_not_found"})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn defaults_and_clamping_per_tier() {
    let d = Daemon::start_with("[tiers.guest]\ncontainers = 3\n");
    d.ready().await;
    let cases = [
        ("guest", None, (512, 500, 2048), true),
        ("guest", Some((100, 100, 100)), (256, 250, 1024), true),
        ("free", None, (2048, 2000, 10240), true),
        (
            "free",
            Some((99_999, 99_999, 99_999)),
            (4096, 4000, 16384),
            true,
        ),
        ("pro", None, (4096, 4000, 20480), false),
        (
            "pro",
            Some((99_999, 99_999, 999_999)),
            (8192, 8000, 51200),
            false,
        ),
        ("enterprise", None, (8192, 8000, 51200), false),
    ];
    for (i, (tier, asked, expect, expires)) in cases.into_iter().enumerate() {
        let (_, c) = d.user(&format!("u{i}"), tier).await;
        let mut req = create_req("alpine", None);
        if let Some((m, cpu, disk)) = asked {
            req.memory_mb = Some(m);
            req.cpu_shares = Some(cpu);
            req.disk_mb = Some(disk);
        }
        let r = c.create_container(&req).await.unwrap();
        let got = (
            r.resources.memory_mb,
            r.resources.cpu_shares,
            r.resources.disk_mb,
        );
        assert_eq!(got, expect, "{tier} {asked:?}");
        assert_eq!(r.expires_at.is_some(), expires, "{tier}");
        assert_eq!(r.session_limit_seconds.is_some(), expires, "{tier}");
        let running = wait_running(&c, &r.db_id).await;
        let hc = docker::inspect("container", &running.id).unwrap()["HostConfig"].clone();
        assert_eq!(hc["Memory"], json!((expect.0 as i64) << 20), "{tier}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn users_never_see_each_others_containers() {
    let d = Daemon::start();
    d.ready().await;
    let (_, a) = d.user("alice", "free").await;
    let (_, b) = d.user("bob", "free").await;
    let mut bob_events = Events::new(b.events(None).await.unwrap());
    let made = a
        .create_container(&create_req("alpine", Some("secret")))
        .await
        .unwrap();
    let running = wait_running(&a, &made.db_id).await;
    for key in [made.db_id.as_str(), running.id.as_str(), "secret"] {
        for (m, p) in [
            (hyper::Method::GET, format!("/api/containers/{key}")),
            (hyper::Method::POST, format!("/api/containers/{key}/stop")),
            (hyper::Method::POST, format!("/api/containers/{key}/start")),
            (hyper::Method::DELETE, format!("/api/containers/{key}")),
            (
                hyper::Method::PATCH,
                format!("/api/containers/{key}/settings"),
            ),
        ] {
            let r = b
                .raw(m.clone(), &p, Some(b"{}".to_vec()), &[])
                .await
                .unwrap();
            assert_eq!(
                (r.status.as_u16(), r.value()["error"].clone()),
                (404, json!("container not found")),
                "{m} {p}"
            );
        }
    }
    assert_eq!(b.list_containers().await.unwrap().count, 0);
    assert!(
        bob_events.next(1).await.is_none(),
        "bob receives none of alice's events"
    );
    assert_eq!(
        a.get_container("secret").await.unwrap().status,
        ContainerStatus::Running
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_start_recreate_and_settings() {
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("sam", "pro").await;
    let made = c
        .create_container(&create_req("alpine", Some("box")))
        .await
        .unwrap();
    let running = wait_running(&c, &made.db_id).await;

    let r = c.start("box").await.unwrap();
    assert_eq!(
        (r.message.as_str(), r.status),
        ("container already running", ContainerStatus::Running)
    );
    let r = c.stop("box").await.unwrap();
    assert_eq!(
        (r.message.as_str(), r.status, r.id.as_str()),
        (
            "container stopped",
            ContainerStatus::Stopped,
            running.id.as_str()
        )
    );
    assert_eq!(
        docker::inspect("container", &running.id).unwrap()["State"]["Running"],
        false
    );
    let r = c.stop("box").await.unwrap();
    assert_eq!(
        (r.message.as_str(), r.status),
        ("container stopped", ContainerStatus::Stopped),
        "stop is idempotent"
    );
    assert_eq!(
        c.get_container("box").await.unwrap().status,
        ContainerStatus::Stopped
    );
    let r = c.start("box").await.unwrap();
    assert_eq!(
        (r.message.as_str(), r.status),
        ("container started", ContainerStatus::Running)
    );

    // Write into the volume, then lose the Docker container behind rexecd's back.
    let (ok, out) = docker::run(&[
        "exec",
        &running.id,
        "sh",
        "-c",
        "echo kept > /home/user/file",
    ]);
    assert!(ok, "{out}");
    let mut ev = Events::new(c.events(None).await.unwrap());
    let (ok, out) = docker::run(&["rm", "-f", &running.id]);
    assert!(ok, "{out}");
    // The Docker event stream tells rexecd: the record shows stopped.
    let updated = ev
        .until(10, |e| matches!(&e.body, EventBody::ContainerUpdated(x) if x.status == ContainerStatus::Stopped))
        .await;
    assert!(!updated.is_empty());
    assert_eq!(
        c.get_container("box").await.unwrap().status,
        ContainerStatus::Stopped
    );

    let r = c.start("box").await.unwrap();
    assert_eq!(r.message, "container recreated and started");
    assert_eq!(r.recreated, Some(true));
    assert_eq!(r.volume_kept, Some(true));
    assert_eq!(r.old_id.as_deref(), Some(running.id.as_str()));
    assert_ne!(r.id, running.id);
    let (ok, out) = docker::run(&["exec", &r.id, "cat", "/home/user/file"]);
    assert!(ok && out.trim() == "kept", "the volume survived: {out}");
    let now = c.get_container("box").await.unwrap();
    assert_eq!(
        (now.id.as_str(), now.status),
        (r.id.as_str(), ContainerStatus::Running)
    );

    // A container stopped outside rexecd shows stopped (container_updated).
    let (ok, out) = docker::run(&["stop", "-t", "1", &r.id]);
    assert!(ok, "{out}");
    ev.until(10, |e| matches!(&e.body, EventBody::ContainerUpdated(x) if x.id == r.id && x.status == ContainerStatus::Stopped))
        .await;
    let (ok, _) = docker::run(&["start", &r.id]);
    assert!(ok);
    ev.until(10, |e| matches!(&e.body, EventBody::ContainerUpdated(x) if x.id == r.id && x.status == ContainerStatus::Running))
        .await;

    // Settings: omitted fields keep their values; memory and CPU apply live.
    let s = c
        .update_settings(
            "box",
            &api::SettingsRequest {
                memory_mb: Some(1024),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (
            s.resources.memory_mb,
            s.resources.cpu_shares,
            s.resources.disk_mb
        ),
        (1024, 4000, 20480)
    );
    assert_eq!(
        docker::inspect("container", &r.id).unwrap()["HostConfig"]["Memory"],
        json!(1024i64 << 20)
    );
    let s = c
        .update_settings(
            "box",
            &api::SettingsRequest {
                name: Some("renamed".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!((s.name.as_str(), s.resources.memory_mb), ("renamed", 1024));
    c.create_container(&create_req("alpine", Some("other")))
        .await
        .unwrap();
    let err = c
        .update_settings(
            "renamed",
            &api::SettingsRequest {
                name: Some("other".into()),
                memory_mb: Some(512),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    // The refused change touched neither the record nor Docker.
    assert_eq!(
        c.get_container("renamed")
            .await
            .unwrap()
            .resources
            .memory_mb,
        1024
    );
    assert_eq!(
        docker::inspect("container", &r.id).unwrap()["HostConfig"]["Memory"],
        json!(1024i64 << 20)
    );
}
