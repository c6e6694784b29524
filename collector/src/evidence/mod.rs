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
pub(crate) use touched::Touched;

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
    /// evaluation since the last tick's (see [`Judge::touched`]).
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
    /// [`Judge::touched`] whether they call for an evaluation now.
    pub(crate) fn on_failures(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.book.on_failures(wake);
    }

    /// Judges, at `now`, the cells stored batches added failures to since
    /// the last look or evaluation, against the last judgment published.
    /// Nothing is new before the first one. Blocking.
    pub(crate) fn touched(&self, now: SystemTime) -> Touched {
        let now_us = us(now);
        let cells = self.book.touched(now_us);
        let Some(last) = self.last.read().expect("judgment lock").clone() else {
            return Touched::default();
        };
        let mut tried = self.tried.lock().expect("tried lock");
        touched::look(&cells, &last, now_us, self.params.alpha, &mut tried)
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
    /// until the loop's replaces it, however many ask. Blocking: it may
    /// read the store.
    pub fn latest(&self, now: SystemTime) -> Result<Arc<Judgment>, StoreError> {
        if let Some(a) = self.last.read().expect("judgment lock").clone() {
            return Ok(a);
        }
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
