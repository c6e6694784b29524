//! The matrix's cells kept in memory as batches are stored, so that an
//! evaluation reads memory instead of re-reading 75 minutes of rollups.
//!
//! The store's writer hands every commit to [`Book::apply`] (on its
//! thread, after the transaction is durable): the minute rows as they now
//! stand, and the failures and retransmits added. The writer only leaves
//! them; a thread of the book's ([`Book::follow`]) applies them, and an
//! evaluation applies whatever is left before it reads. Per series the book keeps
//! what the evidence reads of each minute of the window ([`Counts`],
//! varint-encoded, one buffer per series), and the recent failures and
//! retransmits. [`Book::cells`] gives the same cells, in the same order,
//! as [`super::cells::read`] gives from the store at the same moment: its
//! tests compare the two over random histories. On start the book is
//! loaded from the store ([`Book::load`]).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use std::time::{Duration, SystemTime};

use super::assessment::{self, Assessment, Params};
use super::cells::{self, Cell, Counts, RTT_SLOTS, Syns};
use super::localize::Held;
use crate::groups::group_of;
use crate::store::committed::Committed;
use crate::store::rollup::{Malformed, get, put};
use crate::store::{Minute, Snapshot, Store, StoreError};
use crate::time::{MINUTE_US, us};

/// The cells, behind one lock: the writer's thread updates them, an
/// evaluation reads them.
#[derive(Debug)]
pub struct Book {
    params: Params,
    inner: Mutex<Inner>,
    /// Commits the writer left, oldest first, with the bytes they hold,
    /// and the signal that one was.
    pending: Mutex<Pending>,
    ready: Condvar,
    /// Signalled (with `pending`) when the book is loaded, for a writer
    /// that waits to apply.
    filled: Condvar,
    /// Called when applied commits added failures to a series: the
    /// evaluation loop's wake-up (see [`Book::on_failures`]).
    hook: std::sync::OnceLock<Hook>,
    /// Whether what the store held at start is in (see [`Book::loading`]).
    loaded: std::sync::atomic::AtomicBool,
    /// When the book was made.
    made: std::time::Instant,
}

/// What [`Book::on_failures`] calls.
struct Hook(Box<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Hook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hook")
    }
}

/// Commits left at most before the writer applies them itself ...
const PENDING: usize = 256;
/// ... and bytes they may hold: a writer faster than the book's thread
/// (both share the cores) would otherwise queue 256 large group commits.
const PENDING_BYTES: usize = 16 << 20;

#[derive(Debug, Default)]
struct Pending {
    commits: Vec<Committed>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Inner {
    /// Every series met, by id: the writer names a series once, the first
    /// time it meets it, so its names are kept while the writer knows it.
    meta: HashMap<i64, Arc<Meta>, Ids>,
    /// The series with minutes in the window.
    cells: HashMap<i64, Live, Ids>,
    /// Their ids in the matrix's order ([`cells::sort`]'s), rebuilt when a
    /// series comes or goes (`None` then), so that an evaluation sorts
    /// nothing: the order only changes when the set of series does.
    order: Option<Vec<i64>>,
    /// Failure outcomes, by code.
    outcomes: Outcomes,
    /// Minutes before this one are gone (the start of the baseline of the
    /// latest evaluation).
    floor_minute: i64,
    /// Failures and retransmits before this are gone (the start of its
    /// recent window's first minute).
    floor_us: i64,
    /// Series that commits added failures to since the last
    /// [`Book::touched`] or [`Book::cells`]: bounded by the series.
    touched: std::collections::HashSet<i64, Ids>,
    /// The last commit the store's snapshot held when the book was
    /// loaded: commits up to it are in already.
    loaded_seq: u64,
}

/// Hashes the store's series ids: dense integers the store hands out, which
/// no client chooses, so one multiply spreads them (SipHash cost more than
/// the rest of a commit's update).
#[derive(Debug, Default, Clone, Copy)]
struct Ids;

impl std::hash::BuildHasher for Ids {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

#[derive(Debug, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_i64(&mut self, v: i64) {
        self.0 = (v as u64 ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The names of a series.
#[derive(Debug)]
struct Meta {
    src_region: String,
    target: String,
    group: String,
    control: bool,
    address: Option<String>,
}

impl Meta {
    fn new(src_region: &str, target: &str, labels: &str, address: &str) -> Meta {
        let (group, control) = group_of(target, labels);
        Meta {
            src_region: src_region.to_string(),
            target: target.to_string(),
            group,
            control,
            address: (!address.is_empty()).then(|| address.to_string()),
        }
    }
}

/// Failure outcome labels as small codes, with whether each is blamed on
/// the probe's own host.
#[derive(Debug, Default)]
struct Outcomes {
    labels: Vec<(String, bool)>,
    codes: HashMap<String, u16>,
}

impl Outcomes {
    fn code(&mut self, label: &str) -> u16 {
        if let Some(&c) = self.codes.get(label) {
            return c;
        }
        let c = self.labels.len() as u16;
        self.labels
            .push((label.to_string(), cells::is_local(label)));
        self.codes.insert(label.to_string(), c);
        c
    }
}

/// One series in the window.
#[derive(Debug)]
struct Live {
    meta: Arc<Meta>,
    /// Its minutes, oldest first, each encoded as [`encode`] writes it.
    records: Vec<u8>,
    /// The first record's minute.
    first: i64,
    /// The last record's minute, where it starts, and the minute of the
    /// record before it (or `first`).
    last: i64,
    last_at: usize,
    before_last: i64,
    /// Failures in the recent window, oldest first (equal times in the
    /// order stored): when, and the outcome's code.
    failures: Vec<(i64, u16)>,
    /// Successful connects that sent a SYN again, oldest first.
    retransmits: Vec<i64>,
    /// What its minutes before the recent window add up to, kept until
    /// the window moves or one of those minutes changes.
    base: Option<Base>,
}

/// The sums of a series' minutes from `first_minute` to before `cut` (of
/// the baseline, and before the latency window: what every evaluation in
/// the same minute reads the same), and where its later minutes start.
#[derive(Debug, Clone, Default)]
struct Base {
    first_minute: i64,
    cut: i64,
    /// Whether it has any such minute.
    any: bool,
    attempts: u64,
    failures: u64,
    syns: Syns,
    /// Summed RTT histograms, if any of them was a connect minute.
    rtt: Option<[u64; RTT_SLOTS]>,
    /// The byte offset of the first later minute, and the minute of the
    /// record before it.
    offset: usize,
    minute_before: i64,
}

impl Base {
    /// An empty cell of `meta` holding these sums.
    fn cell(&self, meta: &Meta) -> Cell {
        let mut c = Cell::named(
            meta.src_region.clone(),
            meta.target.clone(),
            meta.group.clone(),
            meta.control,
            meta.address.clone(),
        );
        c.baseline_attempts = self.attempts;
        c.baseline_failures = self.failures;
        c.syn_baseline = self.syns;
        if let Some(rtt) = &self.rtt {
            c.rtt_baseline = rtt.to_vec();
        }
        c
    }
}

impl Book {
    /// An empty book judged as `params` say.
    pub(crate) fn new(params: Params) -> Book {
        Book {
            params,
            inner: Mutex::default(),
            pending: Mutex::default(),
            ready: Condvar::new(),
            filled: Condvar::new(),
            hook: std::sync::OnceLock::new(),
            loaded: std::sync::atomic::AtomicBool::new(true),
            made: std::time::Instant::now(),
        }
    }

    /// An empty book that takes commits at once and is filled from the
    /// store afterwards ([`Book::load_from`]): a collector serves, and
    /// stores what probes send, while the book loads. Until then its
    /// commits wait (and the writer, once [`PENDING`] of them wait, waits
    /// for the load), and [`Book::loaded`] says no.
    pub(crate) fn loading(params: Params) -> Book {
        let book = Book::new(params);
        book.loaded
            .store(false, std::sync::atomic::Ordering::Release);
        book
    }

    /// Whether the book holds what the store held at start; if not, for
    /// how long it has been loading.
    pub(crate) fn loaded(&self) -> Result<(), Duration> {
        if self.loaded.load(std::sync::atomic::Ordering::Acquire) {
            Ok(())
        } else {
            Err(self.made.elapsed())
        }
    }

    /// Fills a [`Book::loading`] book with what `store` holds of the
    /// window that ends at `now`. The commits taken meanwhile are applied
    /// after it, but those the store's snapshot already held (their
    /// numbers say which: [`Committed::seq`]), so none is lost and none
    /// counts twice.
    pub(crate) fn load_from(&self, store: &Store, now: SystemTime) -> Result<(), StoreError> {
        // Filled apart and put in whole: a load that fails half way leaves
        // nothing for the next try to add to.
        let filled = store.read(|snap| self.fill(snap, us(now)))?;
        let mut inner = self.inner.lock().expect("book lock");
        *inner = filled;
        {
            let _pending = self.pending.lock().expect("book pending lock");
            self.loaded
                .store(true, std::sync::atomic::Ordering::Release);
            self.filled.notify_all();
        }
        self.drain(&mut inner);
        drop(inner);
        self.ready.notify_one();
        Ok(())
    }

    /// Calls `hook` (at once, without blocking: it runs under the book's
    /// lock) whenever applied commits added failures, so that
    /// the cells they touched can be judged as they are stored (see
    /// [`Book::touched`]). One hook per book; a second is ignored.
    pub(crate) fn on_failures(&self, hook: impl Fn() + Send + Sync + 'static) {
        let _ = self.hook.set(Hook(Box::new(hook)));
    }

    /// A book holding what the store has of the window that ends at
    /// `now_us` (and anything stored after it).
    pub(crate) fn load(
        snap: &Snapshot<'_>,
        params: Params,
        now_us: i64,
    ) -> Result<Book, StoreError> {
        let mut book = Book::new(params);
        *book.inner.get_mut().expect("book lock") = book.fill(snap, now_us)?;
        Ok(book)
    }

    /// What `snap` holds of the window that ends at `now_us` (and
    /// anything stored after it).
    fn fill(&self, snap: &Snapshot<'_>, now_us: i64) -> Result<Inner, StoreError> {
        let (first_minute, recent_us) = self.floors(now_us);
        let mut inner = Inner {
            loaded_seq: snap.commits()?,
            floor_minute: first_minute,
            floor_us: recent_us,
            ..Inner::default()
        };
        let Inner {
            meta,
            cells,
            outcomes,
            touched,
            ..
        } = &mut inner;
        // The store gives minutes in time order: each is appended.
        snap.minutes(first_minute, i64::MAX, |row| {
            let m = meta.entry(row.series).or_insert_with(|| {
                Arc::new(Meta::new(
                    row.src_region,
                    row.target,
                    row.labels,
                    row.address,
                ))
            });
            cells
                .entry(row.series)
                .or_insert_with(|| Live::new(m.clone()))
                .set(row.minute, &Counts::of(&row.data));
        })?;
        snap.failure_outcomes(recent_us, i64::MAX, |series, at, outcome| {
            if let Some(live) = cells.get_mut(&series) {
                live.failures.push((at, outcomes.code(outcome)));
                // Not judged yet: its time has not come (a probe whose
                // clock is ahead).
                if at > now_us {
                    touched.insert(series);
                }
            }
        })?;
        snap.retransmits(recent_us, i64::MAX, |series, at, _| {
            if let Some(live) = cells.get_mut(&series) {
                live.retransmits.push(at);
            }
        })?;
        Ok(inner)
    }

    /// The first minute of the window that ends at `now_us`, and the
    /// start of its recent window's first minute.
    fn floors(&self, now_us: i64) -> (i64, i64) {
        let recent_from = now_us - self.params.recent.as_micros() as i64;
        let baseline_from = recent_from - self.params.baseline.as_micros() as i64;
        (
            baseline_from.div_euclid(MINUTE_US),
            recent_from.div_euclid(MINUTE_US) * MINUTE_US,
        )
    }

    /// A book loaded from `store` at `now`: what a collector starting
    /// now holds.
    pub fn from_store(store: &Store, params: Params, now: SystemTime) -> Result<Book, StoreError> {
        store.read(|snap| Book::load(snap, params, us(now)))
    }

    /// Judges the cells at `now`, with no probe's liveness, as the
    /// evaluation loop does (for benchmarks and tools).
    pub fn assess(&self, now: SystemTime, held: &Held) -> Assessment {
        let now_us = us(now);
        assessment::judge(self.cells(now_us), &[], now_us, self.params, held)
    }

    /// Series in the window, and the bytes their minutes take.
    pub fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock().expect("book lock");
        let bytes = inner.cells.values().map(|l| l.records.len()).sum();
        (inner.cells.len(), bytes)
    }

    /// Takes one commit's changes (see [`Committed`]), on the writer's
    /// thread: they are left for [`Book::follow`]'s thread (or the next
    /// evaluation) to apply, so the writer never waits for an evaluation
    /// and spends no time decoding. When [`PENDING`] commits (or
    /// [`PENDING_BYTES`] of them) wait already, the writer applies them
    /// itself: what waits stays bounded.
    pub(crate) fn apply(&self, c: Committed) {
        let mut pending = self.pending.lock().expect("book pending lock");
        pending.bytes += c.bytes();
        pending.commits.push(c);
        if pending.commits.len() < PENDING && pending.bytes < PENDING_BYTES {
            drop(pending);
            self.ready.notify_one();
            return;
        }
        // Nothing is applied before the store's part is in: the load
        // assumes an empty book.
        while self.loaded().is_err() {
            pending = self.filled.wait(pending).expect("book pending lock");
        }
        drop(pending);
        let mut inner = self.inner.lock().expect("book lock");
        self.drain(&mut inner);
    }

    /// Applies every commit left, in commit order; none before the book
    /// is loaded (they wait for the load, which puts its own state in
    /// whole).
    fn drain(&self, inner: &mut Inner) {
        if self.loaded().is_err() {
            return;
        }
        let left = std::mem::take(&mut *self.pending.lock().expect("book pending lock")).commits;
        let mut failures = 0;
        for c in &left {
            failures += inner.apply(c);
        }
        if failures > 0
            && let Some(hook) = self.hook.get()
        {
            (hook.0)();
        }
    }

    /// Applies the commits left by the writer on a thread of its own,
    /// until the book is dropped.
    pub(crate) fn follow(book: &Arc<Book>) -> std::io::Result<()> {
        let weak = Arc::downgrade(book);
        std::thread::Builder::new()
            .name("vantage-book".into())
            .spawn(move || {
                while let Some(book) = weak.upgrade() {
                    let pending = book.pending.lock().expect("book pending lock");
                    let (pending, _) = book
                        .ready
                        .wait_timeout_while(pending, Duration::from_secs(1), |p| {
                            p.commits.is_empty() || book.loaded().is_err()
                        })
                        .expect("book pending lock");
                    drop(pending);
                    let mut inner = book.inner.lock().expect("book lock");
                    book.drain(&mut inner);
                }
            })
            .map(drop)
    }

    /// Every cell with data in the window that ends at `now_us`, as
    /// [`cells::read`] reads them from the store. What is older than that
    /// window is dropped: the book's windows only move forward.
    pub(crate) fn cells(&self, now_us: i64) -> Vec<Cell> {
        let (mut inner, window) = self.at(now_us);
        inner.forget_touched(now_us);
        let Inner {
            cells,
            order,
            outcomes,
            ..
        } = &mut *inner;
        let order = order.get_or_insert_with(|| {
            let mut ids: Vec<i64> = cells.keys().copied().collect();
            ids.sort_by(|a, b| {
                let (ma, mb) = (&cells[a].meta, &cells[b].meta);
                (&ma.src_region, &ma.target, &ma.address, a).cmp(&(
                    &mb.src_region,
                    &mb.target,
                    &mb.address,
                    b,
                ))
            });
            ids
        });
        let mut out: Vec<Cell> = Vec::with_capacity(cells.len());
        for series in order.iter() {
            let live = cells
                .get_mut(series)
                .expect("the order holds the book's series");
            out.extend(live.cell(&window, outcomes));
        }
        out
    }

    /// The cells of the series that commits added failures to since the
    /// last call (or the last [`Book::cells`]), in the window that ends at
    /// `now_us`, as [`Book::cells`] would give them: what a stored batch
    /// changed, judged before the next evaluation.
    pub(crate) fn touched(&self, now_us: i64) -> Vec<Cell> {
        let (mut inner, window) = self.at(now_us);
        let mut ids: Vec<i64> = inner.touched.iter().copied().collect();
        ids.sort_unstable();
        inner.forget_touched(now_us);
        let Inner {
            cells, outcomes, ..
        } = &mut *inner;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(live) = cells.get_mut(&id) {
                out.extend(live.cell(&window, outcomes));
            }
        }
        out
    }

    /// The book's state at `now_us`, the commits left applied and what is
    /// older than its window dropped, and that window.
    fn at(&self, now_us: i64) -> (std::sync::MutexGuard<'_, Inner>, Window) {
        let (first_minute, recent_us) = self.floors(now_us);
        let mut inner = self.inner.lock().expect("book lock");
        self.drain(&mut inner);
        inner.trim(first_minute, recent_us);
        let window = Window::new(first_minute, recent_us.div_euclid(MINUTE_US), now_us);
        (inner, window)
    }
}

/// The window a cell is read in: the first minute of its baseline, the
/// first of its recent part, and its end.
struct Window {
    first_minute: i64,
    recent_minute: i64,
    now_minute: i64,
    now_us: i64,
}

impl Window {
    fn new(first_minute: i64, recent_minute: i64, now_us: i64) -> Window {
        Window {
            first_minute,
            recent_minute,
            now_minute: now_us.div_euclid(MINUTE_US),
            now_us,
        }
    }
}

impl Inner {
    /// Forgets the series touched since the last look, as judged at
    /// `now_us`, but those with failures after it (a probe whose clock is
    /// ahead), whose cells will change when their time comes; and gives
    /// back the room a fault that touched many took.
    fn forget_touched(&mut self, now_us: i64) {
        let cells = &self.cells;
        self.touched.retain(|id| {
            cells
                .get(id)
                .and_then(|l| l.failures.last())
                .is_some_and(|(at, _)| *at > now_us)
        });
        self.touched.shrink_to(1024);
    }

    /// Applies one commit's changes; how many failures it added. A
    /// commit the load's snapshot held changes nothing.
    fn apply(&mut self, c: &Committed) -> usize {
        if c.seq != 0 && c.seq <= self.loaded_seq {
            return 0;
        }
        let Inner {
            meta,
            cells,
            order,
            outcomes,
            floor_minute,
            floor_us,
            touched,
            ..
        } = self;
        for s in &c.series {
            meta.entry(s.series).or_insert_with(|| {
                Arc::new(Meta::new(&s.src_region, &s.target, &s.labels, &s.address))
            });
        }
        for &(series, minute, start, end) in &c.minutes {
            if minute < *floor_minute {
                continue;
            }
            let Ok(data) = Minute::decode(&c.rows[start..end]) else {
                tracing::warn!(
                    series,
                    minute,
                    "a committed minute the evidence cannot read"
                );
                continue;
            };
            let live = match cells.entry(series) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let Some(m) = meta.get(&series) else {
                        tracing::warn!(series, "a committed minute of a series never named");
                        continue;
                    };
                    *order = None;
                    e.insert(Live::new(m.clone()))
                }
            };
            live.set(minute, &Counts::of(&data));
        }
        let mut added = 0;
        for (series, at, outcome) in &c.failures {
            if let Some(live) = cells.get_mut(series).filter(|_| *at >= *floor_us) {
                let code = outcomes.code(outcome);
                let i = live.failures.partition_point(|(a, _)| a <= at);
                live.failures.insert(i, (*at, code));
                touched.insert(*series);
                added += 1;
            }
        }
        for &(series, at) in &c.retransmits {
            if let Some(live) = cells.get_mut(&series).filter(|_| at >= *floor_us) {
                let i = live.retransmits.partition_point(|a| *a <= at);
                live.retransmits.insert(i, at);
            }
        }
        added
    }

    /// Drops minutes before `first_minute`, and failures and retransmits
    /// before `recent_us`; floors only rise.
    fn trim(&mut self, first_minute: i64, recent_us: i64) {
        if first_minute > self.floor_minute {
            self.floor_minute = first_minute;
            let before = self.cells.len();
            self.cells.retain(|_, live| {
                live.trim(first_minute);
                !live.records.is_empty()
            });
            if self.cells.len() != before {
                self.order = None;
            }
        }
        if recent_us > self.floor_us {
            self.floor_us = recent_us;
            for live in self.cells.values_mut() {
                let f = live.failures.partition_point(|(a, _)| *a < recent_us);
                live.failures.drain(..f);
                let r = live.retransmits.partition_point(|a| *a < recent_us);
                live.retransmits.drain(..r);
            }
        }
    }
}

impl Live {
    /// Its cell in `window`, if it has data there.
    fn cell(&mut self, window: &Window, outcomes: &Outcomes) -> Option<Cell> {
        let (now_minute, now_us) = (window.now_minute, window.now_us);
        let base = self.base(window.first_minute, window.recent_minute, now_minute);
        let mut cell: Option<Cell> = base.any.then(|| base.cell(&self.meta));
        for (minute, counts) in self.records_from(base.offset, base.minute_before) {
            if minute > now_minute {
                break;
            }
            cell.get_or_insert_with(|| Base::default().cell(&self.meta))
                .add(minute, &counts, window.recent_minute, now_minute);
        }
        let mut cell = cell?;
        for &(at, code) in self.failures.iter().filter(|(at, _)| *at <= now_us) {
            let (label, local) = &outcomes.labels[code as usize];
            if *local {
                cell.local_since_us = Some(cell.local_since_us.map_or(at, |s| s.min(at)));
            } else {
                cell.failures.push((at, label.clone()));
            }
        }
        cell.retransmitted_at = self
            .retransmits
            .iter()
            .copied()
            .filter(|at| *at <= now_us)
            .collect();
        (cell.attempts > 0 || !cell.failures.is_empty()).then(|| cell.finish())
    }

    fn new(meta: Arc<Meta>) -> Live {
        Live {
            meta,
            records: Vec::new(),
            first: 0,
            last: 0,
            last_at: 0,
            before_last: 0,
            failures: Vec::new(),
            retransmits: Vec::new(),
            base: None,
        }
    }

    /// Its minutes, oldest first.
    fn records(&self) -> Records<'_> {
        self.records_from(0, self.first)
    }

    /// Its minutes from the record at byte `offset`, the one before which
    /// was of `minute_before`.
    fn records_from(&self, offset: usize, minute_before: i64) -> Records<'_> {
        Records {
            bytes: &self.records[offset..],
            minute: minute_before,
        }
    }

    /// Its baseline sums for the window whose baseline starts at
    /// `first_minute`, whose recent part at `recent_minute` and which
    /// ends in `now_minute`: the minutes before both the recent part and
    /// the latency window.
    fn base(&mut self, first_minute: i64, recent_minute: i64, now_minute: i64) -> Base {
        let cut = recent_minute.min(now_minute - cells::LATENCY_WINDOW_MINUTES + 1);
        if let Some(b) = self
            .base
            .as_ref()
            .filter(|b| (b.first_minute, b.cut) == (first_minute, cut))
        {
            return b.clone();
        }
        let mut b = Base {
            first_minute,
            cut,
            minute_before: self.first,
            ..Base::default()
        };
        let mut rest: &[u8] = &self.records;
        let mut minute = self.first;
        while !rest.is_empty() {
            let mut next = rest;
            let Ok((delta, c)) = decode(&mut next) else {
                break;
            };
            if minute + delta >= cut {
                break;
            }
            minute += delta;
            rest = next;
            b.minute_before = minute;
            if minute < first_minute {
                continue;
            }
            b.any = true;
            b.attempts += c.attempts;
            b.failures += c.remote;
            if let Some((syns, rtt)) = &c.connect {
                b.syns.add(*syns);
                let sum = b.rtt.get_or_insert([0; RTT_SLOTS]);
                for (a, n) in sum.iter_mut().zip(rtt) {
                    *a += n;
                }
            }
        }
        b.offset = self.records.len() - rest.len();
        self.base = Some(b.clone());
        b
    }

    /// The minute `minute` is now `counts` (the row as it now stands).
    fn set(&mut self, minute: i64, counts: &Counts) {
        if self.base.as_ref().is_some_and(|b| minute < b.cut) {
            self.base = None;
        }
        if self.records.is_empty() {
            self.first = minute;
            self.before_last = minute;
            self.last = minute;
            self.last_at = 0;
            encode(&mut self.records, 0, counts);
        } else if minute == self.last {
            self.records.truncate(self.last_at);
            encode(&mut self.records, minute - self.before_last, counts);
        } else if minute > self.last {
            self.last_at = self.records.len();
            encode(&mut self.records, minute - self.last, counts);
            self.before_last = self.last;
            self.last = minute;
        } else {
            // A late row for an older minute: rare (a probe's backlog).
            let mut rows: Vec<(i64, Counts)> = self.records().collect();
            match rows.binary_search_by_key(&minute, |(m, _)| *m) {
                Ok(i) => rows[i].1 = counts.clone(),
                Err(i) => rows.insert(i, (minute, counts.clone())),
            }
            self.encode_all(&rows);
        }
    }

    /// Keeps the minutes from `first_minute` on.
    fn trim(&mut self, first_minute: i64) {
        if self.records.is_empty() || self.first >= first_minute {
            return;
        }
        let rows: Vec<(i64, Counts)> = self.records().filter(|(m, _)| *m >= first_minute).collect();
        self.encode_all(&rows);
    }

    /// Its minutes are `rows` (oldest first).
    fn encode_all(&mut self, rows: &[(i64, Counts)]) {
        self.base = None;
        self.records.clear();
        let Some(&(first, _)) = rows.first() else {
            return;
        };
        self.first = first;
        self.before_last = first;
        self.last = first;
        for (minute, counts) in rows {
            self.last_at = self.records.len();
            encode(&mut self.records, minute - self.last, counts);
            self.before_last = self.last;
            self.last = *minute;
        }
        self.records.shrink_to_fit();
    }
}

/// Room a series' buffer grows by: a few records at a time, not doubled
/// (150,000 buffers of half a kilobyte each would keep as much again
/// unused).
const GROW: usize = 64;

/// One minute's counts: the minutes since the record before it, then
/// attempts, remote and local failures; for connects the SYNs (sent,
/// lost, slow) and the RTT histogram as its non-zero slots (how many, then
/// slot and count each). Lookups are marked by a kind byte.
fn encode(out: &mut Vec<u8>, delta: i64, c: &Counts) {
    if out.capacity() - out.len() < GROW / 2 {
        out.reserve_exact(GROW);
    }
    put(out, delta as u64);
    match &c.connect {
        None => {
            out.push(0);
            put(out, c.attempts);
            put(out, c.remote);
        }
        Some((syns, rtt)) => {
            out.push(1);
            for v in [
                c.attempts, c.remote, c.local, syns.sent, syns.lost, syns.slow,
            ] {
                put(out, v);
            }
            put(out, rtt.iter().filter(|&&n| n > 0).count() as u64);
            for (slot, &n) in rtt.iter().enumerate().filter(|(_, n)| **n > 0) {
                out.push(slot as u8);
                put(out, n);
            }
        }
    }
}

/// Reads one record off the front of `b`: (minutes since the one before,
/// its counts).
fn decode(b: &mut &[u8]) -> Result<(i64, Counts), Malformed> {
    let delta = get(b)? as i64;
    let (&kind, rest) = b.split_first().ok_or(Malformed("truncated"))?;
    *b = rest;
    if kind == 0 {
        let (attempts, remote) = (get(b)?, get(b)?);
        return Ok((
            delta,
            Counts {
                attempts,
                remote,
                local: 0,
                connect: None,
            },
        ));
    }
    let mut v = [0u64; 6];
    for x in &mut v {
        *x = get(b)?;
    }
    let mut rtt = [0u64; RTT_SLOTS];
    for _ in 0..get(b)? {
        let (&slot, rest) = b.split_first().ok_or(Malformed("truncated"))?;
        *b = rest;
        *rtt.get_mut(slot as usize).ok_or(Malformed("rtt slot"))? = get(b)?;
    }
    let syns = Syns {
        sent: v[3],
        lost: v[4],
        slow: v[5],
    };
    Ok((
        delta,
        Counts {
            attempts: v[0],
            remote: v[1],
            local: v[2],
            connect: Some((syns, rtt)),
        },
    ))
}

/// The records of one series, oldest first.
struct Records<'a> {
    bytes: &'a [u8],
    minute: i64,
}

impl Iterator for Records<'_> {
    type Item = (i64, Counts);

    fn next(&mut self) -> Option<(i64, Counts)> {
        if self.bytes.is_empty() {
            return None;
        }
        // The book wrote every record itself: one that does not read
        // back is a bug, and the rest of the series is passed over.
        let (delta, counts) = decode(&mut self.bytes).ok()?;
        self.minute += delta;
        Some((self.minute, counts))
    }
}

#[cfg(test)]
mod tests;
