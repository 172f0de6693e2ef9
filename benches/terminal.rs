//! Issue 3's terminal benchmarks, each against Docker in the same run:
//!
//! 1. bulk output through the terminal WebSocket (binary framing) vs the same output read
//!    straight from Docker through a TTY (`docker exec -t C sh -c 'stty raw -echo; cat F'`);
//! 2. keystroke-to-echo round trip vs a direct Docker TTY attach (the exec API, raw);
//! 3. terminal open (upgrade to first prompt byte) vs `docker exec -t C true`;
//! 4. daemon memory per idle terminal session, 200 sessions.
//!
//! Run: `cargo bench --bench terminal` (after scripts/test-env.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{create_req, Daemon};
use futures_util::{SinkExt, StreamExt};
use rexec::client::{Client, EventSocket};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

const BIG: usize = 64 * 1024 * 1024;
const RUNS: usize = 5;
const KEYS: usize = 200;
const SESSIONS: usize = 200;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

async fn open(c: &Client, path: &str) -> (EventSocket, Duration) {
    let t = Instant::now();
    let (mut ws, _) = c
        .websocket(path, &[("Sec-WebSocket-Protocol", "rexec.binary")])
        .await
        .unwrap();
    loop {
        match ws.next().await.unwrap().unwrap() {
            Message::Binary(_) => return (ws, t.elapsed()),
            _ => continue,
        }
    }
}

/// Reads binary frames until `marker`; returns the bytes read.
async fn read_until(ws: &mut EventSocket, marker: &[u8]) -> usize {
    let mut n = 0;
    let mut tail: Vec<u8> = Vec::new();
    loop {
        if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
            n += b.len();
            tail.extend_from_slice(&b);
            if tail.windows(marker.len()).any(|w| w == marker) {
                return n;
            }
            let keep = tail.len().saturating_sub(marker.len());
            tail.drain(..keep);
        }
    }
}

/// A TTY exec attached straight to Docker's API (the baseline for keystrokes).
async fn docker_tty(container: &str) -> tokio::net::UnixStream {
    let out = Command::new("curl")
        .args(["-s", "--unix-socket", "/var/run/docker.sock", "-H", "Content-Type: application/json", "-d"])
        .arg(r#"{"AttachStdin":true,"AttachStdout":true,"AttachStderr":true,"Tty":true,"Cmd":["sh"]}"#)
        .arg(format!("http://localhost/v1.41/containers/{container}/exec"))
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v["Id"].as_str().unwrap().to_string();
    let mut s = tokio::net::UnixStream::connect("/var/run/docker.sock")
        .await
        .unwrap();
    let body = r#"{"Detach":false,"Tty":true}"#;
    let req = format!(
        "POST /v1.41/exec/{id}/start HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    s
}

#[tokio::main]
async fn main() {
    let d = Daemon::start_with("[log]\nlevel = \"warn\"\n[tiers.pro]\ncontainers = 10\n");
    d.ready().await;
    let c = d.client();
    let made = c
        .create_container(&create_req("alpine", Some("bench")))
        .await
        .unwrap();
    let running = common::wait_running(&c, &made.db_id).await;
    let id = running.id.clone();
    let (ok, out) = common::docker::run(&[
        "exec",
        &id,
        "sh",
        "-c",
        &format!("head -c {BIG} /dev/urandom > /tmp/big"),
    ]);
    assert!(ok, "{out}");

    // 1. Bulk output.
    let (mut rexec_mbs, mut docker_mbs) = (Vec::new(), Vec::new());
    for i in 0..RUNS {
        let t = Instant::now();
        let st = Command::new("docker")
            .args([
                "exec",
                "-t",
                &id,
                "sh",
                "-c",
                "stty raw -echo; cat /tmp/big",
            ])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        docker_mbs.push(BIG as f64 / 1e6 / t.elapsed().as_secs_f64());
        let (mut ws, _) = open(&c, &format!("/ws/terminal/bench?id=bulk{i}")).await;
        let t = Instant::now();
        // A marker random bytes will not contain; its first byte in octal so that the echoed
        // command line does not contain it either.
        ws.send(Message::binary(
            b"stty raw -echo; cat /tmp/big; printf '\\122XEND7F3A9C'\n".to_vec(),
        ))
        .await
        .unwrap();
        let n = read_until(&mut ws, b"RXEND7F3A9C").await;
        assert!(n >= BIG);
        rexec_mbs.push(BIG as f64 / 1e6 / t.elapsed().as_secs_f64());
    }

    // 2. Keystroke round trip, cooked mode with echo.
    let (mut ws, _) = open(&c, "/ws/terminal/bench?id=keys").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut rexec_rtt = Vec::new();
    for _ in 0..KEYS {
        let t = Instant::now();
        ws.send(Message::binary(b"a".to_vec())).await.unwrap();
        loop {
            if let Message::Binary(b) = ws.next().await.unwrap().unwrap() {
                if b.contains(&b'a') {
                    break;
                }
            }
        }
        rexec_rtt.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let mut raw = docker_tty(&id).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut drain = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_millis(200), raw.read(&mut drain)).await;
    let mut docker_rtt = Vec::new();
    for _ in 0..KEYS {
        let t = Instant::now();
        raw.write_all(b"a").await.unwrap();
        loop {
            let n = raw.read(&mut drain).await.unwrap();
            if drain[..n].contains(&b'a') {
                break;
            }
        }
        docker_rtt.push(t.elapsed().as_secs_f64() * 1e6);
    }

    // 3. Open: upgrade to first prompt byte vs `docker exec -t C true`.
    let (mut rexec_open, mut docker_open) = (Vec::new(), Vec::new());
    for i in 0..10 {
        let t = Instant::now();
        let st = Command::new("docker")
            .args(["exec", "-t", &id, "true"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        docker_open.push(t.elapsed().as_secs_f64() * 1000.0);
        let (_ws, took) = open(&c, &format!("/ws/terminal/bench?id=open{i}")).await;
        rexec_open.push(took.as_secs_f64() * 1000.0);
    }

    // 4. 200 idle sessions.
    let before = rss_kb(d.pid());
    let mut held = Vec::new();
    for i in 0..SESSIONS {
        held.push(open(&c, &format!("/ws/terminal/bench?id=idle{i}")).await.0);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let per = (rss_kb(d.pid()).saturating_sub(before)) as f64 / SESSIONS as f64;
    drop(held);

    let (r, dk) = (median(rexec_mbs), median(docker_mbs));
    println!("| measurement | rexecd | Docker baseline | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!("| bulk TTY output, 64 MiB, binary framing (median of {RUNS}) | {r:.1} MB/s | `docker exec -t` {dk:.1} MB/s | {:.2}x | >= 0.8x |", r / dk);
    let (r, dk) = (median(rexec_rtt), median(docker_rtt));
    println!("| keystroke to echo, median of {KEYS} | {r:.0} µs | direct Docker TTY attach {dk:.0} µs | +{:.0} µs | <= +1000 µs |", r - dk);
    let (r, dk) = (median(rexec_open), median(docker_open));
    println!("| terminal open to first prompt byte (median of 10) | {r:.1} ms | `docker exec -t C true` {dk:.1} ms | {:.2}x | <= 1.3x |", r / dk);
    println!(
        "| daemon memory per idle session, {SESSIONS} sessions | {per:.0} KiB | | | < 256 KiB |"
    );
}
