//! crmonban-firewall owns the kernel side of a ban: the [`FirewallBackend`] trait and its
//! implementations. [`NftBackend`] is the only code in crmonban that talks to nftables; it
//! manages exactly one table (DESIGN.md §3) and never reads or changes any other.
//! [`RecordingBackend`] keeps the same contract in memory so the engine can be tested without a
//! kernel.
//!
//! The trait is small, synchronous and object-safe: one owner (the engine's firewall task)
//! holds the backend and sends it whole change sets, each applied as ONE nftables transaction —
//! all of it or nothing. The ban path never reads the kernel's sets back: listing costs seconds
//! at a million elements, while adding one address over netlink costs ~0.01 ms at any size.
//!
//! # Example
//!
//! [`RecordingBackend`] takes the same calls as [`NftBackend`] (which needs root) and keeps
//! the sets in memory:
//!
//! ```
//! use std::time::Duration;
//!
//! use crmonban_core::Target;
//! use crmonban_firewall::{ChangeSet, Element, FirewallBackend, RecordingBackend};
//!
//! let mut firewall = RecordingBackend::new();
//! firewall.ensure_layout().unwrap();
//!
//! let addr = Target::parse("192.0.2.7").unwrap();
//! let net = Target::parse("198.51.100.0/24").unwrap();
//! let mut changes = ChangeSet::new();
//! changes
//!     .add(Element::timed(addr, Duration::from_secs(3600)))
//!     .add(Element::permanent(net));
//! let report = firewall.apply(&changes).unwrap();
//! assert_eq!((report.added, report.transactions), (2, 1)); // one transaction
//! assert!(firewall.contains(&addr) && firewall.contains(&net));
//!
//! firewall.apply(ChangeSet::new().remove(addr)).unwrap();
//! assert!(!firewall.contains(&addr));
//! ```

#![warn(missing_docs)]

mod intervals;
mod layout;
mod nft;
mod recording;

use std::fmt;
use std::time::Duration;

use crmonban_core::Target;

pub use intervals::{Interval, merge_networks};
pub use layout::Layout;
pub use nft::{
    DEFAULT_SET_CAPACITY, NftBackend, NftOptions, RuleCounter, Transport, drop_counters,
    ruleset_generation,
};
pub use recording::{Call, RecordingBackend};

/// When an element leaves the kernel by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Expiry {
    /// At this Unix second; the kernel gets the remaining time as the element's timeout.
    At(i64),
    /// Permanent: no timeout.
    Never,
}

impl Expiry {
    /// The kernel timeout in whole seconds at `now` (at least 1), `None` for permanent.
    pub fn timeout_at(self, now: i64) -> Option<u32> {
        match self {
            Expiry::Never => None,
            Expiry::At(end) => Some(end.saturating_sub(now).clamp(1, u32::MAX as i64) as u32),
        }
    }

    /// True when this expiry has passed at `now`.
    pub fn is_past(self, now: i64) -> bool {
        matches!(self, Expiry::At(end) if end <= now)
    }
}

/// One member of a blocked set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Element {
    /// The address (hash set) or network (interval set).
    pub target: Target,
    /// When the kernel drops the element by itself.
    pub expiry: Expiry,
}

impl Element {
    /// Never expires.
    pub fn permanent(target: Target) -> Element {
        Element {
            target,
            expiry: Expiry::Never,
        }
    }

    /// Expires `duration` from now (rounded up to whole seconds).
    pub fn timed(target: Target, duration: Duration) -> Element {
        let secs = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
        Element {
            target,
            // From the rounded-up clock, so the kernel gets the full duration when it is
            // applied within the same second.
            expiry: Expiry::At(timeout_clock().saturating_add(secs.min(i64::MAX as u64) as i64)),
        }
    }

    /// Expires at Unix second `at` (a ban's `expires_at`); `None` is permanent.
    pub fn until(target: Target, at: Option<i64>) -> Element {
        Element {
            target,
            expiry: at.map_or(Expiry::Never, Expiry::At),
        }
    }
}

/// One change to the blocked sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Make the target present with this expiry (replacing an earlier expiry).
    Add(Element),
    /// Make the target absent; not an error when it is already absent (e.g. expired).
    Remove(Target),
}

impl Change {
    /// The address or network the change is about.
    pub fn target(&self) -> Target {
        match self {
            Change::Add(e) => e.target,
            Change::Remove(t) => *t,
        }
    }
}

/// Changes applied together, in order, as one transaction. A later change to the same target
/// overrides an earlier one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// The changes, in the order they apply.
    pub changes: Vec<Change>,
}

impl ChangeSet {
    /// An empty change set.
    pub fn new() -> ChangeSet {
        ChangeSet::default()
    }
    /// Appends [`Change::Add`] of `element`.
    pub fn add(&mut self, element: Element) -> &mut Self {
        self.changes.push(Change::Add(element));
        self
    }
    /// Appends [`Change::Remove`] of `target`.
    pub fn remove(&mut self, target: Target) -> &mut Self {
        self.changes.push(Change::Remove(target));
        self
    }
    /// True when there is no change; applying it sends no transaction.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }
    /// The number of changes, repeats of a target included.
    pub fn len(&self) -> usize {
        self.changes.len()
    }
}

impl FromIterator<Change> for ChangeSet {
    fn from_iter<I: IntoIterator<Item = Change>>(iter: I) -> Self {
        ChangeSet {
            changes: iter.into_iter().collect(),
        }
    }
}

/// What one `apply` or `replace_all` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Addresses and networks now present that the change set added.
    pub added: usize,
    /// Targets the change set removed.
    pub removed: usize,
    /// Network elements written to the interval sets after merging.
    pub interval_elements: usize,
    /// Networks that were absorbed by merging (contained in, or joined with, another).
    pub networks_merged: usize,
    /// Additions skipped because their expiry had already passed.
    pub skipped_expired: usize,
    /// Transactions sent to the kernel: 1, or 0 for an empty change set (a replace-all whose
    /// elements the kernel refused counts its final transaction).
    pub transactions: usize,
    /// Elements the kernel refused in a replace-all, left out of the transaction that applied
    /// the rest: (the element, why).
    pub refused: Vec<(String, String)>,
}

/// Why the firewall did not change. Nothing was half-applied in any case: a batch is one
/// nftables transaction.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FirewallError {
    /// The request itself is wrong (e.g. a target of the wrong family for a set).
    #[error("invalid firewall request: {0}")]
    Invalid(String),
    /// nft or the kernel refused the transaction.
    #[error("nftables refused the change{}: {message}", element.as_ref().map(|e| format!(" (element {e})")).unwrap_or_default())]
    Refused {
        /// nft's or the kernel's message, whole.
        message: String,
        /// The first address or CIDR the message quotes, when there is one: the element the
        /// transaction failed on.
        element: Option<String>,
    },
    /// Our table, set or chain does not exist (deleted or flushed by someone else).
    #[error("the crmonban nftables layout is missing: {0}")]
    LayoutMissing(String),
    /// nftables cannot be used at all: no nft binary, no libnftables, no permission.
    #[error("nftables unavailable: {0}")]
    Unavailable(String),
    /// nft answered something we could not read.
    #[error("unexpected output from nft: {0}")]
    Parse(String),
    /// An address set cannot take the new addresses: it is at the size it was created for.
    /// Nothing was applied; rebuild with [`FirewallBackend::replace_all`] (which sizes the
    /// sets for what it loads) with these changes in.
    #[error("an nftables address set is full: {0}")]
    SetFull(String),
}

impl FirewallError {
    /// Classifies an nft error message. nft quotes the failing command (with the element) in
    /// its message; we keep the first quoted element we recognise.
    pub(crate) fn from_nft_message(message: &str) -> FirewallError {
        let lower = message.to_ascii_lowercase();
        if lower.contains("operation not permitted") {
            return FirewallError::Unavailable(format!(
                "{message} (crmonban must run as root or with CAP_NET_ADMIN)"
            ));
        }
        if lower.contains("no such file or directory") && !lower.contains("element") {
            return FirewallError::LayoutMissing(message.to_owned());
        }
        FirewallError::Refused {
            element: first_address_in(message),
            message: message.to_owned(),
        }
    }
}

fn first_address_in(text: &str) -> Option<String> {
    text.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':' || c == '/'))
        .filter(|w| w.contains('.') || w.matches(':').count() >= 2)
        .find(|w| Target::parse(w).is_ok())
        .map(str::to_owned)
}

/// The kernel side of bans. Implementations apply each call as one transaction.
pub trait FirewallBackend: Send {
    /// Creates the table, sets and chains when missing. Idempotent: on a complete layout it
    /// changes nothing. Cheap (a few existence probes) whatever the sets hold.
    fn ensure_layout(&mut self) -> Result<(), FirewallError>;

    /// Applies a change set as one transaction. When an address set cannot take the new
    /// addresses the error is [`FirewallError::SetFull`] and nothing changed: the caller, who
    /// knows every ban, rebuilds with [`replace_all`](FirewallBackend::replace_all). The
    /// backend does not read the sets back to grow them itself: the kernel lists a hash set
    /// in rounds of ~32 KiB, each walking it from the start (a million elements: ~45 s).
    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError>;

    /// Makes the sets hold exactly `elements` (and the chains exactly our rules), creating the
    /// layout if needed, in one transaction: used to restore bans at start and to repair.
    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError>;

    /// [`replace_all`](FirewallBackend::replace_all) with room made for `expected` addresses
    /// of each family in all, of which `elements` are the first: the first transaction of a
    /// restore that [`apply`](FirewallBackend::apply) goes on with, one part at a time (see
    /// [`holds_nothing`](FirewallBackend::holds_nothing)). By default the room is what
    /// `replace_all` makes.
    fn replace_all_expecting(
        &mut self,
        elements: &[Element],
        expected: usize,
    ) -> Result<ApplyReport, FirewallError> {
        let _ = expected;
        self.replace_all(elements)
    }

    /// True when the kernel holds nothing of ours (no table: no ban of this backend is in
    /// force). A restore may then load in parts, one transaction each, every part enforced as
    /// soon as it is in, instead of one transaction that enforces nothing until all is in; with
    /// bans in the kernel a restore stays one transaction, so that none is ever missing. The
    /// default, `false`, keeps every restore one transaction.
    fn holds_nothing(&mut self) -> Result<bool, FirewallError> {
        Ok(false)
    }

    /// True when the table exists (a probe that costs the same at any set size).
    fn layout_present(&mut self) -> Result<bool, FirewallError>;

    /// Reads every element back from the kernel. Slow at scale (tens of seconds at a million
    /// elements): for diagnostics and tests, never the ban path.
    fn list(&mut self) -> Result<Vec<Element>, FirewallError>;

    /// How many elements the sets hold (single IPv4, single IPv6, IPv4 networks, IPv6
    /// networks; at least one per interval), read without the slow path of [`list`]; `None`
    /// when the backend cannot tell. Costs a read of every element: the engine asks only when
    /// [`generation`] says the ruleset changed.
    ///
    /// [`list`]: FirewallBackend::list
    /// [`generation`]: FirewallBackend::generation
    fn element_counts(&mut self) -> Result<Option<[usize; 4]>, FirewallError> {
        Ok(None)
    }

    /// Whether the kernel holds each of `targets`, and until when (`None` in the list: not
    /// held; a network counts as held when its first address lies in a held interval), read
    /// element by element rather than by listing the sets: sampling a few thousand of a million
    /// elements takes milliseconds. `None` when the backend cannot look elements up.
    fn lookup(&mut self, targets: &[Target]) -> Result<Option<Vec<Option<Expiry>>>, FirewallError> {
        let _ = targets;
        Ok(None)
    }

    /// A number that changes whenever anyone changes the ruleset (nftables' generation id);
    /// `None` when the backend has none, and then every check reads the elements.
    fn generation(&mut self) -> Result<Option<u32>, FirewallError> {
        Ok(None)
    }

    /// What each drop rule dropped so far (packets and bytes of its `counter`); `None` when
    /// the backend keeps no counters. For metrics: read without touching a set element.
    fn drop_counters(&mut self) -> Result<Option<Vec<RuleCounter>>, FirewallError> {
        Ok(None)
    }

    /// Removes the table and everything in it.
    fn teardown(&mut self) -> Result<(), FirewallError>;

    /// A one-line description for logs ("nftables via netlink ..., table inet crmonban").
    fn describe(&self) -> String;
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expiry {
            Expiry::Never => write!(f, "{} (permanent)", self.target),
            Expiry::At(at) => write!(f, "{} (until {at})", self.target),
        }
    }
}

pub(crate) use crmonban_core::unix_now as now_unix;

/// The clock kernel timeouts are computed from: the current second rounded UP. Expiries are
/// whole Unix seconds, so a timeout of `expires_at - timeout_clock()` ends the element in the
/// kernel at or less than a second before `expires_at`, never after: when the database says a
/// ban has expired, the kernel has already let it go.
pub(crate) fn timeout_clock() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    now.as_secs() as i64 + i64::from(now.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_timeouts() {
        assert_eq!(Expiry::Never.timeout_at(100), None);
        assert_eq!(Expiry::At(160).timeout_at(100), Some(60));
        assert_eq!(Expiry::At(90).timeout_at(100), Some(1));
        assert!(Expiry::At(90).is_past(100));
        assert!(!Expiry::Never.is_past(i64::MAX));
    }

    #[test]
    fn nft_messages_are_classified_with_the_element() {
        let e = FirewallError::from_nft_message(
            "Error: interval overlaps with an existing one\nadd element inet t n { 10.1.0.0/16 timeout 100s }",
        );
        assert!(
            matches!(e, FirewallError::Refused { element: Some(ref el), .. } if el == "10.1.0.0/16"),
            "{e:?}"
        );
        let e = FirewallError::from_nft_message(
            "Error: Could not process rule: No such file or directory\nadd set inet crmonban blocked_v4",
        );
        assert!(matches!(e, FirewallError::LayoutMissing(_)));
        let e = FirewallError::from_nft_message(
            "Error: Could not process rule: Operation not permitted",
        );
        assert!(e.to_string().contains("CAP_NET_ADMIN"));
    }
}
