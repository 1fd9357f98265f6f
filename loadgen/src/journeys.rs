//! What a visit does. Each journey is a sequence of steps a person would take in a shop's
//! front end; a visit ends at its first failed call, as a shopper facing an error page
//! would leave. [`Context`] is everything the visits of a run share.

mod account;
pub mod admin;
mod browse;
mod checkout;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use rand::Rng as _;
use rand::seq::IndexedRandom as _;
use tokio::time::Instant;

use crate::config::Admin;
use crate::mix::Journey;
use crate::session::Session;
use crate::setup::Catalog;
use crate::shop::{Bearer, Call, Product, ProductQuery, Shop};
use crate::stats::Stats;
use crate::step::Step;
use crate::users::{Account, Users};

/// How the shoppers behave (from the settings).
#[derive(Debug, Clone)]
pub struct Plan {
    /// Pause between steps.
    pub think: Duration,
    /// Deadline of a call.
    pub timeout: Duration,
    /// Longest wait for an order to settle.
    pub settle_timeout: Duration,
    /// Share of checkouts with the declining card.
    pub decline_share: f64,
    /// Share of checkouts with a coupon.
    pub coupon_share: f64,
    /// The admin's work.
    pub admin: Admin,
    /// Seed of the random choices.
    pub seed: u64,
}

/// What the visits of one run share.
pub struct Context<S> {
    /// The shop.
    pub shop: S,
    /// Where every step is recorded.
    pub stats: Arc<Stats>,
    /// The shoppers.
    pub users: Arc<Users>,
    /// Products, categories, search words and coupons found before the clock started.
    pub catalog: Catalog,
    /// How the shoppers behave.
    pub plan: Plan,
    /// This run's id, in e-mails and idempotency keys.
    pub run_id: String,
    visits: AtomicU64,
    restock_cursor: AtomicUsize,
}

impl<S: Shop> Context<S> {
    /// The context of a run.
    pub fn new(
        shop: S,
        stats: Arc<Stats>,
        users: Arc<Users>,
        catalog: Catalog,
        plan: Plan,
        run_id: String,
    ) -> Self {
        Self {
            shop,
            stats,
            users,
            catalog,
            plan,
            run_id,
            visits: AtomicU64::new(0),
            restock_cursor: AtomicUsize::new(0),
        }
    }

    /// A new visit's number and its session, due at `due`.
    fn session(&self, due: Instant) -> (u64, Session<'_, S>) {
        let n = self.visits.fetch_add(1, Ordering::Relaxed);
        // Distinct, well-mixed seeds per visit from one run seed (SplitMix64's increment).
        let seed = self
            .plan
            .seed
            .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let session = Session::new(
            &self.shop,
            &self.stats,
            due,
            self.plan.think,
            self.plan.timeout,
            seed,
        );
        (n, session)
    }
}

/// An open-loop visit: a shopper of the pool (see [`Users::lend`]) takes `journey`, due at
/// `due`.
pub async fn visit_from_pool<S: Shop>(ctx: Arc<Context<S>>, journey: Journey, due: Instant) {
    let (n, mut session) = ctx.session(due);
    let Ok(mut shopper) = ctx.users.lend(&mut session).await else {
        ctx.stats.visit(journey, None);
        return;
    };
    let result = take_journey(&ctx, &mut session, journey, &mut shopper, n).await;
    ctx.stats
        .visit(journey, result.ok().map(|()| session.active()));
    ctx.users.give_back(shopper);
}

/// A closed-loop visit of `shopper`, due at `due`.
pub async fn visit_as<S: Shop>(
    ctx: &Context<S>,
    journey: Journey,
    due: Instant,
    shopper: &mut Account,
) {
    let (n, mut session) = ctx.session(due);
    let result = take_journey(ctx, &mut session, journey, shopper, n).await;
    ctx.stats
        .visit(journey, result.ok().map(|()| session.active()));
}

async fn take_journey<S: Shop>(
    ctx: &Context<S>,
    session: &mut Session<'_, S>,
    journey: Journey,
    shopper: &mut Account,
    visit: u64,
) -> Call<()> {
    shopper.keep_fresh(session, ctx.users.password()).await?;
    let auth = &shopper.bearer;
    match journey {
        Journey::Browse => browse::run(ctx, session, auth).await,
        Journey::Checkout => {
            let key = format!("loadgen-{}-{visit}", ctx.run_id);
            checkout::run(ctx, session, auth, &key).await
        }
        Journey::Account => account::run(session, auth).await,
    }
}

/// A product page: the product, its reviews and rating, and its stock; returns the units
/// available.
async fn product_page<S: Shop>(
    session: &mut Session<'_, S>,
    auth: &Bearer,
    product_id: &str,
) -> Call<i32> {
    let shop = session.shop;
    session
        .step(Step::Product, shop.get_product(auth, product_id))
        .await?;
    session
        .step(Step::Reviews, shop.list_reviews(auth, product_id))
        .await?;
    session
        .step(Step::Rating, shop.rating(auth, product_id))
        .await?;
    session
        .step(Step::Stock, shop.stock(auth, product_id))
        .await
}

/// Products a shopper finds: a category's listing or a search for a word of a product
/// name, half the time each; the catalog known from set-up when that finds nothing.
async fn find_products<S: Shop>(
    ctx: &Context<S>,
    session: &mut Session<'_, S>,
    auth: &Bearer,
) -> Call<Vec<Product>> {
    let shop = session.shop;
    let catalog = &ctx.catalog;
    let by_category = session.rng.random_bool(0.5);
    let found = match (
        by_category,
        catalog.categories.choose(&mut session.rng),
        catalog.words.choose(&mut session.rng),
    ) {
        (true, Some(category), _) | (false, Some(category), None) => {
            let query = ProductQuery {
                category_id: category,
                page_size: 20,
                ..ProductQuery::default()
            };
            session
                .step(Step::ListProducts, shop.list_products(auth, query))
                .await?
                .products
        }
        (_, _, Some(word)) => {
            let query = ProductQuery {
                query: word,
                page_size: 20,
                ..ProductQuery::default()
            };
            session
                .step(Step::Search, shop.list_products(auth, query))
                .await?
                .products
        }
        (_, None, None) => Vec::new(),
    };
    if found.is_empty() {
        let picks = catalog.products.choose_multiple(&mut session.rng, 5);
        return Ok(picks.cloned().collect());
    }
    Ok(found)
}
