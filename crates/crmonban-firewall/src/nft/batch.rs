//! Building one nftables JSON transaction from the `nftables` crate's schema types. Every
//! object is named from the [`Layout`]; nothing outside our table is ever named.

use std::borrow::Cow;
use std::collections::HashSet;

use crmonban_core::Target;
use nftables::expr::{Elem, Expression, NamedExpression, Payload, PayloadField, Prefix, Range};
use nftables::schema::{
    Chain, Element as NftElement, FlushObject, NfCmd, NfListObject, NfObject, Rule, Set, SetFlag,
    SetType, SetTypeValue, Table,
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
    objects: Vec<NfObject<'static>>,
}

const UNSET_ELEM_FIELDS: &str = r#","expires":null,"comment":null,"counter":null"#;

/// A finished batch: the commands of one transaction.
#[derive(Clone)]
pub(crate) struct Commands(pub(crate) Vec<NfObject<'static>>);

impl Commands {
    pub(crate) fn to_json(&self) -> Result<String, FirewallError> {
        /// The document shape of `nftables::schema::Nftables`, borrowing the commands.
        #[derive(serde::Serialize)]
        struct Document<'c> {
            nftables: &'c [NfObject<'static>],
        }
        let json = serde_json::to_string(&Document { nftables: &self.0 })
            .map_err(|e| FirewallError::Invalid(format!("cannot encode batch: {e}")))?;
        // The nftables crate writes unset `elem` fields as nulls, which nft 1.0.x parses one by
        // one (a third slower on a 100k batch). Our elements never set these fields, and no
        // address contains the pattern.
        Ok(json.replace(UNSET_ELEM_FIELDS, ""))
    }
}

impl<'l> BatchBuilder<'l> {
    pub(crate) fn new(layout: &'l Layout) -> Self {
        BatchBuilder {
            layout,
            objects: Vec::new(),
        }
    }

    pub(crate) fn finish(self) -> Commands {
        Commands(self.objects)
    }

    fn add(&mut self, obj: NfListObject<'static>) {
        self.objects.push(NfObject::CmdObject(NfCmd::Add(obj)));
    }

    fn delete(&mut self, obj: NfListObject<'static>) {
        self.objects.push(NfObject::CmdObject(NfCmd::Delete(obj)));
    }

    fn cmd(&mut self, cmd: NfCmd<'static>) {
        self.objects.push(NfObject::CmdObject(cmd));
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

    /// Rebuilds both chains from scratch (a changed priority needs a new chain): add a bare
    /// chain so the rest cannot fail on absence, flush it, delete it, create it with its rules.
    pub(crate) fn reset_chains(&mut self) {
        for forward in [false, true] {
            self.add(NfListObject::Chain(self.bare_chain(forward)));
            self.cmd(NfCmd::Flush(FlushObject::Chain(self.bare_chain(forward))));
            self.delete(NfListObject::Chain(self.bare_chain(forward)));
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

    pub(crate) fn flush_all_sets(&mut self) {
        for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
            self.flush_set(&self.layout.set_for(ipv4, net));
        }
    }

    fn element_cmd(&self, set: &str, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
        NfListObject::Element(NftElement {
            family: NfFamily::INet,
            table: Cow::Owned(self.layout.table.clone()),
            name: Cow::Owned(set.to_owned()),
            elem: Cow::Owned(elem),
        })
    }

    pub(crate) fn add_elements(&mut self, set: &str, elements: &[Element], now: i64) {
        if elements.is_empty() {
            return;
        }
        let elem = elements
            .iter()
            .map(|e| with_timeout(address(&e.target), e.expiry.timeout_at(now)))
            .collect();
        let cmd = self.element_cmd(set, elem);
        self.add(cmd);
    }

    /// Add then delete in one transaction: absent elements (e.g. expired) do not fail it.
    pub(crate) fn remove_elements(&mut self, set: &str, targets: &[Target]) {
        if targets.is_empty() {
            return;
        }
        let elem: Vec<_> = targets.iter().map(address).collect();
        let add = self.element_cmd(set, elem.clone());
        self.add(add);
        let delete = self.element_cmd(set, elem);
        self.delete(delete);
    }

    pub(crate) fn add_intervals(&mut self, set: &str, intervals: &[&Interval], now: i64) {
        if intervals.is_empty() {
            return;
        }
        let elem = intervals
            .iter()
            .map(|iv| {
                let val = match iv.as_cidr() {
                    Some(net) => Expression::Named(NamedExpression::Prefix(Prefix {
                        addr: Box::new(Expression::String(Cow::Owned(net.network().to_string()))),
                        len: u32::from(net.prefix_len()),
                    })),
                    None => Expression::Range(Box::new(Range {
                        range: [
                            Expression::String(Cow::Owned(iv.lo.to_string())),
                            Expression::String(Cow::Owned(iv.hi.to_string())),
                        ],
                    })),
                };
                with_timeout(val, iv.expiry.timeout_at(now))
            })
            .collect();
        let cmd = self.element_cmd(set, elem);
        self.add(cmd);
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

fn address(target: &Target) -> Expression<'static> {
    Expression::String(Cow::Owned(target.to_string()))
}

fn with_timeout(val: Expression<'static>, timeout: Option<u32>) -> Expression<'static> {
    match timeout {
        None => val,
        Some(secs) => Expression::Named(NamedExpression::Elem(Elem {
            val: Box::new(val),
            timeout: Some(secs),
            expires: None,
            comment: None,
            counter: None,
        })),
    }
}
