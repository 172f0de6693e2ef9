//! Container lifecycle: create (validation, limits, clamping), start, stop, delete,
//! settings. No HTTP types; the pipeline itself is `provision`'s.

mod create;

use create::invalid_name;
pub use create::CREATE_MESSAGE;

use std::sync::Arc;

use tracing::{info, warn};

use super::auth::User;
use super::catalog::{Catalog, CUSTOM_IMAGE};
use super::clock;
use super::engine::{address_on, Availability, Engine, EngineError};
use super::error::{Error, Result};
use super::names;
use super::provision::Provisioner;
use super::registry::{self, Emit, OpGuard, Registry};
use super::setup::Setup;
use super::spec::SpecBuilder;
use super::store::{ContainerRecord, RecordStatus, SetupState};
use crate::api;

pub struct Containers {
    pub registry: Arc<Registry>,
    engine: Arc<dyn Engine>,
    availability: Arc<Availability>,
    catalog: Arc<Catalog>,
    provisioner: Arc<Provisioner>,
    setup: Arc<Setup>,
    spec: Arc<SpecBuilder>,
}

impl Containers {
    pub fn new(
        registry: Arc<Registry>,
        engine: Arc<dyn Engine>,
        availability: Arc<Availability>,
        catalog: Arc<Catalog>,
        provisioner: Arc<Provisioner>,
        setup: Arc<Setup>,
        spec: Arc<SpecBuilder>,
    ) -> Self {
        Self {
            registry,
            engine,
            availability,
            catalog,
            provisioner,
            setup,
            spec,
        }
    }

    fn find(&self, user: &User, key: &str) -> Result<ContainerRecord> {
        self.registry
            .find(&user.id, key)
            .ok_or(Error::NotFound("container"))
    }

    /// One of the user's containers that is not being created (start, stop and settings
    /// wait for nothing: a creation, set-up included, answers 409 at once).
    fn find_settled(&self, user: &User, key: &str) -> Result<ContainerRecord> {
        let rec = self.find(user, key)?;
        if matches!(
            rec.status,
            RecordStatus::Creating | RecordStatus::Configuring
        ) {
            return Err(Error::BeingCreated);
        }
        Ok(rec)
    }

    /// Takes the container's operation lock and reads the record as it is now.
    async fn lock(&self, db_id: &str) -> Result<(OpGuard, ContainerRecord)> {
        let op = self.registry.lock(db_id).await;
        let rec = self
            .registry
            .get(db_id)
            .ok_or(Error::NotFound("container"))?;
        Ok((op, rec))
    }

    pub fn get(&self, user: &User, key: &str) -> Result<api::Container> {
        Ok(registry::view(&self.find(user, key)?, clock::now_ms()))
    }

    pub fn list(&self, user: &User, all: bool) -> api::ContainerList {
        let now = clock::now_ms();
        let containers: Vec<api::Container> = self
            .registry
            .list((!all).then_some(user.id.as_str()))
            .iter()
            .map(|r| registry::view(r, now))
            .collect();
        api::ContainerList {
            count: containers.len(),
            containers,
            limit: self.catalog.limits(user.tier).containers,
        }
    }

    pub fn owns_any(&self, user_id: &str) -> bool {
        self.registry.count_for(user_id) > 0
    }

    pub async fn start(&self, user: &User, key: &str) -> Result<api::LifecycleResponse> {
        let rec = self.find_settled(user, key)?;
        if rec.expires_at_ms.is_some_and(|e| e <= clock::now_ms()) {
            return Err(Error::SessionExpired);
        }
        let (_op, rec) = self.lock(&rec.db_id).await?;
        if rec.status == RecordStatus::Error {
            return Err(Error::Conflict {
                message: "container failed to create; delete it and create it again".into(),
                code: "container_failed",
            });
        }
        let existing = match &rec.docker_id {
            Some(id) => self.engine.inspect(id).await?,
            None => None,
        };
        let Some(state) = existing else {
            return self.recreate(rec).await;
        };
        let message = if state.running {
            "container already running"
        } else {
            self.engine.start(&state.id).await?;
            "container started"
        };
        let ip = self.current_ip(&state.id).await;
        let rec = self
            .set_status(&rec.db_id, RecordStatus::Running, ip)
            .await?;
        Ok(lifecycle(message, &rec))
    }

    async fn current_ip(&self, docker_id: &str) -> Option<String> {
        address_on(self.engine.as_ref(), &self.spec.docker().network, docker_id).await
    }

    /// Docker lost the container: build it again from the record, on the same volume.
    async fn recreate(&self, rec: ContainerRecord) -> Result<api::LifecycleResponse> {
        // A run against the lost container would keep the new one from being set up.
        self.setup.cancel(&rec.db_id).await;
        let old_id = registry::public_id(&rec);
        let spec = self.spec.spec(&rec);
        let volume_kept = self.engine.volume_exists(&rec.volume).await?;
        if !volume_kept {
            warn!(container_id = %rec.db_id, "the container's volume was gone too; recreating it empty");
            self.engine.create_volume(&rec.volume, &spec.labels).await?;
        }
        // A leftover with the same name would make the create conflict.
        self.engine.remove_container(&spec.name).await?;
        let id = self.engine.create_container(&spec).await?;
        if let Err(e) = self.engine.start(&id).await {
            let _ = self.engine.remove_container(&id).await;
            return Err(e.into());
        }
        let ip = self.current_ip(&id).await;
        let rec = self
            .registry
            .update(&rec.db_id, true, |r, _| {
                r.docker_id = Some(id.clone());
                r.status = RecordStatus::Running;
                r.ip_address = ip;
                r.disk_enforced = spec.disk_bytes.is_some();
                Ok(Some(Emit::Updated))
            })
            .await?
            .ok_or(Error::NotFound("container"))?;
        info!(container_id = %rec.db_id, %old_id, new_id = %id, "container recreated");
        // The new root filesystem has none of the packages set-up installed: set up again
        // (the home volume still has its configuration, so present tools are only checked).
        if rec
            .setup
            .as_ref()
            .is_some_and(|s| s.state != SetupState::Skipped)
        {
            if let Err(e) = self.setup.spawn(&rec.db_id, &id).await {
                warn!(container_id = %rec.db_id, error = %e, "could not set the recreated container up again");
            }
        }
        Ok(api::LifecycleResponse {
            message: "container recreated and started".into(),
            id: registry::public_id(&rec),
            name: rec.name.clone(),
            status: api::ContainerStatus::Running,
            old_id: Some(old_id),
            recreated: Some(true),
            volume_kept: Some(volume_kept),
        })
    }

    pub async fn stop(&self, user: &User, key: &str) -> Result<api::LifecycleResponse> {
        let rec = self.find_settled(user, key)?;
        self.setup.cancel(&rec.db_id).await;
        let (_op, rec) = self.lock(&rec.db_id).await?;
        if let Some(id) = &rec.docker_id {
            match self
                .engine
                .stop(id, self.spec.docker().stop_timeout_seconds)
                .await
            {
                Ok(()) | Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let status = match rec.status {
            RecordStatus::Error => RecordStatus::Error,
            _ => RecordStatus::Stopped,
        };
        let rec = self.set_status(&rec.db_id, status, None).await?;
        Ok(lifecycle("container stopped", &rec))
    }

    async fn set_status(
        &self,
        db_id: &str,
        status: RecordStatus,
        ip: Option<String>,
    ) -> Result<ContainerRecord> {
        self.registry
            .update(db_id, true, |r, _| {
                if r.status == status && r.ip_address == ip {
                    return Ok(None);
                }
                r.status = status;
                r.ip_address = ip;
                Ok(Some(Emit::Updated))
            })
            .await?
            .ok_or(Error::NotFound("container"))
    }

    pub async fn delete(
        &self,
        user: &User,
        key: &str,
        reason: api::DeleteReason,
    ) -> Result<api::DeleteResponse> {
        let rec = self.find(user, key)?;
        self.remove(&rec, reason).await
    }

    /// Removes a container for good: cancels its creation, removes the Docker container(s)
    /// and volume, then the record. Used by delete and by the reaper.
    pub async fn remove(
        &self,
        rec: &ContainerRecord,
        reason: api::DeleteReason,
    ) -> Result<api::DeleteResponse> {
        self.provisioner.cancel(&rec.db_id).await;
        self.setup.cancel(&rec.db_id).await;
        let (_op, rec) = self.lock(&rec.db_id).await?;
        if let Some(id) = &rec.docker_id {
            self.engine.remove_container(id).await?;
        }
        // Anything else carrying its label: a create the cancelled pipeline did not see finish.
        for c in self
            .engine
            .list_containers(&SpecBuilder::db_id_filter(&rec.db_id))
            .await?
        {
            self.engine.remove_container(&c.id).await?;
        }
        self.engine.remove_volume(&rec.volume).await?;
        self.registry.remove(&rec.db_id, reason).await?;
        info!(container_id = %rec.db_id, ?reason, "container deleted");
        Ok(api::DeleteResponse {
            message: "container deleted".into(),
            id: registry::public_id(&rec),
            db_id: rec.db_id.clone(),
            name: rec.name.clone(),
        })
    }

    pub async fn update_settings(
        &self,
        user: &User,
        key: &str,
        req: &api::SettingsRequest,
    ) -> Result<api::Container> {
        let rec = self.find_settled(user, key)?;
        let name = req.name.as_deref().map(str::trim);
        if name.is_some_and(|n| !names::valid_container_name(n)) {
            return Err(invalid_name());
        }
        for (field, v) in [
            ("memory_mb", req.memory_mb),
            ("cpu_shares", req.cpu_shares),
            ("disk_mb", req.disk_mb),
        ] {
            if v == Some(0) {
                return Err(Error::BadRequest(format!(
                    "invalid {field}: must be a positive integer"
                )));
            }
        }
        let (_op, rec) = self.lock(&rec.db_id).await?;
        // Checked before Docker is changed, so a refused rename changes nothing; checked
        // again at commit, against concurrent creates.
        let taken = |n: &str| {
            self.registry
                .list(Some(&user.id))
                .iter()
                .any(|o| o.name == n && o.db_id != rec.db_id)
        };
        if let Some(n) = name.filter(|n| taken(n)) {
            return Err(Error::NameTaken(n.to_string()));
        }
        let limits = self.catalog.limits(user.tier);
        let r = limits.resources(
            Some(req.memory_mb.unwrap_or(rec.memory_mb)),
            Some(req.cpu_shares.unwrap_or(rec.cpu_shares)),
            Some(req.disk_mb.unwrap_or(rec.disk_mb)),
        );
        let live = r.memory_mb != rec.memory_mb || r.cpu_shares != rec.cpu_shares;
        if let (true, Some(id)) = (live, &rec.docker_id) {
            match self
                .engine
                .update_resources(
                    id,
                    SpecBuilder::memory_bytes(r.memory_mb),
                    self.spec.nano_cpus(r.cpu_shares),
                )
                .await
            {
                Ok(()) | Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let updated = self
            .registry
            .update(&rec.db_id, true, |rec, mine| {
                if let Some(n) = name {
                    if mine.iter().any(|o| o.name == n && o.db_id != rec.db_id) {
                        return Err(Error::NameTaken(n.to_string()));
                    }
                    rec.name = n.to_string();
                }
                rec.memory_mb = r.memory_mb;
                rec.cpu_shares = r.cpu_shares;
                rec.disk_mb = r.disk_mb;
                Ok(Some(Emit::Updated))
            })
            .await?
            .ok_or(Error::NotFound("container"))?;
        Ok(registry::view(&updated, clock::now_ms()))
    }

    /// Expired guest/free containers, removed by the reaper.
    pub async fn reap_expired(&self) {
        let now = clock::now_ms();
        for rec in self.registry.list(None) {
            if rec.expires_at_ms.is_some_and(|e| e <= now) {
                match self.remove(&rec, api::DeleteReason::Expired).await {
                    Ok(_) => info!(container_id = %rec.db_id, "expired container removed"),
                    Err(e) => {
                        warn!(container_id = %rec.db_id, error = %e, "could not remove expired container")
                    }
                }
            }
        }
    }

    pub fn images(&self) -> api::ImageList {
        let mut images: Vec<api::ImageInfo> = self
            .catalog
            .images()
            .iter()
            .map(|i| api::ImageInfo {
                name: i.name.clone(),
                description: i.description.clone(),
                min_tier: i.min_tier.map(|t| t.as_str().to_string()),
            })
            .collect();
        images.push(api::ImageInfo {
            name: CUSTOM_IMAGE.into(),
            description: "A custom Docker image (requires custom_image)".into(),
            min_tier: None,
        });
        api::ImageList { images }
    }

    pub fn roles(&self) -> api::RoleList {
        self.catalog.setup.role_list()
    }
}

fn lifecycle(message: &str, rec: &ContainerRecord) -> api::LifecycleResponse {
    api::LifecycleResponse {
        message: message.into(),
        id: registry::public_id(rec),
        name: rec.name.clone(),
        status: registry::status_to_api(rec.status),
        old_id: None,
        recreated: None,
        volume_kept: None,
    }
}
