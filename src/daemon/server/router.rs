//! Routes: one readable `match` from method and path to a handler.

use hyper::body::Incoming;
use hyper::{Method, Request};

use super::http::{HttpError, HttpResult};
use super::{admin, containers, events_ws, files, system, terminal_ws, tokens, Ctx};

/// A path we serve, with its parameters.
#[derive(Debug, PartialEq, Eq)]
pub enum Route<'a> {
    Health,
    Version,
    Containers,
    Container(&'a str),
    Start(&'a str),
    Stop(&'a str),
    Settings(&'a str),
    Exec(&'a str),
    ShellStatus(&'a str),
    ShellSetup(&'a str),
    /// `/api/files/:id` (documented) and `/api/containers/:id/files` (the original's).
    Files(&'a str),
    FileList(&'a str),
    Mkdir(&'a str),
    Images,
    Roles,
    Events,
    Terminal(&'a str),
    Tokens,
    TokenValidate,
    Token(&'a str),
    TokenPermanent(&'a str),
    Users,
    User(&'a str),
    UserTokens(&'a str),
}

impl<'a> Route<'a> {
    pub fn parse(path: &'a str) -> Option<Route<'a>> {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        let segs: Vec<&str> = path.split('/').skip(1).collect();
        Some(match segs.as_slice() {
            ["health"] => Route::Health,
            ["api", "version"] => Route::Version,
            ["api", "containers"] => Route::Containers,
            ["api", "containers", id] => Route::Container(id),
            ["api", "containers", id, "start"] => Route::Start(id),
            ["api", "containers", id, "stop"] => Route::Stop(id),
            ["api", "containers", id, "settings"] => Route::Settings(id),
            ["api", "containers", id, "exec"] => Route::Exec(id),
            ["api", "containers", id, "shell", "status"] => Route::ShellStatus(id),
            ["api", "containers", id, "shell", "setup"] => Route::ShellSetup(id),
            ["api", "files", id] | ["api", "containers", id, "files"] => Route::Files(id),
            ["api", "files", id, "list"] | ["api", "containers", id, "files", "list"] => {
                Route::FileList(id)
            }
            ["api", "containers", id, "files", "mkdir"] => Route::Mkdir(id),
            ["api", "images"] => Route::Images,
            ["api", "roles"] => Route::Roles,
            ["ws", "events"] => Route::Events,
            ["ws", "terminal", id] => Route::Terminal(id),
            ["api", "tokens"] => Route::Tokens,
            ["api", "tokens", "validate"] => Route::TokenValidate,
            ["api", "tokens", id] => Route::Token(id),
            ["api", "tokens", id, "permanent"] => Route::TokenPermanent(id),
            ["api", "admin", "users"] => Route::Users,
            ["api", "admin", "users", id] => Route::User(id),
            ["api", "admin", "users", id, "tokens"] => Route::UserTokens(id),
            _ => return None,
        })
    }

    /// Takes WebSocket credentials (`?token=`, subprotocol).
    pub fn is_websocket(&self) -> bool {
        matches!(self, Route::Events | Route::Terminal(_))
    }

    /// Served without credentials.
    pub fn is_public(&self) -> bool {
        matches!(self, Route::Health | Route::Version)
    }
}

pub async fn dispatch(ctx: Ctx, route: Route<'_>, req: Request<Incoming>) -> HttpResult {
    use Method as M;
    use Route as R;
    let m = req.method().clone();
    match (route, m) {
        (R::Health, M::GET) => system::health(&ctx),
        (R::Version, M::GET) => system::version(&ctx),
        (R::Containers, M::GET) => containers::list(&ctx, &req),
        (R::Containers, M::POST) => containers::create(&ctx, req).await,
        (R::Container(id), M::GET) => containers::get(&ctx, id),
        (R::Container(id), M::DELETE) => containers::delete(&ctx, id).await,
        (R::Start(id), M::POST) => containers::start(&ctx, id).await,
        (R::Stop(id), M::POST) => containers::stop(&ctx, id).await,
        (R::Settings(id), M::PATCH) => containers::settings(&ctx, id, req).await,
        (R::Exec(id), M::POST) => containers::exec(&ctx, id, req).await,
        (R::ShellStatus(id), M::GET) => containers::shell_status(&ctx, id).await,
        (R::ShellSetup(id), M::POST) => containers::shell_setup(&ctx, id).await,
        (R::Files(id), M::GET) => files::download(&ctx, id, &req).await,
        (R::Files(id), M::POST) => files::upload(&ctx, id, req).await,
        (R::Files(id), M::DELETE) => files::delete(&ctx, id, &req).await,
        (R::FileList(id), M::GET) => files::list(&ctx, id, &req).await,
        (R::Mkdir(id), M::POST) => files::mkdir(&ctx, id, req).await,
        (R::Images, M::GET) => containers::images(&ctx),
        (R::Roles, M::GET) => containers::roles(&ctx),
        (R::Events, M::GET) => events_ws::upgrade(&ctx, req),
        (R::Terminal(id), M::GET) => terminal_ws::upgrade(&ctx, id, req),
        (R::Tokens, M::GET) => tokens::list(&ctx),
        (R::Tokens, M::POST) => tokens::create(&ctx, req).await,
        (R::TokenValidate, M::GET) => tokens::validate(&ctx),
        (R::Token(id), M::DELETE) => tokens::revoke(&ctx, id).await,
        (R::TokenPermanent(id), M::DELETE) => tokens::delete(&ctx, id).await,
        (R::Users, M::GET) => admin::list_users(&ctx),
        (R::Users, M::POST) => admin::create_user(&ctx, req).await,
        (R::User(id), M::PATCH) => admin::set_tier(&ctx, id, req).await,
        (R::User(id), M::DELETE) => admin::delete_user(&ctx, id).await,
        (R::UserTokens(id), M::POST) => admin::create_token(&ctx, id, req).await,
        _ => Err(HttpError::MethodNotAllowed),
    }
}

#[cfg(test)]
mod tests {
    use super::Route;

    #[test]
    fn parses_paths() {
        assert_eq!(
            Route::parse("/api/containers/abc/start"),
            Some(Route::Start("abc"))
        );
        assert_eq!(Route::parse("/api/containers/"), Some(Route::Containers));
        assert_eq!(
            Route::parse("/api/tokens/validate"),
            Some(Route::TokenValidate)
        );
        assert_eq!(Route::parse("/api/containers/a/b/c"), None);
        assert_eq!(Route::parse("/"), None);
        assert_eq!(
            Route::parse("/api/containers//start"),
            Some(Route::Start(""))
        );
    }
}
