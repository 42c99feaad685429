//! [`NftBackend`]: the nftables implementation of [`FirewallBackend`].
//!
//! Every call builds one batch (what to do to our table, see [`batch`]) and sends it as one
//! transaction over one of two paths:
//! - **netlink** (the default): nf_tables messages straight to the kernel (see `netlink`), for
//!   every change — layout, elements single and bulk, flushes — and for the probes (layout
//!   check, element counts, generation);
//! - **JSON**: an nftables JSON document through libnftables in this process or the `nft`
//!   binary (see `json` and `runner`): the readable fallback when the netlink path cannot be
//!   used (logged at warn, once, with the reason), what `Transport::Library` and
//!   `Transport::Binary` choose, and the only path for listing the sets back (diagnostics).
//!
//! Single addresses go to hash sets (O(1) add at any size); networks go to
//! interval sets, whose whole content the backend keeps in memory and rewrites (flush + add in
//! the same transaction) whenever a network ban changes, after merging (see
//! [`crate::merge_networks`]). That model is exact from the first `replace_all` (the daemon's
//! restore at start, which deletes and recreates the whole table in its transaction) or from an
//! `ensure_layout` that created the table.
//!
//! Removal is tolerant: an element is added, then deleted, in the same transaction, so a
//! removal of an element that already expired in the kernel does not fail the batch.

mod batch;
mod blame;
mod json;
mod listing;
mod netlink;
mod runner;
mod send;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use crmonban_core::Target;
use ipnet::IpNet;
use tracing::debug;

use crate::{
    ApplyReport, Change, ChangeSet, Element, Expiry, FirewallBackend, FirewallError, Layout,
    merge_networks, now_unix, timeout_clock,
};
pub use netlink::counters::{RuleCounter, drop_counters};
pub use netlink::probe::ruleset_generation;

use batch::BatchBuilder;
use netlink::{Channel, probe};
use runner::{CliRunner, Runner};
use send::run;

/// How batches reach the kernel.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// Netlink for every change; JSON (libnftables when compiled in and usable, else the `nft`
    /// binary from PATH) for listing, and in place of netlink when that cannot be used.
    #[default]
    Auto,
    /// JSON through libnftables in this process (needs the `libnftables` feature).
    Library,
    /// JSON through this `nft` binary, one process per batch.
    Binary(PathBuf),
}

/// Options for [`NftBackend::new`].
#[derive(Clone, Debug)]
pub struct NftOptions {
    /// The table, chains and sets the backend manages.
    pub layout: Layout,
    /// How batches reach the kernel.
    pub transport: Transport,
    /// The fewest elements each address set is created for (default 65,536; sizes above
    /// 65,535 are rounded up to end in sixteen one bits, see `set_size`). A restore creates them
    /// for half as many again as it loads. An `apply` that would take a set past its size
    /// fails with [`FirewallError::SetFull`], changing nothing, and the caller rebuilds with
    /// `replace_all`.
    pub set_capacity: u32,
}

impl Default for NftOptions {
    fn default() -> Self {
        NftOptions {
            layout: Layout::default(),
            transport: Transport::default(),
            set_capacity: DEFAULT_SET_CAPACITY,
        }
    }
}

/// [`NftOptions::set_capacity`] by default.
pub const DEFAULT_SET_CAPACITY: u32 = 65_536;

/// nftables backend; see the module docs.
pub struct NftBackend {
    layout: Layout,
    /// The netlink path: `Some` while it is in use (`Transport::Auto`); its socket is opened
    /// by the first batch, in that thread's network namespace, and dropped after a failure.
    netlink: Option<Option<Channel>>,
    /// The JSON path.
    runner: Box<dyn Runner>,
    /// Every network ban the interval sets hold (before merging), with its expiry.
    nets: BTreeMap<IpNet, Expiry>,
    /// [`NftOptions::set_capacity`].
    min_capacity: u32,
    /// What the address sets were created for, when this backend created them.
    capacity: Option<batch::Capacity>,
}

impl NftBackend {
    /// Opens the transport. Nothing is sent to the kernel until the first call.
    pub fn new(options: NftOptions) -> Result<NftBackend, FirewallError> {
        let (netlink, runner): (_, Box<dyn Runner>) = match options.transport {
            Transport::Binary(program) => (None, Box::new(CliRunner::new(program))),
            Transport::Library => (None, library_runner()?),
            Transport::Auto => (Some(None), Box::new(runner::Lazy::new(json_runner))),
        };
        Ok(NftBackend {
            layout: options.layout,
            netlink,
            runner,
            nets: BTreeMap::new(),
            min_capacity: options.set_capacity.max(1),
            capacity: None,
        })
    }

    /// The table, chains and sets this backend manages.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Adds the interval-set rewrite (flush, then the merged networks) for each family marked
    /// in `families`; returns the elements written and the networks merged away.
    fn write_nets(
        &self,
        batch: &mut BatchBuilder,
        nets: &BTreeMap<IpNet, Expiry>,
        families: [bool; 2],
        now: i64,
    ) -> (usize, usize) {
        let list: Vec<(IpNet, Expiry)> = nets.iter().map(|(n, e)| (*n, *e)).collect();
        let (intervals, merged) = merge_networks(&list);
        let mut written = 0;
        for (ipv4, changed) in [(true, families[0]), (false, families[1])] {
            if !changed {
                continue;
            }
            let set = self.layout.set_for(ipv4, true);
            batch.flush_set(&set);
            let mine: Vec<_> = intervals
                .iter()
                .filter(|iv| iv.lo.is_ipv4() == ipv4)
                .collect();
            written += mine.len();
            batch.add_intervals(&set, &mine, now);
        }
        (written, merged)
    }
}

impl NftBackend {
    /// The error for an address set that cannot take more: the family's when known.
    fn set_full(&self, family: Option<usize>) -> FirewallError {
        let table = &self.layout.table;
        let sets = match family {
            Some(f) => self.layout.set_for(f == 0, false),
            None => format!(
                "{} or {}",
                self.layout.set_for(true, false),
                self.layout.set_for(false, false)
            ),
        };
        let made_for = match (self.capacity, family) {
            (Some(capacity), Some(f)) => format!("created for {} elements", capacity[f]),
            (Some(capacity), None) => {
                format!("created for {} and {} elements", capacity[0], capacity[1])
            }
            (None, _) => "created by an earlier run".to_owned(),
        };
        FirewallError::SetFull(format!(
            "set {sets} of table inet {table} ({made_for}); rebuild with replace_all"
        ))
    }

    /// Runs a batch whose only expected failure is "object exists"; returns whether it did.
    fn probe_exists(&mut self, batch: BatchBuilder) -> Result<bool, FirewallError> {
        match self.send_all_or_nothing(batch) {
            Ok(_) => Ok(false),
            Err(FirewallError::Refused { message, .. }) if message.contains("File exists") => {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}

/// libnftables when it can be opened, else the `nft` binary.
fn json_runner() -> Box<dyn Runner> {
    library_runner().unwrap_or_else(|e| {
        debug!(error = %e, "libnftables not usable; JSON goes to the nft binary");
        Box::new(CliRunner::new(PathBuf::from("nft")))
    })
}

#[cfg(feature = "libnftables")]
fn library_runner() -> Result<Box<dyn Runner>, FirewallError> {
    Ok(Box::new(runner::LibRunner::new()?))
}

#[cfg(not(feature = "libnftables"))]
fn library_runner() -> Result<Box<dyn Runner>, FirewallError> {
    Err(FirewallError::Unavailable(
        "crmonban-firewall was built without the libnftables feature".into(),
    ))
}

/// The size an address set is created with: at least `wanted`. The kernel takes a set's size
/// as its limit and as the hint for the first size of its hash table, but keeps only the low
/// 16 bits of the hint (rhashtable's `nelem_hint` is a u16; nft_set_hash hands it the size as
/// it is): a set made for 786,432 (12 x 65,536) starts with 64 buckets and goes through a dozen
/// rehashes inside the transaction loading it, ~1 s more for a million addresses. Above
/// 65,535 the size is rounded up to end in sixteen one bits: the largest table the hint can
/// ask for (131,072 buckets, 1 MiB), for a limit at most 65,535 above the one wanted. A kernel
/// that read the whole hint would get the size wanted, as intended.
pub(crate) fn set_size(wanted: u32) -> u32 {
    if wanted > 0xFFFF {
        wanted | 0xFFFF
    } else {
        wanted
    }
}

/// The hasher for sets of targets built per batch (SipHash's DoS resistance buys nothing for
/// addresses we chose to ban, and costs a third of a million-element batch).
type FastHash = foldhash::fast::RandomState;

/// The last change per target, in first-seen order.
fn last_change_per_target(changes: &ChangeSet) -> Vec<Change> {
    let mut index: HashMap<Target, usize, FastHash> =
        HashMap::with_capacity_and_hasher(changes.len(), FastHash::default());
    let mut out: Vec<Change> = Vec::with_capacity(changes.len());
    for change in &changes.changes {
        let target = change.target();
        match index.get(&target) {
            Some(&i) => out[i] = *change,
            None => {
                index.insert(target, out.len());
                out.push(*change);
            }
        }
    }
    out
}

impl FirewallBackend for NftBackend {
    fn ensure_layout(&mut self) -> Result<(), FirewallError> {
        if probe::layout_problem(&self.layout)?.is_none() {
            return Ok(());
        }
        let mut objects = BatchBuilder::new(&self.layout);
        objects.add_table_and_sets([set_size(self.min_capacity); 2]);
        let table_existed = {
            let mut probe = BatchBuilder::new(&self.layout);
            probe.create_table();
            self.probe_exists(probe)?
        };
        self.send_all_or_nothing(objects)?;
        for forward in [false, true] {
            let mut chain = BatchBuilder::new(&self.layout);
            chain.create_chain_with_rules(forward);
            self.probe_exists(chain)?;
        }
        if !table_existed {
            // We created the sets: they are empty, so the network model is exact.
            self.nets.clear();
            self.capacity = Some([set_size(self.min_capacity); 2]);
        }
        Ok(())
    }

    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
        let mut report = ApplyReport::default();
        if changes.is_empty() {
            return Ok(report);
        }
        let now = now_unix();
        let clock = timeout_clock();
        // Network changes as (network, new expiry or removal); the interval sets are only
        // rewritten (and the model copied) when there are some, so that a ban of an address
        // costs the same however many networks are banned.
        let mut net_changes: Vec<(IpNet, Option<Expiry>)> = Vec::new();
        let mut nets_changed = [false, false];
        let mut batch = BatchBuilder::new(&self.layout);
        let mut adds: [Vec<Element>; 2] = [Vec::new(), Vec::new()];
        let mut removes: [Vec<Target>; 2] = [Vec::new(), Vec::new()];
        for change in last_change_per_target(changes) {
            match change {
                // A ban whose time is already over has nothing to put in the kernel; the
                // kernel would refuse a zero timeout, and one late element must not fail the
                // rest of the batch.
                Change::Add(e) if e.expiry.is_past(now) => report.skipped_expired += 1,
                Change::Add(e) => {
                    report.added += 1;
                    let family = usize::from(!e.target.is_ipv4());
                    match e.target {
                        Target::Net(net) => {
                            net_changes.push((net, Some(e.expiry)));
                            nets_changed[family] = true;
                        }
                        Target::Addr(_) => adds[family].push(e),
                    }
                }
                Change::Remove(t) => {
                    report.removed += 1;
                    let family = usize::from(!t.is_ipv4());
                    match t {
                        Target::Net(net) => {
                            net_changes.push((net, None));
                            nets_changed[family] = true;
                        }
                        Target::Addr(_) => removes[family].push(t),
                    }
                }
            }
        }
        // More new addresses than the set was made for: it cannot take them; rebuild it larger
        // at once instead of sending a batch the kernel would refuse.
        if let Some(capacity) = self.capacity
            && let Some(family) = (0..2).find(|&f| adds[f].len() > capacity[f] as usize)
        {
            return Err(self.set_full(Some(family)));
        }
        for (family, ipv4) in [(0, true), (1, false)] {
            let set = self.layout.set_for(ipv4, false);
            batch.remove_elements(&set, &removes[family]);
            batch.add_elements(&set, &adds[family], clock);
        }
        let new_nets = if net_changes.is_empty() {
            None
        } else {
            let mut nets = self.nets.clone();
            nets.retain(|_, e| !e.is_past(now));
            for (net, expiry) in net_changes {
                match expiry {
                    Some(expiry) => nets.insert(net, expiry),
                    None => nets.remove(&net),
                };
            }
            let (written, merged) = self.write_nets(&mut batch, &nets, nets_changed, clock);
            report.interval_elements = written;
            report.networks_merged = merged;
            Some(nets)
        };
        match self.send(batch.finish()) {
            Ok(_) => {}
            Err(sent) if sent.is_set_full() => return Err(self.set_full(None)),
            Err(other) => return Err(other.into_error()),
        }
        report.transactions = 1;
        if let Some(nets) = new_nets {
            self.nets = nets;
        }
        Ok(report)
    }

    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
        self.replace_all_expecting(elements, 0)
    }

    fn replace_all_expecting(
        &mut self,
        elements: &[Element],
        expected: usize,
    ) -> Result<ApplyReport, FirewallError> {
        let now = now_unix();
        let clock = timeout_clock();
        let mut batch = BatchBuilder::new(&self.layout);
        let mut singles: [Vec<Element>; 2] = [Vec::new(), Vec::new()];
        let mut nets = BTreeMap::new();
        let mut report = ApplyReport::default();
        for e in elements {
            if e.expiry.is_past(now) {
                report.skipped_expired += 1;
                continue;
            }
            report.added += 1;
            match e.target {
                Target::Net(net) => {
                    // Two bans of the same network: the later expiry wins.
                    let slot = nets.entry(net).or_insert(e.expiry);
                    *slot = (*slot).max(e.expiry);
                }
                Target::Addr(_) => singles[usize::from(!e.target.is_ipv4())].push(*e),
            }
        }
        let room = |count: usize| {
            let wanted = count.saturating_add(count / 2);
            set_size(
                u32::try_from(wanted)
                    .unwrap_or(u32::MAX)
                    .max(self.min_capacity),
            )
        };
        let capacity = [
            room(singles[0].len().max(expected)),
            room(singles[1].len().max(expected)),
        ];
        batch.recreate_layout(capacity);
        for (family, ipv4) in [(0, true), (1, false)] {
            batch.add_elements(&self.layout.set_for(ipv4, false), &singles[family], clock);
        }
        // Flushing the interval sets just created in this transaction is a no-op; one writer
        // serves both this and `apply`.
        let (written, merged) = self.write_nets(&mut batch, &nets, [true, true], clock);
        report.interval_elements = written;
        report.networks_merged = merged;
        self.send_leaving_out_refused(batch.finish(), &mut report)?;
        report.transactions = 1;
        self.nets = nets;
        self.capacity = Some(capacity);
        Ok(report)
    }

    fn holds_nothing(&mut self) -> Result<bool, FirewallError> {
        probe::table_absent(&self.layout)
    }

    fn layout_present(&mut self) -> Result<bool, FirewallError> {
        match probe::layout_problem(&self.layout)? {
            None => Ok(true),
            Some(problem) => {
                debug!(%problem, "nftables layout incomplete");
                Ok(false)
            }
        }
    }

    fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
        // One set per run: libnftables 1.0.x fills its cache for the first `list` command of a
        // batch only, and then fails to find the other sets.
        let mut out = Vec::new();
        for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
            let mut batch = BatchBuilder::new(&self.layout);
            batch.list_set(ipv4, net);
            let output = run(&mut *self.runner, batch.finish())?;
            out.extend(listing::parse_elements(&output, now_unix())?);
        }
        Ok(out)
    }

    fn element_counts(&mut self) -> Result<Option<[usize; 4]>, FirewallError> {
        probe::element_counts(&self.layout).map(Some)
    }

    fn lookup(&mut self, targets: &[Target]) -> Result<Option<Vec<Option<Expiry>>>, FirewallError> {
        probe::lookup(&self.layout, targets).map(Some)
    }

    fn generation(&mut self) -> Result<Option<u32>, FirewallError> {
        probe::ruleset_generation().map(Some)
    }

    fn drop_counters(&mut self) -> Result<Option<Vec<RuleCounter>>, FirewallError> {
        drop_counters(&self.layout).map(Some)
    }

    fn teardown(&mut self) -> Result<(), FirewallError> {
        let mut batch = BatchBuilder::new(&self.layout);
        batch.delete_table();
        self.send_all_or_nothing(batch)?;
        self.nets.clear();
        self.capacity = None;
        Ok(())
    }

    fn describe(&self) -> String {
        let path = match self.netlink {
            Some(_) => format!(
                "netlink (JSON through {} for listing)",
                self.runner.describe()
            ),
            None => format!("JSON through {}", self.runner.describe()),
        };
        format!("nftables via {path}, table inet {}", self.layout.table)
    }
}
