#!/usr/bin/env bash
# Prepare this machine for rexec's integration tests. Idempotent: safe to run
# any number of times, on a fresh Debian 12 machine or on one already set up.
#
#   - installs docker.io, docker-registry, busybox-static, tmux, ca-certificates, curl,
#     debootstrap, shellcheck, openssl, man-db (the packaging test checks the man pages),
#     systemd (systemd-socket-activate, systemd-analyze), binutils (strip, for the .deb)
#   - starts a Docker engine (dockerd --bridge=none --iptables=false) unless one answers
#   - builds the test image rexec-test/busybox:latest from Debian's busybox-static
#   - builds rexec-test/debian:bookworm with debootstrap (bash, tmux, zsh, git, python, poetry)
#   - starts a local registry (no auth) on 127.0.0.1:5000 unless one answers
#   - pushes the test image there as 127.0.0.1:5000/rexec/busybox:latest
#
# Daemons it starts keep running after it exits. Their pids are written to
# /run/rexec-test/{dockerd,registry}.pid only when this script starts them, so a
# caller (.ci/run) can tell what it started and stop exactly that.
#
# Must run as root.
set -euo pipefail

STATE_DIR=${REXEC_TEST_STATE_DIR:-/run/rexec-test} # .ci/run reads the pid files here
DOCKERD_PID_FILE=$STATE_DIR/dockerd.pid
DOCKERD_LOG=/var/log/rexec-dockerd.log
REGISTRY_PID_FILE=$STATE_DIR/registry.pid
REGISTRY_LOG=/var/log/rexec-registry.log
REGISTRY_CONF_DIR=/etc/rexec-test
REGISTRY_CONF=$REGISTRY_CONF_DIR/registry.yml
REGISTRY_ROOT=/var/lib/rexec-test-registry
REGISTRY_ADDR=127.0.0.1:5000
REGISTRY_URL=http://$REGISTRY_ADDR
TEST_IMAGE=rexec-test/busybox:latest
REGISTRY_IMAGE=$REGISTRY_ADDR/rexec/busybox:latest
PACKAGES=(docker.io docker-registry busybox-static tmux ca-certificates curl debootstrap shellcheck openssl man-db systemd binutils)
# `--engine-only`: just a running Docker engine (scripts/run.sh uses it).
ENGINE_ONLY=0
if [[ ${1:-} == --engine-only ]]; then
    ENGINE_ONLY=1
    PACKAGES=(docker.io ca-certificates curl)
fi
WAIT_SECS=60

log() { printf '[test-env] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[[ $(id -u) -eq 0 ]] || die "must run as root"

mkdir -p "$STATE_DIR"
# Serialise concurrent runs. fd 9 is closed for every daemon we start (9>&-),
# otherwise they would hold the lock forever.
exec 9>"$STATE_DIR/lock"
flock -w 600 9 || die "timed out waiting for $STATE_DIR/lock"

TMP_DIRS=()
POLICY_RC_D_OURS=0
cleanup() {
    local d
    for d in "${TMP_DIRS[@]}"; do rm -rf -- "$d"; done
    if [[ $POLICY_RC_D_OURS -eq 1 ]]; then rm -f /usr/sbin/policy-rc.d; fi
}
trap cleanup EXIT

pid_alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }
# pid_is PID NAME: PID is alive and its command name starts with NAME
pid_is() { pid_alive "$1" && [[ $(cat "/proc/$1/comm" 2>/dev/null) == "$2"* ]]; }
read_pid() { if [[ -r $1 ]]; then tr -dc '0-9' <"$1"; fi; }

# ---------------------------------------------------------------- packages --
pkg_installed() {
    [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true) == "install ok installed" ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
    pkg_installed "$p" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Without systemd, package postinst scripts would start Debian's own
    # dockerd (with bridge + iptables) and docker-registry (with htpasswd auth)
    # through /etc/init.d. We start our own, so forbid that during install.
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        POLICY_RC_D_OURS=1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}"
    if [[ $POLICY_RC_D_OURS -eq 1 ]]; then
        rm -f /usr/sbin/policy-rc.d
        POLICY_RC_D_OURS=0
    fi
else
    log "packages already installed: ${PACKAGES[*]}"
fi

INIT_COMM=$(ps -p 1 -o comm= 2>/dev/null | tr -d ' ' || true)
SYSTEMD_INIT=0
if [[ $INIT_COMM == systemd ]] || [[ -d /run/systemd/system ]]; then SYSTEMD_INIT=1; fi

# ----------------------------------------------------------- docker engine --
# `docker info` answers? If the CLI is newer than the engine and does not
# negotiate ("client version X is too new"), pin the API version and retry.
docker_answers() {
    local err ver
    if err=$(docker info --format '{{.ServerVersion}}' 2>&1 >/dev/null); then
        return 0
    fi
    if [[ $err == *"is too new"* && -z ${DOCKER_API_VERSION:-} ]]; then
        ver=$(sed -n 's/.*Maximum supported API version is \([0-9.]*\).*/\1/p' <<<"$err" | head -n1)
        export DOCKER_API_VERSION=${ver:-1.41}
        log "docker CLI too new for the engine; using DOCKER_API_VERSION=$DOCKER_API_VERSION"
        docker info >/dev/null 2>&1 && return 0
    fi
    return 1
}

wait_for_docker() { # $1 = pid to watch (may be empty)
    local i
    for ((i = 0; i < WAIT_SECS * 4; i++)); do
        docker_answers && return 0
        if [[ -n ${1:-} ]] && ! pid_alive "$1"; then
            log "dockerd (pid $1) exited; last lines of $DOCKERD_LOG:"
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            return 1
        fi
        sleep 0.25
    done
    return 1
}

if docker_answers; then
    log "docker engine already answering; reusing it"
else
    our_pid=$(read_pid "$DOCKERD_PID_FILE")
    sys_pid=$(read_pid /var/run/docker.pid)
    if pid_is "$our_pid" dockerd || pid_is "$sys_pid" dockerd; then
        # A dockerd is running (probably still starting): wait for it rather
        # than start a second one, which would fail on /var/run/docker.pid.
        running=$our_pid
        pid_is "$running" dockerd || running=$sys_pid
        log "a dockerd (pid $running) is running but not answering yet; waiting up to ${WAIT_SECS}s"
        wait_for_docker "$running" || die "dockerd pid $running does not answer; see $DOCKERD_LOG"
    else
        rm -f "$DOCKERD_PID_FILE"
        log "starting dockerd --bridge=none --iptables=false (log $DOCKERD_LOG)"
        # setsid: own session, so it survives the caller's terminal/process group.
        setsid dockerd --bridge=none --iptables=false \
            </dev/null >>"$DOCKERD_LOG" 2>&1 9>&- &
        dockerd_pid=$!
        echo "$dockerd_pid" >"$DOCKERD_PID_FILE"
        if ! wait_for_docker "$dockerd_pid"; then
            tail -n 30 "$DOCKERD_LOG" >&2 || true
            die "docker engine did not answer within ${WAIT_SECS}s"
        fi
        log "dockerd up (pid $dockerd_pid)"
    fi
fi
docker version >/dev/null || die "'docker version' fails"
if [[ $ENGINE_ONLY -eq 1 ]]; then
    log "docker engine ready"
    exit 0
fi

# -------------------------------------------------------------- test image --
# Put busybox (from Debian's busybox-static) in $1/bin/busybox.
fetch_busybox() {
    local root=$1 dl
    dl=$(mktemp -d)
    TMP_DIRS+=("$dl")
    if ! (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root busybox-static >/dev/null 2>&1); then
        log "apt-get download failed; running apt-get update and retrying"
        apt-get update -q >/dev/null 2>&1 || true
        (cd "$dl" && apt-get download -q -o APT::Sandbox::User=root busybox-static >/dev/null 2>&1) || true
    fi
    local deb
    deb=$(find "$dl" -maxdepth 1 -name 'busybox-static_*.deb' | head -n1)
    if [[ -n $deb ]]; then
        mkdir -p "$dl/x"
        dpkg -x "$deb" "$dl/x"
        install -m 0755 "$dl/x/bin/busybox" "$root/bin/busybox"
    elif [[ -x /bin/busybox ]] && pkg_installed busybox-static; then
        log "using the installed busybox-static binary instead"
        install -m 0755 /bin/busybox "$root/bin/busybox"
    else
        die "cannot get busybox-static"
    fi
}

build_image() {
    local root a dir
    root=$(mktemp -d)
    TMP_DIRS+=("$root")
    chmod 0755 "$root"
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,root,home,tmp,var/tmp,dev,proc,sys}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 0700 "$root/root"
    fetch_busybox "$root"
    # Every applet in /bin, and also at its usual path (/sbin, /usr/bin, ...),
    # so both /bin/sleep and /usr/bin/env style paths work.
    while read -r a; do
        [[ -n $a && $a != busybox ]] || continue
        [[ -e $root/bin/$a ]] || ln -s busybox "$root/bin/$a"
    done < <("$root/bin/busybox" --list)
    while read -r a; do
        [[ -n $a ]] || continue
        dir=${a%/*}
        [[ $dir == "$a" || $dir == bin ]] && continue
        mkdir -p "$root/$dir"
        [[ -e $root/$a ]] || ln -s /bin/busybox "$root/$a"
    done < <("$root/bin/busybox" --list-full)
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    : >"$root/etc/hosts"
    : >"$root/etc/resolv.conf"
    echo rexec-test >"$root/etc/hostname"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -c . |
        docker import \
            --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["/bin/sh"]' \
            - "$TEST_IMAGE" >/dev/null
}

verify_image() {
    local out
    out=$(docker run --rm --network none "$TEST_IMAGE" sh -c '
        for c in sleep sh cat stty id hostname env tail head; do
            command -v "$c" >/dev/null || { echo "missing $c"; exit 1; }
        done
        trap "echo trapped" USR1
        sleep 0
        [ "$(id -u)" = 0 ] || exit 1
        hostname >/dev/null || exit 1
        echo ok | cat' 2>&1) || { log "image check failed: $out"; return 1; }
    [[ $out == ok ]] || { log "image check output: $out"; return 1; }
}

if docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
    log "image $TEST_IMAGE already present"
    if ! verify_image; then
        log "existing $TEST_IMAGE is broken; rebuilding"
        docker rmi -f "$TEST_IMAGE" >/dev/null
        build_image
        verify_image || die "rebuilt $TEST_IMAGE does not work"
    fi
else
    log "building $TEST_IMAGE from busybox-static"
    build_image
    verify_image || die "built $TEST_IMAGE does not work"
fi
log "image $TEST_IMAGE works (sh -c 'echo ok')"

# ------------------------------------------------------- realistic image --
# A Debian rootfs (debootstrap, from Debian's package mirror) with bash, tmux and the tools
# the role tests expect to find already installed (python with pip and poetry, zsh and its
# plugins, git). Nothing else: tools that need downloads must fail cleanly in tests.
# DEBIAN_VERSION changes whenever the package list does, so an old image is rebuilt.
DEBIAN_IMAGE=rexec-test/debian:bookworm
DEBIAN_VERSION=2
# python3-cffi-backend: debootstrap does not resolve the virtual package python3-cryptography
# depends on.
DEBIAN_INCLUDE=tmux,procps,zsh,zsh-autosuggestions,zsh-syntax-highlighting,git,python3,python3-pip,python3-venv,python3-poetry,python3-cffi-backend
debian_version() { docker image inspect -f '{{ index .Config.Labels "rexec.test.version" }}' "$DEBIAN_IMAGE" 2>/dev/null || true; }
if [[ $(debian_version) == "$DEBIAN_VERSION" ]]; then
    log "image $DEBIAN_IMAGE (version $DEBIAN_VERSION) already present"
else
    log "building $DEBIAN_IMAGE with debootstrap (about 60 s)"
    rootfs=$(mktemp -d)
    TMP_DIRS+=("$rootfs")
    debootstrap --variant=minbase --include="$DEBIAN_INCLUDE" bookworm "$rootfs" http://deb.debian.org/debian >/var/log/rexec-debootstrap.log 2>&1 ||
        { tail -n 20 /var/log/rexec-debootstrap.log >&2; die "debootstrap failed"; }
    broken=$(chroot "$rootfs" dpkg --audit 2>&1 || true)
    [[ -z $broken ]] || die "debootstrap left packages unconfigured: $broken"
    tar -C "$rootfs" -c . | docker import \
        --change 'LABEL rexec.test.image=debian' --change "LABEL rexec.test.version=$DEBIAN_VERSION" \
        - "$DEBIAN_IMAGE" >/dev/null
    rm -rf "$rootfs"
fi
out=$(docker run --rm --network none "$DEBIAN_IMAGE" sh -c 'for c in bash tmux zsh git python3 poetry; do command -v $c >/dev/null || exit 1; done; python3 -m pip --version >/dev/null && echo ok' 2>&1 || true)
[[ $out == ok ]] || die "$DEBIAN_IMAGE lacks one of bash, tmux, zsh, git, python3, pip, poetry: $out"
log "image $DEBIAN_IMAGE works (bash, tmux, zsh, git, python3, pip, poetry)"

# ---------------------------------------------------------------- registry --
registry_status() { # HTTP status of /v2/, 000 if nothing answers
    curl -s -o /dev/null -m 3 -w '%{http_code}' "$REGISTRY_URL/v2/" 2>/dev/null || true
}

wait_for_registry() { # $1 = pid to watch
    local i
    for ((i = 0; i < WAIT_SECS * 4; i++)); do
        [[ $(registry_status) == 200 ]] && return 0
        if ! pid_alive "$1"; then
            log "docker-registry (pid $1) exited; last lines of $REGISTRY_LOG:"
            tail -n 30 "$REGISTRY_LOG" >&2 || true
            return 1
        fi
        sleep 0.25
    done
    return 1
}

mkdir -p "$REGISTRY_CONF_DIR" "$REGISTRY_ROOT"
conf=$(cat <<EOF
# rexec test registry: no auth, loopback only. Written by scripts/test-env.sh.
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $REGISTRY_ROOT
  delete:
    enabled: true
http:
  addr: $REGISTRY_ADDR
EOF
)
if [[ ! -f $REGISTRY_CONF ]] || [[ $(cat "$REGISTRY_CONF") != "$conf" ]]; then
    printf '%s\n' "$conf" >"$REGISTRY_CONF"
fi

status=$(registry_status)
if [[ $status == 200 ]]; then
    log "registry already answering on $REGISTRY_URL/v2/; reusing it"
else
    if [[ $status != 000 ]]; then
        # Something answers but not as an open registry: most likely Debian's
        # own docker-registry service with its htpasswd config. Only under
        # systemd can that service be running; we never rely on it.
        if [[ $SYSTEMD_INIT -eq 1 ]] && systemctl is-active --quiet docker-registry 2>/dev/null; then
            log "stopping Debian's docker-registry.service (it requires auth); using our own"
            systemctl stop docker-registry
        else
            die "$REGISTRY_URL/v2/ answers HTTP $status, not 200: port taken by something else"
        fi
    fi
    our_pid=$(read_pid "$REGISTRY_PID_FILE")
    if pid_is "$our_pid" docker-regist; then
        log "docker-registry (pid $our_pid) running but not answering yet; waiting"
        wait_for_registry "$our_pid" || die "registry pid $our_pid does not answer; see $REGISTRY_LOG"
    else
        rm -f "$REGISTRY_PID_FILE"
        log "starting docker-registry on $REGISTRY_ADDR (config $REGISTRY_CONF, log $REGISTRY_LOG)"
        setsid docker-registry serve "$REGISTRY_CONF" \
            </dev/null >>"$REGISTRY_LOG" 2>&1 9>&- &
        registry_pid=$!
        echo "$registry_pid" >"$REGISTRY_PID_FILE"
        wait_for_registry "$registry_pid" || die "registry did not answer within ${WAIT_SECS}s"
        log "registry up (pid $registry_pid)"
    fi
fi

# --------------------------------------------------------- push test image --
registry_has_image() {
    curl -fsS -m 5 "$REGISTRY_URL/v2/rexec/busybox/tags/list" 2>/dev/null | grep -q '"latest"'
}

if registry_has_image; then
    log "$REGISTRY_IMAGE already in the registry"
else
    log "pushing $REGISTRY_IMAGE"
    docker tag "$TEST_IMAGE" "$REGISTRY_IMAGE"
    docker push -q "$REGISTRY_IMAGE" >/dev/null
    # Drop the local tag again so that tests pulling it really pull.
    docker rmi "$REGISTRY_IMAGE" >/dev/null
    registry_has_image || die "push of $REGISTRY_IMAGE did not show up in the registry"
fi

# ----------------------------------------------------------------- summary --
echo "== rexec test environment =="
docker version --format 'docker: client {{.Client.Version}} (API {{.Client.APIVersion}}), engine {{.Server.Version}} (API {{.Server.APIVersion}})'
describe_pid() { # $1 = pid file
    local pid
    pid=$(read_pid "$1")
    if pid_alive "$pid"; then echo "pid $pid (started by test-env.sh, $1)"; else echo "not started by test-env.sh"; fi
}
echo "dockerd: $(describe_pid "$DOCKERD_PID_FILE"), log $DOCKERD_LOG"
echo "images:"
docker image ls --format '  {{.Repository}}:{{.Tag}} {{.ID}} {{.Size}}' | grep -E 'rexec' || true
echo "registry: $REGISTRY_URL/v2/ HTTP $(registry_status); $(describe_pid "$REGISTRY_PID_FILE"), log $REGISTRY_LOG"
echo "  rexec/busybox tags: $(curl -fsS -m 5 "$REGISTRY_URL/v2/rexec/busybox/tags/list")"
