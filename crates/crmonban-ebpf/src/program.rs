//! Loading the program from its skeleton: map sizes from `[ebpf] max_entries`, the maps pinned
//! (or the pins of an earlier run reused) when asked, libbpf's messages captured so that a
//! refused load carries the verifier's log. After loading only owned descriptors remain: the
//! program (to attach it) and its three maps.

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{MapCore, MapHandle, OpenObject, PrintLevel};

use crate::EbpfError;
use crate::maps::BanMaps;
use crate::skel::{CrmonbanSkelBuilder, OpenCrmonbanSkel};

/// The names of the maps, as pinned under the pin directory.
pub const MAP_NAMES: [&str; 5] = [
    "blocked_v4",
    "blocked_v6",
    "blocked_v4_net",
    "blocked_v6_net",
    "drops",
];

/// BPF_FS_MAGIC: the file system pins must live on.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// The longest verifier log an error carries (its end, where the reason is).
const LOG_TAIL: usize = 8 * 1024;

/// The program loaded, not yet attached.
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) program: OwnedFd,
    pub(crate) maps: BanMaps,
    /// True when the maps came from pins of an earlier run (they may hold stale entries).
    pub(crate) reused_pins: bool,
}

/// libbpf's messages since the last [`take_log`], from every thread; libbpf's print callback
/// is process-wide.
static LOG: Mutex<String> = Mutex::new(String::new());

fn capture(level: PrintLevel, message: String) {
    if level == PrintLevel::Warn {
        tracing::debug!(target: "libbpf", "{}", message.trim_end());
    }
    let mut log = LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    log.push_str(&message);
    if log.len() > 4 * LOG_TAIL {
        let cut = log.len() - LOG_TAIL;
        let cut = (cut..log.len())
            .find(|i| log.is_char_boundary(*i))
            .unwrap_or(cut);
        log.drain(..cut);
    }
}

fn take_log() -> String {
    let mut log = LOG
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let text = std::mem::take(&mut *log);
    if text.len() <= LOG_TAIL {
        return text;
    }
    let start = text.len() - LOG_TAIL;
    let start = (start..text.len())
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(start);
    format!("…{}", &text[start..])
}

/// Loads the program with maps of `max_entries`, pinned under `pin` when given.
pub(crate) fn load(max_entries: u32, pin: Option<&Path>) -> Result<Loaded, EbpfError> {
    load_with(max_entries, pin, |_| Ok(()))
}

/// [`load`], with `tweak` applied to the opened skeleton before loading (tests make the
/// verifier refuse it this way).
pub(crate) fn load_with(
    max_entries: u32,
    pin: Option<&Path>,
    tweak: impl FnOnce(&mut OpenCrmonbanSkel<'_>) -> Result<(), libbpf_rs::Error>,
) -> Result<Loaded, EbpfError> {
    if max_entries == 0 {
        return Err(EbpfError::Invalid(
            "max_entries must be at least 1".to_owned(),
        ));
    }
    let reused_pins = match pin {
        Some(dir) => prepare_pin_dir(dir, max_entries)?,
        None => false,
    };
    libbpf_rs::set_print(Some((PrintLevel::Debug, capture)));
    take_log();
    let mut storage = MaybeUninit::<OpenObject>::uninit();
    let mut open = CrmonbanSkelBuilder::default()
        .open(&mut storage)
        .map_err(|e| EbpfError::Load {
            message: format!("opening the embedded object: {e:#}"),
            log: take_log(),
        })?;
    let setup = (|| {
        let maps = &mut open.maps;
        maps.blocked_v4.set_max_entries(max_entries)?;
        maps.blocked_v6.set_max_entries(max_entries)?;
        maps.blocked_v4_net.set_max_entries(max_entries)?;
        maps.blocked_v6_net.set_max_entries(max_entries)?;
        if let Some(dir) = pin {
            maps.blocked_v4.set_pin_path(dir.join(MAP_NAMES[0]))?;
            maps.blocked_v6.set_pin_path(dir.join(MAP_NAMES[1]))?;
            maps.blocked_v4_net.set_pin_path(dir.join(MAP_NAMES[2]))?;
            maps.blocked_v6_net.set_pin_path(dir.join(MAP_NAMES[3]))?;
            maps.drops.set_pin_path(dir.join(MAP_NAMES[4]))?;
        }
        Ok(())
    })();
    setup
        .and_then(|()| tweak(&mut open))
        .map_err(|e: libbpf_rs::Error| EbpfError::Load {
            message: format!("preparing the maps: {e:#}"),
            log: take_log(),
        })?;
    let skel = open.load().map_err(|e| EbpfError::Load {
        message: format!("{e:#}"),
        log: take_log(),
    })?;
    take_log();
    let handle = |map: &libbpf_rs::MapMut<'_>| {
        MapHandle::try_from(map).map_err(|e| EbpfError::Kernel(format!("duplicating a map: {e}")))
    };
    let maps = BanMaps {
        v4: handle(&skel.maps.blocked_v4)?,
        v6: handle(&skel.maps.blocked_v6)?,
        v4_net: handle(&skel.maps.blocked_v4_net)?,
        v6_net: handle(&skel.maps.blocked_v6_net)?,
        drops: handle(&skel.maps.drops)?,
    };
    let program = skel
        .progs
        .crmonban_xdp
        .as_fd()
        .try_clone_to_owned()
        .map_err(|e| EbpfError::Kernel(format!("duplicating the program: {e}")))?;
    Ok(Loaded {
        program,
        maps,
        reused_pins,
    })
}

/// Makes `dir` on the BPF file system, and removes pinned maps of an earlier run that the
/// new program cannot reuse (another size): true when compatible pins are left to reuse.
fn prepare_pin_dir(dir: &Path, max_entries: u32) -> Result<bool, EbpfError> {
    let pin_error = |reason: String| EbpfError::Pin {
        path: dir.to_path_buf(),
        reason,
    };
    let parent = dir
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .ok_or_else(|| pin_error("not an absolute path".to_owned()))?;
    let fs = nix::sys::statfs::statfs(parent)
        .map_err(|e| pin_error(format!("{}: {e}", parent.display())))?;
    if fs.filesystem_type().0 as i64 != BPF_FS_MAGIC {
        return Err(pin_error(format!(
            "{} is not on a BPF file system (mount -t bpf bpf {})",
            parent.display(),
            parent.display()
        )));
    }
    match std::fs::create_dir(dir) {
        Ok(()) => return Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(pin_error(format!("creating the directory: {e}"))),
    }
    let mut reusable = true;
    let mut any = false;
    for name in MAP_NAMES {
        let path = dir.join(name);
        if !path.exists() {
            reusable = false;
            continue;
        }
        any = true;
        let fits = MapHandle::from_pinned_path(&path)
            .map(|m| name == "drops" || m.max_entries() == max_entries)
            .unwrap_or(false);
        reusable &= fits;
    }
    if any && !reusable {
        tracing::warn!(
            path = %dir.display(),
            "XDP: the maps pinned by an earlier run do not fit (max_entries changed, or one is \
             missing); they are replaced and refilled from the bans in force"
        );
        remove_pins(dir)?;
        return Ok(false);
    }
    Ok(any)
}

/// Removes the pinned maps of ours under `dir`, then `dir` when empty. Nothing to remove is
/// not an error; other files in `dir` are left alone.
pub fn remove_pins(dir: &Path) -> Result<bool, EbpfError> {
    let mut removed = false;
    for name in MAP_NAMES {
        match std::fs::remove_file(dir.join(name)) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(EbpfError::Pin {
                    path: dir.join(name),
                    reason: format!("removing: {e}"),
                });
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
    Ok(removed)
}

/// The pin directory's map paths, for documentation and tests.
pub fn pin_paths(dir: &Path) -> [PathBuf; 5] {
    MAP_NAMES.map(|name| dir.join(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_refused_program_shows_the_verifier_log() {
        crmonban_testutil::require_root();
        // As a socket filter the program's context is a __sk_buff, not an xdp_md: what it
        // takes for packet pointers are plain numbers, and the verifier refuses the reads.
        let refused = load_with(16, None, |open| {
            open.progs
                .crmonban_xdp
                .set_prog_type(libbpf_rs::ProgramType::SocketFilter);
            Ok(())
        });
        let error = match refused {
            Ok(loaded) => {
                panic!("the verifier accepted the program as a socket filter: {loaded:?}")
            }
            Err(error) => error,
        };
        let EbpfError::Load { message, log } = &error else {
            panic!("not a load error: {error:?}");
        };
        assert!(!message.is_empty());
        // The verifier's verdict on the first packet read, inside libbpf's load log.
        assert!(log.contains("-- BEGIN PROG LOAD LOG --"), "{log}");
        assert!(log.contains("invalid mem access 'scalar'"), "{log}");
        assert!(error.to_string().contains("verifier log"), "{error}");
    }
}
