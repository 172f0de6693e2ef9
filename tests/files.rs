//! Files in real containers: upload, download, listing, mkdir, delete, limits and confinement.

mod common;

use std::process::Command;

use common::{docker, Daemon};
use hyper::Method;
use serde_json::{json, Value};

/// A multipart upload through curl over the Unix socket, as a user would send one.
fn upload(d: &Daemon, token: &str, url_path: &str, file: &std::path::Path) -> (u16, Value) {
    let out = Command::new("curl")
        .args(["-s", "-o", "-", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&d.socket)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg("-F")
        .arg(format!("file=@{}", file.display()))
        .arg(format!("http://localhost{url_path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (
        code.parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn peak_rss_kb(pid: u32) -> u64 {
    common::proc_kb(pid, "VmHWM")
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trips_listings_and_errors() {
    let common::WithBox {
        d,
        c,
        token,
        running,
    } = common::with_box("").await;

    // A binary file with every byte value, uploaded and downloaded at both path styles.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("all bytes.bin");
    let data: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    std::fs::write(&src, &data).unwrap();
    let (s, v) = upload(&d, &token, "/api/files/box?path=/home/user", &src);
    assert_eq!(s, 200, "{v}");
    assert_eq!(
        v,
        json!({"message":"file uploaded successfully","filename":"all bytes.bin","path":"/home/user/all bytes.bin","size":300000})
    );
    for path in [
        "/api/files/box?path=/home/user/all%20bytes.bin",
        "/api/containers/box/files?path=all%20bytes.bin",
    ] {
        let r = c.raw(Method::GET, path, None, &[]).await.unwrap();
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body.as_ref(), data.as_slice(), "{path}");
        assert_eq!(r.headers["x-file-size"], "300000");
        assert_eq!(r.headers["x-file-mode"], "0644");
        assert!(r.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename=\"all bytes.bin\""));
    }
    let (ok, sum) = docker::run(&["exec", &running.id, "md5sum", "/home/user/all bytes.bin"]);
    assert!(
        ok && sum.starts_with(&format!("{:x}", md5_of(&data))),
        "{sum}"
    );

    // mkdir (nested), then listing with the documented fields.
    let r = c
        .raw(
            Method::POST,
            "/api/containers/box/files/mkdir",
            Some(br#"{"path":"projects/app/src"}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["path"].clone()),
        (200, json!("/home/user/projects/app/src"))
    );
    let r = c
        .raw(
            Method::GET,
            "/api/files/box/list?path=/home/user",
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let list = r.value();
    assert_eq!(list["path"], "/home/user");
    assert_eq!(list["count"], 2);
    let files = list["files"].as_array().unwrap();
    assert_eq!(files[0]["name"], "projects");
    assert_eq!(files[0]["is_dir"], true);
    assert_eq!(files[0]["path"], "/home/user/projects");
    assert_eq!(files[1]["name"], "all bytes.bin");
    assert_eq!(
        (
            files[1]["size"].clone(),
            files[1]["mode"].clone(),
            files[1]["is_dir"].clone()
        ),
        (json!(300000), json!("0644"), json!(false))
    );
    assert!(files[1]["modified"].as_str().unwrap().ends_with('Z'));
    let r = c
        .raw(
            Method::GET,
            "/api/containers/box/files/list?path=projects",
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        r.value()["files"][0]["name"],
        "app",
        "nested entries are not listed"
    );
    assert_eq!(r.value()["count"], 1);

    // Delete, then the documented errors.
    let r = c
        .raw(
            Method::DELETE,
            "/api/containers/box/files?path=projects",
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let cases = [
        (
            Method::GET,
            "/api/files/box",
            400,
            "path parameter required",
        ),
        (
            Method::GET,
            "/api/files/box?path=/nope",
            404,
            "file not found",
        ),
        (
            Method::GET,
            "/api/files/box?path=/home/user",
            400,
            "path is a directory",
        ),
        (
            Method::GET,
            "/api/files/box/list?path=/home/user/all%20bytes.bin",
            400,
            "path is not a directory",
        ),
        (
            Method::DELETE,
            "/api/containers/box/files?path=/home/user/projects",
            404,
            "file not found",
        ),
        (
            Method::DELETE,
            "/api/containers/box/files?path=/..",
            400,
            "refusing to delete /",
        ),
    ];
    for (m, p, status, error) in cases {
        let r = c.raw(m.clone(), p, None, &[]).await.unwrap();
        assert_eq!(
            (r.status.as_u16(), r.value()["error"].clone()),
            (status, json!(error)),
            "{m} {p}"
        );
    }
    let (s, v) = upload(&d, &token, "/api/files/box?path=/missing/dir", &src);
    assert_eq!((s, v["error"].clone()), (404, json!("directory not found")));
    let r = c
        .raw(
            Method::POST,
            "/api/files/box?path=/tmp",
            Some(b"{}".to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    // Another user's container does not exist for them; a stopped one is not running.
    let (_, other) = d.user("bob", "free").await;
    let r = other
        .raw(Method::GET, "/api/files/box?path=/etc/hostname", None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    c.stop("box").await.unwrap();
    let r = c
        .raw(Method::GET, "/api/files/box/list?path=/", None, &[])
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()),
        (
            400,
            json!({"error":"container is not running","code":"container_stopped","status":"stopped"})
        )
    );
}

fn md5_of(data: &[u8]) -> u128 {
    let out = Command::new("md5sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(data)?;
            child.wait_with_output()
        })
        .unwrap();
    u128::from_str_radix(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .next()
            .unwrap(),
        16,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_never_reaches_the_host() {
    let common::WithBox { d, c, running, .. } = common::with_box("").await;
    // A marker that exists only on the host, and one only in the container.
    let host_marker = format!("/tmp/rexec-host-only-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&host_marker, "host secret").unwrap();
    let (ok, out) = docker::run(&["exec", &running.id, "sh", "-c", "echo container > /home/user/mine; ln -s / /home/user/root; ln -s /etc/hostname /home/user/host"]);
    assert!(ok, "{out}");
    let enc = |p: &str| {
        percent_encoding::utf8_percent_encode(p, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    for path in [
        host_marker.clone(),
        format!("../../..{host_marker}"),
        format!("root{host_marker}"),
        format!("/home/user/root/../..{host_marker}"),
    ] {
        let r = c
            .raw(
                Method::GET,
                &format!("/api/files/box?path={}", enc(&path)),
                None,
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            r.status, 404,
            "{path} must not reach the host: {:?}",
            r.body
        );
    }
    // A symlink resolves inside the container: /etc/hostname is the container's.
    let r = c
        .raw(Method::GET, "/api/files/box?path=host", None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let host_name = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert_ne!(String::from_utf8_lossy(&r.body), host_name);
    assert_eq!(String::from_utf8_lossy(&r.body).trim(), "box");
    let r = c
        .raw(
            Method::GET,
            "/api/files/box?path=root/home/user/mine",
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (
            r.status.as_u16(),
            String::from_utf8_lossy(&r.body).into_owned()
        ),
        (200, "container\n".to_string())
    );
    // Uploads with walking names land in the target directory, under their base name.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("x.txt");
    std::fs::write(&src, "x").unwrap();
    let token = d.token_for("ann", None).await;
    let out = Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&d.socket)
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .arg("-F")
        .arg(format!(
            "file=@{};filename=../../../etc/evil",
            src.display()
        ))
        .arg("http://localhost/api/files/box?path=/tmp")
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["path"], "/tmp/evil", "{v}");
    assert!(!std::path::Path::new("/etc/evil").exists());
    std::fs::remove_file(&host_marker).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_100_mb_upload_streams_and_bigger_is_refused() {
    let common::WithBox {
        d, token, running, ..
    } = common::with_box("").await;
    let tmp = tempfile::tempdir().unwrap();
    let big = tmp.path().join("big.bin");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    let before = peak_rss_kb(d.pid());
    let (s, v) = upload(&d, &token, "/api/files/box?path=/tmp", &big);
    assert_eq!(
        (s, v["size"].clone()),
        (200, json!(100 * 1024 * 1024)),
        "{v}"
    );
    let after = peak_rss_kb(d.pid());
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "the daemon's peak memory grew by {} KiB for a 100 MiB upload",
        after - before
    );
    let (ok, out) = docker::run(&["exec", &running.id, "stat", "-c", "%s", "/tmp/big.bin"]);
    assert!(ok && out.trim() == "104857600", "{out}");
    // One byte over: 413, and nothing written.
    f.set_len(100 * 1024 * 1024 + 1).unwrap();
    let (s, v) = upload(&d, &token, "/api/files/box?path=/home/user", &big);
    assert_eq!(
        (s, v["code"].clone()),
        (413, json!("payload_too_large")),
        "{v}"
    );
    let (_, out) = docker::run(&["exec", &running.id, "ls", "/home/user"]);
    assert!(!out.contains("big.bin"), "{out}");
    assert!(
        std::fs::read_dir(d.dir.path().join("data/spool"))
            .map(|r| r.count())
            .unwrap_or(0)
            == 0,
        "spool cleaned"
    );
}
