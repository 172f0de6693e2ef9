//! Terminal sessions: a shell in a TTY exec, shared by every viewer attached under one
//! connection key, kept for a grace period after the last viewer leaves so that a reconnect
//! finds the same shell (and first gets the last 64 KiB of its output).
//!
//! Output flows reader task → each viewer's bounded channel → its WebSocket. The reader waits
//! for the slowest viewer, so a slow client slows the shell down instead of being buffered
//! without bound or cut off.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info};

use super::auth::User;
use super::engine::{Engine, ExecChunk, ExecSpec};
use super::error::{Error, Result};
use super::exec::kill_tree;
use super::registry::{self, Registry};
use super::spec::HOME;
use super::store::{ContainerRecord, RecordStatus};

/// Output kept for a reconnecting viewer.
pub const REPLAY_BYTES: usize = 64 * 1024;
/// Chunks a viewer may have in flight before the shell waits for it.
const VIEWER_QUEUE: usize = 32;
/// How long a terminal waits for a container that is still being created.
const START_WAIT: Duration = Duration::from_secs(120);

/// Starts the first shell of `REXEC_SHELLS` the image has (set-up's login shell first), in
/// tmux's `main` session when asked; sizes the TTY before the shell starts (API 1.41 has no
/// console size at exec start). Values come in through the environment, never spliced in.
const SHELL_SCRIPT: &str = r#"stty cols "$REXEC_COLS" rows "$REXEC_ROWS" 2>/dev/null
unset REXEC_COLS REXEC_ROWS
cd "$HOME" 2>/dev/null || cd /
for s in $REXEC_SHELLS; do
    if p=$(command -v "$s" 2>/dev/null); then SHELL=$p; export SHELL; break; fi
done
unset REXEC_SHELLS
if [ "$REXEC_TMUX" = 1 ] && command -v tmux >/dev/null 2>&1; then unset REXEC_TMUX; exec tmux new-session -A -s main; fi
unset REXEC_TMUX
if [ -n "${SHELL:-}" ]; then exec "$SHELL" -l; fi
exec /bin/sh"#;

/// Shells in order of preference: the one set-up chose, then zsh when the enhanced shell was
/// asked for, then the usual ones.
fn shell_order(rec: &ContainerRecord) -> String {
    let chosen = rec.setup.as_ref().and_then(|s| s.login_shell.as_deref());
    let zsh = (rec.shell.enhanced == Some(true)).then_some("zsh");
    let mut order: Vec<&str> = chosen.into_iter().chain(zsh).collect();
    for s in ["bash", "zsh", "ash", "sh"] {
        if !order.contains(&s) {
            order.push(s);
        }
    }
    order.join(" ")
}

pub enum Out {
    Data(Bytes),
    Exit(i64),
}

type Key = (String, String, String);

struct Shared {
    ring: VecDeque<u8>,
    viewers: Vec<(u64, mpsc::Sender<Out>)>,
    exit: Option<i64>,
}

pub struct Session {
    exec_id: String,
    input: mpsc::Sender<Bytes>,
    shared: tokio::sync::Mutex<Shared>,
    pid: Mutex<Option<i64>>,
}

/// One viewer's hold on a session.
pub struct Attachment {
    pub rx: mpsc::Receiver<Out>,
    pub session: Arc<Session>,
    viewer: u64,
    key: Key,
}

impl Attachment {
    pub async fn input(&self, bytes: Bytes) {
        let _ = self.session.input.send(bytes).await;
    }

    /// The container's `db_id`.
    pub fn db_id(&self) -> &str {
        &self.key.1
    }
}

pub struct Terminals {
    registry: Arc<Registry>,
    engine: Arc<dyn Engine>,
    grace: Duration,
    sessions: Mutex<HashMap<Key, Arc<Session>>>,
    next_viewer: AtomicU64,
    tracker: TaskTracker,
    shutdown: CancellationToken,
}

pub fn valid_size(cols: u16, rows: u16) -> bool {
    (1..=1000).contains(&cols) && (1..=1000).contains(&rows)
}

impl Terminals {
    pub fn new(
        registry: Arc<Registry>,
        engine: Arc<dyn Engine>,
        grace: Duration,
        tracker: TaskTracker,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            registry,
            engine,
            grace,
            sessions: Mutex::new(HashMap::new()),
            next_viewer: AtomicU64::new(1),
            tracker,
            shutdown,
        })
    }

    /// Before the upgrade: the container exists for this user and is, or will be, running.
    pub fn check(&self, user: &User, key: &str) -> Result<String> {
        let rec = self
            .registry
            .find(&user.id, key)
            .ok_or(Error::NotFound("container"))?;
        match rec.status {
            RecordStatus::Running | RecordStatus::Configuring | RecordStatus::Creating => {
                Ok(rec.db_id)
            }
            s => Err(Error::NotRunning {
                status: registry::status_to_api(s),
            }),
        }
    }

    /// The container's status while it cannot take a shell yet (`None` once it can, or when
    /// it never will: [`wait_ready`](Self::wait_ready) then says why).
    pub fn pending(&self, db_id: &str) -> Option<&'static str> {
        let rec = self.registry.get(db_id)?;
        match (rec.status, &rec.docker_id) {
            (RecordStatus::Creating, _) | (RecordStatus::Configuring, None) => {
                Some(registry::status_to_api(rec.status).as_str())
            }
            _ => None,
        }
    }

    /// Waits (bounded) until the container can take a shell; its Docker id.
    pub async fn wait_ready(&self, db_id: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let rec = self
                .registry
                .get(db_id)
                .ok_or(Error::NotFound("container"))?;
            match (rec.status, &rec.docker_id) {
                (RecordStatus::Running | RecordStatus::Configuring, Some(id)) => {
                    return Ok(id.clone())
                }
                (RecordStatus::Creating, _) | (RecordStatus::Configuring, None) => {}
                (s, _) => {
                    return Err(Error::NotRunning {
                        status: registry::status_to_api(s),
                    })
                }
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Unavailable);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Attaches to the session under `conn` (starting one if there is none, or if `fresh`).
    pub async fn attach(
        self: &Arc<Self>,
        user: &User,
        db_id: &str,
        docker_id: &str,
        conn: &str,
        fresh: bool,
        size: (u16, u16),
    ) -> Result<Attachment> {
        let key: Key = (user.id.clone(), db_id.to_string(), conn.to_string());
        let existing = self.sessions.lock().unwrap().get(&key).cloned();
        let session = match existing {
            Some(s) if fresh => {
                self.end(&key, &s).await;
                None
            }
            other => other,
        };
        let session = match session {
            Some(s) => {
                let _ = self.engine.exec_resize(&s.exec_id, size.0, size.1).await;
                s
            }
            None => self.start(&key, docker_id, size).await?,
        };
        let (tx, rx) = mpsc::channel(VIEWER_QUEUE);
        let viewer = self.next_viewer.fetch_add(1, Ordering::Relaxed);
        {
            let mut shared = session.shared.lock().await;
            if !shared.ring.is_empty() {
                let (a, b) = shared.ring.as_slices();
                let _ = tx.try_send(Out::Data(Bytes::from([a, b].concat())));
            }
            if let Some(code) = shared.exit {
                let _ = tx.try_send(Out::Exit(code));
            }
            shared.viewers.push((viewer, tx));
        }
        Ok(Attachment {
            rx,
            session,
            viewer,
            key,
        })
    }

    /// Terminal activity counts as use of the container.
    pub async fn touch(&self, a: &Attachment) {
        self.registry.touch(a.db_id()).await;
    }

    pub async fn resize(&self, a: &Attachment, cols: u16, rows: u16) -> Result<()> {
        Ok(self
            .engine
            .exec_resize(&a.session.exec_id, cols, rows)
            .await?)
    }

    /// The viewer leaves. The last one starts the grace period, after which the shell ends.
    pub async fn detach(self: &Arc<Self>, a: Attachment) {
        let empty = {
            let mut shared = a.session.shared.lock().await;
            shared.viewers.retain(|(id, _)| *id != a.viewer);
            shared.viewers.is_empty() && shared.exit.is_none()
        };
        if !empty {
            return;
        }
        let this = self.clone();
        let session = a.session.clone();
        let key = a.key.clone();
        self.tracker.spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep(this.grace) => {}
                // Shutdown ends every shell itself.
                _ = this.shutdown.cancelled() => return,
            }
            if session.shared.lock().await.viewers.is_empty() {
                debug!(exec_id = %session.exec_id, "terminal grace period over; ending the shell");
                this.end(&key, &session).await;
            }
        });
    }

    /// Ends every shell (daemon shutdown): nobody could reattach to them.
    pub async fn end_all(&self) {
        let all: Vec<(Key, Arc<Session>)> = self.sessions.lock().unwrap().drain().collect();
        for (key, s) in all {
            self.end(&key, &s).await;
        }
    }

    async fn end(&self, key: &Key, session: &Arc<Session>) {
        {
            let mut sessions = self.sessions.lock().unwrap();
            if sessions.get(key).is_some_and(|s| Arc::ptr_eq(s, session)) {
                sessions.remove(key);
            }
        }
        let pid = *session.pid.lock().unwrap();
        let pid = match pid {
            Some(p) => Some(p),
            None => self
                .engine
                .exec_inspect(&session.exec_id)
                .await
                .ok()
                .and_then(|s| s.pid),
        };
        if let Some(pid) = pid {
            kill_tree(pid as i32);
        }
    }

    async fn start(
        self: &Arc<Self>,
        key: &Key,
        docker_id: &str,
        (cols, rows): (u16, u16),
    ) -> Result<Arc<Session>> {
        let rec = self
            .registry
            .get(&key.1)
            .ok_or(Error::NotFound("container"))?;
        let tmux = rec.shell.use_tmux == Some(true);
        let spec = ExecSpec {
            cmd: vec!["/bin/sh".into(), "-c".into(), SHELL_SCRIPT.into()],
            env: vec![
                "TERM=xterm-256color".into(),
                format!("HOME={HOME}"),
                format!("REXEC_COLS={cols}"),
                format!("REXEC_ROWS={rows}"),
                format!("REXEC_TMUX={}", u8::from(tmux)),
                format!("REXEC_SHELLS={}", shell_order(&rec)),
            ],
            workdir: HOME.into(),
            tty: true,
        };
        let exec = self.engine.exec_start(docker_id, &spec).await?;
        let (input_tx, mut input_rx) = mpsc::channel::<Bytes>(64);
        let session = Arc::new(Session {
            exec_id: exec.id.clone(),
            input: input_tx,
            shared: tokio::sync::Mutex::new(Shared {
                ring: VecDeque::with_capacity(REPLAY_BYTES),
                viewers: Vec::new(),
                exit: None,
            }),
            pid: Mutex::new(None),
        });
        *session.pid.lock().unwrap() = self
            .engine
            .exec_inspect(&exec.id)
            .await
            .ok()
            .and_then(|s| s.pid);
        let mut stdin = exec.input;
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            loop {
                let b = tokio::select! {
                    b = input_rx.recv() => b,
                    _ = shutdown.cancelled() => None,
                };
                let Some(b) = b else { break };
                if stdin.write_all(&b).await.is_err() || stdin.flush().await.is_err() {
                    break;
                }
            }
        });
        let mut output = exec.output;
        let this = self.clone();
        let s = session.clone();
        let key2 = key.clone();
        self.tracker.spawn(async move {
            while let Some(Ok(ExecChunk::Stdout(b) | ExecChunk::Stderr(b))) = output.next().await {
                let viewers: Vec<(u64, mpsc::Sender<Out>)> = {
                    let mut shared = s.shared.lock().await;
                    shared.ring.extend(b.iter());
                    let over = shared.ring.len().saturating_sub(REPLAY_BYTES);
                    shared.ring.drain(..over);
                    shared.viewers.clone()
                };
                for (id, tx) in viewers {
                    if tx.send(Out::Data(b.clone())).await.is_err() {
                        s.shared.lock().await.viewers.retain(|(v, _)| *v != id);
                    }
                }
            }
            let code = this.exit_code(&s.exec_id).await;
            let viewers = {
                let mut shared = s.shared.lock().await;
                shared.exit = Some(code);
                shared.viewers.clone()
            };
            for (_, tx) in viewers {
                let _ = tx.send(Out::Exit(code)).await;
            }
            this.sessions
                .lock()
                .unwrap()
                .retain(|k, v| !(k == &key2 && Arc::ptr_eq(v, &s)));
            info!(exec_id = %s.exec_id, code, "terminal shell ended");
        });
        self.sessions
            .lock()
            .unwrap()
            .insert(key.clone(), session.clone());
        Ok(session)
    }

    async fn exit_code(&self, exec_id: &str) -> i64 {
        for _ in 0..100 {
            match self.engine.exec_inspect(exec_id).await {
                Ok(s) if !s.running => return s.exit_code.unwrap_or(-1),
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                Err(_) => return -1,
            }
        }
        -1
    }
}
