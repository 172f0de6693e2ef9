//! The domain error: what went wrong, in terms a client can be told. `server::http` maps each
//! variant to a status and body in one exhaustive match.

use super::catalog::Tier;
use super::engine::EngineError;
use super::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("unsupported image type")]
    UnsupportedImage { supported: Vec<String> },
    #[error("unsupported role")]
    UnsupportedRole { supported: Vec<String> },
    #[error("unsupported theme")]
    UnsupportedTheme { supported: Vec<String> },
    #[error("unauthorized")]
    Unauthorized,
    /// Authenticated, but the token's scopes or the user's rights do not allow this.
    #[error("{0}")]
    Forbidden(String),
    #[error("image requires the {0} tier")]
    TierRequired(Tier),
    #[error("container limit reached")]
    LimitReached {
        current: u32,
        limit: u32,
        tier: Tier,
    },
    #[error("session expired")]
    SessionExpired,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("container with this name already exists")]
    NameTaken(String),
    #[error("container is being created")]
    BeingCreated,
    #[error("container is not running")]
    NotRunning { status: crate::api::ContainerStatus },
    #[error("{message}")]
    Conflict { message: String, code: &'static str },
    #[error("container service temporarily unavailable")]
    Unavailable,
    /// Anything else. The detail goes to the log, never to the client.
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Internal(format!("store: {e}"))
    }
}

impl From<EngineError> for Error {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::Unavailable(_) => Error::Unavailable,
            other => Error::Internal(other.to_string()),
        }
    }
}
