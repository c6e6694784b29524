//! The embedded store's tables.

/// Bumped when the layout changes; a store of another version is refused.
pub(super) const VERSION: &str = "1";

/// The receipts table: rebuilt by an upgrade from the same definition.
macro_rules! receipts_table {
    () => {
        "CREATE TABLE IF NOT EXISTS receipts (
    src_region  TEXT    NOT NULL,
    probe_id    TEXT    NOT NULL,
    stream      TEXT    NOT NULL,
    seq         INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    results     INTEGER NOT NULL,
    -- The batch's content digest (digest.rs), bit-cast to i64; NULL in a
    -- receipt from before digests, compared by its result count alone.
    digest      INTEGER,
    PRIMARY KEY (src_region, probe_id, stream, seq)
) WITHOUT ROWID;"
    };
}

/// The probes table: rebuilt by an upgrade from the same definition.
macro_rules! probes_table {
    () => {
        "CREATE TABLE IF NOT EXISTS probes (
    probe_id        TEXT    NOT NULL,
    src_region      TEXT    NOT NULL,
    zone            TEXT,
    first_seen_us   INTEGER NOT NULL,
    last_seen_us    INTEGER NOT NULL,
    clock_offset_us INTEGER NOT NULL,
    batches         INTEGER NOT NULL,
    results         INTEGER NOT NULL,
    -- 1 when its newest batch said it was stopping.
    stopped         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (src_region, probe_id)
) WITHOUT ROWID;"
    };
}

/// Applied on every open (idempotent).
pub(super) const SQL: &str = concat!(
    "
-- Durable before acknowledged: the WAL is fsynced at every commit.
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;

CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- One receipt per stored batch: how a retried batch is recognised. Its
-- probe is (src_region, probe_id), as everywhere.
",
    receipts_table!(),
    "
CREATE INDEX IF NOT EXISTS receipts_by_time ON receipts (received_us);

-- Every probe ever heard from, so silence survives a restart.
-- A probe is (src_region, probe_id): the same id in two regions is two
-- probes, and a token of one region can never touch the other's row.
",
    probes_table!(),
    "

CREATE TABLE IF NOT EXISTS targets (
    id     INTEGER PRIMARY KEY,
    name   TEXT    NOT NULL,
    host   TEXT    NOT NULL,
    port   INTEGER NOT NULL,
    labels TEXT    NOT NULL,
    UNIQUE (name, host, port, labels)
);

-- A series: what one probe measured of one target over one address
-- (address '' is the target's DNS series).
CREATE TABLE IF NOT EXISTS series (
    id         INTEGER PRIMARY KEY,
    src_region TEXT    NOT NULL,
    probe_id   TEXT    NOT NULL,
    target_id  INTEGER NOT NULL,
    address    TEXT    NOT NULL,
    UNIQUE (src_region, probe_id, target_id, address)
);
-- A target's series, for the reads of one target (seek.rs).
CREATE INDEX IF NOT EXISTS series_by_target ON series (target_id);

-- Per-minute rollups (see rollup.rs for the blob layout). Keyed by time
-- first: reads are windows of time, and expiry deletes the oldest minutes.
CREATE TABLE IF NOT EXISTS minutes (
    minute    INTEGER NOT NULL,
    series_id INTEGER NOT NULL,
    data      BLOB    NOT NULL,
    PRIMARY KEY (minute, series_id)
) WITHOUT ROWID;

-- The minutes of every region and target group, summed (kind 0: connect
-- minutes, 1: lookup minutes): what a region x group matrix reads,
-- whatever the number of targets. A group is what groups.rs makes of a
-- target's labels. Kept up by the writer in the transaction of the
-- minutes they sum, and expired with them.
CREATE TABLE IF NOT EXISTS group_minutes (
    minute     INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    src_region TEXT    NOT NULL,
    grp        TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (minute, kind, src_region, grp)
) WITHOUT ROWID;

-- The same by hour (hours since the epoch): what long windows read.
CREATE TABLE IF NOT EXISTS group_hours (
    hour       INTEGER NOT NULL,
    kind       INTEGER NOT NULL,
    src_region TEXT    NOT NULL,
    grp        TEXT    NOT NULL,
    data       BLOB    NOT NULL,
    PRIMARY KEY (hour, kind, src_region, grp)
) WITHOUT ROWID;

-- Every failure in detail: the evidence, kept longer than the rollups.
CREATE TABLE IF NOT EXISTS failures (
    series_id       INTEGER NOT NULL,
    at_us           INTEGER NOT NULL,
    outcome         TEXT    NOT NULL,
    duration_us     INTEGER NOT NULL,
    syn_retransmits INTEGER NOT NULL,
    errno           INTEGER,
    local_port      INTEGER,
    icmp_from       TEXT
);
CREATE INDEX IF NOT EXISTS failures_by_time ON failures (at_us);
CREATE INDEX IF NOT EXISTS failures_by_series ON failures (series_id, at_us);
-- The failures an ICMP answered, for a report's who-answered section: a
-- few, among the window's timeouts and refusals.
CREATE INDEX IF NOT EXISTS failures_with_icmp ON failures (at_us) WHERE icmp_from IS NOT NULL;

-- Successful connects that needed a SYN sent again: when, and how many
-- retransmits. The minutes count them; these date a lossy path's onset to
-- the second, so that the minute it began in does not dilute its rate.
-- Kept as long as the failures.
CREATE TABLE IF NOT EXISTS retransmits (
    series_id       INTEGER NOT NULL,
    at_us           INTEGER NOT NULL,
    syn_retransmits INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS retransmits_by_time ON retransmits (at_us);

-- Incidents opened from the evidence, with their current state as JSON,
-- and their timelines.
CREATE TABLE IF NOT EXISTS incidents (
    id          INTEGER PRIMARY KEY,
    opened_us   INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL,
    resolved_us INTEGER,
    state       TEXT    NOT NULL
);
CREATE TABLE IF NOT EXISTS incident_events (
    incident_id INTEGER NOT NULL,
    at_us       INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    text        TEXT    NOT NULL
);
CREATE INDEX IF NOT EXISTS incident_events_by_incident ON incident_events (incident_id, at_us);

-- The cross-region evidence given for each Alertmanager alert received.
CREATE TABLE IF NOT EXISTS alert_evidence (
    received_us INTEGER NOT NULL,
    fingerprint TEXT    NOT NULL,
    status      TEXT    NOT NULL,
    evidence    TEXT    NOT NULL
);
"
);

/// Brings a store made by an earlier build of the same version up to this
/// layout (additive changes only; an older build still reads the result).
pub(super) fn upgrade(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    add_column(conn, "probes", "stopped", "INTEGER NOT NULL DEFAULT 0")?;
    add_column(conn, "failures", "icmp_from", "TEXT")?;
    // Receipts first: their region comes from the probes of the old key,
    // one row per id.
    rekey_receipts(conn)?;
    add_column(conn, "receipts", "digest", "INTEGER")?;
    rekey_probes(conn)
}

/// Receipts from before probes were keyed by region are keyed by
/// (probe_id, stream, seq): rebuilt once with the region of their probe.
/// One receipt per batch kept (`retention.receipts`): the one upgrade that
/// copies a table of some size.
fn rekey_receipts(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let (columns, has_region): (i64, bool) = conn.query_row(
        "SELECT count(*), coalesce(sum(name = 'src_region'), 0) > 0 FROM pragma_table_info('receipts')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if columns == 0 || has_region {
        return Ok(());
    }
    conn.execute_batch(concat!(
        "BEGIN;
         DROP INDEX IF EXISTS receipts_by_time;
         ALTER TABLE receipts RENAME TO receipts_by_id;
         ",
        receipts_table!(),
        "
         INSERT INTO receipts (src_region, probe_id, stream, seq, received_us, results)
             SELECT coalesce(p.src_region, ''), r.probe_id, r.stream, r.seq,
             r.received_us, r.results
             FROM receipts_by_id r LEFT JOIN probes p ON p.probe_id = r.probe_id;
         DROP TABLE receipts_by_id;
         CREATE INDEX receipts_by_time ON receipts (received_us);
         COMMIT;",
    ))
}

/// A store from before probes were keyed by (src_region, probe_id) has
/// them keyed by id alone: the table is rebuilt once with the new key (a
/// row per probe, so it is small).
fn rekey_probes(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let (columns, keyed_by_region): (i64, bool) = conn.query_row(
        "SELECT count(*), coalesce(sum(name = 'src_region' AND pk > 0), 0) > 0
         FROM pragma_table_info('probes')",
        [],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if columns == 0 || keyed_by_region {
        return Ok(());
    }
    conn.execute_batch(concat!(
        "BEGIN;
         ALTER TABLE probes RENAME TO probes_by_id;
         ",
        probes_table!(),
        "
         INSERT INTO probes SELECT probe_id, src_region, zone, first_seen_us, last_seen_us,
             clock_offset_us, batches, results, stopped FROM probes_by_id;
         DROP TABLE probes_by_id;
         COMMIT;",
    ))
}

/// Adds a column a table was made without; nothing if it has it (or if
/// there is no such table).
fn add_column(
    conn: &rusqlite::Connection,
    table: &str,
    column: &str,
    decl: &str,
) -> rusqlite::Result<()> {
    let (columns, has): (i64, bool) = conn.query_row(
        "SELECT count(*), coalesce(sum(name = ?2), 0) > 0 FROM pragma_table_info(?1)",
        [table, column],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if columns > 0 && !has {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {decl}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_from_before_the_new_columns_gets_them_once() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE probes (
                probe_id TEXT PRIMARY KEY, src_region TEXT NOT NULL, zone TEXT,
                first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,
                clock_offset_us INTEGER NOT NULL, batches INTEGER NOT NULL,
                results INTEGER NOT NULL
             ) WITHOUT ROWID;
             INSERT INTO probes VALUES ('p1', 'us-east-2', NULL, 1, 2, 0, 1, 1);
             CREATE TABLE failures (
                series_id INTEGER NOT NULL, at_us INTEGER NOT NULL, outcome TEXT NOT NULL,
                duration_us INTEGER NOT NULL, syn_retransmits INTEGER NOT NULL,
                errno INTEGER, local_port INTEGER
             );
             INSERT INTO failures VALUES (1, 2, 'timeout', 900000, 0, 110, 40001);",
        )
        .unwrap();
        upgrade(&conn).unwrap();
        upgrade(&conn).unwrap();
        let stopped: bool = conn
            .query_row(
                "SELECT stopped FROM probes WHERE probe_id = 'p1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(!stopped);
        let icmp_from: Option<String> = conn
            .query_row("SELECT icmp_from FROM failures", [], |r| r.get(0))
            .unwrap();
        assert_eq!(icmp_from, None);
        // A fresh store has it from the start, and upgrading changes nothing.
        let fresh = rusqlite::Connection::open_in_memory().unwrap();
        fresh.execute_batch(SQL).unwrap();
        upgrade(&fresh).unwrap();
    }

    #[test]
    fn probes_and_receipts_keyed_by_id_alone_are_rekeyed_by_region_once() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE probes (
                probe_id TEXT PRIMARY KEY, src_region TEXT NOT NULL, zone TEXT,
                first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,
                clock_offset_us INTEGER NOT NULL, batches INTEGER NOT NULL,
                results INTEGER NOT NULL, stopped INTEGER NOT NULL DEFAULT 0
             ) WITHOUT ROWID;
             INSERT INTO probes VALUES ('w1', 'us-west-1', NULL, 1, 2, 0, 3, 30, 0);
             CREATE TABLE receipts (
                probe_id TEXT NOT NULL, stream TEXT NOT NULL, seq INTEGER NOT NULL,
                received_us INTEGER NOT NULL, results INTEGER NOT NULL,
                PRIMARY KEY (probe_id, stream, seq)
             ) WITHOUT ROWID;
             CREATE INDEX receipts_by_time ON receipts (received_us);
             INSERT INTO receipts VALUES ('w1', 's', 7, 2, 30);",
        )
        .unwrap();
        conn.execute_batch(SQL).unwrap();
        upgrade(&conn).unwrap();
        upgrade(&conn).unwrap();
        // The same id in another region is another probe now.
        conn.execute(
            "INSERT INTO probes VALUES ('w1', 'us-east-2', NULL, 5, 5, 0, 1, 1, 0)",
            [],
        )
        .unwrap();
        let rows: Vec<(String, i64)> = conn
            .prepare("SELECT src_region, batches FROM probes WHERE probe_id = 'w1' ORDER BY 1")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, [("us-east-2".into(), 1), ("us-west-1".into(), 3)]);
        // Its receipt kept its probe's region, so its retry is still one.
        let region: String = conn
            .query_row(
                "SELECT src_region FROM receipts WHERE probe_id = 'w1' AND stream = 's' AND seq = 7",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(region, "us-west-1");
        let digest: Option<i64> = conn
            .query_row(
                "SELECT digest FROM receipts WHERE probe_id = 'w1'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(digest, None, "a receipt from before has no digest");
    }

    #[test]
    fn receipts_from_before_digests_get_the_column_and_keep_their_rows() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        conn.execute_batch(
            "CREATE TABLE receipts (
                src_region TEXT NOT NULL, probe_id TEXT NOT NULL, stream TEXT NOT NULL,
                seq INTEGER NOT NULL, received_us INTEGER NOT NULL, results INTEGER NOT NULL,
                PRIMARY KEY (src_region, probe_id, stream, seq)
             ) WITHOUT ROWID;
             INSERT INTO receipts VALUES ('east', 'p1', 's', 3, 2, 30);",
        )
        .unwrap();
        conn.execute_batch(SQL).unwrap();
        upgrade(&conn).unwrap();
        upgrade(&conn).unwrap();
        let row: (i64, Option<i64>) = conn
            .query_row(
                "SELECT results, digest FROM receipts WHERE seq = 3",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(row, (30, None));
        conn.execute(
            "INSERT INTO receipts VALUES ('east', 'p1', 's', 4, 2, 1, -5)",
            [],
        )
        .unwrap();
    }
}
