//! Which finding is which open incident's fault. Findings and incidents
//! meet on the (region, target) pairs they speak of; where several could
//! pair, a finding of the incident's own scope goes first, then the one
//! sharing most pairs. A finding left over that shares pairs only with
//! incidents of other scopes is a fault of its own (a region's egress
//! breaking while one of its targets is down): it is not swallowed.

use std::collections::BTreeSet;

use crate::evidence::localize::{Finding, Scope, Signal};

/// A (region, subject) pair a finding speaks of.
pub(super) type Pairs = BTreeSet<(String, String)>;

/// The (region, target) pairs a finding speaks of; silent and probe-host
/// findings speak of their region's probes, whichever of them: a region
/// has one silent incident however many of its probes fall silent or come
/// back while it is open.
pub(super) fn pairs(f: &Finding) -> Pairs {
    let mut out = BTreeSet::new();
    for r in &f.src_regions {
        match f.scope {
            Scope::Silent => {
                out.insert((r.clone(), "silent-probes".to_string()));
            }
            Scope::Probe => {
                out.insert((r.clone(), "probe-host".to_string()));
            }
            _ => {
                // A slow path, a lossy one and a failing one are separate
                // incidents.
                let signal = match f.signal {
                    Signal::Failures => "",
                    Signal::Latency => "latency:",
                    Signal::Loss => "loss:",
                };
                for t in &f.targets {
                    out.insert((r.clone(), format!("{signal}{t}")));
                }
                if let Some(a) = &f.address {
                    out.insert((r.clone(), format!("address:{a}")));
                }
            }
        }
    }
    out
}

/// For each finding, the open incident (by index) it continues, if any:
/// each incident continues at most one finding.
pub(super) fn assign(
    findings: &[(&Finding, Pairs)],
    open: &[(&Finding, Pairs)],
) -> Vec<Option<usize>> {
    let mut candidates = Vec::new();
    for (fi, (f, fp)) in findings.iter().enumerate() {
        for (ii, (i, ip)) in open.iter().enumerate() {
            let shared = fp.intersection(ip).count();
            if shared > 0 {
                candidates.push((f.scope == i.scope, shared, fi, ii));
            }
        }
    }
    // Own scope first, then most shared; ties to the earlier of each.
    candidates.sort_by(|a, b| (b.0, b.1, a.2, a.3).cmp(&(a.0, a.1, b.2, b.3)));
    let mut out = vec![None; findings.len()];
    let mut taken = vec![false; open.len()];
    for (_, _, fi, ii) in candidates {
        if out[fi].is_none() && !taken[ii] {
            out[fi] = Some(ii);
            taken[ii] = true;
        }
    }
    out
}

/// Whether a finding no incident continues is part of a fault already
/// handled: it shares pairs with one of the same scope. Otherwise it is
/// a fault of its own.
pub(super) fn part_of(f: &Finding, fp: &Pairs, handled: &[(Scope, &Pairs)]) -> bool {
    handled
        .iter()
        .any(|(scope, p)| *scope == f.scope && !p.is_disjoint(fp))
}
