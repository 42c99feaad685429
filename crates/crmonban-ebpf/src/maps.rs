//! The XDP program's maps as user space sees them: single addresses in one hash map per
//! family, networks in one longest-prefix trie per family (as nftables keeps them in hash and
//! interval sets), the per-CPU drop counters, the byte layout of their keys and values
//! (docs/EBPF.md), and the conversion between a ban's Unix-second expiry and the program's
//! CLOCK_MONOTONIC nanoseconds.
//!
//! The hash maps are written and read in batches ([`crate::batch`]: thousands of elements per
//! `bpf(2)` call); the tries, which have no batch operations and hold few networks, element by
//! element.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crmonban_core::Target;
use crmonban_firewall::{Element, Expiry};
use ipnet::IpNet;
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::EbpfError;
use crate::batch;

/// The address families, as the program indexes its counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4: maps `blocked_v4` and `blocked_v4_net`, counter index 0.
    V4,
    /// IPv6: maps `blocked_v6` and `blocked_v6_net`, counter index 1.
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

/// Which of the four ban maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Slot {
    /// `blocked_v4`: hash of IPv4 addresses.
    V4,
    /// `blocked_v6`: hash of IPv6 addresses.
    V6,
    /// `blocked_v4_net`: trie of IPv4 networks.
    V4Net,
    /// `blocked_v6_net`: trie of IPv6 networks.
    V6Net,
}

impl Slot {
    pub(crate) const ALL: [Slot; 4] = [Slot::V4, Slot::V6, Slot::V4Net, Slot::V6Net];

    pub(crate) fn family(self) -> Family {
        match self {
            Slot::V4 | Slot::V4Net => Family::V4,
            Slot::V6 | Slot::V6Net => Family::V6,
        }
    }

    fn key_len(self) -> usize {
        match self {
            Slot::V4 => 4,
            Slot::V6 => 16,
            Slot::V4Net => 8,
            Slot::V6Net => 20,
        }
    }

    fn of(target: &Target) -> Slot {
        match target {
            Target::Addr(IpAddr::V4(_)) => Slot::V4,
            Target::Addr(IpAddr::V6(_)) => Slot::V6,
            Target::Net(IpNet::V4(_)) => Slot::V4Net,
            Target::Net(IpNet::V6(_)) => Slot::V6Net,
        }
    }
}

/// A map key: the address in network order for the hash maps; for the tries the `u32` prefix
/// length in host order first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) slot: Slot,
    bytes: [u8; 20],
}

impl Key {
    pub(crate) fn of(target: &Target) -> Key {
        let slot = Slot::of(target);
        let mut bytes = [0u8; 20];
        let (addr, at) = match target {
            Target::Addr(addr) => (*addr, 0),
            Target::Net(net) => {
                bytes[..4].copy_from_slice(&u32::from(net.prefix_len()).to_ne_bytes());
                (net.network(), 4)
            }
        };
        match addr {
            IpAddr::V4(a) => bytes[at..at + 4].copy_from_slice(&a.octets()),
            IpAddr::V6(a) => bytes[at..at + 16].copy_from_slice(&a.octets()),
        }
        Key { slot, bytes }
    }

    /// The trie key that looks up `addr` as the program does (its full length).
    fn lookup_in_trie(addr: IpAddr) -> Key {
        let mut bytes = [0u8; 20];
        let slot = match addr {
            IpAddr::V4(a) => {
                bytes[..4].copy_from_slice(&32u32.to_ne_bytes());
                bytes[4..8].copy_from_slice(&a.octets());
                Slot::V4Net
            }
            IpAddr::V6(a) => {
                bytes[..4].copy_from_slice(&128u32.to_ne_bytes());
                bytes[4..20].copy_from_slice(&a.octets());
                Slot::V6Net
            }
        };
        Key { slot, bytes }
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes[..self.slot.key_len()]
    }

    /// The target a key read from `slot`'s map stands for; `None` for bytes no target of ours
    /// encodes (a wrong length, a mapped IPv4 address, a trie prefix that is a whole address
    /// or longer, set host bits: written by someone else).
    pub(crate) fn target_of(slot: Slot, bytes: &[u8]) -> Option<Target> {
        if bytes.len() != slot.key_len() {
            return None;
        }
        match slot {
            Slot::V4 => Some(Target::Addr(IpAddr::V4(Ipv4Addr::from(
                <[u8; 4]>::try_from(bytes).ok()?,
            )))),
            Slot::V6 => {
                let addr = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
                addr.to_ipv4_mapped()
                    .is_none()
                    .then_some(Target::Addr(IpAddr::V6(addr)))
            }
            Slot::V4Net | Slot::V6Net => {
                let prefix = u32::from_ne_bytes(bytes[..4].try_into().ok()?);
                let addr = if slot == Slot::V4Net {
                    IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(&bytes[4..]).ok()?))
                } else {
                    IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(&bytes[4..]).ok()?))
                };
                let net = IpNet::new(addr, u8::try_from(prefix).ok()?).ok()?;
                (net.prefix_len() < net.max_prefix_len() && net.network() == addr)
                    .then_some(Target::Net(net))
            }
        }
    }
}

/// The two clocks read together: converts Unix seconds to the program's CLOCK_MONOTONIC
/// nanoseconds and back. The monotonic clock never jumps when the wall clock is set, so an
/// entry's expiry stays where it was put; the program reads it at a tick's resolution
/// (`bpf_ktime_get_coarse_ns`, a few nanoseconds where the precise clock costs tens in a VM),
/// so an entry ends at most one tick late.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    unix_ns: i128,
    mono_ns: i128,
}

impl Clock {
    pub(crate) fn now() -> Clock {
        let unix_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let mono = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).map_or(0, |t| {
            i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec())
        });
        Clock {
            unix_ns,
            mono_ns: mono,
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
                u64::try_from(self.mono_ns + left).ok().filter(|v| *v != 0)
            }
        }
    }

    /// The expiry a map value stands for (the nearest Unix second), `None` once passed.
    pub(crate) fn expiry_of(&self, value: u64) -> Option<Expiry> {
        if value == 0 {
            return Some(Expiry::Never);
        }
        let left = i128::from(value) - self.mono_ns;
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
    pub(crate) v4_net: MapHandle,
    pub(crate) v6_net: MapHandle,
    pub(crate) drops: MapHandle,
}

impl BanMaps {
    pub(crate) fn map(&self, slot: Slot) -> &MapHandle {
        match slot {
            Slot::V4 => &self.v4,
            Slot::V6 => &self.v6,
            Slot::V4Net => &self.v4_net,
            Slot::V6Net => &self.v6_net,
        }
    }

    /// Puts `element` into its map (replacing an entry of the same target).
    pub(crate) fn write(&self, element: &Element, clock: &Clock) -> Result<Written, EbpfError> {
        let Some(value) = clock.value_of(element.expiry) else {
            return Ok(Written::Expired);
        };
        let key = Key::of(&element.target);
        match self
            .map(key.slot)
            .update(key.bytes(), &value.to_ne_bytes(), MapFlags::ANY)
        {
            Ok(()) => Ok(Written::Stored),
            Err(e) if is_errno(&e, libc::ENOSPC) || is_errno(&e, libc::E2BIG) => Ok(Written::Full),
            Err(e) => Err(EbpfError::map("update", &element.target, e)),
        }
    }

    /// Writes many elements, batching the addresses of each family into one system call per
    /// few thousand; calls `done` with each element's outcome, in order per map.
    pub(crate) fn write_many(
        &self,
        elements: &[Element],
        clock: &Clock,
        mut done: impl FnMut(&Element, Written),
    ) -> Result<(), EbpfError> {
        let mut pending: [Vec<(Element, u64)>; 2] = [Vec::new(), Vec::new()];
        for element in elements {
            let Some(value) = clock.value_of(element.expiry) else {
                done(element, Written::Expired);
                continue;
            };
            match Slot::of(&element.target) {
                slot @ (Slot::V4 | Slot::V6) => {
                    let queue = &mut pending[usize::from(slot == Slot::V6)];
                    queue.push((*element, value));
                    if queue.len() == batch::CHUNK {
                        self.flush(slot, queue, &mut done)?;
                    }
                }
                Slot::V4Net | Slot::V6Net => done(element, self.write(element, clock)?),
            }
        }
        self.flush(Slot::V4, &mut pending[0], &mut done)?;
        self.flush(Slot::V6, &mut pending[1], &mut done)
    }

    fn flush(
        &self,
        slot: Slot,
        queue: &mut Vec<(Element, u64)>,
        done: &mut impl FnMut(&Element, Written),
    ) -> Result<(), EbpfError> {
        if queue.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(queue.len() * slot.key_len());
        let mut values = Vec::with_capacity(queue.len() * 8);
        for (element, value) in queue.iter() {
            keys.extend_from_slice(Key::of(&element.target).bytes());
            values.extend_from_slice(&value.to_ne_bytes());
        }
        let stored = batch::update(self.map(slot), &keys, &values, queue.len());
        for (element, _) in &queue[..stored] {
            done(element, Written::Stored);
        }
        // The kernel stopped at an element (the map full, or another error): the rest one by
        // one, each with its own outcome.
        for (element, value) in &queue[stored..] {
            let key = Key::of(&element.target);
            let outcome =
                match self
                    .map(slot)
                    .update(key.bytes(), &value.to_ne_bytes(), MapFlags::ANY)
                {
                    Ok(()) => Written::Stored,
                    Err(e) if is_errno(&e, libc::ENOSPC) || is_errno(&e, libc::E2BIG) => {
                        Written::Full
                    }
                    Err(e) => return Err(EbpfError::map("update", &element.target, e)),
                };
            done(element, outcome);
        }
        queue.clear();
        Ok(())
    }

    /// Removes exactly `target`'s entry; true when there was one.
    pub(crate) fn remove(&self, target: &Target) -> Result<bool, EbpfError> {
        let key = Key::of(target);
        match self.map(key.slot).delete(key.bytes()) {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, libc::ENOENT) => Ok(false),
            Err(e) => Err(EbpfError::map("delete", target, e)),
        }
    }

    /// The value the program would find for `target`: its own entry, else the longest
    /// network covering its first address.
    pub(crate) fn covering_value(&self, target: &Target) -> Result<Option<u64>, EbpfError> {
        let lookup = |key: &Key| match self.map(key.slot).lookup(key.bytes(), MapFlags::ANY) {
            Ok(value) => Ok(value.as_deref().and_then(value_u64)),
            Err(e) if is_errno(&e, libc::ENOENT) => Ok(None),
            Err(e) => Err(EbpfError::map("lookup", target, e)),
        };
        let own = Key::of(target);
        if let Some(value) = lookup(&own)? {
            return Ok(Some(value));
        }
        match target {
            Target::Addr(addr) => lookup(&Key::lookup_in_trie(*addr)),
            Target::Net(_) => Ok(None),
        }
    }

    /// Walks one map, entry by entry (nothing is collected): `visit` gets each entry's target
    /// (`Err` with the raw key for bytes no target of ours encodes) and raw value, and returns
    /// true to have it removed. Removals happen after the walk (removing the key a walk stands
    /// on would restart it), so their raw keys are what is collected.
    pub(crate) fn walk(
        &self,
        slot: Slot,
        mut visit: impl FnMut(Result<Target, &[u8]>, u64) -> bool,
    ) -> Vec<Vec<u8>> {
        let map = self.map(slot);
        let mut remove = Vec::new();
        let mut one = |key: &[u8], value: u64| {
            let target = Key::target_of(slot, key).ok_or(key);
            if visit(target, value) {
                remove.push(key.to_vec());
            }
        };
        if matches!(slot, Slot::V4 | Slot::V6) && batch::walk(map, slot.key_len(), &mut one) {
            return remove;
        }
        let mut value = [0u8; 8];
        for key in map.keys() {
            // An entry removed meanwhile is skipped.
            if matches!(map.lookup_into(&key, &mut value, MapFlags::ANY), Ok(true)) {
                one(&key, u64::from_ne_bytes(value));
            }
        }
        remove
    }

    /// Every entry of one map: (target, raw value); entries no target of ours encodes are
    /// left out.
    pub(crate) fn entries(&self, slot: Slot) -> Vec<(Target, u64)> {
        let mut out = Vec::new();
        self.walk(slot, |target, value| {
            if let Ok(target) = target {
                out.push((target, value));
            }
            false
        });
        out
    }

    /// Removes an entry by its raw key.
    pub(crate) fn remove_raw(&self, slot: Slot, key: &[u8]) -> bool {
        self.map(slot).delete(key).is_ok()
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
            assert_eq!(
                Key::target_of(key.slot, key.bytes()),
                Some(target),
                "{text}"
            );
        }
        assert_eq!(
            Key::of(&Target::parse("192.0.2.7").unwrap()).bytes(),
            [192, 0, 2, 7]
        );
        let net = Key::of(&Target::parse("198.51.100.0/24").unwrap());
        assert_eq!(net.slot, Slot::V4Net);
        let mut bytes = net.bytes().to_vec();
        bytes[7] = 1; // a host bit under a /24
        assert_eq!(Key::target_of(Slot::V4Net, &bytes), None);
        bytes[..4].copy_from_slice(&32u32.to_ne_bytes()); // a whole address in the trie
        assert_eq!(Key::target_of(Slot::V4Net, &bytes), None);
        assert_eq!(Key::target_of(Slot::V4, &[0; 5]), None);
        let mapped = "::ffff:192.0.2.7".parse::<Ipv6Addr>().unwrap().octets();
        assert_eq!(Key::target_of(Slot::V6, &mapped), None);
    }

    #[test]
    fn expiries_convert_to_monotonic_time_and_back() {
        let clock = Clock {
            unix_ns: 1_000_000_000_500_000_000,
            mono_ns: 7_000_000_000,
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
