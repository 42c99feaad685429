//! Local GeoIP/ASN databases: where an address is (a City or Country database) and which
//! autonomous system announces it (an ASN database), from MaxMind's GeoLite2/GeoIP2 files or
//! DB-IP's lite files, read with `maxminddb`. Nothing here asks a web service.
//!
//! A database that is missing, unreadable, corrupt or of the wrong kind never stops anything:
//! that part of the answer is absent and [`GeoIp::problems`] says which file and how to get
//! it. The kind is taken from the file's own metadata (`database_type`), so the City path
//! may hold a City or a Country database, MaxMind's or DB-IP's.
//!
//! Files are memory-mapped, not read: a GeoLite2 City database is about 60 MB, which on the
//! heap would be several times the daemon's idle footprint; mapped, only the pages lookups
//! touch are resident and the kernel can drop them again.
//!
//! Updates are picked up without a restart: at most every few seconds a lookup compares the
//! files on disk (device, inode, size, modification time) with what is open and reopens what
//! changed; a file that appears later is opened then. **Updates must replace the file**
//! (write a new file and rename it over the old one, as `geoipupdate` does), never rewrite it
//! in place: the old inode, and so the open mapping, stays intact until the new file is
//! open, while a file truncated or rewritten under a mapping can crash the reader. A file
//! that is removed keeps serving from its mapping, and is reported.

use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use maxminddb::{LookupResult, MaxMindDbError, Mmap, Reader, geoip2};

use crate::record::{Location, Network};

/// How often a lookup checks whether the database files changed on disk: two `stat` calls,
/// cheap enough that an update is seen within seconds, rare enough to cost nothing.
const RECHECK: Duration = Duration::from_secs(5);

/// Text taken from a database is cut to this many bytes: names are labels on one line.
const MAX_TEXT: usize = 256;

/// How to get the databases, appended to the message about a missing one.
const HOW_TO_GET: &str = "run geoipupdate with a free MaxMind licence key (EditionIDs \
    GeoLite2-City GeoLite2-ASN), or download DB-IP's free lite databases (dbip-city-lite, \
    dbip-asn-lite .mmdb) and set [intel] geoip_city_db / geoip_asn_db";

/// The local GeoIP and ASN databases, shared by every lookup (`&self`, any thread).
#[derive(Debug)]
pub(crate) struct GeoIp {
    city: Slot,
    asn: Slot,
    recheck: Duration,
}

impl GeoIp {
    /// Opens the City (or Country) database at `city_db` and the ASN database at `asn_db`.
    /// Never fails: a file that cannot be used is remembered in [`GeoIp::problems`], logged,
    /// and looked for again on later lookups.
    pub(crate) fn open(city_db: &Path, asn_db: &Path) -> GeoIp {
        GeoIp::open_with_recheck(city_db, asn_db, RECHECK)
    }

    fn open_with_recheck(city_db: &Path, asn_db: &Path, recheck: Duration) -> GeoIp {
        GeoIp {
            city: Slot::open(Role::City, city_db),
            asn: Slot::open(Role::Asn, asn_db),
            recheck,
        }
    }

    /// Where `ip` is, and which network announces it. Either is `None` when its database is
    /// absent or has nothing about `ip`. Synchronous and quick (a tree walk in mapped memory).
    pub(crate) fn lookup(&self, ip: IpAddr) -> (Option<Location>, Option<Network>) {
        // `::ffff:192.0.2.1` is the IPv4 address, and is shown as one.
        let ip = ip.to_canonical();
        let location = self
            .city
            .database(self.recheck)
            .and_then(|db| db.location(ip, &self.city.path));
        let network = self
            .asn
            .database(self.recheck)
            .and_then(|db| db.network(ip, &self.asn.path));
        (location, network)
    }

    /// Whether at least one of the two databases is open (after the periodic recheck).
    pub(crate) fn any_open(&self) -> bool {
        self.city.database(self.recheck).is_some() || self.asn.database(self.recheck).is_some()
    }

    /// One line per database file that is missing or unusable: the path, what is wrong, and
    /// what to do. Empty when both are in use.
    pub(crate) fn problems(&self) -> Vec<String> {
        [&self.city, &self.asn]
            .into_iter()
            .filter_map(|slot| slot.problem(self.recheck))
            .collect()
    }
}

/// Which of the two files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    City,
    Asn,
}

impl Role {
    fn label(self) -> &'static str {
        match self {
            Role::City => "GeoIP City database",
            Role::Asn => "GeoIP ASN database",
        }
    }

    /// How records of a database of type `database_type` are read in this role, or `None`
    /// when it is the wrong kind. Names as MaxMind and DB-IP write them: "GeoLite2-City",
    /// "GeoIP2-Country", "DBIP-City-Lite", "DBIP-Location (compat=City)", "GeoIP2-Enterprise",
    /// "GeoLite2-ASN", "DBIP-ASN-Lite (compat=GeoLite2-ASN)", "GeoIP2-ISP",
    /// "DBIP-ISP (compat=Enterprise)".
    fn layout(self, database_type: &str) -> Option<Layout> {
        let has = |word: &str| database_type.contains(word);
        match self {
            // Enterprise records are City records with more in them.
            Role::City => ["City", "Country", "Location", "Enterprise"]
                .into_iter()
                .any(has)
                .then_some(Layout::Place),
            Role::Asn if has("Enterprise") => Some(Layout::EnterpriseTraits),
            Role::Asn if has("ASN") || has("ISP") => Some(Layout::Asn),
            Role::Asn => None,
        }
    }

    /// What a file of the wrong kind is not, and what to do, around its database_type.
    fn wrong_kind(self, database_type: &str) -> String {
        let database_type = clean(database_type);
        match self {
            Role::City => format!(
                "is not a City or Country database (database_type {database_type}): set \
                 [intel] geoip_city_db to a GeoLite2-City, GeoLite2-Country or DB-IP \
                 city/country lite file"
            ),
            Role::Asn => format!(
                "is not an ASN database (database_type {database_type}): set [intel] \
                 geoip_asn_db to a GeoLite2-ASN or DB-IP ASN lite file"
            ),
        }
    }
}

/// Where the fields are in a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `country`, `city`, `subdivisions`, `location`, `continent` (City, Country,
    /// Enterprise).
    Place,
    /// Top-level `autonomous_system_number` and `autonomous_system_organization` (ASN, ISP).
    Asn,
    /// The same two fields under `traits` (Enterprise).
    EnterpriseTraits,
}

/// One database path and what is open from it.
#[derive(Debug)]
struct Slot {
    role: Role,
    path: PathBuf,
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    /// The open database. Lookups clone the `Arc` and walk it without the lock, so a reopen
    /// never waits for them and the old mapping lives until the last of them is done.
    database: Option<Arc<Database>>,
    /// The file last tried (opened or refused), so an unchanged broken file is not retried
    /// every few seconds; `None` when there was no file.
    seen: Option<FileId>,
    problem: Option<String>,
    checked: Instant,
}

/// What tells one version of a file from another without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i128,
}

impl FileId {
    fn of(meta: &std::fs::Metadata) -> FileId {
        FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        }
    }
}

impl Slot {
    fn open(role: Role, path: &Path) -> Slot {
        let slot = Slot {
            role,
            path: path.to_path_buf(),
            state: Mutex::new(SlotState {
                database: None,
                seen: None,
                problem: None,
                checked: Instant::now(),
            }),
        };
        slot.refresh(&mut slot.lock());
        slot
    }

    /// The open database, after looking at the file again when `recheck` has passed.
    fn database(&self, recheck: Duration) -> Option<Arc<Database>> {
        let mut state = self.lock();
        if state.checked.elapsed() >= recheck {
            self.refresh(&mut state);
        }
        state.database.clone()
    }

    fn problem(&self, recheck: Duration) -> Option<String> {
        let mut state = self.lock();
        if state.checked.elapsed() >= recheck {
            self.refresh(&mut state);
        }
        state.problem.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        // The state is consistent after every statement that changes it, so a thread that
        // panicked while holding the lock left nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Compares the file on disk with what was seen last, and reopens it when it changed.
    fn refresh(&self, state: &mut SlotState) {
        state.checked = Instant::now();
        let label = self.role.label();
        let shown = self.path.display();
        let problem = match std::fs::metadata(&self.path) {
            Err(e) => {
                state.seen = None;
                Some(match (&state.database, e.kind()) {
                    (Some(_), std::io::ErrorKind::NotFound) => format!(
                        "{label} {shown} was removed; the copy opened before stays in use \
                         until a new file is put there"
                    ),
                    (None, std::io::ErrorKind::NotFound) => {
                        format!("{label} {shown} is missing: {HOW_TO_GET}")
                    }
                    _ => format!("{label} {shown} cannot be read: {e}"),
                })
            }
            Ok(meta) => {
                let id = FileId::of(&meta);
                if state.seen == Some(id) {
                    return;
                }
                state.seen = Some(id);
                match Database::open(self.role, &self.path) {
                    Ok(database) => {
                        tracing::info!(
                            "{label} {shown} opened ({})",
                            database.reader.metadata().database_type
                        );
                        state.database = Some(Arc::new(database));
                        None
                    }
                    Err(problem) => {
                        // A new file that cannot be used leaves the previous one's mapping
                        // intact (it is another inode): keep answering from it. The same
                        // inode changed in place cannot be trusted any more.
                        let keep = matches!(&state.database,
                            Some(old) if (old.dev, old.ino) != (id.dev, id.ino));
                        if !keep {
                            state.database = None;
                        }
                        Some(if keep {
                            format!("{label} {shown} {problem}; the previous copy stays in use")
                        } else {
                            format!("{label} {shown} {problem}")
                        })
                    }
                }
            }
        };
        if problem != state.problem {
            if let Some(problem) = &problem {
                tracing::warn!("{problem}");
            }
            state.problem = problem;
        }
    }
}

/// An open, memory-mapped database of the right kind.
#[derive(Debug)]
struct Database {
    reader: Reader<Mmap>,
    layout: Layout,
    dev: u64,
    ino: u64,
}

impl Database {
    /// Opens `path` for `role`. The error completes "{label} {path} ...".
    fn open(role: Role, path: &Path) -> Result<Database, String> {
        // One open file for the inode number and the mapping, so both are of the same file
        // even when it is replaced meanwhile.
        let file = std::fs::File::open(path).map_err(|e| format!("cannot be read: {e}"))?;
        let meta = file
            .metadata()
            .map_err(|e| format!("cannot be read: {e}"))?;
        // SAFETY: the reader walks the mapping in place, so the file must not be modified or
        // truncated while it is mapped. Updates replace the file by renaming a new one over
        // it (geoipupdate does; the module documentation and [intel] docs require it), which
        // leaves this inode, and so the mapping, unchanged until it is dropped.
        let mapped = unsafe { Mmap::map(&file) }.map_err(|e| format!("cannot be read: {e}"))?;
        let reader = Reader::from_source(mapped).map_err(|e| match e {
            MaxMindDbError::Io(e) | MaxMindDbError::Mmap(e) => format!("cannot be read: {e}"),
            other => format!(
                "is not a usable MaxMind DB file ({}): replace it with a fresh download; \
                 {HOW_TO_GET}",
                clean(&other.to_string())
            ),
        })?;
        let database_type = &reader.metadata().database_type;
        let layout = role
            .layout(database_type)
            .ok_or_else(|| role.wrong_kind(database_type))?;
        Ok(Database {
            reader,
            layout,
            dev: meta.dev(),
            ino: meta.ino(),
        })
    }

    /// The record for `ip`, when the database has one.
    fn find(&self, ip: IpAddr, path: &Path) -> Option<LookupResult<'_, Mmap>> {
        let ip = match (self.reader.metadata().ip_version, ip) {
            // An IPv4-only database knows nothing of IPv6 addresses.
            (4, IpAddr::V6(_)) => return None,
            _ => ip,
        };
        match self.reader.lookup(ip) {
            Ok(found) if found.has_data() => Some(found),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!("GeoIP lookup of {ip} in {}: {e}", path.display());
                None
            }
        }
    }

    fn location(&self, ip: IpAddr, path: &Path) -> Option<Location> {
        let found = self.find(ip, path)?;
        let record: geoip2::City<'_> = decode(&found, ip, path)?;
        let location = Location {
            country: text(record.country.names.english),
            country_code: text(record.country.iso_code),
            continent: text(record.continent.code),
            region: record
                .subdivisions
                .first()
                .and_then(|region| text(region.names.english)),
            city: text(record.city.names.english),
            latitude: record
                .location
                .latitude
                .filter(|lat| (-90.0..=90.0).contains(lat)),
            longitude: record
                .location
                .longitude
                .filter(|lon| (-180.0..=180.0).contains(lon)),
            accuracy_radius_km: record.location.accuracy_radius,
            time_zone: text(record.location.time_zone),
        };
        (location != Location::default()).then_some(location)
    }

    fn network(&self, ip: IpAddr, path: &Path) -> Option<Network> {
        let found = self.find(ip, path)?;
        let (asn, organization) = match self.layout {
            Layout::EnterpriseTraits => {
                let record: geoip2::Enterprise<'_> = decode(&found, ip, path)?;
                (
                    record.traits.autonomous_system_number,
                    text(record.traits.autonomous_system_organization),
                )
            }
            Layout::Asn | Layout::Place => {
                let record: geoip2::Asn<'_> = decode(&found, ip, path)?;
                (
                    record.autonomous_system_number,
                    text(record.autonomous_system_organization),
                )
            }
        };
        if asn.is_none() && organization.is_none() {
            return None;
        }
        Some(Network {
            asn,
            organization,
            network: found.network().ok().map(|net| net.to_string()),
        })
    }
}

fn decode<'a, T: serde::Deserialize<'a>>(
    found: &LookupResult<'a, Mmap>,
    ip: IpAddr,
    path: &Path,
) -> Option<T> {
    match found.decode() {
        Ok(record) => record,
        Err(e) => {
            tracing::warn!("GeoIP record of {ip} in {}: {e}", path.display());
            None
        }
    }
}

/// A text field as shown: control characters dropped, cut to [`MAX_TEXT`] bytes, `None` when
/// nothing is left.
fn text(field: Option<&str>) -> Option<String> {
    let cleaned = clean(field?);
    (!cleaned.is_empty()).then_some(cleaned)
}

fn clean(field: &str) -> String {
    let mut out = String::with_capacity(field.len().min(MAX_TEXT));
    for c in field.trim().chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > MAX_TEXT {
            break;
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
