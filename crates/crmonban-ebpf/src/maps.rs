//! The XDP program's maps as user space sees them: the two prefix tries of bans and the
//! per-CPU drop counters, with the byte layout of their keys and values (docs/EBPF.md) and
//! the conversion between a ban's Unix-second expiry and the program's CLOCK_BOOTTIME
//! nanoseconds.
//!
//! Every call here is one `bpf(2)` system call per element (~1 µs); nothing is batched,
//! because the kernel's LPM trie has no batch operations.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crmonban_core::Target;
use crmonban_firewall::{Element, Expiry};
use ipnet::IpNet;
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::EbpfError;

/// The address families, as the program indexes its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: map `blocked_v4`, counter index 0.
    V4,
    /// IPv6: map `blocked_v6`, counter index 1.
    V6,
}

impl Family {
    /// `"ipv4"` or `"ipv6"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
}

/// Packets and bytes the program dropped for one family, summed over every CPU.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Packets dropped.
    pub packets: u64,
    /// Bytes of those packets (the whole frame, link-layer header included).
    pub bytes: u64,
}

/// An LPM trie key: `u32` prefix length in host order, then the address in network order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    V4([u8; 8]),
    V6([u8; 20]),
}

impl Key {
    pub(crate) fn of(target: &Target) -> Key {
        let (addr, prefix) = match target {
            Target::Addr(addr) => (*addr, if addr.is_ipv4() { 32 } else { 128 }),
            Target::Net(net) => (net.network(), net.prefix_len()),
        };
        let prefix = u32::from(prefix).to_ne_bytes();
        match addr {
            IpAddr::V4(a) => {
                let mut key = [0u8; 8];
                key[..4].copy_from_slice(&prefix);
                key[4..].copy_from_slice(&a.octets());
                Key::V4(key)
            }
            IpAddr::V6(a) => {
                let mut key = [0u8; 20];
                key[..4].copy_from_slice(&prefix);
                key[4..].copy_from_slice(&a.octets());
                Key::V6(key)
            }
        }
    }

    pub(crate) fn family(&self) -> Family {
        match self {
            Key::V4(_) => Family::V4,
            Key::V6(_) => Family::V6,
        }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        match self {
            Key::V4(k) => k,
            Key::V6(k) => k,
        }
    }

    /// The target a key read from a map stands for; `None` for bytes no target encodes
    /// (a prefix longer than the address, or set host bits: written by someone else).
    pub(crate) fn target_of(bytes: &[u8]) -> Option<Target> {
        let prefix = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
        let addr = match bytes.len() {
            8 => IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&bytes[4..]).ok()?)),
            20 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[4..]).ok()?)),
            _ => return None,
        };
        let full = if addr.is_ipv4() { 32 } else { 128 };
        if prefix == full {
            return Some(Target::Addr(addr));
        }
        let net = IpNet::new(addr, u8::try_from(prefix).ok()?).ok()?;
        (net.network() == addr).then_some(Target::Net(net))
    }
}

/// The two clocks read together: converts Unix seconds to the program's CLOCK_BOOTTIME
/// nanoseconds and back. Boot time keeps counting through a suspend and never jumps when the
/// wall clock is set, so an entry's expiry stays where it was put.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    unix_ns: i128,
    boot_ns: i128,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let boot = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME).map_or(0, |t| {
            i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
        });
        Clock {
            unix_ns,
            boot_ns: boot,
        }
    }

    /// The map value for `expiry`: 0 for permanent; `None` when it has already passed.
    pub(crate) fn value_of(&self, expiry: Expiry) -> Option<u64> {
        match expiry {
            Expiry::Never => Some(0),
            Expiry::At(at) => {
                let left = i128::from(at) * 1_000_000_000 - self.unix_ns;
                if left <= 0 {
                    return None;
                }
                u64::try_from(self.boot_ns + left).ok().filter(|v| *v != 0)
            }
        }
    }

    /// The expiry a map value stands for (the nearest Unix second), `None` once passed.
    pub(crate) fn expiry_of(&self, value: u64) -> Option<Expiry> {
        if value == 0 {
            return Some(Expiry::Never);
        }
        let left = i128::from(value) - self.boot_ns;
        if left <= 0 {
            return None;
        }
        // To the nearest second: values are written from whole seconds, and the two clocks
        // are read a few nanoseconds apart, so rounding up would often say a second late.
        let at_ns = self.unix_ns + left;
        let at = (at_ns + 500_000_000).div_euclid(1_000_000_000);
        Some(Expiry::At(i64::try_from(at).unwrap_or(i64::MAX)))
    }
}

/// What writing one element did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Written {
    /// The element is in the map.
    Stored,
    /// Its expiry had passed: not written.
    Expired,
    /// The map is at `max_entries`: not written.
    Full,
}

/// The program's maps, held by owned file descriptors (the program and its skeleton may be
/// gone; a map lives while a descriptor, a pin or the attached program holds it).
#[derive(Debug)]
pub(crate) struct BanMaps {
    pub(crate) v4: MapHandle,
    pub(crate) v6: MapHandle,
    pub(crate) drops: MapHandle,
}

impl BanMaps {
    fn map(&self, family: Family) -> &MapHandle {
        match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        }
    }

    /// Puts `element` into its family's trie (replacing an entry of the same target).
    pub(crate) fn write(&self, element: &Element, clock: &Clock) -> Result<Written, EbpfError> {
        let Some(value) = clock.value_of(element.expiry) else {
            return Ok(Written::Expired);
        };
        let key = Key::of(&element.target);
        match self
            .map(key.family())
            .update(key.bytes(), &value.to_ne_bytes(), MapFlags::ANY)
        {
            Ok(()) => Ok(Written::Stored),
            Err(e) if is_errno(&e, libc::ENOSPC) || is_errno(&e, libc::E2BIG) => Ok(Written::Full),
            Err(e) => Err(EbpfError::map("update", &element.target, e)),
        }
    }

    /// Removes exactly `target`'s entry; true when there was one.
    pub(crate) fn remove(&self, target: &Target) -> Result<bool, EbpfError> {
        let key = Key::of(target);
        match self.map(key.family()).delete(key.bytes()) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, libc::ENOENT) => Ok(false),
            Err(e) => Err(EbpfError::map("delete", target, e)),
        }
    }

    /// The value of the longest prefix covering `target`'s first address, as the program
    /// would find it.
    pub(crate) fn covering_value(&self, target: &Target) -> Result<Option<u64>, EbpfError> {
        let key = Key::of(target);
        match self.map(key.family()).lookup(key.bytes(), MapFlags::ANY) {
            Ok(value) => Ok(value.as_deref().and_then(value_u64)),
            Err(e) if is_errno(&e, libc::ENOENT) => Ok(None),
            Err(e) => Err(EbpfError::map("lookup", target, e)),
        }
    }

    /// Walks one family's trie, entry by entry (nothing is collected): `visit` gets each
    /// entry's target (`Err` with the raw key for bytes no target encodes) and raw value, and
    /// returns true to have it removed. Removals happen after the walk (removing the key the
    /// walk stands on would restart it), so their raw keys are what is collected.
    pub(crate) fn walk(
        &self,
        family: Family,
        mut visit: impl FnMut(Result<Target, &[u8]>, u64) -> bool,
    ) -> Vec<Vec<u8>> {
        let map = self.map(family);
        let mut remove = Vec::new();
        let mut value = [0u8; 8];
        for key in map.keys() {
            // An entry removed meanwhile (by the kernel's own lookup races, or another writer)
            // is skipped.
            if !matches!(map.lookup_into(&key, &mut value, MapFlags::ANY), Ok(true)) {
                continue;
            }
            let target = Key::target_of(&key).ok_or(key.as_slice());
            if visit(target, u64::from_ne_bytes(value)) {
                remove.push(key);
            }
        }
        remove
    }

    /// Every entry of one family's trie: (target, raw value); entries no target encodes are
    /// left out.
    pub(crate) fn entries(&self, family: Family) -> Vec<(Target, u64)> {
        let mut out = Vec::new();
        self.walk(family, |target, value| {
            if let Ok(target) = target {
                out.push((target, value));
            }
            false
        });
        out
    }

    /// Removes an entry by its raw key (one no target encodes).
    pub(crate) fn remove_raw(&self, family: Family, key: &[u8]) -> bool {
        self.map(family).delete(key).is_ok()
    }

    /// The drop counters of `family`, summed over every CPU.
    pub(crate) fn drops(&self, family: Family) -> Result<DropCounters, EbpfError> {
        let index: u32 = match family {
            Family::V4 => 0,
            Family::V6 => 1,
        };
        let per_cpu = self
            .drops
            .lookup_percpu(&index.to_ne_bytes(), MapFlags::ANY)
            .map_err(|e| EbpfError::Kernel(format!("reading the drop counters: {e}")))?
            .unwrap_or_default();
        let mut sum = DropCounters::default();
        for cpu in per_cpu {
            if cpu.len() >= 16 {
                sum.packets += u64::from_ne_bytes(cpu[..8].try_into().unwrap_or_default());
                sum.bytes += u64::from_ne_bytes(cpu[8..16].try_into().unwrap_or_default());
            }
        }
        Ok(sum)
    }
}

fn value_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_ne_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// True when a libbpf-rs error carries this errno. libbpf-rs maps errnos to coarse kinds
/// (ENOSPC and E2BIG apart only by chance), but its message keeps the OS error's
/// "(os error N)" at the end of the chain.
pub(crate) fn is_errno(e: &libbpf_rs::Error, errno: i32) -> bool {
    errno_of(e) == Some(errno)
}

pub(crate) fn errno_of(e: &libbpf_rs::Error) -> Option<i32> {
    let text = format!("{e:#}");
    let at = text.rfind("os error ")? + "os error ".len();
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_refuse_what_no_target_encodes() {
        for text in [
            "192.0.2.7",
            "2001:db8::7",
            "198.51.100.0/24",
            "2001:db8::/48",
            "0.0.0.0/0",
        ] {
            let target = Target::parse(text).unwrap();
            let key = Key::of(&target);
            assert_eq!(Key::target_of(key.bytes()), Some(target), "{text}");
        }
        let Key::V4(mut key) = Key::of(&Target::parse("198.51.100.0/24").unwrap()) else {
            panic!("an IPv4 key")
        };
        key[7] = 1; // a host bit under a /24
        assert_eq!(Key::target_of(&key), None);
        key[..4].copy_from_slice(&33u32.to_ne_bytes());
        assert_eq!(Key::target_of(&key), None);
        assert_eq!(Key::target_of(&[0; 5]), None);
    }

    #[test]
    fn expiries_convert_to_boot_time_and_back() {
        let clock = Clock {
            unix_ns: 1_000_000_000_500_000_000,
            boot_ns: 7_000_000_000,
        };
        assert_eq!(clock.value_of(Expiry::Never), Some(0));
        // 1_000_000_010 is 9.5 s ahead.
        assert_eq!(
            clock.value_of(Expiry::At(1_000_000_010)),
            Some(16_500_000_000)
        );
        assert_eq!(clock.value_of(Expiry::At(1_000_000_000)), None);
        assert_eq!(
            clock.expiry_of(16_500_000_000),
            Some(Expiry::At(1_000_000_010))
        );
        assert_eq!(clock.expiry_of(0), Some(Expiry::Never));
        assert_eq!(clock.expiry_of(6_000_000_000), None);
    }
}
