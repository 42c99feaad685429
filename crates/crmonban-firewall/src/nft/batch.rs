//! Building one nftables JSON transaction. Tables, sets, chains and rules come from the
//! `nftables` crate's schema types; element lists, which are nearly all of a bulk batch, are
//! kept as plain addresses and written straight to JSON of the same schema (see
//! [`Command::Elements`]). Every object is named from the [`Layout`]; nothing outside our table
//! is ever named.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use crmonban_core::Target;
use ipnet::IpNet;
use nftables::expr::{Expression, NamedExpression, Payload, PayloadField};
use nftables::schema::{
    Chain, FlushObject, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag, SetType, SetTypeValue,
    Table,
};
use nftables::stmt::{Counter, Drop, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::intervals::Interval;
use crate::{Element, FirewallError, Layout};

/// An object of the layout, for existence probes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum LayoutObject {
    Table,
    InputChain,
    ForwardChain,
    Set { ipv4: bool, net: bool },
}

impl LayoutObject {
    pub(crate) const ALL: [LayoutObject; 7] = [
        LayoutObject::Table,
        LayoutObject::InputChain,
        LayoutObject::ForwardChain,
        LayoutObject::Set {
            ipv4: true,
            net: false,
        },
        LayoutObject::Set {
            ipv4: false,
            net: false,
        },
        LayoutObject::Set {
            ipv4: true,
            net: true,
        },
        LayoutObject::Set {
            ipv4: false,
            net: true,
        },
    ];
}

pub(crate) struct BatchBuilder<'l> {
    layout: &'l Layout,
    commands: Vec<Command>,
}

/// One command of a batch.
#[derive(Clone, Debug)]
pub(crate) enum Command {
    /// Anything but an element list, as the `nftables` crate's type.
    Object(NfObject<'static>),
    /// `add element` or `delete element` on one set of our table. Kept as addresses rather than
    /// `nftables::expr::Expression`s: building and serialising a million of those (an owned
    /// string and a boxed `elem` object per address) took 1.4 s of a 1M-element apply, writing
    /// the same JSON directly about a tenth of that.
    Elements {
        delete: bool,
        set: String,
        elems: Vec<Elem>,
    },
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

/// A finished batch: the commands of one transaction, all on our table.
#[derive(Clone)]
pub(crate) struct Commands {
    pub(crate) table: String,
    pub(crate) list: Vec<Command>,
}

impl Commands {
    /// The `{"nftables": [...]}` document. Element commands are written by hand in the shape
    /// the `nftables` crate gives them, without the `null` fields it adds to every `elem`
    /// (nft 1.0.x parses those one by one, a third slower on a 100k batch).
    pub(crate) fn to_json(&self) -> Result<String, FirewallError> {
        let encode =
            |e: serde_json::Error| FirewallError::Invalid(format!("cannot encode batch: {e}"));
        let elements: usize = self
            .list
            .iter()
            .map(|c| match c {
                Command::Elements { elems, .. } => elems.len(),
                Command::Object(_) => 0,
            })
            .sum();
        // ~50 bytes per IPv6 element with a timeout: one allocation for the whole document.
        let mut out = String::with_capacity(64 + 256 * self.list.len() + 56 * elements);
        let table = serde_json::to_string(&self.table).map_err(encode)?;
        out.push_str(r#"{"nftables":["#);
        for (i, command) in self.list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match command {
                Command::Object(object) => {
                    out.push_str(&serde_json::to_string(object).map_err(encode)?);
                }
                Command::Elements { delete, set, elems } => {
                    let verb = if *delete { "delete" } else { "add" };
                    let set = serde_json::to_string(set).map_err(encode)?;
                    let _ = write!(
                        out,
                        r#"{{"{verb}":{{"element":{{"family":"inet","table":{table},"name":{set},"elem":["#
                    );
                    for (k, elem) in elems.iter().enumerate() {
                        if k > 0 {
                            out.push(',');
                        }
                        write_elem(&mut out, elem);
                    }
                    out.push_str("]}}}");
                }
            }
        }
        out.push_str("]}");
        Ok(out)
    }
}

/// One element in nftables JSON: `"a"`, `{"prefix":{"addr":"a","len":n}}`,
/// `{"range":["a","b"]}`, wrapped in `{"elem":{"val":...,"timeout":n}}` when timed. Addresses
/// need no escaping.
fn write_elem(out: &mut String, elem: &Elem) {
    if elem.timeout.is_some() {
        out.push_str(r#"{"elem":{"val":"#);
    }
    // Writing to a String cannot fail.
    let _ = match elem.val {
        ElemVal::Addr(a) => write!(out, "\"{a}\""),
        ElemVal::Prefix(n) => write!(
            out,
            r#"{{"prefix":{{"addr":"{}","len":{}}}}}"#,
            n.network(),
            n.prefix_len()
        ),
        ElemVal::Range(lo, hi) => write!(out, r#"{{"range":["{lo}","{hi}"]}}"#),
    };
    if let Some(t) = elem.timeout {
        let _ = write!(out, r#","timeout":{t}}}}}"#);
    }
}

impl<'l> BatchBuilder<'l> {
    pub(crate) fn new(layout: &'l Layout) -> Self {
        BatchBuilder {
            layout,
            commands: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> Commands {
        Commands {
            table: self.layout.table.clone(),
            list: self.commands,
        }
    }

    fn add(&mut self, obj: NfListObject<'static>) {
        self.commands
            .push(Command::Object(NfObject::CmdObject(NfCmd::Add(obj))));
    }

    fn delete(&mut self, obj: NfListObject<'static>) {
        self.commands
            .push(Command::Object(NfObject::CmdObject(NfCmd::Delete(obj))));
    }

    fn cmd(&mut self, cmd: NfCmd<'static>) {
        self.commands
            .push(Command::Object(NfObject::CmdObject(cmd)));
    }

    fn table(&self) -> Table<'static> {
        Table {
            family: NfFamily::INet,
            name: Cow::Owned(self.layout.table.clone()),
            handle: None,
        }
    }

    fn set(&self, ipv4: bool, net: bool) -> Set<'static> {
        let mut flags = HashSet::from([SetFlag::Timeout]);
        if net {
            flags.insert(SetFlag::Interval);
        }
        Set {
            family: NfFamily::INet,
            table: Cow::Owned(self.layout.table.clone()),
            name: Cow::Owned(self.layout.set_for(ipv4, net)),
            handle: None,
            set_type: SetTypeValue::Single(if ipv4 {
                SetType::Ipv4Addr
            } else {
                SetType::Ipv6Addr
            }),
            policy: None,
            flags: Some(flags),
            elem: None,
            timeout: None,
            gc_interval: None,
            size: None,
            comment: None,
        }
    }

    fn set_ref(&self, name: &str) -> Set<'static> {
        // The set's type is ignored by flush/element commands, but the schema requires one.
        let mut set = self.set(true, false);
        set.name = Cow::Owned(name.to_owned());
        set.flags = None;
        set
    }

    fn chain_name(&self, forward: bool) -> String {
        if forward {
            self.layout.forward_chain.clone()
        } else {
            self.layout.input_chain.clone()
        }
    }

    fn bare_chain(&self, forward: bool) -> Chain<'static> {
        Chain {
            family: NfFamily::INet,
            table: Cow::Owned(self.layout.table.clone()),
            name: Cow::Owned(self.chain_name(forward)),
            ..Chain::default()
        }
    }

    fn base_chain(&self, forward: bool) -> Chain<'static> {
        Chain {
            _type: Some(NfChainType::Filter),
            hook: Some(if forward {
                NfHook::Forward
            } else {
                NfHook::Input
            }),
            prio: Some(self.layout.priority),
            policy: Some(NfChainPolicy::Accept),
            ..self.bare_chain(forward)
        }
    }

    /// `ip saddr @set counter drop` for the four sets, in the order of DESIGN.md §3.
    fn rules(&self, forward: bool) -> Vec<Rule<'static>> {
        [(true, false), (true, true), (false, false), (false, true)]
            .into_iter()
            .map(|(ipv4, net)| Rule {
                family: NfFamily::INet,
                table: Cow::Owned(self.layout.table.clone()),
                chain: Cow::Owned(self.chain_name(forward)),
                expr: Cow::Owned(vec![
                    Statement::Match(Match {
                        left: Expression::Named(NamedExpression::Payload(Payload::PayloadField(
                            PayloadField {
                                protocol: Cow::Borrowed(if ipv4 { "ip" } else { "ip6" }),
                                field: Cow::Borrowed("saddr"),
                            },
                        ))),
                        right: Expression::String(Cow::Owned(format!(
                            "@{}",
                            self.layout.set_for(ipv4, net)
                        ))),
                        op: Operator::EQ,
                    }),
                    Statement::Counter(Counter::Anonymous(None)),
                    Statement::Drop(Some(Drop {})),
                ]),
                handle: None,
                index: None,
                comment: None,
            })
            .collect()
    }

    pub(crate) fn create_table(&mut self) {
        self.cmd(NfCmd::Create(NfListObject::Table(self.table())));
    }

    pub(crate) fn add_table_and_sets(&mut self) {
        self.add(NfListObject::Table(self.table()));
        for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
            self.add(NfListObject::Set(Box::new(self.set(ipv4, net))));
        }
    }

    /// `create chain` (fails with "File exists" when present) plus its rules.
    pub(crate) fn create_chain_with_rules(&mut self, forward: bool) {
        self.cmd(NfCmd::Create(NfListObject::Chain(self.base_chain(forward))));
        for rule in self.rules(forward) {
            self.add(NfListObject::Rule(rule));
        }
    }

    /// The whole layout from scratch, in place of whatever the table held: delete the table
    /// (after an `add`, so a missing one is no error), then create it with its sets and chains.
    /// Deleting a set frees its elements at once; `flush set` on 1M elements instead queues
    /// one delete (and, when anyone listens, one notification) per element in the transaction.
    /// A rebuilt chain also takes a changed priority.
    pub(crate) fn recreate_layout(&mut self) {
        self.delete_table();
        self.add_table_and_sets();
        for forward in [false, true] {
            self.add(NfListObject::Chain(self.base_chain(forward)));
            for rule in self.rules(forward) {
                self.add(NfListObject::Rule(rule));
            }
        }
    }

    pub(crate) fn flush_set(&mut self, name: &str) {
        let set = self.set_ref(name);
        self.cmd(NfCmd::Flush(FlushObject::Set(Box::new(set))));
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

    pub(crate) fn create_and_delete(&mut self, object: LayoutObject) {
        let obj = match object {
            LayoutObject::Table => NfListObject::Table(self.table()),
            LayoutObject::InputChain => NfListObject::Chain(self.bare_chain(false)),
            LayoutObject::ForwardChain => NfListObject::Chain(self.bare_chain(true)),
            LayoutObject::Set { ipv4, net } => NfListObject::Set(Box::new(self.set(ipv4, net))),
        };
        self.cmd(NfCmd::Create(obj.clone()));
        self.delete(obj);
    }

    pub(crate) fn list_set(&mut self, ipv4: bool, net: bool) {
        let set = self.set(ipv4, net);
        self.cmd(NfCmd::List(NfListObject::Set(Box::new(set))));
    }

    /// `add table` then `delete table`: removes it whether or not it existed.
    pub(crate) fn delete_table(&mut self) {
        self.add(NfListObject::Table(self.table()));
        self.delete(NfListObject::Table(self.table()));
    }
}

fn value(target: &Target) -> ElemVal {
    match *target {
        Target::Addr(a) => ElemVal::Addr(a),
        Target::Net(n) => ElemVal::Prefix(n),
    }
}
