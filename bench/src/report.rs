//! One benchmark result row and the BENCHMARKS.md writer.

/// A measured figure with its baseline and target.
#[derive(Debug, Clone)]
pub struct Row {
    /// SPEC §9 id (P1…P10, or "mem").
    pub id: String,
    /// What was measured.
    pub what: String,
    /// The figure, formatted with its unit.
    pub figure: String,
    /// The baseline measured in the same run, if any.
    pub baseline: String,
    /// figure / baseline, if both are comparable.
    pub ratio: Option<f64>,
    /// The target, in words.
    pub target: String,
    /// Whether the target is met.
    pub met: bool,
}

impl Row {
    /// A figure compared with a baseline: met when figure ≤ `max_ratio` × baseline.
    pub fn ratio(id: &str, what: &str, figure_ms: f64, baseline_ms: f64, max_ratio: f64) -> Row {
        let ratio = if baseline_ms > 0.0 {
            figure_ms / baseline_ms
        } else {
            f64::INFINITY
        };
        Row {
            id: id.into(),
            what: what.into(),
            figure: format!("{figure_ms:.3} ms"),
            baseline: format!("{baseline_ms:.3} ms"),
            ratio: Some(ratio),
            target: format!("≤ {max_ratio}× baseline"),
            met: ratio <= max_ratio,
        }
    }

    /// A figure against an absolute bound: met when value ≤ `max`.
    pub fn absolute(id: &str, what: &str, value: f64, unit: &str, max: f64) -> Row {
        Row {
            id: id.into(),
            what: what.into(),
            figure: format!("{value:.3} {unit}"),
            baseline: "–".into(),
            ratio: None,
            target: format!("≤ {max} {unit}"),
            met: value <= max,
        }
    }

    /// A figure against a lower bound: met when value ≥ `min`.
    pub fn at_least(id: &str, what: &str, value: f64, unit: &str, min: f64) -> Row {
        Row {
            id: id.into(),
            what: what.into(),
            figure: format!("{value:.0} {unit}"),
            baseline: "–".into(),
            ratio: None,
            target: format!("≥ {min} {unit}"),
            met: value >= min,
        }
    }

    /// A figure that must equal `want`.
    pub fn exact(id: &str, what: &str, value: u64, want: u64) -> Row {
        Row {
            id: id.into(),
            what: what.into(),
            figure: value.to_string(),
            baseline: "–".into(),
            ratio: None,
            target: format!("= {want}"),
            met: value == want,
        }
    }

    /// An informational figure without a target.
    pub fn info(id: &str, what: &str, figure: String) -> Row {
        Row {
            id: id.into(),
            what: what.into(),
            figure,
            baseline: "–".into(),
            ratio: None,
            target: "–".into(),
            met: true,
        }
    }

    /// A time in ms next to a same-run baseline it is not a multiple of, with the ratio shown for
    /// reading; met when there is no bound or value ≤ `max` ms.
    pub fn absolute_vs(
        id: &str,
        what: &str,
        value_ms: f64,
        max: Option<f64>,
        baseline_ms: f64,
        baseline: &str,
    ) -> Row {
        Row {
            id: id.into(),
            what: what.into(),
            figure: format!("{value_ms:.3} ms"),
            baseline: format!("{baseline_ms:.3} ms ({baseline})"),
            ratio: (baseline_ms > 0.0).then(|| value_ms / baseline_ms),
            target: max.map_or_else(|| "–".into(), |m| format!("≤ {m} ms")),
            met: max.is_none_or(|m| value_ms <= m),
        }
    }

    /// Names the baseline.
    pub fn baseline_name(mut self, name: &str) -> Row {
        self.baseline = format!("{} ({name})", self.baseline);
        self
    }
}

/// Renders BENCHMARKS.md.
pub fn markdown(rows: &[Row], header: &str) -> String {
    let mut out = String::from(header);
    out.push_str("\n| id | what | figure | baseline (same run) | ratio | target | met |\n|---|---|---|---|---|---|---|\n");
    for r in rows {
        let ratio = r
            .ratio
            .map(|x| format!("{x:.2}×"))
            .unwrap_or_else(|| "–".into());
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.id,
            r.what,
            r.figure,
            r.baseline,
            ratio,
            r.target,
            if r.met { "yes" } else { "**no**" }
        ));
    }
    out
}
