//! Every script set-up can run passes shellcheck as POSIX sh: the probe, each tool's step
//! script on each package-manager family, and the shell scripts those steps write into the
//! container (heredocs whose target is a `.sh` file, `rexec-stats`, `~/.profile` or
//! `~/.bashrc`). CI installs shellcheck
//! (scripts/test-env.sh); without it this test fails rather than pass unchecked.

use std::io::Write;
use std::process::{Command, Stdio};

use rexec::daemon::setup::script::{self, PROBE};
use rexec::daemon::setup::{Family, SetupCatalog};

fn shellcheck(what: &str, text: &str, extra: &[&str]) -> Option<String> {
    let mut child = Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style", "--norc"])
        .args(extra)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shellcheck must be installed (scripts/test-env.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (!out.status.success()).then(|| {
        format!(
            "== {what}\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `(target, body)` of each `cat >"TARGET" <<'D'` and `rc_block "TARGET" <<'D'` heredoc.
fn heredocs(script: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = script.lines();
    while let Some(line) = lines.next() {
        let l = line.trim();
        let Some(rest) = l
            .strip_prefix("cat >\"")
            .or_else(|| l.strip_prefix("rc_block \""))
        else {
            continue;
        };
        let Some((target, tail)) = rest.split_once('"') else {
            continue;
        };
        let Some(delim) = tail
            .trim()
            .strip_prefix("<<'")
            .and_then(|d| d.strip_suffix('\''))
        else {
            continue;
        };
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != delim).collect();
        out.push((target.to_string(), body.join("\n") + "\n"));
    }
    out
}

#[test]
fn every_setup_script_passes_shellcheck() {
    let catalog = SetupCatalog::builtin();
    let mut failures = Vec::new();
    failures.extend(shellcheck("probe", &format!("#!/bin/sh\n{PROBE}"), &[]));
    let mut checked = 1;
    for (name, tool) in catalog.tools() {
        for family in [Family::Apt, Family::Apk, Family::Pacman, Family::None] {
            let s = script::tool_step(name, tool, family);
            failures.extend(shellcheck(&format!("{name} on {family}"), &s, &[]));
            checked += 1;
        }
        // What the step writes: sourced fragments (*.sh) and the stats command.
        let s = script::tool_step(name, tool, Family::Apt);
        for (target, body) in heredocs(&s) {
            let posix = [".sh", "rexec-stats", "/.profile", "/.bashrc"];
            if posix.iter().any(|end| target.ends_with(end)) {
                let body = if body.starts_with("#!") {
                    body
                } else {
                    format!("#!/bin/sh\n# shellcheck disable=SC2034\n{body}")
                };
                failures.extend(shellcheck(&format!("{name}: {target}"), &body, &[]));
                checked += 1;
            }
        }
    }
    assert!(checked > 80, "only {checked} scripts found");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_heredoc_reader_finds_what_the_stats_step_writes() {
    let catalog = SetupCatalog::builtin();
    let s = script::tool_step(
        "system-stats",
        catalog.tool("system-stats").unwrap(),
        Family::Apk,
    );
    let docs = heredocs(&s);
    assert!(docs
        .iter()
        .any(|(t, b)| t.ends_with("bin/rexec-stats") && b.contains("cgroup")));
    let profile = script::tool_step("profile", catalog.tool("profile").unwrap(), Family::Apt);
    assert!(heredocs(&profile)
        .iter()
        .any(|(t, _)| t.ends_with("/.bashrc")));
    // A deliberately broken script is caught, so the check above is not vacuous.
    assert!(shellcheck("broken", "#!/bin/sh\necho $undefined_var[\n", &[]).is_some());
}
