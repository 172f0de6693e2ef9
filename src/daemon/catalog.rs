//! What can be asked for: the image catalog, the development roles (`setup::catalog`) and
//! the tier table.
//! Built once from the config; read-only afterwards.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::config::Config;
use super::setup::SetupCatalog;
use crate::api;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Guest,
    Free,
    Pro,
    Enterprise,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::Guest, Tier::Free, Tier::Pro, Tier::Enterprise];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Guest => "guest",
            Tier::Free => "free",
            Tier::Pro => "pro",
            Tier::Enterprise => "enterprise",
        }
    }

    pub fn parse(s: &str) -> Option<Tier> {
        Tier::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resource's default and maximum for one tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bound {
    pub default: u64,
    pub max: u64,
}

impl Bound {
    /// Absent: the default. Below `min`: raised to it. Above the maximum: clamped to it.
    pub fn apply(self, requested: Option<u64>, min: u64) -> u64 {
        requested
            .unwrap_or(self.default)
            .max(min)
            .min(self.max.max(min))
    }
}

pub const MIN_MEMORY_MB: u64 = 256;
pub const MIN_CPU_MILLICORES: u64 = 250;
pub const MIN_DISK_MB: u64 = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierLimits {
    pub containers: u32,
    pub memory_mb: Bound,
    pub cpu_shares: Bound,
    pub disk_mb: Bound,
    /// Session length for guest and free containers; `None` means no expiry.
    pub session_seconds: Option<u64>,
}

/// A tier's entry in the config: every field optional, merged over the built-in table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierOverride {
    pub containers: Option<u32>,
    pub memory_mb_default: Option<u64>,
    pub memory_mb_max: Option<u64>,
    pub cpu_shares_default: Option<u64>,
    pub cpu_shares_max: Option<u64>,
    pub disk_mb_default: Option<u64>,
    pub disk_mb_max: Option<u64>,
    /// 0 means no expiry.
    pub session_seconds: Option<u64>,
}

const FIFTY_HOURS: u64 = 50 * 3600;

/// The contract's tier table.
fn builtin_limits(tier: Tier) -> TierLimits {
    let b = |default, max| Bound { default, max };
    match tier {
        Tier::Guest => TierLimits {
            containers: 1,
            memory_mb: b(512, 512),
            cpu_shares: b(500, 500),
            disk_mb: b(2048, 2048),
            session_seconds: Some(FIFTY_HOURS),
        },
        Tier::Free => TierLimits {
            containers: 5,
            memory_mb: b(2048, 4096),
            cpu_shares: b(2000, 4000),
            disk_mb: b(10240, 16384),
            session_seconds: Some(FIFTY_HOURS),
        },
        Tier::Pro => TierLimits {
            containers: 10,
            memory_mb: b(4096, 8192),
            cpu_shares: b(4000, 8000),
            disk_mb: b(20480, 51200),
            session_seconds: None,
        },
        Tier::Enterprise => TierLimits {
            containers: 20,
            memory_mb: b(8192, 16384),
            cpu_shares: b(8000, 16000),
            disk_mb: b(51200, 102400),
            session_seconds: None,
        },
    }
}

impl TierLimits {
    fn merged(mut self, o: &TierOverride) -> Self {
        let set = |v: &mut u64, o: Option<u64>| {
            if let Some(o) = o {
                *v = o;
            }
        };
        if let Some(c) = o.containers {
            self.containers = c;
        }
        set(&mut self.memory_mb.default, o.memory_mb_default);
        set(&mut self.memory_mb.max, o.memory_mb_max);
        set(&mut self.cpu_shares.default, o.cpu_shares_default);
        set(&mut self.cpu_shares.max, o.cpu_shares_max);
        set(&mut self.disk_mb.default, o.disk_mb_default);
        set(&mut self.disk_mb.max, o.disk_mb_max);
        if let Some(s) = o.session_seconds {
            self.session_seconds = (s > 0).then_some(s);
        }
        self
    }

    /// The resources a request gets on this tier.
    pub fn resources(
        &self,
        memory: Option<u64>,
        cpu: Option<u64>,
        disk: Option<u64>,
    ) -> api::Resources {
        api::Resources {
            memory_mb: self.memory_mb.apply(memory, MIN_MEMORY_MB),
            cpu_shares: self.cpu_shares.apply(cpu, MIN_CPU_MILLICORES),
            disk_mb: self.disk_mb.apply(disk, MIN_DISK_MB),
        }
    }
}

/// One entry of the image catalog.
#[derive(Debug, Clone)]
pub struct CatalogImage {
    pub name: String,
    pub docker: String,
    pub description: String,
    pub min_tier: Option<Tier>,
}

/// The key clients send for a custom Docker image.
pub const CUSTOM_IMAGE: &str = "custom";

const BUILTIN_IMAGES: [(&str, &str); 4] = [
    ("ubuntu:24.04", "Ubuntu 24.04 LTS"),
    ("debian:bookworm", "Debian 12"),
    ("alpine:latest", "Alpine Linux"),
    ("archlinux:latest", "Arch Linux"),
];

const ALIASES: [(&str, &str); 4] = [
    ("ubuntu", "ubuntu:24.04"),
    ("debian", "debian:bookworm"),
    ("alpine", "alpine:latest"),
    ("archlinux", "archlinux:latest"),
];

pub struct Catalog {
    images: Vec<CatalogImage>,
    tiers: BTreeMap<Tier, TierLimits>,
    /// Roles, tools and shell options.
    pub setup: SetupCatalog,
}

impl Catalog {
    /// The catalog the config describes; fails on a roles file that cannot be read or is
    /// not a valid catalog.
    pub fn from_config(config: &Config) -> Result<Self, String> {
        let setup = match &config.setup.roles_file {
            None => SetupCatalog::builtin(),
            Some(path) => std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|text| SetupCatalog::parse(&text))
                .map_err(|e| format!("roles file {}: {e}", path.display()))?,
        };
        let mut images: Vec<CatalogImage> = BUILTIN_IMAGES
            .iter()
            .map(|(name, description)| CatalogImage {
                name: (*name).into(),
                docker: (*name).into(),
                description: (*description).into(),
                min_tier: None,
            })
            .collect();
        for (name, c) in &config.images {
            let entry = CatalogImage {
                name: name.clone(),
                docker: c.docker.clone(),
                description: c.description.clone(),
                min_tier: c.min_tier,
            };
            match images.iter_mut().find(|i| &i.name == name) {
                Some(existing) => {
                    if entry.description.is_empty() {
                        existing.docker = entry.docker;
                        existing.min_tier = entry.min_tier;
                    } else {
                        *existing = entry;
                    }
                }
                None => images.push(entry),
            }
        }
        let tiers = Tier::ALL
            .into_iter()
            .map(|t| {
                let limits = builtin_limits(t);
                let limits = match config.tiers.get(&t) {
                    Some(o) => limits.merged(o),
                    None => limits,
                };
                (t, limits)
            })
            .collect();
        Ok(Self {
            images,
            tiers,
            setup,
        })
    }

    /// Looks an image key up, aliases included.
    pub fn image(&self, key: &str) -> Option<&CatalogImage> {
        let key = ALIASES
            .iter()
            .find(|(alias, _)| *alias == key)
            .map_or(key, |(_, full)| full);
        self.images.iter().find(|i| i.name == key)
    }

    /// The names a client may send, `custom` last.
    pub fn supported_images(&self) -> Vec<String> {
        self.images
            .iter()
            .map(|i| i.name.clone())
            .chain([CUSTOM_IMAGE.to_string()])
            .collect()
    }

    pub fn images(&self) -> &[CatalogImage] {
        &self.images
    }

    pub fn limits(&self, tier: Tier) -> &TierLimits {
        &self.tiers[&tier]
    }

    pub fn has_role(&self, name: &str) -> bool {
        self.setup.role(name).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamping_and_defaults_follow_the_tier_table() {
        let free = builtin_limits(Tier::Free);
        let r = free.resources(None, None, None);
        assert_eq!((r.memory_mb, r.cpu_shares, r.disk_mb), (2048, 2000, 10240));
        let r = free.resources(Some(100), Some(10), Some(1));
        assert_eq!((r.memory_mb, r.cpu_shares, r.disk_mb), (256, 250, 1024));
        let r = free.resources(Some(1 << 40), Some(99_999), Some(1 << 30));
        assert_eq!((r.memory_mb, r.cpu_shares, r.disk_mb), (4096, 4000, 16384));
        let guest = builtin_limits(Tier::Guest);
        assert_eq!(guest.resources(Some(4096), None, None).memory_mb, 512);
    }

    #[test]
    fn overrides_merge_over_the_builtin_table() {
        let o = TierOverride {
            session_seconds: Some(0),
            containers: Some(2),
            ..Default::default()
        };
        let l = builtin_limits(Tier::Free).merged(&o);
        assert_eq!(l.session_seconds, None);
        assert_eq!(l.containers, 2);
        assert_eq!(l.memory_mb.max, 4096);
    }

    #[test]
    fn aliases_resolve_and_config_remaps() {
        let mut config = Config::default();
        config.images.insert(
            "alpine:latest".into(),
            super::super::config::ImageConfig {
                docker: "local/busybox".into(),
                description: String::new(),
                min_tier: None,
            },
        );
        let c = Catalog::from_config(&config).unwrap();
        let i = c.image("alpine").unwrap();
        assert_eq!(i.name, "alpine:latest");
        assert_eq!(i.docker, "local/busybox");
        assert_eq!(i.description, "Alpine Linux");
        assert!(c.image("fedora").is_none());
        assert_eq!(c.supported_images().last().unwrap(), "custom");
    }
}
