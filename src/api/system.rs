use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DockerStatus {
    Ok,
    Unavailable,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    pub status: HealthStatus,
    pub docker: DockerStatus,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Version {
    pub version: String,
    pub api_version: String,
    #[serde(default)]
    pub docker_api_version: Option<String>,
    /// Whether `disk_mb` is enforced on this host (Docker's `storage-opt size`); false until
    /// Docker has been reached.
    #[serde(default)]
    pub disk_quota: bool,
}
