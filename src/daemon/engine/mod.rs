//! The container engine as rexecd needs it: a narrow trait and its types. Only
//! [`docker`] imports bollard; nothing of bollard leaks past this module.

mod docker;

use std::collections::HashMap;

use async_trait::async_trait;
use futures_util::stream::BoxStream;

pub use docker::DockerEngine;

/// Engine failures, classified once (by status code or transport error, never by text).
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// The engine cannot be reached at all.
    #[error("container engine unavailable: {0}")]
    Unavailable(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("conflict: {0}")]
    Conflict(String),
    /// The engine refused the request (4xx other than 404/409).
    #[error("rejected by the engine ({status}): {message}")]
    Rejected { status: u16, message: String },
    /// A pull failed inside the progress stream.
    #[error("image pull failed: {0}")]
    PullFailed(String),
    #[error("engine error: {0}")]
    Other(String),
}

pub type Result<T> = std::result::Result<T, EngineError>;

#[derive(Debug, Clone, Default)]
pub struct EngineInfo {
    pub api_version: String,
    pub server_version: String,
    pub ncpu: u32,
    pub storage_driver: String,
    pub backing_filesystem: String,
}

/// Everything needed to create one container, in our own terms.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    pub hostname: String,
    pub env: Vec<String>,
    pub labels: HashMap<String, String>,
    pub memory_bytes: i64,
    pub nano_cpus: i64,
    pub pids_limit: i64,
    pub cap_add: Vec<String>,
    pub network: String,
    pub volume: String,
    pub home: String,
    /// `storage-opt size` in bytes, where the driver enforces it.
    pub disk_bytes: Option<u64>,
    pub init: bool,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    pub id: String,
    pub running: bool,
    pub ip_address: Option<String>,
}

/// A Docker container carrying rexec's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedContainer {
    pub id: String,
    pub db_id: Option<String>,
    pub running: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedVolume {
    pub name: String,
    pub db_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineEventKind {
    Started,
    Died,
    Destroyed,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineEvent {
    pub container_id: String,
    pub db_id: Option<String>,
    pub kind: EngineEventKind,
}

/// A process to run inside a container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecSpec {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: String,
    pub tty: bool,
}

/// Output of an exec: stdout and stderr apart (a TTY has only stdout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecChunk {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

/// A started exec: its id, its output and its stdin.
pub struct ExecSession {
    pub id: String,
    pub output: BoxStream<'static, Result<ExecChunk>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecState {
    pub running: bool,
    pub exit_code: Option<i64>,
    /// The process's pid on the host.
    pub pid: Option<i64>,
}

/// What Docker says of a path inside a container (its archive `stat`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathStat {
    pub name: String,
    pub size: u64,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    pub is_dir: bool,
    pub is_symlink: bool,
    pub link_target: String,
    pub modified: Option<String>,
}

/// Pull progress: bytes done and total over the layers seen so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PullProgress {
    pub current: u64,
    pub total: u64,
}

pub type ProgressFn<'a> = &'a mut (dyn FnMut(PullProgress) + Send);

#[async_trait]
pub trait Engine: Send + Sync + 'static {
    /// Connects (negotiating the API version) and describes the engine.
    async fn info(&self) -> Result<EngineInfo>;
    async fn image_present(&self, image: &str) -> Result<bool>;
    async fn pull(&self, image: &str, progress: ProgressFn<'_>) -> Result<()>;
    /// Creates the named bridge network if it does not exist.
    async fn ensure_network(&self, name: &str, labels: &HashMap<String, String>) -> Result<()>;
    async fn create_volume(&self, name: &str, labels: &HashMap<String, String>) -> Result<()>;
    async fn volume_exists(&self, name: &str) -> Result<bool>;
    /// Removes a volume; a missing one is not an error.
    async fn remove_volume(&self, name: &str) -> Result<()>;
    /// Creates a container and returns its full id.
    async fn create_container(&self, spec: &ContainerSpec) -> Result<String>;
    /// Starts a container; starting a running one is not an error.
    async fn start(&self, id: &str) -> Result<()>;
    /// Stops a container; stopping a stopped one is not an error.
    async fn stop(&self, id: &str, timeout_seconds: u32) -> Result<()>;
    /// Force-removes a container; a missing one is not an error.
    async fn remove_container(&self, id: &str) -> Result<()>;
    /// `None` when the container does not exist.
    async fn inspect(&self, id: &str) -> Result<Option<ContainerState>>;
    /// Containers carrying the given label (`key=value`).
    async fn list_containers(&self, label: &str) -> Result<Vec<ManagedContainer>>;
    async fn list_volumes(&self, label: &str) -> Result<Vec<ManagedVolume>>;
    async fn update_resources(&self, id: &str, memory_bytes: i64, nano_cpus: i64) -> Result<()>;
    /// Starts a process in a running container, attached to its stdin and output.
    async fn exec_start(&self, container: &str, spec: &ExecSpec) -> Result<ExecSession>;
    async fn exec_inspect(&self, exec_id: &str) -> Result<ExecState>;
    /// Sets a TTY exec's window size.
    async fn exec_resize(&self, exec_id: &str, cols: u16, rows: u16) -> Result<()>;
    /// `None` when the path does not exist. Paths resolve inside the container's filesystem.
    async fn path_stat(&self, container: &str, path: &str) -> Result<Option<PathStat>>;
    /// A tar stream of `path` (a file or a whole directory).
    async fn download(
        &self,
        container: &str,
        path: &str,
    ) -> BoxStream<'static, Result<bytes::Bytes>>;
    /// Extracts a tar stream into the directory `dir`; an error in the stream aborts it.
    async fn upload(
        &self,
        container: &str,
        dir: &str,
        tar: BoxStream<'static, std::io::Result<bytes::Bytes>>,
    ) -> Result<()>;
    /// Container start/die/destroy events for containers carrying the label, from `since`
    /// (Unix seconds) on. The stream ends or errors when the engine goes away.
    async fn events(&self, label: &str, since: i64) -> BoxStream<'static, Result<EngineEvent>>;
}

/// A running container's address on `network`; `None` without a network or when the engine
/// cannot say (an address is informational, never worth failing an operation for).
pub async fn address_on(engine: &dyn Engine, network: &str, id: &str) -> Option<String> {
    if network == "none" {
        return None;
    }
    engine
        .inspect(id)
        .await
        .ok()
        .flatten()
        .and_then(|s| s.ip_address)
}

/// Whether the engine answered recently. Set by the monitor and by failing calls; read by
/// `/health` and by create, which refuses work while Docker is down.
#[derive(Debug)]
pub struct Availability(tokio::sync::watch::Sender<bool>);

impl Default for Availability {
    fn default() -> Self {
        Self(tokio::sync::watch::Sender::new(false))
    }
}

impl Availability {
    pub fn is_up(&self) -> bool {
        *self.0.borrow()
    }

    /// Sets the state; returns the previous one.
    pub fn set(&self, up: bool) -> bool {
        self.0.send_replace(up)
    }

    /// Waits until the engine is up (at once if it is).
    pub async fn wait_up(&self) {
        let _ = self.0.subscribe().wait_for(|up| *up).await;
    }
}
