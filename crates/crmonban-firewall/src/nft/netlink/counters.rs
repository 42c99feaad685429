//! What the drop rules dropped: the packet and byte counters of the `counter` statement in each
//! rule of our chains, read with a `GETRULE` dump per chain (answered under RCU: no nft cache,
//! no commit lock, no set element read), for metrics.

use netlink_packet_core::{Nla, parse_u64_be};
use netlink_packet_netfilter::nftables::{
    ExpressionAttribute, Expressions, NfTablesMessage, RuleAttribute, RuleMessage,
};

use super::Channel;
use super::probe::{dump, rule_drops_set, rule_parts};
use crate::{FirewallError, Layout};

/// `NFTA_COUNTER_BYTES`.
const COUNTER_BYTES: u16 = 1;
/// `NFTA_COUNTER_PACKETS`.
const COUNTER_PACKETS: u16 = 2;

/// The counter of one drop rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleCounter {
    /// The chain the rule is in (the layout's input or forward chain).
    pub chain: String,
    /// Whether that chain is on the forward hook (false: the input hook).
    pub forward: bool,
    /// The set whose sources it drops.
    pub set: String,
    /// Whether that set holds IPv4 addresses or networks (false: IPv6).
    pub ipv4: bool,
    /// Packets dropped since the rule was made.
    pub packets: u64,
    /// Bytes of those packets (from the network header on).
    pub bytes: u64,
}

/// The counters of the drop rules of `layout`'s chains in the calling thread's network
/// namespace; rules that are not ours (no lookup in one of our sets, or no counter) are left
/// out, and a missing table or chain gives none.
pub fn drop_counters(layout: &Layout) -> Result<Vec<RuleCounter>, FirewallError> {
    let mut channel = Channel::open()?;
    let ipv4_sets = [layout.set_for(true, false), layout.set_for(true, true)];
    let ipv6_sets = [layout.set_for(false, false), layout.set_for(false, true)];
    let mut out = Vec::new();
    for forward in [false, true] {
        let chain = layout.chain(forward);
        let request = NfTablesMessage::GetRule(RuleMessage {
            attributes: vec![
                RuleAttribute::Table(layout.table.clone()),
                RuleAttribute::Chain(chain.to_owned()),
            ],
        });
        for rule in dump(&mut channel, request)? {
            let Some(set) = rule_drops_set(&rule) else {
                continue;
            };
            let ipv4 = ipv4_sets.contains(&set);
            if !ipv4 && !ipv6_sets.contains(&set) {
                continue;
            }
            let Some((packets, bytes)) = counter_of(&rule) else {
                continue;
            };
            out.push(RuleCounter {
                chain: chain.to_owned(),
                forward,
                set,
                ipv4,
                packets,
                bytes,
            });
        }
    }
    Ok(out)
}

/// The packets and bytes of a rule's `counter` expression.
fn counter_of(rule: &NfTablesMessage) -> Option<(u64, u64)> {
    rule_parts(rule)?.find_map(|part| {
        let ExpressionAttribute::Data(Expressions::Other {
            expression_type,
            attributes,
        }) = part
        else {
            return None;
        };
        if expression_type != "counter" {
            return None;
        }
        let mut packets = None;
        let mut bytes = None;
        for attribute in attributes {
            let mut value = vec![0; attribute.value_len()];
            attribute.emit_value(&mut value);
            match attribute.kind() {
                COUNTER_PACKETS => packets = parse_u64_be(&value).ok(),
                COUNTER_BYTES => bytes = parse_u64_be(&value).ok(),
                _ => {}
            }
        }
        Some((packets?, bytes?))
    })
}
