//! The Debian package, end to end on this machine: build it (twice, to try an upgrade),
//! inspect it, install it, start rexecd from the installed files, create and remove a
//! container with the installed `rexecctl`, upgrade keeping the config and data, remove
//! keeping them, and purge leaving nothing behind.
//!
//! It installs into the system paths (/usr/bin, /etc/rexec, /var/lib/rexec, /run/rexec), so
//! it refuses to run where a rexec package is already installed or a rexecd already answers
//! on /run/rexec/rexecd.sock, and it purges what it installed even when it fails.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

const SOCKET: &str = "/run/rexec/rexecd.sock";

fn sh(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

fn ok(cmd: &mut Command) -> String {
    let shown = format!("{cmd:?}");
    let (ok, out) = sh(cmd);
    assert!(ok, "{shown} failed:\n{out}");
    out
}

fn dpkg(args: &[&str]) -> String {
    ok(Command::new("dpkg")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .args(["--force-confdef", "--force-confold"])
        .args(args))
}

fn installed() -> bool {
    sh(Command::new("dpkg-query").args(["-W", "-f=${Status}", "rexec"]))
        .1
        .contains("install ok installed")
}

fn group_exists(name: &str) -> bool {
    sh(Command::new("getent").args(["group", name])).0
}

/// The installed rexecctl, as root over the default socket (no --socket: the defaults of
/// client and daemon must agree).
fn rexecctl(args: &[&str]) -> (i32, String, String) {
    common::output(
        Command::new("/usr/bin/rexecctl")
            .args(args)
            .env_remove("REXEC_URL")
            .env_remove("REXEC_TOKEN"),
    )
}

/// Purges the package on drop, and removes the test's Docker objects, so a failed run
/// leaves the machine as it found it.
struct Installation {
    label: String,
    daemon: Option<Child>,
}

impl Installation {
    /// rexecd as rexecd.service starts it (its ExecStart), plus a test layer: no container
    /// network, the catalog on the local test image, the test label. Returns once rexecd has
    /// sent READY=1, as systemd would wait for it.
    fn start_daemon(&mut self, overlay: &Path) {
        let unit = std::fs::read_to_string("/lib/systemd/system/rexecd.service").unwrap();
        let exec = unit
            .lines()
            .find_map(|l| l.strip_prefix("ExecStart="))
            .expect("ExecStart in the installed unit");
        let mut argv = exec.split_whitespace();
        let dir = overlay.parent().unwrap();
        let notify_path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&notify_path);
        let notify = UnixDatagram::bind(&notify_path).unwrap();
        notify
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let log = std::fs::File::create(dir.join("rexecd.log")).unwrap();
        let child = Command::new(argv.next().unwrap())
            .args(argv)
            .arg("--config")
            .arg(overlay)
            .env("NOTIFY_SOCKET", &notify_path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the installed rexecd starts");
        self.daemon = Some(child);
        let mut buf = [0u8; 1024];
        let n = notify.recv(&mut buf).unwrap_or_else(|e| {
            panic!(
                "no READY=1 from rexecd ({e}):\n{}",
                std::fs::read_to_string(dir.join("rexecd.log")).unwrap_or_default()
            )
        });
        assert!(String::from_utf8_lossy(&buf[..n]).contains("READY=1"));
    }

    fn stop_daemon(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            common::terminate(&mut child, Duration::from_secs(15));
        }
    }
}

impl Drop for Installation {
    fn drop(&mut self) {
        self.stop_daemon();
        let label = format!("label=rexec.test={}", self.label);
        for id in common::docker::ids(&["ps", "-aq", "--filter", &label]) {
            common::docker::run(&["rm", "-f", "-v", &id]);
        }
        for v in common::docker::ids(&["volume", "ls", "-q", "--filter", &label]) {
            common::docker::run(&["volume", "rm", "-f", &v]);
        }
        if installed() || Path::new("/etc/rexec").exists() {
            let _ = sh(Command::new("dpkg").args(["--purge", "rexec"]));
        }
    }
}

fn build(bin_dir: &Path, out: &Path, revision: &str) -> PathBuf {
    let deb = ok(Command::new("packaging/build-deb.sh")
        .arg("--bin-dir")
        .arg(bin_dir)
        .arg("--out")
        .arg(out)
        .args(["--revision", revision]));
    PathBuf::from(deb.trim())
}

#[test]
fn the_deb_installs_runs_upgrades_and_purges_cleanly() {
    common::require_docker();
    assert!(
        nix::unistd::geteuid().is_root(),
        "installing a package needs root"
    );
    assert!(
        !installed(),
        "a rexec package is installed on this machine; this test would replace it"
    );
    assert!(
        std::os::unix::net::UnixStream::connect(SOCKET).is_err(),
        "a rexecd answers on {SOCKET}; stop it first"
    );
    let work = tempfile::tempdir().unwrap();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_rexecd")).parent().unwrap();
    let deb1 = build(bin_dir, work.path(), "1");
    let deb2 = build(bin_dir, work.path(), "2");

    // Inspect: the control fields, the conffile, the maintainer scripts and every file.
    let info = ok(Command::new("dpkg-deb").arg("-I").arg(&deb1));
    for field in [
        "Package: rexec",
        "Version: 0.1.0-1",
        "Depends: libc6",
        "conffiles",
        "postinst",
        "postrm",
    ] {
        assert!(info.contains(field), "{field}: {info}");
    }
    let conffiles = ok(Command::new("dpkg-deb")
        .arg("-I")
        .arg(&deb1)
        .arg("conffiles"));
    assert_eq!(conffiles.trim(), "/etc/rexec/rexecd.toml");
    let listing = ok(Command::new("dpkg-deb").arg("-c").arg(&deb1));
    let files: Vec<String> = listing
        .lines()
        .filter(|l| l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .map(|p| p.trim_start_matches('.').to_string())
        .collect();
    for want in [
        "/usr/bin/rexecd",
        "/usr/bin/rexecctl",
        "/lib/systemd/system/rexecd.service",
        "/lib/systemd/system/rexecd.socket",
        "/usr/lib/sysusers.d/rexec.conf",
        "/usr/lib/tmpfiles.d/rexec.conf",
        "/etc/rexec/rexecd.toml",
        "/usr/share/bash-completion/completions/rexecctl",
        "/usr/share/zsh/vendor-completions/_rexecctl",
        "/usr/share/fish/vendor_completions.d/rexecctl.fish",
        "/usr/share/man/man1/rexecctl.1.gz",
        "/usr/share/man/man1/rexecctl-create.1.gz",
        "/usr/share/man/man8/rexecd.8.gz",
        "/usr/share/doc/rexec/operations.md",
        "/usr/share/doc/rexec/copyright",
    ] {
        assert!(files.iter().any(|f| f == want), "{want} not in:\n{listing}");
    }

    let label = format!("t-{}", uuid::Uuid::new_v4().simple());
    let mut inst = Installation {
        label: label.clone(),
        daemon: None,
    };
    dpkg(&["--install", &deb1.display().to_string()]);
    assert!(installed());
    assert!(group_exists("rexec") && group_exists("rexec-admin"));
    let mode = |p: &str| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode("/var/lib/rexec"), 0o700);
    assert_eq!(mode("/run/rexec"), 0o755);
    let version = ok(Command::new("/usr/bin/rexecctl").arg("--version"));
    assert!(version.starts_with("rexecctl 0.1.0"), "{version}");
    // The installed units verify, man pages (Documentation=man:rexecd(8)) included.
    let (verified, out) = sh(Command::new("systemd-analyze").args([
        "verify",
        "/lib/systemd/system/rexecd.service",
        "/lib/systemd/system/rexecd.socket",
    ]));
    assert!(verified && out.trim().is_empty(), "{out}");
    let man = ok(Command::new("man").args(["-w", "rexecd"]));
    assert!(man.contains("/usr/share/man/man8/rexecd.8.gz"), "{man}");

    // Start from the installed files, then one container with the installed rexecctl.
    let overlay = work.path().join("test.toml");
    std::fs::write(
        &overlay,
        format!(
            "[docker]\nnetwork = \"none\"\nstop_timeout_seconds = 2\nextra_labels = {{ \"rexec.test\" = \"{label}\" }}\n[images.\"alpine:latest\"]\ndocker = \"{}\"\n",
            common::TEST_IMAGE
        ),
    )
    .unwrap();
    inst.start_daemon(&overlay);
    let socket = std::fs::metadata(SOCKET).unwrap();
    assert_eq!(socket.permissions().mode() & 0o777, 0o660);
    let rexec_gid = nix::unistd::Group::from_name("rexec").unwrap().unwrap().gid;
    assert_eq!(
        std::os::unix::fs::MetadataExt::gid(&socket),
        rexec_gid.as_raw()
    );
    let (code, out, err) = rexecctl(&["user", "create", "pkg", "--tier", "free"]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = rexecctl(&[
        "create",
        "--image",
        "alpine:latest",
        "--name",
        "pkg-box",
        "--role",
        "barebone",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("pkg-box is ready"), "{out}");
    let (_, out, _) = rexecctl(&["ls"]);
    assert!(out.contains("pkg-box") && out.contains("running"), "{out}");
    assert_eq!(
        common::docker::ids(&["ps", "-q", "--filter", &format!("label=rexec.test={label}")]).len(),
        1
    );
    let (code, out, err) = rexecctl(&["rm", "pkg-box"]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = rexecctl(&["ls", "-o", "json"]);
    assert!(out.contains("\"containers\": []"), "{out}");
    inst.stop_daemon();

    // Upgrade to -2: a local change to the config and the database both survive, and the
    // user created before is still there.
    let config = "/etc/rexec/rexecd.toml";
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str("\n# changed by the packaging test\n");
    std::fs::write(config, &text).unwrap();
    dpkg(&["--install", &deb2.display().to_string()]);
    let status = ok(Command::new("dpkg-query").args(["-W", "-f=${Version}", "rexec"]));
    assert_eq!(status, "0.1.0-2");
    assert_eq!(std::fs::read_to_string(config).unwrap(), text);
    inst.start_daemon(&overlay);
    let (_, out, _) = rexecctl(&["user", "ls"]);
    assert!(out.contains("pkg"), "{out}");
    inst.stop_daemon();

    // Remove: the binaries go, the config and the data stay.
    dpkg(&["--remove", "rexec"]);
    assert!(!Path::new("/usr/bin/rexecd").exists());
    assert!(!Path::new("/usr/bin/rexecctl").exists());
    assert_eq!(std::fs::read_to_string(config).unwrap(), text);
    assert!(Path::new("/var/lib/rexec/rexec.redb").exists());

    // Purge: nothing is left, not even the groups.
    dpkg(&["--purge", "rexec"]);
    for f in &files {
        assert!(!Path::new(f).exists(), "{f} left after purge");
    }
    for dir in ["/etc/rexec", "/var/lib/rexec", "/run/rexec"] {
        assert!(!Path::new(dir).exists(), "{dir} left after purge");
    }
    assert!(!group_exists("rexec") && !group_exists("rexec-admin"));
    let (_, status) = sh(Command::new("dpkg-query").args(["-W", "-f=${Status}", "rexec"]));
    assert!(!status.contains("installed"), "{status}");
}

#[test]
fn the_package_scripts_pass_shellcheck() {
    let out = Command::new("shellcheck")
        .args([
            "packaging/build-deb.sh",
            "packaging/debian/postinst",
            "packaging/debian/prerm",
            "packaging/debian/postrm",
        ])
        .output()
        .expect("shellcheck runs (scripts/test-env.sh installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
