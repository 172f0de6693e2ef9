//! Role and shell set-up: the `configuring` stage of a creation, and re-runs through
//! `POST /api/containers/:id/shell/setup`.
//!
//! A run is a list of steps planned from the record (role tools, shell options), each one
//! script from [`script`] exec'd in the container with a time budget. The first step probes
//! the image (package-manager family, shells). A failed step is recorded and the run goes on;
//! set-up never fails the container. Output is kept, the last 64 KiB, in the store.

pub mod catalog;
pub mod script;

pub use catalog::{Family, SetupCatalog};

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

use super::auth::User;
use super::catalog::Catalog;
use super::clock;
use super::engine::{Engine, ExecChunk, ExecSpec};
use super::error::{Error, Result};
use super::exec;
use super::jobs::Jobs;
use super::registry::{self, Emit, Registry};
use super::spec::HOME;
use super::store::{
    ContainerRecord, RecordStatus, SetupRecord, SetupState, SetupStepRecord, Store,
};
use crate::api;
use script::Probe;

/// Set-up output kept per container.
pub const LOG_BYTES: usize = 64 * 1024;

/// The last [`LOG_BYTES`] of output.
#[derive(Default)]
struct LogTail(VecDeque<u8>);

impl LogTail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend(bytes);
        let over = self.0.len().saturating_sub(LOG_BYTES);
        self.0.drain(..over);
    }

    fn bytes(&self) -> Vec<u8> {
        self.0.iter().copied().collect()
    }
}

type LiveLogs = Mutex<HashMap<String, Arc<Mutex<LogTail>>>>;

/// A run's log while it runs, served by status; taken out of the live map when the run ends
/// or its future is dropped (delete during creation, shutdown).
struct LiveLog<'a> {
    map: &'a LiveLogs,
    key: String,
    log: Arc<Mutex<LogTail>>,
}

impl Drop for LiveLog<'_> {
    fn drop(&mut self) {
        let mut map = self.map.lock().unwrap();
        if map
            .get(&self.key)
            .is_some_and(|l| Arc::ptr_eq(l, &self.log))
        {
            map.remove(&self.key);
        }
    }
}

/// How one step ended.
enum StepEnd {
    Done { detail: Option<String> },
    Failed(String),
}

pub struct Setup {
    registry: Arc<Registry>,
    engine: Arc<dyn Engine>,
    store: Store,
    catalog: Arc<Catalog>,
    step_timeout: Duration,
    jobs: Jobs,
    live: LiveLogs,
}

fn pending(name: &str, tool: &str) -> SetupStepRecord {
    SetupStepRecord {
        name: name.into(),
        tool: tool.into(),
        state: SetupState::Pending,
        started_at_ms: None,
        finished_at_ms: None,
        error: None,
        detail: None,
    }
}

fn skipped(name: &str, tool: &str, why: &str) -> SetupStepRecord {
    SetupStepRecord {
        state: SetupState::Skipped,
        detail: Some(why.into()),
        ..pending(name, tool)
    }
}

const NEEDS_ZSH: &str = "needs shell.enhanced (zsh)";
const INTERRUPTED: &str = "interrupted before it finished";

impl Setup {
    pub fn new(
        registry: Arc<Registry>,
        engine: Arc<dyn Engine>,
        store: Store,
        catalog: Arc<Catalog>,
        step_timeout: Duration,
        jobs: Jobs,
    ) -> Self {
        Self {
            registry,
            engine,
            store,
            catalog,
            step_timeout,
            jobs,
            live: Mutex::default(),
        }
    }

    /// The steps a record asks for, all pending (`skipped` with no steps for `barebone`).
    pub fn plan(&self, rec: &ContainerRecord) -> SetupRecord {
        let cat = &self.catalog.setup;
        let now = clock::now_ms();
        let mut setup = SetupRecord {
            state: SetupState::Pending,
            steps: Vec::new(),
            started_at_ms: None,
            finished_at_ms: None,
            updated_at_ms: now,
            error: None,
            family: None,
            login_shell: None,
        };
        let role = rec.role.as_deref().and_then(|r| cat.role(r));
        if role.is_some_and(|r| r.skip_setup) {
            setup.state = SetupState::Skipped;
            return setup;
        }
        let t = &cat.shell;
        let sh = &rec.shell;
        let on = |o: Option<bool>| o == Some(true);
        let enhanced = on(sh.enhanced);
        let steps = &mut setup.steps;
        steps.push(pending("probe", "image"));
        steps.push(pending("shell", &t.base));
        if let Some(role) = role {
            steps.extend(role.tools.iter().map(|tool| pending(&role.name, tool)));
        }
        let theme = cat.theme_tool(sh.theme.as_deref()).unwrap_or("theme");
        if enhanced {
            steps.push(pending("enhanced", &t.enhanced));
            steps.push(pending("theme", theme));
        } else if sh.theme.is_some() {
            steps.push(skipped("theme", theme, NEEDS_ZSH));
        }
        for (name, wanted, tool, zsh_only) in [
            (
                "autosuggestions",
                sh.autosuggestions,
                &t.autosuggestions,
                true,
            ),
            (
                "syntax_highlight",
                sh.syntax_highlight,
                &t.syntax_highlight,
                true,
            ),
            (
                "history_search",
                sh.history_search,
                &t.history_search,
                false,
            ),
            ("git_aliases", sh.git_aliases, &t.git_aliases, false),
            ("system_stats", sh.system_stats, &t.system_stats, false),
            ("use_tmux", sh.use_tmux, &t.use_tmux, false),
        ] {
            if on(wanted) {
                steps.push(if zsh_only && !enhanced {
                    skipped(name, tool, NEEDS_ZSH)
                } else {
                    pending(name, tool)
                });
            }
        }
        setup
    }

    /// The set-up of a creation, in its `configuring` stage. Progress goes out as
    /// `container_progress` messages; the pipeline sends the outcome with `ready`.
    pub async fn run_in_creation(&self, db_id: &str, docker_id: &str, cancel: &CancellationToken) {
        if let Some((plan, live)) = self.begin(db_id, false).await {
            self.execute(db_id, docker_id, plan, live, true, cancel)
                .await;
        }
    }

    /// `POST /api/containers/:id/shell/setup`: starts a new run in the background and answers
    /// with its (running) state; the outcome arrives as `container_updated`.
    pub async fn rerun(self: &Arc<Self>, user: &User, key: &str) -> Result<api::Setup> {
        let rec = self
            .registry
            .find(&user.id, key)
            .ok_or(Error::NotFound("container"))?;
        let docker_id = match (rec.status, &rec.docker_id) {
            (RecordStatus::Creating | RecordStatus::Configuring, _) => {
                return Err(Error::BeingCreated)
            }
            (RecordStatus::Running, Some(id)) => id.clone(),
            (s, _) => {
                return Err(Error::NotRunning {
                    status: registry::status_to_api(s),
                })
            }
        };
        let plan = self.spawn(&rec.db_id, &docker_id).await?;
        Ok(view(&plan))
    }

    /// Starts a background run; its state once begun. A run already going is a 409.
    pub async fn spawn(self: &Arc<Self>, db_id: &str, docker_id: &str) -> Result<SetupRecord> {
        let (begun_tx, begun_rx) = oneshot::channel();
        let this = self.clone();
        let (id, docker) = (db_id.to_string(), docker_id.to_string());
        let span = info_span!("setup", container_id = %db_id);
        let spawned = self.jobs.try_spawn(db_id, span, move |cancel| async move {
            let Some((plan, live)) = this.begin(&id, true).await else {
                return;
            };
            let _ = begun_tx.send(plan.clone());
            this.execute(&id, &docker, plan, live, false, &cancel).await;
        });
        if !spawned {
            return Err(Error::Conflict {
                message: "set-up is already running".into(),
                code: "setup_running",
            });
        }
        begun_rx.await.map_err(|_| Error::NotFound("container"))
    }

    /// Stops a background run (stop, delete) and waits for it to let go.
    pub async fn cancel(&self, db_id: &str) {
        self.jobs.cancel(db_id).await;
    }

    /// `GET /api/containers/:id/shell/status`.
    pub async fn status(&self, user: &User, key: &str) -> Result<api::ShellStatus> {
        let rec = self
            .registry
            .find(&user.id, key)
            .ok_or(Error::NotFound("container"))?;
        let setup = rec.setup.clone().unwrap_or_else(|| self.plan(&rec));
        let log = self.log(&rec.db_id).await?;
        Ok(api::ShellStatus {
            setup: view(&setup),
            log_tail: String::from_utf8_lossy(&log).into_owned(),
        })
    }

    async fn log(&self, db_id: &str) -> Result<Vec<u8>> {
        let live = self.live.lock().unwrap().get(db_id).cloned();
        if let Some(live) = live {
            return Ok(live.lock().unwrap().bytes());
        }
        let id = db_id.to_string();
        Ok(self
            .store
            .run(move |s| s.setup_log(&id))
            .await?
            .unwrap_or_default())
    }

    /// Plans a run and records it as `running`, with its live log (none for a skipped run).
    /// `None` if the container is gone.
    async fn begin(
        &self,
        db_id: &str,
        announce: bool,
    ) -> Option<(SetupRecord, Option<LiveLog<'_>>)> {
        let rec = self.registry.get(db_id)?;
        let mut plan = self.plan(&rec);
        if plan.state != SetupState::Skipped {
            plan.state = SetupState::Running;
            plan.started_at_ms = Some(plan.updated_at_ms);
        }
        let mut live = None;
        if plan.state == SetupState::Running {
            // The log is live (served by status) from the moment the run is visible.
            let mut tail = LogTail::default();
            tail.push(&self.log(db_id).await.unwrap_or_default());
            let started = clock::rfc3339(plan.updated_at_ms);
            tail.push(format!("==> set-up started {started}\n").as_bytes());
            let log = Arc::new(Mutex::new(tail));
            self.live
                .lock()
                .unwrap()
                .insert(db_id.to_string(), log.clone());
            live = Some(LiveLog {
                map: &self.live,
                key: db_id.to_string(),
                log,
            });
        }
        let emit = announce && plan.state == SetupState::Running;
        self.save(db_id, &plan, if emit { Emit::Updated } else { Emit::None })
            .await?;
        Some((plan, live))
    }

    /// Records the run's state. Durable every time: steps take longer than a sync, and after
    /// a crash the record should say which step was running.
    async fn save(&self, db_id: &str, plan: &SetupRecord, emit: Emit) -> Option<()> {
        let plan = plan.clone();
        match self
            .registry
            .update(db_id, true, move |r, _| {
                r.setup = Some(plan);
                Ok(Some(emit))
            })
            .await
        {
            Ok(r) => r.map(|_| ()),
            Err(e) => {
                warn!(error = %e, "could not record set-up state");
                None
            }
        }
    }

    async fn execute(
        &self,
        db_id: &str,
        docker_id: &str,
        mut plan: SetupRecord,
        live: Option<LiveLog<'_>>,
        in_creation: bool,
        cancel: &CancellationToken,
    ) {
        let Some(live) = live else {
            return; // skipped
        };
        let log = live.log.clone();
        let Some(rec) = self.registry.get(db_id) else {
            return;
        };
        let total = plan.steps.len();
        let mut probe: Option<Probe> = None;
        let mut interrupted = false;
        for i in 0..total {
            if plan.steps[i].state != SetupState::Pending {
                continue;
            }
            if cancel.is_cancelled() {
                interrupted = true;
                break;
            }
            let (name, tool) = (plan.steps[i].name.clone(), plan.steps[i].tool.clone());
            let now = clock::now_ms();
            plan.steps[i].state = SetupState::Running;
            plan.steps[i].started_at_ms = Some(now);
            plan.updated_at_ms = now;
            let message = format!("Configuring {name}: {tool} (step {} of {total})", i + 1);
            log.lock()
                .unwrap()
                .push(format!("==> [{}/{total}] {name}: {tool}\n", i + 1).as_bytes());
            let emit = if in_creation {
                Emit::Progress {
                    message,
                    complete: false,
                }
            } else {
                Emit::None
            };
            if self.save(db_id, &plan, emit).await.is_none() {
                break; // deleted
            }
            // On cancel the step's processes are killed and it ends at once.
            let (mut end, output) = self
                .step(&rec, docker_id, probe.as_ref(), &tool, &log, cancel)
                .await;
            if cancel.is_cancelled() {
                interrupted = true;
                end = StepEnd::Failed(INTERRUPTED.into());
            }
            let step = &mut plan.steps[i];
            step.finished_at_ms = Some(clock::now_ms());
            match end {
                StepEnd::Done { detail } => {
                    step.state = SetupState::Succeeded;
                    step.detail = detail;
                }
                StepEnd::Failed(why) => {
                    log.lock()
                        .unwrap()
                        .push(format!("==> {name} ({tool}) failed: {why}\n").as_bytes());
                    step.state = SetupState::Failed;
                    step.error = Some(why);
                }
            }
            if i == 0 {
                probe = take_probe(&mut plan, &output);
            }
            if interrupted {
                break;
            }
            self.persist_log(db_id, &log, false).await;
        }
        self.finish(&mut plan, probe.as_ref(), &rec, interrupted);
        info!(state = ?plan.state, error = ?plan.error, "set-up finished");
        let emit = if in_creation {
            Emit::None
        } else {
            Emit::Updated
        };
        self.save(db_id, &plan, emit).await;
        self.persist_log(db_id, &log, true).await;
        drop(live);
    }

    /// The run's overall state, first error and login shell.
    fn finish(
        &self,
        plan: &mut SetupRecord,
        probe: Option<&Probe>,
        rec: &ContainerRecord,
        interrupted: bool,
    ) {
        let now = clock::now_ms();
        settle_steps(plan, INTERRUPTED, now);
        plan.error = plan
            .steps
            .iter()
            .find(|s| s.state == SetupState::Failed)
            .map(|s| {
                format!(
                    "{} ({}): {}",
                    s.name,
                    s.tool,
                    s.error.as_deref().unwrap_or("failed")
                )
            });
        if interrupted && plan.error.is_none() {
            plan.error = Some("set-up was interrupted before it finished".into());
        }
        plan.state = if plan.error.is_some() {
            SetupState::Failed
        } else {
            SetupState::Succeeded
        };
        plan.finished_at_ms = Some(now);
        plan.updated_at_ms = now;
        let zsh = rec.shell.enhanced == Some(true)
            && plan
                .steps
                .iter()
                .any(|s| s.name == "enhanced" && s.state == SetupState::Succeeded);
        plan.login_shell = if zsh {
            Some("zsh".into())
        } else {
            probe.and_then(|p| {
                ["bash", "ash", "sh"]
                    .into_iter()
                    .find(|s| p.has(s))
                    .map(str::to_string)
            })
        };
    }

    async fn persist_log(&self, db_id: &str, log: &Mutex<LogTail>, durable: bool) {
        let bytes = log.lock().unwrap().bytes();
        let id = db_id.to_string();
        if let Err(e) = self
            .store
            .run(move |s| s.put_setup_log(&id, &bytes, durable))
            .await
        {
            warn!(error = %e, "could not store the set-up log");
        }
    }

    /// Runs one step's script; its output goes to the log.
    async fn step(
        &self,
        rec: &ContainerRecord,
        docker_id: &str,
        probe: Option<&Probe>,
        tool_name: &str,
        log: &Mutex<LogTail>,
        cancel: &CancellationToken,
    ) -> (StepEnd, String) {
        let (interpreter, script, family, tool) = match probe {
            None => ("sh", script::PROBE.to_string(), Family::None, None),
            Some(p) => {
                let Some(tool) = self.catalog.setup.tool(tool_name) else {
                    let why = format!("no tool {tool_name} in the catalog");
                    return (StepEnd::Failed(why), String::new());
                };
                (
                    p.interpreter(),
                    script::tool_step(tool_name, tool, p.family),
                    p.family,
                    Some(tool),
                )
            }
        };
        let spec = ExecSpec {
            cmd: vec![interpreter.into(), "-c".into(), script],
            env: vec![
                format!("HOME={HOME}"),
                format!("REXEC_FAMILY={family}"),
                format!("REXEC_TOOL={tool_name}"),
                format!("REXEC_CONTAINER={}", rec.name),
                format!("REXEC_DISK_MB={}", rec.disk_mb),
                format!("REXEC_DISK_ENFORCED={}", rec.disk_enforced),
                "DEBIAN_FRONTEND=noninteractive".into(),
                "TERM=dumb".into(),
            ],
            workdir: HOME.into(),
            tty: false,
        };
        let mut own = LogTail::default();
        let finished = exec::collect(
            self.engine.as_ref(),
            docker_id,
            &spec,
            Vec::new(),
            self.step_timeout,
            cancel,
            |chunk| {
                let (ExecChunk::Stdout(b) | ExecChunk::Stderr(b)) = chunk;
                own.push(&b);
                log.lock().unwrap().push(&b);
            },
        )
        .await;
        let output = String::from_utf8_lossy(&own.bytes()).into_owned();
        let end = match finished {
            Err(e) => {
                warn!(error = %e, tool = tool_name, "could not run a set-up step");
                StepEnd::Failed("the step could not be run in the container".into())
            }
            Ok(f) if f.timed_out => {
                StepEnd::Failed(format!("timed out after {} s", self.step_timeout.as_secs()))
            }
            Ok(f) => {
                let o = script::outcome(&output);
                if f.exit_code == 0 {
                    let config_only = tool.is_some_and(|t| t.check.trim() == "true");
                    let detail = match o.result.as_deref() {
                        Some("present") if config_only => Some("configured".to_string()),
                        Some("present") => Some("already present; configured".to_string()),
                        Some("installed") => Some(format!("installed ({family})")),
                        _ => None,
                    };
                    StepEnd::Done { detail }
                } else {
                    StepEnd::Failed(o.error.unwrap_or_else(|| {
                        let last = script::last_line(&output).unwrap_or_default();
                        format!("exited with status {}: {last}", f.exit_code)
                    }))
                }
            }
        };
        (end, output)
    }
}

/// After the probe step: what it found, or every other step skipped.
fn take_probe(plan: &mut SetupRecord, output: &str) -> Option<Probe> {
    let probe = Probe::parse(output).filter(|_| plan.steps[0].state == SetupState::Succeeded);
    match &probe {
        Some(p) => {
            plan.family = Some(p.family.to_string());
            plan.steps[0].detail = Some(format!(
                "{} ({}), shells: {}",
                p.os,
                p.family,
                p.shells.join(", ")
            ));
        }
        None => {
            if plan.steps[0].state == SetupState::Succeeded {
                plan.steps[0].state = SetupState::Failed;
                plan.steps[0].error = Some("the probe said nothing".into());
            }
            for s in plan.steps.iter_mut().skip(1) {
                if s.state == SetupState::Pending {
                    s.state = SetupState::Skipped;
                    s.detail = Some("the image could not be probed".into());
                }
            }
        }
    }
    probe
}

/// Ends a run that will not go on (a restart, a failed creation): the running step failed,
/// the pending ones skipped, the run failed with `why`. A finished run is left as it is.
pub fn abandon(s: &mut SetupRecord, why: &str) {
    if !matches!(s.state, SetupState::Running | SetupState::Pending) {
        return;
    }
    let now = clock::now_ms();
    settle_steps(s, why, now);
    s.state = SetupState::Failed;
    s.error = Some(why.into());
    s.finished_at_ms = Some(now);
    s.updated_at_ms = now;
}

/// Steps a run leaves behind: the running one failed with `why`, pending ones skipped.
fn settle_steps(s: &mut SetupRecord, why: &str, now: i64) {
    for step in &mut s.steps {
        match step.state {
            SetupState::Running => {
                step.state = SetupState::Failed;
                step.error = Some(why.into());
                step.finished_at_ms = Some(now);
            }
            SetupState::Pending => {
                step.state = SetupState::Skipped;
                step.detail = Some(format!("not run: {why}"));
            }
            _ => {}
        }
    }
}

/// The wire form of a set-up record.
pub fn view(s: &SetupRecord) -> api::Setup {
    let state = |s: SetupState| match s {
        SetupState::Pending => api::SetupState::Pending,
        SetupState::Running => api::SetupState::Running,
        SetupState::Succeeded => api::SetupState::Succeeded,
        SetupState::Failed => api::SetupState::Failed,
        SetupState::Skipped => api::SetupState::Skipped,
    };
    api::Setup {
        state: state(s.state),
        steps: s
            .steps
            .iter()
            .map(|st| api::SetupStep {
                name: st.name.clone(),
                tool: st.tool.clone(),
                state: state(st.state),
                started_at: st.started_at_ms.map(clock::rfc3339),
                finished_at: st.finished_at_ms.map(clock::rfc3339),
                error: st.error.clone(),
                detail: st.detail.clone(),
            })
            .collect(),
        updated_at: clock::rfc3339(s.updated_at_ms),
        started_at: s.started_at_ms.map(clock::rfc3339),
        finished_at: s.finished_at_ms.map(clock::rfc3339),
        error: s.error.clone(),
        family: s.family.clone(),
        login_shell: s.login_shell.clone(),
    }
}
