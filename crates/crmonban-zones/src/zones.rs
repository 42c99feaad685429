//! Zones: named networks with a trust level. An address belongs to its most specific zone
//! (a DMZ at trust 20 inside an office at trust 90 is the DMZ); that zone alone decides whether
//! it is protected and how its bans are scaled.

use crmonban_core::Target;
use crmonban_core::config::Zone;

use crate::PrefixTable;

/// What the policy knows of a zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ZoneInfo {
    /// The zone's name, unique among the zones.
    pub name: String,
    /// 0 (hostile) ..= 100 (trusted).
    pub trust_level: u8,
    /// Its addresses are never banned (`implicit_whitelist`, which defaults to
    /// `trust_level >= whitelist_threshold`).
    pub protects: bool,
}

impl ZoneInfo {
    /// How a detector's ban time is scaled for an address of this zone: `2 - trust/50`, so
    /// trust 0 doubles it, 50 keeps it and 75 halves it; never below a quarter. (A protecting
    /// zone's addresses are not banned at all.)
    pub fn ban_time_factor(&self) -> f64 {
        (2.0 - f64::from(self.trust_level) / 50.0).max(0.25)
    }
}

#[derive(Clone, Debug, Default)]
pub(crate) struct Zones {
    zones: Vec<ZoneInfo>,
    /// Network -> index into `zones`. A network listed by two zones belongs to the first.
    table: PrefixTable<usize>,
}

impl Zones {
    pub(crate) fn new(zones: &[Zone]) -> Zones {
        let mut built = Zones::default();
        for zone in zones {
            let index = built.zones.len();
            built.zones.push(ZoneInfo {
                name: zone.name.clone(),
                trust_level: zone.trust_level,
                protects: zone.implicit_whitelist,
            });
            for net in &zone.networks {
                built.table.insert(*net, index);
            }
        }
        built
    }

    /// The zone `target` belongs to: the most specific one that covers it whole.
    pub(crate) fn zone_of(&self, target: &Target) -> Option<(Target, &ZoneInfo)> {
        self.table
            .covering(target)
            .map(|(net, &index)| (net, &self.zones[index]))
    }

    /// A protecting zone that owns any address of `target`: the one `target` belongs to, or
    /// one of the zones inside it.
    pub(crate) fn protecting(&self, target: &Target) -> Option<(Target, &ZoneInfo)> {
        if let Some((net, zone)) = self.zone_of(target)
            && zone.protects
        {
            return Some((net, zone));
        }
        if !target.is_net() {
            // Only the address itself lies inside an address: it is the zone it belongs to.
            return None;
        }
        self.table
            .inside(target)
            .map(|(net, &index)| (net, &self.zones[index]))
            .find(|(_, zone)| zone.protects)
    }

    /// Every zone network with its zone, in address order.
    pub(crate) fn networks(&self) -> impl Iterator<Item = (Target, &ZoneInfo)> {
        self.table
            .iter()
            .map(|(net, &index)| (net, &self.zones[index]))
    }
}
