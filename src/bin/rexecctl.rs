//! `rexecctl`: parse flags, run the command, map errors to exit codes.

use clap::Parser;
use rexec::client::cli::{exit_code, run, Cli};

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rexecctl: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("rexecctl: {e}");
            exit_code(&e)
        }
    };
    std::process::exit(code);
}
