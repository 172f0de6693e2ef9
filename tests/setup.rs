//! Role and shell set-up for real: the configuring stage on the debootstrap Debian image (tools
//! present, tools missing and no network) and on the busybox image (ash, no package manager),
//! re-runs, the status endpoint, time budgets, barebone, and set-up across a SIGKILL.

mod common;

use std::time::Duration;

use common::events::Events;
use common::term::Term;
use common::{custom_req, eventually, wait_running, Daemon};
use hyper::Method;
use rexec::api::{self, SetupState};
use rexec::client::{Client, ClientError};
use serde_json::json;

/// Built by scripts/test-env.sh: bash, tmux, zsh (+ plugins), git, python3, pip, poetry.
const DEBIAN_IMAGE: &str = "rexec-test/debian:bookworm";

fn require_debian() {
    let (ok, _) = common::docker::run(&["image", "inspect", DEBIAN_IMAGE]);
    assert!(
        ok,
        "image {DEBIAN_IMAGE} missing: run `sudo scripts/test-env.sh`"
    );
}

fn debian_req(
    name: &str,
    role: Option<&str>,
    shell: api::ShellOptions,
) -> api::CreateContainerRequest {
    let mut req = custom_req(DEBIAN_IMAGE, Some(name));
    req.role = role.map(str::to_string);
    req.shell = Some(shell);
    req
}

async fn sh(c: &Client, id: &str, script: &str) -> api::ExecResponse {
    c.exec(
        id,
        &api::ExecRequest {
            cmd: Some(vec!["sh".into(), "-c".into(), script.into()]),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

fn step<'a>(s: &'a api::Setup, name: &str, tool: &str) -> &'a api::SetupStep {
    s.steps
        .iter()
        .find(|st| st.name == name && st.tool == tool)
        .unwrap_or_else(|| panic!("no step {name}/{tool} in {s:#?}"))
}

/// Waits for the `container_updated` that ends the set-up run `begun`.
async fn setup_finished(ev: &mut Events, db_id: &str, begun: &api::Setup, secs: u64) -> api::Setup {
    let events = ev
        .until(secs, |e| {
            matches!(&e.body, api::EventBody::ContainerUpdated(c)
                if c.db_id == db_id
                    && c.setup.as_ref().is_some_and(|s| s.started_at == begun.started_at
                        && s.finished_at.is_some() && s.state != SetupState::Running))
        })
        .await;
    match &events.last().unwrap().body {
        api::EventBody::ContainerUpdated(c) => c.setup.clone().unwrap(),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn present_tools_are_configured_offline_on_debian() {
    require_debian();
    let d = Daemon::start_with("[terminal]\nreconnect_grace_seconds = 1\n");
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let all = api::ShellOptions {
        theme: Some("rexec".into()),
        ..common::every_shell_option()
    };
    let made = c
        .create_container(&debian_req("py", Some("python"), all))
        .await
        .unwrap();
    let progress = ev.creation(&made.db_id, 120).await;
    // Each step is announced while configuring, naming the step and the tool.
    let configuring: Vec<&str> = progress
        .iter()
        .filter(|p| p.stage == api::Stage::Configuring)
        .map(|p| p.message.as_str())
        .collect();
    for m in [
        "Configuring python: pip",
        "Configuring python: poetry",
        "Configuring enhanced: zsh",
        "Configuring use_tmux: tmux",
    ] {
        assert!(
            configuring.iter().any(|c| c.starts_with(m)),
            "{m:?} not in {configuring:#?}"
        );
    }
    let ready = progress.last().unwrap();
    assert_eq!(ready.stage, api::Stage::Ready);
    let setup = ready.container.as_ref().unwrap().setup.clone().unwrap();
    assert_eq!(setup.state, SetupState::Succeeded, "{setup:#?}");
    assert_eq!(setup.family.as_deref(), Some("apt"));
    assert_eq!(setup.login_shell.as_deref(), Some("zsh"));
    for tool in ["python", "pip", "poetry"] {
        let s = step(&setup, "python", tool);
        assert_eq!(s.state, SetupState::Succeeded);
        assert_eq!(s.detail.as_deref(), Some("already present; configured"));
        assert!(s.started_at.is_some() && s.finished_at.is_some());
    }
    assert_eq!(
        step(&setup, "use_tmux", "tmux").state,
        SetupState::Succeeded
    );

    // The shell environment is there: zsh with the theme and plugins, aliases, PATH.
    let zsh = sh(
        &c,
        "py",
        "zsh -i -l -c 'alias gs; echo PROMPT=$PROMPT; echo PATH=$PATH; \
         echo AS=${ZSH_AUTOSUGGEST_STRATEGY:-none}; bindkey \"^[[A\"' 2>&1",
    )
    .await;
    assert!(zsh.stdout.contains("gs='git status'"), "{zsh:?}");
    assert!(
        zsh.stdout.contains("vcs_info_msg_0_"),
        "rexec theme: {zsh:?}"
    );
    assert!(
        zsh.stdout.contains("/home/user/.local/bin"),
        "pip user PATH: {zsh:?}"
    );
    assert!(
        !zsh.stdout.contains("AS=none"),
        "autosuggestions loaded: {zsh:?}"
    );
    assert!(
        zsh.stdout.contains("up-line-or-beginning-search"),
        "{zsh:?}"
    );
    // git aliases and the login summary in plain bash too.
    let bash = sh(&c, "py", "bash -i -l -c 'alias gco' 2>/dev/null").await;
    assert!(bash.stdout.contains("alias gco='git checkout'"), "{bash:?}");
    assert!(bash.stdout.contains("rexec container py"), "{bash:?}");
    // The summary shows this container's limits: 2048 MiB on the free tier.
    let stats = sh(&c, "py", "$HOME/.rexec/bin/rexec-stats").await;
    assert!(stats.stdout.contains("of 2048 MiB"), "{stats:?}");
    assert!(stats.stdout.contains(" cores\n"), "{stats:?}");
    assert!(stats.stdout.contains("quota 10240 MB"), "{stats:?}");
    let tmux = sh(&c, "py", "cat ~/.tmux.conf ~/.rexec/tmux.conf").await;
    assert!(
        tmux.stdout.contains("source-file ~/.rexec/tmux.conf"),
        "{tmux:?}"
    );
    assert!(tmux.stdout.contains("history-limit"), "{tmux:?}");

    // The terminal: zsh inside tmux; the session outlives the reconnect grace period.
    let mut t = Term::open(&c, "/ws/terminal/py?id=a", false).await;
    t.send("export MARK=kept; echo SHELL=$SHELL; tmux display -p 'S=#S'\r")
        .await;
    t.expect("S=main").await;
    t.expect("SHELL=/usr/bin/zsh").await;
    drop(t);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut t = Term::open(&c, "/ws/terminal/py?id=b", false).await;
    t.send("echo MARK=$MARK\r").await;
    t.expect("MARK=kept").await;

    // Non-interactive login shells get the tools' environment too.
    let path = sh(&c, "py", "bash -l -c 'echo $PATH'; zsh -l -c 'echo $PATH'").await;
    assert_eq!(
        path.stdout.matches("/home/user/.local/bin").count(),
        2,
        "{path:?}"
    );

    // The user's own startup files: a last line without a newline, a .bashrc that sources
    // .profile (which would loop if .profile sourced .bashrc), a symlinked .zshrc.
    sh(
        &c,
        "py",
        "echo '. ~/.profile' >> ~/.bashrc; printf 'alias ll=\"ls -l\"' >> ~/.bashrc; \
         mkdir ~/dotfiles && mv ~/.zshrc ~/dotfiles/zshrc && ln -s dotfiles/zshrc ~/.zshrc",
    )
    .await;
    // Running it again is idempotent: the same steps, everything already there.
    let again = c.shell_setup("py").await.unwrap();
    assert_eq!(again.state, SetupState::Running);
    let status = c.shell_status("py").await.unwrap();
    assert_eq!(status.log_tail.matches("==> set-up started").count(), 2);
    let done = setup_finished(&mut ev, &made.db_id, &again, 120).await;
    assert_eq!(done.state, SetupState::Succeeded, "{done:#?}");
    let status = c.shell_status("py").await.unwrap();
    assert_eq!(status.log_tail.matches("==> set-up started").count(), 2);
    let marks = sh(
        &c,
        "py",
        "grep -c '>>> rexec >>>' ~/.profile ~/.bashrc ~/.zshrc",
    )
    .await;
    assert_eq!(
        marks.stdout.trim(),
        "/home/user/.profile:1\n/home/user/.bashrc:1\n/home/user/.zshrc:1",
        "one rexec block per file after two runs"
    );
    let bash = sh(
        &c,
        "py",
        "bash -i -l -c 'alias ll; alias gco' 2>&1 </dev/null",
    )
    .await;
    assert_eq!(bash.exit_code, 0, "{bash:?}");
    assert!(bash.stdout.contains("alias ll='ls -l'"), "{bash:?}");
    assert_eq!(
        bash.stdout.matches("rexec container py").count(),
        1,
        "{bash:?}"
    );
    let link = sh(&c, "py", "[ -L ~/.zshrc ] && echo still-a-link").await;
    assert_eq!(link.stdout, "still-a-link\n");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_that_needs_downloads_fails_clearly_and_the_container_stays_usable() {
    require_debian();
    let d = Daemon::start();
    d.ready().await;
    let (_, c) = d.user("ann", "free").await;
    let mut ev = Events::new(c.events(None).await.unwrap());
    let made = c
        .create_container(&debian_req(
            "node",
            Some("node"),
            api::ShellOptions {
                git_aliases: Some(true),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let progress = ev.creation(&made.db_id, 180).await;
    let ready = progress.last().unwrap();
    assert_eq!(ready.stage, api::Stage::Ready, "{progress:#?}");
    assert!(ready.message.contains("set-up"), "{:?}", ready.message);
    let container = ready.container.as_ref().unwrap();
    assert_eq!(container.status, api::ContainerStatus::Running);
    let setup = container.setup.clone().unwrap();
    assert_eq!(setup.state, SetupState::Failed);
    let npm = step(&setup, "node", "npm");
    assert_eq!(npm.state, SetupState::Failed);
    let why = npm.error.as_deref().unwrap();
    assert!(
        why.contains("apt-get") && why.contains("nodejs npm") && why.contains("network"),
        "{why}"
    );
    assert!(
        setup
            .error
            .as_deref()
            .unwrap()
            .starts_with("node (npm): apt-get"),
        "{setup:#?}"
    );
    assert_eq!(step(&setup, "node", "nvm").state, SetupState::Failed);
    // The rest still ran.
    assert_eq!(
        step(&setup, "git_aliases", "git-aliases").state,
        SetupState::Succeeded
    );
    // A container_updated says so too.
    let updated = ev
        .until(
            10,
            |e| matches!(&e.body, api::EventBody::ContainerUpdated(c) if c.db_id == made.db_id),
        )
        .await;
    match &updated.last().unwrap().body {
        api::EventBody::ContainerUpdated(c) => {
            assert_eq!(c.setup.as_ref().unwrap().state, SetupState::Failed)
        }
        _ => unreachable!(),
    }
    // Usable: exec, files, a terminal.
    let out = sh(&c, "node", "echo works; command -v node || echo no-node").await;
    assert_eq!(out.stdout, "works\nno-node\n");
    let mut t = Term::open(&c, "/ws/terminal/node", false).await;
    t.send("gs 2>&1 | head -1; echo END\r").await;
    t.expect("END").await;
    // The output is kept and served.
    let status = c.shell_status("node").await.unwrap();
    assert_eq!(status.setup.state, SetupState::Failed);
    let log = &status.log_tail;
    assert!(
        log.contains("==> node (npm) failed: apt-get install nodejs npm failed"),
        "{log}"
    );
    assert!(log.contains("==> [5/6] node: nvm"), "{log}");
    assert!(
        log.contains("rexec-error: apt-get install curl ca-certificates failed"),
        "{log}"
    );
    assert!(status.log_tail.len() <= 64 * 1024);

    // A re-run: 202 running, a second one meanwhile is 409, the outcome as an event.
    let raw = c
        .raw(Method::POST, "/api/containers/node/shell/setup", None, &[])
        .await
        .unwrap();
    assert_eq!(raw.status, 202);
    assert_eq!(raw.value()["state"], "running");
    match c.shell_setup("node").await {
        Err(ClientError::Api { status, body }) => {
            assert_eq!(status, 409);
            assert_eq!(body.error, "set-up is already running");
            assert_eq!(body.code, "setup_running");
        }
        other => panic!("expected 409, got {other:?}"),
    }
    // Stopping cancels the run; it ends failed, not stuck in running.
    c.stop("node").await.unwrap();
    let got = c.get_container("node").await.unwrap();
    let s = got.setup.unwrap();
    assert_eq!(s.state, SetupState::Failed, "{s:#?}");
    assert!(s.steps.iter().all(|st| st.state != SetupState::Running));
    // Not running: the documented 400.
    match c.shell_setup("node").await {
        Err(ClientError::Api { status, body }) => {
            assert_eq!(status, 400);
            assert_eq!(body.error, "container is not running");
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn busybox_ash_without_a_package_manager() {
    let b = common::with_box("").await;
    let c = &b.c;
    // No role and no options: probe and startup files only.
    let made = c
        .create_container(&common::create_req("alpine", Some("plain")))
        .await
        .unwrap();
    let s = wait_running(c, &made.db_id).await.setup.unwrap();
    assert_eq!(s.state, SetupState::Succeeded, "{s:#?}");
    assert_eq!(
        s.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
        ["probe", "shell"]
    );
    assert_eq!(s.family.as_deref(), Some("none"));
    assert_eq!(s.login_shell.as_deref(), Some("ash"));
    let mut req = common::create_req("alpine", Some("ash"));
    req.role = Some("go".into());
    req.shell = Some(api::ShellOptions {
        system_stats: Some(true),
        history_search: Some(true),
        git_aliases: Some(true),
        autosuggestions: Some(true),
        ..Default::default()
    });
    let made = c.create_container(&req).await.unwrap();
    let got = wait_running(c, &made.db_id).await;
    let s = got.setup.unwrap();
    assert_eq!(s.state, SetupState::Failed);
    let go = step(&s, "go", "go");
    assert!(
        go.error
            .as_deref()
            .unwrap()
            .contains("no supported package manager"),
        "{go:#?}"
    );
    let git = step(&s, "git_aliases", "git-aliases");
    assert_eq!(git.state, SetupState::Failed);
    assert_eq!(
        step(&s, "system_stats", "system-stats").state,
        SetupState::Succeeded
    );
    assert_eq!(
        step(&s, "history_search", "history-search").state,
        SetupState::Succeeded
    );
    let auto = step(&s, "autosuggestions", "zsh-autosuggestions");
    assert_eq!(auto.state, SetupState::Skipped);
    assert_eq!(auto.detail.as_deref(), Some("needs shell.enhanced (zsh)"));
    // The login summary under busybox ash.
    let out = sh(c, "ash", "ash -l -i -c true 2>&1 </dev/null").await;
    assert!(out.stdout.contains("rexec container ash"), "{out:?}");
    assert!(out.stdout.contains("Memory"), "{out:?}");
    let mut t = Term::open(c, "/ws/terminal/ash", false).await;
    t.expect("built-in shell (ash)").await;
    t.expect("rexec container ash").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn barebone_skips_set_up_and_bad_requests_are_refused() {
    let b = common::with_box("").await;
    let c = &b.c;
    let mut req = common::create_req("alpine", Some("bare"));
    req.role = Some("barebone".into());
    req.shell = Some(api::ShellOptions {
        use_tmux: Some(true),
        ..Default::default()
    });
    let made = c.create_container(&req).await.unwrap();
    let got = wait_running(c, &made.db_id).await;
    let s = got.setup.unwrap();
    assert_eq!(s.state, SetupState::Skipped);
    assert!(s.steps.is_empty());
    let status = c.shell_status("bare").await.unwrap();
    assert_eq!(status.setup.state, SetupState::Skipped);
    assert_eq!(status.log_tail, "");
    let no_home_files = sh(c, "bare", "ls -A /home/user").await;
    assert_eq!(no_home_files.stdout, "", "barebone writes nothing");
    let again = c.shell_setup("bare").await.unwrap();
    assert_eq!(again.state, SetupState::Skipped);

    // An unknown theme: 400 with the supported ones; nothing stored.
    let raw = c
        .raw(
            Method::POST,
            "/api/containers",
            Some(
                json!({"image":"alpine","name":"t","shell":{"shell.enhanced":true,"shell.theme":"solarized"}})
                    .to_string()
                    .into_bytes(),
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(raw.status, 400);
    assert_eq!(
        raw.value(),
        json!({"error":"unsupported theme","code":"unsupported_theme",
               "supported_themes":["rexec","minimal","powerlevel10k"]})
    );
    assert!(c.get_container("t").await.is_err());
    // Someone else's container: 404 on both endpoints.
    let (_, other) = b.d.user("eve", "pro").await;
    for r in [
        other.shell_status("box").await.map(|_| ()),
        other.shell_setup("box").await.map(|_| ()),
    ] {
        match r {
            Err(ClientError::Api { status, .. }) => assert_eq!(status, 404),
            other => panic!("expected 404, got {other:?}"),
        }
    }
    // GET /api/roles comes from the catalog.
    let roles = c.roles().await.unwrap();
    let node = roles.roles.iter().find(|r| r.name == "node").unwrap();
    assert_eq!(node.tools, ["npm", "yarn", "nvm"]);
}

/// A roles file with a step that hangs: the time budget, a replaced catalog, and what a
/// SIGKILL during set-up leaves.
const SLOW_ROLES: &str = r#"
[[roles]]
name = "slow"
description = "A step that never ends"
tools = ["hang", "quick"]

[shell]
base = "quick"
enhanced = "quick"
autosuggestions = "quick"
syntax_highlight = "quick"
history_search = "quick"
git_aliases = "quick"
system_stats = "quick"
use_tmux = "quick"
themes = [["plain", "quick"]]

[tools.hang]
check = "false"
install = "sleep 600"

[tools.quick]
check = "true"
configure = "echo quick-configured"
"#;

#[tokio::test(flavor = "multi_thread")]
async fn steps_have_a_time_budget_and_a_sigkill_leaves_set_up_failed_not_stuck() {
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.toml");
    std::fs::write(&roles, SLOW_ROLES).unwrap();
    let cfg = format!(
        "[setup]\nroles_file = \"{}\"\nstep_timeout_seconds = 4\n",
        roles.display()
    );
    let mut d = Daemon::start_with(&cfg);
    d.ready().await;
    let (_, c) = d.user("ann", "pro").await;
    let mut req = common::create_req("alpine", Some("slow"));
    req.role = Some("slow".into());
    let made = c.create_container(&req).await.unwrap();
    // Set-up is part of the creation: start, stop, settings and a re-run are 409 meanwhile,
    // exec already works.
    eventually(20, "configuring", || async {
        let got = c.get_container("slow").await.ok()?;
        (got.status == api::ContainerStatus::Configuring).then_some(())
    })
    .await;
    for r in [
        c.stop("slow").await.map(|_| ()),
        c.start("slow").await.map(|_| ()),
        c.shell_setup("slow").await.map(|_| ()),
    ] {
        match r {
            Err(ClientError::Api { status, body }) => {
                assert_eq!(
                    (status.as_u16(), body.code.as_str()),
                    (409, "container_creating")
                )
            }
            other => panic!("expected 409, got {other:?}"),
        }
    }
    assert_eq!(sh(&c, "slow", "echo hi").await.stdout, "hi\n");
    let got = wait_running(&c, &made.db_id).await;
    let s = got.setup.unwrap();
    let hang = step(&s, "slow", "hang");
    assert_eq!(hang.state, SetupState::Failed);
    assert_eq!(hang.error.as_deref(), Some("timed out after 4 s"));
    assert_eq!(step(&s, "slow", "quick").state, SetupState::Succeeded);
    // The hung process was killed, not left behind.
    let ps = sh(&c, "slow", "ps -o pid,args | grep '[s]leep 600'; true").await;
    assert_eq!(ps.stdout, "", "the hung step is gone: {ps:?}");
    // The built-in roles are gone with the replaced catalog.
    let roles = c.roles().await.unwrap();
    assert_eq!(
        roles
            .roles
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["slow"]
    );

    // SIGKILL while a step runs: after the restart the container is running and its set-up
    // says it was interrupted.
    c.shell_setup("slow").await.unwrap();
    eventually(20, "hang step running", || async {
        let s = c.get_container("slow").await.ok()?.setup?;
        (step(&s, "slow", "hang").state == SetupState::Running).then_some(())
    })
    .await;
    d.kill9();
    d.start_again();
    d.ready().await;
    let got = wait_running(&c, "slow").await;
    let s = got.setup.unwrap();
    assert_eq!(s.state, SetupState::Failed);
    assert!(
        s.error
            .as_deref()
            .unwrap()
            .contains("interrupted by a daemon restart"),
        "{s:#?}"
    );
    assert_eq!(step(&s, "slow", "hang").state, SetupState::Failed);
    assert_eq!(step(&s, "slow", "quick").state, SetupState::Skipped);
}

#[test]
fn a_bad_roles_file_stops_the_daemon_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let roles = dir.path().join("roles.toml");
    std::fs::write(
        &roles,
        SLOW_ROLES.replace("tools = [\"hang\", \"quick\"]", "tools = [\"nope\"]"),
    )
    .unwrap();
    let err = common::rexecd_refuses(&format!("[setup]\nroles_file = \"{}\"\n", roles.display()));
    assert!(
        err.contains("roles file") && err.contains("unknown tool \"nope\""),
        "{err}"
    );
}
