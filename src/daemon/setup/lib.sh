# rexec set-up library, at the top of every set-up step. POSIX sh: it runs under bash, dash
# and busybox ash. What a step needs to know arrives in REXEC_* environment variables; nothing
# a user sent is ever spliced into the script text.


say() { printf 'rexec: %s\n' "$*"; }
# The last `rexec-error:` line of a step is the error its API status shows.
fail() {
    printf 'rexec-error: %s\n' "$*" >&2
    exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }
rexec_path() { case ":$PATH:" in *":$1:"*) ;; *) PATH="$1:$PATH" && export PATH ;; esac; }

# find_file FILE...: prints the first readable one; fails if there is none.
find_file() {
    for f in "$@"; do
        if [ -r "$f" ]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

# cpu_arch: the CPU in the spelling of Go-built release downloads.
cpu_arch() {
    case "$(uname -m)" in
    x86_64 | amd64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    *) fail "no download for this CPU architecture ($(uname -m))" ;;
    esac
}

apt_lists_present() {
    for f in /var/lib/apt/lists/*_Packages*; do
        if [ -e "$f" ]; then return 0; fi
    done
    return 1
}

# pkg_install PACKAGE...: installs distro packages with the image's package manager.
pkg_install() {
    case "${REXEC_FAMILY:-none}" in
    apt)
        # A step killed by its time budget may have left dpkg half-way.
        dpkg --configure -a >/dev/null 2>&1
        if ! apt_lists_present; then
            say "apt-get update"
            apt-get update -q -o APT::Update::Error-Mode=any ||
                fail "apt-get update failed: the package lists could not be fetched (is the network reachable?)"
        fi
        say "apt-get install $*"
        if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"; then
            # The image's package lists may be stale: fetch them and try once more.
            say "apt-get update, then install again"
            apt-get update -q -o APT::Update::Error-Mode=any ||
                fail "apt-get install $* failed, and so did apt-get update (is the network reachable?)"
            DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" ||
                fail "apt-get install $* failed (is the network reachable?)"
        fi
        ;;
    apk)
        say "apk add $*"
        apk add --no-cache "$@" || fail "apk add $* failed (is the network reachable?)"
        ;;
    pacman)
        # -Syu, never -Sy alone: Arch does not support partial upgrades.
        say "pacman -Syu $*"
        pacman -Syu --noconfirm --needed "$@" || fail "pacman -Syu $* failed (is the network reachable?)"
        ;;
    *) fail "this image has no supported package manager (apt, apk or pacman) to install $*" ;;
    esac
}

# fetch URL FILE: downloads with curl or wget, installing curl if the image has neither.
fetch() {
    if ! have curl && ! have wget; then
        pkg_install curl ca-certificates
    fi
    say "downloading $1"
    if have curl; then
        curl -fsSL --retry 2 --connect-timeout 15 -o "$2" "$1" ||
            fail "download failed: $1 (is the network reachable?)"
    else
        wget -q -T 15 -O "$2" "$1" || fail "download failed: $1 (is the network reachable?)"
    fi
}

# rc_block FILE: puts stdin in FILE between rexec's markers, replacing an earlier block and
# keeping everything else in the file as it was.
# Written in place (a symlinked dotfile stays a symlink); a last line without a newline gets one.
rc_block() {
    {
        if [ -f "$1" ]; then
            sed '/^# >>> rexec >>>$/,/^# <<< rexec <<<$/d' "$1"
            if [ -s "$1" ] && [ -n "$(tail -c 1 "$1")" ]; then echo; fi
        fi
        echo '# >>> rexec >>>'
        cat
        echo '# <<< rexec <<<'
    } >"$REXEC_TMP/rc-block" || fail "cannot write $1"
    cat "$REXEC_TMP/rc-block" >"$1" || fail "cannot write $1"
}

REXEC_DIR="$HOME/.rexec"
mkdir -p "$REXEC_DIR/profile.d" "$REXEC_DIR/rc.d" || fail "cannot create $REXEC_DIR"
REXEC_TMP=$(mktemp -d) || fail "cannot create a temporary directory"
trap 'rm -rf "$REXEC_TMP"' EXIT
# The environment of the tools set up before this one.
for rexec_f in "$REXEC_DIR"/profile.d/*.sh; do
    # shellcheck source=/dev/null
    if [ -r "$rexec_f" ]; then . "$rexec_f"; fi
done
unset rexec_f
