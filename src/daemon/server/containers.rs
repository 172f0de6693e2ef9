//! Container handlers: authenticate, parse, call one domain operation, answer.

use hyper::body::Incoming;
use hyper::{Request, StatusCode};

use super::http::{body_bytes, json, ok, read_json, HttpResult};
use super::Ctx;
use crate::api;

fn query_flag(req: &Request<Incoming>, key: &str) -> bool {
    super::query(req.uri(), key).is_some_and(|v| v == "true" || v == "1")
}

pub fn list(ctx: &Ctx, req: &Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_read()?;
    let all = query_flag(req, "all");
    if all {
        p.require_admin()?;
    }
    ok(&ctx.state.containers.list(&p.user, all))
}

pub async fn create(ctx: &Ctx, req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let body = body_bytes(req).await?;
    let created = ctx
        .state
        .containers
        .create(&p.user, p.is_admin(), &body)
        .await?;
    Ok(json(StatusCode::ACCEPTED, &created))
}

pub fn get(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_read()?;
    ok(&ctx.state.containers.get(&p.user, id)?)
}

pub async fn delete(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    ok(&ctx
        .state
        .containers
        .delete(&p.user, id, api::DeleteReason::User)
        .await?)
}

pub async fn start(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    ok(&ctx.state.containers.start(&p.user, id).await?)
}

pub async fn stop(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    ok(&ctx.state.containers.stop(&p.user, id).await?)
}

pub async fn settings(ctx: &Ctx, id: &str, req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let body: api::SettingsRequest = read_json(req).await?;
    ok(&ctx
        .state
        .containers
        .update_settings(&p.user, id, &body)
        .await?)
}

pub async fn exec(ctx: &Ctx, id: &str, req: Request<Incoming>) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let body: api::ExecRequest = read_json(req).await?;
    ok(&ctx.state.exec.run(&p.user, id, body).await?)
}

pub async fn shell_status(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_read()?;
    ok(&ctx.state.setup.status(&p.user, id).await?)
}

pub async fn shell_setup(ctx: &Ctx, id: &str) -> HttpResult {
    let p = ctx.principal()?;
    p.require_write()?;
    let setup = ctx.state.setup.rerun(&p.user, id).await?;
    Ok(json(StatusCode::ACCEPTED, &setup))
}

pub fn images(ctx: &Ctx) -> HttpResult {
    ctx.principal()?.require_read()?;
    ok(&ctx.state.containers.images())
}

pub fn roles(ctx: &Ctx) -> HttpResult {
    ctx.principal()?.require_read()?;
    ok(&ctx.state.containers.roles())
}
