//! Everything only the daemon needs. [`run`] wires it together in dependency order; see
//! ARCHITECTURE.md for the map.

pub mod auth;
pub mod catalog;
mod clock;
pub mod config;
pub mod containers;
pub mod engine;
pub mod error;
mod events;
pub mod exec;
pub mod files;
mod jobs;
pub mod listen;
mod names;
mod provision;
mod reconcile;
mod registry;
mod server;
pub mod setup;
mod spec;
pub mod store;
pub mod terminal;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use self::auth::{Auth, SystemAccounts};
use self::catalog::Catalog;
use self::config::Config;
use self::containers::Containers;
use self::engine::{Availability, DockerEngine, Engine};
use self::events::EventHub;
use self::jobs::Jobs;
use self::provision::Provisioner;
use self::registry::Registry;
use self::spec::SpecBuilder;
use self::store::Store;

/// Parses a request body that must be a JSON object. serde would also take an array and
/// fill the fields by position, which no client means.
pub fn json_object<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> error::Result<T> {
    let bad =
        |e: &dyn std::fmt::Display| error::Error::BadRequest(format!("invalid request body: {e}"));
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| bad(&e))?;
    if !value.is_object() {
        return Err(bad(&"expected a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| bad(&e))
}

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("opening the store: {0}")]
    Store(#[from] store::StoreError),
    #[error("{0}")]
    Domain(#[from] error::Error),
    #[error("{0}")]
    Catalog(String),
    #[error("engine client: {0}")]
    Engine(#[from] engine::EngineError),
    #[error("socket {path}: {source}")]
    Socket {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(#[from] config::ConfigError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("inherited socket: {0}")]
    Inherited(String),
    #[error("tcp listener {addr}: {source}")]
    Tcp {
        addr: String,
        source: std::io::Error,
    },
}

/// The daemon's shared state, built once in [`run`].
pub struct AppState {
    pub auth: Arc<Auth>,
    pub containers: Arc<Containers>,
    pub exec: Arc<exec::Exec>,
    pub setup: Arc<setup::Setup>,
    pub files: files::Files,
    pub terminals: Arc<terminal::Terminals>,
    pub hub: Arc<EventHub>,
    pub availability: Arc<Availability>,
    pub spec: Arc<SpecBuilder>,
    pub limiter: server::ratelimit::RateLimiter,
    pub tracker: TaskTracker,
    pub shutdown: CancellationToken,
}

fn prepare_dir(path: &Path, mode: u32) -> Result<(), StartError> {
    let err = |source| StartError::DataDir {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(path).map_err(err)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(err)
}

/// How long start-up waits for Docker before it reports ready anyway.
const READY_WAIT_FOR_DOCKER: Duration = Duration::from_secs(10);

/// Runs the daemon until `shutdown` is cancelled (the binary cancels it on SIGTERM/SIGINT).
/// `inherited` holds the sockets of a socket activation ([`listen::Inherited::take`]).
pub async fn run(
    config: Config,
    inherited: listen::Inherited,
    shutdown: CancellationToken,
) -> Result<(), StartError> {
    prepare_dir(config.data_dir(), 0o700)?;
    let store = Store::open(&config.db_path())?;
    let instance = store.instance_id(|| uuid::Uuid::new_v4().simple().to_string())?;
    let hub = Arc::new(EventHub::new(store.clone())?);
    let registry = Arc::new(Registry::new(
        store.clone(),
        hub.clone(),
        store.containers()?,
        config.events.retain,
    ));
    let interrupted = reconcile::fail_interrupted(&registry).await?;
    if interrupted > 0 {
        warn!(
            count = interrupted,
            "creations interrupted by a restart are marked as failed"
        );
    }
    let auth = Arc::new(Auth::new(
        store.clone(),
        Box::new(SystemAccounts::new(config.auth.admin_group.clone())),
        config.auth.local_tier,
    )?);
    let catalog = Arc::new(Catalog::from_config(&config).map_err(StartError::Catalog)?);
    let engine: Arc<dyn Engine> = Arc::new(DockerEngine::new(&config.docker.socket)?);
    let availability = Arc::new(Availability::default());
    let spec = Arc::new(SpecBuilder::new(config.docker.clone(), instance));
    let tracker = TaskTracker::new();
    let setup = Arc::new(setup::Setup::new(
        registry.clone(),
        engine.clone(),
        store.clone(),
        catalog.clone(),
        Duration::from_secs(config.setup.step_timeout_seconds.max(1)),
        Jobs::new(tracker.clone(), shutdown.clone()),
    ));
    let provisioner = Arc::new(Provisioner::new(
        registry.clone(),
        engine.clone(),
        availability.clone(),
        spec.clone(),
        setup.clone(),
        config.server.max_concurrent_creations,
        Jobs::new(tracker.clone(), shutdown.clone()),
    ));
    let containers = Arc::new(Containers::new(
        registry.clone(),
        engine.clone(),
        availability.clone(),
        catalog,
        provisioner.clone(),
        setup.clone(),
        spec.clone(),
    ));
    let exec = Arc::new(exec::Exec::new(registry.clone(), engine.clone()));
    let state = Arc::new(AppState {
        auth,
        containers: containers.clone(),
        terminals: terminal::Terminals::new(
            registry.clone(),
            engine.clone(),
            Duration::from_secs(config.terminal.reconnect_grace_seconds),
            tracker.clone(),
            shutdown.clone(),
        ),
        exec: exec.clone(),
        setup,
        files: files::Files::new(
            registry.clone(),
            engine.clone(),
            exec,
            config.data_dir().join("spool"),
        ),
        hub,
        availability: availability.clone(),
        spec: spec.clone(),
        limiter: server::ratelimit::RateLimiter::new(config.limits.writes_per_minute),
        tracker: tracker.clone(),
        shutdown: shutdown.clone(),
    });

    let listeners = listen::Listeners::open(&config, inherited)?;

    let monitor = reconcile::Monitor {
        registry,
        engine,
        availability,
        spec,
        provisioner,
    };
    tracker.spawn(monitor.run(shutdown.clone()));
    tracker.spawn(reconcile::reaper(
        containers,
        Duration::from_secs(config.reaper.interval_seconds),
        shutdown.clone(),
    ));
    let listen::Listeners {
        unix,
        unix_path,
        owned_socket,
        tcp,
        activated,
    } = listeners;
    let tcp_desc = tcp.as_ref().map(|t| match t.tls {
        Some(_) => format!("https://{}", t.addr),
        None => format!("http://{}", t.addr),
    });
    info!(socket = %unix_path, tcp = ?tcp_desc, socket_activated = activated, "rexecd listening");
    tracker.spawn(server::serve_unix(state.clone(), unix, shutdown.clone()));
    if let Some(tcp) = tcp {
        tracker.spawn(server::serve_tcp(state.clone(), tcp, shutdown.clone()));
    }
    // Ready means able to create: give the monitor a moment to reach Docker first. If Docker
    // is down, rexecd is still ready (reads work, creates get 503) and the status says so.
    let docker_up = tokio::select! {
        r = tokio::time::timeout(READY_WAIT_FOR_DOCKER, state.availability.wait_up()) => r.is_ok(),
        _ = shutdown.cancelled() => false,
    };
    let serving = match tcp_desc {
        Some(tcp) => format!("serving on {unix_path} and {tcp}"),
        None => format!("serving on {unix_path}"),
    };
    if !shutdown.is_cancelled() {
        listen::notify_ready(&match docker_up {
            true => serving,
            false => format!("{serving}; Docker unavailable"),
        });
    }

    shutdown.cancelled().await;
    info!("shutting down");
    listen::notify_stopping();
    state.terminals.end_all().await;
    tracker.close();
    // Open connections and WebSockets are given a moment, then dropped with the runtime.
    if tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .is_err()
    {
        warn!("some tasks did not finish within 5 s of shutdown");
    }
    // A socket systemd owns stays for the next activation.
    if let Some(path) = owned_socket {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
