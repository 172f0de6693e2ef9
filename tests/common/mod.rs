//! The integration-test harness: a real `rexecd` binary on a temp socket, temp data dir and
//! temp config, against the real Docker engine. Every Docker object the daemon makes carries
//! this daemon's own `rexec.test` label and is removed on drop, also when a test panics.

#![allow(dead_code)]

pub mod certs;
pub mod docker;
pub mod events;
pub mod net;
pub mod registry;
pub mod term;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rexec::api;
use rexec::client::{Client, Endpoint};

/// The locally built test image (scripts/test-env.sh).
pub const TEST_IMAGE: &str = "rexec-test/busybox:latest";

pub struct Daemon {
    child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub tcp: String,
    pub label: String,
    config: PathBuf,
    /// Started by `systemd-socket-activate`, which binds `socket` and `tcp` and passes them
    /// on, with this `NOTIFY_SOCKET`.
    notify_socket: Option<PathBuf>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Fails (never skips) when there is no engine, naming the command that sets one up.
pub fn require_docker() {
    let quietly = |args: &[&str]| {
        Command::new("docker")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        quietly(&["info"]),
        "no Docker engine answers: run `sudo scripts/test-env.sh` (it installs and starts one, and builds the test images)"
    );
    assert!(
        quietly(&["image", "inspect", TEST_IMAGE]),
        "test image {TEST_IMAGE} missing: run `sudo scripts/test-env.sh`"
    );
}

impl Daemon {
    /// A daemon whose catalog maps every image to the test image, with no container network.
    pub fn start() -> Daemon {
        Self::start_with("")
    }

    /// `extra` is appended to the config (TOML tables).
    pub fn start_with(extra: &str) -> Daemon {
        Self::start_full(extra, None)
    }

    /// `server` is appended to the `[server]` table.
    pub fn start_with_server(server: &str) -> Daemon {
        Self::start_inner("", None, server, None)
    }

    pub fn start_full(extra: &str, docker_socket: Option<&Path>) -> Daemon {
        Self::start_inner(extra, docker_socket, "", None)
    }

    /// Socket activation: `systemd-socket-activate` listens on `socket` and `tcp` and starts
    /// rexecd at the first connection, passing both sockets and `NOTIFY_SOCKET=notify`. The
    /// config names neither: its `server.socket` is `config.sock` in the temp dir, and it has
    /// no `tcp`.
    pub fn start_activated(notify: &Path) -> Daemon {
        Self::start_inner("", None, "", Some(notify.to_path_buf()))
    }

    fn start_inner(
        extra: &str,
        docker_socket: Option<&Path>,
        server: &str,
        notify_socket: Option<PathBuf>,
    ) -> Daemon {
        require_docker();
        let dir = tempfile::tempdir().unwrap();
        let label = format!("t-{}", uuid::Uuid::new_v4().simple());
        let socket = dir.path().join("rexecd.sock");
        let tcp = format!("127.0.0.1:{}", free_port());
        let docker_socket = docker_socket
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "/var/run/docker.sock".into());
        let mut images = String::new();
        for name in [
            "ubuntu:24.04",
            "debian:bookworm",
            "alpine:latest",
            "archlinux:latest",
        ] {
            images.push_str(&format!("[images.\"{name}\"]\ndocker = \"{TEST_IMAGE}\"\n"));
        }
        let (config_socket, config_tcp) = match notify_socket {
            Some(_) => (dir.path().join("config.sock"), String::new()),
            None => (socket.clone(), format!("tcp = \"{tcp}\"")),
        };
        let config = format!(
            r#"[server]
socket = "{socket}"
data_dir = "{data}"
{group}{config_tcp}
{server}

[docker]
socket = "{docker_socket}"
network = "none"
stop_timeout_seconds = 2
extra_labels = {{ "rexec.test" = "{label}" }}

{reaper}
{log}

{images}
{extra}
"#,
            socket = config_socket.display(),
            data = dir.path().join("data").display(),
            group = if server.contains("socket_group") {
                ""
            } else {
                "socket_group = \"\"\n"
            },
            reaper = if extra.contains("[reaper]") {
                ""
            } else {
                "[reaper]\ninterval_seconds = 1\n"
            },
            log = if extra.contains("[log]") {
                ""
            } else {
                "[log]\nlevel = \"rexec=debug,info\"\n"
            },
        );
        let config_path = dir.path().join("rexecd.toml");
        std::fs::write(&config_path, config).unwrap();
        let mut d = Daemon {
            child: None,
            dir,
            socket,
            tcp,
            label,
            config: config_path,
            notify_socket,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("rexecd.log"))
            .unwrap();
        let mut cmd = match &self.notify_socket {
            None => Command::new(env!("CARGO_BIN_EXE_rexecd")),
            Some(notify) => {
                let mut c = Command::new("systemd-socket-activate");
                c.arg("-l")
                    .arg(&self.socket)
                    .args(["-l", &self.tcp])
                    .arg(format!("--setenv=NOTIFY_SOCKET={}", notify.display()))
                    .arg(env!("CARGO_BIN_EXE_rexecd"));
                c
            }
        };
        let child = cmd
            .arg("--config")
            .arg(&self.config)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("rexecd starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::os::unix::net::UnixStream::connect(&self.socket).is_err() {
            assert!(
                Instant::now() < deadline,
                "rexecd did not bind its socket:\n{}",
                self.log()
            );
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("rexecd exited with {status}:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rexecd.log")).unwrap_or_default()
    }

    /// Waits until the daemon reports Docker reachable.
    pub async fn ready(&self) -> &Self {
        let c = self.client();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(h) = c.health().await {
                if h.docker == api::DockerStatus::Ok {
                    return self;
                }
            }
            assert!(
                Instant::now() < deadline,
                "Docker never became available:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The local admin (root over the Unix socket).
    pub fn client(&self) -> Client {
        Client::unix(&self.socket)
    }

    pub fn tcp_client(&self, token: Option<&str>) -> Client {
        Client::new(
            Endpoint::Tcp(format!("http://{}", self.tcp)),
            token.map(str::to_string),
        )
    }

    /// A new user of `tier` and a TCP client holding a read/write token of theirs.
    pub async fn user(&self, name: &str, tier: &str) -> (api::User, Client) {
        let admin = self.client();
        let user = admin.create_user(name, tier).await.expect("user created");
        let token = self.token_for(&user.id, None).await;
        (user, self.tcp_client(Some(&token)))
    }

    pub async fn token_for(&self, user: &str, scopes: Option<&[&str]>) -> String {
        let req = api::CreateTokenRequest {
            name: "test".into(),
            scopes: scopes.map(|s| s.iter().map(|x| x.to_string()).collect()),
            expires_in: None,
        };
        self.client()
            .create_user_token(user, &req)
            .await
            .expect("token created")
            .token
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// SIGKILL: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn start_again(&mut self) {
        assert!(self.child.is_none());
        self.spawn();
    }

    /// Docker containers carrying this daemon's label.
    pub fn docker_containers(&self) -> Vec<String> {
        docker::ids(&[
            "ps",
            "-aq",
            "--no-trunc",
            "--filter",
            &format!("label=rexec.test={}", self.label),
        ])
    }

    pub fn docker_volumes(&self) -> Vec<String> {
        docker::ids(&[
            "volume",
            "ls",
            "-q",
            "--filter",
            &format!("label=rexec.test={}", self.label),
        ])
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        for id in self.docker_containers() {
            docker::run(&["rm", "-f", "-v", &id]);
        }
        for v in self.docker_volumes() {
            docker::run(&["volume", "rm", "-f", &v]);
        }
        if std::thread::panicking() {
            eprintln!("---- rexecd log ----\n{}", self.log());
        }
    }
}

/// SIGTERM, then SIGKILL if it has not exited within `grace`; reaps it either way.
pub fn terminate(child: &mut Child, grace: Duration) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs a command to its end: exit code (-1 if killed by a signal), stdout, stderr.
pub fn output(cmd: &mut Command) -> (i32, String, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} does not run: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs rexecd with `config` (plus a temp socket and data dir) and expects it to refuse to
/// start; returns what it printed.
pub fn rexecd_refuses(config: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rexecd.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rexecd"))
        .arg("--socket")
        .arg(dir.path().join("s"))
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "rexecd started with:\n{config}\n{stderr}"
    );
    assert!(
        !dir.path().join("s").exists(),
        "a refused start left its socket file"
    );
    stderr
}

/// Polls `f` until it returns `Some`, for at most `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until the container is `running` (or panics with its state).
pub async fn wait_running(c: &Client, id: &str) -> api::Container {
    eventually(60, "container running", || async {
        let got = c.get_container(id).await.ok()?;
        assert_ne!(
            got.status,
            api::ContainerStatus::Error,
            "creation failed: {got:?}"
        );
        (got.status == api::ContainerStatus::Running).then_some(got)
    })
    .await
}

/// A daemon where user `ann` (free tier) has a running `barebone` container `box`.
pub struct WithBox {
    pub d: Daemon,
    /// ann's client (TCP, her token).
    pub c: Client,
    pub token: String,
    pub running: api::Container,
}

pub async fn with_box(extra: &str) -> WithBox {
    let d = Daemon::start_with(extra);
    d.ready().await;
    let (user, c) = d.user("ann", "free").await;
    let token = d.token_for(&user.id, None).await;
    // barebone: a home directory with nothing in it, and the fastest path.
    let mut req = create_req("alpine", Some("box"));
    req.role = Some("barebone".into());
    let made = c.create_container(&req).await.unwrap();
    let running = wait_running(&c, &made.db_id).await;
    WithBox {
        d,
        c,
        token,
        running,
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
pub fn proc_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

pub fn custom_req(reference: &str, name: Option<&str>) -> api::CreateContainerRequest {
    api::CreateContainerRequest {
        image: "custom".into(),
        custom_image: Some(reference.into()),
        name: name.map(str::to_string),
        ..Default::default()
    }
}

pub fn create_req(image: &str, name: Option<&str>) -> api::CreateContainerRequest {
    api::CreateContainerRequest {
        image: image.into(),
        name: name.map(str::to_string),
        ..Default::default()
    }
}

/// Every shell option on, with the default theme.
pub fn every_shell_option() -> api::ShellOptions {
    api::ShellOptions {
        enhanced: Some(true),
        theme: None,
        autosuggestions: Some(true),
        syntax_highlight: Some(true),
        history_search: Some(true),
        git_aliases: Some(true),
        system_stats: Some(true),
        use_tmux: Some(true),
    }
}
