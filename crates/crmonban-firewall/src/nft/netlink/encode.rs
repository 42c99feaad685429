//! A batch as nf_tables netlink messages between `BATCH_BEGIN` and `BATCH_END`: one transaction,
//! written into one buffer for one `sendmsg`. The messages and attributes are the
//! `netlink-packet-netfilter` crate's types; this module decides which ones say what our
//! [`Command`]s mean.
//!
//! Elements travel [`ELEMENTS_PER_MESSAGE`] to a message (an attribute's length is 16 bits,
//! so one message holds at most ~64 KiB of elements), as many messages as the batch needs. An
//! interval is two elements, as nft sends it: its first address, and the address after its
//! last flagged as the interval's end (none when it runs to the end of the address space).

use std::ops::Range;

use netlink_packet_core::{
    DefaultNla, NLA_F_NESTED, NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, NetlinkMessage,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Cmp, DataAttribute, ExpressionAttribute, Expressions, Hook,
    HookNumber, Immediate, InetHookNumber, ListAttribute, Lookup, Meta, MetaKey, NfTablesMessage,
    Operator, Payload, Register, RuleAttribute, RuleMessage, SetAttribute, SetDescription,
    SetElementList, SetElementMessage, SetFlags, SetMessage, TableAttribute, TableFlags,
    TableMessage, Verdict, VerdictAttribute,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};

use super::super::batch::{Command, Commands, Obj};
use super::ELEMENTS_ATTR;
use super::elements::{element_list, message_chunks};
use crate::Layout;

/// Most list entries in one message: 1024 IPv6 entries with timeouts are ~40 KiB, under the
/// 64 KiB an attribute can hold. An interval takes two entries (its start and the address
/// after its end), so a message carries at most 512 of those.
pub(crate) const ELEMENTS_PER_MESSAGE: usize = 1024;

/// `NFNL_SUBSYS_NFTABLES`: the subsystem a batch is for (the batch header's `res_id`).
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// nft's datatype numbers for the set key (`TYPE_IPADDR`, `TYPE_IP6ADDR`).
const TYPE_IPADDR: u32 = 7;
const TYPE_IP6ADDR: u32 = 8;
/// `NFPROTO_IPV4`, `NFPROTO_IPV6`: what `meta nfproto` loads.
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
/// `NFT_PAYLOAD_NETWORK_HEADER`.
const NETWORK_HEADER: u32 = 1;
/// `NF_DROP`, `NF_ACCEPT`.
const NF_DROP: u32 = 0;
const NF_ACCEPT: u32 = 1;

/// What one message of a batch carries, to name the culprit when the kernel refuses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Carried {
    /// Command `index` of the batch (an object).
    Object(usize),
    /// Elements `elems` of command `index`.
    Elements { index: usize, elems: Range<usize> },
}

/// One message as sent.
#[derive(Clone, Debug)]
pub(crate) struct Sent {
    pub(crate) seq: u32,
    /// Where it starts in [`Batch::buf`], and its length.
    pub(crate) at: Range<usize>,
    pub(crate) carried: Carried,
}

/// A whole transaction, ready for one `sendmsg`.
pub(crate) struct Batch {
    pub(crate) buf: Vec<u8>,
    /// The sequence number of `BATCH_BEGIN` (errors of the commit itself point at it).
    pub(crate) begin: u32,
    /// Every message between `BATCH_BEGIN` and `BATCH_END`, in order.
    pub(crate) sent: Vec<Sent>,
    /// The next free sequence number.
    pub(crate) next_seq: u32,
}

/// Encodes `commands` with sequence numbers from `seq`. `None` when a command has no netlink
/// form here (a listing).
pub(crate) fn encode(commands: &Commands, seq: u32) -> Option<Batch> {
    // ~36 bytes per element plus headers: one allocation for the whole batch.
    let mut batch = Batch {
        buf: Vec::with_capacity(256 * commands.list.len() + 40 * commands.element_count() + 64),
        begin: seq,
        sent: Vec::new(),
        next_seq: seq,
    };
    batch.control(ControlMessage::BatchBegin);
    let layout = &commands.layout;
    for (index, command) in commands.list.iter().enumerate() {
        match command {
            Command::Object(obj) => {
                let (message, flags) = object(layout, obj)?;
                batch.push(message, flags, Carried::Object(index));
            }
            Command::Elements { delete, set, elems } => {
                let mut start = 0;
                for chunk in message_chunks(elems) {
                    let message = SetElementMessage {
                        attributes: vec![
                            SetElementList::Table(layout.table.clone()),
                            SetElementList::Set(set.clone()),
                            SetElementList::Other(DefaultNla::new(
                                ELEMENTS_ATTR | NLA_F_NESTED,
                                element_list(chunk),
                            )),
                        ],
                    };
                    let (message, flags) = if *delete {
                        (NfTablesMessage::DeleteSetElement(message), 0)
                    } else {
                        (NfTablesMessage::NewSetElement(message), NLM_F_CREATE)
                    };
                    let elems = start..start + chunk.len();
                    start = elems.end;
                    batch.push(message, flags, Carried::Elements { index, elems });
                }
            }
        }
    }
    batch.control(ControlMessage::BatchEnd);
    Some(batch)
}

impl Batch {
    fn control(&mut self, message: ControlMessage) {
        let header = NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES);
        self.write(NetfilterMessage::new(header, message), 0);
    }

    fn push(&mut self, message: NfTablesMessage, flags: u16, carried: Carried) {
        let header = NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0);
        let start = self.buf.len();
        let seq = self.write(NetfilterMessage::new(header, message), flags);
        self.sent.push(Sent {
            seq,
            at: start..self.buf.len(),
            carried,
        });
    }

    /// Appends one message; returns its sequence number.
    fn write(&mut self, message: NetfilterMessage, flags: u16) -> u32 {
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let mut message = NetlinkMessage::from(message);
        message.header.flags = NLM_F_REQUEST | flags;
        message.header.sequence_number = seq;
        message.finalize();
        let start = self.buf.len();
        self.buf.resize(start + message.buffer_len(), 0);
        message.serialize(&mut self.buf[start..]);
        seq
    }
}

/// The message for an object command and its flags; `None` for a listing.
fn object(layout: &Layout, obj: &Obj) -> Option<(NfTablesMessage, u16)> {
    let table = || layout.table.clone();
    Some(match obj {
        Obj::AddTable | Obj::CreateTable => {
            let message = NfTablesMessage::NewTable(TableMessage {
                attributes: vec![
                    TableAttribute::Name(table()),
                    TableAttribute::Flags(TableFlags::default()),
                ],
            });
            let exclusive = if *obj == Obj::CreateTable {
                NLM_F_EXCL
            } else {
                0
            };
            (message, NLM_F_CREATE | exclusive)
        }
        Obj::DeleteTable => (
            NfTablesMessage::DeleteTable(TableMessage {
                attributes: vec![TableAttribute::Name(table())],
            }),
            0,
        ),
        Obj::AddSet {
            ipv4,
            net,
            capacity,
        } => {
            let mut flags = SetFlags::Timeout;
            if *net {
                flags |= SetFlags::Interval;
            }
            let (key_type, key_len) = if *ipv4 {
                (TYPE_IPADDR, 4)
            } else {
                (TYPE_IP6ADDR, 16)
            };
            let mut attributes = vec![
                SetAttribute::Table(table()),
                SetAttribute::Name(layout.set_for(*ipv4, *net)),
                SetAttribute::Flags(flags),
                SetAttribute::KeyType(key_type),
                SetAttribute::KeyLen(key_len),
                // Unique within the transaction (sets are also found by name).
                SetAttribute::Id(1 + u32::from(*ipv4) * 2 + u32::from(*net)),
            ];
            if let Some(size) = capacity {
                attributes.push(SetAttribute::Description(vec![SetDescription::Size(*size)]));
            }
            let message = NfTablesMessage::NewSet(SetMessage { attributes });
            (message, NLM_F_CREATE)
        }
        Obj::AddChain { forward, create } => {
            let hook = if *forward {
                InetHookNumber::Forward
            } else {
                InetHookNumber::LocalIn
            };
            let message = NfTablesMessage::NewChain(ChainMessage {
                attributes: vec![
                    ChainAttribute::Table(table()),
                    ChainAttribute::Name(layout.chain(*forward).to_owned()),
                    ChainAttribute::Hook(vec![
                        Hook::Number(HookNumber::from(hook)),
                        // The kernel reads the priority as a signed 32-bit number.
                        Hook::Priority(layout.priority as u32),
                    ]),
                    ChainAttribute::Type("filter".into()),
                    ChainAttribute::Policy(NF_ACCEPT),
                ],
            });
            let exclusive = if *create { NLM_F_EXCL } else { 0 };
            (message, NLM_F_CREATE | exclusive)
        }
        Obj::AddRule { forward, ipv4, net } => (
            NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table()),
                    RuleAttribute::Chain(layout.chain(*forward).to_owned()),
                    RuleAttribute::Expressions(drop_rule(&layout.set_for(*ipv4, *net), *ipv4)),
                ],
            }),
            NLM_F_CREATE | NLM_F_APPEND,
        ),
        // A DELSETELEM without elements empties the set.
        Obj::FlushSet(set) => (
            NfTablesMessage::DeleteSetElement(SetElementMessage {
                attributes: vec![
                    SetElementList::Table(table()),
                    SetElementList::Set(set.clone()),
                ],
            }),
            0,
        ),
        Obj::ListSet { .. } => return None,
    })
}

/// `<ip|ip6> saddr @set counter drop` as the kernel runs it (what nft compiles it to): the
/// family check of an inet chain, the source address into register 1, the lookup, a counter
/// and the verdict.
fn drop_rule(set: &str, ipv4: bool) -> Vec<ListAttribute<ExpressionAttribute>> {
    let (nfproto, offset, len) = if ipv4 {
        (NFPROTO_IPV4, 12, 4)
    } else {
        (NFPROTO_IPV6, 8, 16)
    };
    vec![
        Expressions::Meta(vec![
            Meta::Key(MetaKey::Nfproto),
            Meta::DestinationRegister(Register::Reg1),
        ])
        .into(),
        Expressions::Cmp(vec![
            Cmp::SourceRegister(Register::Reg1),
            Cmp::Op(Operator::Equal),
            Cmp::Data(DataAttribute::Value(vec![nfproto])),
        ])
        .into(),
        Expressions::Payload(vec![
            Payload::DestinationRegister(Register::Reg1),
            Payload::Base(NETWORK_HEADER),
            Payload::Offset(offset),
            Payload::Len(len),
        ])
        .into(),
        Expressions::Lookup(vec![
            Lookup::SourceRegister(Register::Reg1),
            Lookup::Set(set.to_owned()),
        ])
        .into(),
        ListAttribute::Element(vec![ExpressionAttribute::Name("counter".into())]),
        Expressions::Immediate(vec![
            Immediate::DestinationRegister(Register::Verdict),
            Immediate::Data(DataAttribute::Verdict(vec![VerdictAttribute::Code(
                Verdict::Other(NF_DROP),
            )])),
        ])
        .into(),
    ]
}

#[cfg(test)]
mod tests {
    use netlink_packet_core::{Emitable, NLM_F_ACK, NetlinkBuffer, NetlinkPayload};

    use netlink_packet_netfilter::nftables::SetElementAttribute;

    use super::super::super::batch::tests::restore_batch;
    use std::net::IpAddr;

    use netlink_packet_netfilter::nftables::SetElementFlags;

    use super::super::super::batch::{Elem, ElemVal};
    use super::super::elements::{attributes_of, element_list, next_address, octets};
    use super::*;

    /// The list attributes of `elems`, in order: one per address, two per interval (see the module
    /// docs), as the crate's types.
    fn element_attributes(elems: &[Elem]) -> Vec<ListAttribute<SetElementAttribute>> {
        let mut out = Vec::with_capacity(elems.len());
        for elem in elems {
            let timeout = elem
                .timeout
                .map(|secs| SetElementAttribute::Timeout(u64::from(secs) * 1000));
            let (first, end) = match elem.val {
                ElemVal::Addr(a) => (a, None),
                ElemVal::Prefix(n) => (n.network(), Some(n.broadcast())),
                ElemVal::Range(lo, hi) => (lo, Some(hi)),
            };
            let mut attrs = vec![SetElementAttribute::Key(DataAttribute::Value(octets(
                first,
            )))];
            attrs.extend(timeout);
            out.push(ListAttribute::Element(attrs));
            if let Some(after) = end.and_then(next_address) {
                out.push(ListAttribute::Element(vec![
                    SetElementAttribute::Key(DataAttribute::Value(octets(after))),
                    SetElementAttribute::Flags(SetElementFlags::IntervalEnd),
                ]));
            }
        }
        out
    }

    /// Every message of the batch reads back as what was meant, with the framing right.
    #[test]
    fn a_restore_batch_reads_back_message_by_message() {
        let commands = restore_batch(&Layout::default());
        let batch = encode(&commands, 100).unwrap();
        assert_eq!(batch.begin, 100);
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < batch.buf.len() {
            let buffer = NetlinkBuffer::new_checked(&batch.buf[at..]).unwrap();
            let len = buffer.length() as usize;
            assert_eq!(len % 4, 0, "messages stay aligned");
            let message =
                NetlinkMessage::<NetfilterMessage>::deserialize(&batch.buf[at..at + len]).unwrap();
            assert_eq!(message.header.flags & NLM_F_ACK, 0, "errors only, no acks");
            let NetlinkPayload::InnerMessage(inner) = message.payload else {
                panic!("not a netfilter message: {message:?}");
            };
            kinds.push(inner.inner);
            at += len;
        }
        assert_eq!(kinds.len(), batch.sent.len() + 2);
        assert!(matches!(
            kinds[0],
            netlink_packet_netfilter::NetfilterMessageInner::None(ControlMessage::BatchBegin)
        ));
        // The prefix 10.0.0.0/8 is two elements, its end flagged; the range another two.
        let interval = kinds
            .iter()
            .find_map(|k| match k {
                netlink_packet_netfilter::NetfilterMessageInner::NfTables(
                    NfTablesMessage::NewSetElement(m),
                ) if m
                    .attributes
                    .contains(&SetElementList::Set("blocked_v4_net".into())) =>
                {
                    Some(m.clone())
                }
                _ => None,
            })
            .unwrap();
        let Some(SetElementList::Elements(list)) = interval.attributes.last() else {
            panic!("{interval:?}");
        };
        assert_eq!(list.len(), 4);
        assert_eq!(
            list[1],
            ListAttribute::Element(vec![
                SetElementAttribute::Key(DataAttribute::Value(vec![11, 0, 0, 0])),
                SetElementAttribute::Flags(SetElementFlags::IntervalEnd),
            ])
        );
        assert_eq!(
            list[2],
            ListAttribute::Element(vec![
                SetElementAttribute::Key(DataAttribute::Value(vec![198, 51, 100, 0])),
                SetElementAttribute::Timeout(5000),
            ])
        );
    }

    /// The elements written directly are byte for byte what the crate's typed attributes give.
    #[test]
    fn element_lists_are_what_the_typed_attributes_emit() {
        let elems = [
            Elem {
                val: ElemVal::Addr("192.0.2.7".parse().unwrap()),
                timeout: Some(3600),
            },
            Elem {
                val: ElemVal::Addr("2001:db8::7".parse().unwrap()),
                timeout: None,
            },
            Elem {
                val: ElemVal::Prefix("10.0.0.0/8".parse().unwrap()),
                timeout: Some(5),
            },
            Elem {
                val: ElemVal::Range(
                    "2001:db8::".parse().unwrap(),
                    "2001:db8::ff".parse().unwrap(),
                ),
                timeout: None,
            },
            Elem {
                val: ElemVal::Prefix("255.255.255.0/24".parse().unwrap()),
                timeout: None,
            },
        ];
        let typed = SetElementList::Elements(element_attributes(&elems));
        let mut expected = vec![0; typed.buffer_len()];
        typed.emit(&mut expected);
        let fast = DefaultNla::new(ELEMENTS_ATTR | NLA_F_NESTED, element_list(&elems));
        let mut written = vec![0; fast.buffer_len()];
        fast.emit(&mut written);
        assert_eq!(written, expected);
    }

    #[test]
    fn elements_are_split_into_messages_and_the_last_interval_has_no_end() {
        let layout = Layout::default();
        let elems: Vec<Elem> = (0..2500u32)
            .map(|i| Elem {
                val: ElemVal::Addr(IpAddr::from((0x0a00_0000 + i).to_be_bytes())),
                timeout: Some(60),
            })
            .collect();
        let commands = Commands {
            layout,
            list: vec![Command::Elements {
                delete: false,
                set: "blocked_v4".into(),
                elems,
            }],
        };
        let batch = encode(&commands, 1).unwrap();
        let spans: Vec<_> = batch.sent.iter().map(|s| s.carried.clone()).collect();
        assert_eq!(
            spans,
            [
                Carried::Elements {
                    index: 0,
                    elems: 0..1024
                },
                Carried::Elements {
                    index: 0,
                    elems: 1024..2048
                },
                Carried::Elements {
                    index: 0,
                    elems: 2048..2500
                },
            ]
        );
        let top = Elem {
            val: ElemVal::Prefix("255.255.255.0/24".parse().unwrap()),
            timeout: None,
        };
        assert_eq!(element_attributes(&[top]).len(), 1);
        assert_eq!(attributes_of(&top), 1);
    }

    /// IPv6 networks with timeouts take ~76 bytes each (start and end entries): 1024 of them
    /// would overflow an attribute's 16-bit length, so a message carries 512.
    #[test]
    fn intervals_count_twice_towards_a_message() {
        let elems: Vec<Elem> = (0..1500u128)
            .map(|i| Elem {
                val: ElemVal::Prefix(
                    ipnet::Ipv6Net::new(
                        (0x2001_0db8_0000_0000_0000_0000_0000_0000 + (i << 64)).into(),
                        64,
                    )
                    .unwrap()
                    .into(),
                ),
                timeout: Some(600),
            })
            .collect();
        let commands = Commands {
            layout: Layout::default(),
            list: vec![Command::Elements {
                delete: false,
                set: "blocked_v6_net".into(),
                elems,
            }],
        };
        let batch = encode(&commands, 1).unwrap();
        let spans: Vec<_> = batch.sent.iter().map(|s| s.carried.clone()).collect();
        assert_eq!(
            spans,
            [0..512, 512..1024, 1024..1500].map(|elems| Carried::Elements { index: 0, elems })
        );
        let mut at = 0;
        while at < batch.buf.len() {
            let len = NetlinkBuffer::new_checked(&batch.buf[at..])
                .unwrap()
                .length() as usize;
            NetlinkMessage::<NetfilterMessage>::deserialize(&batch.buf[at..at + len])
                .expect("every message reads back");
            at += len;
        }
    }
}
