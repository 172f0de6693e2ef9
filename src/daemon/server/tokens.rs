//! Token handlers: the caller's own tokens.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::http::{json, ok, read_json, HttpResult};
use super::Ctx;
use crate::api;
use crate::daemon::auth::Auth;

pub fn list(ctx: &Ctx) -> HttpResult {
    let p = ctx.principal()?;
    p.require_read()?;
    ok(&api::TokenList {
        tokens: ctx.state.auth.tokens_of(&p.user.id),
    })
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let body: api::CreateTokenRequest = read_json(req).await?;
    let created = ctx.state.auth.create_token(p, &p.user, &body).await?;
    Ok(json(StatusCode::CREATED, &created))
}

pub fn validate(ctx: &Ctx) -> HttpResult {
    let p = ctx.principal()?;
    ok(&api::TokenValidation {
        valid: true,
        user: api::TokenUser {
            id: p.user.id.clone(),
            name: p.user.name.clone(),
            tier: p.user.tier.as_str().into(),
        },
        scopes: Auth::scopes_of(p),
    })
}

pub async fn revoke(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    ctx.state.auth.revoke_token(&p.user.id, id).await?;
    ok(&api::MessageResponse {
        message: "token revoked".into(),
    })
}

pub async fn delete(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    ctx.state.auth.delete_token(&p.user.id, id).await?;
    ok(&api::MessageResponse {
        message: "token deleted".into(),
    })
}
