//! Tokens and administration: users, tiers, token lifecycle, catalog listings, rate limits.

mod common;

use common::{create_req, Daemon};
use hyper::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn users_and_tiers_are_managed_by_admins() {
    let d = Daemon::start();
    d.ready().await;
    let admin = d.client();
    let r = admin
        .raw(
            Method::POST,
            "/api/admin/users",
            Some(br#"{"name":"ann","tier":"free"}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let ann = r.value();
    assert!(ann["id"].as_str().unwrap().starts_with("usr_"));
    assert_eq!(
        (
            ann["name"].clone(),
            ann["tier"].clone(),
            ann["admin"].clone()
        ),
        (json!("ann"), json!("free"), json!(false))
    );
    for (body, status, error) in [
        (
            r#"{"name":"ann","tier":"free"}"#,
            409,
            "user already exists",
        ),
        (
            r#"{"name":"bob","tier":"platinum"}"#,
            400,
            "unknown tier \"platinum\"",
        ),
        (
            r#"{"name":"b b"}"#,
            400,
            "invalid user name: must be 1-64 characters of letters, digits, '.', '_' and '-'",
        ),
        (r#"{"tier":"free"}"#, 400, ""),
    ] {
        let r = admin
            .raw(
                Method::POST,
                "/api/admin/users",
                Some(body.as_bytes().to_vec()),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(r.status.as_u16(), status, "{body}: {}", r.value());
        if !error.is_empty() {
            assert_eq!(r.value()["error"], error, "{body}");
        }
    }
    let users = admin.users().await.unwrap();
    assert!(users.users.iter().any(|u| u.name == "root" && u.admin));
    assert!(users.users.iter().any(|u| u.name == "ann" && !u.admin));

    // A tier change applies to the next create.
    let id = ann["id"].as_str().unwrap();
    let r = admin
        .raw(
            Method::PATCH,
            &format!("/api/admin/users/{id}"),
            Some(br#"{"tier":"pro"}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["tier"].clone()),
        (200, json!("pro"))
    );
    let token = d.token_for(id, None).await;
    let c = d.tcp_client(Some(&token));
    let made = c
        .create_container(&create_req("alpine", Some("x")))
        .await
        .unwrap();
    assert_eq!(made.resources.memory_mb, 4096);
    assert!(made.expires_at.is_none());

    // A user who owns containers cannot be deleted.
    let r = admin
        .raw(Method::DELETE, &format!("/api/admin/users/{id}"), None, &[])
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["code"].clone()),
        (409, json!("user_has_containers"))
    );
    c.delete("x").await.unwrap();
    let r = admin
        .raw(Method::DELETE, "/api/admin/users/ann", None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    // Their tokens went with them.
    assert_eq!(
        c.raw(Method::GET, "/api/containers", None, &[])
            .await
            .unwrap()
            .status,
        401
    );
    let r = admin
        .raw(Method::DELETE, "/api/admin/users/ann", None, &[])
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()),
        (
            404,
            json!({"error":"user not found","code":"user_not_found"})
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_are_listed_revoked_and_deleted() {
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let r = c
        .raw(
            Method::POST,
            "/api/tokens",
            Some(br#"{"name":"ci","scopes":["read"],"expires_in":30}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
    let t = r.value();
    let secret = t["token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("rexec_") && secret.len() >= 6 + 64);
    assert_eq!(t["token_prefix"].as_str().unwrap(), &secret[..14]);
    assert_eq!(t["scopes"], json!(["read"]));
    assert!(t["expires_at"].is_string());
    let tid = t["id"].as_str().unwrap().to_string();
    let ro = d.tcp_client(Some(&secret));
    assert_eq!(ro.list_containers().await.unwrap().count, 0);
    // The auth scheme is case-insensitive.
    let lower = format!("bearer {secret}");
    let r = d
        .tcp_client(None)
        .raw(
            Method::GET,
            "/api/containers",
            None,
            &[("authorization", lower.as_str())],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let r = c
        .raw(
            Method::POST,
            "/api/tokens",
            Some(br#"{"name":"x","expires_in":0}"#.to_vec()),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["error"].clone()),
        (400, json!("expires_in must be at least 1 (days)"))
    );

    let list = c.tokens().await.unwrap();
    let listed = list.tokens.iter().find(|x| x.id == tid).unwrap();
    assert_eq!(listed.name, "ci");
    assert!(listed.revoked_at.is_none());
    let raw = c.raw(Method::GET, "/api/tokens", None, &[]).await.unwrap();
    assert!(
        !String::from_utf8_lossy(&raw.body).contains(&secret),
        "the token itself is never listed"
    );

    for (bad, err) in [
        (r#"{"name":""}"#, "token name must be 1-128 characters"),
        (
            r#"{"name":"x","scopes":["root"]}"#,
            "invalid scope \"root\": use read, write or admin",
        ),
        (r#"{"name":"x","scopes":[]}"#, "scopes must not be empty"),
        (
            r#"["laptop"]"#,
            "invalid request body: expected a JSON object",
        ),
    ] {
        let r = c
            .raw(
                Method::POST,
                "/api/tokens",
                Some(bad.as_bytes().to_vec()),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(
            (r.status.as_u16(), r.value()["error"].clone()),
            (400, json!(err)),
            "{bad}"
        );
    }

    let r = c
        .raw(Method::DELETE, &format!("/api/tokens/{tid}"), None, &[])
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        ro.raw(Method::GET, "/api/containers", None, &[])
            .await
            .unwrap()
            .status,
        401
    );
    let revoked = c.tokens().await.unwrap();
    assert!(revoked
        .tokens
        .iter()
        .find(|x| x.id == tid)
        .unwrap()
        .revoked_at
        .is_some());
    let r = c
        .raw(
            Method::DELETE,
            &format!("/api/tokens/{tid}/permanent"),
            None,
            &[],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert!(c.tokens().await.unwrap().tokens.iter().all(|x| x.id != tid));
    // Another user's token id is not found.
    let (_, b) = d.user("bob", "free").await;
    let mine = c.tokens().await.unwrap().tokens[0].id.clone();
    let r = b
        .raw(Method::DELETE, &format!("/api/tokens/{mine}"), None, &[])
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.value()["error"].clone()),
        (404, json!("token not found"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn images_and_roles_are_listed() {
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let images = c.images().await.unwrap();
    let names: Vec<&str> = images.images.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ubuntu:24.04",
            "debian:bookworm",
            "alpine:latest",
            "archlinux:latest",
            "custom"
        ]
    );
    assert_eq!(images.images[0].description, "Ubuntu 24.04 LTS");
    let roles = c.roles().await.unwrap();
    let names: Vec<&str> = roles.roles.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        ["node", "python", "go", "rust", "devops", "barebone"]
    );
    assert_eq!(roles.roles[0].tools, ["npm", "yarn", "nvm"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_beyond_the_rate_limit_get_429() {
    let d = Daemon::start_with("[limits]\nwrites_per_minute = 3\n");
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let r = c
            .raw(Method::POST, "/api/containers/none/stop", None, &[])
            .await
            .unwrap();
        statuses.push(r.status.as_u16());
        if r.status == 429 {
            let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
            assert!((1..=60).contains(&retry), "{retry}");
            assert_eq!(
                r.value(),
                json!({"error":"rate limit exceeded","code":"rate_limited"})
            );
        }
    }
    assert_eq!(statuses, [404, 404, 404, 429, 429]);
    // Reads are not limited.
    for _ in 0..10 {
        assert_eq!(
            c.raw(Method::GET, "/api/containers", None, &[])
                .await
                .unwrap()
                .status,
            200
        );
    }
}
