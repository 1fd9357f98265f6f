//! One visit's clock. Every step is timed from when it was *due*, not from when the generator
//! got round to sending it: the first step from the visit's scheduled arrival, each later one
//! from the end of the previous step plus the think time. A visit that starts late (the
//! generator's own runtime busy, or arrivals bunching up) therefore reports the wait as
//! latency instead of hiding it, which is what correcting for coordinated omission means for
//! an open-loop generator.

use std::future::Future;
use std::time::Duration;

use rand::SeedableRng as _;
use rand::rngs::SmallRng;
use tokio::time::Instant;

use crate::failure::{CallError, Failure};
use crate::shop::Call;
use crate::stats::Stats;
use crate::step::Step;

/// One visit in progress.
pub struct Session<'a, S> {
    /// The shop.
    pub shop: &'a S,
    stats: &'a Stats,
    /// When the visit was due.
    arrival: Instant,
    /// When the next step is due.
    due: Instant,
    think: Duration,
    thought: Duration,
    timeout: Duration,
    /// This visit's random choices (seeded per visit, so a seed repeats a run's choices).
    pub rng: SmallRng,
}

impl<'a, S> Session<'a, S> {
    /// A visit due at `arrival`, recording into `stats`; `think` is the pause before every
    /// step after the first, `timeout` bounds each call.
    pub fn new(
        shop: &'a S,
        stats: &'a Stats,
        arrival: Instant,
        think: Duration,
        timeout: Duration,
        seed: u64,
    ) -> Self {
        Self {
            shop,
            stats,
            arrival,
            due: arrival,
            think,
            thought: Duration::ZERO,
            timeout,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// Runs one call of `step` within the call timeout and records it.
    pub async fn step<T>(&mut self, step: Step, call: impl Future<Output = Call<T>>) -> Call<T> {
        let timeout = self.timeout;
        self.step_within(step, timeout, call).await
    }

    /// Runs one call of `step` within `timeout` and records it; a failure is returned after
    /// being recorded, so the journey can end the visit with `?`.
    pub async fn step_within<T>(
        &mut self,
        step: Step,
        timeout: Duration,
        call: impl Future<Output = Call<T>>,
    ) -> Call<T> {
        if self.due > Instant::now() {
            tokio::time::sleep_until(self.due).await;
        }
        let due = self.due;
        // The timeout runs from sending, not from the due time: a visit that starts late is
        // measured as late, but its calls still get their full time to answer.
        let result = match tokio::time::timeout(timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(CallError::new(
                Failure::Timeout,
                format!("no answer within {timeout:?}"),
            )),
        };
        let end = Instant::now();
        self.stats.record(
            step,
            end.saturating_duration_since(due),
            result.as_ref().map(|_| ()),
        );
        self.due = end + self.think;
        self.thought += self.think;
        result
    }

    /// Time the visit has taken so far, from its scheduled arrival, think time excluded.
    pub fn active(&self) -> Duration {
        Instant::now()
            .saturating_duration_since(self.arrival)
            .saturating_sub(self.thought.saturating_sub(self.think))
    }

    /// The stats the visit records into.
    pub fn stats(&self) -> &'a Stats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_late_start_counts_from_when_the_visit_was_due() {
        let stats = Stats::new().unwrap();
        let due = Instant::now();
        // The generator only gets to the visit 300 ms after it was due.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut session = Session::new(&(), &stats, due, Duration::ZERO, Duration::from_secs(5), 1);
        session
            .step(Step::Product, async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(())
            })
            .await
            .unwrap();
        let product = stats.step(Step::Product);
        let recorded = product.latency.max();
        assert!((319_000..=321_000).contains(&recorded), "{recorded} µs");
    }

    #[tokio::test(start_paused = true)]
    async fn think_time_is_waited_but_not_counted() {
        let stats = Stats::new().unwrap();
        let start = Instant::now();
        let mut session = Session::new(
            &(),
            &stats,
            start,
            Duration::from_secs(2),
            Duration::from_secs(5),
            1,
        );
        for _ in 0..3 {
            session
                .step(Step::Basket, async {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    Ok(())
                })
                .await
                .unwrap();
        }
        assert_eq!(Instant::now() - start, Duration::from_millis(4030));
        let basket = stats.step(Step::Basket);
        assert_eq!(basket.calls, 3);
        assert!(basket.latency.max() < 11_000, "{}", basket.latency.max());
        assert_eq!(session.active(), Duration::from_millis(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_past_its_timeout_is_a_timeout() {
        let stats = Stats::new().unwrap();
        let mut session = Session::new(
            &(),
            &stats,
            Instant::now(),
            Duration::ZERO,
            Duration::from_secs(1),
            1,
        );
        let result: Call<()> = session
            .step(Step::Checkout, async {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(())
            })
            .await;
        assert_eq!(result.unwrap_err().failure, Failure::Timeout);
        let checkout = stats.step(Step::Checkout);
        assert_eq!(checkout.errors[0].failure, Failure::Timeout);
    }
}
