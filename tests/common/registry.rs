//! Images that exist only in the local test registry (scripts/test-env.sh runs it on
//! 127.0.0.1:5000), so that a create must pull them.

use super::docker;

pub const REGISTRY: &str = "127.0.0.1:5000";

/// An image that exists only in the registry: a fresh layer of random bytes on the test
/// image, pushed, then removed locally so that a create must pull it.
pub struct RegistryImage {
    pub reference: String,
}

impl RegistryImage {
    pub fn push(label: &str) -> Self {
        let tag = uuid::Uuid::new_v4().simple().to_string();
        let reference = format!("{REGISTRY}/rexec/pull-{tag}:v1");
        let builder = format!("rexec-pull-build-{tag}");
        let (ok, out) = docker::run(&[
            "run",
            "--name",
            &builder,
            "--network",
            "none",
            "--label",
            &format!("rexec.test={label}"),
            super::TEST_IMAGE,
            "sh",
            "-c",
            "head -c 48000000 /dev/urandom > /blob",
        ]);
        assert!(ok, "{out}");
        let (ok, out) = docker::run(&[
            "commit",
            "--change",
            &format!("LABEL rexec.test={label}"),
            &builder,
            &reference,
        ]);
        assert!(ok, "{out}");
        docker::run(&["rm", "-f", &builder]);
        let (ok, out) = docker::run(&["push", &reference]);
        assert!(
            ok,
            "is the test registry up? run `sudo scripts/test-env.sh`: {out}"
        );
        let (ok, out) = docker::run(&["rmi", &reference]);
        assert!(ok, "{out}");
        Self { reference }
    }
}

impl Drop for RegistryImage {
    fn drop(&mut self) {
        docker::run(&["rmi", "-f", &self.reference]);
    }
}
