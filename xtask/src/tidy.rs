//! `cargo xtask tidy`: the workspace's shape, checked. A library crate depends only on crates of
//! lower layers; a binary never depends on the store or the firewall directly (it goes through
//! the engine); no source file outside tests is over [`MAX_LINES`] lines. The same check runs as
//! a test, so `cargo xtask test` fails on a violation.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The longest a source file may be (tests excepted): one job per module.
pub const MAX_LINES: usize = 600;

/// Each library crate's layer: a crate may depend only on crates of a lower layer.
const LAYERS: &[(&str, u8)] = &[
    ("crmonban-core", 0),
    ("crmonban-dbus", 0),
    ("crmonban-detect", 1),
    ("crmonban-firewall", 1),
    ("crmonban-store", 1),
    ("crmonban-zones", 1),
    ("crmonban-intel", 1),
    ("crmonban-siem", 1),
    // The HTML report: core's durations and dbus's RFC 3339 times, no I/O.
    ("crmonban-report", 1),
    // A second firewall backend: implements crmonban-firewall's trait.
    ("crmonban-ebpf", 2),
    // The migration from fail2ban: reads fail2ban's database through the store.
    ("crmonban-fail2ban", 2),
    ("crmonban-engine", 3),
];

/// Layers the binaries may not reach past the engine.
const NOT_FOR_BINARIES: &[&str] = &[
    "crmonban-store",
    "crmonban-firewall",
    "crmonban-intel",
    "crmonban-siem",
    "crmonban-ebpf",
];

/// Every violation in the workspace at `root`, one line each.
pub fn violations(root: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for (dir, is_binary) in [("crates", false), ("bins", true)] {
        for package in subdirectories(&root.join(dir))? {
            let manifest = package.join("Cargo.toml");
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("reading {}", manifest.display()))?;
            let name = package_name(&text).unwrap_or_default();
            let own_layer = layer(&name);
            for dependency in dependencies(&text) {
                if is_binary && NOT_FOR_BINARIES.contains(&dependency.as_str()) {
                    found.push(format!(
                        "{}: the binary depends on {dependency} directly; go through crmonban-engine",
                        manifest.display()
                    ));
                }
                if let (Some(own), Some(theirs)) = (own_layer, layer(&dependency))
                    && theirs >= own
                {
                    found.push(format!(
                        "{}: {name} (layer {own}) depends on {dependency} (layer {theirs}); a crate may depend only on lower layers",
                        manifest.display()
                    ));
                }
            }
        }
    }
    for dir in ["crates", "bins", "xtask"] {
        for file in rust_files(&root.join(dir))? {
            if is_test_file(&file) || is_generated(&file) {
                continue;
            }
            let lines = std::fs::read_to_string(&file)?.lines().count();
            if lines > MAX_LINES {
                found.push(format!(
                    "{}: {lines} lines (at most {MAX_LINES}): split it by responsibility",
                    file.strip_prefix(root).unwrap_or(&file).display()
                ));
            }
        }
    }
    Ok(found)
}

/// Runs the check for `cargo xtask tidy`.
pub fn run(root: &Path) -> Result<std::process::ExitCode> {
    let found = violations(root)?;
    for violation in &found {
        eprintln!("tidy: {violation}");
    }
    if found.is_empty() {
        println!("tidy: the workspace's layers and file sizes are as they should be");
        Ok(std::process::ExitCode::SUCCESS)
    } else {
        Ok(std::process::ExitCode::FAILURE)
    }
}

fn layer(name: &str) -> Option<u8> {
    LAYERS.iter().find(|(n, _)| *n == name).map(|(_, l)| *l)
}

fn package_name(manifest: &str) -> Option<String> {
    let package = section(manifest, "[package]")?;
    package.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "name").then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The `crmonban-*` names under `[dependencies]` (not dev- or build-dependencies).
fn dependencies(manifest: &str) -> Vec<String> {
    let Some(deps) = section(manifest, "[dependencies]") else {
        return Vec::new();
    };
    deps.lines()
        .filter_map(|line| {
            let name = line.split(['=', '.']).next()?.trim();
            name.starts_with("crmonban-").then(|| name.to_owned())
        })
        .collect()
}

/// The body of a `[section]` up to the next section header.
fn section<'a>(manifest: &'a str, header: &str) -> Option<&'a str> {
    let start = manifest
        .find(&format!("\n{header}\n"))
        .map(|i| i + 1)
        .or_else(|| manifest.starts_with(&format!("{header}\n")).then_some(0))?;
    let body = &manifest[start + header.len()..];
    let end = body.find("\n[").map_or(body.len(), |i| i + 1);
    Some(&body[..end])
}

fn subdirectories(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.join("Cargo.toml").is_file())
        .collect();
    out.sort();
    Ok(out)
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "target") {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    Ok(out)
}

/// Generated code (`cargo xtask bpf`'s libbpf-rs skeletons, `*.skel.rs`): one file per
/// program, whatever its length.
fn is_generated(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(".skel.rs"))
}

/// Tests, benches and examples of tests: `tests/` directories, `benches/`, `tests.rs` and
/// `*_tests.rs` modules.
fn is_test_file(path: &Path) -> bool {
    path.components().any(|c| {
        let c = c.as_os_str();
        c == "tests" || c == "benches"
    }) || path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "tests.rs" || n.ends_with("_tests.rs"))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn the_workspace_is_tidy() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let found = violations(&root).unwrap();
        assert!(found.is_empty(), "cargo xtask tidy:\n{}", found.join("\n"));
    }

    #[test]
    fn dependencies_and_layers_are_read_from_the_manifest() {
        let manifest = "[package]\nname = \"crmonban-store\"\n\n[dependencies]\ncrmonban-core.workspace = true\ncrmonban-engine = { workspace = true }\nserde.workspace = true\n\n[dev-dependencies]\ncrmonban-testutil.workspace = true\n";
        assert_eq!(package_name(manifest).as_deref(), Some("crmonban-store"));
        assert_eq!(dependencies(manifest), ["crmonban-core", "crmonban-engine"]);
        assert!(layer("crmonban-engine") > layer("crmonban-store"));
    }
}
