//! Small, real MaxMind DB (`.mmdb`) files for GeoIP tests, written with `mmdb-writer`: City,
//! Country and ASN databases laid out like MaxMind's GeoLite2 (and DB-IP's lite files, which
//! copy that schema), so a GeoIP2 reader decodes them as it decodes the real downloads.
//!
//! Each file is one IPv6 tree holding IPv4 and IPv6 networks: IPv4 networks live under `::/96`
//! and the IPv4-mapped, 6to4 and Teredo ranges alias them, as in GeoLite2, so looking up a
//! plain IPv4 address finds them. The record layout follows MaxMind's GeoIP2 schema:
//!
//! - City: `city.names.en`, `continent.code`, `country.iso_code`, `country.names.en`,
//!   `registered_country` (same as `country`), `subdivisions[0].names.en`,
//!   `location.latitude`/`longitude` (double), `location.accuracy_radius` (uint16),
//!   `location.time_zone`;
//! - Country: `continent`, `country` and `registered_country` only;
//! - ASN: `autonomous_system_number` (uint32), `autonomous_system_organization`.
//!
//! A field left `None` is left out of the record, as GeoLite2 leaves out what it does not know.
//! The `database_type` metadata is the caller's: use the constants below, or any other string
//! to test how a reader treats an unexpected type.

use std::collections::BTreeMap;
use std::io;
use std::path::Path;

use ipnet::IpNet;
use mmdb_writer::{Value, Writer};

/// `database_type` of MaxMind's free City database.
pub const GEOLITE2_CITY: &str = "GeoLite2-City";
/// `database_type` of MaxMind's free Country database.
pub const GEOLITE2_COUNTRY: &str = "GeoLite2-Country";
/// `database_type` of MaxMind's free ASN database.
pub const GEOLITE2_ASN: &str = "GeoLite2-ASN";
/// `database_type` of DB-IP's free city database (`dbip-city-lite-YYYY-MM.mmdb`).
pub const DBIP_CITY_LITE: &str = "DBIP-City-Lite";
/// `database_type` of DB-IP's free country database.
pub const DBIP_COUNTRY_LITE: &str = "DBIP-Country-Lite";
/// `database_type` of DB-IP's free ASN database, which declares its GeoLite2 compatibility.
pub const DBIP_ASN_LITE: &str = "DBIP-ASN-Lite (compat=GeoLite2-ASN)";

/// One network of a City database. `Default` gives a network with nothing known.
#[derive(Clone, Copy, Debug, Default)]
pub struct CityEntry<'a> {
    /// The network, as a CIDR ("192.0.2.0/24", "2001:db8::/32").
    pub network: &'a str,
    /// `country.iso_code`, e.g. "US".
    pub country_code: Option<&'a str>,
    /// `country.names.en`, e.g. "United States".
    pub country_name: Option<&'a str>,
    /// `continent.code`, e.g. "NA".
    pub continent: Option<&'a str>,
    /// `subdivisions[0].names.en`, e.g. "California".
    pub region: Option<&'a str>,
    /// `city.names.en`, e.g. "Mountain View".
    pub city: Option<&'a str>,
    /// `location.latitude`.
    pub latitude: Option<f64>,
    /// `location.longitude`.
    pub longitude: Option<f64>,
    /// `location.accuracy_radius`, in km.
    pub accuracy_radius: Option<u16>,
    /// `location.time_zone`, e.g. "America/Los_Angeles".
    pub time_zone: Option<&'a str>,
}

/// One network of a Country database.
#[derive(Clone, Copy, Debug, Default)]
pub struct CountryEntry<'a> {
    /// The network, as a CIDR.
    pub network: &'a str,
    /// `country.iso_code`.
    pub country_code: Option<&'a str>,
    /// `country.names.en`.
    pub country_name: Option<&'a str>,
    /// `continent.code`.
    pub continent: Option<&'a str>,
}

/// Writes a City database of `entries` to `path`, with `database_type` in its metadata
/// (e.g. [`GEOLITE2_CITY`], [`DBIP_CITY_LITE`]).
pub fn write_city(path: &Path, database_type: &str, entries: &[CityEntry<'_>]) -> io::Result<()> {
    let mut writer = new_writer(database_type, "City");
    for entry in entries {
        let mut record = country_part(entry.country_code, entry.country_name, entry.continent);
        if let Some(city) = entry.city {
            record.insert("city".into(), Value::map([("names", english(city))]));
        }
        if let Some(region) = entry.region {
            record.insert(
                "subdivisions".into(),
                Value::array([Value::map([("names", english(region))])]),
            );
        }
        let mut location = BTreeMap::new();
        if let Some(latitude) = entry.latitude {
            location.insert("latitude".to_owned(), Value::Double(latitude));
        }
        if let Some(longitude) = entry.longitude {
            location.insert("longitude".to_owned(), Value::Double(longitude));
        }
        if let Some(radius) = entry.accuracy_radius {
            location.insert("accuracy_radius".to_owned(), Value::U16(radius));
        }
        if let Some(zone) = entry.time_zone {
            location.insert("time_zone".to_owned(), Value::from(zone));
        }
        if !location.is_empty() {
            record.insert("location".into(), Value::Map(location));
        }
        insert(&mut writer, entry.network, record)?;
    }
    finish(&writer, path)
}

/// Writes a Country database of `entries` to `path` (e.g. [`GEOLITE2_COUNTRY`]).
pub fn write_country(
    path: &Path,
    database_type: &str,
    entries: &[CountryEntry<'_>],
) -> io::Result<()> {
    let mut writer = new_writer(database_type, "Country");
    for entry in entries {
        let record = country_part(entry.country_code, entry.country_name, entry.continent);
        insert(&mut writer, entry.network, record)?;
    }
    finish(&writer, path)
}

/// Writes an ASN database to `path` (e.g. [`GEOLITE2_ASN`], [`DBIP_ASN_LITE`]): one
/// `(CIDR, AS number, organisation)` per network.
pub fn write_asn(
    path: &Path,
    database_type: &str,
    entries: &[(&str, u32, &str)],
) -> io::Result<()> {
    let mut writer = new_writer(database_type, "ASN");
    for &(network, asn, organization) in entries {
        let record = BTreeMap::from([
            ("autonomous_system_number".to_owned(), Value::U32(asn)),
            (
                "autonomous_system_organization".to_owned(),
                Value::from(organization),
            ),
        ]);
        insert(&mut writer, network, record)?;
    }
    finish(&writer, path)
}

fn new_writer(database_type: &str, kind: &str) -> Writer {
    let description = format!("crmonban test {kind} database");
    Writer::builder(database_type)
        .description(&[("en", description.as_str())])
        .build()
}

/// `{"names": {"en": name}}`, the shape of every named place in GeoIP2 records.
fn english(name: &str) -> Value {
    Value::map([("en", name)])
}

/// The `continent`, `country` and `registered_country` maps that City and Country records
/// share.
fn country_part(
    code: Option<&str>,
    name: Option<&str>,
    continent: Option<&str>,
) -> BTreeMap<String, Value> {
    let mut record = BTreeMap::new();
    if let Some(continent) = continent {
        record.insert("continent".to_owned(), Value::map([("code", continent)]));
    }
    let mut country = BTreeMap::new();
    if let Some(code) = code {
        country.insert("iso_code".to_owned(), Value::from(code));
    }
    if let Some(name) = name {
        country.insert("names".to_owned(), english(name));
    }
    if !country.is_empty() {
        record.insert("country".to_owned(), Value::Map(country.clone()));
        record.insert("registered_country".to_owned(), Value::Map(country));
    }
    record
}

fn insert(writer: &mut Writer, network: &str, record: BTreeMap<String, Value>) -> io::Result<()> {
    let net: IpNet = network.parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("mmdb fixture network {network:?}: {e}"),
        )
    })?;
    writer
        .insert_value(net, Value::Map(record))
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{network}: {e}")))
}

fn finish(writer: &Writer, path: &Path) -> io::Result<()> {
    let bytes = writer
        .to_bytes()
        .map_err(|e| io::Error::other(format!("mmdb fixture {}: {e}", path.display())))?;
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    //! The files are read back with `maxminddb` in crmonban-intel's GeoIP tests: this crate
    //! has no MaxMind reader (it only writes). Here: what can be checked without one.

    use super::*;

    /// The metadata map follows the last `\xab\xcd\xefMaxMind.com` marker (MaxMind DB spec,
    /// "Database Metadata").
    fn metadata(bytes: &[u8]) -> &[u8] {
        let marker = b"\xab\xcd\xefMaxMind.com";
        let at = bytes
            .windows(marker.len())
            .rposition(|w| w == marker)
            .expect("metadata marker");
        &bytes[at + marker.len()..]
    }

    fn contains(haystack: &[u8], needle: &str) -> bool {
        haystack
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    #[test]
    fn files_carry_the_database_type_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let city = dir.path().join("city.mmdb");
        write_city(
            &city,
            DBIP_CITY_LITE,
            &[CityEntry {
                network: "192.0.2.0/24",
                city: Some("Springfield"),
                ..CityEntry::default()
            }],
        )
        .unwrap();
        let asn = dir.path().join("asn.mmdb");
        write_asn(&asn, GEOLITE2_ASN, &[("2001:db8::/32", 64_500, "Example")]).unwrap();

        let city_bytes = std::fs::read(&city).unwrap();
        assert!(contains(metadata(&city_bytes), "DBIP-City-Lite"));
        assert!(contains(&city_bytes, "Springfield"));
        let asn_bytes = std::fs::read(&asn).unwrap();
        assert!(contains(metadata(&asn_bytes), "GeoLite2-ASN"));
        assert!(contains(&asn_bytes, "autonomous_system_organization"));
    }

    #[test]
    fn a_bad_network_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_country(
            &dir.path().join("c.mmdb"),
            GEOLITE2_COUNTRY,
            &[CountryEntry {
                network: "192.0.2.0/33",
                ..CountryEntry::default()
            }],
        )
        .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("192.0.2.0/33"), "{err}");
        assert!(!dir.path().join("c.mmdb").exists());
    }
}
