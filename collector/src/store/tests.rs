//! The writer on a real store in a temporary directory: acknowledged means
//! stored, a retry stores nothing twice, one bad batch sinks no other, a
//! reopened store remembers, and expiry removes only what is past its
//! retention.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rusqlite::Connection;
use vantage_probe::outcome::ConnectOutcome;
use vantage_probe::result::{ConnectAttempt, Identity, RoundResult, Timestamp};
use vantage_probe::wire::{Batch, SCHEMA_VERSION};

use super::read::Window;
use super::{Outcome, Store, StoreError};
use crate::config::Retention;
use crate::time::{MINUTE_US, us};

const DAY: Duration = Duration::from_secs(86_400);

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vantage-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(dir: &std::path::Path, keep: Duration) -> Store {
    Store::open(
        dir,
        Retention {
            rollups: keep,
            failures: keep,
            receipts: keep,
        },
    )
    .unwrap()
}

/// One batch from `probe` of `n` rounds to target `api`, at `at`, the
/// `fail`-th of them a timeout.
fn batch(probe: &str, seq: u64, at: SystemTime, n: usize, fail: Option<usize>) -> Batch {
    let results = (0..n)
        .map(|i| {
            let started_at = Timestamp::from(at + Duration::from_millis(i as u64));
            let failed = fail == Some(i);
            RoundResult {
                target: "api".into(),
                host: "127.0.0.1".into(),
                port: 443,
                labels: Arc::new(BTreeMap::new()),
                started_at,
                dns: None,
                attempts: vec![ConnectAttempt {
                    address: SocketAddr::from(([127, 0, 0, 1], 443)),
                    local: None,
                    started_at,
                    outcome: if failed {
                        ConnectOutcome::Timeout
                    } else {
                        ConnectOutcome::Ok
                    },
                    duration_us: 900,
                    rtt_us: (!failed).then_some(800),
                    syn_retransmits: 0,
                    errno: None,
                    icmp_from: None,
                }],
            }
        })
        .collect();
    Batch {
        schema: SCHEMA_VERSION,
        probe: Identity {
            src_region: "east".into(),
            zone: None,
            probe_id: probe.into(),
        },
        stream: "s".into(),
        seq,
        sent_at: Timestamp::from(at),
        results,
        last: false,
    }
}

fn everything() -> Window {
    Window {
        limit: usize::MAX,
        ..Window::default()
    }
}

fn attempts(store: &Store) -> u64 {
    store
        .rollups(&everything())
        .unwrap()
        .iter()
        .map(|r| r.count)
        .sum()
}

#[tokio::test]
async fn an_acknowledged_batch_is_stored_and_its_retry_adds_nothing() {
    let d = dir("retry");
    let store = open(&d, DAY);
    let now = SystemTime::now();
    let (ack, back) = store
        .submit(batch("p1", 1, now, 5, Some(2)), now, now)
        .await
        .unwrap();
    let ack = ack.acked();
    assert_eq!((ack.seq, ack.stored, ack.duplicate), (1, 5, false));
    assert_eq!(back.results.len(), 5, "the batch comes back to the caller");
    assert_eq!(attempts(&store), 5);
    assert_eq!(store.failures(&everything()).unwrap().len(), 1);

    let (again, _) = store
        .submit(batch("p1", 1, now, 5, Some(2)), now, now)
        .await
        .unwrap();
    let again = again.acked();
    assert_eq!((again.stored, again.duplicate), (0, true));
    assert_eq!(attempts(&store), 5, "a retry stores nothing twice");
    assert_eq!(store.failures(&everything()).unwrap().len(), 1);
    assert_eq!(store.read(|s| s.receipts()).unwrap(), 1);
    let probes = store.probes().unwrap();
    assert_eq!((probes.len(), probes[0].batches), (1, 1));
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn one_bad_batch_sinks_no_other_and_leaves_nothing_of_itself() {
    let d = dir("savepoint");
    let store = open(&d, DAY);
    let now = SystemTime::now();
    // A minute long past the writer's open minutes, so that the next batch
    // of it reads its row back from the database...
    let old = now - Duration::from_secs(3600);
    store
        .submit(batch("p1", 1, old, 1, None), now, now)
        .await
        .unwrap();
    store
        .submit(batch("p1", 2, now, 1, None), now, now)
        .await
        .unwrap();
    // ... where it no longer decodes.
    let minute = us(old).div_euclid(MINUTE_US);
    store
        .write(move |c| {
            c.execute(
                "UPDATE minutes SET data = x'ff' WHERE minute = ?1",
                [minute],
            )
            .map(|_| ())
        })
        .await
        .unwrap();
    let (bad, good) = tokio::join!(
        store.submit(batch("p1", 3, old, 2, None), now, now),
        store.submit(batch("p2", 1, now, 4, None), now, now),
    );
    assert!(
        matches!(bad, Err(StoreError::Write { .. })),
        "the batch over a bad row is refused: {bad:?}"
    );
    assert_eq!(
        good.unwrap().0.acked().stored,
        4,
        "the other batch is stored"
    );
    assert_eq!(
        store.read(|s| s.receipts()).unwrap(),
        3,
        "no receipt for the refused batch: its retry is stored once the row is mended"
    );
    let p1_batches = store
        .probes()
        .unwrap()
        .into_iter()
        .find(|p| p.probe_id == "p1")
        .unwrap()
        .batches;
    assert_eq!(p1_batches, 2, "its probe row is rolled back too");
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_reopened_store_remembers_every_acknowledged_batch() {
    let d = dir("reopen");
    let now = SystemTime::now();
    let store = open(&d, DAY);
    for seq in 1..=3 {
        store
            .submit(batch("p1", seq, now, 10, None), now, now)
            .await
            .unwrap();
    }
    drop(store);
    let store = open(&d, DAY);
    assert_eq!(attempts(&store), 30);
    let (ack, _) = store
        .submit(batch("p1", 3, now, 10, None), now, now)
        .await
        .unwrap();
    let ack = ack.acked();
    assert!(ack.duplicate, "the receipt survived the restart");
    assert_eq!(attempts(&store), 30);
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn expiry_removes_only_what_is_past_its_retention() {
    let d = dir("expire");
    let now = SystemTime::now();
    let store = open(&d, DAY);
    let stale = now - 2 * DAY;
    store
        .submit(batch("p1", 1, stale, 3, Some(0)), stale, stale)
        .await
        .unwrap();
    store
        .submit(batch("p1", 2, now, 3, Some(0)), now, now)
        .await
        .unwrap();
    let conn = Connection::open(d.join("vantage.db")).unwrap();
    let keep = Retention {
        rollups: DAY,
        failures: DAY,
        receipts: DAY,
    };
    super::writer::expire(&conn, keep, now).unwrap();
    assert_eq!(
        attempts(&store),
        3,
        "the stale minute is gone, today's stays"
    );
    assert_eq!(store.failures(&everything()).unwrap().len(), 1);
    assert_eq!(store.read(|s| s.receipts()).unwrap(), 1);
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn every_seq_has_its_own_receipt_past_i64_max_too() {
    let d = dir("seq");
    let store = open(&d, DAY);
    let now = SystemTime::now();
    for seq in [i64::MAX as u64, 1 << 63, (1 << 63) + 1, u64::MAX] {
        let (ack, _) = store
            .submit(batch("p1", seq, now, 1, None), now, now)
            .await
            .unwrap();
        let ack = ack.acked();
        assert_eq!((ack.seq, ack.stored, ack.duplicate), (seq, 1, false));
    }
    let (again, _) = store
        .submit(batch("p1", u64::MAX, now, 1, None), now, now)
        .await
        .unwrap();
    let again = again.acked();
    assert!(again.duplicate, "and a retry of one is still a retry");
    assert_eq!(attempts(&store), 4);
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_seen_key_with_other_content_is_refused_and_stores_nothing() {
    let d = dir("reused");
    let store = open(&d, DAY);
    let now = SystemTime::now();
    let first = store
        .submit(batch("p1", 1, now, 5, Some(2)), now, now)
        .await
        .unwrap()
        .0
        .acked();
    assert_eq!((first.stored, first.duplicate), (5, false));
    let (rollups, failures) = (
        store.rollups(&everything()).unwrap(),
        store.failures(&everything()).unwrap(),
    );
    let probes = store.probes().unwrap();

    // A probe whose seq went back: the same key, new rounds.
    let later = now + Duration::from_secs(1);
    for other in [
        batch("p1", 1, later, 5, Some(2)),
        batch("p1", 1, now, 5, Some(3)),
        batch("p1", 1, now, 4, Some(2)),
        Batch {
            last: true,
            ..batch("p1", 1, now, 5, Some(2))
        },
    ] {
        let (outcome, _) = store.submit(other, later, later).await.unwrap();
        assert_eq!(outcome, Outcome::SeqReused);
    }
    assert_eq!(
        store.rollups(&everything()).unwrap(),
        rollups,
        "the first batch's rollups are as they were"
    );
    assert_eq!(store.failures(&everything()).unwrap(), failures);
    assert_eq!(store.read(|s| s.receipts()).unwrap(), 1);
    assert_eq!(store.probes().unwrap(), probes, "its probe row too");

    // The same content sent again, at another time, is still a retry.
    let again = batch("p1", 1, now, 5, Some(2));
    let again = Batch {
        sent_at: later.into(),
        ..again
    };
    let (outcome, _) = store.submit(again, later, later).await.unwrap();
    assert!(outcome.acked().duplicate, "a retry");
    assert_eq!(store.rollups(&everything()).unwrap(), rollups);
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_receipt_from_before_digests_is_compared_by_its_result_count() {
    let d = dir("nodigest");
    let store = open(&d, DAY);
    let now = SystemTime::now();
    store
        .submit(batch("p1", 1, now, 5, None), now, now)
        .await
        .unwrap()
        .0
        .acked();
    store
        .write(|c| {
            c.execute("UPDATE receipts SET digest = NULL", [])
                .map(|_| ())
        })
        .await
        .unwrap();
    let later = now + Duration::from_secs(1);
    // Other rounds but as many: all an old receipt can tell is a retry.
    let (same_count, _) = store
        .submit(batch("p1", 1, later, 5, None), later, later)
        .await
        .unwrap();
    assert!(same_count.acked().duplicate, "a retry, by its count");
    let (other_count, _) = store
        .submit(batch("p1", 1, later, 6, None), later, later)
        .await
        .unwrap();
    assert_eq!(other_count, Outcome::SeqReused);
    assert_eq!(attempts(&store), 5, "nothing of either was stored");
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_connect_that_needed_a_syn_again_is_kept_to_the_second_and_expires() {
    let d = dir("retransmits");
    let now = SystemTime::now();
    let store = open(&d, DAY);
    let stale = now - 2 * DAY;
    for (seq, at) in [(1, stale), (2, now)] {
        let mut b = batch("p1", seq, at, 3, None);
        b.results[1].attempts[0].syn_retransmits = 2;
        b.results[1].attempts[0].duration_us = 2_001_000;
        store.submit(b, at, at).await.unwrap();
    }
    let seen = |store: &Store| {
        let mut out = Vec::new();
        store
            .read(|s| s.retransmits(0, i64::MAX, |_, at, n| out.push((at, n))))
            .unwrap();
        out
    };
    let at = |t: SystemTime| us(t + Duration::from_millis(1));
    assert_eq!(seen(&store), [(at(stale), 2), (at(now), 2)]);
    let conn = Connection::open(d.join("vantage.db")).unwrap();
    let keep = Retention {
        rollups: DAY,
        failures: DAY,
        receipts: DAY,
    };
    super::writer::expire(&conn, keep, now).unwrap();
    assert_eq!(seen(&store), [(at(now), 2)], "kept as long as the failures");
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_retracted_timeline_line_is_gone_and_its_replacement_kept_across_a_reopen() {
    use super::{Event, IncidentRow};
    let d = dir("retract");
    let store = open(&d, DAY);
    let line = |at_us: i64, kind: &str, text: &str| Event {
        incident: 1,
        at_us,
        kind: kind.into(),
        text: text.into(),
    };
    let row = IncidentRow {
        id: 1,
        opened_us: 10,
        updated_us: 10,
        resolved_us: None,
        state: "{}".into(),
    };
    let first = line(5, "onset", "east: failures began");
    let opened = line(10, "opened", "Opened");
    store
        .write_incidents(
            vec![row.clone()],
            vec![first.clone(), opened.clone()],
            vec![],
        )
        .await
        .unwrap();
    // A line that was never written retracts nothing.
    let moved = line(7, "onset", "east: failures began (first dated 00:00 UTC)");
    store
        .write_incidents(
            vec![row],
            vec![moved.clone()],
            vec![first, line(5, "onset", "west: failures began")],
        )
        .await
        .unwrap();
    drop(store);
    let store = open(&d, DAY);
    let (_, events) = store.read(|s| s.incident(1)).unwrap().unwrap();
    assert_eq!(events, [moved, opened]);
}
