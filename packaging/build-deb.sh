#!/usr/bin/env bash
# Builds the Debian package: target/debian/rexec_<version>-1_<arch>.deb
#
#   packaging/build-deb.sh [--bin-dir DIR] [--out DIR] [--revision N]
#
# --revision sets the Debian revision (default 1): the tests build -1 and -2 to try an upgrade.
# --bin-dir takes rexecd and rexecctl from DIR (tests pass the binaries cargo just built);
# without it, `cargo build --release --locked` builds them. Needs dpkg-deb, gzip and strip.
#
# The package holds: both binaries, the systemd units, sysusers and tmpfiles snippets, the
# commented /etc/rexec/rexecd.toml (a conffile), completions, man pages and the docs.
# Its maintainer scripts (packaging/debian/) create the groups and directories, keep the config
# and data on upgrade and remove, and delete them on purge.
set -euo pipefail
# The modes in the package must not depend on the caller's umask.
umask 022

ROOT=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)
BIN_DIR=
OUT_DIR=$ROOT/target/debian
REVISION=1
while [[ $# -gt 0 ]]; do
    case $1 in
    --bin-dir) BIN_DIR=$2; shift 2 ;;
    --out) OUT_DIR=$2; shift 2 ;;
    --revision) REVISION=$2; shift 2 ;;
    *) echo "build-deb.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

if [[ -z $BIN_DIR ]]; then
    (cd "$ROOT" && cargo build --release --locked --bin rexecd --bin rexecctl)
    BIN_DIR=$ROOT/target/release
fi
for b in rexecd rexecctl; do
    [[ -x $BIN_DIR/$b ]] || { echo "build-deb.sh: $BIN_DIR/$b missing" >&2; exit 1; }
done

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$ROOT/Cargo.toml" | head -n1)
ARCH=$(dpkg --print-architecture)
DEB_VERSION=$VERSION-$REVISION
STAGE=$(mktemp -d)
trap 'rm -rf -- "$STAGE"' EXIT
PKG=$STAGE/rexec

inst() { # inst MODE SRC DEST
    install -D -m "$1" "$2" "$PKG$3"
}

# Binaries, without their debug sections (symbols stay, for backtraces).
for b in rexecd rexecctl; do
    inst 0755 "$BIN_DIR/$b" "/usr/bin/$b"
    strip --strip-debug "$PKG/usr/bin/$b"
done

# systemd
inst 0644 "$ROOT/systemd/rexecd.service" /lib/systemd/system/rexecd.service
inst 0644 "$ROOT/systemd/rexecd.socket" /lib/systemd/system/rexecd.socket
inst 0644 "$ROOT/systemd/rexec.sysusers.conf" /usr/lib/sysusers.d/rexec.conf
inst 0644 "$ROOT/systemd/rexec.tmpfiles.conf" /usr/lib/tmpfiles.d/rexec.conf

# The config: every key, commented, at its default.
inst 0644 "$ROOT/packaging/rexecd.toml" /etc/rexec/rexecd.toml

# Completions and man pages, generated from the clap definitions.
"$BIN_DIR/rexecctl" completion bash >"$STAGE/rexecctl.bash"
"$BIN_DIR/rexecctl" completion zsh >"$STAGE/_rexecctl"
"$BIN_DIR/rexecctl" completion fish >"$STAGE/rexecctl.fish"
inst 0644 "$STAGE/rexecctl.bash" /usr/share/bash-completion/completions/rexecctl
inst 0644 "$STAGE/_rexecctl" /usr/share/zsh/vendor-completions/_rexecctl
inst 0644 "$STAGE/rexecctl.fish" /usr/share/fish/vendor_completions.d/rexecctl.fish
"$BIN_DIR/rexecctl" man "$STAGE/man"
for page in "$STAGE"/man/*; do
    section=${page##*.}
    gzip -9n <"$page" >"$STAGE/page.gz"
    inst 0644 "$STAGE/page.gz" "/usr/share/man/man$section/$(basename "$page").gz"
done

# Docs
DOC=/usr/share/doc/rexec
inst 0644 "$ROOT/README.md" "$DOC/README.md"
for f in "$ROOT"/docs/*.md; do inst 0644 "$f" "$DOC/$(basename "$f")"; done
inst 0644 "$ROOT/packaging/debian/copyright" "$DOC/copyright"

# Control files
mkdir -p "$PKG/DEBIAN"
for s in postinst prerm postrm; do
    install -m 0755 "$ROOT/packaging/debian/$s" "$PKG/DEBIAN/$s"
done
echo /etc/rexec/rexecd.toml >"$PKG/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    "$ROOT/packaging/debian/control" >"$PKG/DEBIAN/control"
(cd "$PKG" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    >"$PKG/DEBIAN/md5sums"

mkdir -p "$OUT_DIR"
DEB=$OUT_DIR/rexec_${DEB_VERSION}_$ARCH.deb
dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
echo "$DEB"
