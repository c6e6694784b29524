//! Cross-region evidence: which paths fail beyond their baseline, where the
//! fault is (target, source region, path, address, DNS), and the numbers
//! that prove it.
//!
//! - [`stats`]: the binomial test and histogram quantiles;
//! - [`assessment`]: the parameters, and the cells and findings at one
//!   moment (a leaf the rest builds on);
//! - [`cells`]: the region x target x address matrix read from the store,
//!   and the test of one cell;
//! - [`book`]: the same cells kept in memory as batches are stored, which
//!   the evaluation reads;
//! - `signal`: what a finding is about (failures, latency, loss), a leaf
//!   shared by `cells` and `localize`;
//! - [`localize`]: from cell states to scoped findings;
//! - [`reachability`]: one target's state from every region, and a verdict;
//! - `touched`: the cells a stored batch added failures to, judged as it
//!   is stored, which may ask for an evaluation before the next tick;
//! - `judgment`: what readers are shown of the loop's last judgment;
//! - [`incidents`]: findings that persist, with ids and timelines;
//! - [`alertmanager`]: the evidence for an Alertmanager alert's window.

pub(crate) mod alertmanager;
pub(crate) mod assessment;
pub(crate) mod book;
pub(crate) mod cells;
pub(crate) mod incidents;
mod judgment;
pub(crate) mod localize;
pub(crate) mod reachability;
mod signal;
pub(crate) mod stats;
mod touched;

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use crate::fleet::Fleet;
use crate::store::{Store, StoreError};
use crate::time::us;
use assessment::judge;
pub use assessment::{Assessment, Params, assess};
pub use judgment::Judgment;
pub use localize::Held;

/// The fleet's probes for [`assess`].
pub(crate) fn probes_of(
    fleet: &crate::fleet::Fleet,
    now: SystemTime,
) -> Vec<localize::ProbeLiveness> {
    fleet
        .probes(now)
        .into_iter()
        .filter(|(_, _, l)| *l != crate::fleet::Liveness::Forgotten)
        .map(|(id, p, l)| localize::ProbeLiveness {
            probe_id: id,
            src_region: p.src_region,
            last_seen_us: us(p.last_seen),
            liveness: l,
        })
        .collect()
}

/// `k/n (p%)`: failures of attempts, as sentences and reports give them.
pub(crate) fn rate(failures: u64, attempts: u64) -> String {
    if attempts == 0 {
        return "no data".to_string();
    }
    format!(
        "{failures}/{attempts} ({:.1}%)",
        failures as f64 * 100.0 / attempts as f64
    )
}

/// "14% ± 3% of SYNs lost (25/180)", or `None` when none was lost.
pub(crate) fn syn_loss(lost: u64, sent: u64) -> Option<String> {
    (lost > 0 && sent > 0).then(|| {
        format!(
            "{} of SYNs lost ({lost}/{sent})",
            cells::LossRate::new(lost, sent, 0).percent()
        )
    })
}

/// Whether lost SYNs say more than failed connects: a larger share.
pub(crate) fn loss_leads(lost: u64, sent: u64, failures: u64, attempts: u64) -> bool {
    lost > 0 && lost as f64 * attempts.max(1) as f64 > failures as f64 * sent.max(1) as f64
}

/// Why no judgment can be shown.
#[derive(Debug, thiserror::Error)]
pub enum Unjudged {
    /// The store could not answer.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The cells are still being loaded from the store, at start.
    #[error(
        "the evidence is still loading the recent window from the store ({:.0} s so far); the first judgment follows it",
        .0.as_secs_f64()
    )]
    Loading(std::time::Duration),
}

/// What judging the fleet takes: the cells kept as batches are stored,
/// the live fleet, the evidence policy, and what the open incidents hold;
/// and the evaluation loop's last judgment, which every reader is shown.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct Judge {
    store: Store,
    book: Arc<book::Book>,
    fleet: Arc<Fleet>,
    params: Params,
    held: Arc<RwLock<Held>>,
    last: Arc<RwLock<Option<Arc<Judgment>>>>,
    /// Held while the judgment before the loop's first is made: one at a
    /// time, however many readers ask.
    first: Arc<Mutex<()>>,
    /// The (region, target) pairs whose stored failures asked for an
    /// evaluation since the last tick's (see [`Judge::new_faults`]).
    tried: Arc<Mutex<std::collections::HashSet<(String, String)>>>,
}

impl Judge {
    /// Judges `book`'s cells (which follow `store`) with `fleet`'s
    /// probes, as `params` say.
    pub(crate) fn new(
        store: Store,
        book: Arc<book::Book>,
        fleet: Arc<Fleet>,
        params: Params,
    ) -> Judge {
        Judge {
            store,
            book,
            fleet,
            params,
            held: Arc::default(),
            last: Arc::default(),
            first: Arc::default(),
            tried: Arc::default(),
        }
    }

    /// Calls `wake` whenever stored batches add failures to a cell (at
    /// once, without blocking): the evaluation loop then asks
    /// [`Judge::new_faults`] whether they call for an evaluation now.
    pub(crate) fn on_failures(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.book.on_failures(wake);
    }

    /// Judges, at `now`, the cells stored batches added failures to since
    /// the last look or evaluation, against the last judgment published:
    /// how many fail anew (see `touched`). Nothing is new before the
    /// first judgment. Blocking.
    pub(crate) fn new_faults(&self, now: SystemTime) -> usize {
        let now_us = us(now);
        let cells = self.book.touched(now_us);
        let Some(last) = self.last.read().expect("judgment lock").clone() else {
            return 0;
        };
        let mut tried = self.tried.lock().expect("tried lock");
        touched::new_faults(&cells, &last, now_us, self.params.alpha, &mut tried)
    }

    /// Lets every cell ask for an evaluation again: the loop calls it on
    /// each tick of its period.
    pub(crate) fn forget_tried(&self) {
        let mut tried = self.tried.lock().expect("tried lock");
        tried.clear();
        tried.shrink_to_fit();
    }

    /// Makes `a` the judgment every reader is shown: the evaluation loop
    /// publishes each of its own once the incidents it changed are
    /// written, so the findings API, reachability and the alert webhook
    /// show what the incidents were judged on, and no request judges
    /// again.
    pub(crate) fn publish(&self, a: Assessment) {
        *self.last.write().expect("judgment lock") = Some(Arc::new(Judgment::of(a)));
    }

    /// The last judgment published. Before the loop's first (one
    /// `evaluate_every` after start), one judgment made now and kept
    /// until the loop's replaces it, however many ask; none while the
    /// cells are loading. Blocking: it may read the store.
    pub fn latest(&self, now: SystemTime) -> Result<Arc<Judgment>, Unjudged> {
        if let Some(a) = self.last.read().expect("judgment lock").clone() {
            return Ok(a);
        }
        self.loaded().map_err(Unjudged::Loading)?;
        let _one = self.first.lock().expect("first judgment lock");
        if let Some(a) = self.last.read().expect("judgment lock").clone() {
            return Ok(a);
        }
        let a = Arc::new(Judgment::of(self.assess(now)?));
        let mut last = self.last.write().expect("judgment lock");
        Ok(last.get_or_insert(a).clone())
    }

    /// What the open incidents hold from now on: every clone of this
    /// judge (the evaluation loop, the evidence endpoint, the alert
    /// webhook) judges those cells at the looser bound, so all of them
    /// show the same findings.
    pub(crate) fn hold(&self, held: Held) {
        *self.held.write().expect("held lock") = held;
    }

    /// Whether the cells hold what the store held at start; if not, for
    /// how long they have been loading.
    pub(crate) fn loaded(&self) -> Result<(), std::time::Duration> {
        self.book.loaded()
    }

    /// The store it reads.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Judges the cells at `now`, from memory.
    pub fn assess(&self, now: SystemTime) -> Result<Assessment, StoreError> {
        let held = self.held.read().expect("held lock").clone();
        let now_us = us(now);
        Ok(judge(
            self.book.cells(now_us),
            &probes_of(&self.fleet, now),
            now_us,
            self.params,
            &held,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ProbePolicy, Retention};
    use crate::fleet::SeriesLimits;
    use std::time::Duration;

    /// While the cells load at start, readers are told so (and no
    /// judgment of an empty book is kept for them); once loaded, they
    /// get one.
    #[test]
    fn readers_are_told_the_evidence_is_loading_until_it_is() {
        let dir =
            std::env::temp_dir().join(format!("vantage-judge-loading-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let day = Duration::from_secs(86_400);
        let store = Store::open(
            &dir,
            Retention {
                rollups: day,
                failures: day,
                receipts: day,
            },
        )
        .unwrap();
        let fleet = Arc::new(Fleet::new(
            ProbePolicy {
                silent_after: Duration::from_secs(60),
                forget_after: day,
                max_clock_offset: Duration::from_secs(5),
            },
            SeriesLimits {
                targets_per_probe: 10,
                per_region: 1000,
                total: 1000,
                forget_after: day,
            },
            Vec::new(),
            Vec::new(),
        ));
        let book = Arc::new(book::Book::loading(Params::default()));
        let judge = Judge::new(store.clone(), book.clone(), fleet, Params::default());
        let now = SystemTime::now();
        let Err(Unjudged::Loading(_)) = judge.latest(now) else {
            panic!("judged before the cells were loaded");
        };
        assert!(judge.loaded().is_err());
        book.load_from(&store, now).unwrap();
        assert!(judge.loaded().is_ok());
        let j = judge.latest(now).unwrap();
        assert!(j.findings.is_empty());
        drop((judge, book, store));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
