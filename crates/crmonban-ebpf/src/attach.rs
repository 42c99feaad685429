//! Putting the program on interfaces and taking it off: one BPF link per interface (kernel
//! 5.9+), native (driver) mode first and generic (skb) mode when the driver has no XDP support,
//! and what is attached to an interface read back (`bpf_xdp_query`).
//!
//! A link lives exactly as long as its file descriptor: dropping the [`Attachment`] detaches
//! the program, and so does the kernel when the daemon dies, kill -9 included, because the
//! link is never pinned. Nothing of ours is ever left running on an interface. What an older
//! attach through netlink left behind (our program's name, no link) is taken off at start;
//! another program's XDP is never replaced.

use std::ffi::CStr;
use std::fmt;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use libbpf_rs::libbpf_sys;

use crate::EbpfError;

/// The program's name in the kernel (`bpftool prog` shows it; truncated to 15 bytes there).
pub const PROGRAM_NAME: &str = "crmonban_xdp";

/// How XDP runs on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XdpMode {
    /// In the driver, before an skb exists: the fast path proper.
    Native,
    /// In the kernel's generic hook, after the skb is allocated: works on every interface,
    /// slower than native, still before the IP stack and nftables.
    Generic,
    /// On the network card itself.
    Offloaded,
}

impl XdpMode {
    /// `"native"`, `"generic"` or `"offloaded"`.
    pub fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
            XdpMode::Offloaded => "offloaded",
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which mode to ask for (`[ebpf] xdp_mode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ModeChoice {
    /// Native, and generic when the driver refuses native (reported at warn with the reason).
    #[default]
    Auto,
    /// Native only: an interface whose driver has no XDP is an error.
    Native,
    /// Generic only.
    Generic,
}

/// The program attached to one interface; dropping it detaches the program.
#[derive(Debug)]
pub struct Attachment {
    /// The interface's name.
    pub interface: String,
    /// The mode the kernel reports after attaching.
    pub mode: XdpMode,
    /// Why native mode was refused, when [`ModeChoice::Auto`] fell back to generic.
    pub fallback: Option<String>,
    _link: OwnedFd,
}

/// An XDP program found on an interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttachedProgram {
    /// The program's id (`bpftool prog show id N`).
    pub id: u32,
    /// Its name.
    pub name: String,
    /// The mode it runs in.
    pub mode: XdpMode,
}

/// The index of `interface`.
pub(crate) fn ifindex(interface: &str) -> Result<u32, EbpfError> {
    nix::net::if_::if_nametoindex(interface).map_err(|e| EbpfError::Interface {
        interface: interface.to_owned(),
        reason: format!("no such interface in this network namespace ({e})"),
    })
}

/// What XDP program runs on `interface`, if any.
pub fn attached(interface: &str) -> Result<Option<AttachedProgram>, EbpfError> {
    query(ifindex(interface)?, interface)
}

fn query(ifindex: u32, interface: &str) -> Result<Option<AttachedProgram>, EbpfError> {
    // SAFETY: an all-zero bpf_xdp_query_opts is valid input once `sz` is set.
    let mut opts: libbpf_sys::bpf_xdp_query_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_xdp_query_opts>() as _;
    // SAFETY: `opts` is a valid, sized options struct that outlives the call.
    let rc = unsafe { libbpf_sys::bpf_xdp_query(ifindex as i32, 0, &mut opts) };
    if rc < 0 {
        return Err(EbpfError::Interface {
            interface: interface.to_owned(),
            reason: format!(
                "cannot query its XDP program: {}",
                std::io::Error::from_raw_os_error(-rc)
            ),
        });
    }
    let (id, mode) = match u32::from(opts.attach_mode) {
        libbpf_sys::XDP_ATTACHED_DRV => (opts.drv_prog_id, XdpMode::Native),
        libbpf_sys::XDP_ATTACHED_SKB => (opts.skb_prog_id, XdpMode::Generic),
        libbpf_sys::XDP_ATTACHED_HW => (opts.hw_prog_id, XdpMode::Offloaded),
        libbpf_sys::XDP_ATTACHED_MULTI => (opts.drv_prog_id, XdpMode::Native),
        _ => return Ok(None),
    };
    let id = if id == 0 { opts.prog_id } else { id };
    Ok(Some(AttachedProgram {
        id,
        name: program_name(id).unwrap_or_default(),
        mode,
    }))
}

/// The name of the loaded program `id`, if it can be read.
fn program_name(id: u32) -> Option<String> {
    // SAFETY: plain syscall wrapper; a negative result is an error code.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) };
    if fd < 0 {
        return None;
    }
    // SAFETY: `fd` was just returned to us and is owned from here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: an all-zero bpf_prog_info is what the kernel expects to fill.
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` and `len` are valid for writes and describe each other.
    let rc = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd.as_raw_fd(), &mut info, &mut len) };
    if rc < 0 {
        return None;
    }
    // SAFETY: the kernel NUL-terminates the name within its 16 bytes.
    let name = unsafe { CStr::from_ptr(info.name.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// Attaches `program` to `interface` through a link, after taking off an orphan of ours.
pub(crate) fn attach(
    program: BorrowedFd<'_>,
    interface: &str,
    choice: ModeChoice,
) -> Result<Attachment, EbpfError> {
    let ifindex = ifindex(interface)?;
    clear_orphan(ifindex, interface)?;
    let (link, fallback) = match choice {
        ModeChoice::Native => (link(program, ifindex, interface, XdpMode::Native)?, None),
        ModeChoice::Generic => (link(program, ifindex, interface, XdpMode::Generic)?, None),
        ModeChoice::Auto => match link(program, ifindex, interface, XdpMode::Native) {
            Ok(link) => (link, None),
            Err(native) => {
                let link = link(program, ifindex, interface, XdpMode::Generic)?;
                (link, Some(native.to_string()))
            }
        },
    };
    let mode = query(ifindex, interface)?
        .map(|p| p.mode)
        .ok_or_else(|| EbpfError::Interface {
            interface: interface.to_owned(),
            reason: "the link was made but the kernel reports no XDP program".to_owned(),
        })?;
    Ok(Attachment {
        interface: interface.to_owned(),
        mode,
        fallback,
        _link: link,
    })
}

fn link(
    program: BorrowedFd<'_>,
    ifindex: u32,
    interface: &str,
    mode: XdpMode,
) -> Result<OwnedFd, EbpfError> {
    // SAFETY: an all-zero bpf_link_create_opts is valid input once `sz` is set.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = match mode {
        XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
        XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        XdpMode::Offloaded => libbpf_sys::XDP_FLAGS_HW_MODE,
    };
    // SAFETY: `opts` is valid for the call; the result is a new descriptor or an error code.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(
            program.as_raw_fd(),
            ifindex as i32,
            libbpf_sys::BPF_XDP,
            &opts,
        )
    };
    if fd < 0 {
        let errno = -fd;
        let hint = match errno {
            libc::EBUSY | libc::EEXIST => {
                " (another XDP program is attached; crmonban does not replace it)"
            }
            libc::EOPNOTSUPP => " (the driver has no XDP support in this mode)",
            libc::EINVAL if mode == XdpMode::Native => " (the driver refuses native XDP)",
            _ => "",
        };
        return Err(EbpfError::Interface {
            interface: interface.to_owned(),
            reason: format!(
                "attaching in {mode} mode: {}{hint}",
                std::io::Error::from_raw_os_error(errno)
            ),
        });
    }
    // SAFETY: a fresh descriptor the kernel just returned (O_CLOEXEC, as every BPF fd).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Takes off a program of ours attached without a link (by an older attach through netlink);
/// refuses when another program, or a live link of another crmonban, holds the interface.
fn clear_orphan(ifindex: u32, interface: &str) -> Result<(), EbpfError> {
    let Some(found) = query(ifindex, interface)? else {
        return Ok(());
    };
    let busy = |why: &str| EbpfError::Interface {
        interface: interface.to_owned(),
        reason: format!(
            "XDP program {:?} (id {}, {}) is already attached{why}; crmonban does not replace \
             another XDP program (nftables still enforces every ban)",
            found.name, found.id, found.mode
        ),
    };
    if found.name != PROGRAM_NAME {
        return Err(busy(""));
    }
    let flags = match found.mode {
        XdpMode::Native => libbpf_sys::XDP_FLAGS_DRV_MODE,
        XdpMode::Generic => libbpf_sys::XDP_FLAGS_SKB_MODE,
        XdpMode::Offloaded => libbpf_sys::XDP_FLAGS_HW_MODE,
    };
    // SAFETY: detaching by interface and mode; a null options pointer is allowed.
    let rc = unsafe { libbpf_sys::bpf_xdp_detach(ifindex as i32, flags, std::ptr::null()) };
    if rc < 0 {
        // A link holds it: another crmonband is running on this interface.
        return Err(busy(" through a link (another crmonband running?)"));
    }
    tracing::warn!(
        interface,
        id = found.id,
        "XDP: took off an orphaned crmonban program left attached without a link"
    );
    Ok(())
}
