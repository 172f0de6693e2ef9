use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Lifecycle status of a container as the API reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContainerStatus {
    Creating,
    Configuring,
    Running,
    Stopped,
    Error,
}

impl ContainerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Configuring => "configuring",
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }
}

/// Stages of the asynchronous creation pipeline, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Validating,
    Pulling,
    Creating,
    Starting,
    Configuring,
    Ready,
    Error,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Validating => "validating",
            Self::Pulling => "pulling",
            Self::Creating => "creating",
            Self::Starting => "starting",
            Self::Configuring => "configuring",
            Self::Ready => "ready",
            Self::Error => "error",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    pub memory_mb: u64,
    pub cpu_shares: u64,
    pub disk_mb: u64,
}

/// Shell customisation options. Both `enhanced` and the documented `shell.enhanced`
/// spellings are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellOptions {
    #[serde(
        default,
        alias = "shell.enhanced",
        skip_serializing_if = "Option::is_none"
    )]
    pub enhanced: Option<bool>,
    #[serde(
        default,
        alias = "shell.theme",
        skip_serializing_if = "Option::is_none"
    )]
    pub theme: Option<String>,
    #[serde(
        default,
        alias = "shell.autosuggestions",
        skip_serializing_if = "Option::is_none"
    )]
    pub autosuggestions: Option<bool>,
    #[serde(
        default,
        alias = "shell.syntax_highlight",
        skip_serializing_if = "Option::is_none"
    )]
    pub syntax_highlight: Option<bool>,
    #[serde(
        default,
        alias = "shell.history_search",
        skip_serializing_if = "Option::is_none"
    )]
    pub history_search: Option<bool>,
    #[serde(
        default,
        alias = "shell.git_aliases",
        skip_serializing_if = "Option::is_none"
    )]
    pub git_aliases: Option<bool>,
    #[serde(
        default,
        alias = "shell.system_stats",
        skip_serializing_if = "Option::is_none"
    )]
    pub system_stats: Option<bool>,
    #[serde(
        default,
        alias = "shell.use_tmux",
        skip_serializing_if = "Option::is_none"
    )]
    pub use_tmux: Option<bool>,
}

/// `POST /api/containers` as a client sends it. The daemon parses the body itself, field by
/// field, so that it can report each validation rule in the documented order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateContainerRequest {
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<ShellOptions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// The 202 answer to a create.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreateContainerResponse {
    pub id: String,
    pub db_id: String,
    pub user_id: String,
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub status: ContainerStatus,
    pub created_at: String,
    #[serde(rename = "async")]
    pub is_async: bool,
    pub message: String,
    pub resources: Resources,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_limit_seconds: Option<i64>,
}

/// The container object of list items, `GET /api/containers/:id` and events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub db_id: String,
    pub user_id: String,
    pub name: String,
    pub image: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub status: ContainerStatus,
    pub created_at: String,
    pub last_used_at: String,
    pub idle_seconds: f64,
    pub resources: Resources,
    pub disk_enforced: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_limit_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<Setup>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Skipped,
}

impl SetupState {
    pub fn as_str(self) -> &'static str {
        match self {
            SetupState::Pending => "pending",
            SetupState::Running => "running",
            SetupState::Succeeded => "succeeded",
            SetupState::Failed => "failed",
            SetupState::Skipped => "skipped",
        }
    }
}

/// One step of role and shell set-up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupStep {
    /// The role or shell option it is for: `probe`, `shell`, `node`, `use_tmux`, ...
    pub name: String,
    pub tool: String,
    pub state: SetupState,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `already present`, `installed`, or why the step was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The container's `setup` field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    pub state: SetupState,
    pub steps: Vec<SetupStep>,
    pub updated_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    /// The first failure: `step (tool): why`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The image's package-manager family (`apt`, `apk`, `pacman`, `none`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// The shell terminals start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_shell: Option<String>,
}

/// `GET /api/containers/:id/shell/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShellStatus {
    #[serde(flatten)]
    pub setup: Setup,
    /// The last 64 KiB of set-up output.
    pub log_tail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerList {
    pub containers: Vec<Container>,
    pub count: usize,
    pub limit: u32,
}

/// Answer to start and stop.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LifecycleResponse {
    pub message: String,
    pub id: String,
    pub name: String,
    pub status: ContainerStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recreated: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_kept: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeleteResponse {
    pub message: String,
    pub id: String,
    pub db_id: String,
    pub name: String,
}

/// `PATCH /api/containers/:id/settings`: omitted fields keep their values.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SettingsRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
}

/// `POST /api/containers/:id/exec`: `cmd` (argv) or `command` (run by `sh -c`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ExecRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExecResponse {
    pub exit_code: i64,
    pub stdout: String,
    pub stderr: String,
    pub timed_out: bool,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

/// One entry of a directory listing.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    pub path: String,
    pub size: u64,
    /// Permission bits in octal, e.g. `"0644"`.
    pub mode: String,
    pub modified: String,
    pub is_dir: bool,
    #[serde(default)]
    pub is_symlink: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FileList {
    pub path: String,
    pub files: Vec<FileEntry>,
    pub count: usize,
    /// More entries than a listing returns (10,000).
    #[serde(default)]
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadResponse {
    pub message: String,
    pub filename: String,
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PathRequest {
    #[serde(default)]
    pub path: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PathResponse {
    pub message: String,
    pub path: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageInfo {
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tier: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<ImageInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleInfo {
    pub name: String,
    pub description: String,
    pub tools: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoleList {
    pub roles: Vec<RoleInfo>,
}
