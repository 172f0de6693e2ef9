//! What is stored. These are not API types: conversions to and from the wire are written out
//! in the domain modules. New fields need `#[serde(default)]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    Creating,
    Configuring,
    Running,
    Stopped,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordStage {
    Validating,
    Pulling,
    Creating,
    Starting,
    Configuring,
    Ready,
    Error,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShellRecord {
    #[serde(default)]
    pub enhanced: Option<bool>,
    #[serde(default)]
    pub theme: Option<String>,
    #[serde(default)]
    pub autosuggestions: Option<bool>,
    #[serde(default)]
    pub syntax_highlight: Option<bool>,
    #[serde(default)]
    pub history_search: Option<bool>,
    #[serde(default)]
    pub git_aliases: Option<bool>,
    #[serde(default)]
    pub system_stats: Option<bool>,
    #[serde(default)]
    pub use_tmux: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub db_id: String,
    pub user_id: String,
    pub name: String,
    /// The request's image key, or `custom:<ref>`.
    pub image: String,
    /// The Docker reference actually run.
    pub docker_image: String,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub shell: ShellRecord,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub memory_mb: u64,
    pub cpu_shares: u64,
    pub disk_mb: u64,
    pub status: RecordStatus,
    #[serde(default)]
    pub stage: Option<RecordStage>,
    #[serde(default)]
    pub progress: u8,
    #[serde(default)]
    pub error: Option<String>,
    /// Full Docker id, once the Docker container exists.
    #[serde(default)]
    pub docker_id: Option<String>,
    pub volume: String,
    #[serde(default)]
    pub ip_address: Option<String>,
    #[serde(default)]
    pub disk_enforced: bool,
    pub created_at_ms: i64,
    pub last_used_at_ms: i64,
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    /// Role and shell set-up; `None` on records older than set-up.
    #[serde(default)]
    pub setup: Option<SetupRecord>,
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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupStepRecord {
    /// The role or shell option the step is for (`probe`, `shell`, `node`, `use_tmux`, ...).
    pub name: String,
    pub tool: String,
    pub state: SetupState,
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
    #[serde(default)]
    pub error: Option<String>,
    /// `already present`, `installed`, or why it was skipped.
    #[serde(default)]
    pub detail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupRecord {
    pub state: SetupState,
    #[serde(default)]
    pub steps: Vec<SetupStepRecord>,
    #[serde(default)]
    pub started_at_ms: Option<i64>,
    #[serde(default)]
    pub finished_at_ms: Option<i64>,
    pub updated_at_ms: i64,
    /// The first failure, `step (tool): why`.
    #[serde(default)]
    pub error: Option<String>,
    /// What the probe found: package-manager family and the login shell chosen.
    #[serde(default)]
    pub family: Option<String>,
    #[serde(default)]
    pub login_shell: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub name: String,
    /// A tier name from the catalog (`guest`, `free`, `pro`, `enterprise`).
    pub tier: String,
    #[serde(default)]
    pub admin: bool,
    pub created_at_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    pub id: String,
    pub user_id: String,
    pub name: String,
    /// Hex SHA-256 of the token; the token itself is never stored.
    pub hash: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at_ms: i64,
    #[serde(default)]
    pub last_used_at_ms: Option<i64>,
    #[serde(default)]
    pub expires_at_ms: Option<i64>,
    #[serde(default)]
    pub revoked_at_ms: Option<i64>,
}

/// An event as sent, kept for `?since=` replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    /// Owner of the container the event is about; replay filters on it.
    pub user_id: String,
    /// The wire form of the event.
    pub json: String,
}
