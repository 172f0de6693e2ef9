//! The terminal WebSocket against real containers: both framings, resize, exit, reconnect.

mod common;

use std::time::Duration;

use common::term::Term;
use common::{create_req, wait_running, Daemon};
use futures_util::StreamExt;
use rexec::client::{Client, ClientError, EventSocket};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

async fn setup(extra: &str) -> (Daemon, Client, String) {
    let b = common::with_box(extra).await;
    (b.d, b.c, b.running.db_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn json_framing_runs_commands_resizes_and_exits() {
    let (_d, c, _) = setup("").await;
    let mut t = Term::open(&c, "/ws/terminal/box?cols=100&rows=30", false).await;
    assert!(t
        .controls
        .iter()
        .any(|c| c["type"] == "connected" && c["data"] == "default"));
    // The initial size was set before the shell started.
    t.send("stty size; echo TERM=$TERM; pwd\n").await;
    t.expect("30 100").await;
    t.expect("TERM=xterm-256color").await;
    t.expect("/home/user").await;
    // A character split across two reads arrives whole.
    t.send("printf '\\342'; sleep 0.3; printf '\\202\\254 done\\n'\n")
        .await;
    t.expect("€ done").await;
    // Resize at any time.
    t.raw(Message::text(
        json!({"type":"resize","cols":132,"rows":43}).to_string(),
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    t.send("stty size\n").await;
    t.expect("43 132").await;
    // Non-JSON text and binary frames are input too; ping gets pong.
    t.raw(Message::text("echo from-text\n")).await;
    t.expect("from-text").await;
    t.raw(Message::binary(b"echo from-binary\n".to_vec())).await;
    t.expect("from-binary").await;
    t.raw(Message::text(r#"{"type":"ping"}"#)).await;
    t.until(10, |t| t.controls.iter().any(|c| c["type"] == "pong"))
        .await;
    // exit with the shell's code, then a normal close.
    t.send("exit 7\n").await;
    t.until(20, |t| t.exit.is_some()).await;
    assert_eq!(t.exit, Some(7));
    let next = tokio::time::timeout(Duration::from_secs(5), t.ws.next())
        .await
        .unwrap();
    assert!(
        matches!(next, Some(Ok(Message::Close(_))) | None),
        "{next:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_framing_is_byte_exact() {
    let (_d, c, _) = setup("").await;
    let id = c.get_container("box").await.unwrap().id;
    let (ok, out) = common::docker::run(&[
        "exec", &id, "sh", "-c",
        "i=0; while [ $i -lt 256 ]; do printf \"\\\\$(printf %o $i)\"; i=$((i+1)); done > /tmp/all.bin",
    ]);
    assert!(ok, "{out}");
    let mut t = Term::open(&c, "/ws/terminal/box", true).await;
    // Raw mode so the TTY passes every byte value through untouched; the markers are written
    // in octal so that the echoed command line does not contain them.
    t.raw(Message::binary(
        b"stty raw -echo; printf '\\102EGIN'; cat /tmp/all.bin; printf '\\105ND'\n".to_vec(),
    ))
    .await;
    t.until(20, |t| {
        t.seen
            .windows(5)
            .position(|w| w == b"BEGIN")
            .is_some_and(|b| t.seen[b..].windows(3).any(|w| w == b"END"))
    })
    .await;
    let start = t.seen.windows(5).position(|w| w == b"BEGIN").unwrap() + 5;
    let end = t.seen.windows(3).rposition(|w| w == b"END").unwrap();
    assert_eq!(
        &t.seen[start..end],
        (0..=255u8).collect::<Vec<_>>().as_slice()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn reconnect_within_grace_finds_the_same_shell_and_after_it_a_new_one() {
    let (_d, c, _) = setup("[terminal]\nreconnect_grace_seconds = 2\n").await;
    let mut t = Term::open(&c, "/ws/terminal/box?id=work", false).await;
    t.send("export MARK=kept-$$; echo marker-one\n").await;
    t.expect("marker-one").await;
    drop(t);
    // Within the grace period: same shell, and the tail is replayed first.
    let mut t = Term::open(&c, "/ws/terminal/box?id=work", false).await;
    t.expect("marker-one").await;
    // Two viewers of one session see the same output.
    let mut viewer = Term::open(&c, "/ws/terminal/box?id=work", false).await;
    t.send("echo MARK=$MARK\n").await;
    t.expect("MARK=kept-").await;
    viewer.expect("MARK=kept-").await;
    drop(viewer);
    drop(t);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // After it: a new shell, without the variable.
    let mut t = Term::open(&c, "/ws/terminal/box?id=work", false).await;
    t.send("echo MARK=[$MARK]\n").await;
    t.expect("MARK=[]").await;
    assert!(
        !t.text().contains("marker-one"),
        "no replay from the old shell: {:?}",
        t.text()
    );
    // newSession=true also starts afresh.
    t.send("export MARK=again\n").await;
    drop(t);
    let mut t = Term::open(&c, "/ws/terminal/box?id=work&newSession=true", false).await;
    t.send("echo MARK=[$MARK]\n").await;
    t.expect("MARK=[]").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pre_upgrade_errors_are_json() {
    let (d, c, _) = setup("").await;
    let expect = |r: Result<_, ClientError>, status: u16| match r {
        Err(ClientError::Api { status: s, body }) => {
            assert_eq!(s.as_u16(), status, "{body:?}");
            *body
        }
        Ok(_) => panic!("expected {status}"),
        Err(e) => panic!("expected {status}, got {e}"),
    };
    let anon = d.tcp_client(None);
    let b = expect(
        anon.websocket("/ws/terminal/box", &[]).await.map(|_| ()),
        401,
    );
    assert_eq!(b.error, "unauthorized");
    let (_, bob) = d.user("bob", "free").await;
    let b = expect(
        bob.websocket("/ws/terminal/box", &[]).await.map(|_| ()),
        404,
    );
    assert_eq!(b.error, "container not found");
    c.stop("box").await.unwrap();
    let b = expect(c.websocket("/ws/terminal/box", &[]).await.map(|_| ()), 400);
    assert_eq!(
        (b.error.as_str(), b.code.as_str(), b.status.as_deref()),
        (
            "container is not running",
            "container_stopped",
            Some("stopped")
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_creating_container_accepts_the_terminal_once_it_can() {
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let made = c
        .create_container(&create_req("alpine", Some("soon")))
        .await
        .unwrap();
    let mut t = Term::open(&c, &format!("/ws/terminal/{}", made.db_id), false).await;
    let status = t
        .controls
        .iter()
        .position(|c| c["type"] == "container_status");
    let starting = t
        .controls
        .iter()
        .position(|c| c["type"] == "shell_starting")
        .unwrap();
    if let Some(status) = status {
        assert_eq!(t.controls[status]["data"], "creating");
        assert!(
            status < starting,
            "the status comes while waiting: {:?}",
            t.controls
        );
    }
    t.send("echo up\n").await;
    t.expect("up").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_clean_stop_ends_the_shells() {
    let (mut d, c, _) = setup("").await;
    let id = c.get_container("box").await.unwrap().id;
    let mut t = Term::open(&c, "/ws/terminal/box", false).await;
    t.send("sleep 7777\n").await;
    common::eventually(10, "the shell's sleep running", || async {
        let (_, ps) = common::docker::run(&["exec", &id, "ps"]);
        ps.contains("sleep 7777").then_some(())
    })
    .await;
    d.stop();
    assert!(
        !d.log().contains("did not finish"),
        "a clean, prompt shutdown"
    );
    let (_, ps) = common::docker::run(&["exec", &id, "ps"]);
    assert!(!ps.contains("sleep 7777"), "{ps}");
}

fn rss_kb(pid: u32) -> u64 {
    common::proc_kb(pid, "VmRSS")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_to_a_slow_client_is_slowed_not_buffered_or_cut() {
    let (d, c, _) = setup("").await;
    let id = c.get_container("box").await.unwrap().id;
    let mut t = Term::open(&c, "/ws/terminal/box", true).await;
    t.raw(Message::binary(
        b"stty raw -echo; head -c 40000000 /dev/zero | tr '\\0' x; printf '\\104ONE'\n".to_vec(),
    ))
    .await;
    let before = rss_kb(d.pid());
    // Do not read for a while: the shell must be held back, not buffered for.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, ps) = common::docker::run(&["exec", &id, "ps"]);
    // (busybox ps shows the head applet as `{head}`.)
    assert!(
        ps.contains("{head}") && ps.contains("tr "),
        "the flood is held back by the slow reader: {ps}"
    );
    let grown = rss_kb(d.pid()).saturating_sub(before);
    assert!(
        grown < 16 * 1024,
        "the daemon buffered {grown} KiB for a slow client"
    );
    // Then everything arrives, in order, nothing cut.
    // (The prompt follows DONE, so look near the end.)
    t.until(120, |t| {
        t.seen[t.seen.len().saturating_sub(200)..]
            .windows(4)
            .any(|w| w == b"DONE")
    })
    .await;
    // The flood starts at the first long run of x (the echoed command line has one x too).
    let start = t
        .seen
        .windows(1000)
        .position(|w| w.iter().all(|b| *b == b'x'))
        .unwrap();
    let xs = t.seen[start..].iter().take_while(|b| **b == b'x').count();
    assert_eq!(xs, 40_000_000);
}

/// The debootstrap image scripts/test-env.sh builds (bash, tmux).
const DEBIAN_IMAGE: &str = "rexec-test/debian:bookworm";

#[tokio::test(flavor = "multi_thread")]
async fn use_tmux_keeps_the_session_past_the_grace_period() {
    let (ok, _) = common::docker::run(&["image", "inspect", DEBIAN_IMAGE]);
    assert!(
        ok,
        "image {DEBIAN_IMAGE} missing: run `sudo scripts/test-env.sh`"
    );
    let d = Daemon::start_with("[terminal]\nreconnect_grace_seconds = 1\n");
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let mut req = common::custom_req(DEBIAN_IMAGE, Some("deb"));
    req.shell = Some(rexec::api::ShellOptions {
        use_tmux: Some(true),
        ..Default::default()
    });
    let made = c.create_container(&req).await.unwrap();
    wait_running(&c, &made.db_id).await;
    let mut t = Term::open(&c, "/ws/terminal/deb?id=t", false).await;
    t.send("export MARK=tmux-kept; tmux display -p 'S=#S'\r")
        .await;
    t.expect("S=main").await;
    drop(t);
    // Past the grace period the attached client is gone, but the tmux session is not.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut t = Term::open(&c, "/ws/terminal/deb?id=t", false).await;
    t.send("echo MARK=$MARK\r").await;
    t.expect("MARK=tmux-kept").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_pings_idle_terminals_and_event_streams() {
    let (_d, c, _) = setup("").await;
    let mut t = Term::open(&c, "/ws/terminal/box", false).await;
    let mut events = c.events(None).await.unwrap();
    let (a, b) = tokio::join!(pinged(&mut t.ws), pinged(&mut events));
    assert!(a, "terminal pinged");
    assert!(b, "events pinged");
}

/// Whether a WebSocket ping arrives within 35 s (the server pings every 25 s).
async fn pinged(ws: &mut EventSocket) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(35);
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => return true,
            Ok(Some(Ok(_))) => continue,
            _ => return false,
        }
    }
}
