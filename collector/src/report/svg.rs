//! The report's chart: per region, the failure rate per minute (red bars)
//! and the connect RTT's spread (grey smoke from the 5th to the 95th
//! percentile, the median as a line), on one time axis. Every strip says
//! what it shows, so no legend is needed.

use std::fmt::Write as _;
use std::io::{self, Write};

use super::{RegionSeries, Report};
use crate::time::clock;

const WIDTH: f64 = 900.0;
const LEFT: f64 = 110.0;
const RIGHT: f64 = 64.0;
const FAIL_H: f64 = 36.0;
const RTT_H: f64 = 64.0;
const GAP: f64 = 18.0;
const TOP: f64 = 62.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Writes the chart of `r` as SVG.
pub(crate) fn render(r: &Report, out: &mut impl Write) -> io::Result<()> {
    let from = r.from.system_time();
    let span =
        r.to.system_time()
            .duration_since(from)
            .unwrap_or_default()
            .as_secs_f64()
            .max(60.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let frame = Frame {
        from,
        span,
        plot_w,
        minute_w: (60.0 / span * plot_w).max(1.0),
    };
    let rows = r.series.len().max(1) as f64;
    let height = TOP + rows * (FAIL_H + RTT_H + GAP) + 30.0;

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{LEFT}" y="18" font-size="14" font-weight="bold">{}</text>"#,
        esc(&r.title)
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="34" fill="#555">fleet {} · {} to {} UTC</text>"##,
        esc(&r.fleet),
        clock(r.from),
        clock(r.to)
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="50" fill="#555">per region and minute: <tspan fill="#c62828">failed connects (0–100%)</tspan> · <tspan fill="#333">connect RTT: median line in a 5–95% smoke, scaled per region</tspan></text>"##
    );
    for (i, series) in r.series.iter().enumerate() {
        region(
            &mut s,
            &frame,
            TOP + i as f64 * (FAIL_H + RTT_H + GAP),
            series,
        );
    }
    let axis_y = height - 12.0;
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="{axis_y}" fill="#555">{} UTC</text><text x="{}" y="{axis_y}" text-anchor="end" fill="#555">{} UTC</text>"##,
        clock(r.from),
        WIDTH - RIGHT,
        clock(r.to)
    );
    s.push_str("</svg>\n");
    out.write_all(s.as_bytes())
}

/// The time axis: where a moment falls, and how wide a minute is.
struct Frame {
    from: std::time::SystemTime,
    span: f64,
    plot_w: f64,
    minute_w: f64,
}

impl Frame {
    fn x(&self, t: std::time::SystemTime) -> f64 {
        LEFT + t
            .duration_since(self.from)
            .unwrap_or_default()
            .as_secs_f64()
            / self.span
            * self.plot_w
    }
}

/// One region's rows at `y0`: failed share per minute, then its RTT smoke.
fn region(s: &mut String, frame: &Frame, y0: f64, series: &RegionSeries) {
    let (plot_w, minute_w) = (frame.plot_w, frame.minute_w);
    let fail_base = y0 + FAIL_H;
    let rtt_top = fail_base + 4.0;
    let rtt_base = rtt_top + RTT_H;
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="end" font-weight="bold">{}</text>"#,
        LEFT - 8.0,
        y0 + FAIL_H / 2.0 + 4.0,
        esc(&series.src_region)
    );
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" text-anchor="end" fill="#c62828">failed %</text><text x="{}" y="{}" text-anchor="end" fill="#333">RTT ms</text>"##,
        LEFT - 8.0,
        y0 + FAIL_H / 2.0 + 17.0,
        LEFT - 8.0,
        rtt_top + RTT_H / 2.0 + 4.0
    );
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{FAIL_H}" fill="#fafafa" stroke="#ddd"/><rect x="{LEFT}" y="{rtt_top}" width="{plot_w}" height="{RTT_H}" fill="#fafafa" stroke="#ddd"/>"##
    );
    let rtt_max = series
        .minutes
        .iter()
        .filter_map(|m| m.rtt_ms.map(|v| v[2]))
        .fold(0.0_f64, f64::max)
        .max(0.1);
    let _ = writeln!(
        s,
        r##"<text x="{}" y="{}" fill="#c62828">100%</text><text x="{}" y="{}" fill="#333">{rtt_max} ms</text><text x="{}" y="{}" fill="#333">0</text>"##,
        WIDTH - RIGHT + 4.0,
        y0 + 10.0,
        WIDTH - RIGHT + 4.0,
        rtt_top + 10.0,
        WIDTH - RIGHT + 4.0,
        rtt_base
    );
    let y_rtt = |ms: f64| rtt_base - ms / rtt_max * RTT_H;
    let mut median = Vec::new();
    for m in &series.minutes {
        let mx = frame.x(m.minute.system_time());
        if m.attempts > 0 && m.failures > 0 {
            let share = m.failures as f64 / m.attempts as f64;
            let h = (share * FAIL_H).max(1.0);
            let _ = writeln!(
                s,
                r##"<rect x="{mx:.1}" y="{:.1}" width="{minute_w:.1}" height="{h:.1}" fill="#c62828"><title>{} UTC: {}/{} failed</title></rect>"##,
                fail_base - h,
                clock(m.minute),
                m.failures,
                m.attempts
            );
        }
        if let Some([p5, p50, p95]) = m.rtt_ms {
            let _ = writeln!(
                s,
                r##"<rect x="{mx:.1}" y="{:.1}" width="{minute_w:.1}" height="{:.1}" fill="#9e9e9e" fill-opacity="0.45"><title>{} UTC: RTT {p5} / {p50} / {p95} ms</title></rect>"##,
                y_rtt(p95),
                (y_rtt(p5) - y_rtt(p95)).max(1.0),
                clock(m.minute)
            );
            median.push(format!("{:.1},{:.1}", mx + minute_w / 2.0, y_rtt(p50)));
        }
    }
    if !median.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#212121" stroke-width="1.5"/>"##,
            median.join(" ")
        );
    }
}
