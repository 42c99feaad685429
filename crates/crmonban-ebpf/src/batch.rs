//! Batched hash-map operations (`BPF_MAP_UPDATE_BATCH`, `BPF_MAP_LOOKUP_BATCH`, kernel 5.6+):
//! thousands of elements per system call, so a million bans are written or read back in a
//! fraction of a second instead of a million calls. Called through libbpf directly: we need the
//! count the kernel processed before an error (to find the element a full map refused), and a
//! walk that costs the same per element however large the batch.

use std::os::fd::{AsFd, AsRawFd};

use libbpf_rs::MapHandle;
use libbpf_rs::libbpf_sys;

/// Elements per batch.
pub(crate) const CHUNK: usize = 4096;

fn options() -> libbpf_sys::bpf_map_batch_opts {
    libbpf_sys::bpf_map_batch_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
        elem_flags: 0,
        flags: 0,
    }
}

/// Writes `count` keys and 8-byte values (laid out back to back) in one call; returns how
/// many the kernel stored before it stopped (all of them, or the index of the element it
/// refused).
pub(crate) fn update(map: &MapHandle, keys: &[u8], values: &[u8], count: usize) -> usize {
    debug_assert_eq!(values.len(), count * 8);
    let mut done = u32::try_from(count).unwrap_or(u32::MAX);
    let opts = options();
    // SAFETY: `keys` and `values` hold `count` elements of the map's key and value sizes, and
    // outlive the call; the kernel writes only `done`.
    let rc = unsafe {
        libbpf_sys::bpf_map_update_batch(
            map.as_fd().as_raw_fd(),
            keys.as_ptr().cast(),
            values.as_ptr().cast(),
            &mut done,
            &opts,
        )
    };
    if rc == 0 {
        count
    } else {
        (done as usize).min(count)
    }
}

/// Reads every entry of a hash map with `key_len`-byte keys and 8-byte values, calling
/// `visit` with each. Returns false when the kernel refuses batch lookups (nothing was
/// visited then, and the caller walks key by key).
pub(crate) fn walk(map: &MapHandle, key_len: usize, visit: &mut impl FnMut(&[u8], u64)) -> bool {
    let mut keys = vec![0u8; CHUNK * key_len];
    let mut values = vec![0u8; CHUNK * 8];
    // The batch token: a bucket index for hash maps; sized like a key to be safe.
    let mut token_in = vec![0u8; key_len.max(8)];
    let mut token_out = vec![0u8; key_len.max(8)];
    let mut first = true;
    let opts = options();
    loop {
        let mut count = CHUNK as u32;
        let in_batch = if first {
            std::ptr::null_mut()
        } else {
            token_in.as_mut_ptr().cast()
        };
        // SAFETY: the buffers hold CHUNK keys and values and the tokens, and outlive the call;
        // the kernel writes at most `count` elements and one token.
        let rc = unsafe {
            libbpf_sys::bpf_map_lookup_batch(
                map.as_fd().as_raw_fd(),
                in_batch,
                token_out.as_mut_ptr().cast(),
                keys.as_mut_ptr().cast(),
                values.as_mut_ptr().cast(),
                &mut count,
                &opts,
            )
        };
        let errno = if rc < 0 { -rc } else { 0 };
        if errno != 0 && errno != libc::ENOENT {
            if errno == libc::EINTR {
                continue;
            }
            // EINVAL or ENOTSUPP before the first batch: no batch support here.
            return !first;
        }
        let count = (count as usize).min(CHUNK);
        for i in 0..count {
            let value = u64::from_ne_bytes(values[i * 8..i * 8 + 8].try_into().unwrap_or_default());
            visit(&keys[i * key_len..(i + 1) * key_len], value);
        }
        if errno == libc::ENOENT {
            return true;
        }
        std::mem::swap(&mut token_in, &mut token_out);
        first = false;
    }
}
