//! HTTP plumbing shared by the handlers: bodies in, JSON out, and the one mapping from
//! domain errors to statuses and bodies.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::api::ErrorBody;
use crate::daemon::error::Error;

/// Response bodies: whole JSON, or a stream (downloads) that may fail midway.
pub type Body = UnsyncBoxBody<Bytes, std::io::Error>;
pub type Resp = Response<Body>;

/// JSON bodies above this are refused with 413.
pub const MAX_JSON_BODY: usize = 1 << 20;

/// Errors of the HTTP layer itself, beside the domain's.
#[derive(Debug)]
pub enum HttpError {
    Domain(Error),
    NoRoute,
    MethodNotAllowed,
    TooLarge,
    RateLimited { retry_after_secs: u64 },
}

impl From<Error> for HttpError {
    fn from(e: Error) -> Self {
        HttpError::Domain(e)
    }
}

pub type HttpResult = Result<Resp, HttpError>;

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never: Infallible| match never {})
        .boxed_unsync()
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    let bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

pub fn ok<T: Serialize>(value: &T) -> HttpResult {
    Ok(json(StatusCode::OK, value))
}

/// Reads the whole body, at most [`MAX_JSON_BODY`] bytes.
pub async fn body_bytes(req: Request<Incoming>) -> Result<Bytes, HttpError> {
    match Limited::new(req.into_body(), MAX_JSON_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(HttpError::TooLarge),
        Err(e) => Err(Error::BadRequest(format!("invalid request body: {e}")).into()),
    }
}

/// Reads and parses a JSON object body; an empty body reads as `{}`.
pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, HttpError> {
    let bytes = body_bytes(req).await?;
    let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &bytes
    };
    Ok(crate::daemon::json_object(bytes)?)
}

/// An error body with its message and machine-readable code.
pub fn body(error: impl Into<String>, code: &str) -> ErrorBody {
    ErrorBody {
        error: error.into(),
        code: code.into(),
        ..Default::default()
    }
}

/// The status and body of every error. Exhaustive on purpose: a new variant does not compile
/// until someone decides its status.
pub fn error_response(e: &HttpError, request_id: &str) -> (StatusCode, ErrorBody) {
    use StatusCode as S;
    let e = match e {
        HttpError::NoRoute => return (S::NOT_FOUND, body("not found", "not_found")),
        HttpError::MethodNotAllowed => {
            return (
                S::METHOD_NOT_ALLOWED,
                body("method not allowed", "method_not_allowed"),
            )
        }
        HttpError::TooLarge => {
            return (
                S::PAYLOAD_TOO_LARGE,
                body("request body too large", "payload_too_large"),
            )
        }
        HttpError::RateLimited { .. } => {
            return (
                S::TOO_MANY_REQUESTS,
                body("rate limit exceeded", "rate_limited"),
            )
        }
        HttpError::Domain(e) => e,
    };
    match e {
        Error::BadRequest(m) => (S::BAD_REQUEST, body(m.clone(), "invalid_request")),
        Error::UnsupportedImage { supported } => (
            S::BAD_REQUEST,
            ErrorBody {
                supported_images: Some(supported.clone()),
                ..body("unsupported image type", "unsupported_image")
            },
        ),
        Error::UnsupportedRole { supported } => (
            S::BAD_REQUEST,
            ErrorBody {
                supported_roles: Some(supported.clone()),
                ..body("unsupported role", "unsupported_role")
            },
        ),
        Error::UnsupportedTheme { supported } => (
            S::BAD_REQUEST,
            ErrorBody {
                supported_themes: Some(supported.clone()),
                ..body("unsupported theme", "unsupported_theme")
            },
        ),
        Error::Unauthorized => (S::UNAUTHORIZED, body("unauthorized", "unauthorized")),
        Error::Forbidden(m) => (S::FORBIDDEN, body(m.clone(), "forbidden")),
        Error::TierRequired(t) => (
            S::FORBIDDEN,
            body(format!("image requires the {t} tier"), "tier_required"),
        ),
        Error::LimitReached {
            current,
            limit,
            tier,
        } => (
            S::FORBIDDEN,
            ErrorBody {
                current: Some(*current),
                limit: Some(*limit),
                tier: Some(tier.as_str().into()),
                message: Some("Upgrade your plan to create more containers".into()),
                ..body("container limit reached", "limit_reached")
            },
        ),
        Error::SessionExpired => (S::FORBIDDEN, body("session expired", "session_expired")),
        Error::NotFound(what) => (
            S::NOT_FOUND,
            body(format!("{what} not found"), &format!("{what}_not_found")),
        ),
        Error::NameTaken(name) => (
            S::CONFLICT,
            ErrorBody {
                name: Some(name.clone()),
                ..body("container with this name already exists", "name_taken")
            },
        ),
        Error::NotRunning { status } => (
            S::BAD_REQUEST,
            ErrorBody {
                status: Some(status.as_str().into()),
                ..body("container is not running", "container_stopped")
            },
        ),
        Error::BeingCreated => (
            S::CONFLICT,
            body("container is being created", "container_creating"),
        ),
        Error::Conflict { message, code } => (S::CONFLICT, body(message.clone(), code)),
        Error::Unavailable => (
            S::SERVICE_UNAVAILABLE,
            body(
                "container service temporarily unavailable",
                "docker_unavailable",
            ),
        ),
        Error::Internal(_) => (
            S::INTERNAL_SERVER_ERROR,
            ErrorBody {
                request_id: Some(request_id.into()),
                ..body("internal server error", "internal")
            },
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::catalog::Tier;

    #[test]
    fn statuses_and_bodies_follow_the_contract() {
        let (s, b) = error_response(
            &Error::LimitReached {
                current: 5,
                limit: 5,
                tier: Tier::Free,
            }
            .into(),
            "r",
        );
        assert_eq!(s, 403);
        assert_eq!(
            serde_json::to_value(&b).unwrap(),
            serde_json::json!({"error":"container limit reached","code":"limit_reached","current":5,"limit":5,"tier":"free","message":"Upgrade your plan to create more containers"})
        );
        let (s, b) = error_response(
            &Error::Internal("socket /var/run/docker.sock".into()).into(),
            "req_1",
        );
        assert_eq!(s, 500);
        assert_eq!(b.error, "internal server error");
        assert_eq!(b.request_id.as_deref(), Some("req_1"));
        assert_eq!(
            error_response(&Error::NotFound("container").into(), "r")
                .1
                .code,
            "container_not_found"
        );
        assert_eq!(error_response(&HttpError::TooLarge, "r").0, 413);
        assert_eq!(error_response(&Error::Unavailable.into(), "r").0, 503);
    }
}
