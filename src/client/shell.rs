//! `rexecctl shell`: an interactive terminal over the binary-framed WebSocket. The local
//! terminal is put in raw mode and restored on every way out; SIGWINCH becomes a resize; the
//! shell's exit code becomes ours.

use std::os::fd::AsFd;

use futures_util::{SinkExt, StreamExt};
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::signal::unix::{signal, SignalKind};
use tokio_tungstenite::tungstenite::Message;

use super::{Client, ClientError};
use crate::api::{TerminalIn, TerminalOut};

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The local terminal's size, if stdin is one.
fn size() -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ fills a winsize; fd 0 is ours for the life of the process.
    unsafe { tiocgwinsz(0, &mut ws) }.ok()?;
    (ws.ws_col > 0 && ws.ws_row > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Raw mode for as long as it lives.
struct RawMode(Option<Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = termios::tcgetattr(stdin.as_fd()) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        let _ = termios::tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(saved) = &self.0 {
            let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
        }
    }
}

fn proto(e: impl std::fmt::Display) -> ClientError {
    ClientError::Protocol(e.to_string())
}

/// Runs an interactive shell; returns the remote shell's exit code.
pub async fn run(client: &Client, id: &str, conn: &str) -> Result<i32, ClientError> {
    let (cols, rows) = size().unwrap_or((80, 24));
    let path = format!(
        "/ws/terminal/{}?id={conn}&cols={cols}&rows={rows}",
        super::encode(id)
    );
    let (ws, _) = client
        .websocket(&path, &[("Sec-WebSocket-Protocol", "rexec.binary")])
        .await?;
    let (mut tx, mut rx) = ws.split();
    let _raw = RawMode::enter();
    let mut winch = signal(SignalKind::window_change()).map_err(proto)?;
    let mut stdin = tokio::io::stdin();
    let mut stdout = tokio::io::stdout();
    let mut buf = vec![0u8; 8192];
    let mut stdin_open = true;
    loop {
        tokio::select! {
            msg = rx.next() => match msg {
                Some(Ok(Message::Binary(b))) => {
                    stdout.write_all(&b).await.map_err(proto)?;
                    stdout.flush().await.map_err(proto)?;
                }
                Some(Ok(Message::Text(t))) => match serde_json::from_str::<TerminalOut>(&t) {
                    Ok(TerminalOut::Exit { code }) => {
                        return Ok(i32::try_from(code).ok().filter(|c| (0..=255).contains(c)).unwrap_or(255));
                    }
                    Ok(TerminalOut::Error { data }) => return Err(ClientError::Protocol(data)),
                    _ => {}
                },
                Some(Ok(Message::Close(_))) | None => return Err(ClientError::Protocol("the terminal closed".into())),
                Some(Err(e)) => return Err(proto(e)),
                Some(Ok(_)) => {}
            },
            n = stdin.read(&mut buf), if stdin_open => match n {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => tx.send(Message::binary(buf[..n].to_vec())).await.map_err(proto)?,
            },
            _ = winch.recv() => {
                if let Some((cols, rows)) = size() {
                    let msg = serde_json::to_string(&TerminalIn::Resize { cols, rows }).unwrap_or_default();
                    tx.send(Message::text(msg)).await.map_err(proto)?;
                }
            }
        }
    }
}
