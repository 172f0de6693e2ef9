//! The dependency rules of ARCHITECTURE.md, checked: only `daemon/engine` uses bollard, only
//! `daemon/store` uses redb and rmp-serde, handlers never reach either, and no daemon module
//! but `config` reads the environment.

use std::path::{Path, PathBuf};

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn violations(needle: &str, allowed: &[&str]) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src"), &mut files);
    files
        .into_iter()
        .filter(|f| {
            let rel = f.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            !allowed.iter().any(|a| rel.starts_with(a))
        })
        .filter(|f| std::fs::read_to_string(f).unwrap().contains(needle))
        .map(|f| f.display().to_string())
        .collect()
}

#[test]
fn only_the_engine_uses_bollard() {
    assert_eq!(
        violations("bollard::", &["src/daemon/engine/"]),
        Vec::<String>::new()
    );
}

#[test]
fn only_the_store_uses_redb_and_rmp_serde() {
    assert_eq!(
        violations("redb::", &["src/daemon/store/"]),
        Vec::<String>::new()
    );
    assert_eq!(
        violations("rmp_serde", &["src/daemon/store/"]),
        Vec::<String>::new()
    );
}

#[test]
fn handlers_reach_neither_engine_nor_store() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    rust_files(&root.join("src/daemon/server"), &mut files);
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for needle in ["engine::", "store::", "bollard", "redb"] {
            assert!(!text.contains(needle), "{} mentions {needle}", f.display());
        }
    }
}

#[test]
fn only_config_reads_the_environment() {
    assert_eq!(
        violations(
            "std::env::var",
            &["src/daemon/config.rs", "src/bin/", "src/client/"]
        ),
        Vec::<String>::new()
    );
}
