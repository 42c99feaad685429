//! Is our layout intact? Asked with read-only nfnetlink requests (`GETTABLE`, `GETSET`,
//! `GETCHAIN`, and a `GETRULE` dump of each chain) on a netlink socket of the calling thread's
//! network namespace.
//!
//! Why not through nft: every `nft list` command reads all set elements into nft's cache first
//! (tens of seconds at a million elements), and an existence probe by `create` (which fails
//! when the object exists) makes the kernel abort the transaction, which took ~20 ms each here
//! while holding the namespace's nftables commit lock. Seven of those every repair tick stalled
//! bans for up to 100 ms. These requests are answered under RCU, never take that lock, read no
//! element, and cost a few microseconds each; they also see what a `create` probe cannot: a
//! base chain that lost its hook, priority or rules, and a set with the wrong flags.

use std::io;
use std::mem::size_of;

use crate::{FirewallError, Layout};

const NETLINK_NETFILTER: libc::c_int = 12;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_GETSET: u16 = 10;
const NFPROTO_INET: u8 = 1;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 1 << 15;

/// `NFTA_TABLE_NAME`, `NFTA_SET_TABLE`, `NFTA_CHAIN_TABLE` and `NFTA_RULE_TABLE` are all 1.
const NFTA_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFT_SET_INTERVAL: u32 = 0x4;
const NFT_SET_TIMEOUT: u32 = 0x10;
const NF_INET_LOCAL_IN: u32 = 1;
const NF_INET_FORWARD: u32 = 2;

/// Rules the layout puts in each chain (DESIGN.md §3).
const RULES_PER_CHAIN: usize = 4;

const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// What is wrong with the layout, or `None` when it is complete and as configured.
pub(crate) fn layout_problem(layout: &Layout) -> Result<Option<String>, FirewallError> {
    let mut socket = Socket::open().map_err(|e| unavailable("open a netfilter socket", e))?;
    let table = layout.table.as_str();
    if socket
        .get(NFT_MSG_GETTABLE, &[(NFTA_TABLE, table)])?
        .is_none()
    {
        return Ok(Some(format!("table inet {table} is missing")));
    }
    for (ipv4, net) in [(true, false), (false, false), (true, true), (false, true)] {
        let name = layout.set_for(ipv4, net);
        let Some(set) = socket.get(
            NFT_MSG_GETSET,
            &[(NFTA_TABLE, table), (NFTA_SET_NAME, &name)],
        )?
        else {
            return Ok(Some(format!("set {name} is missing")));
        };
        let flags = attr(&set, NFTA_SET_FLAGS).and_then(be_u32).unwrap_or(0);
        let wanted = NFT_SET_TIMEOUT | if net { NFT_SET_INTERVAL } else { 0 };
        if flags & wanted != wanted {
            return Ok(Some(format!("set {name} lacks its timeout/interval flags")));
        }
    }
    for (chain, hook) in [
        (&layout.input_chain, NF_INET_LOCAL_IN),
        (&layout.forward_chain, NF_INET_FORWARD),
    ] {
        let Some(reply) = socket.get(
            NFT_MSG_GETCHAIN,
            &[(NFTA_TABLE, table), (NFTA_CHAIN_NAME, chain)],
        )?
        else {
            return Ok(Some(format!("chain {chain} is missing")));
        };
        let hook_attr = attr(&reply, NFTA_CHAIN_HOOK);
        let hooknum = hook_attr
            .and_then(|h| nested(h, NFTA_HOOK_HOOKNUM))
            .and_then(be_u32);
        let priority = hook_attr
            .and_then(|h| nested(h, NFTA_HOOK_PRIORITY))
            .and_then(be_u32)
            .map(|p| p as i32);
        if hooknum != Some(hook) || priority != Some(layout.priority) {
            return Ok(Some(format!(
                "chain {chain} is not on its hook at priority {}",
                layout.priority
            )));
        }
        let rules = socket.dump_count(
            NFT_MSG_GETRULE,
            NFT_MSG_NEWRULE,
            &[(NFTA_TABLE, table), (NFTA_RULE_CHAIN, chain)],
        )?;
        if rules != RULES_PER_CHAIN {
            return Ok(Some(format!(
                "chain {chain} holds {rules} rules instead of {RULES_PER_CHAIN}"
            )));
        }
    }
    Ok(None)
}

fn unavailable(what: &str, e: io::Error) -> FirewallError {
    if e.raw_os_error() == Some(libc::EPERM) {
        FirewallError::Unavailable(format!(
            "cannot {what}: {e} (crmonban must run as root or with CAP_NET_ADMIN)"
        ))
    } else {
        FirewallError::Unavailable(format!("cannot {what}: {e}"))
    }
}

struct Socket {
    fd: libc::c_int,
    seq: u32,
    buf: Vec<u8>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        // SAFETY: fd is ours and closed once.
        unsafe { libc::close(self.fd) };
    }
}

impl Socket {
    fn open() -> io::Result<Socket> {
        // SAFETY: plain syscall; the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let socket = Socket {
            fd,
            seq: 0,
            buf: vec![0; 64 * 1024],
        };
        // A probe never hangs the firewall thread: the kernel answers at once or not at all.
        let timeout = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: fd is valid; timeout is a live timeval of the size passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const timeout).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(socket)
    }

    fn send(
        &mut self,
        msg_type: u16,
        flags: u16,
        attrs: &[(u16, &str)],
    ) -> Result<u32, FirewallError> {
        self.seq = self.seq.wrapping_add(1);
        let mut msg = Vec::with_capacity(128);
        msg.extend_from_slice(&[0; 4]); // length, set below
        msg.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | msg_type).to_ne_bytes());
        msg.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]); // nfgenmsg: family, version, res_id
        for (kind, value) in attrs {
            let len = 4 + value.len() + 1;
            msg.extend_from_slice(&(len as u16).to_ne_bytes());
            msg.extend_from_slice(&kind.to_ne_bytes());
            msg.extend_from_slice(value.as_bytes());
            msg.push(0);
            msg.resize(msg.len().next_multiple_of(4), 0);
        }
        let len = msg.len() as u32;
        msg[..4].copy_from_slice(&len.to_ne_bytes());
        // SAFETY: an all-zero sockaddr_nl is valid; nl_pid 0 is the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: fd is valid; msg and kernel outlive the call.
        let sent = unsafe {
            libc::sendto(
                self.fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&raw const kernel).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(unavailable(
                "send a netfilter request",
                io::Error::last_os_error(),
            ));
        }
        Ok(self.seq)
    }

    /// Receives one datagram; returns its messages as (type, payload after nlmsghdr).
    fn receive(&mut self) -> Result<Vec<(u16, u32, Vec<u8>)>, FirewallError> {
        // SAFETY: fd is valid; buf is writable for its length.
        let n = unsafe { libc::recv(self.fd, self.buf.as_mut_ptr().cast(), self.buf.len(), 0) };
        if n < 0 {
            return Err(unavailable(
                "read a netfilter answer",
                io::Error::last_os_error(),
            ));
        }
        let mut data = &self.buf[..n as usize];
        let mut out = Vec::new();
        while data.len() >= NLMSG_HDRLEN {
            let len = u32::from_ne_bytes(data[0..4].try_into().unwrap_or_default()) as usize;
            if len < NLMSG_HDRLEN || len > data.len() {
                break;
            }
            let kind = u16::from_ne_bytes([data[4], data[5]]);
            let seq = u32::from_ne_bytes(data[8..12].try_into().unwrap_or_default());
            out.push((kind, seq, data[NLMSG_HDRLEN..len].to_vec()));
            data = &data[len.next_multiple_of(4).min(data.len())..];
        }
        Ok(out)
    }

    /// One object by name: its message payload, or `None` when the kernel says ENOENT.
    fn get(
        &mut self,
        msg_type: u16,
        attrs: &[(u16, &str)],
    ) -> Result<Option<Vec<u8>>, FirewallError> {
        let seq = self.send(msg_type, NLM_F_ACK, attrs)?;
        let mut object = None;
        loop {
            for (kind, reply_seq, payload) in self.receive()? {
                if reply_seq != seq {
                    continue;
                }
                if kind == NLMSG_ERROR {
                    return match error_code(&payload) {
                        0 => Ok(object),
                        code if code == -libc::ENOENT => Ok(None),
                        code => Err(unavailable(
                            "query nftables",
                            io::Error::from_raw_os_error(-code),
                        )),
                    };
                }
                object = Some(payload);
            }
        }
    }

    /// How many `want` messages a filtered dump returns.
    fn dump_count(
        &mut self,
        msg_type: u16,
        want: u16,
        attrs: &[(u16, &str)],
    ) -> Result<usize, FirewallError> {
        let seq = self.send(msg_type, NLM_F_DUMP, attrs)?;
        let mut count = 0;
        loop {
            for (kind, reply_seq, payload) in self.receive()? {
                if reply_seq != seq {
                    continue;
                }
                match kind {
                    NLMSG_DONE => return Ok(count),
                    NLMSG_ERROR => match error_code(&payload) {
                        0 => return Ok(count),
                        code if code == -libc::ENOENT => return Ok(0),
                        code => {
                            return Err(unavailable(
                                "query nftables",
                                io::Error::from_raw_os_error(-code),
                            ));
                        }
                    },
                    k if k == (NFNL_SUBSYS_NFTABLES << 8) | want => count += 1,
                    _ => {}
                }
            }
        }
    }
}

fn error_code(payload: &[u8]) -> i32 {
    payload
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .map_or(-libc::EIO, i32::from_ne_bytes)
}

/// Attributes of a netlink attribute stream, as (type without flags, value).
fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if data.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([data[0], data[1]]));
        let kind = u16::from_ne_bytes([data[2], data[3]]) & !NLA_F_NESTED;
        if len < 4 || len > data.len() {
            return None;
        }
        let value = &data[4..len];
        data = &data[len.next_multiple_of(4).min(data.len())..];
        Some((kind, value))
    })
}

/// Attribute `kind` of an nftables object message (payload after nlmsghdr).
fn attr(payload: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(payload.get(NFGENMSG_LEN..)?).find_map(|(k, v)| (k == kind).then_some(v))
}

fn nested(value: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(value).find_map(|(k, v)| (k == kind).then_some(v))
}

fn be_u32(value: &[u8]) -> Option<u32> {
    value.get(..4)?.try_into().ok().map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_streams_are_walked_with_padding_and_nesting() {
        // A 5-byte string attribute (padded to 8), then a nested one holding a u32.
        let mut data = vec![9, 0, 3, 0, b'a', b'b', b'c', b'd', 0, 0, 0, 0];
        data.extend_from_slice(&[12, 0, 4, 0x80, 8, 0, 2, 0, 0xff, 0xff, 0xff, 0x9c]);
        let all: Vec<(u16, &[u8])> = attrs(&data).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0], (3, &b"abcd\0"[..]));
        assert_eq!(all[1].0, 4, "the nested flag is masked");
        assert_eq!(
            nested(all[1].1, 2).and_then(be_u32).map(|p| p as i32),
            Some(-100)
        );
        // Truncated input ends the walk instead of panicking.
        assert_eq!(attrs(&data[..6]).count(), 0);
        assert_eq!(attrs(&[200, 0, 1, 0]).count(), 0);
    }
}
