//! The tracker's rules, one evaluation at a time.

use std::collections::BTreeMap;

use super::pending::SETTLE_EVALUATIONS;
use super::*;
use crate::evidence::localize::{RegionEvidence, Scope};

const S: i64 = 1_000_000;

fn finding(scope: Scope, regions: &[&str], targets: &[&str]) -> Finding {
    Finding {
        scope,
        signal: crate::evidence::localize::Signal::Failures,
        src_regions: regions.iter().map(|s| s.to_string()).collect(),
        targets: targets.iter().map(|s| s.to_string()).collect(),
        target_group: None,
        address: None,
        probe_ids: Vec::new(),
        since_us: 1_000 * S,
        evidence: regions
            .iter()
            .map(|r| RegionEvidence {
                src_region: r.to_string(),
                failures: 10,
                attempts: 50,
                reasons: BTreeMap::from([("timeout".to_string(), 10)]),
                since_us: 1_000 * S,
                baseline_failures: 0,
                baseline_attempts: 3600,
                p_value: 1e-9,
                rtt: None,
                loss: None,
            })
            .collect(),
        healthy_alternatives: Vec::new(),
        quorum: String::new(),
        explanation: "it broke".into(),
    }
}

#[test]
fn an_incident_opens_evolves_and_resolves_with_its_timeline() {
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    // Found once: it waits for the next evaluation to confirm its scope.
    let c = t.evaluate(
        &[finding(Scope::Path, &["east"], &["api", "db"])],
        1_005 * S,
    );
    assert!(c.upserts.is_empty() && c.events.is_empty(), "{c:?}");
    assert_eq!(c.pending.len(), 1);
    t.apply(&c);
    let c = t.evaluate(
        &[finding(Scope::Path, &["east"], &["api", "db"])],
        1_010 * S,
    );
    assert_eq!(c.upserts.len(), 1);
    assert!(c.pending.is_empty());
    assert_eq!(c.upserts[0].id, 1);
    let kinds: Vec<&str> = c.events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(kinds, ["onset", "opened"]);
    t.apply(&c);

    // The same fault, unchanged: no new lines.
    let c = t.evaluate(
        &[finding(Scope::Path, &["east"], &["api", "db"])],
        1_020 * S,
    );
    assert!(c.events.is_empty());
    t.apply(&c);

    // It spreads to a second region and becomes target-side.
    let c = t.evaluate(
        &[finding(Scope::Target, &["east", "west"], &["db"])],
        1_030 * S,
    );
    assert_eq!(c.upserts[0].id, 1, "the same incident");
    let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
    assert!(
        texts[0].starts_with("west: failures began (10 of 50"),
        "{texts:?}"
    );
    assert_eq!(texts[1], "Now also failing from west");
    assert!(
        texts[2].starts_with("Scope changed from path to target"),
        "{texts:?}"
    );
    t.apply(&c);

    // It heals from one region: the scope and extent stay, once.
    let c = t.evaluate(&[finding(Scope::Path, &["east"], &["db"])], 1_035 * S);
    assert_eq!(c.upserts[0].finding.scope, Scope::Target);
    let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(texts, ["No longer failing from west"]);
    t.apply(&c);
    let c = t.evaluate(&[finding(Scope::Path, &["east"], &["db"])], 1_036 * S);
    assert!(c.events.is_empty(), "said once: {:?}", c.events);
    t.apply(&c);

    // An unrelated fault is another incident, once confirmed.
    for at in [1_039, 1_040] {
        let c = t.evaluate(
            &[
                finding(Scope::Target, &["east", "west"], &["db"]),
                finding(Scope::Dns, &["onprem"], &["web"]),
            ],
            at * S,
        );
        t.apply(&c);
    }
    assert_eq!(t.open.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2]);

    // Quiet, but not for long enough: still open.
    let c = t.evaluate(&[], 1_100 * S);
    assert!(c.upserts.is_empty());
    // Three minutes without a finding: both resolve.
    let c = t.evaluate(&[], 1_040 * S + 180 * S);
    assert_eq!(c.upserts.len(), 2);
    assert!(c.upserts.iter().all(|i| i.resolved_us.is_some()));
    assert!(c.events.iter().all(|e| e.kind == "resolved"));
    t.apply(&c);
    assert!(t.open.is_empty());

    // The fault comes back: a new incident, not a resurrected one.
    let c = t.evaluate(&[finding(Scope::Target, &["east"], &["db"])], 1_990 * S);
    t.apply(&c);
    let c = t.evaluate(&[finding(Scope::Target, &["east"], &["db"])], 2_000 * S);
    assert_eq!(c.upserts[0].id, 3);
}

/// A silent finding of `region`: `ids` of `of` probes.
fn silent(region: &str, ids: &[&str], of: usize) -> Finding {
    Finding {
        scope: Scope::Silent,
        probe_ids: ids.iter().map(|s| s.to_string()).collect(),
        evidence: Vec::new(),
        quorum: format!("{} of {of} probes", ids.len()),
        explanation: format!("{} of {of} probes of {region} went silent", ids.len()),
        ..finding(Scope::Silent, &[region], &[])
    }
}

#[test]
fn a_region_has_one_silent_incident_however_many_probes_fall_silent() {
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    // Two regions' probes go silent: two incidents, not one per probe.
    let c = t.evaluate(
        &[
            silent("us-west-1", &["w1", "w2"], 12),
            silent("onprem", &["o1"], 3),
        ],
        1_010 * S,
    );
    assert_eq!(c.upserts.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2]);
    t.apply(&c);

    // Five more of us-west-1's go silent: the same incident, widened.
    let more = ["w1", "w2", "w3", "w4", "w5", "w6", "w7"];
    let c = t.evaluate(
        &[silent("us-west-1", &more, 12), silent("onprem", &["o1"], 3)],
        1_020 * S,
    );
    assert_eq!(c.upserts.iter().map(|i| i.id).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(c.upserts[0].finding.probe_ids, more);
    assert_eq!(c.upserts[0].finding.quorum, "7 of 12 probes");
    let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Also silent: w3, w4, w5, w6, w7; now 7 of 12 probes of us-west-1"]
    );
    t.apply(&c);

    // Replacements end most of the silence: narrowed, still incident 1.
    let c = t.evaluate(
        &[
            silent("us-west-1", &["w7"], 12),
            silent("onprem", &["o1"], 3),
        ],
        1_030 * S,
    );
    assert_eq!(c.upserts[0].id, 1);
    assert_eq!(c.upserts[0].finding.probe_ids, ["w7"]);
    let texts: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        ["Reporting again or replaced: w1, w2, w3, w4, w5, w6; now 1 of 12 probes of us-west-1"]
    );
    t.apply(&c);

    // The last one is replaced too: us-west-1's resolves in time,
    // onprem's stays open.
    let c = t.evaluate(&[silent("onprem", &["o1"], 3)], 1_030 * S + 180 * S);
    let resolved: Vec<u64> = c
        .upserts
        .iter()
        .filter(|i| i.resolved_us.is_some())
        .map(|i| i.id)
        .collect();
    assert_eq!(resolved, [1]);
    t.apply(&c);
    assert_eq!(t.open.iter().map(|i| i.id).collect::<Vec<_>>(), [2]);
}

/// Evaluates and applies, as the evaluation loop does.
fn step(t: &mut Tracker, findings: &[Finding], at: i64) -> Changes {
    let c = t.evaluate(findings, at * S);
    t.apply(&c);
    c
}

#[test]
fn a_new_fault_of_another_scope_on_the_same_pairs_opens_its_own_incident() {
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    let db_down = finding(Scope::Target, &["east", "west", "onprem"], &["db"]);
    step(&mut t, std::slice::from_ref(&db_down), 1_000);
    step(&mut t, std::slice::from_ref(&db_down), 1_010);
    assert_eq!(t.open.len(), 1);

    // East's egress breaks while db is down: east now fails to every
    // target (db among them), the others still fail to db alone.
    let mut east_out = finding(Scope::Source, &["east"], &["api", "db", "web"]);
    east_out.since_us = 1_015 * S;
    let db_rest = finding(Scope::Target, &["west", "onprem"], &["db"]);
    let both = [east_out.clone(), db_rest.clone()];
    let c = step(&mut t, &both, 1_020);
    // The target incident continues; east is not "no longer failing":
    // another fault explains its failures to db now.
    assert_eq!(c.upserts.iter().map(|i| i.id).collect::<Vec<_>>(), [1]);
    assert!(
        c.events.iter().all(|e| !e.text.starts_with("No longer")),
        "{:?}",
        c.events
    );
    assert_eq!(c.pending.len(), 1, "the egress fault waits to settle");
    let c = step(&mut t, &both, 1_030);
    let opened: Vec<&Incident> = c
        .upserts
        .iter()
        .filter(|i| i.opened_us == 1_030 * S)
        .collect();
    assert_eq!(opened.len(), 1, "{c:?}");
    assert_eq!(opened[0].id, 2);
    assert_eq!(opened[0].finding.scope, Scope::Source);
    assert_eq!(t.open.len(), 2);
    assert_eq!(t.open[0].finding.scope, Scope::Target, "unchanged");

    // The same split judged again: nothing new on either timeline.
    let c = step(&mut t, &both, 1_040);
    assert!(c.events.is_empty(), "{:?}", c.events);
}

#[test]
fn an_incident_opens_with_the_scope_the_next_evaluation_confirms() {
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    // One address of a name blackholed everywhere first looks like a path
    // fault of the one region whose data came in first.
    let path = finding(Scope::Path, &["east"], &["api"]);
    let mut address = finding(Scope::Address, &["east", "west", "onprem"], &["api"]);
    address.address = Some("10.0.0.5:443".into());
    let c = step(&mut t, std::slice::from_ref(&path), 1_000);
    assert!(c.upserts.is_empty());
    let c = step(&mut t, std::slice::from_ref(&address), 1_010);
    assert!(c.upserts.is_empty(), "a scope that moved waits again");
    let c = step(&mut t, std::slice::from_ref(&address), 1_020);
    assert_eq!(c.upserts.len(), 1);
    assert_eq!(c.upserts[0].finding.scope, Scope::Address);
    let opened = c.events.iter().find(|e| e.kind == "opened").unwrap();
    assert!(
        opened.text.starts_with("Opened, scope address: "),
        "{}",
        opened.text
    );

    // A scope that keeps moving opens after SETTLE_EVALUATIONS, saying so.
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    let global = finding(Scope::Global, &["east", "west", "onprem"], &["api"]);
    let mut c = Changes::default();
    for (k, f) in [&path, &address, &global].iter().enumerate() {
        c = step(&mut t, std::slice::from_ref(*f), 1_000 + 10 * k as i64);
    }
    assert_eq!(SETTLE_EVALUATIONS, 3);
    let opened = c.events.iter().find(|e| e.kind == "opened").unwrap();
    assert!(
        opened.text.starts_with(
            "Opened, scope global (still settling: judged path, then address before): "
        ),
        "{}",
        opened.text
    );

    // Silent probes are counted, not voted on: they open at once.
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    let c = step(&mut t, &[silent("east", &["e1"], 3)], 1_000);
    assert_eq!(c.upserts.len(), 1);
}

#[test]
fn an_onset_dated_again_replaces_its_line_so_timeline_and_sentence_agree() {
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    let mut f = finding(Scope::Path, &["east"], &["api"]);
    f.since_us = 900 * S; // 00:15
    f.evidence[0].since_us = 900 * S;
    step(&mut t, std::slice::from_ref(&f), 1_090);
    let c = step(&mut t, std::slice::from_ref(&f), 1_100);
    let first = c.events.iter().find(|e| e.kind == "onset").unwrap().clone();
    assert_eq!(first.at_us, 900 * S);

    // The fault's own failures put its onset two minutes later (still
    // before the incident opened).
    let mut later = f.clone();
    later.since_us = 1_020 * S; // 00:17
    later.evidence[0].since_us = 1_020 * S;
    let c = step(&mut t, std::slice::from_ref(&later), 1_110);
    assert_eq!(c.retracted, [first]);
    let line = c.events.iter().find(|e| e.kind == "onset").unwrap();
    assert_eq!(line.at_us, 1_020 * S);
    assert!(
        line.text.ends_with("(first dated 00:15 UTC)"),
        "{}",
        line.text
    );
    assert_eq!(t.open[0].finding.since_us, 1_020 * S);

    // Seconds within the same minute do not move it.
    let mut same = later.clone();
    same.evidence[0].since_us = 1_030 * S;
    let c = step(&mut t, std::slice::from_ref(&same), 1_120);
    assert!(c.retracted.is_empty() && c.events.is_empty(), "{c:?}");

    // Long after: the recent window has slid past the onset, so the
    // finding's "since" is the window's start. That is not a better
    // dating: the line stands, and so does the sentence's "since".
    let mut slid = later.clone();
    slid.since_us = 3_000 * S; // 00:50
    slid.evidence[0].since_us = 3_000 * S;
    slid.evidence[0].failures = 20;
    let c = step(&mut t, std::slice::from_ref(&slid), 3_900);
    assert!(c.retracted.is_empty(), "{c:?}");
    assert!(c.events.iter().all(|e| e.kind != "onset"), "{c:?}");
    let f = &t.open[0].finding;
    assert_eq!(f.since_us, 1_020 * S);
    assert!(
        f.explanation.starts_with("Since 00:17 UTC "),
        "{}",
        f.explanation
    );
}

#[test]
fn onsets_speak_of_the_faults_own_signal() {
    use crate::evidence::cells::{LossRate, RttShift};
    use crate::evidence::localize::Signal;
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    let mut loss = finding(Scope::Path, &["east"], &["api"]);
    loss.signal = Signal::Loss;
    loss.evidence[0].loss = Some(LossRate::new(30, 200, 25));
    let mut slow = finding(Scope::Path, &["west"], &["db"]);
    slow.signal = Signal::Latency;
    slow.evidence[0].rtt = Some(RttShift {
        baseline_p50_ms: 0.1,
        baseline_p95_ms: 0.2,
        recent_p50_ms: 0.1,
        recent_p95_ms: 60.0,
        since_p50_ms: 60.3,
        since_p95_ms: 61.0,
    });
    let mut dns = finding(Scope::Dns, &["onprem"], &["web"]);
    dns.evidence[0].reasons = BTreeMap::from([("servfail".to_string(), 10)]);
    let all = [loss, slow, dns];
    step(&mut t, &all, 1_000);
    let c = step(&mut t, &all, 1_010);
    let onsets: Vec<&str> = c
        .events
        .iter()
        .filter(|e| e.kind == "onset")
        .map(|e| e.text.as_str())
        .collect();
    assert_eq!(
        onsets,
        [
            "east: SYNs lost since (30 of 200 sent, 15% ± 6%; 25 connects succeeded only after a SYN was sent again)",
            "west: slower since (median 60.3 ms, p95 61 ms; was 0.1 ms, p95 0.2 ms)",
            "onprem: lookups failing since (10 of 50 lookups failed, mostly servfail)",
        ]
    );
    // Resolved in the same words.
    let c = step(&mut t, &[], 1_010 + 180);
    let resolved: Vec<&str> = c.events.iter().map(|e| e.text.as_str()).collect();
    assert!(
        resolved[0].starts_with("Resolved: no SYN loss beyond baseline since"),
        "{resolved:?}"
    );
    assert!(
        resolved[1].starts_with("Resolved: no delay beyond baseline since"),
        "{resolved:?}"
    );
    assert!(
        resolved[2].starts_with("Resolved: no failed lookups beyond baseline since"),
        "{resolved:?}"
    );
}

/// A passing look (before every region had the time to measure a new
/// fault) neither settles nor moves its scope: however many of them see
/// the same narrow scope, the incident opens on the settling looks, with
/// the scope they agree on. An open incident still widens on a passing
/// look, and a fault first seen on one waits.
#[test]
fn passing_looks_do_not_settle_a_new_faults_scope() {
    let mut t = Tracker::new(Vec::new(), 0, Duration::from_secs(180));
    let path = finding(Scope::Path, &["east"], &["api", "db"]);
    let c = t.evaluate(std::slice::from_ref(&path), 1_005 * S);
    t.apply(&c);
    for k in 0..5 {
        let c = t.evaluate_as(std::slice::from_ref(&path), (1_006 + k) * S, Look::Passing);
        assert!(c.upserts.is_empty(), "opened on a passing look: {c:?}");
        assert_eq!(c.pending.len(), 1);
        assert_eq!((c.pending[0].evaluations, c.pending[0].settled), (1, 1));
        t.apply(&c);
    }
    // The settling look sees the whole fault: source-side.
    let source = finding(Scope::Source, &["east"], &["api", "db", "web"]);
    let c = t.evaluate(std::slice::from_ref(&source), 1_012 * S);
    assert!(c.upserts.is_empty(), "a new scope waits: {c:?}");
    t.apply(&c);
    let c = t.evaluate(std::slice::from_ref(&source), 1_014 * S);
    assert_eq!(c.upserts.len(), 1);
    assert_eq!(c.upserts[0].finding.scope, Scope::Source);
    let opened = c.events.iter().find(|e| e.kind == "opened").unwrap();
    assert!(
        opened.text.starts_with("Opened, scope source:"),
        "{}",
        opened.text
    );
    t.apply(&c);
    // A second fault first seen on a passing look waits for its own.
    let other = finding(Scope::Path, &["west"], &["queue"]);
    let c = t.evaluate_as(&[source.clone(), other.clone()], 1_015 * S, Look::Passing);
    assert_eq!(c.pending.len(), 1);
    assert!(c.upserts.iter().all(|i| i.id == 1));
}
