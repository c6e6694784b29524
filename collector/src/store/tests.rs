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

/// `batch` from `region`, to two targets labelled `provider`, the first a
/// name (a lookup each round, one of them timing out).
fn batch_in(region: &str, provider: &str, seq: u64, at: SystemTime, n: usize) -> Batch {
    use vantage_probe::outcome::DnsOutcome;
    let mut b = batch(&format!("{region}-p"), seq, at, n, Some(0));
    b.probe.src_region = region.into();
    for (i, r) in b.results.iter_mut().enumerate() {
        r.target = format!("{provider}-{}", i % 2).into();
        r.labels = Arc::new(BTreeMap::from([(
            "provider".to_string(),
            provider.to_string(),
        )]));
        r.dns = (i % 2 == 0).then_some(vantage_probe::result::DnsObservation {
            outcome: if i == 2 {
                DnsOutcome::Timeout
            } else {
                DnsOutcome::Ok
            },
            duration_us: 300 + i as u64,
            addresses: 1,
        });
    }
    b
}

/// (minute or hour, kind, region, group) to its row.
type GroupKey = (i64, super::groups::Kind, String, String);
type GroupSums = BTreeMap<GroupKey, super::Minute>;

fn sum_into(sums: &mut GroupSums, key: GroupKey, m: &super::Minute) {
    match sums.get_mut(&key) {
        Some(have) => have.add(m),
        None => {
            sums.insert(key, m.clone());
        }
    }
}

/// The group rows over every minute of the store, and what its series'
/// minutes sum to: (by minute, by hour) each.
fn group_rows_and_sums(store: &Store) -> ((GroupSums, GroupSums), (GroupSums, GroupSums)) {
    use super::groups::{HOUR_MINUTES, Kind};
    store
        .read(|s| -> Result<_, StoreError> {
            let (mut minutes, mut hours) = (GroupSums::new(), GroupSums::new());
            for kind in [Kind::Connect, Kind::Dns] {
                s.group_minutes(kind, 0, i64::MAX, None, |r| {
                    let key = (r.minute, kind, r.src_region.into(), r.group.into());
                    assert!(minutes.insert(key, r.data).is_none());
                })?;
                // Every hour wholly: a window of whole hours reads hour rows.
                let end = i64::MAX / HOUR_MINUTES * HOUR_MINUTES;
                s.group_rows(kind, 0, end, None, |r| {
                    let hour = r.minute / HOUR_MINUTES;
                    let key = (hour, kind, r.src_region.into(), r.group.into());
                    sum_into(&mut hours, key, &r.data);
                })?;
            }
            let (mut by_minute, mut by_hour) = (GroupSums::new(), GroupSums::new());
            s.minutes(0, i64::MAX, |r| {
                let kind = match r.data {
                    super::Minute::Connect(_) => Kind::Connect,
                    super::Minute::Dns(_) => Kind::Dns,
                };
                let group = crate::groups::group_of(r.target, r.labels).0;
                let region = r.src_region.to_string();
                let hour = r.minute.div_euclid(HOUR_MINUTES);
                sum_into(
                    &mut by_hour,
                    (hour, kind, region.clone(), group.clone()),
                    &r.data,
                );
                sum_into(&mut by_minute, (r.minute, kind, region, group), &r.data);
            })?;
            Ok(((minutes, by_minute), (hours, by_hour)))
        })
        .unwrap()
}

#[tokio::test]
async fn the_region_and_group_rows_sum_their_minutes_through_late_batches_rollbacks_and_reopens() {
    let d = dir("groups");
    let store = open(&d, 7 * DAY);
    let now = SystemTime::now();
    let hour = Duration::from_secs(3600);
    let mut seq = 0;
    let mut next = || {
        seq += 1;
        seq
    };
    // Two regions, two providers, over three hours; then a late batch for
    // the first hour, whose rows were written long before.
    for at in [now - 2 * hour, now - hour, now] {
        for (region, provider) in [("east", "gcp"), ("east", "aws"), ("west", "gcp")] {
            store
                .submit(batch_in(region, provider, next(), at, 5), now, now)
                .await
                .unwrap();
        }
    }
    store
        .submit(batch_in("west", "aws", next(), now - 2 * hour, 3), now, now)
        .await
        .unwrap();
    // A batch refused half way through leaves nothing in them.
    let minute = us(now - hour).div_euclid(MINUTE_US);
    store
        .write(move |c| {
            c.execute(
                "UPDATE minutes SET data = x'ff' WHERE minute = ?1 AND series_id = (SELECT min(series_id) FROM minutes WHERE minute = ?1)",
                [minute],
            )
            .map(|_| ())
        })
        .await
        .unwrap();
    let before = group_rows_and_sums(&store);
    let mut bad = batch_in("east", "gcp", next(), now - hour, 5);
    bad.results.truncate(1);
    assert!(store.submit(bad, now, now).await.is_err());
    assert_eq!(
        group_rows_and_sums(&store).0.0,
        before.0.0,
        "the refused batch added nothing"
    );
    store
        .write(move |c| {
            c.execute("DELETE FROM minutes WHERE data = x'ff'", [])
                .map(|_| ())
        })
        .await
        .unwrap();

    // Apart from the row mended by hand, each group row is the sum of its
    // minutes.
    let ((minutes, minute_sums), (hours, hour_sums)) = group_rows_and_sums(&store);
    assert_eq!(minutes.len(), 20, "{minutes:?}");
    assert_eq!(hours.len(), 20);
    let mended = |k: &GroupKey| k.0 == minute && k.2 == "east";
    for (k, m) in &minute_sums {
        if !mended(k) {
            assert_eq!(minutes.get(k), Some(m), "minute {k:?}");
        }
    }
    assert_eq!(
        minutes.keys().filter(|k| !mended(k)).count(),
        minute_sums.keys().filter(|k| !mended(k)).count()
    );
    let late = |kind| {
        minutes
            .iter()
            .find(|(k, _)| k.1 == kind && k.2 == "west" && k.3 == "aws")
            .map(|(_, m)| m.clone())
    };
    let Some(super::Minute::Connect(connects)) = late(super::groups::Kind::Connect) else {
        panic!("the late batch's connects have a row")
    };
    assert_eq!(
        connects.attempts(),
        3,
        "the late batch is in its minute's row"
    );
    let Some(super::Minute::Dns(lookups)) = late(super::groups::Kind::Dns) else {
        panic!("and its lookups")
    };
    assert_eq!(lookups.outcomes.iter().sum::<u64>(), 2);
    assert!(hours.keys().any(|k| k.2 == "west" && k.3 == "aws"));

    // A store whose rows do not hold its last commit has them rebuilt
    // from its minutes when it opens: then every row is a sum again.
    drop(store);
    let conn = Connection::open(d.join("vantage.db")).unwrap();
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'groups_seq'", [])
        .unwrap();
    drop(conn);
    // Read-only (a report of a data directory), its reads sum the
    // minutes instead of reading rows that are behind.
    let read_only = super::ReadOnly::open(&d).unwrap();
    let summed = read_only
        .read(|s| -> Result<_, StoreError> {
            let mut rows = GroupSums::new();
            for kind in [super::groups::Kind::Connect, super::groups::Kind::Dns] {
                s.group_rows(kind, 0, i64::MAX / 60 * 60, None, |r| {
                    let key = (r.minute / 60, kind, r.src_region.into(), r.group.into());
                    sum_into(&mut rows, key, &r.data);
                })?;
            }
            Ok(rows)
        })
        .unwrap();
    assert_eq!(summed, hour_sums, "read-only, rows behind are not read");
    drop(read_only);
    let store = open(&d, 7 * DAY);
    let ((minutes, minute_sums), (hours, hour_sums_after)) = group_rows_and_sums(&store);
    assert_eq!(minutes, minute_sums);
    assert_eq!(hours, hour_sums_after);
    assert_eq!(
        hour_sums_after, hour_sums,
        "the same minutes as before the rebuild"
    );
    drop(store);

    // And one without the count at all (made before the rows were kept).
    let conn = Connection::open(d.join("vantage.db")).unwrap();
    conn.execute_batch("DELETE FROM meta WHERE key = 'groups_seq'; DELETE FROM group_hours;")
        .unwrap();
    drop(conn);
    let store = open(&d, 7 * DAY);
    assert_eq!(group_rows_and_sums(&store).1.0, hour_sums);

    // Expiry takes the minute rows past retention, and an hour's row with
    // the last of its minutes.
    let conn = Connection::open(d.join("vantage.db")).unwrap();
    let keep = Duration::from_secs(90 * 60);
    super::writer::expire(
        &conn,
        Retention {
            rollups: keep,
            failures: keep,
            receipts: keep,
        },
        now,
    )
    .unwrap();
    let ((minutes, _), (hours, _)) = group_rows_and_sums(&store);
    let oldest_minute = us(now - keep).div_euclid(MINUTE_US);
    assert!(minutes.keys().all(|k| k.0 >= oldest_minute));
    assert!(!minutes.is_empty());
    assert!(
        hours.keys().all(|k| (k.0 + 1) * 60 > oldest_minute),
        "{hours:?}"
    );
    assert!(
        hours.keys().any(|k| k.0 * 60 < oldest_minute),
        "an hour partly kept stays"
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_window_of_one_region_or_one_target_reads_what_the_whole_fleet_read_says_of_it() {
    let d = dir("named");
    let store = open(&d, 7 * DAY);
    let now = SystemTime::now();
    let mut seq = 0;
    for minutes_ago in [30u64, 12, 11, 0] {
        let at = now - Duration::from_secs(60 * minutes_ago);
        for (region, provider) in [("east", "gcp"), ("east", "aws"), ("west", "gcp")] {
            seq += 1;
            let mut b = batch_in(region, provider, seq, at, 4);
            b.results[1].dns = Some(vantage_probe::result::DnsObservation {
                outcome: vantage_probe::outcome::DnsOutcome::Ok,
                duration_us: 300,
                addresses: 1,
            });
            store.submit(b, now, now).await.unwrap();
        }
    }
    let all = store.rollups(&everything()).unwrap();
    assert!(
        all.iter().any(|r| r.address.is_none()),
        "lookups are read too"
    );
    let cases = [
        (Some("east"), None),
        (None, Some("gcp-1")),
        (Some("west"), Some("gcp-0")),
        (Some("north"), None),
        (None, Some("nothing")),
    ];
    for (region, target) in cases {
        let expected: Vec<_> = all
            .iter()
            .filter(|r| region.is_none_or(|g| r.src_region == g))
            .filter(|r| target.is_none_or(|t| r.target == t))
            .cloned()
            .collect();
        let mut w = everything();
        w.src_region = region.map(str::to_string);
        w.target = target.map(str::to_string);
        assert_eq!(
            store.rollups(&w).unwrap(),
            expected,
            "{region:?} {target:?}"
        );
        // A window and a limit as the API gives them.
        w.from = Some(now - Duration::from_secs(13 * 60));
        w.to = Some(now - Duration::from_secs(60));
        w.limit = 3;
        let from_minute = us(w.from.unwrap()).div_euclid(MINUTE_US);
        let to_minute = us(w.to.unwrap()).div_euclid(MINUTE_US);
        let expected: Vec<_> = expected
            .into_iter()
            .filter(|r| {
                let m = us(r.minute.system_time()).div_euclid(MINUTE_US);
                m >= from_minute && m <= to_minute
            })
            .take(3)
            .collect();
        assert_eq!(
            store.rollups(&w).unwrap(),
            expected,
            "{region:?} {target:?} in a window"
        );
    }
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test]
async fn a_damaged_group_row_refuses_no_batch_and_is_rebuilt_on_the_next_open() {
    let d = dir("groups-damaged");
    let store = open(&d, 7 * DAY);
    let now = SystemTime::now();
    store
        .submit(batch_in("east", "gcp", 1, now, 4), now, now)
        .await
        .unwrap();
    store
        .write(|c| {
            c.execute("UPDATE group_minutes SET data = x'ff'", [])
                .map(|_| ())
        })
        .await
        .unwrap();
    // The next batch adds to the damaged rows: it is stored all the same.
    let (ack, _) = store
        .submit(batch_in("east", "gcp", 2, now, 4), now, now)
        .await
        .unwrap();
    assert_eq!(ack.acked().stored, 4);
    // From now on the rows are behind, whatever commits come: reads sum
    // the minutes.
    store
        .submit(batch_in("west", "gcp", 3, now, 4), now, now)
        .await
        .unwrap();
    let ((minutes, minute_sums), (hours, hour_sums)) = group_rows_and_sums(&store);
    assert_eq!(minutes, minute_sums, "summed from the minutes");
    assert_eq!(hours, hour_sums);
    let east = minutes
        .iter()
        .find(|(k, _)| k.1 == super::groups::Kind::Connect && k.2 == "east")
        .map(|(_, m)| m.clone());
    let Some(super::Minute::Connect(east)) = east else {
        panic!("east's connects have a row")
    };
    assert_eq!(east.attempts(), 8, "both batches");
    drop(store);
    // Reopened, the rows are rebuilt and read again.
    let store = open(&d, 7 * DAY);
    let behind = store
        .read(|s| -> Result<_, StoreError> {
            Ok(s.conn
                .query_row("SELECT value FROM meta WHERE key = 'groups_seq'", [], |r| {
                    r.get::<_, String>(0)
                })
                .unwrap())
        })
        .unwrap();
    assert_eq!(behind, "3", "the rows hold the last commit again");
    let ((minutes, minute_sums), _) = group_rows_and_sums(&store);
    assert_eq!(minutes, minute_sums);
    drop(store);
    let _ = std::fs::remove_dir_all(&d);
}
