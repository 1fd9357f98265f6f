//! Before the clock starts: the admin signs in, the catalog and the coupons are read from
//! the shop itself (what `make run` seeded, or whatever the shop holds: nothing is assumed),
//! products running low are topped up, and the first shoppers sign up. Set-up calls are not
//! part of the measurement; a rate-limited one waits as long as the shop asks and tries
//! again.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::config::Settings;
use crate::failure::CallError;
use crate::journeys::admin;
use crate::session::Session;
use crate::shop::{Call, Product, ProductQuery, Shop};
use crate::stats::Stats;
use crate::users::{Account, Users};

/// Most products read from the catalog.
const MAX_PRODUCTS: usize = 1000;
/// Shoppers signing up at once during set-up (identity hashes each password).
const SIGN_UP_WORKERS: usize = 4;
/// Tries of a rate-limited set-up call.
const ATTEMPTS: u32 = 30;

/// Set-up failed: the run cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The admin could not sign in.
    #[error(
        "cannot sign in as the admin {email}: {source}; give the shop's administrator with --admin-email and --admin-password (or MERCATO_ADMIN_EMAIL and MERCATO_ADMIN_PASSWORD)"
    )]
    Admin {
        /// The e-mail tried.
        email: String,
        /// Why.
        #[source]
        source: CallError,
    },
    /// The catalog could not be read.
    #[error("cannot read the catalog: {0}")]
    Catalog(#[source] CallError),
    /// The catalog is empty.
    #[error(
        "the catalog has no products to buy (make run seeds a demo catalog; elsewhere, create products first)"
    )]
    EmptyCatalog,
    /// The coupons could not be listed.
    #[error("cannot list the coupons as the admin: {0}")]
    Coupons(#[source] CallError),
    /// Stock could not be topped up.
    #[error("cannot top up the stock as the admin: {0}")]
    Restock(#[source] CallError),
    /// Shoppers could not sign up.
    #[error("cannot sign shoppers up: {0}")]
    Users(#[source] CallError),
    /// A sign-up worker stopped without an answer.
    #[error("a sign-up worker failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// The recorder could not be built.
    #[error("cannot allocate the set-up recorder: {0}")]
    Recorder(#[from] hdrhistogram::CreationError),
}

/// What the shop holds that shoppers use.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    /// Products (at most [`MAX_PRODUCTS`]).
    pub products: Vec<Product>,
    /// Category ids.
    pub categories: Vec<String>,
    /// Words of product names, to search for.
    pub words: Vec<String>,
    /// Coupon codes shoppers apply.
    pub coupons: Vec<String>,
}

/// What set-up made.
#[derive(Debug)]
pub struct Prepared {
    /// The catalog.
    pub catalog: Catalog,
    /// The admin, signed in.
    pub admin: Account,
    /// How long set-up took.
    pub took: Duration,
    /// Products topped up.
    pub topped_up: u64,
}

/// Runs `call` until it is not refused for a rate limit, waiting as the shop asks.
pub async fn patiently<T, F, Fut>(mut call: F) -> Call<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Call<T>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(error) if error.is_rate_limited() && attempt < ATTEMPTS => {
                let wait = error.retry_after.unwrap_or(1).clamp(1, 10);
                tokio::time::sleep(Duration::from_secs(wait)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// Words of product names worth searching for: letters only, four or more, each once.
pub fn search_words(products: &[Product]) -> Vec<String> {
    let mut words: Vec<String> = products
        .iter()
        .flat_map(|p| p.name.split(|c: char| !c.is_alphabetic()))
        .filter(|w| w.chars().count() >= 4)
        .map(str::to_owned)
        .collect();
    words.sort_unstable();
    words.dedup();
    words
}

/// Signs the admin in, reads the catalog and the coupons, tops up stock and signs up
/// `settings.users` shoppers into `users`.
pub async fn prepare<S: Shop>(
    shop: &S,
    settings: &Settings,
    users: &Arc<Users>,
) -> Result<Prepared, SetupError> {
    let started = Instant::now();
    let email = &settings.admin.email;
    let tokens = patiently(|| shop.sign_in(email, &settings.admin.password))
        .await
        .map_err(|source| SetupError::Admin {
            email: email.clone(),
            source,
        })?;
    let admin = Account::new(email.clone(), tokens).map_err(|source| SetupError::Admin {
        email: email.clone(),
        source,
    })?;
    let auth = &admin.bearer;

    let categories = patiently(|| shop.list_categories(auth))
        .await
        .map_err(SetupError::Catalog)?;
    let mut products = Vec::new();
    let mut page_token = String::new();
    loop {
        let query = ProductQuery {
            page_size: 100,
            page_token: &page_token,
            ..ProductQuery::default()
        };
        let page = patiently(|| shop.list_products(auth, query))
            .await
            .map_err(SetupError::Catalog)?;
        products.extend(page.products);
        if page.next_page_token.is_empty() || products.len() >= MAX_PRODUCTS {
            break;
        }
        page_token = page.next_page_token;
    }
    products.truncate(MAX_PRODUCTS);
    if products.is_empty() {
        return Err(SetupError::EmptyCatalog);
    }
    let coupons = if settings.coupons.is_empty() {
        patiently(|| shop.list_coupons(auth))
            .await
            .map_err(SetupError::Coupons)?
            .into_iter()
            .filter(|c| c.always_applies)
            .map(|c| c.code)
            .collect()
    } else {
        settings.coupons.clone()
    };

    // Set-up calls go to a recorder of their own, left out of the summary.
    let setup_stats = Arc::new(Stats::new()?);
    let mut topped_up = 0;
    if settings.admin.restock {
        let mut session = Session::new(
            shop,
            &setup_stats,
            Instant::now(),
            Duration::ZERO,
            settings.timeout,
            settings.seed,
        );
        // Not `patiently`: the calls borrow the session. A round refused for the admin's
        // rate limit starts over; products topped up already are skipped then.
        let mut attempt = 1;
        loop {
            match admin::top_up(&mut session, auth, &products, &settings.admin).await {
                Err(error) if error.is_rate_limited() && attempt < ATTEMPTS => {
                    let wait = error.retry_after.unwrap_or(1).clamp(1, 10);
                    tokio::time::sleep(Duration::from_secs(wait)).await;
                    attempt += 1;
                }
                done => break done.map_err(SetupError::Restock)?,
            }
        }
        topped_up = crate::stats::Outcomes::get(&setup_stats.outcomes.restocked);
    }
    sign_up(shop, users, &setup_stats, settings).await?;

    let words = search_words(&products);
    Ok(Prepared {
        catalog: Catalog {
            products,
            categories,
            words,
            coupons,
        },
        admin,
        took: started.elapsed(),
        topped_up,
    })
}

/// Signs `settings.users` shoppers up, a few at a time, and puts them in the pool.
async fn sign_up<S: Shop>(
    shop: &S,
    users: &Arc<Users>,
    stats: &Arc<Stats>,
    settings: &Settings,
) -> Result<(), SetupError> {
    let remaining = Arc::new(AtomicUsize::new(settings.users));
    let mut workers = JoinSet::new();
    for worker in 0..settings.users.min(SIGN_UP_WORKERS) {
        let (shop, users, stats, remaining) = (
            shop.clone(),
            users.clone(),
            stats.clone(),
            remaining.clone(),
        );
        let (timeout, seed) = (settings.timeout, settings.seed ^ worker as u64);
        workers.spawn(async move {
            let (shop, users, stats) = (&shop, &users, &stats);
            while remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let account = patiently(|| async move {
                    let mut session =
                        Session::new(shop, stats, Instant::now(), Duration::ZERO, timeout, seed);
                    users.sign_up(&mut session).await
                })
                .await?;
                users.give_back(account);
            }
            Ok::<(), CallError>(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done?.map_err(SetupError::Users)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(name: &str) -> Product {
        Product {
            id: name.into(),
            name: name.into(),
            category_id: String::new(),
        }
    }

    #[test]
    fn search_words_come_from_product_names() {
        let products = [
            product("Stoneware mug"),
            product("Chef's knife 20 cm"),
            product("Stoneware bowl"),
        ];
        assert_eq!(
            search_words(&products),
            ["Chef", "Stoneware", "bowl", "knife"]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_rate_limited_call_is_tried_again_after_the_wait_asked_for() {
        let mut calls = 0;
        let started = Instant::now();
        let result = patiently(|| {
            calls += 1;
            let attempt = calls;
            async move {
                if attempt < 3 {
                    let mut refusal = CallError::new(crate::failure::Failure::Http(429), "slow");
                    refusal.retry_after = Some(2);
                    Err(refusal)
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result, Ok(3));
        assert_eq!(started.elapsed(), Duration::from_secs(4));
        let other: Call<()> =
            patiently(|| async { Err(CallError::new(crate::failure::Failure::Http(503), "down")) })
                .await;
        assert_eq!(
            other.unwrap_err().failure,
            crate::failure::Failure::Http(503)
        );
    }
}
