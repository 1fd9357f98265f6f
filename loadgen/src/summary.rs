//! The end-of-run summary: per step the calls, the errors by gRPC code or HTTP status and
//! p50/p90/p99/max from the HDR histogram; per journey the same for whole visits; the
//! checkout outcomes; the thresholds' verdict. One structure, printed as a table and
//! written as JSON (`--json`), so the two never disagree.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::duration;
use crate::mix::Journey;
use crate::stats::{Outcomes, Stats};
use crate::step::Step;
use crate::thresholds::Thresholds;

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    /// The percentiles of a µs histogram; `None` when it is empty.
    pub fn of(histogram: &Histogram<u64>) -> Option<Self> {
        if histogram.is_empty() {
            return None;
        }
        let ms = |micros: u64| micros as f64 / 1000.0;
        Some(Self {
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            mean_ms: (histogram.mean() / 10.0).round() / 100.0,
        })
    }
}

/// One step's figures.
#[derive(Debug, Clone, Serialize)]
pub struct StepSummary {
    /// The step.
    pub name: &'static str,
    /// The RPC it calls.
    pub rpc: &'static str,
    /// Calls made.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// Failed calls by gRPC code, HTTP status or other class.
    pub errors_by_code: BTreeMap<String, u64>,
    /// The first message of each class.
    pub error_examples: BTreeMap<String, String>,
    /// Latency of the successful calls.
    pub latency: Option<Latency>,
}

/// One journey's figures.
#[derive(Debug, Clone, Serialize)]
pub struct JourneySummary {
    /// The journey.
    pub name: &'static str,
    /// Visits started (dropped ones included).
    pub visits: u64,
    /// Visits that ended at a failed call or were dropped.
    pub failed: u64,
    /// Duration of the visits that ran to the end, think time excluded.
    pub latency: Option<Latency>,
}

/// All calls.
#[derive(Debug, Clone, Serialize)]
pub struct Requests {
    /// Calls made (dropped visits count as one failed call each).
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// errors / calls.
    pub error_rate: f64,
    /// Calls per second.
    pub per_second: f64,
}

/// The checkouts.
#[derive(Debug, Clone, Serialize)]
pub struct Checkouts {
    /// Whether the mix has checkouts.
    pub expected: bool,
    /// Checkout calls made.
    pub attempted: u64,
    /// Orders confirmed, seen settled on the read side.
    pub confirmed: u64,
    /// Orders declined with the declining card, as asked: not errors.
    pub declined: u64,
    /// Checkouts that failed: the call, the watch, or an outcome the card does not explain.
    pub failed: u64,
    /// Checkout visits that found nothing in stock and left without checking out.
    pub nothing_in_stock: u64,
    /// Checkout calls per second.
    pub per_second: f64,
}

/// Visits.
#[derive(Debug, Clone, Serialize)]
pub struct Visits {
    /// Visits started or dropped.
    pub started: u64,
    /// Dropped by the generator (too many in flight).
    pub dropped: u64,
    /// Still running when the drain time was up.
    pub unfinished: u64,
    /// Waited for a busy shopper to come back (more `--users` would avoid it).
    pub waited_for_shopper: u64,
}

/// The admin's rounds.
#[derive(Debug, Clone, Serialize)]
pub struct AdminWork {
    /// Orders shipped.
    pub shipped: u64,
    /// Units of stock added.
    pub restocked_units: u64,
}

/// The verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `--max-error-rate`.
    pub max_error_rate: Option<f64>,
    /// `--max-p99`, ms.
    pub max_p99_ms: Option<f64>,
    /// Whether every threshold held.
    pub passed: bool,
    /// What failed.
    pub failures: Vec<String>,
}

/// What was run, for the summary's header.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The gateway.
    pub target: String,
    /// The protocol.
    pub protocol: &'static str,
    /// `open-loop` or `closed-loop`.
    pub mode: &'static str,
    /// Target checkouts per second.
    pub checkout_rate: Option<f64>,
    /// Visits per second that rate needs.
    pub visit_rate: Option<f64>,
    /// Share of each journey.
    pub mix: BTreeMap<&'static str, f64>,
    /// Seconds visits kept arriving.
    pub duration_s: f64,
    /// Shoppers signed up.
    pub users: usize,
    /// Seed of the random choices.
    pub seed: u64,
}

/// The summary of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// What was run.
    pub run: Run,
    /// All calls.
    pub requests: Requests,
    /// Visits.
    pub visits: Visits,
    /// Checkouts.
    pub checkouts: Checkouts,
    /// The admin's work.
    pub admin: AdminWork,
    /// Per journey.
    pub journeys: Vec<JourneySummary>,
    /// Per step that was called.
    pub steps: Vec<StepSummary>,
    /// The thresholds' verdict.
    pub thresholds: Verdict,
}

fn per_second(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        ((count as f64 / seconds) * 100.0).round() / 100.0
    } else {
        0.0
    }
}

impl Summary {
    /// The summary of `stats` for `run`, judged by `thresholds`.
    pub fn collect(stats: &Stats, run: Run, thresholds: &Thresholds) -> Self {
        let seconds = run.duration_s;
        let (calls, errors) = stats.totals();
        let steps: Vec<StepSummary> = Step::ALL
            .iter()
            .map(|&step| (step, stats.step(step)))
            .filter(|(_, record)| record.calls > 0)
            .map(|(step, record)| StepSummary {
                name: step.name(),
                rpc: step.rpc(),
                calls: record.calls,
                errors: record.failed(),
                errors_by_code: record
                    .errors
                    .iter()
                    .map(|e| (e.failure.label(), e.count))
                    .collect(),
                error_examples: record
                    .errors
                    .iter()
                    .map(|e| (e.failure.label(), e.example.clone()))
                    .collect(),
                latency: Latency::of(&record.latency),
            })
            .collect();
        let journeys: Vec<JourneySummary> = Journey::ALL
            .iter()
            .map(|&journey| {
                let record = stats.journey(journey);
                JourneySummary {
                    name: journey.name(),
                    visits: record.visits,
                    failed: record.failed,
                    latency: Latency::of(&record.latency),
                }
            })
            .collect();
        let outcomes = &stats.outcomes;
        let attempted = stats.step(Step::Checkout).calls;
        let confirmed = Outcomes::get(&outcomes.confirmed);
        let declined = Outcomes::get(&outcomes.declined);
        let mut summary = Self {
            requests: Requests {
                calls,
                errors,
                error_rate: if calls == 0 {
                    0.0
                } else {
                    errors as f64 / calls as f64
                },
                per_second: per_second(calls, seconds),
            },
            visits: Visits {
                started: journeys.iter().map(|j| j.visits).sum(),
                dropped: Outcomes::get(&outcomes.dropped),
                unfinished: Outcomes::get(&outcomes.unfinished),
                waited_for_shopper: Outcomes::get(&outcomes.waited_for_shopper),
            },
            checkouts: Checkouts {
                expected: run.mix.get("checkout").is_some_and(|&s| s > 0.0),
                attempted,
                confirmed,
                declined,
                failed: attempted.saturating_sub(confirmed + declined),
                nothing_in_stock: Outcomes::get(&outcomes.nothing_in_stock),
                per_second: per_second(attempted, seconds),
            },
            admin: AdminWork {
                shipped: Outcomes::get(&outcomes.shipped),
                restocked_units: Outcomes::get(&outcomes.restocked),
            },
            journeys,
            steps,
            thresholds: Verdict {
                max_error_rate: thresholds.max_error_rate,
                max_p99_ms: thresholds.max_p99.map(|d| d.as_secs_f64() * 1000.0),
                passed: true,
                failures: Vec::new(),
            },
            run,
        };
        let failures = thresholds.evaluate(&summary);
        summary.thresholds.passed = failures.is_empty();
        summary.thresholds.failures = failures;
        summary
    }

    /// The summary as a table for a terminal or a log.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let run = &self.run;
        let rate = match (run.checkout_rate, run.visit_rate) {
            (Some(c), Some(v)) => format!(" at {c} checkouts/s ({v:.1} visits/s)"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "loadgen: {} to {}, {}{rate}, {:.1}s, {} shoppers, seed {}",
            run.protocol, run.target, run.mode, run.duration_s, run.users, run.seed
        );
        let mix: Vec<String> = run
            .mix
            .iter()
            .filter(|(_, share)| **share > 0.0)
            .map(|(name, share)| format!("{name} {:.0}%", share * 100.0))
            .collect();
        let _ = writeln!(out, "mix:      {}", mix.join(", "));
        let c = &self.checkouts;
        let _ = writeln!(
            out,
            "checkout: {} attempted ({}/s): {} confirmed, {} declined (declining card), {} failed; {} visits found nothing in stock",
            c.attempted, c.per_second, c.confirmed, c.declined, c.failed, c.nothing_in_stock
        );
        let v = &self.visits;
        let journeys: Vec<String> = self
            .journeys
            .iter()
            .filter(|j| j.visits > 0)
            .map(|j| format!("{} {}", j.name, j.visits))
            .collect();
        let _ = writeln!(
            out,
            "visits:   {} ({}), {} dropped, {} unfinished, {} waited for a free shopper",
            v.started,
            journeys.join(", "),
            v.dropped,
            v.unfinished,
            v.waited_for_shopper
        );
        let r = &self.requests;
        let _ = writeln!(
            out,
            "calls:    {} ({}/s), {} failed ({:.3}%)",
            r.calls,
            r.per_second,
            r.errors,
            r.error_rate * 100.0
        );
        let _ = writeln!(
            out,
            "admin:    {} orders shipped, {} units restocked",
            self.admin.shipped, self.admin.restocked_units
        );
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "step", "calls", "errors", "p50", "p90", "p99", "max"
        );
        for step in &self.steps {
            let _ = writeln!(
                out,
                "{:<15} {:>8} {:>7} {}",
                step.name,
                step.calls,
                step.errors,
                percentiles(step.latency.as_ref())
            );
        }
        out.push('\n');
        let _ = writeln!(
            out,
            "{:<15} {:>8} {:>7} {:>9} {:>9} {:>9} {:>9}",
            "journey", "visits", "failed", "p50", "p90", "p99", "max"
        );
        for journey in self.journeys.iter().filter(|j| j.visits > 0) {
            let _ = writeln!(
                out,
                "{:<15} {:>8} {:>7} {}",
                journey.name,
                journey.visits,
                journey.failed,
                percentiles(journey.latency.as_ref())
            );
        }
        let failing: Vec<&StepSummary> = self.steps.iter().filter(|s| s.errors > 0).collect();
        if !failing.is_empty() {
            out.push_str("\nerrors\n");
            for step in failing {
                for (code, count) in &step.errors_by_code {
                    let example = step
                        .error_examples
                        .get(code)
                        .filter(|e| !e.is_empty())
                        .map(|e| format!("  e.g. {e}"))
                        .unwrap_or_default();
                    let _ = writeln!(out, "  {:<15} {code:<22} {count:>6}{example}", step.name);
                }
            }
        }
        out.push('\n');
        if self.thresholds.failures.is_empty() {
            if self.thresholds.max_error_rate.is_some() || self.thresholds.max_p99_ms.is_some() {
                out.push_str("PASS: every threshold held\n");
            }
        } else {
            for failure in &self.thresholds.failures {
                let _ = writeln!(out, "FAIL: {failure}");
            }
        }
        out
    }
}

fn percentiles(latency: Option<&Latency>) -> String {
    match latency {
        None => format!("{:>9} {:>9} {:>9} {:>9}", "-", "-", "-", "-"),
        Some(l) => {
            let d = |ms: f64| duration::latency(Duration::from_secs_f64(ms / 1000.0));
            format!(
                "{:>9} {:>9} {:>9} {:>9}",
                d(l.p50_ms),
                d(l.p90_ms),
                d(l.p99_ms),
                d(l.max_ms)
            )
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::failure::{CallError, Failure};

    fn run() -> Run {
        Run {
            target: "http://127.0.0.1:8080".into(),
            protocol: "grpc",
            mode: "open-loop",
            checkout_rate: Some(10.0),
            visit_rate: Some(20.0),
            mix: BTreeMap::from([("browse", 0.5), ("checkout", 0.5), ("account", 0.0)]),
            duration_s: 10.0,
            users: 10,
            seed: 1,
        }
    }

    /// A summary of `calls` checkout calls, `errors` of them failed, the others taking
    /// `checkout_ms` at p99.
    pub(crate) fn sample(calls: u64, errors: u64, checkout_ms: f64) -> Summary {
        sample_judged(calls, errors, checkout_ms, &Thresholds::default())
    }

    /// [`sample`], judged by `thresholds`.
    pub(crate) fn sample_judged(
        calls: u64,
        errors: u64,
        checkout_ms: f64,
        thresholds: &Thresholds,
    ) -> Summary {
        let stats = Stats::new().unwrap();
        let failure = CallError::new(Failure::Grpc(tonic::Code::Unavailable), "order down");
        for i in 0..calls {
            let result = if i < errors { Err(&failure) } else { Ok(()) };
            stats.record(
                Step::Checkout,
                Duration::from_secs_f64(checkout_ms / 1000.0),
                result,
            );
        }
        Outcomes::add(&stats.outcomes.confirmed, calls - errors);
        Summary::collect(&stats, run(), thresholds)
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let stats = Stats::new().unwrap();
        for ms in 1..=100 {
            stats.record(Step::Product, Duration::from_millis(ms), Ok(()));
        }
        let summary = Summary::collect(&stats, run(), &Thresholds::default());
        let product = &summary.steps[0];
        assert_eq!(product.name, "product");
        let l = product.latency.as_ref().unwrap();
        for (got, want) in [
            (l.p50_ms, 50.0),
            (l.p90_ms, 90.0),
            (l.p99_ms, 99.0),
            (l.max_ms, 100.0),
        ] {
            assert!((got - want).abs() <= want * 0.002, "{got} vs {want}");
        }
        assert!((l.mean_ms - 50.5).abs() < 0.1, "{}", l.mean_ms);
        assert_eq!(summary.steps.len(), 1, "steps never called are left out");
    }

    #[test]
    fn declines_are_outcomes_not_failures() {
        let stats = Stats::new().unwrap();
        for _ in 0..10 {
            stats.record(Step::Checkout, Duration::from_millis(30), Ok(()));
        }
        Outcomes::add(&stats.outcomes.confirmed, 8);
        Outcomes::add(&stats.outcomes.declined, 2);
        let summary = Summary::collect(&stats, run(), &Thresholds::default());
        assert_eq!(summary.checkouts.attempted, 10);
        assert_eq!(summary.checkouts.failed, 0);
        assert_eq!(summary.checkouts.per_second, 1.0);
        assert_eq!(summary.requests.errors, 0);
    }

    #[test]
    fn the_json_has_the_documented_shape() {
        let thresholds = Thresholds {
            max_error_rate: Some(0.0),
            max_p99: Some(Duration::from_millis(100)),
        };
        let summary = sample_judged(200, 2, 40.0, &thresholds);
        let json = serde_json::to_value(&summary).unwrap();
        for key in [
            "run",
            "requests",
            "visits",
            "checkouts",
            "admin",
            "journeys",
            "steps",
            "thresholds",
        ] {
            assert!(json.get(key).is_some(), "missing {key}: {json}");
        }
        assert_eq!(json["run"]["protocol"], "grpc");
        assert_eq!(json["requests"]["calls"], 200);
        assert_eq!(json["requests"]["error_rate"], 0.01);
        assert_eq!(json["checkouts"]["confirmed"], 198);
        let checkout = &json["steps"][0];
        assert_eq!(checkout["name"], "checkout");
        assert_eq!(checkout["rpc"], "BasketService.Checkout");
        assert_eq!(checkout["errors_by_code"]["UNAVAILABLE"], 2);
        assert_eq!(checkout["error_examples"]["UNAVAILABLE"], "order down");
        for key in ["p50_ms", "p90_ms", "p99_ms", "max_ms", "mean_ms"] {
            assert!(checkout["latency"][key].is_f64(), "{key}");
        }
        assert_eq!(json["journeys"][1]["name"], "checkout");
        assert_eq!(json["thresholds"]["max_p99_ms"], 100.0);
        assert_eq!(json["thresholds"]["passed"], false);
        assert!(json["thresholds"]["failures"][0].is_string());
    }

    #[test]
    fn the_table_shows_every_called_step_and_each_error_class() {
        let summary = sample(50, 3, 25.0);
        let text = summary.render();
        assert!(text.contains("checkout: 50 attempted"), "{text}");
        assert!(text.contains("47 confirmed"), "{text}");
        let row = text
            .lines()
            .find(|l| l.starts_with("checkout ") && l.contains("ms"))
            .unwrap();
        assert!(row.contains("25.0ms"), "{row}");
        assert!(text.contains("UNAVAILABLE"), "{text}");
        assert!(text.contains("e.g. order down"), "{text}");
    }
}
