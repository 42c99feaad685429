//! `cargo xtask`: the project's own build driver. It owns what Cargo alone cannot do: install
//! the Debian packages the build and the privileged tests need (only when missing), run the
//! whole suite as root, run the daemon for a fresh machine, and run the benchmarks into
//! docs/BENCHMARKS.md.
//!
//! - `cargo xtask test [-- <cargo test args>]`  packages, build, every test (root_* included),
//!   then the engine's embedding examples
//! - `cargo xtask run [-- <crmonband args>]`     packages, release build, `crmonband start -f` as root
//! - `cargo xtask install [-- --root DIR]`       release build installed to the unit's paths (install.rs)
//! - `cargo xtask bench`                          benchmarks (root), written to docs/BENCHMARKS.md
//! - `cargo xtask bpf`                            compile bpf/crmonban.bpf.c (clang) into the eBPF
//!   crate's libbpf-rs skeleton, with the source's hash
//! - `cargo xtask dbus-xml`                       regenerate dbus/org.crmonban.Daemon.xml from code
//! - `cargo xtask tidy`                           layers, binaries through the engine, file sizes
//! - `cargo xtask deps`                           only install missing packages
//! - `cargo xtask deb`                            the Debian package (deb.rs)
//! - `cargo xtask world-map`                      regenerate the HTML report's map from
//!   world-atlas (npm) and iso-codes (worldmap.rs)

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

mod bench;
mod bpf;
mod deb;
#[cfg(test)]
mod deb_boot_tests;
mod install;
mod tidy;
mod worldmap;

/// Debian packages, and the file that proves each is installed (cheaper than dpkg-query, and
/// true also where the file came from elsewhere).
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("nftables", "/usr/sbin/nft"),
    ("pkg-config", "/usr/bin/pkg-config"),
    // libbpf (vendored in libbpf-sys, built by cc) links libelf and zlib: the eBPF crate.
    ("libelf-dev", "/usr/include/libelf.h"),
    ("zlib1g-dev", "/usr/include/zlib.h"),
    // The XDP tests read the pinned maps back with bpftool.
    ("bpftool", "/usr/sbin/bpftool"),
    ("iproute2", "/usr/bin/ip"),
    ("procps", "/usr/sbin/sysctl"),
    ("dbus", "/usr/bin/dbus-daemon"),
    // The detection end-to-end tests attack a real sshd with wrong passwords.
    ("openssh-server", "/usr/sbin/sshd"),
    // A real dovecot, attacked in a namespace, for the mail detection test.
    ("dovecot-imapd", "/usr/sbin/dovecot"),
    ("sshpass", "/usr/bin/sshpass"),
    // The journal source is tested against a real systemd-journald (in a mount namespace of
    // its own); nsenter, unshare and logger come with Debian's essential util-linux/bsdutils.
    ("systemd", "/lib/systemd/systemd-journald"),
    // SIEM export is checked against a real rsyslog (RFC 5424 parser, mmjsonparse,
    // mmpstrucdata; TLS through its OpenSSL stream driver), with certificates made by openssl.
    ("rsyslog", "/usr/sbin/rsyslogd"),
    (
        "rsyslog-openssl",
        "/usr/share/doc/rsyslog-openssl/copyright",
    ),
    ("openssl", "/usr/bin/openssl"),
    // The metrics endpoint's output must pass Debian's `promtool check metrics`.
    ("prometheus", "/usr/bin/promtool"),
    // The package must pass Debian's own checker.
    ("lintian", "/usr/bin/lintian"),
    // The package is installed in a pristine Debian 12 made by debootstrap and booted under
    // systemd with systemd-nspawn.
    ("debootstrap", "/usr/sbin/debootstrap"),
    ("systemd-container", "/usr/bin/systemd-nspawn"),
    // The fleet shares bans through PostgreSQL: the tests start a real server (Debian's 15).
    ("postgresql", "/usr/lib/postgresql/15/bin/postgres"),
    // crmonctl report --html is opened in headless Chromium: it must render without errors.
    ("chromium", "/usr/bin/chromium"),
    // import-fail2ban --bans is checked against a database written by a real fail2ban-server:
    // Debian's package unpacked (not installed), run with Debian's python3.
    ("python3", "/usr/bin/python3"),
];

pub(crate) const RUN_PACKAGES: &[(&str, &str)] = &[
    ("nftables", "/usr/sbin/nft"),
    ("pkg-config", "/usr/bin/pkg-config"),
    ("libelf-dev", "/usr/include/libelf.h"),
    ("zlib1g-dev", "/usr/include/zlib.h"),
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
        "install" => install::run(&rest),
        "deb" => deb::run(&workspace_root()),
        "bench" => bench::run(&workspace_root()),
        "bpf" => bpf::run(),
        "bpf-generate" => bpf::generate(&workspace_root()),
        "dbus-xml" => dbus_xml(),
        "tidy" => tidy::run(&workspace_root()),
        "world-map" => worldmap::run(&workspace_root(), &rest),
        "deps" => {
            install_missing(TEST_PACKAGES)?;
            Ok(ExitCode::SUCCESS)
        }
        _ => {
            eprintln!(
                "usage: cargo xtask <test|run|install|bench|bpf|dbus-xml|tidy|deps> [-- args]\n\
                 \n  test   install missing packages, build, run every test including root_*\
                 \n  run    install missing packages, build release, run crmonband start -f as root\
                 \n  install  build release and install to the paths the unit uses (--root DIR: stage)\
                 \n  bench  run the benchmarks (root) and write docs/BENCHMARKS.md\
                 \n  bpf    compile bpf/crmonban.bpf.c and regenerate the eBPF crate's skeleton\
                 \n  dbus-xml  regenerate dbus/org.crmonban.Daemon.xml from the interface code\
                 \n  tidy   check the crates' layers, binaries going through the engine, file sizes\
                 \n  deps   install missing Debian packages only\
                 \n  deb    build the Debian package (target/debian/crmonban_*.deb)\
                 \n  world-map  regenerate the HTML report's map (world-atlas via npm, iso-codes)"
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
pub(crate) fn install_missing(packages: &[(&str, &str)]) -> Result<()> {
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
    // Servers the tests start themselves (sshd, dovecot) must not start on the host when
    // their packages are installed: a policy-rc.d that refuses every start, for the install.
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists();
    if ours {
        std::fs::write(
            policy,
            "#!/bin/sh\n# crmonban xtask: no service starts while installing\nexit 101\n",
        )
        .context("writing /usr/sbin/policy-rc.d")?;
        std::fs::set_permissions(policy, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    }
    let installed = status(Command::new("apt-get").arg("update").arg("-q")).and_then(|()| {
        status(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    });
    if ours {
        let _ = std::fs::remove_file(policy);
    }
    installed
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
    require_root_mount_point()?;
    status(cargo().args(["build", "--workspace", "--all-targets", "--locked"]))?;
    // One test binary at a time keeps the namespaces' timing checks honest on 2 cores.
    status(
        cargo()
            .args(["test", "--workspace", "--locked", "--no-fail-fast"])
            .args(extra),
    )?;
    // The embedding examples run as a user of the library would run them; each asserts what
    // it shows (embed_nftables in a network namespace of its own).
    if extra.is_empty() {
        for example in ["custom_backend", "embed_nftables"] {
            status(cargo().args([
                "run",
                "--locked",
                "-q",
                "-p",
                "crmonban-engine",
                "--example",
                example,
            ]))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The privileged tests enter network namespaces with `ip netns exec` and start journald and
/// sshd in mount namespaces of their own; both change the propagation of `/`, which the kernel
/// refuses (EINVAL) when `/` is not a mount point: a root entered with a bare `chroot DIR`.
/// Say so once, plainly, instead of failing a hundred tests with "mount --make-rslave /".
fn require_root_mount_point() -> Result<()> {
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")?;
    // Field 5 is the mount point, relative to this process's root.
    if mountinfo
        .lines()
        .any(|line| line.split(' ').nth(4) == Some("/"))
    {
        return Ok(());
    }
    bail!(
        "the root directory is not a mount point (a chroot?): the privileged tests need one, \
         because `ip netns exec` and their mount namespaces change its propagation. Make the \
         new root a mount point before entering it: mount --bind DIR DIR (and mount /proc, \
         /sys and /dev inside), or use systemd-nspawn"
    )
}

fn run_daemon(extra: &[String]) -> Result<ExitCode> {
    install_missing(RUN_PACKAGES)?;
    require_root("run")?;
    ensure_system_bus()?;
    status(cargo().args(["build", "--release", "--locked", "-p", "crmonband"]))?;
    let daemon = workspace_root().join("target/release/crmonband");
    let args: Vec<String> = if extra.is_empty() {
        vec!["start".into(), "--foreground".into()]
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

/// Writes the introspection XML that `crmonband dbus-xml` generates from the zbus interface.
fn dbus_xml() -> Result<ExitCode> {
    let out = cargo()
        .args([
            "run",
            "--quiet",
            "--locked",
            "-p",
            "crmonband",
            "--",
            "dbus-xml",
        ])
        .output()
        .context("running crmonband dbus-xml")?;
    if !out.status.success() {
        bail!(
            "crmonband dbus-xml failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let path = workspace_root().join("dbus/org.crmonban.Daemon.xml");
    std::fs::write(&path, &out.stdout).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("xtask: wrote {}", path.display());
    Ok(ExitCode::SUCCESS)
}

/// Where the system bus reads extra policy files from.
const SYSTEM_POLICY_DIR: &str = "/usr/share/dbus-1/system.d";
const SYSTEM_BUS_SOCKET: &str = "/run/dbus/system_bus_socket";

/// Creates the system group `crmonban` (whose members the bus policy lets ban and unban) when it
/// does not exist yet, as a package's postinst would.
pub(crate) fn ensure_crmonban_group() -> Result<()> {
    let group_exists = Command::new("getent")
        .args(["group", "crmonban"])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !group_exists {
        status(Command::new("groupadd").args(["--system", "crmonban"]))?;
        eprintln!("xtask: created the system group crmonban (its members may ban and unban)");
    }
    Ok(())
}

/// Asks a running system bus to read its policy files again; false when no bus answered.
pub(crate) fn reload_system_bus() -> bool {
    Command::new("dbus-send")
        .args([
            "--system",
            "--type=method_call",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.ReloadConfig",
        ])
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs the bus policy (without it the system bus lets nobody own org.crmonban.Daemon),
/// and starts the system bus when none answers on its socket (containers and fresh machines
/// without systemd, or a bus that died), so that crmonctl reaches the daemon `cargo xtask run`
/// starts.
fn ensure_system_bus() -> Result<()> {
    // The policy names the group whose members may ban and unban; create it as a package would.
    ensure_crmonban_group()?;
    let policy = std::fs::read(workspace_root().join("dbus/org.crmonban.Daemon.conf"))
        .context("reading dbus/org.crmonban.Daemon.conf")?;
    let installed = Path::new(SYSTEM_POLICY_DIR).join("org.crmonban.Daemon.conf");
    let changed = std::fs::read(&installed).ok().as_deref() != Some(policy.as_slice());
    if changed {
        std::fs::create_dir_all(SYSTEM_POLICY_DIR)?;
        std::fs::write(&installed, &policy)
            .with_context(|| format!("writing {}", installed.display()))?;
        eprintln!("xtask: installed {}", installed.display());
    }
    if std::os::unix::net::UnixStream::connect(SYSTEM_BUS_SOCKET).is_ok() {
        if changed {
            // A running bus picks up the new policy on ReloadConfig.
            reload_system_bus();
        }
        return Ok(());
    }
    eprintln!("xtask: no system bus is running; starting dbus-daemon --system");
    // A bus that died leaves its socket and pid file behind, and dbus-daemon refuses to start
    // over a pid file: nobody answers on that socket, so both are stale.
    for stale in [SYSTEM_BUS_SOCKET, "/run/dbus/pid"] {
        if Path::new(stale).exists() {
            std::fs::remove_file(stale).with_context(|| format!("removing stale {stale}"))?;
            eprintln!("xtask: removed stale {stale}");
        }
    }
    std::fs::create_dir_all("/run/dbus")?;
    status(Command::new("dbus-uuidgen").arg("--ensure"))?;
    status(Command::new("dbus-daemon").args(["--system", "--fork"]))
}
