use serde::{Deserialize, Serialize};

use super::{Container, Stage};

/// One message of `GET /ws/events`: the typed body plus `seq` and `timestamp`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(flatten)]
    pub body: EventBody,
    pub seq: u64,
    pub timestamp: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventBody {
    ContainerProgress(Progress),
    ContainerCreated(Container),
    ContainerUpdated(Container),
    ContainerDeleted(Deleted),
}

impl EventBody {
    /// The `db_id` of the container the event is about.
    pub fn db_id(&self) -> &str {
        match self {
            Self::ContainerProgress(p) => &p.id,
            Self::ContainerCreated(c) | Self::ContainerUpdated(c) => &c.db_id,
            Self::ContainerDeleted(d) => &d.db_id,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The container's `db_id`.
    pub id: String,
    pub stage: Stage,
    pub message: String,
    pub progress: u8,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub complete: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<Box<Container>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeleteReason {
    User,
    Admin,
    Expired,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deleted {
    /// The container's last `id`.
    pub id: String,
    pub db_id: String,
    pub name: String,
    pub reason: DeleteReason,
}

/// Control messages on the events socket that are not events (no `seq`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum EventControl {
    ReplayGap { oldest_seq: u64 },
    Pong,
    Ping,
}
