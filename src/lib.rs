//! rexec: a self-hosted "terminal as a service" daemon (`rexecd`) and its CLI (`rexecctl`).
//!
//! Start with `ARCHITECTURE.md` at the top of the repository: it maps these modules.
//!
//! - [`api`]: the wire contract, shared by the daemon, the client and the tests.
//! - [`daemon`]: everything only `rexecd` needs.
//! - [`client`]: the typed client and the `rexecctl` commands.
//! - [`tls`]: PEM reading shared by the daemon's TLS listener and the client.

pub mod api;
pub mod client;
pub mod daemon;
pub mod tls;
