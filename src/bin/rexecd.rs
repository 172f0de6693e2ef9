//! `rexecd`: parse flags, load the config, set up logging, run the daemon.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use rexec::daemon::config::{Config, Overrides};
use rexec::daemon::listen::Inherited;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

fn init_logging(level: &str) {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Under systemd (journald's stream on stderr), log structured fields to the journal.
    let journald = std::env::var_os("JOURNAL_STREAM")
        .is_some()
        // Fields become REXEC_<NAME> journal fields (REXEC_CONTAINER_ID=...), clear of
        // journald's own.
        .then(|| {
            tracing_journald::layer()
                .ok()
                .map(|l| l.with_field_prefix(Some("REXEC".into())))
        })
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
    let config = Config::load(&Overrides::parse())?;
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
