#!/usr/bin/env bash
# Runs rexecd on this machine, in the foreground, as root with the default paths
# (/run/rexec/rexecd.sock, /var/lib/rexec, /etc/rexec/rexecd.toml if present).
# Sets up a Docker engine first if none answers. Extra arguments go to rexecd,
# e.g. `sudo scripts/run.sh --tcp 127.0.0.1:8088`.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
[[ $(id -u) -eq 0 ]] || { echo "run.sh: run as root (rexecd drives the Docker engine)" >&2; exit 1; }
scripts/test-env.sh --engine-only
CARGO_ENV="${HOME:-/root}/.cargo/env"
# shellcheck source=/dev/null
if [[ -f $CARGO_ENV ]]; then . "$CARGO_ENV"; fi
cargo build --release --locked --bin rexecd --bin rexecctl
echo "[run] rexecd starting; in another shell: target/release/rexecctl --help" >&2
exec target/release/rexecd "$@"
