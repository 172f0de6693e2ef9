//! `POST /api/containers/:id/exec`: run one command in a running container and collect its
//! exit code and output, with a time limit and output caps.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::auth::User;
use super::engine::{Engine, EngineError, ExecChunk, ExecSpec};
use super::error::{Error, Result};
use super::registry::{self, Registry};
use super::spec::HOME;
use super::store::{ContainerRecord, RecordStatus};
use crate::api;

/// Each of stdout and stderr keeps at most this much; the rest is counted as truncated.
pub const MAX_OUTPUT: usize = 1 << 20;
pub const DEFAULT_TIMEOUT_SECS: u64 = 60;
pub const MAX_TIMEOUT_SECS: u64 = 3600;
/// How long a killed command's output may take to drain.
const DRAIN: Duration = Duration::from_secs(2);

/// A running container to work in, or the contract's 400.
pub fn running(registry: &Registry, user: &User, key: &str) -> Result<(ContainerRecord, String)> {
    let rec = registry
        .find(&user.id, key)
        .ok_or(Error::NotFound("container"))?;
    match (&rec.docker_id, rec.status) {
        (Some(id), RecordStatus::Running | RecordStatus::Configuring) => {
            let id = id.clone();
            Ok((rec, id))
        }
        _ => Err(Error::NotRunning {
            status: registry::status_to_api(rec.status),
        }),
    }
}

pub struct Exec {
    registry: Arc<Registry>,
    engine: Arc<dyn Engine>,
}

#[derive(Default)]
struct Capped {
    data: Vec<u8>,
    truncated: bool,
}

impl Capped {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_OUTPUT - self.data.len();
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
        self.truncated |= bytes.len() > room;
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && !k.contains(['=', '\0'])
}

impl Exec {
    pub fn new(registry: Arc<Registry>, engine: Arc<dyn Engine>) -> Self {
        Self { registry, engine }
    }

    pub async fn run(
        &self,
        user: &User,
        key: &str,
        req: api::ExecRequest,
    ) -> Result<api::ExecResponse> {
        let cmd = match (req.cmd, req.command) {
            (Some(cmd), _) if !cmd.is_empty() => cmd,
            (_, Some(c)) if !c.trim().is_empty() => vec!["sh".into(), "-c".into(), c],
            _ => return Err(Error::BadRequest("cmd or command is required".into())),
        };
        if cmd.iter().any(|a| a.contains('\0')) {
            return Err(Error::BadRequest("cmd must not contain NUL bytes".into()));
        }
        let env = req.env.unwrap_or_default();
        if let Some(bad) = env.keys().find(|k| !valid_env_name(k)) {
            return Err(Error::BadRequest(format!(
                "invalid environment variable name {bad:?}"
            )));
        }
        let timeout = req.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECS);
        if timeout == 0 || timeout > MAX_TIMEOUT_SECS {
            return Err(Error::BadRequest(format!(
                "timeout_seconds must be 1-{MAX_TIMEOUT_SECS}"
            )));
        }
        let (rec, docker_id) = running(&self.registry, user, key)?;
        self.registry.touch(&rec.db_id).await;
        let mut vars = vec![format!("HOME={HOME}")];
        vars.extend(env.iter().map(|(k, v)| format!("{k}={v}")));
        let spec = ExecSpec {
            cmd,
            env: vars,
            workdir: req
                .workdir
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| HOME.into()),
            tty: false,
        };
        let stdin = req.stdin.unwrap_or_default().into_bytes();
        let (mut out, mut err) = (Capped::default(), Capped::default());
        let done = collect(
            self.engine.as_ref(),
            &docker_id,
            &spec,
            stdin,
            Duration::from_secs(timeout),
            &CancellationToken::new(),
            |chunk| match chunk {
                ExecChunk::Stdout(b) => out.push(&b),
                ExecChunk::Stderr(b) => err.push(&b),
            },
        )
        .await?;
        Ok(api::ExecResponse {
            exit_code: done.exit_code,
            stdout: out.text(),
            stderr: err.text(),
            timed_out: done.timed_out,
            stdout_truncated: out.truncated,
            stderr_truncated: err.truncated,
        })
    }
}

/// How a collected command ended.
pub struct Finished {
    pub exit_code: i64,
    pub timed_out: bool,
}

/// Runs a command to its end (or `timeout`, or `cancel`: then kills its process tree),
/// feeding `stdin` and handing every output chunk to `sink`.
pub async fn collect(
    engine: &dyn Engine,
    docker_id: &str,
    spec: &ExecSpec,
    stdin: Vec<u8>,
    timeout: Duration,
    cancel: &CancellationToken,
    mut sink: impl FnMut(ExecChunk),
) -> Result<Finished> {
    let mut session = engine.exec_start(docker_id, spec).await?;
    // Stdin is written beside the reading, so that a command that answers as it reads
    // cannot deadlock against us.
    let mut input = session.input;
    let writer = tokio::spawn(async move {
        if !stdin.is_empty() {
            let _ = input.write_all(&stdin).await;
        }
        let _ = input.shutdown().await;
    });
    let read = async {
        while let Some(chunk) = session.output.next().await {
            sink(chunk?);
        }
        Ok::<(), EngineError>(())
    };
    let stopped = tokio::select! {
        r = tokio::time::timeout(timeout, read) => match r {
            Ok(r) => {
                r?;
                None
            }
            Err(_) => Some(true),
        },
        _ = cancel.cancelled() => Some(false),
    };
    writer.abort();
    let timed_out = stopped == Some(true);
    if stopped.is_some() {
        if let Some(pid) = engine.exec_inspect(&session.id).await?.pid {
            kill_tree(pid as i32);
        }
    }
    Ok(Finished {
        exit_code: exit_code(engine, &session.id).await?,
        timed_out,
    })
}

/// Docker marks an exec finished shortly after its output ends.
async fn exit_code(engine: &dyn Engine, exec_id: &str) -> Result<i64> {
    let deadline = tokio::time::Instant::now() + DRAIN;
    loop {
        let state = engine.exec_inspect(exec_id).await?;
        if !state.running {
            return Ok(state.exit_code.unwrap_or(-1));
        }
        if tokio::time::Instant::now() > deadline {
            warn!(exec_id, "exec still running after its output ended");
            return Ok(-1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// SIGKILLs a host process and its descendants (found through /proc/<pid>/task/*/children),
/// children first collected so none escapes by being reparented.
pub fn kill_tree(pid: i32) {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<i32>().ok()),
                );
            }
        }
        i += 1;
    }
    for p in all {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(p),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
