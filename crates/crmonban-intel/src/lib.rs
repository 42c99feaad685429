//! crmonban-intel owns **who attacked**: what can be learnt about a banned address, from
//! - local GeoIP/ASN databases (GeoLite2 or DB-IP City/Country and ASN, read with
//!   `maxminddb`, reopened when updated on disk; never a web geolocation service),
//! - reverse DNS (hickory-resolver), with the forward confirmation that makes a name mean
//!   something,
//! - WHOIS (whois-rust for the connection), from IANA through the referrals to the regional
//!   registry, parsed for ARIN, RIPE, APNIC, LACNIC and AFRINIC, rate-limited per server,
//! - AbuseIPDB and Shodan over HTTPS when their keys are configured (and optional reports of
//!   our bans to AbuseIPDB),
//! - a shipped list of hosting ASNs, for the hosting/data-centre flag.
//!
//! Each source is bounded in time and in the size of what it reads; a failing source leaves
//! its part of the [`Intel`] out and says why, the others are kept. This crate gathers on
//! request and starts no task: the engine queues banned addresses, limits concurrency,
//! caches the results in the store, and keeps all of it off the ban path.

#![warn(missing_docs)]

mod abuseipdb;
mod error;
mod gather;
mod geoip;
mod hosting;
mod http;
mod rdns;
mod record;
mod shodan;
mod whois;

pub use error::IntelError;
pub use gather::{Gatherer, check_config, gather_deadline};
pub use record::{
    AbuseIpdb, Flags, Intel, Location, Network, Problem, ReverseDns, Shodan, Source, Whois,
};
