//! The statistics behind a finding: is k failures in n attempts evidence
//! against a baseline rate, and what a fixed-bucket histogram says about
//! its percentiles.

/// The smallest failure rate a baseline is taken to have. A healthy path
/// with no failure in its baseline window still fails now and then; without
/// a floor, one failure against a baseline of zero would be "infinitely"
/// unlikely.
pub(crate) const BASELINE_FLOOR: f64 = 0.002;

/// P(X >= k) for X ~ Binomial(n, p): how likely `k` or more failures in `n`
/// attempts are if the path still fails at rate `p`.
pub(crate) fn binomial_tail(k: u64, n: u64, p: f64) -> f64 {
    if k == 0 {
        return 1.0;
    }
    if k > n {
        return 0.0;
    }
    if p <= 0.0 {
        return 0.0;
    }
    if p >= 1.0 {
        return 1.0;
    }
    // Sum the pmf from k upwards in log space; terms fall off quickly past
    // the mean, so stop once they no longer matter.
    let (nf, lp, lq) = (n as f64, p.ln(), (1.0 - p).ln());
    let log_pmf = |i: u64| {
        let i = i as f64;
        ln_choose(nf, i) + i * lp + (nf - i) * lq
    };
    let first = log_pmf(k);
    let mut sum = 0.0;
    for i in k..=n {
        let term = (log_pmf(i) - first).exp();
        sum += term;
        if (i as f64) > nf * p && term < 1e-12 * sum {
            break;
        }
    }
    (first + sum.ln()).exp().min(1.0)
}

fn ln_choose(n: f64, k: f64) -> f64 {
    ln_gamma(n + 1.0) - ln_gamma(k + 1.0) - ln_gamma(n - k + 1.0)
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9; about 15 significant digits).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        // Reflection: Γ(x)Γ(1-x) = π / sin(πx).
        return (std::f64::consts::PI / (std::f64::consts::PI * x).sin()).ln() - ln_gamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// The baseline failure rate to test against: the observed rate with one
/// failure more than was seen, so that a short baseline without failures
/// is not taken for a perfect path (60 clean attempts say "below about
/// 2%", not "0%"); never below [`BASELINE_FLOOR`]. A path with no baseline
/// at all (a new probe or target) is assumed healthy, at the floor, so
/// that it can show a fault from its first rounds.
pub(crate) fn baseline_rate(failures: u64, attempts: u64) -> f64 {
    if attempts == 0 {
        return BASELINE_FLOOR;
    }
    ((failures + 1) as f64 / (attempts + 1) as f64).clamp(BASELINE_FLOOR, 1.0)
}

pub(crate) use vantage_probe::loss::wilson;

/// The `q` quantile (0..=1) of a histogram with upper `bounds` and
/// non-cumulative `counts` (one more slot than bounds: above them all),
/// interpolated linearly inside the bucket, as Prometheus does. `None`
/// without observations; the last bound when the quantile is above it.
pub(crate) fn quantile(bounds: &[u64], counts: &[u64], q: f64) -> Option<f64> {
    let total: u64 = counts.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q.clamp(0.0, 1.0) * total as f64;
    let mut seen = 0u64;
    for (i, &c) in counts.iter().enumerate() {
        if c == 0 {
            continue;
        }
        if (seen + c) as f64 >= rank {
            let Some(&upper) = bounds.get(i) else {
                return bounds.last().map(|&b| b as f64);
            };
            let lower = if i == 0 { 0 } else { bounds[i - 1] };
            let into = (rank - seen as f64) / c as f64;
            return Some(lower as f64 + (upper - lower) as f64 * into);
        }
        seen += c;
    }
    bounds.last().map(|&b| b as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9_f64.max(b.abs() * 1e-6)
    }

    #[test]
    fn binomial_tail_matches_exact_sums() {
        // P(X >= 1 | 3, 0.002) = 1 - 0.998^3.
        assert!(close(binomial_tail(1, 3, 0.002), 1.0 - 0.998f64.powi(3)));
        // P(X >= 2 | 2, 0.5) = 0.25; P(X >= 0) = 1.
        assert!(close(binomial_tail(2, 2, 0.5), 0.25));
        assert_eq!(binomial_tail(0, 10, 0.1), 1.0);
        // P(X >= 3 | 10, 0.1) = 1 - sum_{i<3}.
        let below: f64 = (0..3)
            .map(|i| {
                let c = [1.0, 10.0, 45.0][i as usize];
                c * 0.1f64.powi(i) * 0.9f64.powi(10 - i)
            })
            .sum();
        assert!(close(binomial_tail(3, 10, 0.1), 1.0 - below));
        assert_eq!(binomial_tail(4, 3, 0.1), 0.0);
    }

    #[test]
    fn one_in_three_is_not_evidence_forty_in_two_thousand_is() {
        let p0 = baseline_rate(0, 3600);
        assert!(binomial_tail(1, 3, p0) > 1e-3);
        assert!(binomial_tail(40, 2000, p0) < 1e-12);
        // A path that always failed 2% does not become news at 2%.
        let p0 = baseline_rate(72, 3600);
        assert!(binomial_tail(40, 2000, p0) > 0.3);
        // A short clean baseline is not a perfect one: 2 failures in 6
        // attempts against 60 clean ones is not evidence.
        assert!(binomial_tail(2, 6, baseline_rate(0, 60)) > 1e-3);
        assert_eq!(baseline_rate(0, 3600), BASELINE_FLOOR);
    }

    #[test]
    fn quantiles_interpolate_inside_buckets() {
        let bounds = [1_000, 2_000, 4_000];
        // 10 in (0, 1000], 10 in (1000, 2000].
        let counts = [10, 10, 0, 0];
        assert_eq!(quantile(&bounds, &counts, 0.5), Some(1_000.0));
        assert_eq!(quantile(&bounds, &counts, 0.75), Some(1_500.0));
        assert_eq!(quantile(&bounds, &[0, 0, 0, 5], 0.5), Some(4_000.0));
        assert_eq!(quantile(&bounds, &[0, 0, 0, 0], 0.5), None);
    }
}
