//! The restore at start over the real NftBackend, in network namespaces of its own: into a
//! kernel without crmonban's table it goes in parts (one transaction each, networks last),
//! into one that holds our bans in one transaction, and a part the kernel refuses makes it
//! start over in one transaction. A backend wrapper records the calls the engine makes (and
//! refuses one part on request); everything else is the kernel's. These tests panic without
//! root.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use crmonban_core::{Ban, BanSource, Target, unix_now};
use crmonban_engine::Engine;
use crmonban_firewall::{
    ApplyReport, ChangeSet, Element, Expiry, FirewallBackend, FirewallError, NftBackend, NftOptions,
};
use crmonban_store::Store;
use crmonban_testutil::{NetNs, require_root};

/// Addresses stored: 60,000 a family, more than one part of 50,000 each.
const ADDRESSES: u32 = 120_000;
/// Networks stored beside them.
const NETWORKS: u32 = 30;

/// A call the engine made to change the sets.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    /// `replace_all_expecting`: addresses and networks given, room expected.
    Replace { elements: usize, expected: usize },
    /// `apply`: additions, of which networks.
    Apply { adds: usize, networks: usize },
}

/// NftBackend, recording `replace_all*` and `apply`; refuses the apply numbered `refuse`
/// (counting from 1) without sending it.
struct Recorder {
    inner: NftBackend,
    calls: Arc<Mutex<Vec<Call>>>,
    refuse: Option<usize>,
}

impl Recorder {
    fn new(refuse: Option<usize>) -> (Recorder, Arc<Mutex<Vec<Call>>>) {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorder = Recorder {
            inner: NftBackend::new(NftOptions::default()).unwrap(),
            calls: Arc::clone(&calls),
            refuse,
        };
        (recorder, calls)
    }

    fn record(&self, call: Call) -> usize {
        let mut calls = self.calls.lock().unwrap();
        calls.push(call);
        calls
            .iter()
            .filter(|c| matches!(c, Call::Apply { .. }))
            .count()
    }
}

impl FirewallBackend for Recorder {
    fn ensure_layout(&mut self) -> Result<(), FirewallError> {
        self.inner.ensure_layout()
    }
    fn apply(&mut self, changes: &ChangeSet) -> Result<ApplyReport, FirewallError> {
        let networks = changes
            .changes
            .iter()
            .filter(|c| matches!(c.target(), Target::Net(_)))
            .count();
        let applies = self.record(Call::Apply {
            adds: changes.len(),
            networks,
        });
        if self.refuse == Some(applies) {
            return Err(FirewallError::Refused {
                message: "refused by the test".into(),
                element: None,
            });
        }
        self.inner.apply(changes)
    }
    fn replace_all(&mut self, elements: &[Element]) -> Result<ApplyReport, FirewallError> {
        self.replace_all_expecting(elements, 0)
    }
    fn replace_all_expecting(
        &mut self,
        elements: &[Element],
        expected: usize,
    ) -> Result<ApplyReport, FirewallError> {
        self.record(Call::Replace {
            elements: elements.len(),
            expected,
        });
        self.inner.replace_all_expecting(elements, expected)
    }
    fn holds_nothing(&mut self) -> Result<bool, FirewallError> {
        self.inner.holds_nothing()
    }
    fn layout_present(&mut self) -> Result<bool, FirewallError> {
        self.inner.layout_present()
    }
    fn list(&mut self) -> Result<Vec<Element>, FirewallError> {
        self.inner.list()
    }
    fn element_counts(&mut self) -> Result<Option<[usize; 4]>, FirewallError> {
        self.inner.element_counts()
    }
    fn lookup(&mut self, targets: &[Target]) -> Result<Option<Vec<Option<Expiry>>>, FirewallError> {
        self.inner.lookup(targets)
    }
    fn generation(&mut self) -> Result<Option<u32>, FirewallError> {
        self.inner.generation()
    }
    fn teardown(&mut self) -> Result<(), FirewallError> {
        self.inner.teardown()
    }
    fn describe(&self) -> String {
        format!("recording {}", self.inner.describe())
    }
}

fn network(i: u32) -> Target {
    t(&format!("10.{i}.0.0/16"))
}

fn stored(target: Target, expires_at: Option<i64>) -> Ban {
    Ban {
        target,
        reason: "seeded".into(),
        source: BanSource::Detector,
        service: None,
        banned_at: unix_now(),
        expires_at,
        offence: 1,
    }
}

/// A database with [`ADDRESSES`] addresses and [`NETWORKS`] networks banned (the networks
/// stored among the first addresses, so that only the engine puts them last), and a ban of
/// loopback, which the restore must refuse.
async fn seed(db: &std::path::Path) {
    let store = Store::open(db).await.unwrap();
    let day = unix_now() + 86_400;
    let mut bans: Vec<Ban> = (1..=NETWORKS)
        .map(|i| stored(network(i), Some(day)))
        .collect();
    bans.push(stored(t("127.0.0.1"), None));
    bans.extend(
        (0..ADDRESSES).map(|i| stored(seeded_address(i), (!i.is_multiple_of(4)).then_some(day))),
    );
    for chunk in bans.chunks(50_000) {
        store.record_bans(chunk).await.unwrap();
    }
    store.close().await;
}

/// Starts an engine over `backend` in the calling thread's namespace, checks what it holds,
/// and shuts it down (leaving the bans in the kernel).
fn start_and_stop(ns: &NetNs, db: &std::path::Path, backend: Recorder) {
    ns.run(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let store = Store::open(db).await.unwrap();
            let engine = Engine::start(quick_options(), Box::new(backend), store)
                .await
                .unwrap();
            assert_eq!(
                engine.active_ban_count(),
                u64::from(ADDRESSES + NETWORKS),
                "loopback is not restored"
            );
            engine.shutdown().await;
        });
    });
}

/// The kernel holds every stored address with its kind of expiry, every network, and not
/// loopback; counted per set and looked up one by one.
fn assert_kernel_holds_the_store(ns: &NetNs) {
    let mut fw = ns.run(|| NftBackend::new(NftOptions::default())).unwrap();
    let counts = ns.run(|| fw.element_counts()).unwrap().unwrap();
    assert_eq!(
        counts[..2],
        [ADDRESSES as usize / 2, ADDRESSES as usize / 2],
        "{counts:?}"
    );
    // 10.1.0.0/16 .. 10.30.0.0/16 are adjacent: merged into intervals, at least one.
    assert!(counts[2] >= 1, "{counts:?}");
    let mut targets: Vec<Target> = (0..ADDRESSES).map(seeded_address).collect();
    targets.extend((1..=NETWORKS).map(network));
    targets.push(t("127.0.0.1"));
    let found = ns.run(|| fw.lookup(&targets)).unwrap().unwrap();
    for (i, held) in found[..ADDRESSES as usize].iter().enumerate() {
        let permanent = i % 4 == 0;
        match held {
            Some(Expiry::Never) => {
                assert!(permanent, "{} lost its timeout", seeded_address(i as u32))
            }
            Some(Expiry::At(_)) => {
                assert!(!permanent, "{} got a timeout", seeded_address(i as u32))
            }
            None => panic!("{} is not in the kernel", seeded_address(i as u32)),
        }
    }
    let networks = &found[ADDRESSES as usize..ADDRESSES as usize + NETWORKS as usize];
    assert!(networks.iter().all(Option::is_some), "{networks:?}");
    assert_eq!(
        found.last(),
        Some(&None),
        "loopback must never be in the kernel"
    );
}

#[test]
fn root_a_restore_into_an_empty_kernel_goes_in_parts_and_a_restart_in_one_transaction() {
    require_root();
    let ns = NetNs::new("rst-parts");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");
    ns.run(|| tokio::runtime::Runtime::new().unwrap().block_on(seed(&db)));

    // No table in this namespace: parts of 50,000 addresses, the first creating the layout
    // with room for every row, the networks last and together.
    let (backend, calls) = Recorder::new(None);
    start_and_stop(&ns, &db, backend);
    let rows = (ADDRESSES + NETWORKS + 1) as usize;
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        vec![
            Call::Replace {
                elements: 50_000,
                expected: rows
            },
            Call::Apply {
                adds: 50_000,
                networks: 0
            },
            Call::Apply {
                adds: 20_000,
                networks: 0
            },
            Call::Apply {
                adds: NETWORKS as usize,
                networks: NETWORKS as usize
            },
        ]
    );
    assert_kernel_holds_the_store(&ns);

    // An element nobody stored, added behind the daemon's back while it is down.
    ns.nft(&[
        "add",
        "element",
        "inet",
        "crmonban",
        "blocked_v4",
        "{ 203.0.113.9 }",
    ]);
    // The kernel holds our bans now: one transaction replaces them, so that none is missing
    // at any moment, and it leaves out what the store does not hold.
    let (backend, calls) = Recorder::new(None);
    start_and_stop(&ns, &db, backend);
    assert_eq!(
        calls.lock().unwrap().clone(),
        vec![Call::Replace {
            elements: (ADDRESSES + NETWORKS) as usize,
            expected: 0
        }]
    );
    assert_kernel_holds_the_store(&ns);
    let mut fw = ns.run(|| NftBackend::new(NftOptions::default())).unwrap();
    let stray = ns.run(|| fw.lookup(&[t("203.0.113.9")])).unwrap().unwrap();
    assert_eq!(
        stray,
        vec![None],
        "the restore keeps only what the store holds"
    );
}

#[test]
fn root_a_part_the_kernel_refuses_makes_the_restore_start_over_in_one_transaction() {
    require_root();
    let ns = NetNs::new("rst-refuse");
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crmonban.db");
    ns.run(|| tokio::runtime::Runtime::new().unwrap().block_on(seed(&db)));
    // The second part refused: the first is in the kernel, the rest is not.
    let (backend, calls) = Recorder::new(Some(1));
    start_and_stop(&ns, &db, backend);
    let calls = calls.lock().unwrap().clone();
    assert_eq!(
        calls.first(),
        Some(&Call::Replace {
            elements: 50_000,
            expected: (ADDRESSES + NETWORKS + 1) as usize
        })
    );
    assert_eq!(
        calls.get(1),
        Some(&Call::Apply {
            adds: 50_000,
            networks: 0
        })
    );
    assert_eq!(
        calls.last(),
        Some(&Call::Replace {
            elements: (ADDRESSES + NETWORKS) as usize,
            expected: 0
        }),
        "{calls:?}"
    );
    assert_kernel_holds_the_store(&ns);
}
