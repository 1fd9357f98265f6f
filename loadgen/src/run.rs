//! A whole run: set-up, then visits started open-loop on their own clock (or by closed-loop
//! shoppers), the admin's rounds and the progress line beside them, until the duration is
//! over or Ctrl-C / SIGTERM; then the visits in flight are given time to finish, and the
//! summary is made.
//!
//! Open loop never waits for a visit before starting the next: each is its own task, started
//! when due. If the shop slows down, visits pile up in flight (up to `--max-in-flight`,
//! beyond which new ones are dropped and counted as errors) instead of the arrival rate
//! quietly falling.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng as _, SeedableRng as _};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

use crate::config::{Load, Settings};
use crate::duration;
use crate::journeys::{self, Context, Plan, admin};
use crate::mix::{Journey, Mix};
use crate::progress::Progress;
use crate::schedule::{Arrivals, Schedule};
use crate::setup::{self, SetupError};
use crate::shop::Shop;
use crate::stats::{Outcomes, Stats};
use crate::summary::{Run, Summary};
use crate::users::{Account, Users};

/// The run could not happen.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Set-up failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The recorder could not be built.
    #[error("cannot allocate the recorder: {0}")]
    Recorder(#[from] hdrhistogram::CreationError),
}

fn say(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "loadgen: {text}");
}

/// Resolves once `stopped` turns true (or its sender is gone). Returns nothing, so no guard
/// of the channel is held while a `select!` runs its other branch.
pub async fn until_stopped(stopped: &mut watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Resolves when Ctrl-C or SIGTERM arrives (never, if neither can be listened for).
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Runs the load of `settings` against `shop` and summarises it.
pub async fn run<S: Shop>(shop: S, settings: &Settings) -> Result<Summary, RunError> {
    // Unique per run whatever the seed: shoppers' e-mails must never repeat.
    let run_id = format!("{:08x}", rand::random::<u32>());
    let users = Arc::new(Users::new(&run_id));
    say(&format!(
        "{} to {}: signing the admin in, reading the catalog, signing up {} shoppers",
        settings.protocol.name(),
        settings.target,
        settings.users
    ));
    let prepared = setup::prepare(&shop, settings, &users).await?;
    say(&format!(
        "ready in {}: {} products, {} categories, coupons [{}], {} units of stock added",
        duration::latency(prepared.took),
        prepared.catalog.products.len(),
        prepared.catalog.categories.len(),
        prepared.catalog.coupons.join(", "),
        prepared.topped_up
    ));

    let stats = Arc::new(Stats::new()?);
    let plan = Plan {
        think: settings.think,
        timeout: settings.timeout,
        settle_timeout: settings.settle_timeout,
        decline_share: settings.decline_share,
        coupon_share: settings.coupon_share,
        admin: settings.admin.clone(),
        seed: settings.seed,
    };
    let ctx = Arc::new(Context::new(
        shop,
        stats.clone(),
        users.clone(),
        prepared.catalog,
        plan,
        run_id,
    ));

    let (stop, stopped) = watch::channel(false);
    let start = Instant::now();
    let end = settings.duration.map(|d| start + d);
    let in_flight = Arc::new(AtomicU64::new(0));
    let progress = tokio::spawn(Progress::new(settings.progress).run(
        stats.clone(),
        in_flight.clone(),
        start,
        stopped.clone(),
    ));
    let admin_rounds = settings.admin.every.map(|every| {
        tokio::spawn(admin_rounds(
            ctx.clone(),
            prepared.admin,
            start + every,
            every,
            stopped.clone(),
        ))
    });
    let signals = {
        let stop = stop.clone();
        tokio::spawn(async move {
            interrupted().await;
            let _ = stop.send(true);
        })
    };

    let mut arrivals_stopped = stopped.clone();
    let visits = match settings.load {
        Load::Open {
            visit_rate,
            spacing,
        } => {
            let schedule = Schedule::new(
                Arrivals::new(visit_rate, settings.ramp_up),
                spacing,
                SmallRng::seed_from_u64(settings.seed ^ 0xA5A5),
            );
            let limits = OpenLoop {
                schedule,
                mix: settings.mix.clone(),
                seed: settings.seed,
                start,
                end,
                max_in_flight: settings.max_in_flight,
            };
            limits.run(&ctx, &mut arrivals_stopped, &in_flight).await
        }
        Load::Closed { visit_rate } => {
            closed_loop(
                &ctx,
                settings,
                visit_rate,
                start,
                end,
                &mut arrivals_stopped,
                &in_flight,
            )
            .await
        }
    };
    let elapsed = start.elapsed();
    let _ = stop.send(true);
    signals.abort();

    let grace = settings.timeout + settings.settle_timeout;
    drain(visits, grace, &stats, &in_flight).await;
    if let Some(admin_rounds) = admin_rounds {
        let _ = tokio::time::timeout(grace, admin_rounds).await;
    }
    let _ = progress.await;

    let visit_rate = match settings.load {
        Load::Open { visit_rate, .. } => Some(visit_rate),
        Load::Closed { visit_rate } => visit_rate,
    };
    let run = Run {
        target: settings.target.clone(),
        protocol: settings.protocol.name(),
        mode: match settings.load {
            Load::Open { .. } => "open-loop",
            Load::Closed { .. } => "closed-loop",
        },
        checkout_rate: settings.rate,
        visit_rate,
        mix: mix_shares(&settings.mix),
        duration_s: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        users: users.count(),
        seed: settings.seed,
    };
    Ok(Summary::collect(&stats, run, &settings.thresholds))
}

fn mix_shares(mix: &Mix) -> BTreeMap<&'static str, f64> {
    Journey::ALL
        .iter()
        .map(|&j| (j.name(), (mix.share(j) * 1000.0).round() / 1000.0))
        .collect()
}

/// Open-loop arrivals.
struct OpenLoop<R> {
    schedule: Schedule<R>,
    mix: Mix,
    seed: u64,
    start: Instant,
    end: Option<Instant>,
    max_in_flight: usize,
}

impl<R: rand::Rng> OpenLoop<R> {
    /// Starts each visit when it is due until the end or a stop; returns those in flight.
    async fn run<S: Shop>(
        self,
        ctx: &Arc<Context<S>>,
        stopped: &mut watch::Receiver<bool>,
        in_flight: &AtomicU64,
    ) -> JoinSet<()> {
        let mut picks = SmallRng::seed_from_u64(self.seed);
        let mut visits = JoinSet::new();
        for offset in self.schedule {
            let due = self.start + offset;
            if self.end.is_some_and(|end| due >= end) || *stopped.borrow() {
                break;
            }
            if due > Instant::now() {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = until_stopped(stopped) => break,
                }
            }
            while visits.try_join_next().is_some() {}
            let journey = self.mix.pick(picks.random());
            if visits.len() >= self.max_in_flight {
                ctx.stats.dropped(journey);
                continue;
            }
            visits.spawn(journeys::visit_from_pool(ctx.clone(), journey, due));
            in_flight.store(visits.len() as u64, Ordering::Relaxed);
        }
        visits
    }
}

/// `settings.users` shoppers, each visiting back to back (paced when `visit_rate` is
/// given), started one by one over the ramp-up; returns them once the run is over.
async fn closed_loop<S: Shop>(
    ctx: &Arc<Context<S>>,
    settings: &Settings,
    visit_rate: Option<f64>,
    start: Instant,
    end: Option<Instant>,
    stopped: &mut watch::Receiver<bool>,
    in_flight: &Arc<AtomicU64>,
) -> JoinSet<()> {
    let count = settings.users;
    // Each shopper's share of the rate: one visit every users/rate seconds.
    let pace = visit_rate.map(|rate| Duration::from_secs_f64(count as f64 / rate));
    let mut shoppers = JoinSet::new();
    for i in 0..count {
        let Some(account) = ctx.users.take() else {
            break;
        };
        let first = start + settings.ramp_up.mul_f64(i as f64 / count as f64);
        let shopper = Shopper {
            ctx: ctx.clone(),
            mix: settings.mix.clone(),
            seed: settings.seed.wrapping_add(i as u64),
            first,
            pace,
            end,
        };
        shoppers.spawn(shopper.run(account, stopped.clone(), in_flight.clone()));
    }
    match end {
        Some(end) => {
            tokio::select! {
                () = tokio::time::sleep_until(end) => {}
                () = until_stopped(stopped) => {}
            }
        }
        None => {
            until_stopped(stopped).await;
        }
    }
    shoppers
}

/// One closed-loop shopper.
struct Shopper<S> {
    ctx: Arc<Context<S>>,
    mix: Mix,
    seed: u64,
    first: Instant,
    pace: Option<Duration>,
    end: Option<Instant>,
}

impl<S: Shop> Shopper<S> {
    async fn run(
        self,
        mut account: Account,
        mut stopped: watch::Receiver<bool>,
        in_flight: Arc<AtomicU64>,
    ) {
        let mut picks = SmallRng::seed_from_u64(self.seed);
        let mut due = self.first;
        loop {
            if self.end.is_some_and(|end| due >= end) || *stopped.borrow() {
                break;
            }
            if due > Instant::now() {
                tokio::select! {
                    () = tokio::time::sleep_until(due) => {}
                    () = until_stopped(&mut stopped) => break,
                }
            }
            let journey = self.mix.pick(picks.random());
            in_flight.fetch_add(1, Ordering::Relaxed);
            journeys::visit_as(&self.ctx, journey, due, &mut account).await;
            in_flight.fetch_sub(1, Ordering::Relaxed);
            // Paced: the next visit is due on the shopper's own clock, and a late one counts
            // its lateness (as open loop does). Unpaced: right after this one (and the
            // think time), so the shop's slowness lowers the rate instead of showing as
            // latency; docs/loadgen.md says when to use which.
            due = match self.pace {
                Some(pace) => due + pace,
                None => Instant::now() + self.ctx.plan.think,
            };
        }
        self.ctx.users.give_back(account);
    }
}

/// The admin's rounds every `every` from `first` until the run stops.
async fn admin_rounds<S: Shop>(
    ctx: Arc<Context<S>>,
    mut account: Account,
    first: Instant,
    every: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval_at(first, every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            due = ticks.tick() => admin::round(&ctx, &mut account, due).await,
            () = until_stopped(&mut stopped) => break,
        }
    }
}

/// Waits up to `grace` for the visits in flight, then ends the rest and counts them.
async fn drain(mut visits: JoinSet<()>, grace: Duration, stats: &Stats, in_flight: &AtomicU64) {
    let deadline = Instant::now() + grace;
    loop {
        in_flight.store(visits.len() as u64, Ordering::Relaxed);
        tokio::select! {
            next = visits.join_next() => {
                if next.is_none() {
                    break;
                }
            }
            () = tokio::time::sleep_until(deadline) => {
                Outcomes::add(&stats.outcomes.unfinished, visits.len() as u64);
                visits.abort_all();
                break;
            }
        }
    }
}
