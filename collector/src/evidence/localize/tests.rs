//! The localization rules on a three-region, five-target fleet: one
//! scenario per scope, the exclusions, and the fleet-wide bound.

use super::*;
use crate::evidence::cells::Syns;
use crate::fleet::Liveness;

const S: i64 = 1_000_000;
const NOW: i64 = 100_000 * S;
const REGIONS: [&str; 3] = ["us-east-2", "us-west-1", "onprem"];
/// (target, group, addresses)
const TARGETS: [(&str, &str, &[&str]); 5] = [
    (
        "api",
        "gcp",
        &["10.1.0.1:443", "10.1.0.2:443", "10.1.0.3:443"],
    ),
    ("db", "gcp", &["10.1.0.9:5432"]),
    ("queue", "gcp", &["10.1.0.7:5672"]),
    ("web", "aws", &["10.2.0.1:443"]),
    ("cache", "aws", &["10.2.0.2:6379"]),
];

/// Every cell of the fleet, healthy except where `fails(region, target,
/// address)` gives a failing share (1.0 for a hard outage); `dns` adds
/// name lookups of `api` the same way.
fn fleet(fails: impl Fn(&str, &str, &str) -> f64) -> Vec<Cell> {
    let mut cells = Vec::new();
    for r in REGIONS {
        for (t, g, addrs) in TARGETS {
            for a in addrs.iter().copied().chain((t == "api").then_some("")) {
                let share = fails(r, t, a);
                // 300 s at one attempt a second; the fault began 120 s ago.
                let failures: Vec<(i64, String)> = (0..120)
                    .filter(|s| {
                        share > 0.0 && ((*s as f64 * share).fract() + share >= 1.0 || share >= 1.0)
                    })
                    .map(|s| {
                        (
                            NOW - (119 - s) * S,
                            if a.is_empty() {
                                "dns_servfail"
                            } else {
                                "timeout"
                            }
                            .to_string(),
                        )
                    })
                    .collect();
                cells.push(Cell {
                    src_region: r.into(),
                    target: t.into(),
                    group: g.into(),
                    control: false,
                    address: (!a.is_empty()).then(|| a.to_string()),
                    attempts: 300,
                    first_us: NOW - 300 * S,
                    baseline_attempts: 3600,
                    baseline_failures: 0,
                    failures,
                    local_failures: 0,
                    local_since_us: None,
                    rtt_baseline: Vec::new(),
                    rtt_recent: Vec::new(),
                    syn_baseline: Syns::default(),
                    syn_recent: Vec::new(),
                    retransmitted_at: Vec::new(),
                });
            }
        }
    }
    cells
}

fn localize_all(cells: &[Cell], now: i64, alpha: f64) -> Vec<Finding> {
    localize(cells, &[], now, alpha, &Held::default())
}

fn scopes(f: &[Finding]) -> Vec<(Scope, Vec<String>, Vec<String>)> {
    f.iter()
        .map(|f| (f.scope, f.src_regions.clone(), f.targets.clone()))
        .collect()
}

fn v(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

#[test]
fn a_healthy_fleet_has_no_findings() {
    assert!(localize_all(&fleet(|_, _, _| 0.0), NOW, 1e-3).is_empty());
}

#[test]
fn a_backend_refusing_everywhere_is_target_side() {
    let f = localize_all(
        &fleet(|_, t, a| f64::from(t == "db" && !a.is_empty())),
        NOW,
        1e-3,
    );
    assert_eq!(
        scopes(&f),
        [(Scope::Target, v(&REGIONS_SORTED), v(&["db"]))]
    );
    assert_eq!(f[0].quorum, "3 of 3 regions");
    assert!(f[0].healthy_alternatives.is_empty());
    assert_eq!(f[0].evidence[0].reasons["timeout"], 120);
}

const REGIONS_SORTED: [&str; 3] = ["onprem", "us-east-2", "us-west-1"];

#[test]
fn one_region_to_one_provider_is_a_path_with_alternatives() {
    // Seed 003: 18% of connects from us-east-2 to every GCP backend.
    let f = localize_all(
        &fleet(|r, t, a| {
            if r == "us-east-2" && ["api", "db", "queue"].contains(&t) && !a.is_empty() {
                0.18
            } else {
                0.0
            }
        }),
        NOW,
        1e-3,
    );
    assert_eq!(
        scopes(&f),
        [(Scope::Path, v(&["us-east-2"]), v(&["api", "db", "queue"]))]
    );
    assert_eq!(f[0].target_group.as_deref(), Some("gcp"));
    assert_eq!(f[0].healthy_alternatives, v(&["onprem", "us-west-1"]));
    assert_eq!(f[0].quorum, "3 of 3 targets in gcp");
    assert!(
        f[0].explanation.ends_with(
            "of connects from us-east-2 to gcp targets (api, db and queue) fail (timeout); \
             onprem and us-west-1 reach the same targets fine, and us-east-2 reaches other \
             targets: the fault is on the us-east-2 -> gcp path, not the targets."
        ),
        "{}",
        f[0].explanation
    );
    assert!(
        f[0].explanation.starts_with("Since 03:44 UTC 19% "),
        "{}",
        f[0].explanation
    );
    let e = &f[0].evidence[0];
    assert!(e.failures * 100 / e.attempts >= 12, "{e:?}");
}

#[test]
fn one_region_failing_to_everything_is_source_side() {
    let f = localize_all(
        &fleet(|r, _, a| f64::from(r == "onprem" && !a.is_empty())),
        NOW,
        1e-3,
    );
    assert_eq!(
        scopes(&f),
        [(
            Scope::Source,
            v(&["onprem"]),
            v(&["api", "cache", "db", "queue", "web"])
        )]
    );
    assert_eq!(f[0].healthy_alternatives, v(&["us-east-2", "us-west-1"]));
}

#[test]
fn one_address_failing_everywhere_is_an_address() {
    let f = localize_all(&fleet(|_, _, a| f64::from(a == "10.1.0.3:443")), NOW, 1e-3);
    assert_eq!(
        scopes(&f),
        [(Scope::Address, v(&REGIONS_SORTED), v(&["api"]))]
    );
    assert_eq!(f[0].address.as_deref(), Some("10.1.0.3:443"));
}

#[test]
fn dns_in_one_region_is_dns_there_only() {
    let f = localize_all(
        &fleet(|r, _, a| f64::from(r == "us-west-1" && a.is_empty())),
        NOW,
        1e-3,
    );
    assert_eq!(scopes(&f), [(Scope::Dns, v(&["us-west-1"]), v(&["api"]))]);
    assert_eq!(f[0].healthy_alternatives, v(&["onprem", "us-east-2"]));
}

#[test]
fn everything_failing_everywhere_is_global_not_a_guess() {
    let f = localize_all(&fleet(|_, _, a| f64::from(!a.is_empty())), NOW, 1e-3);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].scope, Scope::Global);
    assert_eq!(f[0].quorum, "5 of 5 targets");
}

#[test]
fn a_path_no_other_region_measures_is_inconclusive() {
    let mut cells = fleet(|r, t, _| f64::from(r == "us-east-2" && t == "web"));
    cells.retain(|c| c.target != "web" || c.src_region == "us-east-2");
    let f = localize_all(&cells, NOW, 1e-3);
    assert_eq!(
        scopes(&f),
        [(Scope::Inconclusive, v(&["us-east-2"]), v(&["web"]))]
    );
    assert!(f[0].healthy_alternatives.is_empty());
}

#[test]
fn a_broken_probe_host_is_its_own_finding_and_sits_out_the_vote() {
    // onprem fails everything, but with local errors: its host, not the
    // network, and not the targets.
    let mut cells = fleet(|r, _, a| f64::from(r == "onprem" && !a.is_empty()));
    for c in cells.iter_mut().filter(|c| c.src_region == "onprem") {
        c.local_failures = 40;
        c.local_since_us = Some(NOW - 100 * S);
    }
    let f = localize_all(&cells, NOW, 1e-3);
    assert_eq!(scopes(&f), [(Scope::Probe, v(&["onprem"]), v(&[]))]);
    assert!(
        f[0].explanation.contains("local errors"),
        "{}",
        f[0].explanation
    );

    // A failing control target blames the host the same way.
    let mut cells = fleet(|r, t, a| f64::from(r == "us-west-1" && t == "cache" && !a.is_empty()));
    for c in cells.iter_mut().filter(|c| c.target == "cache") {
        c.control = true;
    }
    let f = localize_all(&cells, NOW, 1e-3);
    assert_eq!(
        scopes(&f),
        [(Scope::Probe, v(&["us-west-1"]), v(&["cache"]))]
    );
}

/// A probe of `region` in state `liveness`, last heard from `ago` seconds
/// before [`NOW`].
fn probe(region: &str, id: &str, ago: i64, liveness: Liveness) -> ProbeLiveness {
    ProbeLiveness {
        probe_id: id.into(),
        src_region: region.into(),
        last_seen_us: NOW - ago * S,
        liveness,
    }
}

#[test]
fn a_silent_region_is_reported_and_not_counted_against_targets() {
    // us-west-1's last data shows failures to web, then it went silent:
    // only the silence is reported, not a path or a target.
    let cells = fleet(|r, t, a| f64::from(r == "us-west-1" && t == "web" && !a.is_empty()));
    let probes = [
        probe("us-west-1", "w1", 90, Liveness::Silent),
        probe("us-east-2", "e1", 1, Liveness::Reporting),
    ];
    let f = localize(&cells, &probes, NOW, 1e-3, &Held::default());
    assert_eq!(scopes(&f), [(Scope::Silent, v(&["us-west-1"]), v(&[]))]);
    assert_eq!(f[0].probe_ids, ["w1"]);
    assert_eq!(f[0].quorum, "1 of 1 probe");
    assert!(
        f[0].explanation
            .contains("neither \"its targets are down\" nor healthy; us-west-1 is left out"),
        "{}",
        f[0].explanation
    );
}

#[test]
fn the_silent_probes_of_a_region_are_one_finding_naming_them() {
    // Seven of us-west-1's twelve probes went silent (a rollout killed),
    // one was replaced and one stopped cleanly (neither counts); two of
    // onprem's three went silent. One finding per region.
    let mut probes = Vec::new();
    for i in 1..=12 {
        let l = if i <= 7 {
            Liveness::Silent
        } else {
            Liveness::Reporting
        };
        probes.push(probe("us-west-1", &format!("w-{i:02}"), 100 + i, l));
    }
    probes.push(probe("us-west-1", "w-old", 900, Liveness::Replaced));
    probes.push(probe("us-west-1", "w-gone", 900, Liveness::Stopped));
    for (id, l) in [
        ("o1", Liveness::Silent),
        ("o2", Liveness::Silent),
        ("o3", Liveness::Reporting),
    ] {
        probes.push(probe("onprem", id, 80, l));
    }
    probes.push(probe("us-east-2", "e1", 1, Liveness::Reporting));
    let f = localize(&fleet(|_, _, _| 0.0), &probes, NOW, 1e-3, &Held::default());
    let silent: Vec<(String, String, Vec<String>)> = f
        .iter()
        .map(|f| {
            assert_eq!(f.scope, Scope::Silent, "{f:?}");
            (
                f.src_regions.join(","),
                f.quorum.clone(),
                f.probe_ids.clone(),
            )
        })
        .collect();
    assert_eq!(
        silent,
        [
            (
                "us-west-1".to_string(),
                "7 of 12 probes".to_string(),
                (1..=7).map(|i| format!("w-{i:02}")).collect::<Vec<_>>()
            ),
            ("onprem".into(), "2 of 3 probes".into(), v(&["o1", "o2"])),
        ],
        "one finding per region, oldest silence first"
    );
    let west = &f[0];
    assert_eq!(west.since_us, NOW - 107 * S, "since the first went silent");
    assert!(
        west.explanation.contains(
            "7 of 12 probes of us-west-1 went silent (w-01, w-02, w-03, w-04, w-05, w-06 and w-07)"
        ),
        "{}",
        west.explanation
    );
    assert!(
        !west.explanation.contains("left out of the vote"),
        "five probes still report: {}",
        west.explanation
    );
}

#[test]
fn a_sentence_names_ten_silent_probes_and_counts_the_rest() {
    let probes: Vec<ProbeLiveness> = (1..=25)
        .map(|i| probe("us-west-1", &format!("w-{i:02}"), 100, Liveness::Silent))
        .chain([probe("us-west-1", "w-99", 1, Liveness::Reporting)])
        .collect();
    let f = localize(&fleet(|_, _, _| 0.0), &probes, NOW, 1e-3, &Held::default());
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].probe_ids.len(), 25, "the finding has them all");
    assert!(
        f[0].explanation
            .contains("25 of 26 probes of us-west-1 went silent (w-01, w-02, w-03, w-04, w-05, w-06, w-07, w-08, w-09, w-10 and 15 more)"),
        "{}",
        f[0].explanation
    );
}

#[test]
fn forty_ms_on_one_path_is_a_latency_path_finding() {
    use vantage_probe::stats::CONNECT_BUCKETS_US as B;
    let hist = |us: u64, n: u64| {
        let mut h = vec![0; B.len() + 1];
        h[B.partition_point(|&b| b < us)] = n;
        h
    };
    let mut cells = fleet(|_, _, _| 0.0);
    for c in cells.iter_mut().filter(|c| c.address.is_some()) {
        c.rtt_baseline = hist(900, 3000);
        let slow = c.src_region == "us-east-2" && c.group == "gcp";
        c.rtt_recent = (0..5)
            .map(|m| (m, hist(if slow { 41_000 } else { 900 }, 60)))
            .collect();
    }
    let f = localize_all(&cells, NOW, 1e-3);
    assert_eq!(
        scopes(&f),
        [(Scope::Path, v(&["us-east-2"]), v(&["api", "db", "queue"]))]
    );
    assert_eq!(f[0].signal, Signal::Latency);
    assert_eq!(f[0].healthy_alternatives, v(&["onprem", "us-west-1"]));
    assert!(
        f[0].explanation.contains(
            "connect RTT from us-east-2 to gcp targets (api, db and queue) rose to a median of"
        ),
        "{}",
        f[0].explanation
    );
    assert!(
        f[0].explanation
            .ends_with("the delay is on the us-east-2 -> gcp path.")
    );
}

/// Seed 003 with a 5 s connect timeout: a fifth of the SYNs from
/// us-east-2 to gcp are lost, every connect still succeeds, the RTT is
/// unchanged; only connects a second late give it away.
#[test]
fn lost_syns_on_one_path_are_a_loss_path_finding() {
    let mut cells = fleet(|_, _, _| 0.0);
    for c in cells.iter_mut().filter(|c| c.address.is_some()) {
        c.syn_baseline = Syns {
            sent: 3600,
            lost: 0,
            slow: 0,
        };
        let lossy = c.src_region == "us-east-2" && c.group == "gcp";
        // 60 connects a minute; on the lossy path 12 needed a SYN again.
        c.syn_recent = (0..5)
            .map(|m| {
                let slow = if lossy { 12 } else { 0 };
                (
                    NOW / crate::time::MINUTE_US - 4 + m,
                    Syns {
                        sent: 60 + slow,
                        lost: slow,
                        slow,
                    },
                )
            })
            .collect();
    }
    let f = localize_all(&cells, NOW, 1e-3);
    assert_eq!(
        scopes(&f),
        [(Scope::Path, v(&["us-east-2"]), v(&["api", "db", "queue"]))]
    );
    assert_eq!(f[0].signal, Signal::Loss);
    assert_eq!(f[0].healthy_alternatives, v(&["onprem", "us-west-1"]));
    assert!(
        f[0].explanation.contains(
            "17% ± 2% of SYNs from us-east-2 to gcp targets (api, db and queue) are lost (300 of 1800 sent; 300 connects succeeded only after a SYN was sent again"
        ),
        "{}",
        f[0].explanation
    );
    assert!(
        f[0].explanation
            .ends_with("packets are lost on the us-east-2 -> gcp path, not at the targets."),
        "{}",
        f[0].explanation
    );
}

#[test]
fn a_loss_findings_rate_is_every_cell_of_what_it_names_not_the_first_to_cross() {
    // The first minute of a lossy path: one of api's three addresses has
    // had its first SYNs lost often enough to cross (12 of 45), the other
    // gcp cells not yet (2 of 45 each). The finding names api, and its
    // rate is the path's, over all five gcp cells: 20 of 225.
    let mut cells = fleet(|_, _, _| 0.0);
    let minute = NOW / crate::time::MINUTE_US;
    for c in cells.iter_mut().filter(|c| c.address.is_some()) {
        c.syn_baseline = Syns {
            sent: 3600,
            lost: 0,
            slow: 0,
        };
        let lost = match (c.src_region.as_str(), c.address.as_deref()) {
            ("us-east-2", Some("10.1.0.1:443")) => 12,
            ("us-east-2", Some(_)) if c.group == "gcp" => 2,
            _ => 0,
        };
        c.syn_recent = vec![(
            minute,
            Syns {
                sent: 45,
                lost,
                slow: lost.min(2).max(lost / 2),
            },
        )];
    }
    let f = localize_all(&cells, (minute + 1) * crate::time::MINUTE_US, 1e-3);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert_eq!(f[0].signal, Signal::Loss);
    assert_eq!(f[0].targets, v(&["api"]));
    let loss = f[0].evidence[0].loss.unwrap();
    assert_eq!((loss.lost, loss.sent), (20, 225), "{loss:?}");
    assert!(
        f[0].explanation.contains(
            "8.9% ± 4.4% of SYNs from us-east-2 to gcp targets (api) are lost (20 of 225 sent;"
        ),
        "{}",
        f[0].explanation
    );
}

#[test]
fn a_lone_path_in_a_big_fleet_needs_one_round_more() {
    // us-east-2 -> web failing hard for `rounds` rounds, among 6,000
    // healthy cells.
    let with = |rounds: i64| {
        let mut cells = fleet(|_, _, _| 0.0);
        let template = cells[0].clone();
        for i in 0..6_000 {
            let mut c = template.clone();
            c.target = format!("extra-{i}");
            c.group = format!("group-{}", i % 7);
            cells.push(c);
        }
        for c in cells
            .iter_mut()
            .filter(|c| c.src_region == "us-east-2" && c.target == "web")
        {
            c.failures = (0..rounds)
                .map(|r| (NOW - r * S, "timeout".to_string()))
                .collect();
        }
        localize_all(&cells, NOW, 1e-3)
    };
    assert!(
        with(2).is_empty(),
        "two rounds of one path among thousands of cells"
    );
    let f = with(3);
    assert_eq!(scopes(&f), [(Scope::Path, v(&["us-east-2"]), v(&["web"]))]);
}

/// A loss finding near its bound: entering takes more than it shows now,
/// keeping it does not. What an open incident holds decides.
#[test]
fn a_held_finding_stays_at_the_looser_bound_and_a_new_one_needs_the_strict_one() {
    let with = |lost: [u64; 5]| {
        let mut cells = fleet(|_, _, _| 0.0);
        for c in cells.iter_mut().filter(|c| c.address.is_some()) {
            c.syn_baseline = Syns {
                sent: 3600,
                lost: 0,
                slow: 0,
            };
            let lossy = c.src_region == "us-east-2" && c.group == "gcp";
            c.syn_recent = (0..5)
                .map(|m| {
                    let l = if lossy { lost[m as usize] } else { 0 };
                    (
                        NOW / crate::time::MINUTE_US - 4 + m,
                        Syns {
                            sent: 60 + l,
                            lost: l,
                            slow: l,
                        },
                    )
                })
                .collect();
        }
        cells
    };
    let strong = localize_all(&with([6, 6, 6, 6, 6]), NOW, 1e-3);
    assert_eq!(strong.len(), 1, "{strong:#?}");
    let weak = with([1, 0, 2, 0, 1]);
    assert!(
        localize_all(&weak, NOW, 1e-3).is_empty(),
        "not enough to enter"
    );
    let held = Held::of(&strong);
    let kept = localize(&weak, &[], NOW, 1e-3, &held);
    assert_eq!(
        scopes(&kept),
        [(Scope::Path, v(&["us-east-2"]), v(&["api", "db", "queue"]))]
    );
    assert_eq!(kept[0].signal, Signal::Loss);
    // Held for another signal, or clean now: gone.
    let other = Held::of(&[Finding {
        signal: Signal::Latency,
        ..strong[0].clone()
    }]);
    assert!(localize(&weak, &[], NOW, 1e-3, &other).is_empty());
    assert!(localize(&with([0; 5]), &[], NOW, 1e-3, &held).is_empty());
}
