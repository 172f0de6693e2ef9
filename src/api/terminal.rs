use serde::{Deserialize, Serialize};

/// What a terminal client sends as JSON text frames. Anything else (a binary frame, or text
/// that is not one of these) is raw input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalIn {
    Input { data: String },
    Resize { cols: u16, rows: u16 },
    Ping,
}

/// What the server sends as JSON text frames (output too, in the default framing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TerminalOut {
    /// The connection key (`?id=`), for reconnecting.
    Connected {
        data: String,
    },
    /// The container is not running yet; `data` is its status.
    ContainerStatus {
        data: String,
    },
    ShellStarting,
    ShellReady,
    Output {
        data: String,
    },
    Error {
        data: String,
    },
    Pong,
    /// The shell ended with this code; a normal close follows.
    Exit {
        code: i64,
    },
}
