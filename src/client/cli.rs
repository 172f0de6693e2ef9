//! `rexecctl`'s commands on top of [`Client`](super::Client). The binary parses flags and
//! maps errors to exit codes; everything else is here.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use super::{Client, ClientError, Endpoint};
use crate::api;

/// Exit codes, documented in `rexecctl --help`.
pub mod exit {
    pub const OK: i32 = 0;
    /// The daemon answered with an error (not found, limit reached, ...).
    pub const API: i32 = 1;
    /// Bad command line (clap's own code), or an unusable `--cacert` file.
    pub const USAGE: i32 = 2;
    /// The daemon could not be reached.
    pub const UNREACHABLE: i32 = 3;
    /// A creation the CLI followed ended in `error`.
    pub const FAILED: i32 = 4;
    /// `exec` killed the command at its timeout (otherwise `exec` exits with the command's code).
    pub const TIMED_OUT: i32 = 124;
}

#[derive(Parser)]
#[command(
    name = "rexecctl",
    version,
    about = "Control rexecd: disposable Linux development containers",
    after_help = "Examples:\n  rexecctl user create ann --tier free\n  rexecctl token create --user ann\n  rexecctl create --image ubuntu:24.04 --name dev --role node --shell enhanced,git_aliases,use_tmux\n  rexecctl setup dev --log\n  rexecctl ls\n  rexecctl stop dev && rexecctl start dev\n  rexecctl shell dev\n  rexecctl exec dev -- uname -a\n  rexecctl cp notes.txt dev:projects/\n  rexecctl cp dev:projects/notes.txt .\n  rexecctl rm dev\n  rexecctl status\n  rexecctl events --since 0\n  rexecctl --url https://rexec.example.com:8088 --cacert ca.pem --token $TOKEN ls\n  rexecctl completion bash > /etc/bash_completion.d/rexecctl\n\nExit codes: 0 ok, 1 the daemon refused (error printed; `status`: Docker unavailable), 2 usage (also `rm` of several without --force and no terminal to ask, and an unusable --cacert file), 3 daemon unreachable or permission denied on its socket, 4 creation or `setup --run` failed; exec passes the command's own code through (124: timed out)."
)]
pub struct Cli {
    /// rexecd's Unix socket (default: /run/rexec/rexecd.sock as root, else $XDG_RUNTIME_DIR/rexec/rexecd.sock).
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// A remote rexecd over TCP, e.g. https://rexec.example.com:8088 or http://127.0.0.1:8088
    /// (needs --token).
    #[arg(long, global = true, env = "REXEC_URL")]
    pub url: Option<String>,
    /// Trust only the CA certificates in this PEM file for an https:// --url (default: the
    /// system's roots).
    #[arg(long, global = true, env = "REXEC_CACERT")]
    pub cacert: Option<PathBuf>,
    /// API token for --url (or to act as another user over the socket).
    #[arg(long, global = true, env = "REXEC_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Output format of read commands.
    #[arg(long, short, global = true, value_enum, default_value_t = Output::Text)]
    pub output: Output,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create a container and follow its creation until it is ready.
    Create(CreateArgs),
    /// List your containers (`--all`: everyone's, admins only).
    Ls {
        #[arg(long)]
        all: bool,
    },
    /// Show one container (by name, db_id or Docker id).
    Get { id: String },
    /// Start a stopped container.
    Start { id: String },
    /// Stop a running container.
    Stop { id: String },
    /// Delete containers and their data volumes. Several at once need `--force` (or a yes at
    /// the prompt on a terminal).
    Rm {
        #[arg(required = true)]
        ids: Vec<String>,
        #[arg(long, short)]
        force: bool,
    },
    /// Run a command in a container; its output is printed and its exit code passed through.
    Exec {
        id: String,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
        /// Working directory (default /home/user).
        #[arg(long, short = 'w')]
        workdir: Option<String>,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// An interactive shell in a container; exits with the shell's code.
    Shell {
        id: String,
        /// Connection key: the same key re-attaches to the same shell within the grace period.
        #[arg(long, default_value = "rexecctl")]
        session: String,
    },
    /// Copy a file into or out of a container: `cp FILE NAME:PATH` or `cp NAME:PATH FILE`.
    /// A container PATH ending in `/` is a directory (the file keeps its name); relative
    /// paths start at /home/user.
    Cp { src: String, dst: String },
    /// Role and shell set-up: show what was set up (steps, errors), or run it again.
    Setup {
        id: String,
        /// Run set-up again and follow it; exits 4 if a step fails.
        #[arg(long)]
        run: bool,
        /// Print the last 64 KiB of set-up output too.
        #[arg(long)]
        log: bool,
    },
    /// Follow the events stream (container progress, updates, deletions) as JSON lines.
    Events {
        /// Replay from this sequence number first.
        #[arg(long)]
        since: Option<u64>,
    },
    /// The image catalog.
    Images,
    /// The development roles and their tools.
    Roles,
    /// The daemon's health, version and Docker's state.
    Status,
    /// Manage users (admin).
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print a shell completion script, e.g. `rexecctl completion bash >
    /// /etc/bash_completion.d/rexecctl` (the package installs them).
    Completion { shell: clap_complete::Shell },
    /// Write the man pages (rexecctl.1, rexecctl-COMMAND.1 and rexecd.8) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
}

#[derive(Args)]
pub struct CreateArgs {
    /// Catalog image (ubuntu:24.04, debian:bookworm, alpine:latest, archlinux:latest) or `custom`.
    #[arg(long, default_value = "ubuntu:24.04")]
    pub image: String,
    #[arg(long)]
    pub name: Option<String>,
    /// Docker reference for --image custom.
    #[arg(long)]
    pub custom_image: Option<String>,
    /// Development role: node, python, go, rust, devops, barebone (`rexecctl` lists them with
    /// `GET /api/roles`; see docs/roles.md).
    #[arg(long)]
    pub role: Option<String>,
    /// Shell options, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub shell: Vec<ShellOption>,
    /// Zsh prompt theme with `--shell enhanced`: rexec, minimal, powerlevel10k.
    #[arg(long)]
    pub theme: Option<String>,
    #[arg(long)]
    pub memory_mb: Option<u64>,
    /// Millicores (1000 = one CPU).
    #[arg(long)]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub disk_mb: Option<u64>,
    /// An environment variable for the container, KEY=VALUE (repeatable).
    #[arg(long = "env", short = 'e', value_name = "KEY=VALUE", value_parser = key_value)]
    pub environment: Vec<(String, String)>,
    /// A label on the container, KEY=VALUE (repeatable).
    #[arg(long = "label", short = 'l', value_name = "KEY=VALUE", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Return once the creation is accepted.
    #[arg(long)]
    pub detach: bool,
}

/// `KEY=VALUE`; the value may be empty and may hold `=`.
fn key_value(arg: &str) -> Result<(String, String), String> {
    match arg.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {arg:?}")),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "snake_case")]
pub enum ShellOption {
    Enhanced,
    Autosuggestions,
    SyntaxHighlight,
    HistorySearch,
    GitAliases,
    SystemStats,
    UseTmux,
}

fn shell_options(opts: &[ShellOption], theme: Option<String>) -> Option<api::ShellOptions> {
    if opts.is_empty() && theme.is_none() {
        return None;
    }
    let on = |o: ShellOption| opts.contains(&o).then_some(true);
    Some(api::ShellOptions {
        enhanced: on(ShellOption::Enhanced),
        theme,
        autosuggestions: on(ShellOption::Autosuggestions),
        syntax_highlight: on(ShellOption::SyntaxHighlight),
        history_search: on(ShellOption::HistorySearch),
        git_aliases: on(ShellOption::GitAliases),
        system_stats: on(ShellOption::SystemStats),
        use_tmux: on(ShellOption::UseTmux),
    })
}

#[derive(Subcommand)]
pub enum UserCommand {
    /// Create a user.
    Create {
        name: String,
        #[arg(long, default_value = "free")]
        tier: String,
    },
    /// List users.
    Ls,
    /// Change a user's tier.
    SetTier { user: String, tier: String },
    /// Remove a user (refused while they own containers).
    Rm { user: String },
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (it is shown only once).
    Create {
        /// For another user (admin); default: yourself.
        #[arg(long)]
        user: Option<String>,
        #[arg(long, default_value = "rexecctl")]
        name: String,
        /// Scopes: read, write, admin (default read,write).
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
        /// Days until it expires.
        #[arg(long)]
        expires_in: Option<u32>,
    },
    /// List your tokens.
    Ls,
    /// Revoke one of your tokens (by id).
    Revoke { id: String },
}

impl Cli {
    pub fn client(&self) -> Result<Client, ClientError> {
        let endpoint = match &self.url {
            Some(u) => Endpoint::Tcp(u.clone()),
            None => Endpoint::Unix(
                self.socket
                    .clone()
                    .unwrap_or_else(crate::daemon::config::default_socket_path),
            ),
        };
        match &self.cacert {
            Some(ca) => Client::with_ca_file(endpoint, self.token.clone(), ca),
            None => Ok(Client::new(endpoint, self.token.clone())),
        }
    }
}

/// Runs a command; the error is what to print.
pub async fn run(cli: Cli) -> Result<i32, ClientError> {
    let mut out = std::io::stdout();
    // The commands that need no daemon, nor a client (whose --cacert might be unusable).
    match &cli.command {
        Command::Completion { shell } => {
            // Into a buffer first: `generate` panics on a closed pipe (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut Cli::command(), "rexecctl", &mut script);
            let _ = out.write_all(&script);
            return Ok(exit::OK);
        }
        Command::Man { dir } => {
            write_man_pages(dir).map_err(|e| ClientError::Io(format!("{}: {e}", dir.display())))?;
            return Ok(exit::OK);
        }
        _ => {}
    }
    let client = cli.client()?;
    let json = cli.output == Output::Json;
    match cli.command {
        Command::Completion { .. } | Command::Man { .. } => {}
        Command::Create(args) => return create(&client, args, json).await,
        Command::Ls { all } => {
            let list = if all {
                client.list_all_containers().await?
            } else {
                client.list_containers().await?
            };
            if json {
                print_json(&list);
            } else {
                let _ = writeln!(
                    out,
                    "{:<24} {:<14} {:<12} {:<20} {:>6} {:>6}",
                    "NAME", "ID", "STATUS", "IMAGE", "MEM", "CPU"
                );
                for c in &list.containers {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<14} {:<12} {:<20} {:>6} {:>6}",
                        c.name,
                        short(&c.id),
                        c.status.as_str(),
                        c.image,
                        c.resources.memory_mb,
                        c.resources.cpu_shares
                    );
                }
            }
        }
        Command::Get { id } => {
            let c = client.get_container(&id).await?;
            if json {
                print_json(&c);
            } else {
                print_container(&c);
            }
        }
        Command::Start { id } => {
            let r = client.start(&id).await?;
            let _ = writeln!(out, "{}: {}", r.name, r.message);
        }
        Command::Stop { id } => {
            let r = client.stop(&id).await?;
            let _ = writeln!(out, "{}: {}", r.name, r.message);
        }
        Command::Rm { ids, force } => {
            if ids.len() > 1 && !force && !confirm(&format!("Delete {} containers?", ids.len())) {
                eprintln!(
                    "rexecctl: not deleting {} containers without --force",
                    ids.len()
                );
                return Ok(exit::USAGE);
            }
            for id in ids {
                let r = client.delete(&id).await?;
                let _ = writeln!(out, "{}: {}", r.name, r.message);
            }
        }
        Command::Exec {
            id,
            timeout,
            workdir,
            cmd,
        } => {
            let req = api::ExecRequest {
                cmd: Some(cmd),
                workdir,
                timeout_seconds: Some(timeout),
                ..Default::default()
            };
            let r = client.exec(&id, &req).await?;
            if json {
                print_json(&r);
                return Ok(exit::OK);
            }
            use std::io::Write as _;
            let _ = out.write_all(r.stdout.as_bytes());
            let _ = std::io::stderr().write_all(r.stderr.as_bytes());
            if r.stdout_truncated || r.stderr_truncated {
                eprintln!("rexecctl: output truncated at 1 MiB");
            }
            if r.timed_out {
                eprintln!("rexecctl: timed out after {timeout} s");
                return Ok(exit::TIMED_OUT);
            }
            // Exit codes outside 0-255 (a signal, -1) are reported as 255.
            return Ok(i32::try_from(r.exit_code)
                .ok()
                .filter(|c| (0..=255).contains(c))
                .unwrap_or(255));
        }
        Command::Cp { src, dst } => return cp(&client, &src, &dst).await,
        Command::Setup { id, run, log } => return setup(&client, &id, run, log, json).await,
        Command::Shell { id, session } => return super::shell::run(&client, &id, &session).await,
        Command::User(UserCommand::Create { name, tier }) => {
            let u = client.create_user(&name, &tier).await?;
            if json {
                print_json(&u);
            } else {
                let _ = writeln!(out, "created user {} ({}, tier {})", u.name, u.id, u.tier);
            }
        }
        Command::Events { since } => return events(&client, since).await,
        Command::Images => {
            let list = client.images().await?;
            if json {
                print_json(&list);
            } else {
                for i in list.images {
                    let gate = i
                        .min_tier
                        .map(|t| format!(" ({t} and up)"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "{:<24} {}{gate}", i.name, i.description);
                }
            }
        }
        Command::Roles => {
            let list = client.roles().await?;
            if json {
                print_json(&list);
            } else {
                for r in list.roles {
                    let _ = writeln!(
                        out,
                        "{:<10} {:<56} {}",
                        r.name,
                        r.description,
                        r.tools.join(", ")
                    );
                }
            }
        }
        Command::Status => {
            let health = client.health().await?;
            let version = client.version().await?;
            let docker_ok = health.docker == api::DockerStatus::Ok;
            if json {
                print_json(&serde_json::json!({"health": health, "version": version}));
            } else {
                let _ = writeln!(
                    out,
                    "rexecd {} (API {})",
                    version.version, version.api_version
                );
                let status = match health.status {
                    api::HealthStatus::Ok => "ok",
                    api::HealthStatus::Degraded => "degraded",
                };
                let _ = writeln!(out, "status: {status}");
                let docker = match (docker_ok, &version.docker_api_version) {
                    (true, Some(v)) => format!("ok (API {v})"),
                    (true, None) => "ok".to_string(),
                    (false, _) => "unavailable".to_string(),
                };
                let _ = writeln!(out, "docker: {docker}");
                let quota = match (version.disk_quota, &version.docker_api_version) {
                    (true, _) => "enforced",
                    (false, Some(_)) => "not enforced on this host (needs overlay2 on xfs with pquota, btrfs or zfs; disk_mb is recorded only)",
                    (false, None) => "unknown until Docker is reached",
                };
                let _ = writeln!(out, "disk quotas: {quota}");
            }
            if !docker_ok {
                return Ok(exit::API);
            }
        }
        Command::User(UserCommand::SetTier { user, tier }) => {
            let u = client.set_user_tier(&user, &tier).await?;
            if json {
                print_json(&u);
            } else {
                let _ = writeln!(out, "{} is now on the {} tier", u.name, u.tier);
            }
        }
        Command::User(UserCommand::Rm { user }) => {
            let r = client.delete_user(&user).await?;
            let _ = writeln!(out, "{user}: {}", r.message);
        }
        Command::Token(TokenCommand::Revoke { id }) => {
            let r = client.revoke_token(&id).await?;
            let _ = writeln!(out, "{id}: {}", r.message);
        }
        Command::User(UserCommand::Ls) => {
            let users = client.users().await?;
            if json {
                print_json(&users);
            } else {
                for u in users.users {
                    let _ = writeln!(
                        out,
                        "{:<24} {:<22} {:<10}{}",
                        u.name,
                        u.id,
                        u.tier,
                        if u.admin { " admin" } else { "" }
                    );
                }
            }
        }
        Command::Token(TokenCommand::Create {
            user,
            name,
            scopes,
            expires_in,
        }) => {
            let req = api::CreateTokenRequest {
                name,
                scopes,
                expires_in,
            };
            let t = match user {
                Some(u) => client.create_user_token(&u, &req).await?,
                None => client.create_token(&req).await?,
            };
            if json {
                print_json(&t);
            } else {
                let _ = writeln!(out, "{}", t.token);
            }
        }
        Command::Token(TokenCommand::Ls) => {
            let tokens = client.tokens().await?;
            if json {
                print_json(&tokens);
            } else {
                for t in tokens.tokens {
                    let state = if t.revoked_at.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    let _ = writeln!(
                        out,
                        "{:<20} {:<20} {:<16} {:<8} {}",
                        t.id,
                        t.name,
                        t.token_prefix,
                        state,
                        t.scopes.join(",")
                    );
                }
            }
        }
    }
    Ok(exit::OK)
}

/// `NAME:PATH` names a container path; anything else (including `./a:b`) is local.
fn remote(arg: &str) -> Option<(&str, &str)> {
    let (name, path) = arg.split_once(':')?;
    (!name.is_empty() && !name.contains('/')).then_some((name, path))
}

async fn cp(client: &Client, src: &str, dst: &str) -> Result<i32, ClientError> {
    let usage = || ClientError::Protocol("cp needs exactly one side as NAME:PATH".into());
    match (remote(src), remote(dst)) {
        (None, Some((name, path))) => {
            let local = std::path::Path::new(src);
            let base = local
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .ok_or_else(|| ClientError::Protocol(format!("{src}: not a file")))?;
            let (dir, file) = match path.rsplit_once('/') {
                _ if path.is_empty() || path.ends_with('/') => (path.to_string(), base),
                Some((d, f)) => (
                    if d.is_empty() {
                        "/".to_string()
                    } else {
                        d.to_string()
                    },
                    f.to_string(),
                ),
                None => (String::new(), path.to_string()),
            };
            let dir = if dir.is_empty() {
                "/home/user".to_string()
            } else {
                dir
            };
            let r = client.upload(name, local, &dir, &file).await?;
            println!("{} -> {name}:{} ({} bytes)", src, r.path, r.size);
        }
        (Some((name, path)), None) => {
            let target = std::path::Path::new(dst);
            let target = if target.is_dir() {
                target.join(path.rsplit('/').next().unwrap_or("download"))
            } else {
                target.to_path_buf()
            };
            let mut file = tokio::fs::File::create(&target)
                .await
                .map_err(|e| ClientError::Io(format!("{}: {e}", target.display())))?;
            let n = client.download(name, path, &mut file).await;
            if n.is_err() {
                let _ = tokio::fs::remove_file(&target).await;
            }
            println!("{name}:{path} -> {} ({} bytes)", target.display(), n?);
        }
        _ => return Err(usage()),
    }
    Ok(exit::OK)
}

fn short(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

/// Asks on the terminal; `false` without one.
fn confirm(question: &str) -> bool {
    use std::io::IsTerminal;
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    matches!(answer.trim(), "y" | "Y" | "yes")
}

/// `rexecctl events`: each event as one JSON line, until the stream ends.
async fn events(client: &Client, since: Option<u64>) -> Result<i32, ClientError> {
    let mut ws = client.events(since).await?;
    let mut out = std::io::stdout();
    while let Some(msg) = ws.next().await {
        let text = match msg {
            Ok(Message::Text(text)) => text,
            Ok(Message::Close(_)) | Err(_) => break,
            _ => continue,
        };
        if writeln!(out, "{text}").and_then(|_| out.flush()).is_err() {
            break; // stdout closed (a pipe to head)
        }
    }
    Ok(exit::OK)
}

/// `rexecctl setup`: the status, or a re-run followed through the events socket.
async fn setup(
    client: &Client,
    id: &str,
    run: bool,
    log: bool,
    json: bool,
) -> Result<i32, ClientError> {
    // The status is read once: after the run when following one.
    let (setup, status) = if run {
        let setup = follow_setup(client, id, json).await?;
        let status = match log {
            true => Some(client.shell_status(id).await?),
            false => None,
        };
        (setup, status)
    } else {
        let status = client.shell_status(id).await?;
        (status.setup.clone(), log.then_some(status))
    };
    if json {
        match status {
            Some(s) => print_json(&s),
            None => print_json(&setup),
        }
    } else {
        print_setup(&setup);
        if let Some(s) = status {
            println!("--- set-up output (last 64 KiB) ---");
            print!("{}", s.log_tail);
        }
    }
    Ok(if run && setup.state == api::SetupState::Failed {
        exit::FAILED
    } else {
        exit::OK
    })
}

/// Starts a set-up run and follows its `container_updated` events until it ends.
async fn follow_setup(client: &Client, id: &str, json: bool) -> Result<api::Setup, ClientError> {
    let c = client.get_container(id).await?;
    let mut events = client.events(None).await?;
    let mut last = client.shell_setup(id).await?;
    if !json && last.state == api::SetupState::Running {
        println!("set-up of {} started", c.name);
    }
    while last.state == api::SetupState::Running {
        let Some(msg) = events.next().await else {
            return Err(ClientError::Protocol("the events stream ended".into()));
        };
        let Ok(Message::Text(text)) = msg else {
            continue;
        };
        if let Ok(api::Event {
            body: api::EventBody::ContainerUpdated(u),
            ..
        }) = serde_json::from_str::<api::Event>(&text)
        {
            if let Some(s) = u.setup.filter(|_| u.db_id == c.db_id) {
                last = s;
            }
        }
    }
    Ok(last)
}

fn print_setup(s: &api::Setup) {
    let mut head = format!("set-up: {}", s.state.as_str());
    if let Some(f) = &s.family {
        head.push_str(&format!(", package manager {f}"));
    }
    if let Some(sh) = &s.login_shell {
        head.push_str(&format!(", login shell {sh}"));
    }
    println!("{head}");
    for st in &s.steps {
        let note = st
            .error
            .as_deref()
            .or(st.detail.as_deref())
            .unwrap_or_default();
        println!(
            "  {:<10} {:<18} {:<24} {note}",
            st.state.as_str(),
            st.name,
            st.tool
        );
    }
    if let Some(e) = &s.error {
        println!("error: {e}");
    }
}

fn print_container(c: &api::Container) {
    println!("name:        {}", c.name);
    println!("id:          {}", c.id);
    println!("db_id:       {}", c.db_id);
    println!("status:      {}", c.status.as_str());
    println!("image:       {}", c.image);
    if let Some(r) = &c.role {
        println!("role:        {r}");
    }
    println!(
        "resources:   {} MB memory, {} millicores, {} MB disk{}",
        c.resources.memory_mb,
        c.resources.cpu_shares,
        c.resources.disk_mb,
        if c.disk_enforced {
            ""
        } else {
            " (disk not enforced on this host)"
        }
    );
    println!("created_at:  {}", c.created_at);
    if let Some(e) = &c.expires_at {
        println!("expires_at:  {e}");
    }
    if let Some(s) = &c.setup {
        let mut line = s.state.as_str().to_string();
        if let Some(e) = &s.error {
            line.push_str(&format!(" ({e})"));
        }
        println!("setup:       {line}");
    }
    if let Some(e) = &c.error {
        println!("error:       {e}");
    }
}

async fn create(client: &Client, args: CreateArgs, json: bool) -> Result<i32, ClientError> {
    let req = api::CreateContainerRequest {
        image: args.image,
        name: args.name,
        custom_image: args.custom_image,
        role: args.role,
        shell: shell_options(&args.shell, args.theme),
        memory_mb: args.memory_mb,
        cpu_shares: args.cpu_shares,
        disk_mb: args.disk_mb,
        environment: args.environment.into_iter().collect(),
        labels: args.labels.into_iter().collect(),
    };
    // Subscribe first so that no progress event is missed.
    let mut events = if args.detach {
        None
    } else {
        Some(client.events(None).await?)
    };
    let created = client.create_container(&req).await?;
    if json && args.detach {
        print_json(&created);
        return Ok(exit::OK);
    }
    if !json {
        println!("creating {} ({})", created.name, created.db_id);
    }
    let Some(ws) = events.as_mut() else {
        return Ok(exit::OK);
    };
    let mut view = ProgressView::new(!json);
    while let Some(msg) = ws.next().await {
        let Ok(Message::Text(text)) = msg else {
            continue;
        };
        let Ok(event) = serde_json::from_str::<api::Event>(&text) else {
            continue;
        };
        let api::EventBody::ContainerProgress(p) = event.body else {
            continue;
        };
        if p.id != created.db_id {
            continue;
        }
        view.update(&p);
        if p.complete {
            view.finish();
            if json {
                if let Some(c) = &p.container {
                    print_json(c);
                }
            }
            return Ok(match p.stage {
                api::Stage::Ready => {
                    if !json {
                        println!("{} is ready: rexecctl shell {}", created.name, created.name);
                    }
                    exit::OK
                }
                _ => {
                    eprintln!("rexecctl: creation failed: {}", p.error.unwrap_or_default());
                    exit::FAILED
                }
            });
        }
    }
    Err(ClientError::Protocol(
        "the events stream ended before the creation finished".into(),
    ))
}

/// rexecctl's page, one per subcommand (`rexecctl-user-create.1`, ...), and rexecd's (section 8).
fn write_man_pages(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    fn render(cmd: clap::Command, section: &str, path: PathBuf) -> std::io::Result<()> {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd)
            .section(section)
            .render(&mut page)?;
        std::fs::write(path, page)
    }
    fn walk(cmd: &clap::Command, name: &str, dir: &std::path::Path) -> std::io::Result<()> {
        let documented = |c: &&clap::Command| !c.is_hide_set() && c.get_name() != "help";
        for sub in cmd.get_subcommands().filter(documented) {
            let sub_name = format!("{name}-{}", sub.get_name());
            let page = sub.clone().name(sub_name.clone());
            render(page, "1", dir.join(format!("{sub_name}.1")))?;
            walk(sub, &sub_name, dir)?;
        }
        Ok(())
    }
    let mut cmd = Cli::command();
    cmd.build();
    render(cmd.clone(), "1", dir.join("rexecctl.1"))?;
    walk(&cmd, "rexecctl", dir)?;
    render(
        crate::daemon::config::Overrides::command(),
        "8",
        dir.join("rexecd.8"),
    )
}

/// A creation's progress as a person sees it: on a terminal, a bar for the current stage
/// (the pull's bytes in its message) above one line per finished stage; otherwise, one line
/// per update, for logs and scripts.
struct ProgressView {
    show: bool,
    bar: Option<indicatif::ProgressBar>,
    stage: Option<(api::Stage, String, std::time::Instant)>,
    started: std::time::Instant,
}

impl ProgressView {
    fn new(show: bool) -> Self {
        use std::io::IsTerminal;
        let bar = (show && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(100);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner:.green} {prefix:<11.bold} [{bar:30.cyan/blue}] {pos:>3}%  {wide_msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            bar
        });
        Self {
            show,
            bar,
            stage: None,
            started: std::time::Instant::now(),
        }
    }

    fn update(&mut self, p: &api::Progress) {
        let Some(bar) = self.bar.clone() else {
            if self.show {
                println!(
                    "[{:>3}%] {:<12} {}",
                    p.progress,
                    p.stage.as_str(),
                    p.message
                );
            }
            return;
        };
        if self.stage.as_ref().map(|s| s.0) != Some(p.stage) {
            // The stage an error ends did not finish: it gets the ✗.
            self.end_stage(p.stage == api::Stage::Error);
            self.stage = Some((p.stage, String::new(), std::time::Instant::now()));
            bar.set_prefix(p.stage.as_str());
        }
        if let Some(stage) = &mut self.stage {
            stage.1.clone_from(&p.message);
        }
        bar.set_position(p.progress.into());
        bar.set_message(p.message.clone());
    }

    /// Prints the finished stage's line above the bar: `✓ pulling     Image pulled (1.2 s)`;
    /// the last one (ready or error) gives the whole creation's time.
    fn end_stage(&mut self, failed: bool) {
        let Some((stage, message, started)) = self.stage.take() else {
            return;
        };
        let Some(bar) = &self.bar else {
            return;
        };
        let secs = |t: std::time::Instant| t.elapsed().as_secs_f64();
        let (mark, time) = match stage {
            api::Stage::Ready => ("✓", format!("{:.1} s in all", secs(self.started))),
            api::Stage::Error => ("✗", format!("{:.1} s in all", secs(self.started))),
            _ if failed => ("✗", format!("{:.1} s", secs(started))),
            _ => ("✓", format!("{:.1} s", secs(started))),
        };
        bar.println(format!("{mark} {:<11} {message} ({time})", stage.as_str()));
    }

    fn finish(&mut self) {
        self.end_stage(false);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The stream can end (or the command fail) before the creation does: the bar is still
/// cleared, and the last stage is marked unfinished.
impl Drop for ProgressView {
    fn drop(&mut self) {
        self.end_stage(true);
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The exit code for an error.
pub fn exit_code(e: &ClientError) -> i32 {
    match e {
        ClientError::Api { .. } => exit::API,
        ClientError::Connect { .. } => exit::UNREACHABLE,
        ClientError::Protocol(_) => exit::API,
        ClientError::Tls(_) => exit::USAGE,
        ClientError::Io(_) => exit::API,
    }
}
