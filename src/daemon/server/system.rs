//! `/health` and `/api/version`.

use super::http::{ok, HttpResult};
use super::Ctx;
use crate::api;

pub fn health(ctx: &Ctx) -> HttpResult {
    let up = ctx.state.availability.is_up();
    ok(&api::Health {
        status: if up {
            api::HealthStatus::Ok
        } else {
            api::HealthStatus::Degraded
        },
        docker: if up {
            api::DockerStatus::Ok
        } else {
            api::DockerStatus::Unavailable
        },
        version: env!("CARGO_PKG_VERSION").into(),
    })
}

pub fn version(ctx: &Ctx) -> HttpResult {
    let facts = ctx.state.spec.facts();
    ok(&api::Version {
        version: env!("CARGO_PKG_VERSION").into(),
        api_version: api::API_VERSION.into(),
        docker_api_version: facts.api_version,
        disk_quota: facts.disk_supported,
    })
}
