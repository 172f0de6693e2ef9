//! `POST /api/containers/:id/exec` in real containers.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rexec::api::ExecRequest;
use serde_json::json;

fn sh(command: &str) -> ExecRequest {
    ExecRequest {
        command: Some(command.into()),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_runs_commands_and_reports_what_happened() {
    let common::WithBox { d: _d, c, .. } = common::with_box("").await;

    // Use updates last_used_at (at most every 5 s), so idle time restarts.
    tokio::time::sleep(Duration::from_millis(5_200)).await;
    let idle = c.get_container("box").await.unwrap().idle_seconds;
    assert!(idle >= 5.0, "{idle}");
    c.exec("box", &sh("true")).await.unwrap();
    let after = c.get_container("box").await.unwrap();
    assert!(after.idle_seconds < 2.0, "{after:?}");
    assert_ne!(after.last_used_at, after.created_at);
    // Exit codes, stdout apart from stderr.
    let r = c
        .exec("box", &sh("echo out; echo err >&2; exit 3"))
        .await
        .unwrap();
    assert_eq!(
        (
            r.exit_code,
            r.stdout.as_str(),
            r.stderr.as_str(),
            r.timed_out
        ),
        (3, "out\n", "err\n", false)
    );
    // argv form, no shell involved.
    let argv = ExecRequest {
        cmd: Some(vec!["echo".into(), "a  b".into(), "$HOME".into()]),
        ..Default::default()
    };
    let r = c.exec("box", &argv).await.unwrap();
    assert_eq!((r.exit_code, r.stdout.as_str()), (0, "a  b $HOME\n"));
    // env and workdir; the default workdir is /home/user.
    let r = c.exec("box", &sh("pwd; echo $HOME")).await.unwrap();
    assert_eq!(r.stdout, "/home/user\n/home/user\n");
    let with_env = ExecRequest {
        command: Some("echo $GREETING; pwd".into()),
        env: Some(BTreeMap::from([(
            "GREETING".to_string(),
            "hi there".to_string(),
        )])),
        workdir: Some("/tmp".into()),
        ..Default::default()
    };
    let r = c.exec("box", &with_env).await.unwrap();
    assert_eq!(r.stdout, "hi there\n/tmp\n");
    // stdin
    let with_stdin = ExecRequest {
        command: Some("tr a-z A-Z".into()),
        stdin: Some("shout\n".into()),
        ..Default::default()
    };
    assert_eq!(c.exec("box", &with_stdin).await.unwrap().stdout, "SHOUT\n");
    // A timeout kills the process (and its children) and says so.
    let slow = ExecRequest {
        command: Some("echo started; sleep 30; echo never".into()),
        timeout_seconds: Some(1),
        ..Default::default()
    };
    let t = Instant::now();
    let r = c.exec("box", &slow).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(r.timed_out);
    assert_eq!(r.stdout, "started\n");
    assert_ne!(r.exit_code, 0);
    let docker_id = c.get_container("box").await.unwrap().id;
    let (ok, ps) = common::docker::run(&["exec", &docker_id, "ps"]);
    assert!(
        ok && !ps.contains("sleep 30"),
        "the timed-out process is gone: {ps}"
    );
    // Output over the cap is truncated and says so.
    let big = c
        .exec(
            "box",
            &sh("head -c 3000000 /dev/zero | tr '\\0' x; echo tail >&2"),
        )
        .await
        .unwrap();
    assert_eq!(big.stdout.len(), 1 << 20);
    assert!(big.stdout_truncated && !big.stderr_truncated);
    assert_eq!((big.stderr.as_str(), big.exit_code), ("tail\n", 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_errors() {
    let common::WithBox { d, c, .. } = common::with_box("").await;
    let post = |body: &'static str| {
        let c = &c;
        async move {
            let r = c
                .raw(
                    hyper::Method::POST,
                    "/api/containers/box/exec",
                    Some(body.as_bytes().to_vec()),
                    &[],
                )
                .await
                .unwrap();
            (r.status.as_u16(), r.value())
        }
    };
    for (body, error) in [
        ("{}", "cmd or command is required"),
        (r#"{"cmd":[]}"#, "cmd or command is required"),
        (
            r#"{"command":"true","timeout_seconds":0}"#,
            "timeout_seconds must be 1-3600",
        ),
        (
            r#"{"command":"true","env":{"A=B":"x"}}"#,
            "invalid environment variable name \"A=B\"",
        ),
    ] {
        let (s, v) = post(body).await;
        assert_eq!((s, v["error"].clone()), (400, json!(error)), "{body}");
    }
    c.stop("box").await.unwrap();
    let (s, v) = post(r#"{"command":"true"}"#).await;
    assert_eq!(
        (s, v),
        (
            400,
            json!({"error":"container is not running","code":"container_stopped","status":"stopped"})
        )
    );
    let (_, other) = d.user("bob", "free").await;
    let r = other
        .raw(
            hyper::Method::POST,
            "/api/containers/box/exec",
            Some(br#"{"command":"id"}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
}
