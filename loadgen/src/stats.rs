//! What the run measured, recorded as it happens: per step a latency histogram (HDR, µs, 3
//! significant figures) of the calls that succeeded and a count of those that failed by
//! class; per journey the time a whole visit took; the checkout outcomes; and a window
//! that the progress line reads and empties.
//!
//! Recording takes two uncontended locks (the step's and the window's) and allocates
//! nothing after a step's first error of a class: the histograms are sized once up front.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::failure::{CallError, Failure};
use crate::mix::Journey;
use crate::step::Step;

/// Longest latency a histogram holds exactly (5 minutes); longer ones count as this.
const MAX_MICROS: u64 = 300_000_000;
/// Longest error message kept as an example.
const MAX_EXAMPLE: usize = 300;

/// A histogram for latencies in µs.
pub fn histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3)
}

fn micros(latency: Duration) -> u64 {
    u64::try_from(latency.as_micros())
        .unwrap_or(u64::MAX)
        .clamp(1, MAX_MICROS)
}

/// A recorder's lock, whether or not another thread panicked holding it: the counts stay
/// usable, and a summary with them beats none.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Failed calls of one class at one step.
#[derive(Debug, Clone)]
pub struct ErrorCount {
    /// The class.
    pub failure: Failure,
    /// How many.
    pub count: u64,
    /// The message of the first one.
    pub example: String,
}

/// One step's record.
#[derive(Debug, Clone)]
pub struct StepRecord {
    /// Latencies of the calls that succeeded, µs.
    pub latency: Histogram<u64>,
    /// Calls made, failed or not.
    pub calls: u64,
    /// Failed calls by class, in order of first appearance.
    pub errors: Vec<ErrorCount>,
}

impl StepRecord {
    /// Calls that failed.
    pub fn failed(&self) -> u64 {
        self.errors.iter().map(|e| e.count).sum()
    }
}

/// One journey's record.
#[derive(Debug, Clone)]
pub struct JourneyRecord {
    /// Visits that ran to the end, µs from their scheduled start, think time excluded.
    pub latency: Histogram<u64>,
    /// Visits started.
    pub visits: u64,
    /// Visits that ended at a failed call.
    pub failed: u64,
}

/// How the checkouts ended.
#[derive(Debug, Default)]
pub struct Outcomes {
    /// Orders confirmed (paid with the good card).
    pub confirmed: AtomicU64,
    /// Orders cancelled because the declining card was refused: what was asked for.
    pub declined: AtomicU64,
    /// Visits that found nothing in stock to buy, so never checked out.
    pub nothing_in_stock: AtomicU64,
    /// Visits the generator dropped because too many were in flight.
    pub dropped: AtomicU64,
    /// Open-loop visits that found every shopper busy and sign-ups at their limit, and
    /// waited for a shopper to come back (the wait counts in their first step).
    pub waited_for_shopper: AtomicU64,
    /// Visits still running when the run ended and the drain time was up.
    pub unfinished: AtomicU64,
    /// Orders the admin shipped.
    pub shipped: AtomicU64,
    /// Units of stock the admin added.
    pub restocked: AtomicU64,
}

impl Outcomes {
    /// Reads a counter.
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// What happened since the progress line last looked.
#[derive(Debug)]
pub struct Window {
    /// Calls made.
    pub calls: u64,
    /// Calls failed.
    pub errors: u64,
    /// Checkout calls made.
    pub checkouts: u64,
    /// Latency of every successful call.
    pub all: Histogram<u64>,
    /// Latency of successful checkout calls.
    pub checkout: Histogram<u64>,
}

impl Window {
    fn new() -> Result<Self, hdrhistogram::CreationError> {
        Ok(Self {
            calls: 0,
            errors: 0,
            checkouts: 0,
            all: histogram()?,
            checkout: histogram()?,
        })
    }

    fn reset(&mut self) {
        self.calls = 0;
        self.errors = 0;
        self.checkouts = 0;
        self.all.reset();
        self.checkout.reset();
    }
}

/// The window, and the run's totals beside it (one lock for both).
#[derive(Debug)]
struct Live {
    window: Window,
    calls: u64,
    errors: u64,
}

impl Live {
    fn count(&mut self, failed: bool) {
        self.calls += 1;
        self.errors += u64::from(failed);
        self.window.calls += 1;
        self.window.errors += u64::from(failed);
    }
}

/// Everything the run records.
#[derive(Debug)]
pub struct Stats {
    steps: Vec<Mutex<StepRecord>>,
    journeys: Vec<Mutex<JourneyRecord>>,
    live: Mutex<Live>,
    /// Checkout outcomes and the admin's work.
    pub outcomes: Outcomes,
}

impl Stats {
    /// Empty records, histograms allocated.
    pub fn new() -> Result<Self, hdrhistogram::CreationError> {
        let steps = Step::ALL
            .iter()
            .map(|_| {
                Ok(Mutex::new(StepRecord {
                    latency: histogram()?,
                    calls: 0,
                    errors: Vec::new(),
                }))
            })
            .collect::<Result<_, hdrhistogram::CreationError>>()?;
        let journeys = Journey::ALL
            .iter()
            .map(|_| {
                Ok(Mutex::new(JourneyRecord {
                    latency: histogram()?,
                    visits: 0,
                    failed: 0,
                }))
            })
            .collect::<Result<_, hdrhistogram::CreationError>>()?;
        Ok(Self {
            steps,
            journeys,
            live: Mutex::new(Live {
                window: Window::new()?,
                calls: 0,
                errors: 0,
            }),
            outcomes: Outcomes::default(),
        })
    }

    /// One call of `step` that took `latency` from its intended start.
    pub fn record(&self, step: Step, latency: Duration, result: Result<(), &CallError>) {
        let us = micros(latency);
        {
            let mut record = lock(&self.steps[step.index()]);
            record.calls += 1;
            match result {
                Ok(()) => record.latency.saturating_record(us),
                Err(error) => match record
                    .errors
                    .iter_mut()
                    .find(|e| e.failure == error.failure)
                {
                    Some(existing) => existing.count += 1,
                    None => record.errors.push(ErrorCount {
                        failure: error.failure,
                        count: 1,
                        example: error.detail.chars().take(MAX_EXAMPLE).collect(),
                    }),
                },
            }
        }
        let mut live = lock(&self.live);
        live.count(result.is_err());
        let window = &mut live.window;
        if step == Step::Checkout {
            window.checkouts += 1;
        }
        if result.is_ok() {
            window.all.saturating_record(us);
            if step == Step::Checkout {
                window.checkout.saturating_record(us);
            }
        }
    }

    /// A visit of `journey` dropped before it began (counts as a failed visit and a failed
    /// call, so error thresholds see it).
    pub fn dropped(&self, journey: Journey) {
        Outcomes::add(&self.outcomes.dropped, 1);
        let mut record = lock(&self.journeys[journey.index()]);
        record.visits += 1;
        record.failed += 1;
        drop(record);
        lock(&self.live).count(true);
    }

    /// A visit of `journey` that ended; `latency` when it ran to the end.
    pub fn visit(&self, journey: Journey, latency: Option<Duration>) {
        let mut record = lock(&self.journeys[journey.index()]);
        record.visits += 1;
        match latency {
            Some(latency) => record.latency.saturating_record(micros(latency)),
            None => record.failed += 1,
        }
    }

    /// Calls made and calls failed so far (dropped visits count as failed calls).
    pub fn totals(&self) -> (u64, u64) {
        let live = lock(&self.live);
        (live.calls, live.errors)
    }

    /// The window since the last look, which starts a new one.
    pub fn take_window(&self, into: &mut Window) {
        let mut live = lock(&self.live);
        let window = &mut live.window;
        into.calls = window.calls;
        into.errors = window.errors;
        into.checkouts = window.checkouts;
        into.all.reset();
        into.checkout.reset();
        // Same bounds on both sides: adding cannot fail.
        let _ = into.all.add(&window.all);
        let _ = into.checkout.add(&window.checkout);
        window.reset();
    }

    /// An empty window to read into.
    pub fn window() -> Result<Window, hdrhistogram::CreationError> {
        Window::new()
    }

    /// A copy of one step's record.
    pub fn step(&self, step: Step) -> StepRecord {
        lock(&self.steps[step.index()]).clone()
    }

    /// A copy of one journey's record.
    pub fn journey(&self, journey: Journey) -> JourneyRecord {
        lock(&self.journeys[journey.index()]).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_counted_per_step_and_errors_per_class_with_one_example() {
        let stats = Stats::new().unwrap();
        let unavailable = CallError::new(Failure::Grpc(tonic::Code::Unavailable), "catalog down");
        stats.record(Step::Product, Duration::from_millis(4), Ok(()));
        stats.record(Step::Product, Duration::from_millis(6), Ok(()));
        stats.record(Step::Product, Duration::from_millis(1), Err(&unavailable));
        let later = CallError::new(Failure::Grpc(tonic::Code::Unavailable), "still down");
        stats.record(Step::Product, Duration::from_millis(1), Err(&later));
        stats.record(
            Step::Product,
            Duration::from_secs(10),
            Err(&CallError::new(Failure::Timeout, "")),
        );

        let product = stats.step(Step::Product);
        assert_eq!(product.calls, 5);
        assert_eq!(product.failed(), 3);
        assert_eq!(product.latency.len(), 2, "only successes have a latency");
        assert_eq!(product.errors.len(), 2);
        assert_eq!(product.errors[0].count, 2);
        assert_eq!(product.errors[0].example, "catalog down");
        assert_eq!(product.errors[1].failure, Failure::Timeout);
        assert_eq!(stats.step(Step::Search).calls, 0);
        assert_eq!(stats.totals(), (5, 3));
    }

    #[test]
    fn the_window_holds_what_happened_since_the_last_look() {
        let stats = Stats::new().unwrap();
        let mut window = Stats::window().unwrap();
        stats.record(Step::Checkout, Duration::from_millis(20), Ok(()));
        stats.record(Step::Basket, Duration::from_millis(2), Ok(()));
        stats.dropped(Journey::Checkout);
        stats.take_window(&mut window);
        assert_eq!((window.calls, window.errors, window.checkouts), (3, 1, 1));
        assert_eq!(window.all.len(), 2);
        assert_eq!(window.checkout.len(), 1);
        let p = window.checkout.value_at_quantile(0.5);
        assert!((19_900..=20_100).contains(&p), "{p}");

        stats.take_window(&mut window);
        assert_eq!((window.calls, window.errors, window.checkouts), (0, 0, 0));
        assert!(window.all.is_empty());
        assert_eq!(stats.totals(), (3, 1));
        assert_eq!(Outcomes::get(&stats.outcomes.dropped), 1);
        let journey = stats.journey(Journey::Checkout);
        assert_eq!((journey.visits, journey.failed), (1, 1));
    }

    #[test]
    fn latencies_beyond_the_histogram_count_as_its_maximum() {
        let stats = Stats::new().unwrap();
        stats.record(Step::WatchOrder, Duration::from_secs(3600), Ok(()));
        stats.record(Step::WatchOrder, Duration::ZERO, Ok(()));
        let watch = stats.step(Step::WatchOrder);
        assert_eq!(watch.latency.len(), 2);
        assert!(watch.latency.max() >= MAX_MICROS - MAX_MICROS / 1000);
        assert_eq!(watch.latency.min(), 1);
    }
}
