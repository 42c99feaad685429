//! Handing memory that is free again back to the system after a burst of work.
//!
//! The restore at start reads every active ban and builds the kernel's element list: tens of
//! megabytes for a million bans, needed for a second and then freed. glibc's allocator keeps
//! freed memory inside its heaps for reuse, so without help the daemon would carry its start-up
//! peak as resident memory for the rest of its life. `malloc_trim` returns the free pages of
//! every heap (not just the top of the main one) to the kernel.

/// Returns the allocator's free pages to the system (glibc); elsewhere nothing to do.
pub(crate) fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; any thread may call it.
    unsafe {
        libc::malloc_trim(0);
    }
}
