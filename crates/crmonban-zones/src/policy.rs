//! [`Policy`]: the built-in protection policy, assembled from the configuration, the
//! database's whitelist entries and the host's addresses; immutable but for the host's
//! addresses, rebuilt whole when a source changes.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

use crmonban_core::Target;
use crmonban_core::config::{Config, WhitelistConfig, WhitelistSource, ZonesConfig};

use crate::PrefixTable;
use crate::file::{FileProblem, read_whitelist_file};
use crate::reserved::reserved_why;
pub use crate::zones::ZoneInfo;
use crate::zones::Zones;
use crate::zones_file::{ZonesFileError, load_zones};

/// Where a whitelist entry comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `crmonctl whitelist add`.
    Database,
    /// A `networks` source of `[[whitelist.sources]]`.
    Networks,
    /// A `file` source, and the line.
    File {
        /// The whitelist file.
        path: PathBuf,
        /// The entry's line, 1-based.
        line: usize,
    },
    /// A zone that protects its networks.
    Zone {
        /// The zone's name.
        name: String,
        /// The zone's trust level, 0 ..= 100.
        trust_level: u8,
    },
    /// A `daemon` source's service said the address is trusted.
    Daemon {
        /// The source as it displays: bus name, object path, interface.method and bus.
        service: String,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Database => f.write_str("database"),
            Origin::Networks => f.write_str("networks source"),
            Origin::File { path, line } => write!(f, "file {}:{line}", path.display()),
            Origin::Zone { name, trust_level } => write!(f, "zone {name} (trust {trust_level})"),
            Origin::Daemon { service } => write!(f, "daemon {service}"),
        }
    }
}

/// One protected address or network, with its source and comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The protected address or network.
    pub target: Target,
    /// The source that protects it.
    pub origin: Origin,
    /// The entry's comment (a database entry's, a file line's `# ...`); empty when none.
    pub comment: String,
}

/// Why a target may not be banned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Loopback, unspecified, link-local, multicast or broadcast; `why` names the range.
    #[error("{why}")]
    Reserved {
        /// The target refused.
        target: Target,
        /// A sentence naming the target and the reserved range, e.g. `127.0.0.1 is a loopback address`.
        why: String,
    },
    /// The target is, or contains, an address of this host.
    #[error("{}", host_why(target, address))]
    HostAddress {
        /// The target refused.
        target: Target,
        /// The host's address it is or contains.
        address: IpAddr,
    },
    /// The target lies in, or contains, a whitelist entry or a protecting zone.
    #[error("{}", whitelisted_why(target, entry))]
    Whitelisted {
        /// The target refused.
        target: Target,
        /// The entry that protects it.
        entry: Entry,
    },
}

fn host_why(target: &Target, address: &IpAddr) -> String {
    match target {
        Target::Addr(_) => format!("{target} is an address of this host"),
        Target::Net(_) => format!("{target} contains this host's address {address}"),
    }
}

fn whitelisted_why(target: &Target, entry: &Entry) -> String {
    let source = format!("{}: {}", entry.origin, entry.target);
    if entry.target.covers(target) {
        format!("{target} is whitelisted ({source})")
    } else {
        format!("{target} contains whitelisted {} ({source})", entry.target)
    }
}

/// Something in the configuration's sources that could not be used; the rest still applies.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyProblem {
    /// A whitelist file, or a line of it, that could not be used.
    #[error(transparent)]
    File(#[from] FileProblem),
    /// A source or zone that protects every address of a family.
    #[error("{what} covers every {family} address: nothing of that family can be banned")]
    Everything {
        /// The entry or zone, e.g. `zone office (0.0.0.0/0)`.
        what: String,
        /// `"IPv4"` or `"IPv6"`.
        family: &'static str,
    },
}

/// See the module docs.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    host: PrefixTable<()>,
    /// Sorted, without duplicates.
    host_list: Vec<IpAddr>,
    whitelist: PrefixTable<Entry>,
    zones: Zones,
}

impl Policy {
    /// Builds the policy `config` asks for: its zones (when `[zones]` is enabled) and its
    /// whitelist sources (when `[whitelist]` is enabled; `database` takes `database`, the
    /// entries the store holds), plus the host's addresses. Returns every problem found on
    /// the way; what could be read applies. Only a zones file (`config_file`) that cannot be
    /// used fails the whole build: zones are configuration, not a best-effort list.
    pub fn from_config(
        config: &Config,
        database: impl IntoIterator<Item = (Target, String)>,
        host: Vec<IpAddr>,
    ) -> Result<(Policy, Vec<PolicyProblem>), ZonesFileError> {
        Policy::build(&config.whitelist, &config.zones, database, host)
    }

    /// [`Policy::from_config`] from the two sections it reads.
    pub fn build(
        whitelist: &WhitelistConfig,
        zones_config: &ZonesConfig,
        database: impl IntoIterator<Item = (Target, String)>,
        host: Vec<IpAddr>,
    ) -> Result<(Policy, Vec<PolicyProblem>), ZonesFileError> {
        let database: Vec<(Target, String)> = database.into_iter().collect();
        let mut policy = Policy::default();
        let mut problems = Vec::new();
        policy.set_host_addresses(host);
        let sources: &[WhitelistSource] = if whitelist.enabled {
            &whitelist.sources
        } else {
            &[]
        };
        let mut entries: Vec<Entry> = Vec::new();
        for source in sources {
            match source {
                WhitelistSource::Database => {
                    entries.extend(database.iter().map(|(target, comment)| Entry {
                        target: *target,
                        origin: Origin::Database,
                        comment: comment.clone(),
                    }));
                }
                WhitelistSource::Networks(networks) => {
                    entries.extend(networks.iter().map(|target| Entry {
                        target: *target,
                        origin: Origin::Networks,
                        comment: String::new(),
                    }));
                }
                WhitelistSource::File { path, .. } => {
                    let (lines, file_problems) = read_whitelist_file(path);
                    problems.extend(file_problems.into_iter().map(PolicyProblem::from));
                    entries.extend(lines.into_iter().map(|(target, line, comment)| Entry {
                        target,
                        origin: Origin::File {
                            path: path.clone(),
                            line,
                        },
                        comment,
                    }));
                }
                // Zones are consulted through their own table (the most specific zone
                // decides); the daemon source is asked on the ban path, not held here.
                WhitelistSource::Zones | WhitelistSource::Daemon(_) => {}
            }
        }
        let zones_protect = sources.contains(&WhitelistSource::Zones);
        if zones_config.enabled {
            let mut zones = load_zones(zones_config)?;
            if !zones_protect {
                for zone in &mut zones {
                    zone.implicit_whitelist = false;
                }
            }
            policy.zones = Zones::new(&zones);
        }
        for entry in entries {
            policy.whitelist.insert(entry.target, entry);
        }
        problems.extend(policy.everything_problems());
        Ok((policy, problems))
    }

    /// `Ok` when `target` may be banned; otherwise what protects it: a reserved range first,
    /// then the host's addresses, the whitelist sources and the zones.
    pub fn check(&self, target: &Target) -> Result<(), Refusal> {
        if let Some(why) = reserved_why(target) {
            return Err(Refusal::Reserved {
                target: *target,
                why,
            });
        }
        if let Some((host, ())) = self.host.overlapping(target) {
            let Target::Addr(address) = host else {
                unreachable!("host entries are addresses")
            };
            return Err(Refusal::HostAddress {
                target: *target,
                address,
            });
        }
        if let Some((_, entry)) = self.whitelist.overlapping(target) {
            return Err(Refusal::Whitelisted {
                target: *target,
                entry: entry.clone(),
            });
        }
        if let Some((net, zone)) = self.zones.protecting(target) {
            return Err(Refusal::Whitelisted {
                target: *target,
                entry: zone_entry(net, zone),
            });
        }
        Ok(())
    }

    /// Replaces the host's addresses; true when the set changed.
    pub fn set_host_addresses(&mut self, mut host: Vec<IpAddr>) -> bool {
        host.sort_unstable();
        host.dedup();
        if host == self.host_list {
            return false;
        }
        self.host = host.iter().map(|a| (Target::from(*a), ())).collect();
        self.host_list = host;
        true
    }

    /// The host's addresses, sorted.
    pub fn host_addresses(&self) -> &[IpAddr] {
        &self.host_list
    }

    /// The host's addresses as a short human list (the first few, then how many more).
    pub fn host_addresses_summary(&self) -> String {
        const SHOWN: usize = 8;
        let mut list: Vec<String> = self
            .host_list
            .iter()
            .take(SHOWN)
            .map(|a| a.to_string())
            .collect();
        if self.host_list.len() > SHOWN {
            list.push(format!("and {} more", self.host_list.len() - SHOWN));
        }
        list.join(", ")
    }

    /// The zone `target` belongs to (its most specific one), with the zone's network.
    pub fn zone_of(&self, target: &Target) -> Option<(Target, &ZoneInfo)> {
        self.zones.zone_of(target)
    }

    /// Every whitelist entry of every source the policy holds, protecting zones included, in
    /// address order (IPv4 first).
    pub fn entries(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.whitelist.iter().map(|(_, e)| e.clone()).collect();
        all.extend(
            self.zones
                .networks()
                .filter(|(_, zone)| zone.protects)
                .map(|(net, zone)| zone_entry(net, zone)),
        );
        all
    }

    /// How many whitelist entries (zones not counted) the policy holds.
    pub fn whitelist_len(&self) -> usize {
        self.whitelist.len()
    }

    /// How many zone networks protect their addresses.
    pub fn protecting_zone_networks(&self) -> usize {
        self.zones
            .networks()
            .filter(|(_, zone)| zone.protects)
            .count()
    }

    fn everything_problems(&self) -> Vec<PolicyProblem> {
        let mut problems = Vec::new();
        for (all, family) in [("0.0.0.0/0", "IPv4"), ("::/0", "IPv6")] {
            let all = Target::parse(all).expect("built-in network");
            if let Some((_, entry)) = self.whitelist.covering(&all) {
                problems.push(PolicyProblem::Everything {
                    what: format!("{} entry {}", entry.origin, entry.target),
                    family,
                });
            }
            if let Some((net, zone)) = self.zones.zone_of(&all)
                && zone.protects
            {
                problems.push(PolicyProblem::Everything {
                    what: format!("zone {} ({net})", zone.name),
                    family,
                });
            }
        }
        problems
    }
}

fn zone_entry(net: Target, zone: &ZoneInfo) -> Entry {
    Entry {
        target: net,
        origin: Origin::Zone {
            name: zone.name.clone(),
            trust_level: zone.trust_level,
        },
        comment: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Target {
        Target::parse(s).unwrap()
    }

    fn config(text: &str) -> Config {
        Config::from_toml_str(text, "test.toml").unwrap()
    }

    fn why(policy: &Policy, target: &str) -> String {
        policy.check(&t(target)).unwrap_err().to_string()
    }

    #[test]
    fn special_ranges_and_host_addresses_are_always_refused() {
        let (p, problems) = Policy::from_config(
            &config("[whitelist]\nenabled = false\n"),
            [],
            vec!["10.1.2.3".parse().unwrap()],
        )
        .unwrap();
        assert!(problems.is_empty());
        assert_eq!(why(&p, "127.0.0.1"), "127.0.0.1 is a loopback address");
        assert_eq!(why(&p, "::1"), "::1 is a loopback address");
        assert!(why(&p, "fe80::1").contains("link-local"));
        assert!(why(&p, "0.0.0.0/0").starts_with("0.0.0.0/0 contains 127.0.0.0/8"));
        assert_eq!(why(&p, "10.1.2.3"), "10.1.2.3 is an address of this host");
        assert_eq!(
            why(&p, "10.0.0.0/8"),
            "10.0.0.0/8 contains this host's address 10.1.2.3"
        );
        p.check(&t("10.1.2.4")).unwrap();
        p.check(&t("2001:db8::1")).unwrap();
    }

    #[test]
    fn every_static_source_protects_and_names_itself() {
        let dir = tempdir();
        let file = dir.join("trusted.txt");
        std::fs::write(&file, "# partners\n203.0.113.0/24 # acme\nbogus\n").unwrap();
        let (p, problems) = Policy::from_config(
            &config(&format!(
                "[[whitelist.sources]]\ntype = \"database\"\n\n\
                 [[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n\n\
                 [[whitelist.sources]]\ntype = \"file\"\npath = \"{}\"\n",
                file.display()
            )),
            [(t("198.51.100.7"), "admin laptop".to_owned())],
            vec![],
        ).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                .to_string()
                .ends_with("trusted.txt:3: invalid address \"bogus\": expected an IPv4 or IPv6 address, or a CIDR such as 192.0.2.0/24"),
            "{}",
            problems[0]
        );
        assert_eq!(
            why(&p, "10.9.8.7"),
            "10.9.8.7 is whitelisted (networks source: 10.0.0.0/8)"
        );
        assert_eq!(
            why(&p, "2001:db8::5"),
            "2001:db8::5 is whitelisted (networks source: 2001:db8::/32)"
        );
        assert_eq!(
            why(&p, "198.51.100.7"),
            "198.51.100.7 is whitelisted (database: 198.51.100.7)"
        );
        assert_eq!(
            why(&p, "198.51.100.0/24"),
            "198.51.100.0/24 contains whitelisted 198.51.100.7 (database: 198.51.100.7)"
        );
        assert!(
            why(&p, "203.0.113.9")
                .contains(&format!("(file {}:2: 203.0.113.0/24)", file.display()))
        );
        p.check(&t("198.51.100.8")).unwrap();
        p.check(&t("2001:db9::1")).unwrap();
        let entries = p.entries();
        assert_eq!(entries.len(), 4);
        assert!(entries.iter().any(|e| e.comment == "acme"));
        assert!(entries.iter().any(|e| e.comment == "admin laptop"));
    }

    #[test]
    fn the_most_specific_zone_decides_at_the_threshold() {
        let text = "[zones]\nenabled = true\nwhitelist_threshold = 80\n\n\
                    [[zones.zones]]\nname = \"office\"\ntrust_level = 80\nnetworks = [\"10.0.0.0/8\"]\n\n\
                    [[zones.zones]]\nname = \"dmz\"\ntrust_level = 79\nnetworks = [\"10.66.0.0/16\"]\n\n\
                    [[zones.zones]]\nname = \"lab\"\ntrust_level = 81\nnetworks = [\"10.66.1.0/24\", \"fd00::/8\"]\n\n\
                    [[zones.zones]]\nname = \"guests\"\ntrust_level = 95\nimplicit_whitelist = false\nnetworks = [\"192.168.0.0/16\"]\n";
        let (p, problems) = Policy::from_config(&config(text), [], vec![]).unwrap();
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            why(&p, "10.1.1.1"),
            "10.1.1.1 is whitelisted (zone office (trust 80): 10.0.0.0/8)"
        );
        p.check(&t("10.66.0.9")).unwrap();
        assert!(why(&p, "10.66.1.9").contains("zone lab (trust 81)"));
        assert!(why(&p, "fd00::9").contains("zone lab"));
        p.check(&t("192.168.1.1")).unwrap();
        // A network ban of the DMZ would cover the lab inside it; one of the office covers both.
        assert!(why(&p, "10.66.0.0/16").contains("contains whitelisted 10.66.1.0/24"));
        assert!(why(&p, "10.66.0.0/17").contains("zone lab"));
        p.check(&t("10.66.128.0/17")).unwrap();
        assert!(why(&p, "10.0.0.0/7").contains("zone office"));
        assert_eq!(p.zone_of(&t("10.66.0.9")).unwrap().1.name, "dmz");
        assert_eq!(
            p.zone_of(&t("10.66.0.9")).unwrap().1.ban_time_factor(),
            2.0 - 79.0 / 50.0
        );
        // Zones protect only while the whitelist takes the zones source.
        let (p, _) = Policy::from_config(
            &config(&format!(
                "{text}\n[[whitelist.sources]]\ntype = \"database\"\n"
            )),
            [],
            vec![],
        )
        .unwrap();
        p.check(&t("10.1.1.1")).unwrap();
        assert_eq!(p.zone_of(&t("10.1.1.1")).unwrap().1.name, "office");
    }

    #[test]
    fn trust_scales_ban_time_within_bounds() {
        let zone = |trust_level| ZoneInfo {
            name: "z".into(),
            trust_level,
            protects: false,
        };
        assert_eq!(zone(0).ban_time_factor(), 2.0);
        assert_eq!(zone(50).ban_time_factor(), 1.0);
        assert_eq!(zone(75).ban_time_factor(), 0.5);
        assert_eq!(zone(100).ban_time_factor(), 0.25);
    }

    #[test]
    fn a_source_that_covers_everything_is_a_problem() {
        let (p, problems) = Policy::from_config(
            &config("[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"0.0.0.0/0\"]\n"),
            [],
            vec![],
        )
        .unwrap();
        assert_eq!(
            problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "networks source entry 0.0.0.0/0 covers every IPv4 address: nothing of that family can be banned"
            ]
        );
        assert!(p.check(&t("192.0.2.1")).is_err());
        p.check(&t("2001:db8::1")).unwrap();
    }

    #[test]
    fn disabled_whitelist_keeps_only_the_built_in_protection() {
        let (p, _) = Policy::from_config(
            &config(
                "[whitelist]\nenabled = false\n\n[[whitelist.sources]]\ntype = \"networks\"\nnetworks = [\"10.0.0.0/8\"]\n",
            ),
            [(t("192.0.2.1"), String::new())],
            vec![],
        ).unwrap();
        p.check(&t("10.1.1.1")).unwrap();
        p.check(&t("192.0.2.1")).unwrap();
        assert!(p.check(&t("127.0.0.1")).is_err());
    }

    #[test]
    fn host_addresses_report_only_real_changes_and_stay_short() {
        let a = |s: &str| -> IpAddr { s.parse().unwrap() };
        let mut p = Policy::default();
        assert!(p.set_host_addresses(vec![a("fd77::2"), a("10.0.0.2")]));
        assert_eq!(p.host_addresses_summary(), "10.0.0.2, fd77::2");
        assert!(!p.set_host_addresses(vec![a("10.0.0.2"), a("fd77::2"), a("fd77::2")]));
        let many: Vec<IpAddr> = (1..=20u8).map(|i| a(&format!("10.9.0.{i}"))).collect();
        assert!(p.set_host_addresses(many));
        assert!(
            p.host_addresses_summary()
                .ends_with("10.9.0.8, and 12 more")
        );
        assert!(p.check(&t("10.9.0.20")).is_err());
        p.check(&t("10.0.0.2")).unwrap();
    }

    fn tempdir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "crmb-zones-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
