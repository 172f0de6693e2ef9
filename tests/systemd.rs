//! systemd integration: the units pass `systemd-analyze verify`, and under socket activation
//! (`systemd-socket-activate`, as systemd would start it from rexecd.socket) the daemon
//! serves on the sockets it inherits and sends readiness only once it is serving.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Daemon;

/// Reads one notification datagram (`READY=1\nSTATUS=...`).
fn recv(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("a notification within 20 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    // The real ExecStart is /usr/bin/rexecd, which only the package installs (tests/packaging.rs
    // verifies the installed units, man pages included); here it points at the built binary.
    let dir = tempfile::tempdir().unwrap();
    for unit in ["rexecd.service", "rexecd.socket"] {
        let text = std::fs::read_to_string(Path::new("systemd").join(unit)).unwrap();
        let text = text.replace("/usr/bin/rexecd", env!("CARGO_BIN_EXE_rexecd"));
        std::fs::write(dir.path().join(unit), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.path().join("rexecd.service"))
        .arg(dir.path().join("rexecd.socket"))
        .output()
        .expect("systemd-analyze runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Warnings (unknown keys, bad values) do not fail verify; they fail this test.
    assert!(stderr.trim().is_empty(), "{stderr}");
    let service = std::fs::read_to_string("systemd/rexecd.service").unwrap();
    assert!(service.contains("\nType=notify\n"));
}

#[tokio::test]
async fn socket_activation_serves_the_inherited_sockets_and_notifies_readiness() {
    let notify_dir = tempfile::tempdir().unwrap();
    let notify_path = notify_dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();

    let mut d = Daemon::start_activated(&notify_path);
    let ready = recv(&notify);
    // systemd-socket-activate execs rexecd in place: the pid it started is rexecd's.
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", d.pid())).unwrap();
    assert_eq!(comm.trim(), "rexecd");
    assert!(ready.contains("READY=1"), "{ready}");
    assert!(
        ready.contains(&format!(
            "STATUS=serving on {} and http://{}",
            d.socket.display(),
            d.tcp
        )),
        "{ready}"
    );

    // Both inherited sockets answer: the Unix one as root (peer credentials work on it) and
    // the TCP one with a token. The config's own socket path was never bound.
    d.ready().await;
    let (_, ann) = d.user("ann", "free").await;
    assert!(ann.list_containers().await.unwrap().containers.is_empty());
    assert!(!d.dir.path().join("config.sock").exists());
    assert!(d.log().contains("socket_activated=true"), "{}", d.log());

    // On SIGTERM rexecd says it is stopping, and leaves systemd's socket file in place.
    d.stop();
    let stopping = recv(&notify);
    assert!(stopping.contains("STOPPING=1"), "{stopping}");
    assert!(d.socket.exists());
}
