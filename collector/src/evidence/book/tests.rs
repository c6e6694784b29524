//! The book against the store: over random histories (failures of every
//! kind, slower connects, lost SYNs, lookups, probes that go silent, late
//! batches, restarts), the cells the book keeps in memory are the cells
//! read from the store at the same moment, field for field, and so are the
//! findings judged from them.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use vantage_probe::outcome::{ConnectOutcome, DnsOutcome};
use vantage_probe::result::{ConnectAttempt, DnsObservation, Identity, RoundResult, Timestamp};
use vantage_probe::wire::{Batch, SCHEMA_VERSION};

use super::Book;
use crate::config::Retention;
use crate::evidence::Params;
use crate::evidence::cells::{self, Cell};
use crate::evidence::localize::{self, Held};
use crate::store::Store;
use crate::time::from_us;

/// Short windows, so that a history of an hour crosses both many times.
fn params() -> Params {
    Params {
        recent: Duration::from_secs(3 * 60),
        baseline: Duration::from_secs(7 * 60),
        alpha: 1e-3,
    }
}

/// The simulated clock's start (µs), on no minute boundary.
const T0: i64 = 1_800_000_017_000_000;

/// (region, probe id): two probes in one region share its cells' names.
const PROBES: [(&str, &str); 3] = [("east", "e1"), ("east", "e2"), ("west", "w1")];

/// What a round's connect did.
#[derive(Debug, Clone, Copy)]
enum Did {
    Ok,
    /// Succeeded after this many SYNs sent again (a second each).
    Late(u8),
    Slow,
    Fail(ConnectOutcome, u8),
}

fn did() -> impl Strategy<Value = Did> {
    prop_oneof![
        6 => Just(Did::Ok),
        1 => (1u8..3).prop_map(Did::Late),
        1 => Just(Did::Slow),
        2 => (
            prop::sample::select(vec![
                ConnectOutcome::Timeout,
                ConnectOutcome::Refused,
                ConnectOutcome::Reset,
                ConnectOutcome::LocalResources,
            ]),
            0u8..3
        )
            .prop_map(|(o, r)| Did::Fail(o, r)),
    ]
}

/// One step of a history.
#[derive(Debug, Clone)]
enum Step {
    /// A batch of `rounds` (target index, what it did, lookup failed)
    /// from a probe, `late_s` seconds behind the clock.
    Batch {
        probe: usize,
        late_s: i64,
        rounds: Vec<(usize, Did, bool)>,
    },
    /// The clock moves on.
    Wait(i64),
    /// The collector restarts: the book is loaded from the store again.
    Restart,
    /// Judge now, from the book and from the store.
    Judge,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (
            0..PROBES.len(),
            prop_oneof![6 => Just(0i64), 1 => 0i64..900],
            prop::collection::vec((0usize..3, did(), prop::bool::weighted(0.1)), 1..12)
        )
            .prop_map(|(probe, late_s, rounds)| Step::Batch { probe, late_s, rounds }),
        4 => prop_oneof![5 => 1i64..20, 1 => 20i64..400].prop_map(Step::Wait),
        1 => Just(Step::Restart),
        3 => Just(Step::Judge),
    ]
}

/// A batch of `rounds` from `PROBES[probe]` starting at `at_us`, one round
/// a second. Target 2 is a name: its rounds look it up first.
fn batch(probe: usize, seq: u64, at_us: i64, rounds: &[(usize, Did, bool)]) -> Batch {
    let (region, id) = PROBES[probe];
    let results = rounds
        .iter()
        .enumerate()
        .map(|(i, &(t, did, lookup_failed))| {
            let started_at = Timestamp::from(from_us(at_us + i as i64 * 1_000_000));
            let name = ["api", "db", "web"][t];
            let dns = (t == 2).then_some(DnsObservation {
                outcome: if lookup_failed {
                    DnsOutcome::Servfail
                } else {
                    DnsOutcome::Ok
                },
                duration_us: 2_000,
                addresses: 1,
            });
            let (outcome, duration_us, retransmits) = match did {
                Did::Ok => (ConnectOutcome::Ok, 700 + 100 * t as u64, 0),
                Did::Late(n) => (ConnectOutcome::Ok, 1_000_700 * u64::from(n), n),
                Did::Slow => (ConnectOutcome::Ok, 40_000, 0),
                Did::Fail(o, n) => (o, 1_000_000, n),
            };
            let attempts = if t == 2 && lookup_failed {
                Vec::new()
            } else {
                vec![ConnectAttempt {
                    address: SocketAddr::from(([127, 0, 0, 1 + t as u8], 443)),
                    local: None,
                    started_at,
                    outcome,
                    duration_us,
                    rtt_us: (outcome == ConnectOutcome::Ok)
                        .then_some((duration_us as u32).min(900_000)),
                    syn_retransmits: u32::from(retransmits),
                    errno: None,
                    icmp_from: None,
                }]
            };
            RoundResult {
                target: name.into(),
                host: "127.0.0.1".into(),
                port: 443,
                labels: Arc::new(BTreeMap::from([(
                    "provider".to_string(),
                    if t == 0 { "gcp" } else { "aws" }.to_string(),
                )])),
                started_at,
                dns,
                attempts,
            }
        })
        .collect();
    Batch {
        schema: SCHEMA_VERSION,
        probe: Identity {
            src_region: region.into(),
            zone: None,
            probe_id: id.into(),
        },
        stream: "s".into(),
        seq,
        sent_at: Timestamp::from(from_us(at_us)),
        results,
        last: false,
    }
}

/// A store in `dir` whose commits go to a book loaded from it at `now_us`.
fn open(dir: &std::path::Path, now_us: i64) -> (Store, Arc<Book>) {
    let day = Duration::from_secs(86_400);
    let store = Store::open(
        dir,
        Retention {
            rollups: day * 3650,
            failures: day * 3650,
            receipts: day * 3650,
        },
    )
    .unwrap();
    let book = Arc::new(
        store
            .read(|snap| Book::load(snap, params(), now_us))
            .unwrap(),
    );
    let sink = book.clone();
    assert!(store.on_commit(Box::new(move |c| sink.apply(c))));
    (store, book)
}

/// The cells from the store at `now_us`.
fn from_store(store: &Store, now_us: i64) -> Vec<Cell> {
    let p = params();
    let recent_from = now_us - p.recent.as_micros() as i64;
    let baseline_from = recent_from - p.baseline.as_micros() as i64;
    store
        .read(|snap| cells::read(snap, baseline_from, recent_from, now_us))
        .unwrap()
}

/// Runs a history; how many judgments found `db` failing.
fn run(steps: &[Step], name: &str) -> Result<usize, TestCaseError> {
    // A directory of its own per run: a store dropped a moment ago may
    // still have its files open.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("vantage-book-{name}-{}-{run}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut now = T0;
    let (mut store, mut book) = open(&dir, now);
    let mut seq = 0;
    let mut judged = 0;
    let mut found = 0;
    // The cells of the last judgment, unless the book restarted since.
    let mut before: Option<Vec<Cell>> = None;
    for step in steps.iter().chain([&Step::Judge]) {
        match step {
            Step::Batch {
                probe,
                late_s,
                rounds,
            } => {
                seq += 1;
                let at = now - late_s * 1_000_000;
                let b = batch(*probe, seq, at, rounds);
                rt.block_on(store.submit(b, from_us(now), from_us(now)))
                    .unwrap();
            }
            Step::Wait(s) => now += s * 1_000_000,
            Step::Restart => {
                drop((store, book));
                (store, book) = open(&dir, now);
                before = None;
            }
            Step::Judge => {
                judged += 1;
                let touched = book.touched(now);
                let (memory, stored) = (book.cells(now), from_store(&store, now));
                prop_assert_eq!(&memory, &stored, "at {} s", (now - T0) / 1_000_000);
                check_touched(&touched, &memory, before.as_deref())?;
                before = Some(memory.clone());
                let judge = |c: &[Cell]| localize::localize(c, &[], now, 1e-3, &Held::default());
                let findings = judge(&memory);
                prop_assert_eq!(&findings, &judge(&stored));
                found += usize::from(findings.iter().any(|f| f.targets == ["db"]));
            }
        }
    }
    prop_assert!(judged > 0);
    drop((store, book));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(found)
}

/// A cell's names (two probes of one region share them: their series
/// are two cells of the same names).
fn key(c: &Cell) -> (&str, &str, Option<&str>) {
    (&c.src_region, &c.target, c.address.as_deref())
}

/// The failures of the cells named `k` among `cells`.
fn failures_of<'a>(cells: &'a [Cell], k: &(&str, &str, Option<&str>)) -> Vec<&'a (i64, String)> {
    cells
        .iter()
        .filter(|c| key(c) == *k)
        .flat_map(|c| &c.failures)
        .collect()
}

/// The cells [`Book::touched`] gave are cells the book has, and among
/// them is every failure that the cells of the judgment `before` (if the
/// book kept its state since) did not have.
fn check_touched(
    touched: &[Cell],
    memory: &[Cell],
    before: Option<&[Cell]>,
) -> Result<(), TestCaseError> {
    for t in touched {
        prop_assert!(
            memory.contains(t),
            "a touched cell as the book has it: {t:?}"
        );
    }
    let Some(before) = before else {
        return Ok(());
    };
    for c in memory {
        let k = key(c);
        let (had, seen) = (failures_of(before, &k), failures_of(touched, &k));
        for f in c.failures.iter().filter(|f| !had.contains(f)) {
            prop_assert!(seen.contains(&f), "{k:?} failed anew at {f:?}, not touched");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_book_keeps_the_cells_the_store_would_give(
        steps in prop::collection::vec(step(), 1..80),
    ) {
        run(&steps, "random")?;
    }
}

/// A fault the judging finds, so that the comparison covers failing cells
/// and not only healthy ones: a clean quarter hour, then `db` refusing
/// from every region for a quarter hour, then fixed; judged every half
/// minute as the windows slide, with a restart during the fault.
#[test]
fn a_fault_is_found_alike_from_the_book_and_from_the_store() {
    let mut steps = Vec::new();
    for tens in 0..40 * 6 {
        let minute = tens / 6;
        let did = if (15..30).contains(&minute) {
            Did::Fail(ConnectOutcome::Refused, 0)
        } else {
            Did::Ok
        };
        for probe in 0..PROBES.len() {
            steps.push(Step::Batch {
                probe,
                late_s: 0,
                rounds: (0..10)
                    .map(|i| (i % 2, if i % 2 == 1 { did } else { Did::Ok }, false))
                    .collect(),
            });
        }
        steps.push(Step::Wait(10));
        if tens % 3 == 2 {
            steps.push(Step::Judge);
        }
        if tens == 25 * 6 {
            steps.push(Step::Restart);
        }
    }
    let found = run(&steps, "fault").unwrap();
    assert!(found >= 10, "db found in {found} judgments");
}

/// What the writer leaves for the book's thread is bounded in bytes as
/// well as in commits: past the bound the writer applies it itself.
#[test]
fn the_commits_left_for_the_book_are_bounded_in_bytes() {
    use crate::store::committed::Committed;
    let book = Book::new(params());
    let small = || Committed {
        rows: vec![0; 1 << 10],
        ..Committed::default()
    };
    book.apply(small());
    book.apply(small());
    assert_eq!(book.pending.lock().unwrap().commits.len(), 2);
    // Rows no minute points to: the book applies nothing of them.
    book.apply(Committed {
        rows: vec![0; super::PENDING_BYTES],
        ..Committed::default()
    });
    let pending = book.pending.lock().unwrap();
    assert!(pending.commits.is_empty(), "applied by the writer");
    assert_eq!(pending.bytes, 0, "and its bytes with them");
}

/// A collector serves while its book loads: commits taken before the load
/// reads the store (so both the snapshot and the queue hold them) and
/// after it are each counted once, until it is in the book says it is
/// loading, and a load made again replaces what the book held.
#[test]
fn commits_taken_while_the_book_loads_count_once() {
    let dir = std::env::temp_dir().join(format!("vantage-book-loading-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let day = Duration::from_secs(86_400);
    let store = Store::open(
        &dir,
        Retention {
            rollups: day * 3650,
            failures: day * 3650,
            receipts: day * 3650,
        },
    )
    .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let mut seq = 0;
    let mut submit = |at: i64, did: Did| {
        seq += 1;
        let rounds: Vec<(usize, Did, bool)> = (0..6).map(|i| (i % 3, did, false)).collect();
        for probe in 0..PROBES.len() {
            let b = batch(probe, seq * 10 + probe as u64, at, &rounds);
            rt.block_on(store.submit(b, from_us(at), from_us(at)))
                .unwrap();
        }
    };
    // History before the collector started.
    for k in 0..20 {
        submit(T0 + k * 10_000_000, Did::Ok);
    }
    let book = Arc::new(Book::loading(params()));
    assert!(book.loaded().is_err());
    let sink = book.clone();
    assert!(store.on_commit(Box::new(move |c| sink.apply(c))));
    // Stored while the book waits to load: held by the snapshot and queued.
    for k in 20..26 {
        submit(T0 + k * 10_000_000, Did::Fail(ConnectOutcome::Refused, 0));
    }
    let now = T0 + 26 * 10_000_000;
    book.load_from(&store, from_us(now)).unwrap();
    assert!(book.loaded().is_ok());
    // Stored after it.
    submit(now, Did::Fail(ConnectOutcome::Timeout, 2));
    let now = now + 6_000_000;
    let (memory, stored) = (book.cells(now), from_store(&store, now));
    assert!(memory.iter().any(|c| c.failures.len() >= 12), "{memory:#?}");
    assert_eq!(memory, stored);
    // A load again (as after one that failed half way) puts its state in
    // whole: nothing is added to what was there.
    book.load_from(&store, from_us(now)).unwrap();
    assert_eq!(book.cells(now), stored);
    drop((store, book));
    let _ = std::fs::remove_dir_all(&dir);
}
