//! The container API's benchmarks, each against Docker itself in the same run on the same machine:
//!
//! 1. `POST /api/containers` to the `ready` event (barebone, local image) vs `docker run -d`;
//! 2. the 202 latency itself (p50/p99), and what set-up adds to (1): no role (probe and
//!    startup files) and the python role with every shell option on the debootstrap image;
//! 3. `GET /api/containers/:id` throughput over the Unix socket vs dockerd's own
//!    `GET /containers/{id}/json` over its socket, with the same client;
//! 4. the same over loopback TCP, plain and TLS (keep-alive), and one request on a fresh
//!    connection (TLS handshake included) vs dockerd's `GET /_ping` on a fresh connection.
//!
//! Run: `cargo bench --bench core` (needs the engine and test image: scripts/test-env.sh).
//! Results go to stdout as a markdown table; docs/benchmarks.md records them.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::certs::Certs;
use common::events::Events;
use common::{create_req, Daemon};
use rexec::api::{self, EventBody, Stage};
use rexec::client::{Client, Endpoint};

const CREATE_RUNS: usize = 30;
const SETUP_RUNS: usize = 5;
const GET_CONCURRENCY: usize = 8;
const GET_REQUESTS: usize = 20_000;
const FRESH_CONNECTIONS: usize = 200;

fn percentile(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let idx = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[idx]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn docker_run_once(label: &str) -> Duration {
    let t = Instant::now();
    let out = Command::new("docker")
        .args([
            "run",
            "-d",
            "--network",
            "none",
            "--label",
            &format!("rexec.test={label}"),
            common::TEST_IMAGE,
            "sleep",
            "3600",
        ])
        .output()
        .unwrap();
    let took = t.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Command::new("docker")
        .args(["rm", "-f", &id])
        .output()
        .unwrap();
    took
}

fn barebone(i: usize) -> api::CreateContainerRequest {
    let mut req = create_req("alpine", Some(&format!("bench-{i}")));
    req.role = Some("barebone".into());
    req
}

/// The python role with every shell option, on the debootstrap image whose tools are present.
fn python_all(i: usize) -> api::CreateContainerRequest {
    let mut req = common::custom_req("rexec-test/debian:bookworm", Some(&format!("py-{i}")));
    req.role = Some("python".into());
    req.shell = Some(common::every_shell_option());
    req
}

async fn rexec_create_once(
    c: &Client,
    ev: &mut Events,
    req: api::CreateContainerRequest,
) -> (Duration, Duration) {
    let t = Instant::now();
    let made = c.create_container(&req).await.unwrap();
    let accepted = t.elapsed();
    loop {
        let e = ev.next(60).await.expect("ready in time");
        if let EventBody::ContainerProgress(p) = &e.body {
            if p.id == made.db_id && p.complete {
                assert_eq!(p.stage, Stage::Ready, "{p:?}");
                break;
            }
        }
    }
    let ready = t.elapsed();
    c.delete(&made.db_id).await.unwrap();
    (accepted, ready)
}

async fn throughput(client: Arc<Client>, path: String) -> f64 {
    // Warm up connections.
    for _ in 0..200 {
        let r = client
            .raw(hyper::Method::GET, &path, None, &[])
            .await
            .unwrap();
        assert!(
            r.status.is_success(),
            "{path}: {} {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
    }
    let t = Instant::now();
    let per_task = GET_REQUESTS / GET_CONCURRENCY;
    let mut tasks = Vec::new();
    for _ in 0..GET_CONCURRENCY {
        let client = client.clone();
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..per_task {
                let r = client
                    .raw(hyper::Method::GET, &path, None, &[])
                    .await
                    .unwrap();
                assert!(r.status.is_success());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (per_task * GET_CONCURRENCY) as f64 / t.elapsed().as_secs_f64()
}

/// Median time of one request, each on a new connection (a new client, so no pooled one).
async fn fresh_connection_ms(client: &Client, path: &str) -> f64 {
    let mut samples = Vec::new();
    for _ in 0..FRESH_CONNECTIONS {
        let fresh = client.with_token(None);
        let t = Instant::now();
        let r = fresh
            .raw(hyper::Method::GET, path, None, &[])
            .await
            .unwrap();
        samples.push(ms(t.elapsed()));
        assert!(r.status.is_success(), "{path}: {}", r.status);
    }
    percentile(&mut samples, 0.5)
}

#[tokio::main]
async fn main() {
    let d = Daemon::start_with("[log]\nlevel = \"warn\"\n[tiers.enterprise]\ncontainers = 100\n");
    d.ready().await;
    let (_, uc) = d.user("bench", "enterprise").await;
    let mut ev = Events::new(uc.events(None).await.unwrap());

    // 1 and 2, interleaved with the Docker baseline so both see the same machine state.
    let (mut docker_runs, mut ready, mut accepted) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..CREATE_RUNS {
        docker_runs.push(ms(docker_run_once(&d.label)));
        let (a, r) = rexec_create_once(&uc, &mut ev, barebone(i)).await;
        accepted.push(ms(a));
        ready.push(ms(r));
    }
    let docker_p50 = percentile(&mut docker_runs, 0.5);
    let ready_p50 = percentile(&mut ready, 0.5);
    let accepted_p50 = percentile(&mut accepted, 0.5);
    let accepted_p99 = percentile(&mut accepted, 0.99);

    // What set-up costs: no role (probe and startup files), and a full python environment.
    let (mut plain, mut python) = (Vec::new(), Vec::new());
    for i in 0..SETUP_RUNS {
        let req = create_req("alpine", Some(&format!("plain-{i}")));
        plain.push(ms(rexec_create_once(&uc, &mut ev, req).await.1));
        python.push(ms(rexec_create_once(&uc, &mut ev, python_all(i)).await.1));
    }
    let plain_p50 = percentile(&mut plain, 0.5);
    let python_p50 = percentile(&mut python, 0.5);

    // 3. GET throughput, same client code, both over Unix sockets.
    let root = d.client();
    let made = root
        .create_container(&create_req("alpine", Some("target")))
        .await
        .unwrap();
    let running = common::wait_running(&root, &made.db_id).await;
    let rexec_client = Arc::new(root.with_token(Some(d.token_for("root", None).await)));
    let docker_client = Arc::new(Client::unix("/var/run/docker.sock"));
    let rexec_rps = throughput(
        rexec_client.clone(),
        format!("/api/containers/{}", running.id),
    )
    .await;
    let docker_rps = throughput(
        docker_client.clone(),
        format!("/v1.41/containers/{}/json", running.id),
    )
    .await;
    let rexec_peer_rps = throughput(
        Arc::new(d.client()),
        format!("/api/containers/{}", running.id),
    )
    .await;

    // 4. TCP, plain and TLS, on a second daemon with a certificate.
    let plain_tcp = Arc::new(d.tcp_client(Some(&d.token_for("root", None).await)));
    let plain_rps = throughput(plain_tcp.clone(), format!("/api/containers/{}", running.id)).await;
    let certs = Certs::new();
    let t = Daemon::start_with_server(&certs.server_config());
    t.ready().await;
    let tls_root = Client::with_ca_file(
        Endpoint::Tcp(format!("https://{}", t.tcp)),
        Some(t.token_for("root", None).await),
        &certs.path("ca.pem"),
    )
    .unwrap();
    let tls_made = t
        .client()
        .create_container(&create_req("alpine", Some("target")))
        .await
        .unwrap();
    let tls_running = common::wait_running(&t.client(), &tls_made.db_id).await;
    let tls_rps = throughput(
        Arc::new(tls_root.with_token(Some(t.token_for("root", None).await))),
        format!("/api/containers/{}", tls_running.id),
    )
    .await;
    let docker_fresh = fresh_connection_ms(&docker_client, "/_ping").await;
    let plain_fresh = fresh_connection_ms(&plain_tcp, "/health").await;
    let tls_fresh = fresh_connection_ms(&tls_root, "/health").await;
    t.client().delete(&tls_made.db_id).await.unwrap();

    println!("| measurement | rexecd | Docker baseline | ratio | target |");
    println!("| --- | --- | --- | --- | --- |");
    println!(
        "| POST to `ready`, barebone, local image (median of {CREATE_RUNS}) | {ready_p50:.1} ms | `docker run -d` {docker_p50:.1} ms | {:.2}x | <= 1.25x |",
        ready_p50 / docker_p50
    );
    println!(
        "| POST to `ready`, no role (probe + startup files), busybox (median of {SETUP_RUNS}) | {plain_p50:.1} ms | `docker run -d` {docker_p50:.1} ms | {:.2}x | |",
        plain_p50 / docker_p50
    );
    println!(
        "| POST to `ready`, python role + every shell option, debootstrap image, tools present (median of {SETUP_RUNS}) | {python_p50:.1} ms | `docker run -d` {docker_p50:.1} ms | {:.2}x | |",
        python_p50 / docker_p50
    );
    println!("| 202 latency p50 / p99 ({CREATE_RUNS} creates) | {accepted_p50:.2} / {accepted_p99:.2} ms | | | p99 < 20 ms |");
    println!(
        "| `GET /api/containers/:id` over the Unix socket, {GET_CONCURRENCY} concurrent, token auth | {rexec_rps:.0} req/s | dockerd `GET /containers/{{id}}/json` {docker_rps:.0} req/s | {:.2}x | >= 3x |",
        rexec_rps / docker_rps
    );
    println!(
        "| same, peer-credential auth | {rexec_peer_rps:.0} req/s | {docker_rps:.0} req/s | {:.2}x | |",
        rexec_peer_rps / docker_rps
    );
    println!(
        "| same over loopback TCP, plain HTTP, token auth | {plain_rps:.0} req/s | {docker_rps:.0} req/s | {:.2}x | |",
        plain_rps / docker_rps
    );
    println!(
        "| same over loopback TCP, TLS 1.3 (keep-alive), token auth | {tls_rps:.0} req/s | {docker_rps:.0} req/s | {:.2}x | |",
        tls_rps / docker_rps
    );
    println!(
        "| one request on a fresh connection, plain TCP `GET /health` (median of {FRESH_CONNECTIONS}) | {plain_fresh:.3} ms | dockerd `GET /_ping`, fresh Unix connection, {docker_fresh:.3} ms | {:.2}x | |",
        plain_fresh / docker_fresh
    );
    println!(
        "| same, TLS (handshake included, P-256 certificate) | {tls_fresh:.3} ms | {docker_fresh:.3} ms | {:.2}x | |",
        tls_fresh / docker_fresh
    );
    root.delete(&made.db_id).await.unwrap();
}
