//! Validation of container names and image references, and generated names.

use std::sync::OnceLock;

use regex::Regex;

/// 1-64 of `[A-Za-z0-9-]`, not starting with `-`.
pub fn valid_container_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// A Docker image reference: `[host[:port]/]path[:tag][@sha256:digest]`, the grammar of
/// distribution/reference without IPv6 hosts.
pub fn valid_image_reference(reference: &str) -> bool {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        let component = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*";
        // As Docker reads it: a first part is a host only if it has a dot or a port, or is
        // `localhost`; otherwise it is a (lowercase) path component.
        let label = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?";
        let host = format!(
            r"(?:localhost(?::[0-9]+)?|{label}(?:\.{label})+(?::[0-9]+)?|{label}:[0-9]+)"
        );
        let pattern = format!(
            r"^(?:{host}/)?{component}(?:/{component})*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})?(?:@sha256:[a-f0-9]{{64}})?$"
        );
        Regex::new(&pattern).expect("the reference pattern compiles")
    });
    reference.len() <= 255 && re.is_match(reference)
}

const ADJECTIVES: [&str; 24] = [
    "swift", "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively",
    "merry", "nimble", "proud", "quick", "quiet", "bright", "bold", "clever", "witty", "sunny",
    "steady", "lucky", "noble", "vivid",
];

const NOUNS: [&str; 24] = [
    "lion", "tiger", "falcon", "otter", "panda", "eagle", "wolf", "fox", "hawk", "lynx", "badger",
    "heron", "raven", "bison", "koala", "gecko", "orca", "puma", "yak", "zebra", "crane", "moose",
    "seal", "owl",
];

/// `adjective-noun-NNN`, not in `taken`.
pub fn generate(taken: impl Fn(&str) -> bool) -> String {
    loop {
        let mut b = [0u8; 4];
        getrandom::fill(&mut b).expect("the OS random source is available");
        let n = u32::from_le_bytes(b);
        let name = format!(
            "{}-{}-{:03}",
            ADJECTIVES[(n % 24) as usize],
            NOUNS[((n / 24) % 24) as usize],
            (n / 576) % 1000
        );
        if !taken(&name) {
            return name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names() {
        for ok in ["a", "dev-environment", "A1-b2", &"x".repeat(64)] {
            assert!(valid_container_name(ok), "{ok}");
        }
        for bad in ["", "-x", "a_b", "a b", "ünï", "a.b", &"x".repeat(65), "a/b"] {
            assert!(!valid_container_name(bad), "{bad}");
        }
    }

    #[test]
    fn image_references() {
        for ok in [
            "node:20-alpine",
            "python:3.11",
            "127.0.0.1:5000/rexec/busybox:latest",
            "ghcr.io/owner/repo",
            "library/ubuntu@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ] {
            assert!(valid_image_reference(ok), "{ok}");
        }
        for bad in [
            "",
            "UPPER/case",
            "a::b",
            "-x",
            "x:",
            "a b",
            "x:tag with space",
            "../etc",
        ] {
            assert!(!valid_image_reference(bad), "{bad}");
        }
    }

    #[test]
    fn generated_names_are_valid_and_avoid_taken_ones() {
        let first = generate(|_| false);
        assert!(valid_container_name(&first));
        let parts: Vec<&str> = first.split('-').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2].len(), 3);
        let second = generate(|n| n == first);
        assert_ne!(first, second);
    }
}
