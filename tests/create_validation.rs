//! Every validation rule and error body of the create section, with its exact status and
//! JSON, and that a rejected request stores nothing.

mod common;

use common::Daemon;
use hyper::Method;
use rexec::client::Client;
use serde_json::{json, Value};

async fn post(c: &Client, body: &str) -> (u16, Value) {
    let r = c
        .raw(
            Method::POST,
            "/api/containers",
            Some(body.as_bytes().to_vec()),
            &[],
        )
        .await
        .unwrap();
    (r.status.as_u16(), r.value())
}

fn supported_images() -> Value {
    json!([
        "ubuntu:24.04",
        "debian:bookworm",
        "alpine:latest",
        "archlinux:latest",
        "custom"
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn each_rule_answers_its_status_and_body_and_stores_nothing() {
    let mut d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let name_err = json!({"error":"invalid container name: must be 1-64 characters, alphanumeric and hyphens only","code":"invalid_request"});
    let cases: Vec<(&str, u16, Value)> = vec![
        // 1. not JSON / wrong types
        ("not json", 400, Value::Null),
        (r#"{"image": 5}"#, 400, Value::Null),
        (r#"{"image": "alpine", "shell": "zsh"}"#, 400, Value::Null),
        (r#"[1,2]"#, 400, Value::Null),
        (r#"["alpine"]"#, 400, Value::Null),
        // 2. image
        (
            r#"{}"#,
            400,
            json!({"error":"unsupported image type","code":"unsupported_image","supported_images":supported_images()}),
        ),
        (
            r#"{"image":"fedora:40"}"#,
            400,
            json!({"error":"unsupported image type","code":"unsupported_image","supported_images":supported_images()}),
        ),
        // 3. custom image
        (
            r#"{"image":"custom"}"#,
            400,
            json!({"error":"custom_image is required when image is 'custom'","code":"invalid_request"}),
        ),
        (
            r#"{"image":"custom","custom_image":"  "}"#,
            400,
            json!({"error":"custom_image is required when image is 'custom'","code":"invalid_request"}),
        ),
        (
            r#"{"image":"custom","custom_image":"Not A/Ref!"}"#,
            400,
            json!({"error":"invalid custom_image format","code":"invalid_request"}),
        ),
        // 4. name
        (
            r#"{"image":"alpine","name":"-lead"}"#,
            400,
            name_err.clone(),
        ),
        (
            r#"{"image":"alpine","name":"under_score"}"#,
            400,
            name_err.clone(),
        ),
        (
            r#"{"image":"alpine","name":"sp ace"}"#,
            400,
            name_err.clone(),
        ),
        (
            &*Box::leak(
                format!(r#"{{"image":"alpine","name":"{}"}}"#, "a".repeat(65)).into_boxed_str(),
            ),
            400,
            name_err.clone(),
        ),
        // 5. role
        (
            r#"{"image":"alpine","role":"cobol"}"#,
            400,
            json!({"error":"unsupported role","code":"unsupported_role","supported_roles":["node","python","go","rust","devops","barebone"]}),
        ),
        // 6. resources
        (
            r#"{"image":"alpine","memory_mb":0}"#,
            400,
            json!({"error":"invalid memory_mb: must be a positive integer","code":"invalid_request"}),
        ),
        (
            r#"{"image":"alpine","memory_mb":-5}"#,
            400,
            json!({"error":"invalid memory_mb: must be a positive integer","code":"invalid_request"}),
        ),
        (
            r#"{"image":"alpine","cpu_shares":1.5}"#,
            400,
            json!({"error":"invalid cpu_shares: must be a positive integer","code":"invalid_request"}),
        ),
        (
            r#"{"image":"alpine","disk_mb":"big"}"#,
            400,
            json!({"error":"invalid disk_mb: must be a positive integer","code":"invalid_request"}),
        ),
    ];
    for (body, status, expected) in &cases {
        let (s, v) = post(&c, body).await;
        assert_eq!(s, *status, "{body} -> {v}");
        if expected.is_null() {
            let err = v["error"].as_str().unwrap_or_default();
            assert!(err.starts_with("invalid request body: "), "{body} -> {v}");
            assert_eq!(v["code"], "invalid_request");
        } else {
            assert_eq!(&v, expected, "{body}");
        }
    }
    // Rule order: a bad image is reported before a bad name, a bad name before a bad role.
    let (_, v) = post(&c, r#"{"image":"nope","name":"-x","role":"cobol"}"#).await;
    assert_eq!(v["error"], "unsupported image type");
    let (_, v) = post(
        &c,
        r#"{"image":"alpine","name":"-x","role":"cobol","memory_mb":0}"#,
    )
    .await;
    assert_eq!(v["error"], name_err["error"]);

    // A body over 1 MiB.
    let big = format!(r#"{{"image":"alpine","pad":"{}"}}"#, "x".repeat(1 << 20));
    let (s, v) = post(&c, &big).await;
    assert_eq!(
        (s, v["error"].as_str()),
        (413, Some("request body too large"))
    );

    // Nothing stored, not even after a restart.
    assert_eq!(c.list_containers().await.unwrap().count, 0);
    d.restart();
    d.ready().await;
    assert_eq!(c.list_containers().await.unwrap().count, 0);
    assert!(d.docker_containers().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tier_gates_limits_and_names() {
    let d = Daemon::start_with(&format!(
        "[images.\"gated:latest\"]\ndocker = \"{}\"\ndescription = \"gated\"\nmin_tier = \"enterprise\"\n[tiers.guest]\nsession_seconds = 0\n",
        common::TEST_IMAGE
    ));
    d.ready().await;
    let (_, c) = d.user("gus", "guest").await;
    // 7. tier-gated image
    let (s, v) = post(&c, r#"{"image":"gated:latest"}"#).await;
    assert_eq!(
        (s, v),
        (
            403,
            json!({"error":"image requires the enterprise tier","code":"tier_required"})
        )
    );

    // Admins may use gated images.
    let admin = d.client();
    let r = admin
        .create_container(&common::create_req("gated:latest", None))
        .await
        .unwrap();
    assert_eq!(r.image, "gated:latest");

    // 8. the container limit (guest: 1), with the documented body
    let (s, first) = post(&c, r#"{"image":"alpine","name":"one"}"#).await;
    assert_eq!(s, 202, "{first}");
    let (s, v) = post(&c, r#"{"image":"alpine","name":"two"}"#).await;
    assert_eq!(
        (s, v),
        (
            403,
            json!({"error":"container limit reached","code":"limit_reached","current":1,"limit":1,"tier":"guest","message":"Upgrade your plan to create more containers"})
        )
    );

    // 9. duplicate names (per user), checked on a roomier tier
    let (_, f) = d.user("fay", "free").await;
    let (s, _) = post(&f, r#"{"image":"alpine","name":"dev"}"#).await;
    assert_eq!(s, 202);
    let (s, v) = post(&f, r#"{"image":"alpine","name":" dev "}"#).await;
    assert_eq!(
        (s, v),
        (
            409,
            json!({"error":"container with this name already exists","code":"name_taken","name":"dev"})
        )
    );
    // Another user may use the same name.
    let (_, g) = d.user("gil", "free").await;
    let (s, _) = post(&g, r#"{"image":"alpine","name":"dev"}"#).await;
    assert_eq!(s, 202);

    // Generated names: adjective-noun-NNN, unique.
    let (s, v) = post(&f, r#"{"image":"debian","name":"   "}"#).await;
    assert_eq!(s, 202);
    let name = v["name"].as_str().unwrap();
    let parts: Vec<&str> = name.split('-').collect();
    assert_eq!(parts.len(), 3, "{name}");
    assert!(
        parts[2].len() == 3 && parts[2].chars().all(|c| c.is_ascii_digit()),
        "{name}"
    );
    assert_eq!(
        v["image"], "debian:bookworm",
        "aliases resolve to the catalog name"
    );
    let list = f.list_containers().await.unwrap();
    assert_eq!((list.count, list.limit), (2, 5));
    for ct in list.containers {
        common::wait_running(&f, &ct.db_id).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_comes_before_routing_and_scopes_are_enforced() {
    let d = Daemon::start();
    d.ready().await;
    let anon = d.tcp_client(None);
    for (m, p) in [
        (Method::GET, "/api/containers"),
        (Method::POST, "/api/containers"),
        (Method::GET, "/api/nothing-here"),
        (Method::PUT, "/api/containers"),
        (Method::GET, "/ws/events"),
    ] {
        let r = anon.raw(m.clone(), p, None, &[]).await.unwrap();
        assert_eq!(r.status, 401, "{m} {p}");
        assert_eq!(
            r.value(),
            json!({"error":"unauthorized","code":"unauthorized"})
        );
    }
    let bad = d.tcp_client(Some("rexec_0000"));
    assert_eq!(
        bad.raw(Method::GET, "/api/containers", None, &[])
            .await
            .unwrap()
            .status,
        401
    );
    // Public endpoints.
    assert_eq!(
        anon.raw(Method::GET, "/health", None, &[])
            .await
            .unwrap()
            .status,
        200
    );
    let v = anon
        .raw(Method::GET, "/api/version", None, &[])
        .await
        .unwrap()
        .value();
    assert_eq!(v["api_version"], "v1");

    let (user, c) = d.user("ro", "free").await;
    assert_eq!(
        c.raw(Method::GET, "/api/nothing-here", None, &[])
            .await
            .unwrap()
            .status,
        404
    );
    let r = c
        .raw(Method::PUT, "/api/containers", None, &[])
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["code"].clone()),
        (405, json!("method_not_allowed"))
    );

    // A read-only token reads but cannot create.
    let token = d.token_for(&user.id, Some(&["read"])).await;
    let ro = d.tcp_client(Some(&token));
    assert_eq!(ro.list_containers().await.unwrap().count, 0);
    let (s, v) = post(&ro, r#"{"image":"alpine"}"#).await;
    assert_eq!((s, v["code"].clone()), (403, json!("forbidden")));
    assert_eq!(c.list_containers().await.unwrap().count, 0);
    // A non-admin cannot reach admin endpoints, nor mint admin tokens.
    let r = c
        .raw(Method::GET, "/api/admin/users", None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    let r = c
        .raw(
            Method::POST,
            "/api/tokens",
            Some(br#"{"name":"x","scopes":["admin"]}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 403);
    // Token validation tells who and what.
    let v = ro
        .raw(Method::GET, "/api/tokens/validate", None, &[])
        .await
        .unwrap()
        .value();
    assert_eq!(v["valid"], true);
    assert_eq!(v["user"]["name"], "ro");
    assert_eq!(v["scopes"], json!(["read"]));
}
