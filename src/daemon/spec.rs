//! How a container record becomes a Docker container: the one place the contract's Docker
//! mapping (memory and swap, NanoCpus, pids, capabilities, labels, volume) is written.

use std::collections::HashMap;
use std::sync::RwLock;

use super::config::DockerConfig;
use super::engine::ContainerSpec;
use super::store::ContainerRecord;

pub const LABEL_MANAGED: &str = "rexec.managed";
pub const LABEL_DB_ID: &str = "rexec.db_id";
pub const LABEL_USER_ID: &str = "rexec.user_id";
pub const LABEL_INSTANCE: &str = "rexec.instance";

/// Where the per-container volume is mounted; also the working directory.
pub const HOME: &str = "/home/user";

/// PID 1 of every container: waits forever, exits at once on SIGTERM so that stop is fast.
/// Terminals and exec run beside it.
const KEEPALIVE: &str = "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done";

/// Docker facts learnt when the engine is reached; they can change when it comes back.
#[derive(Debug, Clone, Default)]
pub struct EngineFacts {
    pub ncpu: u32,
    pub disk_supported: bool,
    pub api_version: Option<String>,
}

/// Settings fixed at start-up plus the engine facts.
pub struct SpecBuilder {
    docker: DockerConfig,
    instance: String,
    facts: RwLock<EngineFacts>,
}

impl SpecBuilder {
    pub fn new(docker: DockerConfig, instance: String) -> Self {
        Self {
            docker,
            instance,
            facts: RwLock::new(EngineFacts {
                ncpu: 1,
                ..Default::default()
            }),
        }
    }

    pub fn facts(&self) -> EngineFacts {
        self.facts.read().unwrap().clone()
    }

    pub fn set_facts(&self, facts: EngineFacts) {
        *self.facts.write().unwrap() = facts;
    }

    pub fn docker(&self) -> &DockerConfig {
        &self.docker
    }

    /// The label filter selecting this instance's Docker objects.
    pub fn instance_filter(&self) -> String {
        format!("{LABEL_INSTANCE}={}", self.instance)
    }

    pub fn db_id_filter(db_id: &str) -> String {
        format!("{LABEL_DB_ID}={db_id}")
    }

    /// Labels every Docker object of this container carries.
    pub fn labels(&self, db_id: &str, user_id: &str) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> =
            self.docker.extra_labels.clone().into_iter().collect();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels.insert(LABEL_INSTANCE.into(), self.instance.clone());
        labels.insert(LABEL_DB_ID.into(), db_id.into());
        labels.insert(LABEL_USER_ID.into(), user_id.into());
        labels
    }

    /// Labels of objects not tied to one container (the network).
    pub fn shared_labels(&self) -> HashMap<String, String> {
        let mut labels: HashMap<String, String> =
            self.docker.extra_labels.clone().into_iter().collect();
        labels.insert(LABEL_MANAGED.into(), "true".into());
        labels
    }

    pub fn docker_name(db_id: &str) -> String {
        format!("rexec-{db_id}")
    }

    pub fn volume_name(db_id: &str) -> String {
        format!("rexec-home-{db_id}")
    }

    pub fn nano_cpus(&self, millicores: u64) -> i64 {
        let host = u64::from(self.facts().ncpu.max(1)) * 1000;
        (millicores.min(host) as i64) * 1_000_000
    }

    pub fn memory_bytes(memory_mb: u64) -> i64 {
        (memory_mb as i64) * 1024 * 1024
    }

    pub fn spec(&self, rec: &ContainerRecord) -> ContainerSpec {
        let facts = self.facts();
        let mut env: Vec<String> = rec
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push(format!("HOME={HOME}"));
        ContainerSpec {
            name: Self::docker_name(&rec.db_id),
            image: rec.docker_image.clone(),
            // A hostname label is at most 63 characters; names may be 64.
            hostname: rec.name.chars().take(63).collect(),
            env,
            labels: self.labels(&rec.db_id, &rec.user_id),
            memory_bytes: Self::memory_bytes(rec.memory_mb),
            nano_cpus: self.nano_cpus(rec.cpu_shares),
            pids_limit: self.docker.pids_limit,
            cap_add: self.docker.cap_add.clone(),
            network: self.docker.network.clone(),
            volume: rec.volume.clone(),
            home: HOME.into(),
            disk_bytes: facts.disk_supported.then_some(rec.disk_mb * 1024 * 1024),
            init: self.docker.init,
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec![KEEPALIVE.into()],
        }
    }
}
