//! A loss rate with its uncertainty: the 95% Wilson score interval of `k`
//! lost in `n` sent. The probe's `check` and the collector's findings both
//! state lost SYNs this way ("14% ± 3%").

/// The 95% Wilson score interval of a rate seen as `k` in `n`: (low,
/// high). Unlike the normal approximation it stays inside [0, 1] and keeps
/// its coverage for small `n` and rates near 0, as lost SYNs are.
pub fn wilson(k: u64, n: u64) -> (f64, f64) {
    if n == 0 {
        return (0.0, 1.0);
    }
    const Z: f64 = 1.959_963_984_540_054;
    let (k, n) = (k.min(n) as f64, n as f64);
    let p = k / n;
    let z2 = Z * Z;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// "14% ± 3%": `k` of `n` as a percentage, and the interval's wider side,
/// with one decimal below 10%.
pub fn percent(k: u64, n: u64) -> String {
    let (low, high) = wilson(k, n);
    let rate = if n == 0 {
        0.0
    } else {
        k.min(n) as f64 / n as f64
    };
    let p = rate * 100.0;
    let spread = (rate - low).max(high - rate) * 100.0;
    let decimals = usize::from(p < 9.95);
    format!("{p:.decimals$}% ± {spread:.decimals$}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_intervals_hold_their_rate() {
        // 14 of 100: about 8.5% to 22.1% (the textbook figures).
        let (lo, hi) = wilson(14, 100);
        assert!(
            (lo - 0.0853).abs() < 5e-4 && (hi - 0.2214).abs() < 5e-4,
            "{lo} {hi}"
        );
        // None lost is not "0% for sure"; all lost is not "100% for sure".
        let (lo, hi) = wilson(0, 50);
        assert_eq!(lo, 0.0);
        assert!(hi > 0.05 && hi < 0.08, "{hi}");
        assert_eq!(wilson(50, 50).1, 1.0);
        assert_eq!(wilson(0, 0), (0.0, 1.0));
        assert_eq!(percent(14, 100), "14% ± 8%");
        assert_eq!(percent(3, 100), "3.0% ± 5.5%");
        // Coverage: of 2,000 seeded binomial draws at 15% of 120, the
        // interval holds 15% in at least 93% (nominal 95%).
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let held = (0..2_000)
            .filter(|_| {
                let k = (0..120).filter(|_| next() < 0.15).count() as u64;
                let (lo, hi) = wilson(k, 120);
                (lo..=hi).contains(&0.15)
            })
            .count();
        assert!(held >= 1_860, "{held} of 2000");
    }
}
