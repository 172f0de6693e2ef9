//! The container records: an in-memory index over the redb table, written through.
//!
//! Reads (list, get by any id form) are served from memory and never ask Docker. Every change
//! goes through [`Registry::commit`]: one redb transaction holding the record and the event it
//! causes, then the index, then the broadcast, all under one lock so that events leave in
//! `seq` order. Per-container operation locks keep start/stop/delete/creation of one container
//! from interleaving.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use super::clock;
use super::error::Result;
use super::events::EventHub;
use super::store::{ContainerChange, ContainerRecord, RecordStage, RecordStatus, Store};
use crate::api;

/// What event a change sends.
pub enum Emit {
    None,
    Created,
    Updated,
    Progress {
        message: String,
        /// Adds `complete`, `container_id` and the container object (stage `ready`/`error`).
        complete: bool,
    },
    Deleted(api::DeleteReason),
}

pub struct Registry {
    store: Store,
    hub: Arc<EventHub>,
    records: RwLock<HashMap<String, ContainerRecord>>,
    write: tokio::sync::Mutex<()>,
    op_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    retain_events: u64,
}

pub type OpGuard = tokio::sync::OwnedMutexGuard<()>;

/// `last_used_at` resolution: finer would write on every keystroke.
pub const TOUCH_EVERY_MS: i64 = 5_000;

impl Registry {
    pub fn new(
        store: Store,
        hub: Arc<EventHub>,
        records: Vec<ContainerRecord>,
        retain_events: u64,
    ) -> Self {
        Self {
            store,
            hub,
            records: RwLock::new(records.into_iter().map(|r| (r.db_id.clone(), r)).collect()),
            write: tokio::sync::Mutex::new(()),
            op_locks: Mutex::new(HashMap::new()),
            retain_events,
        }
    }

    pub fn get(&self, db_id: &str) -> Option<ContainerRecord> {
        self.records.read().unwrap().get(db_id).cloned()
    }

    /// Finds one of the user's containers by `db_id`, short or full Docker id, or name, in
    /// that order.
    pub fn find(&self, user_id: &str, key: &str) -> Option<ContainerRecord> {
        let records = self.records.read().unwrap();
        if let Some(r) = records.get(key).filter(|r| r.user_id == user_id) {
            return Some(r.clone());
        }
        let is_docker_id = |r: &ContainerRecord| {
            r.docker_id
                .as_deref()
                .is_some_and(|d| (key.len() == 12 || key.len() == 64) && d.starts_with(key))
        };
        // A Docker id wins over a name that happens to look like one: ids are unambiguous.
        let mine = || records.values().filter(|r| r.user_id == user_id);
        mine()
            .find(|r| is_docker_id(r))
            .or_else(|| mine().find(|r| r.name == key))
            .cloned()
    }

    /// Records of one user (or everyone's), newest first.
    pub fn list(&self, user_id: Option<&str>) -> Vec<ContainerRecord> {
        let mut out: Vec<ContainerRecord> = self
            .records
            .read()
            .unwrap()
            .values()
            .filter(|r| user_id.is_none_or(|u| r.user_id == u))
            .cloned()
            .collect();
        out.sort_by(|a, b| {
            b.created_at_ms
                .cmp(&a.created_at_ms)
                .then(b.db_id.cmp(&a.db_id))
        });
        out
    }

    pub fn count_for(&self, user_id: &str) -> usize {
        self.records
            .read()
            .unwrap()
            .values()
            .filter(|r| r.user_id == user_id)
            .count()
    }

    /// The record whose current Docker container is `docker_id`.
    pub fn by_docker_id(&self, docker_id: &str) -> Option<ContainerRecord> {
        self.records
            .read()
            .unwrap()
            .values()
            .find(|r| r.docker_id.as_deref() == Some(docker_id))
            .cloned()
    }

    /// Serialises operations on one container.
    pub async fn lock(&self, db_id: &str) -> OpGuard {
        self.op_lock(db_id).lock_owned().await
    }

    /// Like [`lock`](Self::lock), but `None` if another operation holds it.
    pub fn try_lock(&self, db_id: &str) -> Option<OpGuard> {
        self.op_lock(db_id).try_lock_owned().ok()
    }

    fn op_lock(&self, db_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.op_locks.lock().unwrap();
        locks.retain(|_, l| Arc::strong_count(l) > 1 || l.try_lock().is_err());
        locks.entry(db_id.to_string()).or_default().clone()
    }

    /// Inserts a new record after `check` accepted it against the user's current records,
    /// atomically with respect to other inserts. Durable before it returns.
    pub async fn insert(
        &self,
        mut record: ContainerRecord,
        emit: Emit,
        check: impl FnOnce(&[ContainerRecord], &mut ContainerRecord) -> Result<()>,
    ) -> Result<ContainerRecord> {
        let _w = self.write.lock().await;
        let mine: Vec<ContainerRecord> = self
            .records
            .read()
            .unwrap()
            .values()
            .filter(|r| r.user_id == record.user_id)
            .cloned()
            .collect();
        check(&mine, &mut record)?;
        self.commit_locked(None, record, emit, true).await
    }

    /// Applies `f` to the stored record and commits it with its event. `None` if the record
    /// no longer exists. `f` also sees the owner's records (for name checks) and returns the
    /// event to send, or `None` when nothing changed and nothing is written.
    pub async fn update(
        &self,
        db_id: &str,
        durable: bool,
        f: impl FnOnce(&mut ContainerRecord, &[ContainerRecord]) -> Result<Option<Emit>>,
    ) -> Result<Option<ContainerRecord>> {
        let _w = self.write.lock().await;
        let Some(mut rec) = self.get(db_id) else {
            return Ok(None);
        };
        let siblings = self.list(Some(&rec.user_id));
        let Some(emit) = f(&mut rec, &siblings)? else {
            return Ok(Some(rec));
        };
        self.commit_locked(None, rec, emit, durable).await.map(Some)
    }

    /// Records use of a container (terminal input, exec, files): `last_used_at`, at most every
    /// [`TOUCH_EVERY_MS`], not forced to disk and without an event (idle time is not news).
    pub async fn touch(&self, db_id: &str) {
        let now = clock::now_ms();
        let stale = self
            .records
            .read()
            .unwrap()
            .get(db_id)
            .is_some_and(|r| now - r.last_used_at_ms >= TOUCH_EVERY_MS);
        if stale {
            let _ = self
                .update(db_id, false, |r, _| {
                    r.last_used_at_ms = now;
                    Ok(Some(Emit::None))
                })
                .await;
        }
    }

    /// Removes a record, sending `container_deleted`.
    pub async fn remove(&self, db_id: &str, reason: api::DeleteReason) -> Result<()> {
        let _w = self.write.lock().await;
        let Some(rec) = self.get(db_id) else {
            return Ok(());
        };
        self.commit_locked(Some(db_id), rec, Emit::Deleted(reason), true)
            .await
            .map(|_| ())
    }

    async fn commit_locked(
        &self,
        delete: Option<&str>,
        rec: ContainerRecord,
        emit: Emit,
        durable: bool,
    ) -> Result<ContainerRecord> {
        let event = self
            .event_for(&rec, emit)
            .map(|b| self.hub.prepare(&rec.user_id, b));
        let store_rec = rec.clone();
        let deleting = delete.is_some();
        let delete = delete.map(str::to_string);
        let ev = event.clone();
        let retain = self.retain_events;
        self.store
            .run(move |s| {
                s.commit_container(ContainerChange {
                    put: if delete.is_some() {
                        None
                    } else {
                        Some(&store_rec)
                    },
                    delete: delete.as_deref(),
                    event: ev.as_ref(),
                    retain_events: retain,
                    durable,
                })
            })
            .await?;
        {
            let mut records = self.records.write().unwrap();
            if deleting {
                records.remove(&rec.db_id);
            } else {
                records.insert(rec.db_id.clone(), rec.clone());
            }
        }
        if let Some(e) = event {
            self.hub.publish(e);
        }
        Ok(rec)
    }

    fn event_for(&self, rec: &ContainerRecord, emit: Emit) -> Option<api::EventBody> {
        let now = clock::now_ms();
        Some(match emit {
            Emit::None => return None,
            Emit::Created => api::EventBody::ContainerCreated(view(rec, now)),
            Emit::Updated => api::EventBody::ContainerUpdated(view(rec, now)),
            Emit::Deleted(reason) => api::EventBody::ContainerDeleted(api::Deleted {
                id: public_id(rec),
                db_id: rec.db_id.clone(),
                name: rec.name.clone(),
                reason,
            }),
            Emit::Progress { message, complete } => {
                let stage = rec
                    .stage
                    .map(stage_to_api)
                    .unwrap_or(api::Stage::Validating);
                api::EventBody::ContainerProgress(api::Progress {
                    id: rec.db_id.clone(),
                    stage,
                    message,
                    progress: rec.progress,
                    complete,
                    container_id: (complete && stage == api::Stage::Ready).then(|| public_id(rec)),
                    container: complete.then(|| Box::new(view(rec, now))),
                    error: rec.error.clone().filter(|_| stage == api::Stage::Error),
                })
            }
        })
    }
}

/// `id` on the wire: the short Docker id once the container exists, else the `db_id`.
pub fn public_id(rec: &ContainerRecord) -> String {
    match &rec.docker_id {
        Some(d) if d.len() >= 12 => d[..12].to_string(),
        _ => rec.db_id.clone(),
    }
}

pub fn status_to_api(s: RecordStatus) -> api::ContainerStatus {
    match s {
        RecordStatus::Creating => api::ContainerStatus::Creating,
        RecordStatus::Configuring => api::ContainerStatus::Configuring,
        RecordStatus::Running => api::ContainerStatus::Running,
        RecordStatus::Stopped => api::ContainerStatus::Stopped,
        RecordStatus::Error => api::ContainerStatus::Error,
    }
}

pub fn stage_to_api(s: RecordStage) -> api::Stage {
    match s {
        RecordStage::Validating => api::Stage::Validating,
        RecordStage::Pulling => api::Stage::Pulling,
        RecordStage::Creating => api::Stage::Creating,
        RecordStage::Starting => api::Stage::Starting,
        RecordStage::Configuring => api::Stage::Configuring,
        RecordStage::Ready => api::Stage::Ready,
        RecordStage::Error => api::Stage::Error,
    }
}

/// The container object, as of `now_ms`.
pub fn view(rec: &ContainerRecord, now_ms: i64) -> api::Container {
    let creating = matches!(
        rec.status,
        RecordStatus::Creating | RecordStatus::Configuring
    );
    api::Container {
        id: public_id(rec),
        db_id: rec.db_id.clone(),
        user_id: rec.user_id.clone(),
        name: rec.name.clone(),
        image: rec.image.clone(),
        role: rec.role.clone(),
        status: status_to_api(rec.status),
        created_at: clock::rfc3339(rec.created_at_ms),
        last_used_at: clock::rfc3339(rec.last_used_at_ms),
        idle_seconds: ((now_ms - rec.last_used_at_ms).max(0) as f64) / 1000.0,
        resources: api::Resources {
            memory_mb: rec.memory_mb,
            cpu_shares: rec.cpu_shares,
            disk_mb: rec.disk_mb,
        },
        disk_enforced: rec.disk_enforced,
        ip_address: rec.ip_address.clone(),
        expires_at: rec.expires_at_ms.map(clock::rfc3339),
        session_limit_seconds: rec.expires_at_ms.map(|e| ((e - now_ms) / 1000).max(0)),
        stage: rec.stage.filter(|_| creating).map(stage_to_api),
        progress: creating.then_some(rec.progress),
        error: rec
            .error
            .clone()
            .filter(|_| rec.status == RecordStatus::Error),
        labels: rec.labels.clone(),
        setup: rec.setup.as_ref().map(super::setup::view),
    }
}
