//! [`Intel`]: everything gathered about one address, as it is cached in the store's intel
//! table (JSON) and shown by `crmonctl intel` and D-Bus `GetIntel`. Every part is optional:
//! a source that is disabled, missing or failing leaves its part out and, when it failed,
//! says why in [`Intel::problems`]; the rest is kept.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What is known about one address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Intel {
    /// The address.
    pub ip: IpAddr,
    /// When it was gathered (Unix seconds).
    pub gathered_at: i64,
    /// Country, city and coordinates from the local City or Country database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Autonomous system from the local ASN database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<Network>,
    /// The PTR name, and whether it resolves back to the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_dns: Option<ReverseDns>,
    /// What the regional registry says about the address's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whois: Option<Whois>,
    /// AbuseIPDB's record of the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abuseipdb: Option<AbuseIpdb>,
    /// What Shodan saw on the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shodan: Option<Shodan>,
    /// Conclusions drawn from the parts above.
    #[serde(default)]
    pub flags: Flags,
    /// The sources that failed this time, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<Problem>,
}

/// Where an address is, from a GeoLite2 or DB-IP City or Country database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Country name in English, e.g. "United States".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// ISO 3166-1 alpha-2 code, e.g. "US".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// Continent code, e.g. "NA".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continent: Option<String>,
    /// First subdivision (state, region), in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// City, in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Latitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latitude: Option<f64>,
    /// Longitude in degrees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longitude: Option<f64>,
    /// How far off the coordinates may be, in km.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy_radius_km: Option<u16>,
    /// IANA time zone, e.g. "America/Los_Angeles".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
}

/// The autonomous system an address is announced from, from an ASN database.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    /// AS number, e.g. 15169.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    /// The AS's organisation, e.g. "Google LLC".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The announced network the address is in, e.g. "8.8.8.0/24".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
}

/// The reverse DNS name of an address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ReverseDns {
    /// The first PTR name, without the trailing dot.
    pub name: String,
    /// Whether `name` resolves (A/AAAA) back to the address: an attacker controls its own
    /// PTR records, so an unconfirmed name proves nothing.
    pub forward_confirmed: bool,
}

/// A regional registry's answer about the network of an address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Whois {
    /// The servers asked, in order, ending with the one whose answer this is.
    pub servers: Vec<String>,
    /// The registry that answered: "ARIN", "RIPE", "APNIC", "LACNIC", "AFRINIC", or the
    /// server's name when it is none of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<String>,
    /// The organisation holding the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// The network's name (netname, NetName).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_name: Option<String>,
    /// The network's range as the registry writes it ("a - b" or a CIDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// Country code of the network's registration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Where to report abuse (an e-mail address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abuse_contact: Option<String>,
}

/// AbuseIPDB's `check` answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AbuseIpdb {
    /// Abuse confidence score, 0–100.
    pub confidence: u8,
    /// Reports in the period asked (90 days).
    pub total_reports: u32,
    /// Distinct reporters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distinct_users: Option<u32>,
    /// e.g. "Data Center/Web Hosting/Transit".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_type: Option<String>,
    /// The ISP AbuseIPDB names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isp: Option<String>,
    /// The domain AbuseIPDB names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Country code AbuseIPDB names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
    /// When it was last reported (RFC 3339, as AbuseIPDB writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reported_at: Option<String>,
    /// Whether AbuseIPDB whitelists the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whitelisted: Option<bool>,
}

/// Shodan's `host` answer.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Shodan {
    /// Open ports seen, ascending.
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Host names Shodan knows for the address.
    #[serde(default)]
    pub hostnames: Vec<String>,
    /// Shodan's tags, e.g. "cloud", "vpn", "tor".
    #[serde(default)]
    pub tags: Vec<String>,
    /// CVE identifiers Shodan associates with the services seen.
    #[serde(default)]
    pub vulns: Vec<String>,
    /// Operating system, when Shodan guessed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    /// Organisation Shodan names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// When Shodan last saw the address (as Shodan writes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_update: Option<String>,
}

/// Conclusions about an address.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flags {
    /// A hosting provider or data centre rather than an access network: a rented server or a
    /// cloud instance, whose attacks are automated.
    pub hosting: bool,
    /// Why `hosting` is set: "AS16509 is a hosting ASN" or AbuseIPDB's usage type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosting_reason: Option<String>,
}

/// A source that failed for this address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// Which source.
    pub source: Source,
    /// Why, in one line.
    pub message: String,
}

/// The sources of intel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Local GeoIP/ASN databases.
    Geoip,
    /// Reverse DNS.
    Rdns,
    /// WHOIS.
    Whois,
    /// AbuseIPDB.
    Abuseipdb,
    /// Shodan.
    Shodan,
}

impl Source {
    /// The name used in configuration keys, JSON and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Geoip => "geoip",
            Source::Rdns => "rdns",
            Source::Whois => "whois",
            Source::Abuseipdb => "abuseipdb",
            Source::Shodan => "shodan",
        }
    }
}

impl Source {
    /// The name people know the source by, for messages: "GeoIP", "reverse DNS", "WHOIS",
    /// "AbuseIPDB", "Shodan".
    pub fn name(self) -> &'static str {
        match self {
            Source::Geoip => "GeoIP",
            Source::Rdns => "reverse DNS",
            Source::Whois => "WHOIS",
            Source::Abuseipdb => "AbuseIPDB",
            Source::Shodan => "Shodan",
        }
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Intel {
    /// Nothing known yet about `ip`.
    pub fn empty(ip: IpAddr, gathered_at: i64) -> Intel {
        Intel {
            ip,
            gathered_at,
            location: None,
            network: None,
            reverse_dns: None,
            whois: None,
            abuseipdb: None,
            shodan: None,
            flags: Flags::default(),
            problems: Vec::new(),
        }
    }

    /// The country code, from GeoIP, else WHOIS, else AbuseIPDB.
    pub fn country_code(&self) -> Option<&str> {
        self.location
            .as_ref()
            .and_then(|l| l.country_code.as_deref())
            .or_else(|| self.whois.as_ref().and_then(|w| w.country.as_deref()))
            .or_else(|| {
                self.abuseipdb
                    .as_ref()
                    .and_then(|a| a.country_code.as_deref())
            })
    }

    /// "AS15169 Google LLC" from the ASN database; else the WHOIS organisation.
    pub fn network_name(&self) -> Option<String> {
        let network = self.network.as_ref();
        match (
            network.and_then(|n| n.asn),
            network.and_then(|n| n.organization.as_deref()),
        ) {
            (Some(asn), Some(org)) => Some(format!("AS{asn} {org}")),
            (Some(asn), None) => Some(format!("AS{asn}")),
            (None, _) => self
                .whois
                .as_ref()
                .and_then(|w| w.organization.clone().or_else(|| w.network_name.clone())),
        }
    }

    /// One short line for ban reasons, lists and events: "US, AS15169 Google LLC, hosting";
    /// `None` when nothing is known.
    pub fn summary(&self) -> Option<String> {
        let parts: Vec<String> = [
            self.country_code().map(str::to_owned),
            self.network_name(),
            self.flags.hosting.then(|| "hosting".to_owned()),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_takes_the_best_source_of_each_part() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let mut intel = Intel::empty(ip, 0);
        assert_eq!(intel.summary(), None);
        intel.whois = Some(Whois {
            organization: Some("Example Hosting".into()),
            country: Some("NL".into()),
            ..Whois::default()
        });
        assert_eq!(intel.summary().as_deref(), Some("NL, Example Hosting"));
        intel.location = Some(Location {
            country_code: Some("DE".into()),
            ..Location::default()
        });
        intel.network = Some(Network {
            asn: Some(24940),
            organization: Some("Hetzner Online GmbH".into()),
            network: None,
        });
        intel.flags.hosting = true;
        assert_eq!(
            intel.summary().as_deref(),
            Some("DE, AS24940 Hetzner Online GmbH, hosting")
        );
        let json = serde_json::to_string(&intel).unwrap();
        assert_eq!(serde_json::from_str::<Intel>(&json).unwrap(), intel);
        assert!(
            !json.contains("shodan"),
            "absent parts are left out: {json}"
        );
    }
}
