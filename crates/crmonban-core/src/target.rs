//! [`Target`]: the one thing crmonban bans — a single IPv4/IPv6 address or a CIDR network —
//! parsed and normalised once, so that equal targets compare equal everywhere (firewall sets,
//! database keys, D-Bus answers).
//!
//! Normalisation rules, each reported by [`Target::parse_reporting`]:
//! - an IPv4-mapped IPv6 address (`::ffff:192.0.2.7`) is the IPv4 address (`192.0.2.7`), and a
//!   mapped network of prefix >= 96 is the IPv4 network;
//! - host bits of a CIDR are cleared (`10.1.2.3/8` is `10.0.0.0/8`);
//! - a full-length prefix (`/32`, `/128`) is the single address.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// An address or network that may be banned. Construct it with [`Target::parse`] (or the
/// `From` impls); the variants are normalised as described in the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// One address; never an IPv4-mapped IPv6 address.
    Addr(IpAddr),
    /// A network with host bits cleared and a prefix shorter than the address length.
    Net(IpNet),
}

/// What [`Target::parse_reporting`] changed in the text it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Normalisation {
    /// `::ffff:a.b.c.d` (or a mapped network) was read as IPv4.
    MappedToIpv4 {
        /// The text as given, trimmed.
        given: String,
    },
    /// Host bits were set in a CIDR and have been cleared.
    HostBitsCleared {
        /// The text as given, trimmed.
        given: String,
        /// The network used instead, host bits cleared.
        network: IpNet,
    },
    /// A `/32` or `/128` network is the single address.
    FullPrefixIsAddress {
        /// The text as given, trimmed.
        given: String,
    },
}

impl fmt::Display for Normalisation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Normalisation::MappedToIpv4 { given } => {
                write!(f, "{given}: IPv4-mapped IPv6 treated as IPv4")
            }
            Normalisation::HostBitsCleared { given, network } => {
                write!(f, "{given}: host bits set, using network {network}")
            }
            Normalisation::FullPrefixIsAddress { given } => {
                write!(f, "{given}: full-length prefix, using the single address")
            }
        }
    }
}

/// Why a string is not a [`Target`]. Every variant names the text it refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The text was empty or only blanks.
    #[error("empty address")]
    Empty,
    /// The address, or the address part of a CIDR, does not parse; holds the whole text
    /// (trimmed). Zone indexes (`fe80::1%eth0`) are refused too.
    #[error(
        "invalid address {0:?}: expected an IPv4 or IPv6 address, or a CIDR such as 192.0.2.0/24"
    )]
    InvalidAddress(String),
    /// The part after `/` is not a number from 0 to the family's address length.
    #[error("invalid prefix length in {input:?}: {prefix:?} is not a number from 0 to {max}")]
    InvalidPrefix {
        /// The whole text, trimmed.
        input: String,
        /// The text after `/`.
        prefix: String,
        /// 32 for IPv4, 128 for IPv6.
        max: u8,
    },
}

impl Target {
    /// Parses an address or CIDR, normalising silently. See [`Target::parse_reporting`].
    pub fn parse(text: &str) -> Result<Target, TargetError> {
        Self::parse_reporting(text).map(|(target, _)| target)
    }

    /// Parses an address or CIDR and says what was normalised, so callers (config validation,
    /// D-Bus, crmonctl) can tell the user that `10.1.2.3/8` was taken as `10.0.0.0/8`.
    pub fn parse_reporting(text: &str) -> Result<(Target, Vec<Normalisation>), TargetError> {
        let given = text.trim();
        if given.is_empty() {
            return Err(TargetError::Empty);
        }
        let mut notes = Vec::new();
        let target = match given.split_once('/') {
            None => {
                let addr = parse_addr(given)?;
                let unmapped = unmap(addr);
                if unmapped != addr {
                    notes.push(Normalisation::MappedToIpv4 {
                        given: given.to_owned(),
                    });
                }
                Target::Addr(unmapped)
            }
            Some((addr_text, prefix_text)) => {
                let addr = parse_addr(addr_text).map_err(|_| invalid(given))?;
                let max = if addr.is_ipv4() { 32 } else { 128 };
                let prefix: u8 =
                    prefix_text
                        .parse()
                        .ok()
                        .filter(|p| *p <= max)
                        .ok_or_else(|| TargetError::InvalidPrefix {
                            input: given.to_owned(),
                            prefix: prefix_text.to_owned(),
                            max,
                        })?;
                let (addr, prefix) = match addr {
                    IpAddr::V6(v6) if prefix >= 96 && v6.to_ipv4_mapped().is_some() => {
                        notes.push(Normalisation::MappedToIpv4 {
                            given: given.to_owned(),
                        });
                        (
                            IpAddr::V4(v6.to_ipv4_mapped().expect("checked")),
                            prefix - 96,
                        )
                    }
                    other => (other, prefix),
                };
                let net = IpNet::new(addr, prefix).expect("prefix checked against family");
                if net.trunc() != net {
                    notes.push(Normalisation::HostBitsCleared {
                        given: given.to_owned(),
                        network: net.trunc(),
                    });
                }
                Target::from(net.trunc())
            }
        };
        if let Target::Addr(_) = target
            && given.contains('/')
        {
            notes.push(Normalisation::FullPrefixIsAddress {
                given: given.to_owned(),
            });
        }
        Ok((target, notes))
    }

    /// True for IPv4 addresses and networks.
    pub fn is_ipv4(&self) -> bool {
        match self {
            Target::Addr(a) => a.is_ipv4(),
            Target::Net(n) => matches!(n, IpNet::V4(_)),
        }
    }

    /// True when this target is a network rather than one address.
    pub fn is_net(&self) -> bool {
        matches!(self, Target::Net(_))
    }

    /// The target as a network (`/32` or `/128` for one address).
    pub fn as_net(&self) -> IpNet {
        match *self {
            Target::Addr(a) => IpNet::from(a),
            Target::Net(n) => n,
        }
    }

    /// True when `addr` is this address or lies inside this network. IPv4-mapped IPv6
    /// addresses are compared as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let addr = unmap(addr);
        match self {
            Target::Addr(a) => *a == addr,
            Target::Net(n) => n.contains(&addr),
        }
    }

    /// True when every address of `other` is also in `self`.
    pub fn covers(&self, other: &Target) -> bool {
        self.as_net().contains(&other.as_net())
    }

    /// The first and last address covered, as integers of the family's width (IPv4 in the low
    /// 32 bits). Used to merge networks into intervals.
    pub fn bounds(&self) -> (u128, u128) {
        match self.as_net() {
            IpNet::V4(n) => (
                u32::from(n.network()) as u128,
                u32::from(n.broadcast()) as u128,
            ),
            IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast())),
        }
    }
}

fn parse_addr(text: &str) -> Result<IpAddr, TargetError> {
    // `[2001:db8::1]` is how addresses with ports are written in logs; accept the brackets.
    let bare = text
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(text);
    bare.parse::<IpAddr>().map_err(|_| invalid(text))
}

fn invalid(text: &str) -> TargetError {
    TargetError::InvalidAddress(text.to_owned())
}

/// An IPv4-mapped IPv6 address as the IPv4 address; any other address unchanged.
pub fn unmap(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

impl From<IpAddr> for Target {
    fn from(addr: IpAddr) -> Self {
        Target::Addr(unmap(addr))
    }
}

impl From<Ipv4Addr> for Target {
    fn from(addr: Ipv4Addr) -> Self {
        Target::Addr(IpAddr::V4(addr))
    }
}

impl From<Ipv6Addr> for Target {
    fn from(addr: Ipv6Addr) -> Self {
        Target::from(IpAddr::V6(addr))
    }
}

impl From<IpNet> for Target {
    /// Host bits are cleared; a full-length prefix becomes the address.
    fn from(net: IpNet) -> Self {
        let net = net.trunc();
        match net {
            IpNet::V4(n) if n.prefix_len() == 32 => Target::Addr(IpAddr::V4(n.addr())),
            IpNet::V6(n) if n.prefix_len() == 128 => Target::from(IpAddr::V6(n.addr())),
            IpNet::V6(n) if n.prefix_len() >= 96 && n.addr().to_ipv4_mapped().is_some() => {
                let v4 = n.addr().to_ipv4_mapped().expect("checked");
                Target::from(IpNet::V4(
                    Ipv4Net::new(v4, n.prefix_len() - 96).expect("prefix <= 32"),
                ))
            }
            other => Target::Net(other),
        }
    }
}

impl From<Ipv4Net> for Target {
    fn from(net: Ipv4Net) -> Self {
        Target::from(IpNet::V4(net))
    }
}

impl From<Ipv6Net> for Target {
    fn from(net: Ipv6Net) -> Self {
        Target::from(IpNet::V6(net))
    }
}

impl FromStr for Target {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Target::parse(s)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Addr(a) => a.fmt(f),
            Target::Net(n) => n.fmt(f),
        }
    }
}

impl serde::Serialize for Target {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Target {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Target::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    #[test]
    fn parses_addresses_of_both_families() {
        assert_eq!(t("192.0.2.7"), Target::Addr("192.0.2.7".parse().unwrap()));
        assert_eq!(
            t(" 2001:db8::1 "),
            Target::Addr("2001:db8::1".parse().unwrap())
        );
        assert_eq!(t("[2001:db8::1]"), t("2001:db8::1"));
        assert!(t("2001:db8::1").to_string() == "2001:db8::1");
    }

    #[test]
    fn mapped_ipv6_is_ipv4_and_reported() {
        let (target, notes) = Target::parse_reporting("::ffff:192.0.2.7").unwrap();
        assert_eq!(target, t("192.0.2.7"));
        assert!(target.is_ipv4());
        assert!(matches!(notes[..], [Normalisation::MappedToIpv4 { .. }]));
        assert_eq!(t("::ffff:10.0.0.0/104"), t("10.0.0.0/8"));
        assert!(t("10.0.0.0/8").contains("::ffff:10.9.9.9".parse().unwrap()));
    }

    #[test]
    fn host_bits_are_cleared_and_reported() {
        let (target, notes) = Target::parse_reporting("10.1.2.3/8").unwrap();
        assert_eq!(target.to_string(), "10.0.0.0/8");
        assert_eq!(
            notes[0].to_string(),
            "10.1.2.3/8: host bits set, using network 10.0.0.0/8"
        );
        assert_eq!(t("2001:db8::ff/32").to_string(), "2001:db8::/32");
        let (_, clean) = Target::parse_reporting("10.0.0.0/8").unwrap();
        assert!(clean.is_empty());
    }

    #[test]
    fn full_prefix_is_the_address() {
        let (target, notes) = Target::parse_reporting("192.0.2.7/32").unwrap();
        assert_eq!(target, t("192.0.2.7"));
        assert!(matches!(
            notes[..],
            [Normalisation::FullPrefixIsAddress { .. }]
        ));
        assert_eq!(t("2001:db8::1/128"), t("2001:db8::1"));
    }

    #[test]
    fn refuses_bad_input_naming_it() {
        assert_eq!(Target::parse(""), Err(TargetError::Empty));
        let e = Target::parse("not-an-ip").unwrap_err();
        assert!(e.to_string().contains("\"not-an-ip\""), "{e}");
        let e = Target::parse("10.0.0.0/33").unwrap_err();
        assert!(
            e.to_string().contains("\"33\"") && e.to_string().contains("0 to 32"),
            "{e}"
        );
        let e = Target::parse("2001:db8::/129").unwrap_err();
        assert!(e.to_string().contains("0 to 128"), "{e}");
        assert!(Target::parse("10.0.0.0/x").is_err());
        assert!(Target::parse("10.0.0/8").is_err());
        assert!(Target::parse("fe80::1%eth0").is_err());
        assert!(Target::parse("1.2.3.4.5").is_err());
    }

    #[test]
    fn containment_and_bounds() {
        let net = t("192.0.2.0/24");
        assert!(net.contains("192.0.2.200".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(net.covers(&t("192.0.2.128/25")));
        assert!(net.covers(&t("192.0.2.9")));
        assert!(!t("192.0.2.128/25").covers(&net));
        assert_eq!(net.bounds(), (0xC000_0200, 0xC000_02FF));
    }

    #[test]
    fn serde_round_trip_as_string() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct W {
            t: Target,
        }
        let w: W = toml::from_str("t = \"10.1.0.0/16\"").unwrap();
        assert_eq!(w.t, t("10.1.0.0/16"));
        assert_eq!(toml::to_string(&w).unwrap().trim(), "t = \"10.1.0.0/16\"");
        assert!(toml::from_str::<W>("t = \"10.0.0.0/40\"").is_err());
    }
}
