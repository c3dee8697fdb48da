//! Percentiles and the printed table.

use std::time::Duration;

/// The `p`-th percentile (0..=100, nearest rank) of `samples`; zero when empty.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn median(samples: &[Duration]) -> Duration {
    percentile(samples, 50.0)
}

/// What a row's ratio (airlock / baseline) must satisfy.
#[derive(Clone, Copy)]
pub enum Goal {
    AtMost(f64),
    AtLeast(f64),
    None,
}

pub struct Row {
    pub name: String,
    pub airlock: String,
    pub baseline: String,
    pub ratio: Option<f64>,
    /// Shown as is; `met` decides the verdict.
    pub goal: String,
    pub met: Option<bool>,
}

impl Row {
    /// A row comparing two measurements of the same unit, judged on their ratio.
    pub fn compare(name: &str, airlock: f64, baseline: f64, unit: Unit, goal: Goal) -> Row {
        let ratio = (baseline > 0.0).then(|| airlock / baseline);
        let (goal_text, met) = match goal {
            Goal::AtMost(limit) => (format!("<= {limit}x"), ratio.map(|r| r <= limit)),
            Goal::AtLeast(limit) => (format!(">= {limit}x"), ratio.map(|r| r >= limit)),
            Goal::None => ("-".into(), None),
        };
        Row {
            name: name.into(),
            airlock: unit.show(airlock),
            baseline: unit.show(baseline),
            ratio,
            goal: goal_text,
            met,
        }
    }
}

impl Row {
    /// A row judged on its own value against an absolute goal, with no baseline.
    pub fn absolute(name: &str, value: f64, unit: Unit, goal: Goal) -> Row {
        let (goal_text, met) = match goal {
            Goal::AtMost(limit) => (format!("<= {}", unit.show(limit)), Some(value <= limit)),
            Goal::AtLeast(limit) => (format!(">= {}", unit.show(limit)), Some(value >= limit)),
            Goal::None => ("-".into(), None),
        };
        Row {
            name: name.into(),
            airlock: unit.show(value),
            baseline: "-".into(),
            ratio: None,
            goal: goal_text,
            met,
        }
    }

    /// The same row judged by a goal that is neither its ratio nor its value alone.
    pub fn judged(self, goal: String, met: bool) -> Row {
        Row {
            goal,
            met: Some(met),
            ..self
        }
    }
}

/// How a number is shown.
#[derive(Clone, Copy)]
pub enum Unit {
    /// Seconds, shown in the most readable of µs/ms/s.
    Seconds,
    PerSecond,
    MiB,
}

impl Unit {
    pub fn show(self, value: f64) -> String {
        match self {
            Unit::Seconds if value < 1e-3 => format!("{:.1} µs", value * 1e6),
            Unit::Seconds if value < 1.0 => format!("{:.2} ms", value * 1e3),
            Unit::Seconds => format!("{value:.2} s"),
            Unit::PerSecond => format!("{value:.0}/s"),
            Unit::MiB => format!("{value:.1} MiB"),
        }
    }
}

pub fn print_table(rows: &[Row]) {
    let header = [
        "measurement",
        "airlock",
        "baseline",
        "ratio",
        "goal",
        "met?",
    ];
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            [
                r.name.clone(),
                r.airlock.clone(),
                r.baseline.clone(),
                r.ratio.map_or("-".into(), |x| format!("{x:.2}x")),
                r.goal.clone(),
                match r.met {
                    Some(true) => "yes".into(),
                    Some(false) => "NO".into(),
                    None => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |row: &[String]| {
        let padded: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(&header.map(String::from));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in &cells {
        line(row);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|&m| Duration::from_millis(m)).collect()
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let samples = ms(&[5, 1, 4, 2, 3, 10, 9, 8, 7, 6]);
        assert_eq!(median(&samples), Duration::from_millis(5));
        assert_eq!(percentile(&samples, 99.0), Duration::from_millis(10));
        assert_eq!(percentile(&samples, 0.0), Duration::from_millis(1));
        assert_eq!(median(&[]), Duration::ZERO);
    }

    #[test]
    fn goals_judge_the_ratio() {
        let slow = Row::compare("x", 2.0, 1.0, Unit::Seconds, Goal::AtMost(1.3));
        assert_eq!(slow.met, Some(false));
        let fast = Row::compare("x", 0.6, 1.0, Unit::PerSecond, Goal::AtLeast(0.5));
        assert_eq!(fast.met, Some(true));
        assert_eq!(
            Row::compare("x", 1.0, 0.0, Unit::MiB, Goal::None).ratio,
            None
        );
    }

    #[test]
    fn absolute_goals_judge_the_value() {
        let cpu = Row::absolute("cpu", 150e-6, Unit::Seconds, Goal::AtMost(120e-6));
        assert_eq!((cpu.goal.as_str(), cpu.met), ("<= 120.0 µs", Some(false)));
        let runs = Row::absolute("runs", 12_000.0, Unit::PerSecond, Goal::AtLeast(10_000.0));
        assert_eq!((runs.goal.as_str(), runs.met), (">= 10000/s", Some(true)));
    }

    #[test]
    fn units_pick_a_readable_scale() {
        assert_eq!(Unit::Seconds.show(0.000_25), "250.0 µs");
        assert_eq!(Unit::Seconds.show(0.012), "12.00 ms");
        assert_eq!(Unit::PerSecond.show(5321.4), "5321/s");
    }
}
