//! [`XdpFastPath`]: the program loaded and attached, its maps kept as a second firewall
//! backend behind [`FirewallBackend`]: the engine mirrors every ban into it while nftables
//! keeps enforcing all of them.
//!
//! Unlike nftables, map writes are not one transaction: a change set is applied element by
//! element, and an element the maps cannot take (full at `max_entries`) is reported in
//! [`ApplyReport::refused`] while the rest apply. A full map is said once at warn, with how to
//! fix it, and said again only after it had room in between.

use std::os::fd::AsFd;
use std::path::PathBuf;

use crmonban_core::Target;
use crmonban_firewall::{
    ApplyReport, Change, ChangeSet, Element, Expiry, FirewallBackend, FirewallError,
};

use crate::EbpfError;
use crate::attach::{self, Attachment, ModeChoice, XdpMode};
use crate::maps::{BanMaps, Clock, DropCounters, Family, Slot, Written};
use crate::program;

/// How to load and attach the program.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdpOptions {
    /// Interfaces to attach to (`[ebpf] interfaces`).
    pub interfaces: Vec<String>,
    /// Native, generic, or native with fallback (`[ebpf] xdp_mode`).
    pub mode: ModeChoice,
    /// Pin the maps under this directory (`method = "mapfile"`); `None` keeps them private.
    pub pin: Option<PathBuf>,
    /// Entries per map (`[ebpf] max_entries`), IPv4 and IPv6 each.
    pub max_entries: u32,
}

/// Where one interface stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceState {
    /// The interface.
    pub interface: String,
    /// The mode the program runs in.
    pub mode: XdpMode,
    /// Why native mode was refused, when it fell back to generic.
    pub fallback: Option<String>,
}

/// What the fast path holds and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct XdpStats {
    /// IPv4 packets and bytes dropped.
    pub dropped_v4: DropCounters,
    /// IPv6 packets and bytes dropped.
    pub dropped_v6: DropCounters,
    /// Interfaces with the program attached, and how.
    pub interfaces: Vec<InterfaceState>,
    /// Entries in the IPv4 map, as of the last full reconcile or count.
    pub entries_v4: usize,
    /// Entries in the IPv6 map, likewise.
    pub entries_v6: usize,
    /// Capacity of each map.
    pub max_entries: u32,
    /// Bans that found the map full and are enforced by nftables only (since the last time
    /// the maps had room for everything).
    pub not_mirrored: usize,
}

/// The loaded, attached program and its maps; see the module docs.
#[derive(Debug)]
pub struct XdpFastPath {
    options: XdpOptions,
    maps: BanMaps,
    program: std::os::fd::OwnedFd,
    attachments: Vec<Attachment>,
    reused_pins: bool,
    entries: [usize; 2],
    not_mirrored: usize,
    full_reported: bool,
}

impl XdpFastPath {
    /// Loads the program (reusing pinned maps of an earlier run when they fit) without
    /// attaching it: fill the maps first ([`FirewallBackend::replace_all`]), then
    /// [`XdpFastPath::attach`], so that no stale entry of a reused pin drops a packet.
    pub fn load(options: XdpOptions) -> Result<XdpFastPath, EbpfError> {
        if let Some(dir) = &options.pin
            && !dir.is_absolute()
        {
            return Err(EbpfError::Pin {
                path: dir.clone(),
                reason: "not an absolute path".to_owned(),
            });
        }
        let loaded = program::load(options.max_entries, options.pin.as_deref())?;
        Ok(XdpFastPath {
            options,
            maps: loaded.maps,
            program: loaded.program,
            attachments: Vec::new(),
            reused_pins: loaded.reused_pins,
            entries: [0, 0],
            not_mirrored: 0,
            full_reported: false,
        })
    }

    /// True when the maps are pins of an earlier run.
    pub fn reused_pins(&self) -> bool {
        self.reused_pins
    }

    /// Attaches to every configured interface not attached yet; an interface that fails is
    /// reported and skipped (the others still attach). Returns the failures.
    pub fn attach(&mut self) -> Vec<EbpfError> {
        let mut failures = Vec::new();
        let wanted = self.options.interfaces.clone();
        for interface in wanted {
            if self.attachments.iter().any(|a| a.interface == interface) {
                continue;
            }
            match attach::attach(self.program.as_fd(), &interface, self.options.mode) {
                Ok(attachment) => {
                    if let Some(reason) = &attachment.fallback {
                        tracing::warn!(
                            interface,
                            "XDP: native mode refused, running in generic mode: {reason}"
                        );
                    }
                    tracing::info!(interface, mode = %attachment.mode, "XDP: attached");
                    self.attachments.push(attachment);
                }
                Err(e) => failures.push(e),
            }
        }
        failures
    }

    /// Takes the program off every interface (the maps stay, pinned or held by `self`).
    pub fn detach(&mut self) {
        for attachment in self.attachments.drain(..) {
            tracing::info!(interface = attachment.interface, "XDP: detached");
        }
    }

    /// The interfaces the program runs on.
    pub fn interfaces(&self) -> Vec<InterfaceState> {
        self.attachments
            .iter()
            .map(|a| InterfaceState {
                interface: a.interface.clone(),
                mode: a.mode,
                fallback: a.fallback.clone(),
            })
            .collect()
    }

    /// Drop counters, interfaces and entries.
    pub fn stats(&self) -> Result<XdpStats, EbpfError> {
        Ok(XdpStats {
            dropped_v4: self.maps.drops(Family::V4)?,
            dropped_v6: self.maps.drops(Family::V6)?,
            interfaces: self.interfaces(),
            entries_v4: self.entries[0],
            entries_v6: self.entries[1],
            max_entries: self.options.max_entries,
            not_mirrored: self.not_mirrored,
        })
    }

    /// The options it was loaded with.
    pub fn options(&self) -> &XdpOptions {
        &self.options
    }

    /// Whether the program would drop a packet from `addr` now (an entry covers it and has not
    /// expired), read from the map as the program reads it.
    pub fn drops_from(&self, addr: std::net::IpAddr) -> Result<bool, EbpfError> {
        let value = self.maps.covering_value(&Target::Addr(addr))?;
        Ok(value.is_some_and(|v| Clock::now().expiry_of(v).is_some()))
    }

    /// Makes the maps hold exactly `elements`: [`XdpFastPath::reconcile_with`] asking a table
    /// built from them.
    pub fn reconcile(&mut self, elements: &[Element]) -> Result<ApplyReport, EbpfError> {
        let mut wanted: std::collections::HashMap<Target, Expiry, foldhash::fast::RandomState> =
            std::collections::HashMap::with_capacity_and_hasher(elements.len(), Default::default());
        for element in elements {
            wanted.insert(element.target, element.expiry);
        }
        let mut counts = [0usize; 2];
        for target in wanted.keys() {
            counts[usize::from(!target.is_ipv4())] += 1;
        }
        self.reconcile_with(|t| wanted.get(t).copied(), counts, || elements.to_vec())
    }

    /// Makes the maps hold exactly the bans in force, without copying them: `wanted` answers
    /// whether exactly this target is banned and until when, `counts` says how many bans per
    /// family (IPv4, IPv6) are in force, and `all` lists them, asked only when the maps miss
    /// some. Every entry is read once: stale, expired and foreign entries are removed, wrong
    /// expiries rewritten; when fewer entries matched than `counts` says, every ban of that
    /// family is written again (the maps are full, or an entry was lost). Returns what changed.
    pub fn reconcile_with(
        &mut self,
        wanted: impl Fn(&Target) -> Option<Expiry>,
        counts: [usize; 2],
        all: impl FnOnce() -> Vec<Element>,
    ) -> Result<ApplyReport, EbpfError> {
        let clock = Clock::now();
        let mut report = ApplyReport::default();
        let mut matched = [0usize; 2];
        let mut rewrite = Vec::new();
        for slot in Slot::ALL {
            let index = usize::from(slot.family() == Family::V6);
            let stale = self.maps.walk(slot, |target, value| {
                let Ok(target) = target else {
                    return true;
                };
                let Some(expiry) = wanted(&target) else {
                    return true;
                };
                match clock.value_of(expiry) {
                    None => true,
                    Some(v) if same(v, value) => {
                        matched[index] += 1;
                        false
                    }
                    Some(_) => {
                        rewrite.push(Element { target, expiry });
                        false
                    }
                }
            });
            for key in stale {
                report.removed += usize::from(self.maps.remove_raw(slot, &key));
            }
        }
        let mut refused = 0usize;
        let mut refuse = |target: &Target, report: &mut ApplyReport| {
            refused += 1;
            if report.refused.len() < 16 {
                report
                    .refused
                    .push((target.to_string(), "the XDP map is full".to_owned()));
            }
        };
        self.maps
            .write_many(&rewrite, &clock, |element, written| match written {
                Written::Stored => {
                    report.added += 1;
                    matched[usize::from(!element.target.is_ipv4())] += 1;
                }
                Written::Expired => report.skipped_expired += 1,
                Written::Full => refuse(&element.target, &mut report),
            })?;
        let lacking = [matched[0] < counts[0], matched[1] < counts[1]];
        if lacking.contains(&true) {
            // Upserts: the entries already right are written again, unchanged; what is new is
            // what the map holds now beyond what matched before.
            let mut stored = [0usize; 2];
            let mut elements = all();
            elements.retain(|e| lacking[usize::from(!e.target.is_ipv4())]);
            self.maps
                .write_many(&elements, &clock, |element, written| match written {
                    Written::Stored => stored[usize::from(!element.target.is_ipv4())] += 1,
                    Written::Expired => report.skipped_expired += 1,
                    Written::Full => refuse(&element.target, &mut report),
                })?;
            for index in 0..2 {
                if lacking[index] {
                    report.added += stored[index].saturating_sub(matched[index]);
                    matched[index] = stored[index];
                }
            }
        }
        self.entries = matched;
        self.note_full(refused, true);
        report.transactions = 1;
        Ok(report)
    }

    /// Counts bans left out because a map is full; `reset` after a pass that saw every ban.
    fn note_full(&mut self, refused: usize, reset: bool) {
        if reset {
            self.not_mirrored = refused;
        } else {
            self.not_mirrored += refused;
        }
        if refused == 0 {
            if reset {
                self.full_reported = false;
            }
            return;
        }
        if !self.full_reported {
            self.full_reported = true;
            tracing::warn!(
                max_entries = self.options.max_entries,
                not_mirrored = self.not_mirrored,
                "XDP: a ban map is full at [ebpf] max_entries = {}: {} ban(s) are enforced by \
                 nftables only until there is room; raise max_entries to mirror them all",
                self.options.max_entries,
                self.not_mirrored
            );
        }
    }

    fn apply_changes(&mut self, changes: &ChangeSet) -> Result<ApplyReport, EbpfError> {
        let clock = Clock::now();
        let mut report = ApplyReport::default();
        let mut refused = 0usize;
        // Runs of additions go to the kernel in batches; a removal first sends what is
        // pending, so the changes apply in their order.
        let mut adds: Vec<Element> = Vec::new();
        let mut send = |adds: &mut Vec<Element>, report: &mut ApplyReport| {
            let result = self
                .maps
                .write_many(adds, &clock, |element, written| match written {
                    Written::Stored => report.added += 1,
                    Written::Expired => report.skipped_expired += 1,
                    Written::Full => {
                        refused += 1;
                        report
                            .refused
                            .push((element.target.to_string(), "the XDP map is full".to_owned()));
                    }
                });
            adds.clear();
            result
        };
        for change in &changes.changes {
            match change {
                Change::Add(element) => adds.push(*element),
                Change::Remove(target) => {
                    send(&mut adds, &mut report)?;
                    if self.maps.remove(target)? {
                        report.removed += 1;
                    }
                }
            }
        }
        send(&mut adds, &mut report)?;
        // Entries are exact again at the next reconcile; this keeps them close meanwhile
        // (an add may replace an entry rather than make one).
        for change in &changes.changes {
            let index = usize::from(!change.target().is_ipv4());
            match change {
                Change::Add(_) => self.entries[index] += 1,
                Change::Remove(_) => self.entries[index] = self.entries[index].saturating_sub(1),
            }
        }
        let cap = self.options.max_entries as usize;
        self.entries = self.entries.map(|n| n.min(cap));
        self.note_full(refused, false);
        report.transactions = usize::from(!changes.is_empty());
        Ok(report)
    }

    /// Detaches and removes the pinned maps (when pinned): nothing of the fast path is left.
    pub fn remove(mut self) -> Result<(), EbpfError> {
        self.detach();
        if let Some(dir) = self.options.pin.clone() {
            program::remove_pins(&dir)?;
        }
        Ok(())
    }
}

/// Map values within a second of each other stand for the same expiry (they are converted
/// from whole Unix seconds at different instants).
fn same(a: u64, b: u64) -> bool {
    (a == 0) == (b == 0) && a.abs_diff(b) < 1_000_000_000
}

impl FirewallBackend for XdpFastPath {
    fn ensure_layout(&mut self) -> Result<(), FirewallError> {
        let failures = self.attach();
        match failures.into_iter().next() {
            Some(e) if self.attachments.is_empty() => Err(e.into()),
            _ => Ok(()),
        }
    }

    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
        Ok(self.apply_changes(changes)?)
    }

    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
        Ok(self.reconcile(elements)?)
    }

    fn layout_present(&mut self) -> Result<bool, FirewallError> {
        Ok(!self.attachments.is_empty())
    }

    fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
        let clock = Clock::now();
        let mut out = Vec::new();
        for slot in Slot::ALL {
            for (target, value) in self.maps.entries(slot) {
                if let Some(expiry) = clock.expiry_of(value) {
                    out.push(Element { target, expiry });
                }
            }
        }
        Ok(out)
    }

    fn element_counts(&mut self) -> Result<Option<[usize; 4]>, FirewallError> {
        let mut counts = [0usize; 4];
        for element in self.list()? {
            let slot = match (element.target.is_ipv4(), element.target.is_net()) {
                (true, false) => 0,
                (false, false) => 1,
                (true, true) => 2,
                (false, true) => 3,
            };
            counts[slot] += 1;
        }
        Ok(Some(counts))
    }

    fn lookup(&mut self, targets: &[Target]) -> Result<Option<Vec<Option<Expiry>>>, FirewallError> {
        let clock = Clock::now();
        let mut out = Vec::with_capacity(targets.len());
        for target in targets {
            let value = self.maps.covering_value(target)?;
            out.push(value.and_then(|v| clock.expiry_of(v)));
        }
        Ok(Some(out))
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        self.detach();
        if let Some(dir) = &self.options.pin {
            program::remove_pins(dir)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        let on: Vec<String> = self
            .attachments
            .iter()
            .map(|a| format!("{} ({})", a.interface, a.mode))
            .collect();
        let maps = match &self.options.pin {
            Some(dir) => format!("maps pinned at {}", dir.display()),
            None => "maps private".to_owned(),
        };
        format!(
            "XDP on {}; {maps}; {} entries per family",
            if on.is_empty() {
                "no interface".to_owned()
            } else {
                on.join(", ")
            },
            self.options.max_entries
        )
    }
}

impl From<EbpfError> for FirewallError {
    fn from(e: EbpfError) -> FirewallError {
        match e {
            EbpfError::Invalid(m) => FirewallError::Invalid(m),
            other => FirewallError::Unavailable(other.to_string()),
        }
    }
}
