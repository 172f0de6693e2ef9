//! Admin handlers: users and their tokens.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::http::{json, ok, read_json, HttpResult};
use super::Ctx;
use crate::api;
use crate::daemon::error::Error;

pub fn list_users(ctx: &Ctx) -> HttpResult {
    ctx.principal()?.require_admin()?;
    ok(&api::UserList {
        users: ctx.state.auth.users().iter().map(|u| u.to_api()).collect(),
    })
}

pub async fn create_user(ctx: &Ctx, req: Request<Incoming>) -> HttpResult {
    ctx.principal()?.require_admin()?;
    let body: api::CreateUserRequest = read_json(req).await?;
    let user = ctx
        .state
        .auth
        .create_user(&body.name, body.tier.as_deref())
        .await?;
    Ok(json(StatusCode::CREATED, &user.to_api()))
}

pub async fn set_tier(ctx: &Ctx, id: &str, req: Request<Incoming>) -> HttpResult {
    ctx.principal()?.require_admin()?;
    let body: api::UpdateUserRequest = read_json(req).await?;
    ok(&ctx.state.auth.set_tier(id, &body.tier).await?.to_api())
}

pub async fn delete_user(ctx: &Ctx, id: &str) -> HttpResult {
    ctx.principal()?.require_admin()?;
    let user = ctx
        .state
        .auth
        .find_user(id)
        .ok_or(Error::NotFound("user"))?;
    if ctx.state.containers.owns_any(&user.id) {
        return Err(Error::Conflict {
            message: "user still owns containers".into(),
            code: "user_has_containers",
        }
        .into());
    }
    ctx.state.auth.delete_user(&user.id).await?;
    ok(&api::MessageResponse {
        message: "user deleted".into(),
    })
}

pub async fn create_token(ctx: &Ctx, id: &str, req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_admin()?;
    let owner = ctx
        .state
        .auth
        .find_user(id)
        .ok_or(Error::NotFound("user"))?;
    let body: api::CreateTokenRequest = read_json(req).await?;
    let created = ctx.state.auth.create_token(p, &owner, &body).await?;
    Ok(json(StatusCode::CREATED, &created))
}
