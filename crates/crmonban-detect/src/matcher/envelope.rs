//! The envelope of a log line: the syslog tags a service answers to ([`Tags`]), splitting
//! `HOST TAG[PID]: ` and `TAG[PID]: ` headers from the message, and skipping nginx's error-log
//! header.

use super::parse_u32;
use crate::patterns::Envelope;

/// A syslog envelope's tags, split once into exact names and prefixes.
#[derive(Debug, Default)]
pub(super) struct Tags {
    exact: Vec<Vec<u8>>,
    prefixes: Vec<Vec<u8>>,
}

impl Tags {
    pub(super) fn of(envelope: &Envelope) -> Tags {
        let mut tags = Tags::default();
        if let Envelope::Syslog { programs } = envelope {
            for p in programs {
                if let Some(stem) = p.strip_suffix('*') {
                    tags.prefixes.push(stem.as_bytes().to_vec());
                } else if p.ends_with('/') {
                    tags.prefixes.push(p.as_bytes().to_vec());
                } else {
                    tags.exact.push(p.as_bytes().to_vec());
                }
            }
        }
        tags
    }

    #[inline]
    pub(super) fn contains(&self, tag: &[u8]) -> bool {
        self.exact.iter().any(|t| t == tag) || self.prefixes.iter().any(|p| tag.starts_with(p))
    }
}

/// ` HOST TAG[PID]: MESSAGE` or ` HOST TAG: MESSAGE` after the stamp.
#[inline]
pub(super) fn split_syslog_header(rest: &[u8]) -> Option<(&[u8], Option<u32>, &[u8])> {
    let rest = rest.strip_prefix(b" ")?;
    let host_end = memchr::memchr(b' ', rest)?;
    split_tag(&rest[host_end + 1..])
}

/// `TAG[PID]: MESSAGE` or `TAG: MESSAGE`.
#[inline]
pub(super) fn split_tag(rest: &[u8]) -> Option<(&[u8], Option<u32>, &[u8])> {
    let tag_end = rest
        .iter()
        .take(64)
        .position(|&b| b == b'[' || b == b':' || b == b' ')?;
    let tag = &rest[..tag_end];
    let (pid, after) = match rest[tag_end] {
        b'[' => {
            let close = rest[tag_end..].iter().take(12).position(|&b| b == b']')? + tag_end;
            (parse_u32(&rest[tag_end + 1..close]), rest.get(close + 1..)?)
        }
        b':' => (None, &rest[tag_end..]),
        _ => return None,
    };
    let message = after.strip_prefix(b": ")?;
    Some((tag, pid, message))
}

/// After nginx's stamp: ` [level] PID#TID: *CID ` (each part optional).
pub(super) fn skip_nginx_header(rest: &[u8]) -> &[u8] {
    let mut rest = rest.strip_prefix(b" ").unwrap_or(rest);
    if rest.first() == Some(&b'[')
        && let Some(close) = memchr::memchr(b']', rest)
    {
        rest = rest[close + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&rest[close + 1..]);
    }
    let digits = rest
        .iter()
        .position(|b| !(b.is_ascii_digit() || *b == b'#'))
        .unwrap_or(0);
    if digits > 0 && rest[digits..].starts_with(b": ") {
        rest = &rest[digits + 2..];
    }
    if rest.first() == Some(&b'*') {
        let n = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if n > 0 && rest.get(1 + n) == Some(&b' ') {
            rest = &rest[2 + n..];
        }
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syslog_header_split() {
        let (tag, pid, msg) = split_syslog_header(b" host sshd[1234]: Invalid user").unwrap();
        assert_eq!(
            (tag, pid, msg),
            (&b"sshd"[..], Some(1234), &b"Invalid user"[..])
        );
        let (tag, pid, msg) = split_syslog_header(b" mail dovecot: imap-login: x").unwrap();
        assert_eq!(
            (tag, pid, msg),
            (&b"dovecot"[..], None, &b"imap-login: x"[..])
        );
        let (tag, _, _) =
            split_syslog_header(b" mail postfix/submission/smtpd[9]: warning: x").unwrap();
        assert_eq!(tag, b"postfix/submission/smtpd");
        assert!(split_syslog_header(b" host kernel").is_none());
        assert!(split_syslog_header(b"").is_none());
    }

    #[test]
    fn nginx_header_skip() {
        assert_eq!(
            skip_nginx_header(b" [error] 1234#1234: *5 user \"x\""),
            b"user \"x\""
        );
        assert_eq!(
            skip_nginx_header(b" [warn] 1#1: conflicting"),
            b"conflicting"
        );
    }
}
