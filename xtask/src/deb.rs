//! `cargo xtask deb`: the Debian package. Release binaries first, then the manual pages and
//! shell completions each binary generates from its own command line (its hidden `assets DIR`)
//! under target/release/assets, the pages gzipped as Debian wants them, then `cargo deb --no-build`
//! with the metadata of bins/crmonband/Cargo.toml (cargo-deb is installed when missing). Prints
//! the path of the package.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The binaries packaged, each with the `assets` command that writes its pages.
const BINARIES: [&str; 2] = ["crmonband", "crmonctl"];

pub fn run(root: &Path) -> Result<ExitCode> {
    let package = build(root)?;
    println!("{}", package.display());
    Ok(ExitCode::SUCCESS)
}

/// Builds the package and returns its path.
pub fn build(root: &Path) -> Result<PathBuf> {
    crate::status(Command::new("cargo").current_dir(root).args([
        "build",
        "--release",
        "-p",
        "crmonband",
        "-p",
        "crmonctl",
    ]))?;
    let assets = root.join("target/release/assets");
    if assets.exists() {
        std::fs::remove_dir_all(&assets)
            .with_context(|| format!("clearing {}", assets.display()))?;
    }
    for binary in BINARIES {
        crate::status(
            Command::new(root.join("target/release").join(binary))
                .arg("assets")
                .arg(&assets),
        )?;
    }
    for entry in std::fs::read_dir(assets.join("man"))? {
        let path = entry?.path();
        // -n: no name or time stamp in the header, so that the package is reproducible.
        crate::status(Command::new("gzip").args(["-9nf"]).arg(&path))?;
    }
    if Command::new("cargo")
        .args(["deb", "--version"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        eprintln!("xtask: installing cargo-deb");
        crate::status(Command::new("cargo").args(["install", "cargo-deb", "--locked"]))?;
    }
    let output = Command::new("cargo")
        .current_dir(root)
        .args(["deb", "-p", "crmonband", "--no-build", "--strip"])
        .output()
        .context("running cargo deb")?;
    if !output.status.success() {
        bail!(
            "cargo deb failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let printed = String::from_utf8_lossy(&output.stdout);
    let path = printed
        .lines()
        .rev()
        .find(|l| l.trim_end().ends_with(".deb"))
        .map(|l| PathBuf::from(l.trim()))
        .context("cargo deb printed no package path")?;
    Ok(path)
}

/// The package, built once for all the tests of this process.
#[cfg(test)]
pub(crate) fn built_package() -> PathBuf {
    static PACKAGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PACKAGE
        .get_or_init(|| build(&crate::workspace_root()).expect("cargo xtask deb"))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dpkg_deb(args: &[&str], package: &Path) -> String {
        let out = Command::new("dpkg-deb")
            .args(args)
            .arg(package)
            .output()
            .expect("dpkg-deb");
        assert!(
            out.status.success(),
            "dpkg-deb {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The package as built: what it installs where, with which modes, its conffile, its
    /// maintainer scripts, and binaries that are stripped.
    #[test]
    fn the_package_holds_what_an_admin_needs() {
        let package = built_package();
        let listing = dpkg_deb(&["-c"], &package);
        for (mode, path) in [
            ("-rwxr-xr-x", "./usr/sbin/crmonband"),
            ("-rwxr-xr-x", "./usr/bin/crmonctl"),
            ("-rw-------", "./etc/crmonban/config.toml"),
            ("-rw-r--r--", "./usr/lib/systemd/system/crmonban.service"),
            (
                "-rw-r--r--",
                "./usr/share/dbus-1/system.d/org.crmonban.Daemon.conf",
            ),
            (
                "-rw-r--r--",
                "./usr/share/dbus-1/system-services/org.crmonban.Daemon.service",
            ),
            ("-rw-r--r--", "./usr/share/man/man8/crmonband.8.gz"),
            ("-rw-r--r--", "./usr/share/man/man8/crmonband-start.8.gz"),
            ("-rw-r--r--", "./usr/share/man/man1/crmonctl.1.gz"),
            ("-rw-r--r--", "./usr/share/man/man1/crmonctl-ban.1.gz"),
            (
                "-rw-r--r--",
                "./usr/share/man/man5/crmonban-config.toml.5.gz",
            ),
            (
                "-rw-r--r--",
                "./usr/share/bash-completion/completions/crmonctl.bash",
            ),
            ("-rw-r--r--", "./usr/share/zsh/vendor-completions/_crmonctl"),
            (
                "-rw-r--r--",
                "./usr/share/fish/vendor_completions.d/crmonctl.fish",
            ),
            (
                "-rw-r--r--",
                "./usr/share/doc/crmonban/examples/crmonban-xdp.conf",
            ),
        ] {
            let line = listing
                .lines()
                .find(|l| l.ends_with(&format!(" {path}")))
                .unwrap_or_else(|| panic!("{path} is not in the package:\n{listing}"));
            assert!(line.starts_with(mode), "{line}");
        }
        let info = dpkg_deb(&["-I"], &package);
        assert!(info.contains("Package: crmonban"), "{info}");
        assert!(
            info.contains("Depends: ") && info.contains("nftables"),
            "{info}"
        );
        let control = tempfile::tempdir().unwrap();
        let out = Command::new("dpkg-deb")
            .arg("-e")
            .arg(&package)
            .arg(control.path())
            .status()
            .unwrap();
        assert!(out.success());
        let read = |name: &str| {
            std::fs::read_to_string(control.path().join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert_eq!(read("conffiles").trim(), "/etc/crmonban/config.toml");
        let postinst = read("postinst");
        assert!(
            postinst.contains("groupadd --system crmonban"),
            "{postinst}"
        );
        assert!(postinst.contains("ReloadConfig"), "{postinst}");
        assert!(
            postinst.contains("deb-systemd-helper") || postinst.contains("systemctl"),
            "the unit is enabled by postinst:\n{postinst}"
        );
        let prerm = read("prerm");
        assert!(
            prerm.contains("deb-systemd-invoke stop") || prerm.contains("systemctl stop"),
            "prerm stops the daemon:\n{prerm}"
        );
        // Stripped: no symbol table left in either binary.
        let unpacked = tempfile::tempdir().unwrap();
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&package)
            .arg(unpacked.path())
            .status()
            .unwrap();
        assert!(out.success());
        for binary in ["usr/sbin/crmonband", "usr/bin/crmonctl"] {
            let sections = Command::new("readelf")
                .arg("-S")
                .arg(unpacked.path().join(binary))
                .output()
                .expect("readelf (binutils)");
            let text = String::from_utf8_lossy(&sections.stdout);
            assert!(text.contains(".text"), "{text}");
            assert!(
                !text.contains(".symtab"),
                "{binary} is not stripped:\n{text}"
            );
        }
    }
}
