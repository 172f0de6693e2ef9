//! `rexecd`: parse flags, load the config, set up logging, run the daemon.

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use rexec::daemon::config::{Config, Overrides};
use rexec::daemon::listen::Inherited;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// The rexec daemon: disposable Linux development containers on the local Docker engine.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Config file (TOML). Default: /etc/rexec/rexecd.toml as root, else ~/.config/rexec/rexecd.toml.
    /// Give it several times to layer files: a later file's keys win.
    #[arg(long)]
    config: Vec<PathBuf>,
    /// Unix socket path.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Directory of the redb database.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Also listen on TCP (bearer tokens only), e.g. 127.0.0.1:8088.
    #[arg(long)]
    tcp: Option<SocketAddr>,
}

fn init_logging(level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd (journald's stream on stderr), log structured fields to the journal.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        .then(|| tracing_journald::layer().ok())
        .flatten();
    let registry = tracing_subscriber::registry().with(filter);
    match journald {
        Some(layer) => registry.with(layer).init(),
        None => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .init(),
    }
}

fn main() {
    if let Err(e) = start() {
        // One line with every cause, e.g. "tls: /etc/rexec/key.pem: no private key".
        eprintln!("rexecd: {e:#}");
        std::process::exit(1);
    }
}

fn start() -> anyhow::Result<()> {
    // Before any other thread exists: this unsets LISTEN_FDS and friends.
    // SAFETY: single-threaded here, nothing else reads or writes the environment.
    let inherited = unsafe { Inherited::take() }?;
    let args = Args::parse();
    let config = Config::load(&Overrides {
        config: args.config,
        socket: args.socket,
        data_dir: args.data_dir,
        tcp: args.tcp,
    })?;
    init_logging(&config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        let trigger = shutdown.clone();
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            trigger.cancel();
        });
        rexec::daemon::run(config, inherited, shutdown).await?;
        Ok(())
    })
}
