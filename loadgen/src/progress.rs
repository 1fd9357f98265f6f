//! The live progress line on stderr: checkout rate, call rate, errors, p50/p99 of the last
//! interval. On a terminal it is rewritten in place every second; elsewhere (a log, CI, a
//! pod) a plain line is printed every few seconds instead, so logs stay readable.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use crate::duration;
use crate::run::until_stopped;
use crate::stats::{Stats, Window};

/// Where and how often the progress line goes.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Whether stderr is a terminal (rewrite in place).
    pub terminal: bool,
    /// Interval.
    pub every: Duration,
}

impl Progress {
    /// Every `every`, or by default each second on a terminal and every 5 s elsewhere.
    pub fn new(every: Option<Duration>) -> Self {
        let terminal = std::io::stderr().is_terminal();
        let default = if terminal {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        Self {
            terminal,
            every: every.unwrap_or(default),
        }
    }

    /// Prints the line until `stop` says the run is over, then clears it (on a terminal).
    pub async fn run(
        self,
        stats: Arc<Stats>,
        in_flight: Arc<AtomicU64>,
        start: Instant,
        mut stop: watch::Receiver<bool>,
    ) {
        let Ok(mut window) = Stats::window() else {
            return;
        };
        let mut ticks = tokio::time::interval_at(start + self.every, self.every);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = start;
        loop {
            tokio::select! {
                now = ticks.tick() => {
                    let seconds = now.saturating_duration_since(last).as_secs_f64();
                    last = now;
                    stats.take_window(&mut window);
                    let line = line(
                        now.saturating_duration_since(start),
                        seconds,
                        &window,
                        stats.totals(),
                        in_flight.load(Ordering::Relaxed),
                    );
                    self.print(&line);
                }
                () = until_stopped(&mut stop) => break,
            }
        }
        if self.terminal {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }

    fn print(&self, line: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            write!(err, "\r\x1b[2K{line}")
        } else {
            writeln!(err, "{line}")
        };
        let _ = err.flush();
    }
}

/// One progress line: `elapsed`, then the window's rates over `seconds`.
pub fn line(
    elapsed: Duration,
    seconds: f64,
    window: &Window,
    (calls, errors): (u64, u64),
    in_flight: u64,
) -> String {
    let rate = |n: u64| {
        if seconds > 0.0 {
            n as f64 / seconds
        } else {
            0.0
        }
    };
    let quantile = |h: &hdrhistogram::Histogram<u64>, q: f64| {
        if h.is_empty() {
            "-".to_owned()
        } else {
            duration::latency(Duration::from_micros(h.value_at_quantile(q)))
        }
    };
    let share = if calls == 0 {
        0.0
    } else {
        errors as f64 * 100.0 / calls as f64
    };
    format!(
        "{:>6}  {:.1} checkouts/s  {:.0} calls/s  errors {} ({share:.2}%)  p50 {} p99 {}  checkout p50 {} p99 {}  in flight {}",
        duration::display(Duration::from_secs(elapsed.as_secs())),
        rate(window.checkouts),
        rate(window.calls),
        errors,
        quantile(&window.all, 0.5),
        quantile(&window.all, 0.99),
        quantile(&window.checkout, 0.5),
        quantile(&window.checkout, 0.99),
        in_flight
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Step;

    #[test]
    fn the_line_shows_rates_errors_and_percentiles_of_the_window() {
        let stats = Stats::new().unwrap();
        for _ in 0..20 {
            stats.record(Step::Checkout, Duration::from_millis(40), Ok(()));
            stats.record(Step::Basket, Duration::from_millis(2), Ok(()));
        }
        let mut window = Stats::window().unwrap();
        stats.take_window(&mut window);
        let text = line(Duration::from_secs(12), 2.0, &window, stats.totals(), 3);
        assert!(text.contains("10.0 checkouts/s"), "{text}");
        assert!(text.contains("20 calls/s"), "{text}");
        assert!(text.contains("errors 0 (0.00%)"), "{text}");
        assert!(text.contains("checkout p50 40.0ms"), "{text}");
        assert!(text.contains("in flight 3"), "{text}");
        assert!(text.trim_start().starts_with("12s"), "{text}");

        stats.take_window(&mut window);
        let idle = line(Duration::from_secs(13), 1.0, &window, stats.totals(), 0);
        assert!(idle.contains("p50 - p99 -"), "{idle}");
    }
}
