//! `rexecctl` against a real daemon: bootstrap an installation over the Unix socket and run
//! the container commands, with their output and exit codes.

mod common;

use std::process::Command;

use common::Daemon;

fn ctl(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    run(Command::new(env!("CARGO_BIN_EXE_rexecctl")), d, args)
}

/// rexecctl over the socket with a user's token: that user, not root.
fn ctl_as(d: &Daemon, token: &str, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["--token", token];
    all.extend_from_slice(args);
    ctl(d, &all)
}

/// A user of `tier` made with rexecctl, and a token of theirs (also made with rexecctl).
fn ctl_user(d: &Daemon, name: &str, tier: &str) -> String {
    let (code, _, err) = ctl(d, &["user", "create", name, "--tier", tier]);
    assert_eq!(code, 0, "{err}");
    let (code, token, err) = ctl(d, &["token", "create", "--user", name]);
    assert_eq!(code, 0, "{err}");
    token.trim().to_string()
}

/// Runs a prepared rexecctl command against the daemon's socket: exit code, stdout, stderr.
fn run(mut cmd: Command, d: &Daemon, args: &[&str]) -> (i32, String, String) {
    common::output(
        cmd.arg("--socket")
            .arg(&d.socket)
            .args(args)
            .env_remove("REXEC_URL")
            .env_remove("REXEC_TOKEN"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn bootstrap_and_manage_containers() {
    let d = Daemon::start();
    d.ready().await;
    let (code, out, err) = ctl(&d, &["user", "create", "ann", "--tier", "free"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("created user ann (usr_"), "{out}");
    let (code, token, err) = ctl(&d, &["token", "create", "--user", "ann"]);
    assert_eq!(code, 0, "{err}");
    let token = token.trim().to_string();
    assert!(token.starts_with("rexec_") && token.len() == 70, "{token}");

    // As ann, through the token, over the socket.
    let as_ann = |args: &[&str]| ctl_as(&d, &token, args);
    let (code, _, err) = as_ann(&["create", "--image", "alpine:latest", "-e", "novalue"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("expected KEY=VALUE"), "{err}");
    let (code, out, err) = as_ann(&[
        "create",
        "--image",
        "alpine:latest",
        "--name",
        "dev",
        "-e",
        "GREETING=hi=there",
        "--label",
        "team=core",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("creating dev"), "{out}");
    assert!(out.contains("validating") && out.contains("ready"), "{out}");
    let (code, out, _) = as_ann(&["ls"]);
    assert_eq!(code, 0);
    assert!(out.lines().next().unwrap().starts_with("NAME"));
    assert!(out.contains("dev") && out.contains("running"), "{out}");
    let (code, out, _) = as_ann(&["get", "dev", "--output", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["name"].as_str(), v["status"].as_str()),
        (Some("dev"), Some("running"))
    );
    assert_eq!(v["labels"]["team"], "core", "{out}");
    let (code, out, _) = as_ann(&["exec", "dev", "--", "sh", "-c", "echo $GREETING"]);
    assert_eq!((code, out.as_str()), (0, "hi=there\n"));
    // exec: output printed, the command's exit code passed through.
    let (code, out, err) = as_ann(&[
        "exec",
        "dev",
        "--",
        "sh",
        "-c",
        "echo hello; echo oops >&2; exit 42",
    ]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (42, "hello\n", "oops\n")
    );
    let (code, out, _) = as_ann(&["exec", "dev", "-w", "/tmp", "--", "pwd"]);
    assert_eq!((code, out.as_str()), (0, "/tmp\n"));
    let (code, _, err) = as_ann(&["exec", "dev", "--timeout", "1", "--", "sleep", "30"]);
    assert_eq!((code, err.trim()), (124, "rexecctl: timed out after 1 s"));
    // cp both ways, binary-safe, streamed.
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("blob.bin");
    let data: Vec<u8> = (0..=255u8).cycle().take(1_000_000).collect();
    std::fs::write(&src, &data).unwrap();
    let (code, out, err) = as_ann(&["cp", src.to_str().unwrap(), "dev:/tmp/"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("dev:/tmp/blob.bin (1000000 bytes)"), "{out}");
    let (code, out, err) = as_ann(&["cp", src.to_str().unwrap(), "dev:copy.bin"]);
    assert!(
        code == 0 && out.contains("dev:/home/user/copy.bin"),
        "{out}{err}"
    );
    let back = tmp.path().join("back.bin");
    let (code, _, err) = as_ann(&["cp", "dev:copy.bin", back.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let (code, _, err) = as_ann(&["cp", "dev:/nope", tmp.path().to_str().unwrap()]);
    assert_eq!((code, err.trim()), (1, "rexecctl: file not found"));
    assert!(!tmp.path().join("nope").exists(), "no partial file left");
    let (code, out, _) = as_ann(&["stop", "dev"]);
    assert_eq!((code, out.trim()), (0, "dev: container stopped"));
    let (code, out, _) = as_ann(&["start", "dev"]);
    assert_eq!((code, out.trim()), (0, "dev: container started"));

    // Errors: one line from the API's body, exit code 1.
    let (code, _, err) = as_ann(&["get", "nope"]);
    assert_eq!((code, err.trim()), (1, "rexecctl: container not found"));
    let (code, _, err) = as_ann(&["create", "--image", "fedora"]);
    assert_eq!((code, err.trim()), (1, "rexecctl: unsupported image type"));
    let (code, out, _) = as_ann(&["rm", "dev"]);
    assert_eq!((code, out.trim()), (0, "dev: container deleted"));
    assert!(d.docker_containers().is_empty());

    // Daemon not running: exit code 3.
    let out = Command::new(env!("CARGO_BIN_EXE_rexecctl"))
        .args(["--socket", "/nonexistent/rexecd.sock", "ls"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr)
        .starts_with("rexecctl: cannot reach rexecd at /nonexistent/rexecd.sock"));
}

/// rexecctl as the unprivileged `nobody` account (uid 65534).
fn ctl_as_nobody(d: &Daemon, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"]);
    cmd.arg(env!("CARGO_BIN_EXE_rexecctl"));
    run(cmd, d, args)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_socket_mode_decides_who_may_connect_and_peers_are_users() {
    use std::os::unix::fs::PermissionsExt;
    // Default mode 0660: another local account cannot connect.
    let d = Daemon::start();
    d.ready().await;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let (code, _, err) = ctl_as_nobody(&d, &["ls"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("ermission denied"), "{err}");
    drop(d);

    // Mode 0666: the account connects and becomes a rexec user of the same name, local tier,
    // not an admin.
    let d = Daemon::start_with_server("socket_mode = \"0666\"\nsocket_group = \"nogroup\"\n");
    d.ready().await;
    std::fs::set_permissions(d.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let mode = std::fs::metadata(&d.socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o666);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        std::fs::metadata(&d.socket).unwrap().gid(),
        65534,
        "socket_group applied"
    );
    let (code, out, err) = ctl_as_nobody(&d, &["ls"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("NAME"), "{out}");
    let (code, _, err) = ctl_as_nobody(&d, &["user", "ls"]);
    assert_eq!((code, err.trim()), (1, "rexecctl: admin rights required"));
    let users = d.client().users().await.unwrap();
    let nobody = users
        .users
        .iter()
        .find(|u| u.name == "nobody")
        .expect("peer became a user");
    assert_eq!((nobody.tier.as_str(), nobody.admin), ("pro", false));
}

/// tmux on a socket of this test's own, killed on drop.
struct Tmux(String);

impl Tmux {
    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.0)
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Session `t`, `width` × `height`, running `cmd`.
    fn new_session(&self, width: u16, height: u16, cmd: &str) {
        let (w, h) = (width.to_string(), height.to_string());
        self.run(&["new-session", "-d", "-s", "t", "-x", &w, "-y", &h, cmd]);
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    async fn wait_for(&self, needle: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let s = self.screen();
            if s.contains(needle) {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {needle:?}; the screen:\n{s}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        self.run(&["kill-server"]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn rexecctl_shell_in_tmux_as_a_person_would() {
    let d = Daemon::start();
    d.ready().await;
    let (user, c) = d.user("ann", "free").await;
    let token = d.token_for(&user.id, None).await;
    let made = c
        .create_container(&common::create_req("alpine", Some("box")))
        .await
        .unwrap();
    common::wait_running(&c, &made.db_id).await;
    let tmux = Tmux(format!("rexec-{}", d.label));
    let result = d.dir.path().join("exit-code");
    let modes = d.dir.path().join("stty-after");
    let cmd = format!(
        "{} --socket {} --token {token} shell box; code=$?; stty -a > {}; echo $code > {}; sleep 600",
        env!("CARGO_BIN_EXE_rexecctl"),
        d.socket.display(),
        modes.display(),
        result.display()
    );
    tmux.new_session(100, 30, &cmd);
    // The prompt set-up wrote for ash.
    tmux.wait_for("root@box:/home/user#").await;
    // Type a command, see its output.
    tmux.run(&["send-keys", "-t", "t", "echo hello-$((6*7))", "Enter"]);
    tmux.wait_for("hello-42").await;
    // The size inside is the window's; a resize reaches it.
    tmux.run(&["send-keys", "-t", "t", "stty size", "Enter"]);
    tmux.wait_for("30 100").await;
    tmux.run(&["resize-window", "-t", "t", "-x", "120", "-y", "40"]);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tmux.run(&["send-keys", "-t", "t", "clear; stty size", "Enter"]);
    tmux.wait_for("40 120").await;
    // exit passes the code back, and the terminal is left sane (the shell after it runs).
    tmux.run(&["send-keys", "-t", "t", "exit 5", "Enter"]);
    let code = common::eventually(20, "rexecctl to exit", || async {
        std::fs::read_to_string(&result)
            .ok()
            .filter(|s| !s.is_empty())
    })
    .await;
    assert_eq!(code.trim(), "5");
    let modes = std::fs::read_to_string(&modes).unwrap();
    let flags: Vec<&str> = modes.split([' ', ';', '\n']).collect();
    assert!(
        flags.contains(&"icanon") && flags.contains(&"echo"),
        "raw mode restored: {modes}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_shell_options_and_the_setup_command() {
    let d = Daemon::start();
    d.ready().await;
    let token = ctl_user(&d, "ann", "free");
    let as_ann = |args: &[&str]| ctl_as(&d, &token, args);
    // The busybox image has no package manager: git for the aliases cannot be installed.
    let (code, out, err) = as_ann(&[
        "create",
        "--image",
        "alpine",
        "--name",
        "dev",
        "--shell",
        "system_stats,git_aliases",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("Configuring system_stats: system-stats"),
        "{out}"
    );
    assert!(out.contains("some set-up steps failed"), "{out}");
    let (code, out, _) = as_ann(&["setup", "dev"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("set-up: failed, package manager none, login shell ash"),
        "{out}"
    );
    assert!(out.contains("succeeded  system_stats"), "{out}");
    assert!(
        out.contains("failed     git_aliases        git-aliases              this image has no supported package manager"),
        "{out}"
    );
    // A re-run is followed to its end; a failed step makes it exit 4.
    let (code, out, _) = as_ann(&["setup", "dev", "--run", "--log"]);
    assert_eq!(code, 4, "{out}");
    assert!(out.contains("set-up of dev started"), "{out}");
    assert_eq!(out.matches("==> set-up started").count(), 2, "{out}");
    let (code, out, _) = as_ann(&["setup", "dev", "--output", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["state"], "failed");
    let (code, out, _) = as_ann(&["get", "dev"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("setup:       failed (git_aliases (git-aliases):"),
        "{out}"
    );
    // A bad option is a usage error.
    let (code, _, err) = as_ann(&["create", "--shell", "rainbow"]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = as_ann(&["setup", "nope"]);
    assert_eq!((code, err.trim()), (1, "rexecctl: container not found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_status_admin_and_token_commands_with_their_errors() {
    let d = Daemon::start();
    d.ready().await;
    // Read commands, text and JSON.
    let (code, out, _) = ctl(&d, &["images"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("ubuntu:24.04") && out.contains("custom"),
        "{out}"
    );
    let (code, out, _) = ctl(&d, &["roles", "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["roles"][0]["name"], "node");
    let (code, out, _) = ctl(&d, &["roles"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("barebone") && out.contains("npm, yarn, nvm"),
        "{out}"
    );
    let (code, out, _) = ctl(&d, &["status"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("status: ok") && out.contains("docker: ok (API 1."),
        "{out}"
    );
    let text = out;
    let (code, out, _) = ctl(&d, &["status", "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["health"]["docker"], "ok");
    // Disk-quota support as the daemon found it (not enforced on these machines' ext4).
    let quota = match v["version"]["disk_quota"].as_bool() {
        Some(true) => "disk quotas: enforced",
        Some(false) => "disk quotas: not enforced on this host",
        None => panic!("no disk_quota in {out}"),
    };
    assert!(text.contains(quota), "{text}");

    // Users: create, set-tier, the limit, rm refused while they own containers.
    let token = ctl_user(&d, "gus", "guest");
    let as_gus = |args: &[&str]| ctl_as(&d, &token, args);
    let (code, out, err) = as_gus(&[
        "create", "--image", "alpine", "--name", "a", "--role", "barebone",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = as_gus(&["create", "--image", "alpine", "--name", "b", "--detach"]);
    assert_eq!((code, err.trim()), (1, "rexecctl: container limit reached"));
    let (code, out, _) = ctl(&d, &["user", "set-tier", "gus", "free"]);
    assert_eq!((code, out.trim()), (0, "gus is now on the free tier"));
    let (code, _, err) = as_gus(&[
        "create", "--image", "alpine", "--name", "b", "--role", "barebone",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = ctl(&d, &["user", "set-tier", "gus", "platinum"]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = ctl(&d, &["user", "rm", "gus"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("rexecctl: "), "{err}");
    // ls --all is for admins: root sees gus's containers, gus may not ask.
    let (code, out, _) = ctl(&d, &["ls", "--all"]);
    assert_eq!(code, 0);
    assert!(out.contains("a ") && out.contains("b "), "{out}");
    let (code, _, _) = as_gus(&["ls", "--all"]);
    assert_eq!(code, 1);

    // events: replayed from the start as JSON lines.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rexecctl"))
        .arg("--socket")
        .arg(&d.socket)
        .args(["--token", &token, "events", "--since", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let ev: serde_json::Value = serde_json::from_str(first.trim()).unwrap();
    assert_eq!(ev["type"], "container_progress", "{first}");

    // rm: several need --force when there is no terminal to ask.
    let (code, _, err) = as_gus(&["rm", "a", "b"]);
    assert_eq!(
        (code, err.trim()),
        (2, "rexecctl: not deleting 2 containers without --force")
    );
    let (code, out, _) = as_gus(&["ls"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("a ") && out.contains("b "),
        "nothing deleted: {out}"
    );
    let (code, out, _) = as_gus(&["rm", "--force", "a", "b"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(out.matches("container deleted").count(), 2, "{out}");
    let (code, out, _) = ctl(&d, &["user", "rm", "gus"]);
    assert_eq!(code, 0, "{out}");

    // Tokens: revoke one, then it no longer works.
    let (_, tok, _) = ctl(&d, &["token", "create", "--name", "temp", "-o", "json"]);
    let t: serde_json::Value = serde_json::from_str(&tok).unwrap();
    let (code, out, _) = ctl(&d, &["token", "revoke", t["id"].as_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.ends_with("token revoked\n"), "{out}");
    let (code, _, err) = ctl(&d, &["--token", t["token"].as_str().unwrap(), "ls"]);
    assert_eq!((code, err.trim()), (1, "rexecctl: unauthorized"));
    let (code, _, _) = ctl(&d, &["token", "revoke", "tok_nope"]);
    assert_eq!(code, 1);
}

/// What a person sees: `rexecctl create` in a terminal (tmux) shows a bar for the stage in
/// progress, the pull's megabytes included, above one line per finished stage. The frames are
/// saved in the target dir; docs/cli.md shows one such capture.
#[tokio::test(flavor = "multi_thread")]
async fn rexecctl_create_in_tmux_shows_stages_and_the_pull() {
    let d = Daemon::start();
    d.ready().await;
    let image = common::registry::RegistryImage::push(&d.label);
    let (user, _) = d.user("ann", "free").await;
    let token = d.token_for(&user.id, None).await;
    let tmux = Tmux(format!("rexec-{}", d.label));
    let cmd = format!(
        "{} --socket {} --token {token} create --image custom --custom-image {} --name dev; echo EXIT=$?; sleep 600",
        env!("CARGO_BIN_EXE_rexecctl"),
        d.socket.display(),
        image.reference,
    );
    tmux.new_session(100, 12, &cmd);
    // Mid-pull: the bar, its percentage and the bytes so far.
    let pulling = tmux.wait_for(" of ").await;
    assert!(
        pulling.contains("pulling") && pulling.contains("MB"),
        "{pulling}"
    );
    assert!(pulling.contains("✓ validating"), "{pulling}");
    assert!(pulling.contains('[') && pulling.contains('%'), "{pulling}");
    let done = tmux.wait_for("EXIT=").await;
    assert!(done.contains("EXIT=0"), "{done}");
    for stage in ["validating", "pulling", "creating", "starting", "ready"] {
        assert!(done.contains(&format!("✓ {stage}")), "{stage}: {done}");
    }
    assert!(done.contains("dev is ready: rexecctl shell dev"), "{done}");
    // The bar is cleared at the end: no percentage is left on the screen.
    assert!(!done.contains('%'), "{done}");
    let capture = format!(
        "$ rexecctl create --image custom --custom-image {} --name dev\n\n-- during the pull --\n{}\n-- at the end --\n{}\n",
        image.reference,
        pulling.trim_end(),
        done.trim_end()
    );
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("rexecctl-create.txt");
    std::fs::write(&out, capture).unwrap();
}

#[test]
fn completions_and_man_pages_come_from_the_clap_definitions() {
    let ctl = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_rexecctl"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // bash loads the script and registers the completion; zsh and fish get theirs.
    let (code, script) = ctl(&["completion", "bash"]);
    assert_eq!(code, 0);
    // Neither needs a daemon nor a usable client: a bad --cacert does not get in the way.
    let with_bad_ca = Command::new(env!("CARGO_BIN_EXE_rexecctl"))
        .args([
            "--url",
            "https://127.0.0.1:1",
            "--cacert",
            "/nonexistent.pem",
        ])
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(with_bad_ca.status.success());
    assert_eq!(String::from_utf8_lossy(&with_bad_ca.stdout), script);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rexecctl.bash");
    std::fs::write(&path, &script).unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!("source {}; complete -p rexecctl", path.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("-F _rexecctl"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for word in ["create", "set-tier", "--custom-image", "--cacert"] {
        assert!(script.contains(word), "bash completion lacks {word}");
    }
    let (code, zsh) = ctl(&["completion", "zsh"]);
    assert!(code == 0 && zsh.starts_with("#compdef rexecctl"), "{zsh}");
    let (code, fish) = ctl(&["completion", "fish"]);
    assert!(code == 0 && fish.contains("complete -c rexecctl"), "{fish}");
    assert_eq!(ctl(&["completion", "tcsh"]).0, 2);

    // One page for rexecctl, one per (nested) command, and rexecd's in section 8.
    let (code, _) = ctl(&["man", &dir.path().join("man").display().to_string()]);
    assert_eq!(code, 0);
    let page = |name: &str| std::fs::read_to_string(dir.path().join("man").join(name)).unwrap();
    assert!(page("rexecctl.1").starts_with(".ie"), "roff");
    assert!(page("rexecctl.1").contains(".TH rexecctl 1"));
    assert!(page("rexecctl-create.1").contains("detach"));
    assert!(page("rexecctl-user-set-tier.1").contains(".TH rexecctl-user-set-tier 1"));
    let rexecd = page("rexecd.8");
    assert!(rexecd.contains(".TH rexecd 8") && rexecd.contains("socket activation"));
    let names: Vec<String> = std::fs::read_dir(dir.path().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.contains("help") || n.contains("-man")),
        "{names:?}"
    );
    assert_eq!(names.len(), 26, "{names:?}");
}

/// Every command's two common failures: a daemon that is not there (exit 3, one line naming
/// the socket) and, for the commands that take a container, one that does not exist or is
/// another user's (exit 1, the API's message).
#[tokio::test(flavor = "multi_thread")]
async fn every_command_reports_an_unreachable_daemon_and_unknown_containers() {
    let commands: &[&[&str]] = &[
        &["create", "--image", "alpine:latest"],
        &["ls"],
        &["get", "x"],
        &["start", "x"],
        &["stop", "x"],
        &["rm", "x"],
        &["exec", "x", "--", "true"],
        &["shell", "x"],
        &["cp", "x:/etc/hostname", "/tmp/rexec-never-written"],
        &["setup", "x"],
        &["events"],
        &["images"],
        &["roles"],
        &["status"],
        &["user", "create", "u"],
        &["user", "ls"],
        &["user", "set-tier", "u", "pro"],
        &["user", "rm", "u"],
        &["token", "create"],
        &["token", "ls"],
        &["token", "revoke", "t"],
    ];
    for args in commands {
        let out = Command::new(env!("CARGO_BIN_EXE_rexecctl"))
            .args(["--socket", "/nonexistent/rexecd.sock"])
            .args(*args)
            .env_remove("REXEC_URL")
            .env_remove("REXEC_TOKEN")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.starts_with("rexecctl: cannot reach rexecd at /nonexistent/rexecd.sock")
                && err.lines().count() == 1,
            "{args:?}: {err}"
        );
    }

    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let theirs = c
        .create_container(&common::create_req("alpine", Some("annbox")))
        .await
        .unwrap();
    common::wait_running(&c, &theirs.db_id).await;
    let bob = ctl_user(&d, "bob", "free");
    for id in ["nope", "annbox", theirs.db_id.as_str()] {
        for args in [
            vec!["get", id],
            vec!["start", id],
            vec!["stop", id],
            vec!["rm", id],
            vec!["exec", id, "--", "true"],
            vec!["shell", id],
            vec!["setup", id],
        ] {
            let (code, out, err) = ctl_as(&d, &bob, &args);
            assert_eq!(
                (code, err.trim()),
                (1, "rexecctl: container not found"),
                "{args:?}: {out}"
            );
        }
    }
    // ann's container is untouched by all of that.
    let still = c.get_container(&theirs.db_id).await.unwrap();
    assert_eq!(still.status, rexec::api::ContainerStatus::Running);
}
