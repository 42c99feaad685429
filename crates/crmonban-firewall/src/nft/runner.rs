//! The JSON path: how a batch reaches the kernel when it does not go over netlink — through
//! libnftables in this process (one long-lived context, no process start per batch; bulk
//! batches to a short-lived `nft` process) or through the `nft` binary reading the batch on
//! stdin, always as an nftables JSON document (see `json`).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::batch::Commands;
use crate::FirewallError;

/// Runs one batch (one transaction) and returns nft's JSON output, if any.
pub(crate) trait Runner: Send {
    /// `dry_run`: check the batch with the kernel, then abort it (`nft --check`).
    fn run(&mut self, commands: &Commands, dry_run: bool) -> Result<String, FirewallError>;
    fn describe(&self) -> String;
}

/// Batches with at least this many elements are bulk: sent as text to an `nft` process.
#[cfg(feature = "libnftables")]
pub(crate) const BULK_ELEMENTS: usize = 4096;

/// The `nft` binary: one process per batch (~2–5 ms each). The JSON transport when libnftables
/// is not compiled in or cannot be opened, and the bulk path beside it (see `LibRunner::run`).
/// The process runs in the calling thread's network namespace.
pub(crate) struct CliRunner {
    program: PathBuf,
}

impl CliRunner {
    pub(crate) fn new(program: PathBuf) -> CliRunner {
        CliRunner { program }
    }

    pub(crate) fn program(&self) -> &std::path::Path {
        &self.program
    }

    /// `nft` from PATH, if there is one (the bulk path beside libnftables).
    #[cfg(feature = "libnftables")]
    pub(crate) fn from_path() -> Option<CliRunner> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("nft"))
            .find(|candidate| candidate.is_file())
            .map(CliRunner::new)
    }

    /// One `nft -j` process reading the JSON document `input` on stdin.
    fn exec(&self, input: &str, dry_run: bool) -> Result<String, FirewallError> {
        let mut command = Command::new(&self.program);
        if dry_run {
            command.arg("--check");
        }
        let mut child = command
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                FirewallError::Unavailable(format!("cannot run {}: {e}", self.program.display()))
            })?;
        let mut stdin = child.stdin.take().expect("stdin was piped");
        // Write from a second thread: nft may start answering before it has read everything.
        let (output, written) = std::thread::scope(|scope| {
            let writer = scope.spawn(move || stdin.write_all(input.as_bytes()));
            let output = child.wait_with_output();
            (output, writer.join().unwrap_or(Ok(())))
        });
        let output = output.map_err(|e| {
            FirewallError::Unavailable(format!("{} failed: {e}", self.program.display()))
        })?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(FirewallError::from_nft_message(stderr.trim()));
        }
        written.map_err(|e| FirewallError::Unavailable(format!("writing to nft: {e}")))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Runner for CliRunner {
    fn run(&mut self, commands: &Commands, dry_run: bool) -> Result<String, FirewallError> {
        self.exec(&commands.to_json()?, dry_run)
    }

    fn describe(&self) -> String {
        format!("{} (one process per batch)", self.program().display())
    }
}

/// The JSON path of `Transport::Auto`, opened when first needed: netlink carries every change,
/// so most daemons never run JSON, and a libnftables context costs ~11 MB of heap as soon as it
/// is created. `open` makes the runner (libnftables, or the `nft` binary when that cannot be
/// opened) in the thread and network namespace of the first batch.
pub(crate) struct Lazy {
    open: fn() -> Box<dyn Runner>,
    runner: Option<Box<dyn Runner>>,
}

impl Lazy {
    pub(crate) fn new(open: fn() -> Box<dyn Runner>) -> Lazy {
        Lazy { open, runner: None }
    }
}

impl Runner for Lazy {
    fn run(&mut self, commands: &Commands, dry_run: bool) -> Result<String, FirewallError> {
        let open = self.open;
        self.runner.get_or_insert_with(open).run(commands, dry_run)
    }

    fn describe(&self) -> String {
        match &self.runner {
            Some(runner) => runner.describe(),
            None => "libnftables or the nft binary (opened when first needed)".into(),
        }
    }
}

#[cfg(feature = "libnftables")]
pub(crate) use lib::LibRunner;

#[cfg(feature = "libnftables")]
mod lib {
    //! A hand-written binding of the nine libnftables functions we call, looked up in
    //! `libnftables.so.1` when JSON is first needed (`dlopen`), not linked: most daemons never
    //! run JSON, and a linked libnftables loads six libraries into every process at start
    //! (~0.65 MB resident: libnftables, libnftnl, libmnl, libgmp, libjansson, libxtables); the
    //! daemon also runs where the library is missing (JSON then goes to the `nft` binary), and
    //! the build needs no libnftables headers. The libnftables1-sys crate would need bindgen
    //! and libclang at build time for the same nine declarations.
    use std::ffi::{CStr, CString, c_char, c_int, c_uint, c_void};
    use std::sync::OnceLock;

    use super::{BULK_ELEMENTS, CliRunner, Commands, Runner};
    use crate::FirewallError;

    #[repr(C)]
    struct NftCtx {
        _opaque: [u8; 0],
    }

    const NFT_CTX_DEFAULT: u32 = 0;
    const NFT_CTX_OUTPUT_JSON: c_uint = 1 << 4;

    /// The library's file name: its soname since nftables 0.9 (Debian's libnftables1).
    const LIBRARY: &CStr = c"libnftables.so.1";

    /// The functions we call, from the library opened once for the life of the process.
    struct Api {
        ctx_new: unsafe extern "C" fn(u32) -> *mut NftCtx,
        ctx_free: unsafe extern "C" fn(*mut NftCtx),
        output_set_flags: unsafe extern "C" fn(*mut NftCtx, c_uint),
        buffer_output: unsafe extern "C" fn(*mut NftCtx) -> c_int,
        buffer_error: unsafe extern "C" fn(*mut NftCtx) -> c_int,
        get_output_buffer: unsafe extern "C" fn(*mut NftCtx) -> *const c_char,
        get_error_buffer: unsafe extern "C" fn(*mut NftCtx) -> *const c_char,
        run_cmd_from_buffer: unsafe extern "C" fn(*mut NftCtx, *const c_char) -> c_int,
        set_dry_run: unsafe extern "C" fn(*mut NftCtx, bool),
    }

    /// The last `dlerror` text, or `fallback` when there is none.
    fn dl_error(fallback: &str) -> String {
        // SAFETY: dlerror returns NULL or a NUL-terminated string valid until the next dl* call
        // on this thread, copied at once.
        let text = unsafe { libc::dlerror() };
        if text.is_null() {
            fallback.to_owned()
        } else {
            // SAFETY: see above.
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned()
        }
    }

    impl Api {
        /// The library, opened once; later calls get the same result (an error as text).
        fn get() -> Result<&'static Api, FirewallError> {
            static API: OnceLock<Result<Api, String>> = OnceLock::new();
            API.get_or_init(Api::open)
                .as_ref()
                .map_err(|e| FirewallError::Unavailable(e.clone()))
        }

        fn open() -> Result<Api, String> {
            // SAFETY: dlopen of a plain C library whose constructors only set up its own state;
            // the handle is never closed, so every function pointer stays valid.
            let handle =
                unsafe { libc::dlopen(LIBRARY.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
            if handle.is_null() {
                return Err(format!(
                    "libnftables: {}",
                    dl_error("cannot open libnftables.so.1")
                ));
            }
            // SAFETY (every call): each symbol is the libnftables function of that name, whose
            // C prototype (nftables/libnftables.h, stable since 0.9) is the field's type.
            unsafe {
                Ok(Api {
                    ctx_new: function(handle, c"nft_ctx_new")?,
                    ctx_free: function(handle, c"nft_ctx_free")?,
                    output_set_flags: function(handle, c"nft_ctx_output_set_flags")?,
                    buffer_output: function(handle, c"nft_ctx_buffer_output")?,
                    buffer_error: function(handle, c"nft_ctx_buffer_error")?,
                    get_output_buffer: function(handle, c"nft_ctx_get_output_buffer")?,
                    get_error_buffer: function(handle, c"nft_ctx_get_error_buffer")?,
                    run_cmd_from_buffer: function(handle, c"nft_run_cmd_from_buffer")?,
                    set_dry_run: function(handle, c"nft_ctx_set_dry_run")?,
                })
            }
        }
    }

    /// The function `name` of the library `handle` as the function pointer type `F`.
    ///
    /// # Safety
    /// `handle` is a live `dlopen` handle and `F` is the `extern "C"` function pointer type of
    /// the symbol's C prototype.
    unsafe fn function<F: Copy>(handle: *mut c_void, name: &CStr) -> Result<F, String> {
        const { assert!(std::mem::size_of::<F>() == std::mem::size_of::<*mut c_void>()) };
        // SAFETY: handle is live; name is NUL-terminated.
        let address = unsafe { libc::dlsym(handle, name.as_ptr()) };
        if address.is_null() {
            return Err(format!(
                "libnftables: {}",
                dl_error(&format!("no symbol {}", name.to_string_lossy()))
            ));
        }
        // SAFETY: the caller promises F is the symbol's function pointer type (same size,
        // checked above).
        Ok(unsafe { std::mem::transmute_copy::<*mut c_void, F>(&address) })
    }

    /// One libnftables context, kept for the life of the backend. Its netlink socket belongs
    /// to the network namespace of the thread that created it.
    pub(crate) struct LibRunner {
        api: &'static Api,
        ctx: *mut NftCtx,
        /// The `nft` binary for bulk batches, when installed.
        bulk: Option<CliRunner>,
    }

    // SAFETY: the context is only ever used through `&mut self`, so never from two threads at
    // once; libnftables keeps no thread-local state.
    unsafe impl Send for LibRunner {}

    impl LibRunner {
        pub(crate) fn new() -> Result<LibRunner, FirewallError> {
            let api = Api::get()?;
            // SAFETY: plain constructor; a null return is handled.
            let ctx = unsafe { (api.ctx_new)(NFT_CTX_DEFAULT) };
            if ctx.is_null() {
                return Err(FirewallError::Unavailable(
                    "libnftables: nft_ctx_new failed".into(),
                ));
            }
            // SAFETY: ctx is valid and exclusively ours.
            unsafe {
                // JSON output also makes libnftables 1.0.x parse the input as JSON.
                (api.output_set_flags)(ctx, NFT_CTX_OUTPUT_JSON);
                if (api.buffer_output)(ctx) != 0 || (api.buffer_error)(ctx) != 0 {
                    (api.ctx_free)(ctx);
                    return Err(FirewallError::Unavailable(
                        "libnftables: cannot buffer output".into(),
                    ));
                }
            }
            Ok(LibRunner {
                api,
                ctx,
                bulk: CliRunner::from_path(),
            })
        }
    }

    impl Runner for LibRunner {
        fn run(&mut self, commands: &Commands, dry_run: bool) -> Result<String, FirewallError> {
            if commands.element_count() < BULK_ELEMENTS {
                return self.run_in_this_context(&commands.to_json()?, dry_run);
            }
            // Bulk batches (restores, blocklists) go to a short-lived `nft` process when there
            // is one: a million elements took ~9-10 s as JSON in this process (freeing a
            // million parsed JSON objects in a long-lived heap is slow), ~8 s in nft, and the
            // memory nft needs to parse them (~1.1 GB) is returned to the system at once
            // instead of staying in the daemon's heap. Without the binary, a fresh context: the warm one loaded 100k
            // elements 3x slower than a new one (its cache gets in the way).
            match &mut self.bulk {
                Some(cli) => cli.run(commands, dry_run),
                None => LibRunner::new()?.run_in_this_context(&commands.to_json()?, dry_run),
            }
        }

        fn describe(&self) -> String {
            match &self.bulk {
                Some(cli) => format!(
                    "libnftables (in-process; bulk batches through {})",
                    cli.program().display()
                ),
                None => "libnftables (in-process)".into(),
            }
        }
    }

    impl LibRunner {
        fn run_in_this_context(
            &mut self,
            json: &str,
            dry_run: bool,
        ) -> Result<String, FirewallError> {
            let buf = CString::new(json)
                .map_err(|_| FirewallError::Invalid("batch contains a NUL byte".into()))?;
            // SAFETY: ctx is valid; buf outlives the call; the returned buffers are owned by
            // ctx and copied before the next call.
            unsafe {
                (self.api.set_dry_run)(self.ctx, dry_run);
                let rc = (self.api.run_cmd_from_buffer)(self.ctx, buf.as_ptr());
                let out = cstr_lossy((self.api.get_output_buffer)(self.ctx));
                let err = cstr_lossy((self.api.get_error_buffer)(self.ctx));
                if rc != 0 {
                    return Err(FirewallError::from_nft_message(err.trim()));
                }
                Ok(out)
            }
        }
    }

    impl Drop for LibRunner {
        fn drop(&mut self) {
            // SAFETY: ctx came from nft_ctx_new and is freed once.
            unsafe { (self.api.ctx_free)(self.ctx) }
        }
    }

    unsafe fn cstr_lossy(ptr: *const c_char) -> String {
        if ptr.is_null() {
            String::new()
        } else {
            // SAFETY: libnftables returns NUL-terminated buffers.
            unsafe { CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        }
    }
}
