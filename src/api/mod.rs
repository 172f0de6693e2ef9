//! The wire contract: serde types only, shared by the daemon, `rexecctl` and the tests.
//!
//! Nothing here knows about HTTP, Docker or redb. `docs/api.md` describes the same shapes
//! for people; when one changes, so does the other.

mod containers;
mod error;
mod events;
mod system;
mod terminal;
mod users;

pub use containers::*;
pub use error::*;
pub use events::*;
pub use system::*;
pub use terminal::*;
pub use users::*;

/// The API version reported by `GET /api/version`.
pub const API_VERSION: &str = "v1";
