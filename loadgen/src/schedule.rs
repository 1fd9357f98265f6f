//! When each visit is due, for open-loop arrivals: a clock that never waits for the system
//! under test. Visit `n` is due at `Λ⁻¹(n)`, where `Λ(t)` is the number of visits the target
//! rate asks for by time `t` — a linear ramp from 0 to the full rate over the ramp-up, then
//! the full rate. Uniform arrivals take `n = 0, 1, 2, …`; Poisson arrivals take `n` as a sum
//! of exponential draws of mean 1, which is how an inhomogeneous Poisson process is sampled.
//!
//! The offsets are computed, never measured: a visit that starts late because the generator
//! or the system was busy still counts its latency from here (no coordinated omission).

use std::time::Duration;

use rand::Rng;

/// How visits are spaced.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Spacing {
    /// Evenly: one visit every 1/rate seconds (repeatable; good for smoke tests).
    Uniform,
    /// Independently, as real visitors arrive: exponential gaps of mean 1/rate.
    Poisson,
}

/// The arrival curve: a rate reached linearly over a ramp-up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Arrivals {
    /// Visits per second once ramped up; greater than 0.
    rate: f64,
    /// Seconds of linear ramp from 0.
    ramp: f64,
}

impl Arrivals {
    /// `rate` visits per second (greater than 0), reached after `ramp`.
    pub fn new(rate: f64, ramp: Duration) -> Self {
        Self {
            rate,
            ramp: ramp.as_secs_f64(),
        }
    }

    /// The time by which `n` visits are due: the inverse of
    /// `Λ(t) = rate·t²/(2·ramp)` during the ramp and `rate·ramp/2 + rate·(t − ramp)` after.
    pub fn due(&self, n: f64) -> Duration {
        let in_ramp = self.rate * self.ramp / 2.0;
        let seconds = if n < in_ramp {
            (2.0 * self.ramp * n / self.rate).sqrt()
        } else {
            self.ramp + (n - in_ramp) / self.rate
        };
        Duration::from_secs_f64(seconds.max(0.0))
    }
}

/// The offsets from the start at which visits are due, in order, without end.
#[derive(Debug)]
pub struct Schedule<R> {
    arrivals: Arrivals,
    spacing: Spacing,
    rng: R,
    /// Λ of the next visit.
    next: f64,
}

impl<R: Rng> Schedule<R> {
    /// Visits along `arrivals`, spaced by `spacing` (Poisson draws from `rng`).
    pub fn new(arrivals: Arrivals, spacing: Spacing, rng: R) -> Self {
        let mut schedule = Self {
            arrivals,
            spacing,
            rng,
            next: 0.0,
        };
        if spacing == Spacing::Poisson {
            schedule.next = schedule.exponential();
        }
        schedule
    }

    fn exponential(&mut self) -> f64 {
        // 1 - u is in (0, 1], so the logarithm is finite.
        let u: f64 = self.rng.random();
        -(1.0 - u).ln()
    }
}

impl<R: Rng> Iterator for Schedule<R> {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let due = self.arrivals.due(self.next);
        self.next += match self.spacing {
            Spacing::Uniform => 1.0,
            Spacing::Poisson => self.exponential(),
        };
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng as _;
    use rand::rngs::SmallRng;

    fn uniform(rate: f64, ramp: Duration) -> Schedule<SmallRng> {
        Schedule::new(
            Arrivals::new(rate, ramp),
            Spacing::Uniform,
            SmallRng::seed_from_u64(1),
        )
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn uniform_arrivals_without_ramp_are_evenly_spaced_from_zero() {
        let due: Vec<f64> = uniform(10.0, Duration::ZERO).take(4).map(secs).collect();
        for (got, want) in due.iter().zip([0.0, 0.1, 0.2, 0.3]) {
            assert!((got - want).abs() < 1e-9, "{due:?}");
        }
    }

    #[test]
    fn a_ramp_reaches_the_rate_with_half_the_visits_of_its_length() {
        // 10/s over a 10 s ramp: 50 visits in the ramp, then 10 a second.
        let due: Vec<f64> = uniform(10.0, Duration::from_secs(10))
            .take(200)
            .map(secs)
            .collect();
        let in_ramp = due.iter().filter(|&&t| t < 10.0).count();
        assert_eq!(in_ramp, 50);
        let first_second = due.iter().filter(|&&t| t < 1.0).count();
        assert!(
            first_second <= 1,
            "{first_second} visits in the first second"
        );
        let after = due.iter().filter(|&&t| (10.0..11.0).contains(&t)).count();
        assert_eq!(after, 10);
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "in order");
        // Gaps shrink during the ramp, then stay at 1/rate.
        assert!(due[2] - due[1] > due[40] - due[39]);
        assert!((due[150] - due[149] - 0.1).abs() < 1e-9);
    }

    #[test]
    fn poisson_arrivals_average_the_rate_with_irregular_gaps() {
        let schedule = Schedule::new(
            Arrivals::new(100.0, Duration::ZERO),
            Spacing::Poisson,
            SmallRng::seed_from_u64(7),
        );
        let due: Vec<f64> = schedule
            .take_while(|d| d.as_secs() < 100)
            .map(secs)
            .collect();
        let rate = due.len() as f64 / 100.0;
        assert!((95.0..105.0).contains(&rate), "rate {rate}");
        assert!(due.windows(2).all(|w| w[0] <= w[1]), "in order");
        let gaps: Vec<f64> = due.windows(2).map(|w| w[1] - w[0]).collect();
        let short = gaps.iter().filter(|&&g| g < 0.01 * 0.5).count() as f64 / gaps.len() as f64;
        // For exponential gaps of mean 10 ms, P(gap < 5 ms) = 1 - e^-0.5 ≈ 0.39.
        assert!((0.35..0.43).contains(&short), "share of short gaps {short}");
    }

    #[test]
    fn the_due_time_is_the_inverse_of_the_arrival_count() {
        let arrivals = Arrivals::new(20.0, Duration::from_secs(4));
        for t in [0.5_f64, 1.0, 3.9, 4.0, 10.0] {
            let count = if t < 4.0 {
                20.0 * t * t / 8.0
            } else {
                40.0 + 20.0 * (t - 4.0)
            };
            assert!((secs(arrivals.due(count)) - t).abs() < 1e-9, "t = {t}");
        }
    }
}
