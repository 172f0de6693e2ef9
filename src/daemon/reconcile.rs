//! Keeping records true to Docker: the start-up pass over interrupted creations, the engine
//! monitor (availability, reconnects) and Docker's event stream, so that reads never have to
//! ask Docker.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::engine::{address_on, Availability, Engine, EngineEvent, EngineEventKind, EngineInfo};
use super::error::Result;
use super::provision::Provisioner;
use super::registry::{Emit, Registry};
use super::setup;
use super::spec::{EngineFacts, SpecBuilder};
use super::store::{RecordStage, RecordStatus, SetupState};

pub const INTERRUPTED: &str = "creation interrupted by a daemon restart";
const SETUP_INTERRUPTED: &str =
    "set-up interrupted by a daemon restart; POST /api/containers/:id/shell/setup runs it again";

/// Longest wait between two attempts to reach Docker.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Before serving: a record still `creating` was being built by a daemon that is gone; it
/// ends in `error`. One that got as far as `configuring` has a container: it is usable, so it
/// becomes `running` (Docker's state corrects that if need be). Any set-up still pending or
/// running, whatever the container's status, is marked as interrupted.
pub async fn fail_interrupted(registry: &Registry) -> Result<usize> {
    let mut n = 0;
    for rec in registry.list(None) {
        let creating = matches!(
            rec.status,
            RecordStatus::Creating | RecordStatus::Configuring
        ) && rec.stage != Some(RecordStage::Ready);
        let configured = rec.status == RecordStatus::Configuring && rec.docker_id.is_some();
        let setup_running = rec
            .setup
            .as_ref()
            .is_some_and(|s| matches!(s.state, SetupState::Running | SetupState::Pending));
        if !creating && !setup_running {
            continue;
        }
        registry
            .update(&rec.db_id, true, |r, _| {
                if creating && !configured {
                    r.status = RecordStatus::Error;
                    r.stage = Some(RecordStage::Error);
                    r.error = Some(INTERRUPTED.into());
                } else if creating {
                    r.status = RecordStatus::Running;
                    r.stage = Some(RecordStage::Ready);
                    r.progress = 100;
                }
                if let Some(s) = r.setup.as_mut() {
                    setup::abandon(s, SETUP_INTERRUPTED);
                }
                Ok(Some(Emit::Updated))
            })
            .await?;
        n += 1;
    }
    Ok(n)
}

pub struct Monitor {
    pub registry: Arc<Registry>,
    pub engine: Arc<dyn Engine>,
    pub availability: Arc<Availability>,
    pub spec: Arc<SpecBuilder>,
    pub provisioner: Arc<Provisioner>,
}

impl Monitor {
    /// Runs until shutdown: reach Docker, reconcile, follow its events; on loss, mark Docker
    /// unavailable and try again.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut first = true;
        loop {
            match self.engine.info().await {
                Ok(info) => {
                    backoff = Duration::from_millis(100);
                    // Events from just before the reconcile on, so that a change during it is
                    // not missed (a repeated one is harmless: status updates are idempotent).
                    let since = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
                    self.connected(&info, first).await;
                    first = false;
                    if !self.follow(since, &shutdown).await {
                        return;
                    }
                    // The stream ended: ask again at once; only a failing info marks Docker down.
                    continue;
                }
                Err(e) => {
                    if self.availability.set(false) {
                        warn!(error = %e, "Docker engine unavailable");
                    }
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.cancelled() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connected(&self, info: &EngineInfo, first: bool) {
        let disk_supported = self.probe_disk(info).await;
        self.spec.set_facts(EngineFacts {
            ncpu: info.ncpu,
            disk_supported,
            api_version: Some(info.api_version.clone()),
        });
        if first {
            info!(
                docker_version = %info.server_version,
                api_version = %info.api_version,
                storage_driver = %info.storage_driver,
                disk_quota = disk_supported,
                "connected to Docker"
            );
            if !disk_supported {
                warn!(
                    storage_driver = %info.storage_driver,
                    backing_filesystem = %info.backing_filesystem,
                    "disk_mb cannot be enforced on this host (storage-opt size needs overlay2 on xfs with pquota, btrfs or zfs); containers report disk_enforced: false"
                );
            }
        }
        let network = &self.spec.docker().network;
        if !matches!(network.as_str(), "none" | "host" | "bridge") {
            if let Err(e) = self
                .engine
                .ensure_network(network, &self.spec.shared_labels())
                .await
            {
                warn!(error = %e, %network, "could not create the container network");
            }
        }
        if let Err(e) = self.reconcile().await {
            warn!(error = %e, "reconcile with Docker failed");
        }
        if !self.availability.set(true) && !first {
            info!("Docker engine is back");
        }
    }

    /// `storage-opt size` works only on some drivers; on others Docker refuses the create.
    async fn probe_disk(&self, info: &EngineInfo) -> bool {
        match info.storage_driver.as_str() {
            "btrfs" | "zfs" => true,
            "overlay2" => info.backing_filesystem == "xfs",
            _ => false,
        }
    }

    /// Returns false on shutdown.
    async fn follow(&self, since: i64, shutdown: &CancellationToken) -> bool {
        let mut events = self
            .engine
            .events(&self.spec.instance_filter(), since)
            .await;
        loop {
            tokio::select! {
                e = events.next() => match e {
                    Some(Ok(e)) => self.on_event(e).await,
                    Some(Err(e)) => {
                        warn!(error = %e, "Docker event stream broke");
                        return true;
                    }
                    None => return true,
                },
                _ = shutdown.cancelled() => return false,
            }
        }
    }

    async fn on_event(&self, e: EngineEvent) {
        let Some(rec) = self.registry.by_docker_id(&e.container_id) else {
            return;
        };
        // An operation in flight on this container (creation, start, stop, delete) sets the
        // status itself.
        let Some(_op) = self.registry.try_lock(&rec.db_id) else {
            return;
        };
        // The event says the container changed; Docker says what it is now. The stream starts
        // a second before the reconcile, so a replayed `start` must not undo a later `die`
        // (the record would flap to running and back after a restart).
        let (status, ip) = match self.engine.inspect(&e.container_id).await {
            Ok(Some(state)) if state.running => (RecordStatus::Running, self.ip_from(state)),
            Ok(_) => (RecordStatus::Stopped, None),
            // The engine did not answer: go by the event.
            Err(_) => match e.kind {
                EngineEventKind::Started => (RecordStatus::Running, None),
                EngineEventKind::Died | EngineEventKind::Destroyed => (RecordStatus::Stopped, None),
            },
        };
        self.set_status(&rec.db_id, status, ip).await;
    }

    /// The address in an inspected state, when there is a container network.
    fn ip_from(&self, state: super::engine::ContainerState) -> Option<String> {
        (self.spec.docker().network != "none")
            .then_some(state.ip_address)
            .flatten()
    }

    /// A running container's address on the configured network.
    async fn ip_of(&self, docker_id: &str) -> Option<String> {
        address_on(self.engine.as_ref(), &self.spec.docker().network, docker_id).await
    }

    async fn set_status(&self, db_id: &str, status: RecordStatus, ip: Option<String>) {
        let r = self
            .registry
            .update(db_id, true, |r, _| {
                let settled = matches!(
                    r.status,
                    RecordStatus::Running | RecordStatus::Stopped | RecordStatus::Configuring
                );
                if !settled || (r.status == status && r.ip_address == ip) {
                    return Ok(None);
                }
                r.status = status;
                r.ip_address = ip;
                Ok(Some(Emit::Updated))
            })
            .await;
        if let Err(e) = r {
            warn!(error = %e, container_id = %db_id, "could not record a Docker status change");
        }
    }

    /// Makes records and Docker agree: statuses from Docker; orphans (no record, or not the
    /// record's current container, or a failed creation's) removed.
    async fn reconcile(&self) -> Result<()> {
        let docker = self
            .engine
            .list_containers(&self.spec.instance_filter())
            .await?;
        let mut seen = HashSet::new();
        for c in &docker {
            let rec = c.db_id.as_deref().and_then(|id| self.registry.get(id));
            let current = rec
                .as_ref()
                .filter(|r| r.docker_id.as_deref() == Some(c.id.as_str()));
            match current {
                Some(r) if self.provisioner.is_running(&r.db_id) => {
                    seen.insert(r.db_id.clone());
                }
                Some(r) if r.status != RecordStatus::Error => {
                    seen.insert(r.db_id.clone());
                    let (status, ip) = if c.running {
                        (RecordStatus::Running, self.ip_of(&c.id).await)
                    } else {
                        (RecordStatus::Stopped, None)
                    };
                    if let Some(_op) = self.registry.try_lock(&r.db_id) {
                        self.set_status(&r.db_id, status, ip).await;
                    }
                }
                _ if rec
                    .as_ref()
                    .is_some_and(|r| self.provisioner.is_running(&r.db_id)) => {}
                _ => {
                    info!(docker_id = %c.id, "removing orphaned container");
                    self.engine.remove_container(&c.id).await?;
                }
            }
        }
        for rec in self.registry.list(None) {
            if rec.docker_id.is_some()
                && !seen.contains(&rec.db_id)
                && !self.provisioner.is_running(&rec.db_id)
            {
                if let Some(_op) = self.registry.try_lock(&rec.db_id) {
                    self.set_status(&rec.db_id, RecordStatus::Stopped, None)
                        .await;
                }
            }
        }
        for v in self
            .engine
            .list_volumes(&self.spec.instance_filter())
            .await?
        {
            let owned = v
                .db_id
                .as_deref()
                .is_some_and(|id| self.registry.get(id).is_some());
            if !owned {
                info!(volume = %v.name, "removing orphaned volume");
                self.engine.remove_volume(&v.name).await?;
            }
        }
        Ok(())
    }
}

/// Removes expired containers every `interval` until shutdown.
pub async fn reaper(
    containers: Arc<super::containers::Containers>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => containers.reap_expired().await,
            _ = shutdown.cancelled() => return,
        }
    }
}
