//! The time-to-accept chart, as a hand-written SVG: the simulated cumulative share of jobs accepted
//! (log time axis, 5 s to 4 h) with the published figures marked on it.

use super::report::Report;
use std::fmt::Write as _;

const W: f64 = 760.0;
const H: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 56.0;
const BOTTOM: f64 = 62.0;
const T_MIN: f64 = 5.0;
const T_MAX: f64 = 4.0 * 3600.0;

fn x(t: f64) -> f64 {
    let t = t.clamp(T_MIN, T_MAX);
    LEFT + (t.ln() - T_MIN.ln()) / (T_MAX.ln() - T_MIN.ln()) * (W - LEFT - RIGHT)
}

fn y(share: f64) -> f64 {
    TOP + (1.0 - share.clamp(0.0, 1.0)) * (H - TOP - BOTTOM)
}

/// The chart of `report`'s time to accept.
pub fn time_to_accept_svg(report: &Report) -> String {
    let t = &report.time_to_accept;
    let n = t.considered.max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="Helvetica, Arial, sans-serif" font-size="12">"##
    );
    let _ = writeln!(s, r##"<rect width="{W}" height="{H}" fill="#ffffff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="24" font-size="16" font-weight="bold">Time to accept: simulation vs published figures</text>"##
    );
    let _ = writeln!(
        s,
        r##"<text x="{LEFT}" y="42" fill="#555">{} jobs ({} accepted, {} never), {} Friends, seed {} — share of jobs accepted within a time</text>"##,
        t.considered, t.accepted, t.never_accepted, report.setup.friends, report.seed
    );
    // Grid and axes.
    for i in 0..=5 {
        let share = f64::from(i) / 5.0;
        let yy = y(share);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#555">{:.0} %</text>"##,
            W - RIGHT,
            LEFT - 8.0,
            yy + 4.0,
            share * 100.0
        );
    }
    for (secs, label) in [
        (10.0, "10 s"),
        (30.0, "30 s"),
        (60.0, "1 min"),
        (300.0, "5 min"),
        (600.0, "10 min"),
        (1800.0, "30 min"),
        (3600.0, "1 h"),
        (10_800.0, "3 h"),
    ] {
        let xx = x(secs);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#efefef"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle" fill="#555">{label}</text>"##,
            H - BOTTOM,
            H - BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#333"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}" stroke="#333"/>"##,
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#333">time from booking to the winning accept (log scale)</text>"##,
        (LEFT + W - RIGHT) / 2.0,
        H - 18.0
    );
    // The simulated cumulative share, sampled at 300 log-spaced points.
    let mut points = Vec::with_capacity(301);
    let mut k = 0usize;
    for i in 0..=300 {
        let tt = T_MIN * (T_MAX / T_MIN).powf(f64::from(i) / 300.0);
        while k < t.samples_secs.len() && (t.samples_secs[k] as f64) <= tt {
            k += 1;
        }
        points.push(format!("{:.1},{:.1}", x(tt), y(k as f64 / n)));
    }
    let _ = writeln!(
        s,
        r##"<polyline fill="none" stroke="#1f6feb" stroke-width="2.5" points="{}"/>"##,
        points.join(" ")
    );
    // The published figures.
    for b in &t.buckets {
        let (xx, yy) = (x(b.secs as f64), y(b.published));
        let _ = writeln!(
            s,
            r##"<circle cx="{xx:.1}" cy="{yy:.1}" r="6" fill="#ffffff" stroke="#d1242f" stroke-width="2.5"/><text x="{:.1}" y="{:.1}" fill="#d1242f" text-anchor="end">{} within {}</text>"##,
            xx - 9.0,
            yy - 9.0,
            b.published_text,
            b.within
        );
        let ys = y(b.simulated);
        let _ = writeln!(
            s,
            r##"<circle cx="{xx:.1}" cy="{ys:.1}" r="3.5" fill="#1f6feb"/><text x="{:.1}" y="{:.1}" fill="#1f6feb">{:.1} %</text>"##,
            xx + 7.0,
            ys + 15.0,
            b.simulated * 100.0
        );
    }
    // Legend.
    let lx = W - RIGHT - 210.0;
    let ly = H - BOTTOM - 48.0;
    let _ = writeln!(
        s,
        r##"<rect x="{:.1}" y="{:.1}" width="205" height="42" fill="#ffffff" stroke="#ddd"/><line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#1f6feb" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">simulated (this run)</text><circle cx="{:.1}" cy="{:.1}" r="5" fill="#ffffff" stroke="#d1242f" stroke-width="2.5"/><text x="{:.1}" y="{:.1}">published (platform figures)</text>"##,
        lx,
        ly,
        lx + 8.0,
        ly + 13.0,
        lx + 30.0,
        ly + 13.0,
        lx + 38.0,
        ly + 17.0,
        lx + 19.0,
        ly + 30.0,
        lx + 38.0,
        ly + 34.0
    );
    s.push_str("</svg>\n");
    s
}
