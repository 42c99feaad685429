//! Building one nftables transaction. Tables, sets, chains and rules come from the `nftables`
//! crate's schema types; element lists, which are nearly all of a bulk batch, are kept as plain
//! addresses and written straight to JSON of the same schema (see [`Command::Elements`]).
//!
//! Every command also has its nft text form, used for bulk batches only (see
//! [`Commands::to_text`]): nft 1.0.6 loads a million elements ~1.7 s faster from text than from
//! JSON, and with ~400 MB instead of ~1.1 GB. A test checks that both forms build the same
//! table. Every object is named from the [`Layout`]; nothing outside our table is ever named.

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

pub(crate) struct BatchBuilder<'l> {
    layout: &'l Layout,
    commands: Vec<Command>,
}

/// One command of a batch.
#[derive(Clone, Debug)]
pub(crate) enum Command {
    /// Anything but an element list: the `nftables` crate's type, and the same command in nft
    /// text syntax (one line, no newline).
    Object {
        json: NfObject<'static>,
        text: String,
    },
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
    /// How many elements the batch's element commands carry.
    pub(crate) fn element_count(&self) -> usize {
        self.list
            .iter()
            .map(|c| match c {
                Command::Elements { elems, .. } => elems.len(),
                Command::Object { .. } => 0,
            })
            .sum()
    }

    /// The batch in nft text syntax, one command per line: the same transaction as
    /// [`Commands::to_json`]. Names are written bare (nft 1.0.6 takes no quoted identifiers),
    /// so a name that is an nft keyword (a table called `counter`) is a syntax error, which the
    /// runner answers by sending the JSON form instead.
    pub(crate) fn to_text(&self) -> String {
        let elements = self.element_count();
        // ~40 bytes per IPv6 element with a timeout.
        let mut out = String::with_capacity(128 * self.list.len() + 44 * elements);
        for command in &self.list {
            match command {
                Command::Object { text, .. } => out.push_str(text),
                Command::Elements { delete, set, elems } => {
                    let verb = if *delete { "delete" } else { "add" };
                    let _ = write!(out, "{verb} element inet {} {set} {{ ", self.table);
                    for (k, elem) in elems.iter().enumerate() {
                        if k > 0 {
                            out.push_str(", ");
                        }
                        let _ = write!(out, "{elem}");
                    }
                    out.push_str(" }");
                }
            }
            out.push('\n');
        }
        out
    }

    /// The `{"nftables": [...]}` document. Element commands are written by hand in the shape
    /// the `nftables` crate gives them, without the `null` fields it adds to every `elem`
    /// (nft 1.0.x parses those one by one, a third slower on a 100k batch).
    pub(crate) fn to_json(&self) -> Result<String, FirewallError> {
        let encode =
            |e: serde_json::Error| FirewallError::Invalid(format!("cannot encode batch: {e}"));
        let elements = self.element_count();
        // ~50 bytes per IPv6 element with a timeout: one allocation for the whole document.
        let mut out = String::with_capacity(64 + 256 * self.list.len() + 56 * elements);
        let table = serde_json::to_string(&self.table).map_err(encode)?;
        out.push_str(r#"{"nftables":["#);
        for (i, command) in self.list.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            match command {
                Command::Object { json, .. } => {
                    out.push_str(&serde_json::to_string(json).map_err(encode)?);
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

    /// One command: `json` and its text form `text`.
    fn cmd(&mut self, json: NfCmd<'static>, text: String) {
        self.commands.push(Command::Object {
            json: NfObject::CmdObject(json),
            text,
        });
    }

    /// `inet <table>`, as text commands name our table.
    fn inet_table(&self) -> String {
        format!("inet {}", self.layout.table)
    }

    /// A set's declaration in text: `<name> { type ...; flags ...; }`.
    fn set_text(&self, ipv4: bool, net: bool) -> String {
        format!(
            "{} {} {{ type {}; flags {}; }}",
            self.inet_table(),
            self.layout.set_for(ipv4, net),
            if ipv4 { "ipv4_addr" } else { "ipv6_addr" },
            if net { "interval, timeout" } else { "timeout" }
        )
    }

    /// A base chain's declaration in text.
    fn base_chain_text(&self, forward: bool) -> String {
        format!(
            "{} {} {{ type filter hook {} priority {}; policy accept; }}",
            self.inet_table(),
            self.chain_name(forward),
            if forward { "forward" } else { "input" },
            self.layout.priority
        )
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

    /// `ip saddr @set counter drop` for the four sets, in the order of DESIGN.md §3, each with
    /// its text form.
    fn rules(&self, forward: bool) -> Vec<(Rule<'static>, String)> {
        [(true, false), (true, true), (false, false), (false, true)]
            .into_iter()
            .map(|(ipv4, net)| {
                let protocol = if ipv4 { "ip" } else { "ip6" };
                let set = self.layout.set_for(ipv4, net);
                let text = format!(
                    "add rule {} {} {protocol} saddr @{set} counter drop",
                    self.inet_table(),
                    self.chain_name(forward)
                );
                let rule = Rule {
                    family: NfFamily::INet,
                    table: Cow::Owned(self.layout.table.clone()),
                    chain: Cow::Owned(self.chain_name(forward)),
                    expr: Cow::Owned(vec![
                        Statement::Match(Match {
                            left: Expression::Named(NamedExpression::Payload(
                                Payload::PayloadField(PayloadField {
                                    protocol: Cow::Borrowed(protocol),
                                    field: Cow::Borrowed("saddr"),
                                }),
                            )),
                            right: Expression::String(Cow::Owned(format!("@{set}"))),
                            op: Operator::EQ,
                        }),
                        Statement::Counter(Counter::Anonymous(None)),
                        Statement::Drop(Some(Drop {})),
                    ]),
                    handle: None,
                    index: None,
                    comment: None,
                };
                (rule, text)
            })
            .collect()
    }

    fn add_rules(&mut self, forward: bool) {
        for (rule, text) in self.rules(forward) {
            self.cmd(NfCmd::Add(NfListObject::Rule(rule)), text);
        }
    }

    pub(crate) fn create_table(&mut self) {
        let text = format!("create table {}", self.inet_table());
        self.cmd(NfCmd::Create(NfListObject::Table(self.table())), text);
    }

    pub(crate) fn add_table_and_sets(&mut self) {
        let text = format!("add table {}", self.inet_table());
        self.cmd(NfCmd::Add(NfListObject::Table(self.table())), text);
        for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
            let text = format!("add set {}", self.set_text(ipv4, net));
            let set = NfListObject::Set(Box::new(self.set(ipv4, net)));
            self.cmd(NfCmd::Add(set), text);
        }
    }

    /// `create chain` (fails with "File exists" when present) plus its rules.
    pub(crate) fn create_chain_with_rules(&mut self, forward: bool) {
        let text = format!("create chain {}", self.base_chain_text(forward));
        let chain = NfListObject::Chain(self.base_chain(forward));
        self.cmd(NfCmd::Create(chain), text);
        self.add_rules(forward);
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
            let text = format!("add chain {}", self.base_chain_text(forward));
            let chain = NfListObject::Chain(self.base_chain(forward));
            self.cmd(NfCmd::Add(chain), text);
            self.add_rules(forward);
        }
    }

    pub(crate) fn flush_set(&mut self, name: &str) {
        let text = format!("flush set {} {name}", self.inet_table());
        let set = self.set_ref(name);
        self.cmd(NfCmd::Flush(FlushObject::Set(Box::new(set))), text);
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
        let text = format!(
            "list set {} {}",
            self.inet_table(),
            self.layout.set_for(ipv4, net)
        );
        let set = self.set(ipv4, net);
        self.cmd(NfCmd::List(NfListObject::Set(Box::new(set))), text);
    }

    /// `add table` then `delete table`: removes it whether or not it existed.
    pub(crate) fn delete_table(&mut self) {
        let table = self.inet_table();
        self.cmd(
            NfCmd::Add(NfListObject::Table(self.table())),
            format!("add table {table}"),
        );
        self.cmd(
            NfCmd::Delete(NfListObject::Table(self.table())),
            format!("delete table {table}"),
        );
    }
}

fn value(target: &Target) -> ElemVal {
    match *target {
        Target::Addr(a) => ElemVal::Addr(a),
        Target::Net(n) => ElemVal::Prefix(n),
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::process::{Command as Process, Stdio};

    use super::*;
    use crate::Expiry;

    /// A restore-shaped batch: the layout rebuilt, addresses of both families, an interval set
    /// rewritten with a prefix and a range, and a tolerant removal.
    fn restore_batch(layout: &Layout) -> Commands {
        let mut batch = BatchBuilder::new(layout);
        batch.recreate_layout();
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
    fn text_form_is_the_same_transaction_as_json() {
        let commands = restore_batch(&Layout::default());
        assert_eq!(commands.element_count(), 6);
        let text = commands.to_text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[..4],
            [
                "add table inet crmonban",
                "delete table inet crmonban",
                "add table inet crmonban",
                "add set inet crmonban blocked_v4 { type ipv4_addr; flags timeout; }",
            ]
        );
        for expected in [
            "add set inet crmonban blocked_v6_net { type ipv6_addr; flags interval, timeout; }",
            "add chain inet crmonban forward { type filter hook forward priority -100; policy accept; }",
            "add rule inet crmonban input ip6 saddr @blocked_v6_net counter drop",
            "add element inet crmonban blocked_v4 { 192.0.2.7 timeout 60s, 192.0.2.8 }",
            "add element inet crmonban blocked_v6 { 2001:db8::1 }",
            "delete element inet crmonban blocked_v6 { 2001:db8::1 }",
            "flush set inet crmonban blocked_v4_net",
            "add element inet crmonban blocked_v4_net { 10.0.0.0/8, 198.51.100.0-198.51.100.191 timeout 5s }",
        ] {
            assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
        }
        // One line per command, in the same order as the JSON document.
        let json: serde_json::Value = serde_json::from_str(&commands.to_json().unwrap()).unwrap();
        assert_eq!(json["nftables"].as_array().unwrap().len(), lines.len());
    }

    #[test]
    fn root_text_form_is_accepted_by_nft() {
        let ns = crmonban_testutil::NetNs::new("fw-textcheck");
        let text = restore_batch(&Layout::default()).to_text();
        let output = ns.run(|| {
            let mut child = Process::new("nft")
                .args(["--check", "-f", "-"])
                .stdin(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("nft");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        });
        assert!(
            output.status.success(),
            "nft refused:\n{}\n{text}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
