//! The BPF side: the minimal drop-all program and its link, our program's descriptor, and the
//! kernel's own timing of programs (run-time statistics, BPF_PROG_TEST_RUN).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crmonban_ebpf::{XdpFastPath, XdpMode};
use libbpf_rs::libbpf_sys;

/// Runs per BPF_PROG_TEST_RUN call; the kernel returns the average time of one run.
pub const TEST_RUNS: i32 = 1_000_000;

/// The minimal XDP program: `r0 = XDP_DROP; exit`.
pub fn load_drop_all() -> OwnedFd {
    // SAFETY: bpf_insn is plain data; all-zero registers (r0) and offsets are what we want.
    let mut mov: libbpf_sys::bpf_insn = unsafe { std::mem::zeroed() };
    mov.code = (libbpf_sys::BPF_ALU64 | libbpf_sys::BPF_MOV | libbpf_sys::BPF_K) as u8;
    mov.imm = libbpf_sys::XDP_DROP as i32;
    // SAFETY: as above.
    let mut exit: libbpf_sys::bpf_insn = unsafe { std::mem::zeroed() };
    exit.code = (libbpf_sys::BPF_JMP | libbpf_sys::BPF_EXIT) as u8;
    let insns = [mov, exit];
    // SAFETY: the C strings and the instructions outlive the call; null options are allowed.
    let fd = unsafe {
        libbpf_sys::bpf_prog_load(
            libbpf_sys::BPF_PROG_TYPE_XDP,
            c"xdp_drop_all".as_ptr(),
            c"GPL".as_ptr(),
            insns.as_ptr(),
            insns.len() as _,
            std::ptr::null_mut(),
        )
    };
    assert!(
        fd >= 0,
        "loading the minimal XDP program: {}",
        std::io::Error::from_raw_os_error(-fd)
    );
    // SAFETY: a fresh descriptor, owned from here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// Attaches `program` to `interface` (of the calling thread's namespace) in native mode
/// through a BPF link, as crmonban-ebpf attaches its own; closing the link detaches it.
pub fn link_native(program: &OwnedFd, interface: &str) -> OwnedFd {
    let ifindex = nix::net::if_::if_nametoindex(interface).expect("receiver's interface");
    // SAFETY: an all-zero bpf_link_create_opts is valid once `sz` is set.
    let mut opts: libbpf_sys::bpf_link_create_opts = unsafe { std::mem::zeroed() };
    opts.sz = std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _;
    opts.flags = libbpf_sys::XDP_FLAGS_DRV_MODE;
    // SAFETY: `opts` outlives the call; the result is a new descriptor or an error code.
    let fd = unsafe {
        libbpf_sys::bpf_link_create(
            program.as_raw_fd(),
            ifindex as i32,
            libbpf_sys::BPF_XDP,
            &opts,
        )
    };
    assert!(
        fd >= 0,
        "attaching the minimal XDP program to {interface}: {}",
        std::io::Error::from_raw_os_error(-fd)
    );
    // SAFETY: a fresh descriptor, owned from here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `(run_time_ns, run_cnt)` of a program, counted while BPF run-time statistics are on.
pub fn run_stats(program: &OwnedFd) -> (u64, u64) {
    // SAFETY: an all-zero bpf_prog_info is what the kernel fills.
    let mut info: libbpf_sys::bpf_prog_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` and `len` are valid for writes and describe each other.
    let rc =
        unsafe { libbpf_sys::bpf_prog_get_info_by_fd(program.as_raw_fd(), &mut info, &mut len) };
    assert_eq!(
        rc,
        0,
        "bpf_prog_get_info_by_fd: {}",
        std::io::Error::from_raw_os_error(-rc)
    );
    (info.run_time_ns, info.run_cnt)
}

/// Nanoseconds of one run of `program` over `frame` (BPF_PROG_TEST_RUN: the program alone, in
/// a loop in the kernel, the better of two calls), and its verdict.
pub fn test_run(program: &OwnedFd, frame: &[u8]) -> (u32, u32) {
    let once = || {
        let mut opts = libbpf_sys::bpf_test_run_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_test_run_opts>() as _,
            data_in: frame.as_ptr().cast(),
            data_size_in: frame.len() as u32,
            repeat: TEST_RUNS,
            ..Default::default()
        };
        // SAFETY: `opts` and the frame it points at outlive the call; no output buffers.
        let rc = unsafe { libbpf_sys::bpf_prog_test_run_opts(program.as_raw_fd(), &mut opts) };
        assert_eq!(
            rc,
            0,
            "BPF_PROG_TEST_RUN: {}",
            std::io::Error::from_raw_os_error(-rc)
        );
        (opts.duration, opts.retval)
    };
    let (first, second) = (once(), once());
    assert_eq!(first.1, second.1, "the verdict changed between runs");
    (first.0.min(second.0), first.1)
}

/// The program attached to `interface` (of the calling thread's namespace), by id.
pub fn attached_program(interface: &str, mode: XdpMode) -> OwnedFd {
    let found = crmonban_ebpf::attached(interface)
        .expect("query XDP")
        .expect("an XDP program attached");
    assert_eq!(found.mode, mode, "{found:?}");
    // SAFETY: plain syscall wrapper; a negative result is an error code.
    let fd = unsafe { libbpf_sys::bpf_prog_get_fd_by_id(found.id) };
    assert!(
        fd >= 0,
        "program {}: {}",
        found.id,
        std::io::Error::from_raw_os_error(-fd)
    );
    // SAFETY: a fresh descriptor, owned from here.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// A descriptor of `xdp`'s program, attached to `interface` for a moment to find it (the crate
/// hands out none).
pub fn program_of(xdp: &mut XdpFastPath, interface: &str) -> OwnedFd {
    let failures = xdp.attach();
    assert!(failures.is_empty(), "{failures:?}");
    let program = attached_program(interface, XdpMode::Native);
    xdp.detach();
    program
}
