//! The GeoIP source against real `.mmdb` files written by `crmonban_testutil::mmdb`: what a
//! lookup gives, what a missing, wrong or broken file reports, and how updates on disk are
//! picked up.

use super::*;
use crmonban_testutil::mmdb::{self, CityEntry, CountryEntry};
use crmonban_testutil::{PATIENCE, wait_until};

const MOUNTAIN_VIEW: CityEntry<'static> = CityEntry {
    network: "8.8.8.0/24",
    country_code: Some("US"),
    country_name: Some("United States"),
    continent: Some("NA"),
    region: Some("California"),
    city: Some("Mountain View"),
    latitude: Some(37.386),
    longitude: Some(-122.0838),
    accuracy_radius: Some(1000),
    time_zone: Some("America/Los_Angeles"),
};

const BERLIN: CityEntry<'static> = CityEntry {
    network: "2a01:4f8::/32",
    country_code: Some("DE"),
    country_name: Some("Germany"),
    continent: Some("EU"),
    region: Some("Land Berlin"),
    city: Some("Berlin"),
    latitude: Some(52.5196),
    longitude: Some(13.4069),
    accuracy_radius: Some(50),
    time_zone: Some("Europe/Berlin"),
};

const ASNS: &[(&str, u32, &str)] = &[
    ("8.8.8.0/24", 15169, "Google LLC"),
    ("2a01:4f8::/32", 24940, "Hetzner Online GmbH"),
];

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn mountain_view() -> Location {
    Location {
        country: Some("United States".into()),
        country_code: Some("US".into()),
        continent: Some("NA".into()),
        region: Some("California".into()),
        city: Some("Mountain View".into()),
        latitude: Some(37.386),
        longitude: Some(-122.0838),
        accuracy_radius_km: Some(1000),
        time_zone: Some("America/Los_Angeles".into()),
    }
}

fn google() -> Network {
    Network {
        asn: Some(15169),
        organization: Some("Google LLC".into()),
        network: Some("8.8.8.0/24".into()),
    }
}

/// A directory with `city.mmdb` and `asn.mmdb`, GeoLite2 style.
fn databases() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("city.mmdb");
    let asn = dir.path().join("asn.mmdb");
    mmdb::write_city(&city, mmdb::GEOLITE2_CITY, &[MOUNTAIN_VIEW, BERLIN]).unwrap();
    mmdb::write_asn(&asn, mmdb::GEOLITE2_ASN, ASNS).unwrap();
    (dir, city, asn)
}

/// Writes the new file beside `path` and renames it over `path`, as geoipupdate does.
fn replace(path: &Path, write: impl FnOnce(&Path)) {
    let new = path.with_extension("new");
    write(&new);
    std::fs::rename(&new, path).unwrap();
}

#[test]
fn fixtures_are_geoip2_databases_to_maxminddb() {
    // The test writer's files, read by maxminddb's own GeoIP2 types: the fields sit where
    // GeoLite2 puts them, and IPv4 is found through the IPv6 tree.
    let (_dir, city, asn) = databases();
    let reader = Reader::open_readfile(&city).unwrap();
    assert_eq!(reader.metadata().database_type, "GeoLite2-City");
    assert_eq!(reader.metadata().ip_version, 6);
    let found = reader.lookup(ip("8.8.8.8")).unwrap();
    assert_eq!(found.network().unwrap().to_string(), "8.8.8.0/24");
    let record: geoip2::City<'_> = found.decode().unwrap().unwrap();
    assert_eq!(record.country.iso_code, Some("US"));
    assert_eq!(record.country.names.english, Some("United States"));
    assert_eq!(record.registered_country.iso_code, Some("US"));
    assert_eq!(record.city.names.english, Some("Mountain View"));
    assert_eq!(record.subdivisions[0].names.english, Some("California"));
    assert_eq!(record.continent.code, Some("NA"));
    assert_eq!(record.location.latitude, Some(37.386));
    assert_eq!(record.location.longitude, Some(-122.0838));
    assert_eq!(record.location.accuracy_radius, Some(1000));
    assert_eq!(record.location.time_zone, Some("America/Los_Angeles"));
    // The IPv4-mapped form reaches the same record, as in GeoLite2.
    let mapped: Option<geoip2::City<'_>> = reader
        .lookup(ip("::ffff:8.8.8.8"))
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(mapped.unwrap().city.names.english, Some("Mountain View"));

    let reader = Reader::open_readfile(&asn).unwrap();
    assert_eq!(reader.metadata().database_type, "GeoLite2-ASN");
    let found = reader.lookup(ip("2a01:4f8:1:2::3")).unwrap();
    assert_eq!(found.network().unwrap().to_string(), "2a01:4f8::/32");
    let record: geoip2::Asn<'_> = found.decode().unwrap().unwrap();
    assert_eq!(record.autonomous_system_number, Some(24940));
    assert_eq!(
        record.autonomous_system_organization,
        Some("Hetzner Online GmbH")
    );
}

#[test]
fn ipv4_and_ipv6_addresses_get_every_field() {
    let (_dir, city, asn) = databases();
    let geoip = GeoIp::open(&city, &asn);
    assert_eq!(geoip.problems(), Vec::<String>::new());

    assert_eq!(
        geoip.lookup(ip("8.8.8.8")),
        (Some(mountain_view()), Some(google()))
    );
    // The mapped form is the IPv4 address, network shown as IPv4.
    assert_eq!(
        geoip.lookup(ip("::ffff:8.8.8.8")),
        (Some(mountain_view()), Some(google()))
    );
    let (location, network) = geoip.lookup(ip("2a01:4f8:c17:1::1"));
    assert_eq!(
        location,
        Some(Location {
            country: Some("Germany".into()),
            country_code: Some("DE".into()),
            continent: Some("EU".into()),
            region: Some("Land Berlin".into()),
            city: Some("Berlin".into()),
            latitude: Some(52.5196),
            longitude: Some(13.4069),
            accuracy_radius_km: Some(50),
            time_zone: Some("Europe/Berlin".into()),
        })
    );
    assert_eq!(
        network,
        Some(Network {
            asn: Some(24940),
            organization: Some("Hetzner Online GmbH".into()),
            network: Some("2a01:4f8::/32".into()),
        })
    );
}

#[test]
fn an_address_in_no_network_gets_nothing() {
    let (_dir, city, asn) = databases();
    let geoip = GeoIp::open(&city, &asn);
    for address in ["192.0.2.1", "8.8.9.1", "2001:db8::1", "::1"] {
        assert_eq!(geoip.lookup(ip(address)), (None, None), "{address}");
    }
}

#[test]
fn a_record_with_nothing_known_is_no_location() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("city.mmdb");
    let partial = CityEntry {
        network: "198.51.100.0/24",
        country_code: Some("FR"),
        ..CityEntry::default()
    };
    let empty = CityEntry {
        network: "203.0.113.0/24",
        ..CityEntry::default()
    };
    mmdb::write_city(&city, mmdb::GEOLITE2_CITY, &[partial, empty]).unwrap();
    let geoip = GeoIp::open(&city, &dir.path().join("asn.mmdb"));
    assert_eq!(geoip.lookup(ip("203.0.113.9")).0, None);
    assert_eq!(
        geoip.lookup(ip("198.51.100.9")).0,
        Some(Location {
            country_code: Some("FR".into()),
            ..Location::default()
        })
    );
}

#[test]
fn a_country_database_at_the_city_path_gives_the_country() {
    let (dir, _, asn) = databases();
    let country = dir.path().join("GeoLite2-Country.mmdb");
    mmdb::write_country(
        &country,
        mmdb::GEOLITE2_COUNTRY,
        &[CountryEntry {
            network: "8.8.8.0/24",
            country_code: Some("US"),
            country_name: Some("United States"),
            continent: Some("NA"),
        }],
    )
    .unwrap();
    let geoip = GeoIp::open(&country, &asn);
    assert!(geoip.problems().is_empty(), "{:?}", geoip.problems());
    assert_eq!(
        geoip.lookup(ip("8.8.8.8")),
        (
            Some(Location {
                country: Some("United States".into()),
                country_code: Some("US".into()),
                continent: Some("NA".into()),
                ..Location::default()
            }),
            Some(google())
        )
    );
}

#[test]
fn db_ip_lite_databases_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("dbip-city-lite.mmdb");
    let asn = dir.path().join("dbip-asn-lite.mmdb");
    // DB-IP's lite city file has no accuracy radius.
    let entry = CityEntry {
        accuracy_radius: None,
        ..MOUNTAIN_VIEW
    };
    mmdb::write_city(&city, mmdb::DBIP_CITY_LITE, &[entry]).unwrap();
    mmdb::write_asn(&asn, mmdb::DBIP_ASN_LITE, ASNS).unwrap();
    let geoip = GeoIp::open(&city, &asn);
    assert!(geoip.problems().is_empty(), "{:?}", geoip.problems());
    let expected = Location {
        accuracy_radius_km: None,
        ..mountain_view()
    };
    assert_eq!(
        geoip.lookup(ip("8.8.8.8")),
        (Some(expected), Some(google()))
    );

    let country = dir.path().join("dbip-country-lite.mmdb");
    mmdb::write_country(
        &country,
        mmdb::DBIP_COUNTRY_LITE,
        &[CountryEntry {
            network: "8.8.8.0/24",
            country_code: Some("US"),
            ..CountryEntry::default()
        }],
    )
    .unwrap();
    let geoip = GeoIp::open(&country, &asn);
    assert_eq!(
        geoip.lookup(ip("8.8.8.8")).0.and_then(|l| l.country_code),
        Some("US".into())
    );
}

#[test]
fn missing_files_name_the_path_and_how_to_get_them() {
    let (dir, city, asn) = databases();
    let no_city = dir.path().join("GeoLite2-City.mmdb");
    let no_asn = dir.path().join("GeoLite2-ASN.mmdb");

    let geoip = GeoIp::open(&no_city, &asn);
    let problems = geoip.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!(
            "GeoIP City database {} is missing: run geoipupdate",
            no_city.display()
        )),
        "{problems:?}"
    );
    assert!(problems[0].contains("EditionIDs GeoLite2-City GeoLite2-ASN"));
    assert!(problems[0].contains("dbip-city-lite"));
    assert!(problems[0].contains("[intel] geoip_city_db"));
    // The ASN database still answers.
    assert_eq!(geoip.lookup(ip("8.8.8.8")), (None, Some(google())));

    let geoip = GeoIp::open(&city, &no_asn);
    let problems = geoip.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(&format!(
            "GeoIP ASN database {} is missing: ",
            no_asn.display()
        )),
        "{problems:?}"
    );
    assert_eq!(geoip.lookup(ip("8.8.8.8")), (Some(mountain_view()), None));

    let geoip = GeoIp::open(&no_city, &no_asn);
    assert_eq!(geoip.problems().len(), 2);
    assert_eq!(geoip.lookup(ip("8.8.8.8")), (None, None));
}

#[test]
fn a_database_of_the_wrong_kind_is_a_problem() {
    let (_dir, city, asn) = databases();
    // Swapped paths: each file is of the other kind.
    let geoip = GeoIp::open(&asn, &city);
    let problems = geoip.problems();
    assert_eq!(
        problems,
        vec![
            format!(
                "GeoIP City database {} is not a City or Country database (database_type \
                 GeoLite2-ASN): set [intel] geoip_city_db to a GeoLite2-City, \
                 GeoLite2-Country or DB-IP city/country lite file",
                asn.display()
            ),
            format!(
                "GeoIP ASN database {} is not an ASN database (database_type \
                 GeoLite2-City): set [intel] geoip_asn_db to a GeoLite2-ASN or DB-IP ASN \
                 lite file",
                city.display()
            ),
        ]
    );
    assert_eq!(geoip.lookup(ip("8.8.8.8")), (None, None));

    // A type nobody ships as City or ASN.
    let other = city.with_file_name("anon.mmdb");
    mmdb::write_asn(&other, "GeoIP2-Anonymous-IP", ASNS).unwrap();
    let geoip = GeoIp::open(&other, &other);
    let problems = geoip.problems();
    assert_eq!(problems.len(), 2);
    assert!(
        problems
            .iter()
            .all(|p| p.contains("(database_type GeoIP2-Anonymous-IP)"))
    );
}

#[test]
fn corrupt_or_truncated_files_are_problems_not_panics() {
    let (dir, city, asn) = databases();
    let bytes = std::fs::read(&city).unwrap();
    let truncated = dir.path().join("truncated.mmdb");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let garbage = dir.path().join("garbage.mmdb");
    std::fs::write(&garbage, b"<html>404 Not Found</html>\n".repeat(100)).unwrap();
    let empty = dir.path().join("empty.mmdb");
    std::fs::write(&empty, b"").unwrap();
    // The metadata survives but the tree and data are cut short.
    let cut_tree = dir.path().join("cut-tree.mmdb");
    let marker = bytes
        .windows(14)
        .rposition(|w| w == b"\xab\xcd\xefMaxMind.com")
        .unwrap();
    let mut damaged = bytes[..16].to_vec();
    damaged.extend_from_slice(&bytes[marker..]);
    std::fs::write(&cut_tree, damaged).unwrap();

    for broken in [
        &truncated,
        &garbage,
        &empty,
        &cut_tree,
        &dir.path().to_path_buf(),
    ] {
        let geoip = GeoIp::open(broken, &asn);
        let problems = geoip.problems();
        assert_eq!(problems.len(), 1, "{broken:?}: {problems:?}");
        let prefix = format!("GeoIP City database {} ", broken.display());
        assert!(problems[0].starts_with(&prefix), "{problems:?}");
        assert!(
            problems[0].contains("is not a usable MaxMind DB file")
                || problems[0].contains("cannot be read"),
            "{problems:?}"
        );
        assert!(!problems[0].contains('\n'));
        // The ASN part is unaffected.
        assert_eq!(geoip.lookup(ip("8.8.8.8")), (None, Some(google())));
    }
}

#[test]
fn a_damaged_data_section_gives_nothing_not_a_panic() {
    let (_dir, city, asn) = databases();
    let (tree, marker) = {
        let reader = Reader::open_readfile(&city).unwrap();
        let meta = reader.metadata();
        let tree = meta.node_count as usize * usize::from(meta.record_size) / 4;
        let bytes = std::fs::read(&city).unwrap();
        let marker = bytes
            .windows(14)
            .rposition(|w| w == b"\xab\xcd\xefMaxMind.com")
            .unwrap();
        (tree, marker)
    };
    let mut bytes = std::fs::read(&city).unwrap();
    // The tree still leads to the records, which are now noise.
    for byte in &mut bytes[tree + 16..marker] {
        *byte = 0xff;
    }
    std::fs::write(&city, bytes).unwrap();
    let geoip = GeoIp::open(&city, &asn);
    assert_eq!(geoip.lookup(ip("8.8.8.8")), (None, Some(google())));
    assert_eq!(geoip.lookup(ip("2a01:4f8::1")).0, None);
}

#[test]
fn a_replaced_file_is_seen_after_the_recheck_interval() {
    let (_dir, city, asn) = databases();
    let slow = GeoIp::open_with_recheck(&city, &asn, Duration::from_secs(3600));
    let quick = GeoIp::open_with_recheck(&city, &asn, Duration::from_millis(20));
    assert_eq!(quick.lookup(ip("8.8.8.8")).1, Some(google()));

    replace(&asn, |new| {
        mmdb::write_asn(new, mmdb::GEOLITE2_ASN, &[("8.8.0.0/16", 64500, "Renamed")]).unwrap();
    });
    replace(&city, |new| {
        let moved = CityEntry {
            network: "8.8.0.0/16",
            city: Some("Elsewhere"),
            ..CityEntry::default()
        };
        mmdb::write_city(new, mmdb::GEOLITE2_CITY, &[moved]).unwrap();
    });

    let seen = wait_until("the replaced databases to be used", PATIENCE, || {
        let (location, network) = quick.lookup(ip("8.8.8.8"));
        (network.as_ref().and_then(|n| n.asn) == Some(64500)).then_some((location, network))
    })
    .unwrap_or_else(|waited| panic!("{waited}"));
    assert_eq!(
        seen,
        (
            Some(Location {
                city: Some("Elsewhere".into()),
                ..Location::default()
            }),
            Some(Network {
                asn: Some(64500),
                organization: Some("Renamed".into()),
                network: Some("8.8.0.0/16".into()),
            })
        )
    );
    assert!(quick.problems().is_empty());
    // Before its interval has passed, the other instance still answers from the old
    // files' mappings, which the rename left intact.
    assert_eq!(
        slow.lookup(ip("8.8.8.8")),
        (Some(mountain_view()), Some(google()))
    );
}

#[test]
fn a_file_that_appears_later_is_picked_up() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("GeoLite2-City.mmdb");
    let asn = dir.path().join("GeoLite2-ASN.mmdb");
    let geoip = GeoIp::open_with_recheck(&city, &asn, Duration::ZERO);
    assert_eq!(geoip.problems().len(), 2);
    assert_eq!(geoip.lookup(ip("8.8.8.8")), (None, None));

    replace(&asn, |new| {
        mmdb::write_asn(new, mmdb::GEOLITE2_ASN, ASNS).unwrap()
    });
    assert_eq!(geoip.lookup(ip("8.8.8.8")), (None, Some(google())));
    let problems = geoip.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("GeoIP City database"),
        "{problems:?}"
    );

    mmdb::write_city(&city, mmdb::GEOLITE2_CITY, &[MOUNTAIN_VIEW]).unwrap();
    assert_eq!(
        geoip.lookup(ip("8.8.8.8")),
        (Some(mountain_view()), Some(google()))
    );
    assert!(geoip.problems().is_empty());
}

#[test]
fn a_removed_file_keeps_answering_and_is_reported() {
    let (_dir, city, asn) = databases();
    let geoip = GeoIp::open_with_recheck(&city, &asn, Duration::ZERO);
    std::fs::remove_file(&city).unwrap();
    assert_eq!(
        geoip.lookup(ip("8.8.8.8")),
        (Some(mountain_view()), Some(google()))
    );
    assert_eq!(
        geoip.problems(),
        vec![format!(
            "GeoIP City database {} was removed; the copy opened before stays in use \
             until a new file is put there",
            city.display()
        )]
    );
}

#[test]
fn a_broken_replacement_keeps_the_previous_copy() {
    let (_dir, city, asn) = databases();
    let geoip = GeoIp::open_with_recheck(&city, &asn, Duration::ZERO);
    replace(&asn, |new| std::fs::write(new, b"not a database").unwrap());
    assert_eq!(geoip.lookup(ip("8.8.8.8")).1, Some(google()));
    let problems = geoip.problems();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].contains("is not a usable MaxMind DB file")
            && problems[0].ends_with("; the previous copy stays in use"),
        "{problems:?}"
    );
    // A good file after it is used again.
    replace(&asn, |new| {
        mmdb::write_asn(new, mmdb::GEOLITE2_ASN, ASNS).unwrap()
    });
    assert_eq!(geoip.lookup(ip("8.8.8.8")).1, Some(google()));
    assert!(geoip.problems().is_empty());
}

#[test]
fn lookups_from_many_threads_while_the_files_are_replaced() {
    let (_dir, city, asn) = databases();
    let geoip = GeoIp::open_with_recheck(&city, &asn, Duration::ZERO);
    std::thread::scope(|s| {
        let readers: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    for _ in 0..500 {
                        let (location, network) = geoip.lookup(ip("8.8.8.8"));
                        let asn = network.and_then(|n| n.asn);
                        assert!(matches!(asn, Some(15169) | Some(64500)), "{asn:?}");
                        assert!(location.is_some());
                    }
                })
            })
            .collect();
        for n in 0..20 {
            let (number, organization) = if n % 2 == 0 {
                (64500, "Other")
            } else {
                (15169, "Google LLC")
            };
            replace(&asn, |new| {
                mmdb::write_asn(
                    new,
                    mmdb::GEOLITE2_ASN,
                    &[("8.8.8.0/24", number, organization)],
                )
                .unwrap();
            });
        }
        for reader in readers {
            reader.join().unwrap();
        }
    });
    assert!(geoip.problems().is_empty());
}

#[test]
fn text_from_a_database_is_bounded_and_clean() {
    let dir = tempfile::tempdir().unwrap();
    let city = dir.path().join("city.mmdb");
    let asn = dir.path().join("asn.mmdb");
    let long = "ü".repeat(300);
    let entry = CityEntry {
        network: "8.8.8.0/24",
        city: Some("Evil\u{1b}[2J\nCity"),
        country_name: Some(&long),
        latitude: Some(123.0),
        longitude: Some(f64::NAN),
        ..CityEntry::default()
    };
    mmdb::write_city(&city, mmdb::GEOLITE2_CITY, &[entry]).unwrap();
    mmdb::write_asn(&asn, mmdb::GEOLITE2_ASN, &[("8.8.8.0/24", 1, "  \u{7}  ")]).unwrap();
    let geoip = GeoIp::open(&city, &asn);
    let (location, network) = geoip.lookup(ip("8.8.8.8"));
    let location = location.unwrap();
    assert_eq!(location.city.as_deref(), Some("Evil[2JCity"));
    let country = location.country.unwrap();
    assert!(country.len() <= MAX_TEXT && country.chars().all(|c| c == 'ü'));
    // Coordinates off the globe are dropped.
    assert_eq!((location.latitude, location.longitude), (None, None));
    // An organisation of nothing but blanks and controls is absent.
    assert_eq!(network.unwrap().organization, None);
}
