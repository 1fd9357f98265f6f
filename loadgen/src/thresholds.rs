//! Pass or fail: `--max-error-rate` and `--max-p99` turn a run into a check whose exit status
//! says whether the shop held up, and each failed threshold is named with its figures. A run
//! with thresholds that measured nothing fails too, so a broken journey cannot pass by
//! making no calls.

use std::time::Duration;

use crate::duration;
use crate::summary::Summary;

/// The limits a run must stay within.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Thresholds {
    /// Largest share of failed calls, 0 to 1.
    pub max_error_rate: Option<f64>,
    /// Largest p99 latency of any step.
    pub max_p99: Option<Duration>,
}

impl Thresholds {
    /// Whether any threshold is set.
    pub fn any(&self) -> bool {
        self.max_error_rate.is_some() || self.max_p99.is_some()
    }

    /// What failed, one sentence each; empty when the run passed.
    pub fn evaluate(&self, summary: &Summary) -> Vec<String> {
        let mut failed = Vec::new();
        if !self.any() {
            return failed;
        }
        if summary.requests.calls == 0 {
            failed.push("no call was made, so nothing was measured".to_owned());
            return failed;
        }
        if summary.checkouts.expected && summary.checkouts.attempted == 0 {
            failed.push(format!(
                "no checkout was attempted although the mix has checkouts ({} visits found nothing in stock)",
                summary.checkouts.nothing_in_stock
            ));
        }
        if let Some(max) = self.max_error_rate
            && summary.requests.error_rate > max
        {
            failed.push(format!(
                "error rate {:.3}% ({} of {} calls) is above --max-error-rate {}",
                summary.requests.error_rate * 100.0,
                summary.requests.errors,
                summary.requests.calls,
                max
            ));
        }
        if let Some(max) = self.max_p99 {
            let max_ms = max.as_secs_f64() * 1000.0;
            for step in &summary.steps {
                if let Some(latency) = &step.latency
                    && latency.p99_ms > max_ms
                {
                    failed.push(format!(
                        "p99 of {} is {}, above --max-p99 {}",
                        step.name,
                        duration::latency(Duration::from_secs_f64(latency.p99_ms / 1000.0)),
                        duration::display(max)
                    ));
                }
            }
        }
        failed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::summary::tests::sample;

    #[test]
    fn no_thresholds_always_pass() {
        let summary = sample(1000, 50, 800.0);
        assert!(Thresholds::default().evaluate(&summary).is_empty());
    }

    #[test]
    fn an_error_rate_above_the_limit_fails_and_says_by_how_much() {
        let summary = sample(1000, 5, 20.0);
        let strict = Thresholds {
            max_error_rate: Some(0.0),
            max_p99: None,
        };
        let failed = strict.evaluate(&summary);
        assert_eq!(failed.len(), 1);
        assert!(
            failed[0].contains("0.500% (5 of 1000 calls)"),
            "{}",
            failed[0]
        );
        assert!(failed[0].contains("--max-error-rate 0"), "{}", failed[0]);
        let tolerant = Thresholds {
            max_error_rate: Some(0.01),
            max_p99: None,
        };
        assert!(tolerant.evaluate(&summary).is_empty());
    }

    #[test]
    fn a_p99_above_the_limit_names_the_step() {
        let summary = sample(1000, 0, 320.0);
        let thresholds = Thresholds {
            max_error_rate: None,
            max_p99: Some(Duration::from_millis(250)),
        };
        let failed = thresholds.evaluate(&summary);
        assert_eq!(failed, ["p99 of checkout is 320ms, above --max-p99 250ms"]);
        let loose = Thresholds {
            max_error_rate: None,
            max_p99: Some(Duration::from_secs(1)),
        };
        assert!(loose.evaluate(&summary).is_empty());
    }

    #[test]
    fn a_run_that_measured_nothing_fails_its_thresholds() {
        let thresholds = Thresholds {
            max_error_rate: Some(0.0),
            max_p99: None,
        };
        let empty = sample(0, 0, 0.0);
        assert_eq!(
            thresholds.evaluate(&empty),
            ["no call was made, so nothing was measured"]
        );
        let mut no_checkout = sample(100, 0, 10.0);
        no_checkout.checkouts.attempted = 0;
        no_checkout.checkouts.nothing_in_stock = 7;
        let failed = thresholds.evaluate(&no_checkout);
        assert!(
            failed[0].contains("7 visits found nothing in stock"),
            "{failed:?}"
        );
    }
}
