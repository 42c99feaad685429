//! The little of nfnetlink we speak ourselves, over a `NETLINK_NETFILTER` socket of the calling
//! thread's network namespace: building messages (header, `nfgenmsg`, attributes, nesting),
//! sending them, reading answers and walking their attributes. Used by the layout probe
//! (`probe`) and the element fast path (`fast`); everything else goes through nft.

use std::io;
use std::mem::size_of;

use crate::FirewallError;

const NETLINK_NETFILTER: libc::c_int = 12;
pub(super) const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub(super) const NFPROTO_INET: u8 = 1;

pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_ACK: u16 = 0x4;
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLM_F_CREATE: u16 = 0x400;
pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
const NLA_F_NESTED: u16 = 1 << 15;
const NLMSG_HDRLEN: usize = 16;
const NFGENMSG_LEN: usize = 4;

/// An nftables message type (`NFT_MSG_*`) as the netlink message type.
pub(super) fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// `cannot {what}: {e}`, with the hint a missing privilege needs.
pub(super) fn unavailable(what: &str, e: io::Error) -> FirewallError {
    if e.raw_os_error() == Some(libc::EPERM) {
        FirewallError::Unavailable(format!(
            "cannot {what}: {e} (crmonban must run as root or with CAP_NET_ADMIN)"
        ))
    } else {
        FirewallError::Unavailable(format!("cannot {what}: {e}"))
    }
}

/// Netlink messages written back to back into one buffer (one datagram).
#[derive(Default)]
pub(super) struct Messages {
    buf: Vec<u8>,
    /// Offset of the message being written.
    start: usize,
    /// Offsets of the open nested attributes.
    nests: Vec<usize>,
}

impl Messages {
    /// Starts a message: header and `nfgenmsg` (`family`, version 0, `res_id`).
    pub(super) fn begin(&mut self, kind: u16, flags: u16, seq: u32, family: u8, res_id: u16) {
        self.start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]); // length, set by `end`
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf
            .extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        self.buf.extend_from_slice(&seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes());
        self.buf.push(family);
        self.buf.push(0);
        self.buf.extend_from_slice(&res_id.to_be_bytes());
    }

    /// Ends the current message.
    pub(super) fn end(&mut self) {
        let len = (self.buf.len() - self.start) as u32;
        self.buf[self.start..self.start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    pub(super) fn attr(&mut self, kind: u16, value: &[u8]) {
        let len = 4 + value.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(value);
        self.buf.resize(self.buf.len().next_multiple_of(4), 0);
    }

    /// A NUL-terminated string attribute.
    pub(super) fn attr_str(&mut self, kind: u16, value: &str) {
        let mut bytes = Vec::with_capacity(value.len() + 1);
        bytes.extend_from_slice(value.as_bytes());
        bytes.push(0);
        self.attr(kind, &bytes);
    }

    pub(super) fn nest_begin(&mut self, kind: u16) {
        self.nests.push(self.buf.len());
        self.buf.extend_from_slice(&[0; 2]);
        self.buf
            .extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    }

    pub(super) fn nest_end(&mut self) {
        if let Some(at) = self.nests.pop() {
            let len = (self.buf.len() - at) as u16;
            self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        }
    }
}

/// One message of an answer.
pub(super) struct Reply {
    pub kind: u16,
    pub seq: u32,
    /// What follows the netlink header.
    pub payload: Vec<u8>,
}

impl Reply {
    /// The errno of an `NLMSG_ERROR` (0 for an acknowledgement), as a negative number.
    pub(super) fn error_code(&self) -> i32 {
        self.payload
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(-libc::EIO, i32::from_ne_bytes)
    }

    /// Attribute `kind` of an nftables object message.
    pub(super) fn attr(&self, kind: u16) -> Option<&[u8]> {
        nested(self.payload.get(NFGENMSG_LEN..)?, kind)
    }
}

/// A `NETLINK_NETFILTER` socket; closed on drop.
pub(super) struct Socket {
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
    pub(super) fn open() -> Result<Socket, FirewallError> {
        let open = || -> io::Result<Socket> {
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
            // Never hang the firewall thread: the kernel answers at once or not at all.
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
        };
        open().map_err(|e| unavailable("open a netfilter socket", e))
    }

    /// The next sequence number.
    pub(super) fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    pub(super) fn send(&mut self, messages: &Messages) -> Result<(), FirewallError> {
        // SAFETY: an all-zero sockaddr_nl is valid; nl_pid 0 is the kernel.
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: fd is valid; the buffer and kernel outlive the call.
        let sent = unsafe {
            libc::sendto(
                self.fd,
                messages.buf.as_ptr().cast(),
                messages.buf.len(),
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
        Ok(())
    }

    /// Receives one datagram and splits it into messages.
    pub(super) fn receive(&mut self) -> Result<Vec<Reply>, FirewallError> {
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
            out.push(Reply {
                kind: u16::from_ne_bytes([data[4], data[5]]),
                seq: u32::from_ne_bytes(data[8..12].try_into().unwrap_or_default()),
                payload: data[NLMSG_HDRLEN..len].to_vec(),
            });
            data = &data[len.next_multiple_of(4).min(data.len())..];
        }
        Ok(out)
    }
}

/// Attributes of a netlink attribute stream, as (type without flags, value).
pub(super) fn attrs(mut data: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
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

/// The first attribute `kind` in a stream.
pub(super) fn nested(value: &[u8], kind: u16) -> Option<&[u8]> {
    attrs(value).find_map(|(k, v)| (k == kind).then_some(v))
}

pub(super) fn be_u32(value: &[u8]) -> Option<u32> {
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

    #[test]
    fn messages_are_built_with_lengths_padding_and_nests() {
        let mut m = Messages::default();
        m.begin(nft_type(12), NLM_F_ACK, 7, NFPROTO_INET, 0);
        m.attr_str(1, "crm");
        m.nest_begin(3);
        m.attr(1, &[192, 0, 2, 7]);
        m.nest_end();
        m.end();
        let buf = &m.buf;
        assert_eq!(buf.len(), 16 + 4 + 8 + 4 + 8);
        assert_eq!(
            u32::from_ne_bytes(buf[0..4].try_into().unwrap()) as usize,
            buf.len()
        );
        assert_eq!(u16::from_ne_bytes([buf[4], buf[5]]), (10 << 8) | 12);
        assert_eq!(u32::from_ne_bytes(buf[8..12].try_into().unwrap()), 7);
        let body: Vec<(u16, &[u8])> = attrs(&buf[20..]).collect();
        assert_eq!(body[0], (1, &b"crm\0"[..]));
        assert_eq!(body[1].0, 3);
        assert_eq!(nested(body[1].1, 1), Some(&[192, 0, 2, 7][..]));
    }
}
