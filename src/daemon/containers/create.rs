//! Create: the documented validation order, limits and clamping, the durable record and
//! the start of the pipeline.

use std::collections::BTreeMap;

use serde::Deserialize;
use tracing::info;

use super::Containers;
use crate::api;
use crate::daemon::auth::User;
use crate::daemon::catalog::CUSTOM_IMAGE;
use crate::daemon::clock;
use crate::daemon::error::{Error, Result};
use crate::daemon::names;
use crate::daemon::registry::{self, Emit};
use crate::daemon::spec::SpecBuilder;
use crate::daemon::store::{ContainerRecord, RecordStage, RecordStatus, ShellRecord};

pub const CREATE_MESSAGE: &str =
    "Container is being created. This may take a moment if the image needs to be pulled.";

/// The create body as received: resource fields stay raw so that rule 6 can name them.
#[derive(Debug, Deserialize)]
struct RawCreate {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    custom_image: Option<String>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    shell: Option<api::ShellOptions>,
    #[serde(default)]
    memory_mb: Option<serde_json::Value>,
    #[serde(default)]
    cpu_shares: Option<serde_json::Value>,
    #[serde(default)]
    disk_mb: Option<serde_json::Value>,
    #[serde(default)]
    environment: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

fn positive(field: &str, v: Option<serde_json::Value>) -> Result<Option<u64>> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => Ok(n.as_u64()),
        Some(_) => Err(Error::BadRequest(format!(
            "invalid {field}: must be a positive integer"
        ))),
    }
}

fn shell_record(s: Option<api::ShellOptions>) -> ShellRecord {
    let s = s.unwrap_or_default();
    ShellRecord {
        enhanced: s.enhanced,
        theme: s.theme,
        autosuggestions: s.autosuggestions,
        syntax_highlight: s.syntax_highlight,
        history_search: s.history_search,
        git_aliases: s.git_aliases,
        system_stats: s.system_stats,
        use_tmux: s.use_tmux,
    }
}

/// A create request that passed rules 1-7.
struct ValidCreate {
    image_label: String,
    docker_image: String,
    name: Option<String>,
    role: Option<String>,
    shell: ShellRecord,
    resources: api::Resources,
    environment: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
}

pub(super) fn invalid_name() -> Error {
    Error::BadRequest(
        "invalid container name: must be 1-64 characters, alphanumeric and hyphens only".into(),
    )
}

fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && !k.contains(['=', '\0']) && k.len() <= 256
}

impl Containers {
    /// Validates a create body in the documented order, stores the record durably and starts
    /// the pipeline. The 202 body is built from what is returned.
    pub async fn create(
        &self,
        user: &User,
        admin: bool,
        body: &[u8],
    ) -> Result<api::CreateContainerResponse> {
        let valid = self.validate(user, admin, body)?;
        if !self.availability.is_up() {
            return Err(Error::Unavailable);
        }
        let limits = *self.catalog.limits(user.tier);
        let now = clock::now_ms();
        let db_id = uuid::Uuid::new_v4().to_string();
        let resources = valid.resources;
        let record = ContainerRecord {
            db_id: db_id.clone(),
            user_id: user.id.clone(),
            name: String::new(),
            image: valid.image_label,
            docker_image: valid.docker_image,
            role: valid.role,
            shell: valid.shell,
            environment: valid.environment,
            labels: valid.labels,
            memory_mb: resources.memory_mb,
            cpu_shares: resources.cpu_shares,
            disk_mb: resources.disk_mb,
            status: RecordStatus::Creating,
            stage: Some(RecordStage::Validating),
            progress: 10,
            error: None,
            docker_id: None,
            volume: SpecBuilder::volume_name(&db_id),
            ip_address: None,
            disk_enforced: self.spec.facts().disk_supported,
            created_at_ms: now,
            last_used_at_ms: now,
            expires_at_ms: limits.session_seconds.map(|s| now + (s as i64) * 1000),
            setup: None,
        };
        let record = ContainerRecord {
            setup: Some(self.setup.plan(&record)),
            ..record
        };
        let tier = user.tier;
        let requested_name = valid.name;
        let emit = Emit::Progress {
            message: "Validating request...".into(),
            complete: false,
        };
        let record = self
            .registry
            .insert(record, emit, |mine, record| {
                // 8. The container limit: every record counts until deleted.
                let current = mine.len() as u32;
                if current >= limits.containers {
                    return Err(Error::LimitReached {
                        current,
                        limit: limits.containers,
                        tier,
                    });
                }
                // 9. Unique names per user.
                let taken = |n: &str| mine.iter().any(|r| r.name == n);
                record.name = match requested_name {
                    Some(n) if taken(&n) => return Err(Error::NameTaken(n)),
                    Some(n) => n,
                    None => names::generate(taken),
                };
                Ok(())
            })
            .await?;
        info!(container_id = %record.db_id, user_id = %record.user_id, name = %record.name, "creation accepted");
        self.provisioner.spawn(record.db_id.clone());
        let view = registry::view(&record, now);
        Ok(api::CreateContainerResponse {
            id: view.id,
            db_id: view.db_id,
            user_id: view.user_id,
            name: view.name,
            image: view.image,
            role: view.role,
            status: view.status,
            created_at: view.created_at,
            is_async: true,
            message: CREATE_MESSAGE.into(),
            resources: view.resources,
            expires_at: view.expires_at,
            session_limit_seconds: view.session_limit_seconds,
        })
    }

    /// Rules 1-7 of the contract, in order; 8 and 9 need the user's records and run at insert.
    fn validate(&self, user: &User, admin: bool, body: &[u8]) -> Result<ValidCreate> {
        // 1. A JSON object with the right types.
        let raw: RawCreate = crate::daemon::json_object(body)?;
        // 2. A catalog image; 3. custom images need a valid reference.
        let image_key = raw.image.as_deref().map(str::trim).unwrap_or_default();
        let (image_label, docker_image, min_tier) = if image_key == CUSTOM_IMAGE {
            let reference = raw
                .custom_image
                .as_deref()
                .map(str::trim)
                .unwrap_or_default();
            if reference.is_empty() {
                return Err(Error::BadRequest(
                    "custom_image is required when image is 'custom'".into(),
                ));
            }
            if !names::valid_image_reference(reference) {
                return Err(Error::BadRequest("invalid custom_image format".into()));
            }
            (format!("custom:{reference}"), reference.to_string(), None)
        } else {
            let entry = self
                .catalog
                .image(image_key)
                .ok_or_else(|| Error::UnsupportedImage {
                    supported: self.catalog.supported_images(),
                })?;
            (entry.name.clone(), entry.docker.clone(), entry.min_tier)
        };
        // 4. The name, if any.
        let name = raw.name.as_deref().map(str::trim).filter(|n| !n.is_empty());
        if name.is_some_and(|n| !names::valid_container_name(n)) {
            return Err(invalid_name());
        }
        // 5. A known role, if any, and a known theme.
        let role = raw.role.as_deref().map(str::trim).filter(|r| !r.is_empty());
        if role.is_some_and(|r| !self.catalog.has_role(r)) {
            return Err(Error::UnsupportedRole {
                supported: self.catalog.setup.role_names(),
            });
        }
        let mut shell = shell_record(raw.shell);
        shell.theme = shell
            .theme
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        if let Some(theme) = &shell.theme {
            if self.catalog.setup.theme_tool(Some(theme)).is_none() {
                return Err(Error::UnsupportedTheme {
                    supported: self.catalog.setup.theme_names(),
                });
            }
        }
        // 6. Resources are positive integers; the tier clamps them.
        let memory = positive("memory_mb", raw.memory_mb)?;
        let cpu = positive("cpu_shares", raw.cpu_shares)?;
        let disk = positive("disk_mb", raw.disk_mb)?;
        let environment = raw.environment.unwrap_or_default();
        if let Some(bad) = environment.keys().find(|k| !valid_env_name(k)) {
            return Err(Error::BadRequest(format!(
                "invalid request body: bad environment variable name {bad:?}"
            )));
        }
        // 7. Tier-gated images (admins may use any).
        if let Some(min) = min_tier.filter(|min| user.tier < *min && !admin) {
            return Err(Error::TierRequired(min));
        }
        Ok(ValidCreate {
            image_label,
            docker_image,
            name: name.map(str::to_string),
            role: role.map(str::to_string),
            shell,
            resources: self.catalog.limits(user.tier).resources(memory, cpu, disk),
            environment,
            labels: raw.labels.unwrap_or_default(),
        })
    }
}
