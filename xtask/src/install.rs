//! `cargo xtask install [--root DIR] [--no-build]`: a source install, built from this checkout,
//! to the paths the systemd unit and the D-Bus files name — the paths the Debian package uses:
//! the daemon in /usr/sbin, crmonctl in /usr/bin, the unit in /lib/systemd/system, the bus
//! policy, activation and interface files under /usr/share/dbus-1, the default configuration
//! in /etc/crmonban/config.toml (never over an existing one), the XDP drop-in and the README
//! under /usr/share/doc/crmonban. Into `/` (the default) it needs root, installs the Debian
//! packages the daemon needs, creates the `crmonban` group the bus policy names and reloads
//! systemd and the system bus; it enables and starts nothing. With `--root` it only writes the
//! files below that directory (a staging tree; no package, group or reload).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// How a file is installed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum How {
    /// Debug information stripped (the release profile keeps line tables for backtraces).
    Binary,
    /// As it is.
    Copy,
    /// As it is, but never over a file already there (the administrator's configuration).
    KeepExisting,
}

/// (source in the workspace, destination below the root, mode, how).
const FILES: &[(&str, &str, u32, How)] = &[
    (
        "target/release/crmonband",
        "usr/sbin/crmonband",
        0o755,
        How::Binary,
    ),
    (
        "target/release/crmonctl",
        "usr/bin/crmonctl",
        0o755,
        How::Binary,
    ),
    (
        "deploy/crmonban.service",
        "lib/systemd/system/crmonban.service",
        0o644,
        How::Copy,
    ),
    (
        "deploy/crmonban-xdp.conf",
        "usr/share/doc/crmonban/examples/crmonban-xdp.conf",
        0o644,
        How::Copy,
    ),
    (
        "dbus/org.crmonban.Daemon.conf",
        "usr/share/dbus-1/system.d/org.crmonban.Daemon.conf",
        0o644,
        How::Copy,
    ),
    (
        "dbus/org.crmonban.Daemon.service",
        "usr/share/dbus-1/system-services/org.crmonban.Daemon.service",
        0o644,
        How::Copy,
    ),
    (
        "dbus/org.crmonban.Daemon.xml",
        "usr/share/dbus-1/interfaces/org.crmonban.Daemon.xml",
        0o644,
        How::Copy,
    ),
    (
        "crates/crmonban-core/src/config/default-config.toml",
        "etc/crmonban/config.toml",
        // It may hold API keys ([intel]); the daemon reads it as root.
        0o640,
        How::KeepExisting,
    ),
    (
        "README.md",
        "usr/share/doc/crmonban/README.md",
        0o644,
        How::Copy,
    ),
];

pub(crate) fn run(args: &[String]) -> Result<ExitCode> {
    let mut root = PathBuf::from("/");
    let mut build = true;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--root" => {
                let Some(dir) = args.next() else {
                    bail!("--root needs a directory");
                };
                root = PathBuf::from(dir);
            }
            "--no-build" => build = false,
            other => {
                bail!("cargo xtask install: unknown argument {other:?} (--root DIR, --no-build)")
            }
        }
    }
    let live = root == Path::new("/");
    if live {
        crate::require_root("install")?;
        crate::install_missing(crate::RUN_PACKAGES)?;
    }
    let workspace = crate::workspace_root();
    if build {
        crate::status(crate::cargo().args([
            "build",
            "--release",
            "--locked",
            "-p",
            "crmonband",
            "-p",
            "crmonctl",
        ]))?;
    }
    for line in install_files(&workspace, &root, true)? {
        eprintln!("xtask: {line}");
    }
    if live {
        after_install();
        eprintln!(
            "xtask: installed. Review /etc/crmonban/config.toml, then: systemctl enable --now crmonban"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes [`FILES`] from `workspace` below `root`; returns what it did, a line each. `strip`
/// strips the binaries' debug information (with binutils' `strip`).
fn install_files(workspace: &Path, root: &Path, strip: bool) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for &(source, destination, mode, how) in FILES {
        let from = workspace.join(source);
        let to = root.join(destination);
        if !from.exists() {
            bail!(
                "{} is missing{}",
                from.display(),
                if how == How::Binary {
                    " (build it: cargo build --release -p crmonband -p crmonctl)"
                } else {
                    ""
                }
            );
        }
        if let Some(dir) = to.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        if how == How::KeepExisting && to.exists() {
            done.push(format!("kept {} (already there)", to.display()));
            continue;
        }
        // A fresh file, not one rewritten in place: a running daemon keeps its old binary.
        let _ = std::fs::remove_file(&to);
        if how == How::Binary && strip {
            crate::status(
                Command::new("strip")
                    .arg("--strip-debug")
                    .arg("-o")
                    .arg(&to)
                    .arg(&from),
            )?;
        } else {
            std::fs::copy(&from, &to)
                .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
        }
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", to.display()))?;
        done.push(format!("installed {}", to.display()));
    }
    Ok(done)
}

/// What a package's postinst does, on the live system: the group the bus policy names, and
/// systemd and the system bus told about the new files. Each step says when it cannot be done.
fn after_install() {
    if let Err(e) = crate::ensure_crmonban_group() {
        eprintln!("xtask: could not create the group crmonban: {e:#}");
    }
    if Path::new("/run/systemd/system").exists() {
        let reloaded = Command::new("systemctl").arg("daemon-reload").status();
        if !reloaded.is_ok_and(|s| s.success()) {
            eprintln!("xtask: systemctl daemon-reload failed");
        }
    } else {
        eprintln!("xtask: systemd is not running here; the unit is installed for when it is");
    }
    if !crate::reload_system_bus() {
        eprintln!("xtask: no system bus answered; it reads the policy when it starts");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A workspace with stand-ins for the two binaries and the real other files.
    fn workspace_with_binaries() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let real = crate::workspace_root();
        for &(source, _, _, how) in FILES {
            let to = dir.path().join(source);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            if how == How::Binary {
                std::fs::write(&to, b"#!/bin/sh\n").unwrap();
            } else {
                std::fs::copy(real.join(source), &to).unwrap();
            }
        }
        dir
    }

    #[test]
    fn every_file_lands_where_the_unit_and_the_bus_files_look_and_a_config_is_kept() {
        let workspace = workspace_with_binaries();
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("etc/crmonban/config.toml");
        std::fs::create_dir_all(config.parent().unwrap()).unwrap();
        std::fs::write(&config, "# the administrator's own\n").unwrap();

        let done = install_files(workspace.path(), root.path(), false).unwrap();
        assert_eq!(done.len(), FILES.len());
        assert!(
            done.iter()
                .any(|line| line.starts_with("kept") && line.contains("config.toml"))
        );
        assert_eq!(
            std::fs::read_to_string(&config).unwrap(),
            "# the administrator's own\n"
        );
        let unit = std::fs::read_to_string(root.path().join("lib/systemd/system/crmonban.service"))
            .unwrap();
        let activation = std::fs::read_to_string(
            root.path()
                .join("usr/share/dbus-1/system-services/org.crmonban.Daemon.service"),
        )
        .unwrap();
        // Both start the binary installed here.
        for text in [&unit, &activation] {
            assert!(
                text.contains("/usr/sbin/crmonband start --foreground"),
                "{text}"
            );
        }
        let daemon = root.path().join("usr/sbin/crmonband");
        let mode = std::fs::metadata(&daemon).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o755);
        assert!(root.path().join("usr/bin/crmonctl").exists());
        assert!(
            root.path()
                .join("usr/share/dbus-1/system.d/org.crmonban.Daemon.conf")
                .exists()
        );

        // Without an earlier configuration the default one is written, readable by root only.
        std::fs::remove_file(&config).unwrap();
        install_files(workspace.path(), root.path(), false).unwrap();
        let default = std::fs::read_to_string(&config).unwrap();
        assert!(default.contains("[general]"), "{default}");
        let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn a_missing_binary_is_named_with_how_to_build_it() {
        let workspace = workspace_with_binaries();
        std::fs::remove_file(workspace.path().join("target/release/crmonctl")).unwrap();
        let root = tempfile::tempdir().unwrap();
        let error = install_files(workspace.path(), root.path(), false).unwrap_err();
        let text = error.to_string();
        assert!(
            text.contains("target/release/crmonctl is missing"),
            "{text}"
        );
        assert!(text.contains("cargo build --release"), "{text}");
    }
}
