//! The asynchronous creation pipeline: validating → pulling → creating → starting →
//! configuring → ready, or error. One task per creation, bounded by a semaphore, each
//! cancellable (delete during creation) and owned by a task tracker (shutdown).

use std::sync::Arc;

use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{info, info_span, warn};

use super::engine::{address_on, Availability, Engine, EngineError, PullProgress};
use super::jobs::Jobs;
use super::registry::{Emit, Registry};
use super::setup::Setup;
use super::spec::SpecBuilder;
use super::store::{RecordStage, RecordStatus, SetupState};

/// Progress percentages of the contract.
const PULL_START: u8 = 15;
const PULL_END: u8 = 40;
const CREATING: u8 = 50;
const STARTING: u8 = 70;
const CONFIGURING: u8 = 85;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Why a pipeline ended early. `Failed` carries a message safe to show a client.
enum Stop {
    Cancelled,
    Failed { message: String, detail: String },
}

fn failed(message: &str, e: EngineError) -> Stop {
    let message = match e {
        EngineError::Unavailable(_) => "container service temporarily unavailable".to_string(),
        _ => message.to_string(),
    };
    Stop::Failed {
        message,
        detail: e.to_string(),
    }
}

pub struct Provisioner {
    registry: Arc<Registry>,
    engine: Arc<dyn Engine>,
    availability: Arc<Availability>,
    spec: Arc<SpecBuilder>,
    setup: Arc<Setup>,
    permits: Arc<Semaphore>,
    jobs: Jobs,
}

impl Provisioner {
    pub fn new(
        registry: Arc<Registry>,
        engine: Arc<dyn Engine>,
        availability: Arc<Availability>,
        spec: Arc<SpecBuilder>,
        setup: Arc<Setup>,
        concurrency: usize,
        jobs: Jobs,
    ) -> Self {
        Self {
            registry,
            engine,
            availability,
            spec,
            setup,
            permits: Arc::new(Semaphore::new(concurrency)),
            jobs,
        }
    }

    pub fn spawn(self: &Arc<Self>, db_id: String) {
        let this = self.clone();
        let span = info_span!("provision", container_id = %db_id);
        let id = db_id.clone();
        self.jobs.try_spawn(&db_id, span, move |cancel| async move {
            this.run(&id, &cancel).await;
        });
    }

    pub fn is_running(&self, db_id: &str) -> bool {
        self.jobs.is_running(db_id)
    }

    /// Cancels a running creation and waits until its task has let go of the container.
    pub async fn cancel(&self, db_id: &str) {
        self.jobs.cancel(db_id).await;
    }

    async fn run(&self, db_id: &str, cancel: &CancellationToken) {
        let outcome = tokio::select! {
            r = self.pipeline(db_id, cancel) => r,
            _ = cancel.cancelled() => Err(Stop::Cancelled),
        };
        match outcome {
            Ok(()) => info!("container ready"),
            Err(Stop::Cancelled) => info!("creation cancelled"),
            Err(Stop::Failed { message, detail }) => {
                warn!(error = %detail, "creation failed");
                self.fail(db_id, message).await;
            }
        }
    }

    async fn stage(
        &self,
        db_id: &str,
        stage: RecordStage,
        progress: u8,
        message: &str,
        durable: bool,
    ) -> Result<(), Stop> {
        let message = message.to_string();
        self.registry
            .update(db_id, durable, |r, _| {
                r.stage = Some(stage);
                r.progress = r.progress.max(progress);
                if stage == RecordStage::Configuring {
                    r.status = RecordStatus::Configuring;
                }
                Ok(Some(Emit::Progress {
                    message,
                    complete: false,
                }))
            })
            .await
            .map_err(|e| Stop::Failed {
                message: "internal error".into(),
                detail: e.to_string(),
            })?
            .map(|_| ())
            .ok_or(Stop::Cancelled)
    }

    async fn pipeline(&self, db_id: &str, cancel: &CancellationToken) -> Result<(), Stop> {
        let _permit = self.permits.acquire().await.map_err(|_| Stop::Cancelled)?;
        let _op = self.registry.lock(db_id).await;
        let rec = self.registry.get(db_id).ok_or(Stop::Cancelled)?;
        if !self.availability.is_up() {
            return Err(failed("", EngineError::Unavailable("engine down".into())));
        }
        let image = rec.docker_image.clone();
        let present = self
            .engine
            .image_present(&image)
            .await
            .map_err(|e| failed("could not inspect the image", e))?;
        if !present {
            self.pull(db_id, &image, cancel).await?;
        }

        self.stage(
            db_id,
            RecordStage::Creating,
            CREATING,
            "Creating container...",
            false,
        )
        .await?;
        let spec = self.spec.spec(&rec);
        self.engine
            .create_volume(&rec.volume, &spec.labels)
            .await
            .map_err(|e| failed("the container's volume could not be created", e))?;
        let id = self
            .engine
            .create_container(&spec)
            .await
            .map_err(|e| failed("the container could not be created", e))?;
        self.registry
            .update(db_id, true, |r, _| {
                r.docker_id = Some(id.clone());
                Ok(Some(Emit::Created))
            })
            .await
            .map_err(|e| Stop::Failed {
                message: "internal error".into(),
                detail: e.to_string(),
            })?
            .ok_or(Stop::Cancelled)?;

        self.stage(
            db_id,
            RecordStage::Starting,
            STARTING,
            "Starting container...",
            false,
        )
        .await?;
        self.engine
            .start(&id)
            .await
            .map_err(|e| failed("the container could not be started", e))?;
        let ip = address_on(self.engine.as_ref(), &self.spec.docker().network, &id).await;

        self.stage(
            db_id,
            RecordStage::Configuring,
            CONFIGURING,
            "Configuring environment...",
            false,
        )
        .await?;
        self.setup.run_in_creation(db_id, &id, cancel).await;

        self.registry
            .update(db_id, true, |r, _| {
                r.status = RecordStatus::Running;
                r.stage = Some(RecordStage::Ready);
                r.progress = 100;
                r.ip_address = ip;
                let message = match r.setup.as_ref().filter(|s| s.state == SetupState::Failed) {
                    Some(_) => "Container is ready; some set-up steps failed (see setup)",
                    None => "Container is ready",
                };
                Ok(Some(Emit::Progress {
                    message: message.into(),
                    complete: true,
                }))
            })
            .await
            .map_err(|e| Stop::Failed {
                message: "internal error".into(),
                detail: e.to_string(),
            })?;
        let _ = self
            .registry
            .update(db_id, true, |_, _| Ok(Some(Emit::Updated)))
            .await;
        Ok(())
    }

    async fn pull(&self, db_id: &str, image: &str, cancel: &CancellationToken) -> Result<(), Stop> {
        self.stage(
            db_id,
            RecordStage::Pulling,
            PULL_START,
            "Pulling image...",
            false,
        )
        .await?;
        let (tx, mut rx) = watch::channel(PullProgress::default());
        let engine = self.engine.clone();
        let image_ref = image.to_string();
        let mut pull = Box::pin(async move {
            let mut report = |p: PullProgress| {
                let _ = tx.send(p);
            };
            engine.pull(&image_ref, &mut report).await
        });
        let mut shown = PULL_START;
        loop {
            tokio::select! {
                r = &mut pull => {
                    r.map_err(|e| failed("failed to pull the image: not found or not accessible", e))?;
                    break;
                }
                changed = rx.changed() => {
                    if changed.is_err() {
                        continue;
                    }
                    let p = *rx.borrow_and_update();
                    if p.total == 0 {
                        continue;
                    }
                    let span = u64::from(PULL_END - PULL_START);
                    let pct = PULL_START + (span * p.current.min(p.total) / p.total) as u8;
                    if pct > shown {
                        shown = pct;
                        let msg = format!("Pulling image... {:.1} of {:.1} MB", mb(p.current), mb(p.total));
                        self.stage(db_id, RecordStage::Pulling, pct, &msg, false).await?;
                    }
                }
                _ = cancel.cancelled() => return Err(Stop::Cancelled),
            }
        }
        if shown < PULL_END {
            self.stage(db_id, RecordStage::Pulling, PULL_END, "Image pulled", false)
                .await?;
        }
        Ok(())
    }

    /// Ends a creation in `error`: removes a half-made Docker container, keeps the record
    /// (it still counts against the limit until deleted) and says why.
    async fn fail(&self, db_id: &str, message: String) {
        if let Some(id) = self.registry.get(db_id).and_then(|r| r.docker_id) {
            if let Err(e) = self.engine.remove_container(&id).await {
                warn!(error = %e, "could not remove the failed container");
            }
        }
        let result = self
            .registry
            .update(db_id, true, |r, _| {
                r.status = RecordStatus::Error;
                r.stage = Some(RecordStage::Error);
                r.error = Some(message);
                r.docker_id = None;
                if let Some(s) = r.setup.as_mut() {
                    super::setup::abandon(s, "the container could not be created");
                }
                Ok(Some(Emit::Progress {
                    message: "Container creation failed".into(),
                    complete: true,
                }))
            })
            .await;
        if let Err(e) = result {
            warn!(error = %e, "could not record the failure");
        }
        let _ = self
            .registry
            .update(db_id, true, |_, _| Ok(Some(Emit::Updated)))
            .await;
    }
}
