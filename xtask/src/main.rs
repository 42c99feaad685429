//! `cargo xtask`: the project's own build driver. It owns what Cargo alone cannot do: install
//! the Debian packages the build and the privileged tests need (only when missing), run the
//! whole suite as root, run the daemon for a fresh machine, and run the benchmarks into
//! docs/BENCHMARKS.md.
//!
//! - `cargo xtask test [-- <cargo test args>]`  packages, build, every test (root_* included)
//! - `cargo xtask run [-- <crmonband args>]`     packages, release build, `crmonband init` as root
//! - `cargo xtask bench`                          benchmarks (root), written to docs/BENCHMARKS.md
//! - `cargo xtask deps`                           only install missing packages

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod bench;

/// Debian packages, and the file that proves each is installed (cheaper than dpkg-query, and
/// true also where the file came from elsewhere).
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("nftables", "/usr/sbin/nft"),
    ("libnftables-dev", "/usr/include/nftables/libnftables.h"),
    ("pkg-config", "/usr/bin/pkg-config"),
    ("iproute2", "/usr/bin/ip"),
    ("procps", "/usr/sbin/sysctl"),
    ("dbus", "/usr/bin/dbus-daemon"),
];

const RUN_PACKAGES: &[(&str, &str)] = &[
    ("nftables", "/usr/sbin/nft"),
    ("libnftables-dev", "/usr/include/nftables/libnftables.h"),
    ("dbus", "/usr/bin/dbus-daemon"),
];

fn main() -> ExitCode {
    match run_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run_main() -> Result<ExitCode> {
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let rest: Vec<String> = args.skip_while(|a| a == "--").collect();
    match command.as_str() {
        "test" => test(&rest),
        "run" => run_daemon(&rest),
        "bench" => bench::run(&workspace_root()),
        "deps" => {
            install_missing(TEST_PACKAGES)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <test|run|bench|deps> [-- args]\n\
                 \n  test   install missing packages, build, run every test including root_*\
                 \n  run    install missing packages, build release, run crmonband (default: init) as root\
                 \n  bench  run the benchmarks (root) and write docs/BENCHMARKS.md\
                 \n  deps   install missing Debian packages only"
            );
            Ok(ExitCode::from(2))
        }
    }
}

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

pub(crate) fn require_root(what: &str) -> Result<()> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .context("running id -u")?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        bail!(
            "{what} needs root (network namespaces, nftables); run it as root, e.g. sudo -E cargo xtask {what}"
        );
    }
    Ok(())
}

/// apt-get installs whatever of `packages` is missing; nothing when all are there.
fn install_missing(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(_, proof)| !Path::new(proof).exists())
        .map(|(name, _)| *name)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    require_root("install packages")?;
    eprintln!("xtask: installing {}", missing.join(" "));
    status(Command::new("apt-get").arg("update").arg("-q"))?;
    status(
        Command::new("apt-get")
            .args(["install", "-y", "-q", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )
}

pub(crate) fn status(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let st = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !st.success() {
        bail!("{shown} failed ({st})");
    }
    Ok(())
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(workspace_root());
    cmd
}

fn test(extra: &[String]) -> Result<ExitCode> {
    install_missing(TEST_PACKAGES)?;
    require_root("test")?;
    status(cargo().args(["build", "--workspace", "--all-targets", "--locked"]))?;
    // One test binary at a time keeps the namespaces' timing checks honest on 2 cores.
    status(
        cargo()
            .args(["test", "--workspace", "--locked", "--no-fail-fast"])
            .args(extra),
    )?;
    Ok(ExitCode::SUCCESS)
}

fn run_daemon(extra: &[String]) -> Result<ExitCode> {
    install_missing(RUN_PACKAGES)?;
    require_root("run")?;
    status(cargo().args(["build", "--release", "--locked", "-p", "crmonband"]))?;
    let daemon = workspace_root().join("target/release/crmonband");
    // Until the daemon lands, the main job prepares the machine: `init` ensures the nftables
    // layout and the database and prints what it did.
    let args: Vec<String> = if extra.is_empty() {
        vec!["init".into()]
    } else {
        extra.to_vec()
    };
    eprintln!("xtask: {} {}", daemon.display(), args.join(" "));
    let st = Command::new(&daemon)
        .args(&args)
        .status()
        .with_context(|| format!("cannot start {}", daemon.display()))?;
    Ok(ExitCode::from(st.code().unwrap_or(1).clamp(0, 255) as u8))
}
