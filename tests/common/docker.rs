//! The test side's view of Docker, through the docker CLI (the daemon's own code never uses
//! it): what the daemon really created.

use std::process::{Command, Stdio};

pub fn run(args: &[&str]) -> (bool, String) {
    let out = Command::new("docker")
        .args(args)
        .stderr(Stdio::piped())
        .output()
        .expect("docker CLI runs");
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

pub fn ids(args: &[&str]) -> Vec<String> {
    let (_, out) = run(args);
    out.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains(' '))
        .map(str::to_string)
        .collect()
}

/// `docker inspect` of one object as JSON (`None` if it does not exist).
pub fn inspect(kind: &str, id: &str) -> Option<serde_json::Value> {
    let out = Command::new("docker")
        .args([kind, "inspect", id])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0).cloned()
}
