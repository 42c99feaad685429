//! Building one nftables transaction as a list of [`Command`]s that say what to do to our
//! table ("add set blocked_v4", "add these elements"), not how: the netlink path (`netlink`)
//! encodes them as nf_tables messages, the JSON path (`json`) as an nftables JSON document for
//! libnftables or `nft -j`. Element lists, which are nearly all of a bulk batch, are kept as
//! plain addresses. Every object is named from the [`Layout`]; nothing outside our table is
//! ever named.

use std::net::IpAddr;

use crmonban_core::Target;
use ipnet::IpNet;

use crate::intervals::Interval;
use crate::{Element, Layout};

pub(crate) struct BatchBuilder {
    layout: Layout,
    commands: Vec<Command>,
}

/// One command of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Command {
    /// Anything but an element list.
    Object(Obj),
    /// Add or delete elements of one set of our table.
    Elements {
        delete: bool,
        set: String,
        elems: Vec<Elem>,
    },
}

/// A command on one object of our table (named from the batch's [`Layout`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Obj {
    /// `add table`: no error when it exists.
    AddTable,
    /// `create table`: "File exists" when it does (an existence probe).
    CreateTable,
    /// `delete table`: an error when it does not exist (follow an [`Obj::AddTable`]).
    DeleteTable,
    /// `add set` of the hash (`net == false`) or interval set of a family, with the timeout
    /// flag; a hash set with room for `capacity` elements (see [`Capacity`]).
    AddSet {
        ipv4: bool,
        net: bool,
        capacity: Option<u32>,
    },
    /// The base chain on the input (or forward) hook, policy accept; `create`: "File exists"
    /// when it does.
    AddChain { forward: bool, create: bool },
    /// `<ip|ip6> saddr @<set> counter drop` appended to the input (or forward) chain.
    AddRule {
        forward: bool,
        ipv4: bool,
        net: bool,
    },
    /// `flush set`: removes every element.
    FlushSet(String),
    /// `list set`: the elements, as JSON output (the JSON path only).
    ListSet { ipv4: bool, net: bool },
}

/// One set element: an address, a prefix or a range, with its timeout in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Elem {
    pub(crate) val: ElemVal,
    pub(crate) timeout: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ElemVal {
    Addr(IpAddr),
    Prefix(IpNet),
    Range(IpAddr, IpAddr),
}

impl std::fmt::Display for Elem {
    /// `192.0.2.7`, `10.0.0.0/8` or `a-b`, then ` timeout 60s` when it has one.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.val {
            ElemVal::Addr(a) => write!(f, "{a}")?,
            ElemVal::Prefix(n) => write!(f, "{n}")?,
            ElemVal::Range(lo, hi) => write!(f, "{lo}-{hi}")?,
        }
        match self.timeout {
            Some(t) => write!(f, " timeout {t}s"),
            None => Ok(()),
        }
    }
}

impl Elem {
    /// The address, prefix or range, without the timeout.
    pub(crate) fn value_string(&self) -> String {
        match self.val {
            ElemVal::Addr(a) => a.to_string(),
            ElemVal::Prefix(n) => n.to_string(),
            ElemVal::Range(lo, hi) => format!("{lo}-{hi}"),
        }
    }
}

/// A finished batch: the commands of one transaction, all on the layout's table.
#[derive(Clone, Debug)]
pub(crate) struct Commands {
    pub(crate) layout: Layout,
    pub(crate) list: Vec<Command>,
}

impl Commands {
    /// How many elements the batch's element commands carry.
    pub(crate) fn element_count(&self) -> usize {
        self.list
            .iter()
            .map(|c| match c {
                Command::Elements { elems, .. } => elems.len(),
                Command::Object(_) => 0,
            })
            .sum()
    }

    /// True when the batch reads rather than changes (a listing).
    pub(crate) fn is_listing(&self) -> bool {
        self.list
            .iter()
            .any(|c| matches!(c, Command::Object(Obj::ListSet { .. })))
    }
}

/// How many elements each hash set (IPv4, IPv6) is created for: the kernel sizes its hash table
/// for that many at once (no rehashing while a large restore loads: a million addresses load
/// in about half the kernel time) and refuses more (`ENFILE`), which the backend answers by
/// rebuilding the sets larger.
pub(crate) type Capacity = [u32; 2];

/// The four sets in the order the rules of a chain look them up (DESIGN.md §3).
pub(crate) const RULE_ORDER: [(bool, bool); 4] =
    [(true, false), (true, true), (false, false), (false, true)];

impl BatchBuilder {
    pub(crate) fn new(layout: &Layout) -> Self {
        BatchBuilder {
            layout: layout.clone(),
            commands: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> Commands {
        Commands {
            layout: self.layout,
            list: self.commands,
        }
    }

    fn obj(&mut self, obj: Obj) {
        self.commands.push(Command::Object(obj));
    }

    fn add_rules(&mut self, forward: bool) {
        for (ipv4, net) in RULE_ORDER {
            self.obj(Obj::AddRule { forward, ipv4, net });
        }
    }

    pub(crate) fn create_table(&mut self) {
        self.obj(Obj::CreateTable);
    }

    pub(crate) fn add_table_and_sets(&mut self, capacity: Capacity) {
        self.obj(Obj::AddTable);
        for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
            let capacity = (!net).then_some(capacity[usize::from(!ipv4)]);
            self.obj(Obj::AddSet {
                ipv4,
                net,
                capacity,
            });
        }
    }

    /// `create chain` (fails with "File exists" when present) plus its rules.
    pub(crate) fn create_chain_with_rules(&mut self, forward: bool) {
        self.obj(Obj::AddChain {
            forward,
            create: true,
        });
        self.add_rules(forward);
    }

    /// The whole layout from scratch, in place of whatever the table held: delete the table
    /// (after an `add`, so a missing one is no error), then create it with its sets and chains.
    /// Deleting a set frees its elements at once; `flush set` on 1M elements instead queues
    /// one delete (and, when anyone listens, one notification) per element in the transaction.
    /// A rebuilt chain also takes a changed priority.
    pub(crate) fn recreate_layout(&mut self, capacity: Capacity) {
        self.delete_table();
        self.add_table_and_sets(capacity);
        for forward in [false, true] {
            self.obj(Obj::AddChain {
                forward,
                create: false,
            });
            self.add_rules(forward);
        }
    }

    pub(crate) fn flush_set(&mut self, name: &str) {
        self.obj(Obj::FlushSet(name.to_owned()));
    }

    fn elements(&mut self, delete: bool, set: &str, elems: Vec<Elem>) {
        self.commands.push(Command::Elements {
            delete,
            set: set.to_owned(),
            elems,
        });
    }

    pub(crate) fn add_elements(&mut self, set: &str, elements: &[Element], now: i64) {
        if elements.is_empty() {
            return;
        }
        let elems = elements
            .iter()
            .map(|e| Elem {
                val: value(&e.target),
                timeout: e.expiry.timeout_at(now),
            })
            .collect();
        self.elements(false, set, elems);
    }

    /// Add then delete in one transaction: absent elements (e.g. expired) do not fail it.
    pub(crate) fn remove_elements(&mut self, set: &str, targets: &[Target]) {
        if targets.is_empty() {
            return;
        }
        let elems: Vec<Elem> = targets
            .iter()
            .map(|t| Elem {
                val: value(t),
                timeout: None,
            })
            .collect();
        self.elements(false, set, elems.clone());
        self.elements(true, set, elems);
    }

    pub(crate) fn add_intervals(&mut self, set: &str, intervals: &[&Interval], now: i64) {
        if intervals.is_empty() {
            return;
        }
        let elems = intervals
            .iter()
            .map(|iv| Elem {
                val: match iv.as_cidr() {
                    Some(net) => ElemVal::Prefix(net),
                    None => ElemVal::Range(iv.lo, iv.hi),
                },
                timeout: iv.expiry.timeout_at(now),
            })
            .collect();
        self.elements(false, set, elems);
    }

    pub(crate) fn list_set(&mut self, ipv4: bool, net: bool) {
        self.obj(Obj::ListSet { ipv4, net });
    }

    /// `add table` then `delete table`: removes it whether or not it existed.
    pub(crate) fn delete_table(&mut self) {
        self.obj(Obj::AddTable);
        self.obj(Obj::DeleteTable);
    }
}

fn value(target: &Target) -> ElemVal {
    match *target {
        Target::Addr(a) => ElemVal::Addr(a),
        Target::Net(n) => ElemVal::Prefix(n),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Expiry;

    /// A restore-shaped batch: the layout rebuilt, addresses of both families, an interval set
    /// rewritten with a prefix and a range, and a tolerant removal.
    pub(crate) fn restore_batch(layout: &Layout) -> Commands {
        let mut batch = BatchBuilder::new(layout);
        batch.recreate_layout([65_536, 65_536]);
        let now = 1_000;
        batch.add_elements(
            "blocked_v4",
            &[
                Element::until(Target::parse("192.0.2.7").unwrap(), Some(now + 60)),
                Element::permanent(Target::parse("192.0.2.8").unwrap()),
            ],
            now,
        );
        batch.remove_elements("blocked_v6", &[Target::parse("2001:db8::1").unwrap()]);
        batch.flush_set("blocked_v4_net");
        let prefix = Interval {
            lo: "10.0.0.0".parse().unwrap(),
            hi: "10.255.255.255".parse().unwrap(),
            expiry: Expiry::Never,
        };
        let range = Interval {
            lo: "198.51.100.0".parse().unwrap(),
            hi: "198.51.100.191".parse().unwrap(),
            expiry: Expiry::At(now + 5),
        };
        batch.add_intervals("blocked_v4_net", &[&prefix, &range], now);
        batch.finish()
    }

    #[test]
    fn a_restore_rebuilds_the_table_then_loads_it() {
        let commands = restore_batch(&Layout::default());
        assert_eq!(commands.element_count(), 6);
        assert_eq!(
            commands.list[..3],
            [
                Command::Object(Obj::AddTable),
                Command::Object(Obj::DeleteTable),
                Command::Object(Obj::AddTable)
            ]
        );
        let rules = commands
            .list
            .iter()
            .filter(|c| matches!(c, Command::Object(Obj::AddRule { .. })))
            .count();
        assert_eq!(rules, 8, "four rules in each of two chains");
        assert!(!commands.is_listing());
    }
}
