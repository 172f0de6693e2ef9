//! TLS on the TCP listener: `curl --cacert` and `rexecctl --cacert` (HTTP and the events
//! WebSocket) work, plain HTTP to the TLS port is refused, and plain HTTP is only for
//! loopback unless the config says otherwise.

mod common;

use std::path::Path;
use std::process::Command;

use common::certs::Certs;
use common::Daemon;
use rexec::client::{Client, ClientError, Endpoint};

fn curl(args: &[&str]) -> (i32, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn rexecctl(url: &str, token: &str, ca: &Path, args: &[&str]) -> (i32, String, String) {
    common::output(
        Command::new(env!("CARGO_BIN_EXE_rexecctl"))
            .args(["--url", url, "--token", token])
            .arg("--cacert")
            .arg(ca)
            .args(args),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_and_rexecctl_over_tls_and_plain_http_is_refused() {
    let certs = Certs::new();
    let d = Daemon::start_with_server(&certs.server_config());
    d.ready().await;
    let (user, _) = d.user("ann", "free").await;
    let token = d.token_for(&user.id, None).await;
    let https = format!("https://{}", d.tcp);
    let ca = certs.path("ca.pem");
    let ca_arg = ca.display().to_string();

    // curl --cacert: the public health check, then an authenticated call.
    let (code, out) = curl(&["--cacert", &ca_arg, &format!("{https}/health")]);
    assert_eq!(code, 0, "{out}");
    let health: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(health["status"], "ok", "{out}");
    let auth = format!("Authorization: Bearer {token}");
    let (code, out) = curl(&[
        "--cacert",
        &ca_arg,
        "-H",
        &auth,
        &format!("{https}/api/containers"),
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"containers\":[]"), "{out}");

    // Without the CA, curl does not trust the certificate (exit 60).
    let (code, out) = curl(&[&format!("{https}/health")]);
    assert_eq!(code, 60, "{out}");

    // Plain HTTP to the TLS port is answered with a 400 naming the problem, never served.
    let (code, out) = curl(&["-i", &format!("http://{}/health", d.tcp)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(
        out.contains(
            r#"{"error":"this port speaks only TLS: use https://","code":"tls_required"}"#
        ),
        "{out}"
    );
    assert!(!out.contains("\"status\":\"ok\""), "{out}");
    let plain = Client::new(Endpoint::Tcp(format!("http://{}", d.tcp)), None);
    let err = plain.health().await.unwrap_err();
    assert!(
        matches!(&err, ClientError::Api { status, .. } if status.as_u16() == 400),
        "{err:?}"
    );

    // rexecctl over TLS: create follows the events WebSocket (wss) to `ready`.
    let (code, out, err) = rexecctl(
        &https,
        &token,
        &ca,
        &["create", "--image", "alpine:latest", "--name", "secure"],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("ready"), "{out}");
    let (code, out, err) = rexecctl(&https, &token, &ca, &["ls", "--output", "json"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"name\": \"secure\""), "{out}");

    // The typed client with the system roots refuses the test CA's certificate.
    let untrusted = Client::new(Endpoint::Tcp(https.clone()), Some(token.clone()));
    let err = untrusted.health().await.unwrap_err().to_string();
    assert!(err.contains("certificate"), "{err}");
    // And a CA file that is not one is a clear error before any connection.
    let err = Client::with_ca_file(Endpoint::Tcp(https.clone()), None, &certs.path("san.ext"))
        .err()
        .expect("not a CA file")
        .to_string();
    assert!(
        err.contains("san.ext") && err.contains("no certificate"),
        "{err}"
    );
    let (code, _, err) = rexecctl(&https, &token, &certs.path("missing.pem"), &["ls"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("rexecctl: CA file ") && err.contains("missing.pem"),
        "{err}"
    );
}

#[test]
fn plain_tcp_off_loopback_and_bad_tls_files_stop_the_daemon() {
    let err = common::rexecd_refuses("[server]\ntcp = \"0.0.0.0:0\"\n");
    assert!(
        err.contains("refusing plain HTTP on 0.0.0.0:0") && err.contains("server.tls_cert"),
        "{err}"
    );
    let certs = Certs::new();
    let err = common::rexecd_refuses(&format!(
        "[server]\ntcp = \"127.0.0.1:0\"\ntls_cert = \"{}\"\n",
        certs.path("server.pem").display()
    ));
    assert!(err.contains("go together"), "{err}");
    // The key is not a certificate and the certificate is not a key.
    let err = common::rexecd_refuses(&format!(
        "[server]\ntcp = \"127.0.0.1:0\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        certs.path("server.key").display(),
        certs.path("server.pem").display()
    ));
    assert!(err.contains("tls: ") && err.contains("server."), "{err}");
}
