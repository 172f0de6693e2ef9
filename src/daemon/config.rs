//! The daemon's configuration: the TOML file, flag overrides, defaults and validation.
//! No other module reads the environment.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::catalog::{Tier, TierOverride};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// Values given on the command line (rexecd's flags); they win over the file.
#[derive(Debug, Default, Clone, clap::Parser)]
#[command(
    name = "rexecd",
    version,
    about = "The rexec daemon: disposable Linux development containers on the local Docker engine",
    long_about = "The rexec daemon: disposable Linux development containers on the local Docker engine.\n\nIt serves the rexec container API on a Unix socket (and on TCP when configured), keeps its records in a redb database in the data directory, and drives the Docker engine. Under systemd it is started by rexecd.service or, with socket activation, by rexecd.socket; it sends readiness (Type=notify) and logs to the journal.",
    after_help = "Files:\n  /etc/rexec/rexecd.toml    the config (every key commented)\n  /var/lib/rexec/rexec.redb the database\n  /run/rexec/rexecd.sock    the API socket\n\nExamples:\n  rexecd --config /etc/rexec/rexecd.toml\n  rexecd --config /etc/rexec/rexecd.toml --config ./local.toml --tcp 127.0.0.1:8088\n\nSee docs/operations.md (installed in /usr/share/doc/rexec) and rexecctl(1)."
)]
pub struct Overrides {
    /// Config file (TOML). Default: /etc/rexec/rexecd.toml as root, else
    /// ~/.config/rexec/rexecd.toml. Give it several times to layer files: they merge in
    /// order, a later file's keys winning (tables merge key by key).
    #[arg(long, value_name = "FILE")]
    pub config: Vec<PathBuf>,
    /// Unix socket path (server.socket).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// Directory of the redb database (server.data_dir).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Also listen on TCP (bearer tokens only), e.g. 127.0.0.1:8088 (server.tcp).
    #[arg(long, value_name = "ADDR:PORT")]
    pub tcp: Option<SocketAddr>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub auth: AuthConfig,
    pub docker: DockerConfig,
    pub images: BTreeMap<String, ImageConfig>,
    pub tiers: BTreeMap<Tier, TierOverride>,
    pub terminal: TerminalConfig,
    pub setup: SetupConfig,
    pub events: EventsConfig,
    pub reaper: ReaperConfig,
    pub limits: LimitsConfig,
    pub log: LogConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub socket: PathBuf,
    /// Octal permission bits of the Unix socket, e.g. "0660".
    pub socket_mode: String,
    /// Group owning the Unix socket; empty keeps the daemon's own group.
    pub socket_group: String,
    /// TCP listener; off unless set.
    pub tcp: Option<SocketAddr>,
    /// PEM certificate chain and private key: with both set, the TCP listener speaks only TLS.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Plain HTTP on TCP is refused on any address but loopback unless this is set (for a
    /// TLS-terminating proxy in front, say).
    pub allow_plain_tcp: bool,
    pub data_dir: PathBuf,
    /// How many creations run their pipeline at once; the rest wait in `validating`.
    pub max_concurrent_creations: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Tier given to local accounts that first connect over the Unix socket.
    pub local_tier: Tier,
    /// Members of this group are admins over the Unix socket (uid 0 always is).
    pub admin_group: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Path of the Docker engine's Unix socket.
    pub socket: PathBuf,
    /// Network for containers: a bridge network rexecd creates if missing, or `none`.
    pub network: String,
    pub pids_limit: i64,
    /// Capabilities added back after `CapDrop: ["ALL"]`.
    pub cap_add: Vec<String>,
    /// Run Docker's init (tini) as PID 1 so signals and zombies are handled.
    pub init: bool,
    pub stop_timeout_seconds: u32,
    /// Extra labels put on every Docker object (tests use this to find their own).
    pub extra_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// The Docker reference the catalog name maps to.
    pub docker: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub min_tier: Option<Tier>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TerminalConfig {
    pub reconnect_grace_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SetupConfig {
    /// A roles catalog replacing the built-in one (same format as `src/daemon/setup/roles.toml`).
    pub roles_file: Option<PathBuf>,
    /// Time budget of one set-up step; past it the step is killed and marked failed.
    pub step_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// How many events are kept for `?since=` replay.
    pub retain: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReaperConfig {
    pub interval_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Writes (POST, PATCH, PUT, DELETE) one user may make per minute, in bursts of up to a
    /// minute's worth; beyond it, 429 with `Retry-After`. 0 turns the limit off.
    pub writes_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            writes_per_minute: 600,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// A tracing filter such as `info` or `rexec=debug`.
    pub level: String,
}

/// Where the daemon puts its files when no path is configured: system paths as root, the
/// XDG directories otherwise.
struct DefaultPaths {
    socket: PathBuf,
    data_dir: PathBuf,
    config: PathBuf,
}

fn default_paths() -> DefaultPaths {
    if nix::unistd::geteuid().is_root() {
        return DefaultPaths {
            socket: "/run/rexec/rexecd.sock".into(),
            data_dir: "/var/lib/rexec".into(),
            config: "/etc/rexec/rexecd.toml".into(),
        };
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    let runtime = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let data = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".local/share"));
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    DefaultPaths {
        socket: runtime.join("rexec/rexecd.sock"),
        data_dir: data.join("rexec"),
        config: config.join("rexec/rexecd.toml"),
    }
}

/// The socket path a client uses when none is given: the same default the daemon binds.
pub fn default_socket_path() -> PathBuf {
    default_paths().socket
}

impl Default for ServerConfig {
    fn default() -> Self {
        let paths = default_paths();
        Self {
            socket: paths.socket,
            socket_mode: "0660".into(),
            socket_group: "rexec".into(),
            tcp: None,
            tls_cert: None,
            tls_key: None,
            allow_plain_tcp: false,
            data_dir: paths.data_dir,
            max_concurrent_creations: 4,
        }
    }
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            local_tier: Tier::Pro,
            admin_group: "rexec-admin".into(),
        }
    }
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            socket: "/var/run/docker.sock".into(),
            network: "rexec".into(),
            pids_limit: 1024,
            cap_add: [
                "CHOWN",
                "DAC_OVERRIDE",
                "FOWNER",
                "FSETID",
                "KILL",
                "SETGID",
                "SETUID",
                "NET_BIND_SERVICE",
            ]
            .map(String::from)
            .to_vec(),
            init: true,
            stop_timeout_seconds: 10,
            extra_labels: BTreeMap::new(),
        }
    }
}

impl Default for TerminalConfig {
    fn default() -> Self {
        Self {
            reconnect_grace_seconds: 300,
        }
    }
}

impl Default for SetupConfig {
    fn default() -> Self {
        Self {
            roles_file: None,
            step_timeout_seconds: 600,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { retain: 10_000 }
    }
}

impl Default for ReaperConfig {
    fn default() -> Self {
        Self {
            interval_seconds: 30,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
        }
    }
}

impl Config {
    /// Reads the config files (the default one only if it exists), then applies the flags.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        let files = match overrides.config.as_slice() {
            [] => vec![(default_paths().config, false)],
            given => given.iter().map(|p| (p.clone(), true)).collect(),
        };
        let mut tables = Vec::new();
        for (path, required) in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => return Err(ConfigError::Read { path, source }),
            };
            let table: toml::Table = text.parse().map_err(|source| ConfigError::Parse {
                path: path.clone(),
                source: Box::new(source),
            })?;
            tables.push((path, table));
        }
        let mut merged = toml::Table::new();
        for (_, table) in &tables {
            merge(&mut merged, table.clone());
        }
        let mut config = Self::deserialize(merged).map_err(|source| {
            // Name the file that holds an unknown key. Other errors (a missing field, say)
            // belong to the merged result: a file may rightly hold only part of a table.
            let culprit = tables.iter().find(|(_, t)| {
                Self::deserialize(t.clone()).is_err_and(|e| e.message().contains("unknown field"))
            });
            let path = match culprit {
                Some((path, _)) => path.clone(),
                None => tables
                    .iter()
                    .map(|(p, _)| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" + ")
                    .into(),
            };
            ConfigError::Parse {
                path,
                source: Box::new(source),
            }
        })?;
        if let Some(s) = &overrides.socket {
            config.server.socket = s.clone();
        }
        if let Some(d) = &overrides.data_dir {
            config.server.data_dir = d.clone();
        }
        if let Some(t) = overrides.tcp {
            config.server.tcp = Some(t);
        }
        config.validate()?;
        Ok(config)
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    fn deserialize(table: toml::Table) -> Result<Self, toml::de::Error> {
        toml::Value::Table(table).try_into()
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.socket_mode()?;
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return Err(ConfigError::Invalid(
                "server.tls_cert and server.tls_key go together: set both or neither".into(),
            ));
        }
        if let Some(addr) = self.server.tcp {
            self.check_plain_tcp(addr)?;
        }
        if self.server.max_concurrent_creations == 0 {
            return Err(ConfigError::Invalid(
                "server.max_concurrent_creations must be at least 1".into(),
            ));
        }
        if self.docker.network.is_empty() {
            return Err(ConfigError::Invalid(
                "docker.network must not be empty".into(),
            ));
        }
        for (name, image) in &self.images {
            if image.docker.trim().is_empty() {
                return Err(ConfigError::Invalid(format!(
                    "images.\"{name}\".docker must not be empty"
                )));
            }
        }
        if self.reaper.interval_seconds == 0 {
            return Err(ConfigError::Invalid(
                "reaper.interval_seconds must be at least 1".into(),
            ));
        }
        Ok(())
    }

    pub fn tls(&self) -> Option<(&Path, &Path)> {
        Some((
            self.server.tls_cert.as_deref()?,
            self.server.tls_key.as_deref()?,
        ))
    }

    /// Plain HTTP is for loopback only, unless `server.allow_plain_tcp`. Also checked for a
    /// TCP socket inherited from systemd, whose address the config does not know.
    pub fn check_plain_tcp(&self, addr: SocketAddr) -> Result<(), ConfigError> {
        if self.tls().is_some() || self.server.allow_plain_tcp || addr.ip().is_loopback() {
            return Ok(());
        }
        Err(ConfigError::Invalid(format!(
            "refusing plain HTTP on {addr}, which is not a loopback address: set server.tls_cert and server.tls_key, or server.allow_plain_tcp = true (behind a TLS proxy)"
        )))
    }

    pub fn socket_mode(&self) -> Result<u32, ConfigError> {
        u32::from_str_radix(self.server.socket_mode.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o777)
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "server.socket_mode {:?} is not an octal mode",
                    self.server.socket_mode
                ))
            })
    }

    pub fn db_path(&self) -> PathBuf {
        self.server.data_dir.join("rexec.redb")
    }

    pub fn data_dir(&self) -> &Path {
        &self.server.data_dir
    }
}

/// Merges `over` into `base`: tables key by key, any other value replaced.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (key, value) in over {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_keys_the_tests_rely_on() {
        let c = Config::parse(
            r#"
            [docker]
            network = "none"
            [images."alpine:latest"]
            docker = "rexec-test/busybox:latest"
            [tiers.free]
            session_seconds = 5
            [terminal]
            reconnect_grace_seconds = 7
            "#,
        )
        .unwrap();
        assert_eq!(c.docker.network, "none");
        assert_eq!(
            c.images["alpine:latest"].docker,
            "rexec-test/busybox:latest"
        );
        assert_eq!(c.tiers[&Tier::Free].session_seconds, Some(5));
        assert_eq!(c.terminal.reconnect_grace_seconds, 7);
        c.validate().unwrap();
    }

    #[test]
    fn the_shipped_config_parses_to_the_defaults() {
        let c = Config::parse(include_str!("../../packaging/rexecd.toml")).unwrap();
        c.validate().unwrap();
        let d = Config::default();
        assert_eq!(c.docker.cap_add, d.docker.cap_add);
        assert_eq!(c.docker.pids_limit, d.docker.pids_limit);
        assert_eq!(c.docker.network, d.docker.network);
        assert_eq!(c.server.socket_mode, d.server.socket_mode);
        assert_eq!(c.server.allow_plain_tcp, d.server.allow_plain_tcp);
        assert_eq!(
            c.server.max_concurrent_creations,
            d.server.max_concurrent_creations
        );
        assert_eq!(c.auth.local_tier, d.auth.local_tier);
        assert_eq!(c.events.retain, d.events.retain);
        assert_eq!(c.reaper.interval_seconds, d.reaper.interval_seconds);
        assert_eq!(c.limits.writes_per_minute, d.limits.writes_per_minute);
        assert_eq!(
            c.terminal.reconnect_grace_seconds,
            d.terminal.reconnect_grace_seconds
        );
    }

    #[test]
    fn plain_tcp_only_on_loopback_unless_allowed_and_tls_needs_both_files() {
        let ok = |t: &str| Config::parse(t).unwrap().validate();
        ok("[server]\ntcp = \"127.0.0.1:8088\"").unwrap();
        ok("[server]\ntcp = \"[::1]:8088\"").unwrap();
        let err = ok("[server]\ntcp = \"0.0.0.0:8088\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("refusing plain HTTP on 0.0.0.0:8088"), "{err}");
        ok("[server]\ntcp = \"0.0.0.0:8088\"\nallow_plain_tcp = true").unwrap();
        ok("[server]\ntcp = \"0.0.0.0:8088\"\ntls_cert = \"/c.pem\"\ntls_key = \"/k.pem\"")
            .unwrap();
        let err = ok("[server]\ntls_cert = \"/c.pem\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("go together"), "{err}");
    }

    #[test]
    fn later_files_win_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.toml");
        let over = dir.path().join("over.toml");
        std::fs::write(
            &base,
            "[server]\nsocket = \"/a.sock\"\nmax_concurrent_creations = 2\n[images.\"alpine:latest\"]\ndocker = \"alpine:3\"\n",
        )
        .unwrap();
        std::fs::write(
            &over,
            "[server]\nsocket = \"/b.sock\"\n[images.\"alpine:latest\"]\ndocker = \"local/alpine\"\n",
        )
        .unwrap();
        let c = Config::load(&Overrides {
            config: vec![base.clone(), over.clone()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.server.socket, PathBuf::from("/b.sock"));
        assert_eq!(c.server.max_concurrent_creations, 2);
        assert_eq!(c.images["alpine:latest"].docker, "local/alpine");

        // A file may hold part of a table that another file completes.
        std::fs::write(&over, "[images.\"alpine:latest\"]\nmin_tier = \"pro\"\n").unwrap();
        let c = Config::load(&Overrides {
            config: vec![base.clone(), over.clone()],
            ..Default::default()
        })
        .unwrap();
        assert_eq!(c.images["alpine:latest"].docker, "alpine:3");
        assert_eq!(c.images["alpine:latest"].min_tier, Some(Tier::Pro));

        // A bad key is reported with the file it is in; a missing given file is an error.
        std::fs::write(&over, "[server]\nsokcet = 1\n").unwrap();
        let err = Config::load(&Overrides {
            config: vec![base.clone(), over.clone()],
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("over.toml") && err.contains("sokcet"), "{err}");
        let err = Config::load(&Overrides {
            config: vec![dir.path().join("missing.toml")],
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn rejects_unknown_keys_and_bad_modes() {
        assert!(Config::parse("[server]\nsokcet = \"/x\"").is_err());
        let c = Config::parse("[server]\nsocket_mode = \"999\"").unwrap();
        assert!(c.validate().is_err());
        let c = Config::parse("[server]\nsocket_mode = \"0600\"").unwrap();
        assert_eq!(c.socket_mode().unwrap(), 0o600);
    }
}
