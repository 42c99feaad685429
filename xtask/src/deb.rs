//! `cargo xtask deb`: the Debian package. Release binaries first, then the manual pages and
//! shell completions each binary generates from its own command line (its hidden `assets DIR`)
//! under target/release/assets, the pages gzipped as Debian wants them, the Debian changelog (one
//! entry: the version, the commit, its date, and who built it), then `cargo deb --no-build` with
//! the metadata of bins/crmonband/Cargo.toml (cargo-deb is installed when missing). Prints the
//! path of the package.
//!
//! The Maintainer is whoever builds the package, named as Debian's own tools are told
//! (`DEBFULLNAME` and `DEBEMAIL`, as `dch` and `debuild` read them); without them, the
//! placeholder of the metadata (`crmonban developers <crmonban@localhost>`, which lintian
//! rightly calls bogus).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

/// The binaries packaged, each with the `assets` command that writes its pages.
const BINARIES: [&str; 2] = ["crmonband", "crmonctl"];

pub fn run(root: &Path) -> Result<ExitCode> {
    let package = build(root, maintainer_from_env().as_deref())?;
    println!("{}", package.display());
    Ok(ExitCode::SUCCESS)
}

/// The Maintainer Debian's tools would write: `DEBFULLNAME <DEBEMAIL>`, or `DEBEMAIL` when it
/// already holds both; `None` without `DEBEMAIL`.
fn maintainer_from_env() -> Option<String> {
    let email = std::env::var("DEBEMAIL")
        .ok()
        .filter(|e| !e.trim().is_empty())?;
    if email.contains('<') {
        return Some(email);
    }
    Some(match std::env::var("DEBFULLNAME") {
        Ok(name) if !name.trim().is_empty() => format!("{} <{}>", name.trim(), email.trim()),
        _ => email,
    })
}

/// The placeholder Maintainer of bins/crmonband/Cargo.toml.
const PLACEHOLDER_MAINTAINER: &str = "crmonban developers <crmonban@localhost>";

/// Builds the package (Maintainer `maintainer`, else the metadata's placeholder) and returns
/// its path.
pub fn build(root: &Path, maintainer: Option<&str>) -> Result<PathBuf> {
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
    let maintainer = maintainer.unwrap_or(PLACEHOLDER_MAINTAINER);
    write_changelog(root, &assets, maintainer)?;
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
        .args([
            "deb",
            "-p",
            "crmonband",
            "--no-build",
            "--strip",
            "--maintainer",
        ])
        .arg(maintainer)
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

/// target/release/assets/changelog: one entry for this build, in the format of
/// deb-changelog(5), dated by the commit (so that a rebuild of a commit gives the same file);
/// a source tree without git history is dated by `SOURCE_DATE_EPOCH`, else now.
fn write_changelog(root: &Path, assets: &Path, maintainer: &str) -> Result<()> {
    let output = |command: &mut Command| -> Option<String> {
        let out = command.output().ok()?;
        let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && !text.is_empty()).then_some(text)
    };
    let git = |args: &[&str]| output(Command::new("git").current_dir(root).args(args));
    let commit = git(&["rev-parse", "--short=12", "HEAD"]);
    // RFC 2822, as deb-changelog(5) wants it.
    let date = match (&commit, std::env::var("SOURCE_DATE_EPOCH")) {
        (Some(_), _) => git(&["log", "-1", "--format=%aD", "HEAD"]),
        (None, Ok(epoch)) => output(
            Command::new("date")
                .args(["-R", "-u", "-d"])
                .arg(format!("@{epoch}")),
        ),
        (None, Err(_)) => output(Command::new("date").args(["-R", "-u"])),
    }
    .context("no date for the changelog (git log or date -R)")?;
    let origin = commit.map_or_else(
        || "a source tree without git history".to_owned(),
        |commit| format!("commit {commit}"),
    );
    let version = env!("CARGO_PKG_VERSION");
    let text = format!(
        "crmonban ({version}-1) unstable; urgency=medium\n\n  \
         * Built from the crmonban sources at {origin} with cargo xtask deb.\n\n \
         -- {maintainer}  {date}\n"
    );
    std::fs::write(assets.join("changelog"), text)
        .with_context(|| format!("writing {}", assets.join("changelog").display()))
}

/// The package, built once for all the tests of this process.
#[cfg(test)]
pub(crate) fn built_package() -> PathBuf {
    static PACKAGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            // A builder named as Debian's tools are told, as an admin building it would be.
            build(
                &crate::workspace_root(),
                Some("crmonban test build <test-build@example.org>"),
            )
            .expect("cargo xtask deb")
        })
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

    #[test]
    fn a_source_tree_without_git_history_still_gets_a_changelog() {
        let tree = tempfile::tempdir().unwrap();
        write_changelog(tree.path(), tree.path(), "A Builder <builder@example.org>").unwrap();
        let text = std::fs::read_to_string(tree.path().join("changelog")).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            format!(
                "crmonban ({}-1) unstable; urgency=medium",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert_eq!(
            lines[2],
            "  * Built from the crmonban sources at a source tree without git history with \
             cargo xtask deb."
        );
        // " -- NAME <EMAIL>  Day, DD Mon YYYY HH:MM:SS +0000", as deb-changelog(5) has it.
        let trailer = lines[4]
            .strip_prefix(" -- A Builder <builder@example.org>  ")
            .unwrap_or_else(|| panic!("{text}"));
        assert!(
            trailer.ends_with(" +0000") && trailer.contains(", "),
            "{text}"
        );
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
        // Debian's own checker finds nothing to complain of (the overrides shipped with the
        // package, config.toml's mode 0600 and a first changelog entry closing no Debian bug,
        // say why).
        let lintian = Command::new("lintian")
            .args(["--tag-display-limit", "0"])
            .arg(&package)
            .output()
            .expect("lintian (cargo xtask deps installs it)");
        let findings = String::from_utf8_lossy(&lintian.stdout);
        let complaints: Vec<&str> = findings
            .lines()
            .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
            .collect();
        assert!(
            complaints.is_empty() && lintian.status.success(),
            "lintian:\n{findings}{}",
            String::from_utf8_lossy(&lintian.stderr)
        );
        let unpacked = tempfile::tempdir().unwrap();
        let out = Command::new("dpkg-deb")
            .arg("-x")
            .arg(&package)
            .arg(unpacked.path())
            .status()
            .unwrap();
        assert!(out.success());
        let changelog = Command::new("gzip")
            .arg("-dc")
            .arg(
                unpacked
                    .path()
                    .join("usr/share/doc/crmonban/changelog.Debian.gz"),
            )
            .output()
            .unwrap();
        assert!(changelog.status.success(), "no changelog.Debian.gz");
        let changelog = String::from_utf8_lossy(&changelog.stdout);
        assert!(
            changelog.starts_with(&format!(
                "crmonban ({}-1) unstable; urgency=medium",
                env!("CARGO_PKG_VERSION")
            )) && changelog.contains(" -- crmonban test build <test-build@example.org>  "),
            "{changelog}"
        );
        assert!(
            info.contains("Maintainer: crmonban test build <test-build@example.org>"),
            "{info}"
        );
        // Stripped: no symbol table left in either binary.
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
