//! The scripts set-up runs inside a container: the image probe and one script per tool step,
//! generated from the catalog. Only catalog text goes into them (checked names and package
//! names); everything about the container arrives in the environment.

use super::catalog::{Family, Tool};

const LIB: &str = include_str!("lib.sh");

/// Finds the package-manager family and the shells an image has. Runs under `/bin/sh`.
pub const PROBE: &str = r#"if command -v apt-get >/dev/null 2>&1; then family=apt
elif command -v apk >/dev/null 2>&1; then family=apk
elif command -v pacman >/dev/null 2>&1; then family=pacman
else family=none
fi
os=$(sed -n 's/^ID=//p' /etc/os-release 2>/dev/null | tr -d '"')
shells=
for s in bash zsh ash sh; do
    if command -v "$s" >/dev/null 2>&1; then shells="$shells,$s"; fi
done
printf 'rexec-probe: family=%s os=%s shells=%s\n' "$family" "${os:-unknown}" "${shells#,}"
"#;

/// What the probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub family: Family,
    pub os: String,
    pub shells: Vec<String>,
}

impl Probe {
    pub fn parse(output: &str) -> Option<Probe> {
        let line = output
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("rexec-probe: "))?;
        let field = |k: &str| {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(k)?.strip_prefix('='))
                .unwrap_or_default()
        };
        Some(Probe {
            family: Family::parse(field("family"))?,
            os: field("os").to_string(),
            shells: field("shells")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    pub fn has(&self, shell: &str) -> bool {
        self.shells.iter().any(|s| s == shell)
    }

    /// Step scripts run under bash where the image has it, else its `sh` (busybox ash on
    /// Alpine-like images). They are POSIX sh either way.
    pub fn interpreter(&self) -> &'static str {
        if self.has("bash") {
            "bash"
        } else {
            "sh"
        }
    }
}

fn function(name: &str, body: Option<&str>) -> String {
    let body = body.map(str::trim).filter(|b| !b.is_empty()).unwrap_or(":");
    format!("{name}() {{\n{body}\n}}\n")
}

/// The step script for one tool on one family: present → configure; missing → install,
/// check again, configure. Prints `rexec-result: present|installed` when it succeeds.
pub fn tool_step(name: &str, tool: &Tool, family: Family) -> String {
    let install = match (tool.packages.get(&family), &tool.install) {
        (Some(packages), _) => format!("pkg_install {}", packages.join(" ")),
        (None, Some(script)) => script.clone(),
        (None, None) if family == Family::None => format!(
            "fail \"this image has no supported package manager (apt, apk or pacman) to install {name}\""
        ),
        (None, None) => format!(
            "fail \"rexec has no way to install {name} on this image (package manager: {family})\""
        ),
    };
    let profile = match tool.profile.as_deref().map(str::trim) {
        Some(p) if !p.is_empty() => format!(
            "cat >\"$REXEC_DIR/profile.d/50-{name}.sh\" <<'REXEC_PROFILE_EOF'\n{p}\nREXEC_PROFILE_EOF\n"
        ),
        _ => format!("rm -f \"$REXEC_DIR/profile.d/50-{name}.sh\"\n"),
    };
    let mut s = String::from("#!/bin/sh\n");
    s.push_str(&format!("# rexec set-up step: {name} ({family})\n"));
    s.push_str(LIB);
    s.push('\n');
    s.push_str(&function("rexec_tool_env", tool.profile.as_deref()));
    s.push_str(&function("rexec_tool_check", Some(&tool.check)));
    s.push_str(&function("rexec_tool_install", Some(&install)));
    s.push_str(&function("rexec_tool_configure", tool.configure.as_deref()));
    s.push_str(&format!(
        r#"
if (rexec_tool_env; rexec_tool_check) >/dev/null 2>&1; then
    result=present
    say "{name} is already present; configuring it"
else
    say "installing {name}"
    (rexec_tool_install) || exit 1
    (rexec_tool_env; rexec_tool_check) >/dev/null 2>&1 ||
        fail "{name} is still missing after its installation"
    result=installed
fi
rexec_tool_env
{profile}rexec_tool_configure || fail "configuring {name} failed"
printf 'rexec-result: %s\n' "$result"
"#
    ));
    s
}

/// What a step's output says about it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// `present` or `installed`, when the step got that far.
    pub result: Option<String>,
    /// The last `rexec-error:` line.
    pub error: Option<String>,
}

pub fn outcome(output: &str) -> Outcome {
    let mut o = Outcome::default();
    for line in output.lines() {
        if let Some(r) = line.strip_prefix("rexec-result: ") {
            o.result = Some(r.trim().to_string());
        } else if let Some(e) = line.strip_prefix("rexec-error: ") {
            o.error = Some(e.trim().to_string());
        }
    }
    o
}

/// The last line of output that says something, for a step that died without a word.
pub fn last_line(output: &str) -> Option<String> {
    output
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(|l| l.chars().take(300).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_parses() {
        let p = Probe::parse("noise\nrexec-probe: family=apk os=alpine shells=ash,sh\n").unwrap();
        assert_eq!(p.family, Family::Apk);
        assert_eq!(p.os, "alpine");
        assert_eq!(p.shells, ["ash", "sh"]);
        assert_eq!(p.interpreter(), "sh");
        let p = Probe::parse("rexec-probe: family=none os=unknown shells=\n").unwrap();
        assert!(p.shells.is_empty());
        assert!(Probe::parse("rexec-probe: family=yum os=x shells=sh").is_none());
        assert!(Probe::parse("").is_none());
    }

    #[test]
    fn outcome_takes_the_last_error_and_the_result() {
        let o = outcome("rexec: x\nrexec-error: first\nrexec-error: apt-get failed\n");
        assert_eq!(o.error.as_deref(), Some("apt-get failed"));
        assert_eq!(o.result, None);
        assert_eq!(
            outcome("rexec-result: present\n").result.as_deref(),
            Some("present")
        );
        assert_eq!(last_line("a\n  b  \n\n").as_deref(), Some("b"));
    }
}
