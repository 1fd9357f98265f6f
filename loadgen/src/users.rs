//! The shoppers' accounts. Each is signed up and signed in through identity as a person would
//! (Register, then IssueToken with the password) and kept for the whole run, its access token
//! renewed with the refresh token before it expires. Open-loop visits borrow an idle account
//! and give it back; when every account is busy, the visit signs a new shopper up, so the
//! pool grows to the concurrency the arrival rate needs. New shoppers sign up at most
//! [`SIGN_UPS_AT_ONCE`] at a time (identity hashes each password, and refuses sign-ins
//! beyond a few at once); a visit that finds no idle shopper and no free sign-up waits for
//! the next shopper to come back, and that wait counts in its first step's latency, since
//! the visit was due when it arrived.
//!
//! Accounts are lent in turn (first in, first out), spreading the calls over all shoppers:
//! the gateway rate-limits per principal, and a few shoppers visiting back to back would hit
//! that limit where a crowd of real ones would not.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::failure::CallError;
use crate::session::Session;
use crate::shop::{Bearer, Call, Shop, Tokens};
use crate::stats::Outcomes;
use crate::step::Step;

/// New shoppers signing up at once during a run.
pub const SIGN_UPS_AT_ONCE: usize = 2;

/// An access token is renewed when it has less than this left.
const RENEW_BEFORE: Duration = Duration::from_secs(60);

/// A signed-in shopper (or the admin).
#[derive(Debug, Clone)]
pub struct Account {
    /// The e-mail it signs in with.
    pub email: String,
    /// Its access token.
    pub bearer: Bearer,
    refresh_token: String,
    expires_at: Instant,
}

impl Account {
    /// An account signed in with `tokens`.
    pub fn new(email: String, tokens: Tokens) -> Call<Self> {
        let bearer = bearer(&tokens)?;
        Ok(Self {
            email,
            bearer,
            refresh_token: tokens.refresh,
            expires_at: Instant::now() + tokens.expires_in,
        })
    }

    /// Takes newly issued tokens.
    pub fn renew(&mut self, tokens: Tokens) -> Call<()> {
        self.bearer = bearer(&tokens)?;
        self.refresh_token = tokens.refresh;
        self.expires_at = Instant::now() + tokens.expires_in;
        Ok(())
    }

    /// Whether the access token should be renewed before the next call.
    pub fn expiring(&self) -> bool {
        Instant::now() + RENEW_BEFORE >= self.expires_at
    }

    /// Renews the token when it is about to expire: with the refresh token, or by signing in
    /// again with `password` when the refresh is refused.
    pub async fn keep_fresh<S: Shop>(
        &mut self,
        session: &mut Session<'_, S>,
        password: &str,
    ) -> Call<()> {
        if !self.expiring() {
            return Ok(());
        }
        let shop = session.shop;
        let refreshed = if self.refresh_token.is_empty() {
            None
        } else {
            session
                .step(Step::Refresh, shop.refresh(&self.refresh_token))
                .await
                .ok()
        };
        let tokens = match refreshed {
            Some(tokens) => tokens,
            None => {
                session
                    .step(Step::SignIn, shop.sign_in(&self.email, password))
                    .await?
            }
        };
        self.renew(tokens)
    }
}

fn bearer(tokens: &Tokens) -> Call<Bearer> {
    Bearer::new(&tokens.access)
        .ok_or_else(|| CallError::malformed("the access token is not a valid header value"))
}

/// The shoppers of one run.
#[derive(Debug)]
pub struct Users {
    run: String,
    password: String,
    next: AtomicU64,
    idle: Mutex<VecDeque<Account>>,
    known: RwLock<HashSet<String>>,
    returned: Notify,
    signing_up: AtomicUsize,
}

/// A sign-up in progress; frees its place when dropped.
struct SignUpSlot<'a>(&'a AtomicUsize);

impl Drop for SignUpSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Users {
    /// The shoppers of run `run` (a short id that makes their e-mails unique).
    pub fn new(run: &str) -> Self {
        Self {
            run: run.to_owned(),
            // Long enough for identity's rule (10 characters or more), the same for every
            // shopper of the run: they are test accounts, not secrets.
            password: format!("loadgen-{run}-password"),
            next: AtomicU64::new(1),
            idle: Mutex::new(VecDeque::new()),
            known: RwLock::new(HashSet::new()),
            returned: Notify::new(),
            signing_up: AtomicUsize::new(0),
        }
    }

    /// The shoppers' password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Signs a new shopper up and in, as two recorded steps of `session`.
    pub async fn sign_up<S: Shop>(&self, session: &mut Session<'_, S>) -> Call<Account> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let email = format!("loadgen-{}-{n}@example.com", self.run);
        let name = format!("Shopper {n}");
        let shop = session.shop;
        let user_id = session
            .step(Step::SignUp, shop.register(&email, &self.password, &name))
            .await?;
        let tokens = session
            .step(Step::SignIn, shop.sign_in(&email, &self.password))
            .await?;
        self.known
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(user_id);
        Account::new(email, tokens)
    }

    /// An idle shopper, the one idle longest; `None` when all are busy.
    pub fn take(&self) -> Option<Account> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop_front()
    }

    /// A shopper whose visit ended.
    pub fn give_back(&self, account: Account) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_back(account);
        self.returned.notify_one();
    }

    fn sign_up_slot(&self) -> Option<SignUpSlot<'_>> {
        self.signing_up
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < SIGN_UPS_AT_ONCE).then_some(n + 1)
            })
            .ok()
            .map(|_| SignUpSlot(&self.signing_up))
    }

    /// A shopper for a visit: an idle one, else a newly signed-up one (recorded in
    /// `session`), else the next one given back.
    pub async fn lend<S: Shop>(&self, session: &mut Session<'_, S>) -> Call<Account> {
        let mut waited = false;
        loop {
            if let Some(account) = self.take() {
                return Ok(account);
            }
            if let Some(_slot) = self.sign_up_slot() {
                return self.sign_up(session).await;
            }
            if !waited {
                waited = true;
                Outcomes::add(&session.stats().outcomes.waited_for_shopper, 1);
            }
            // Registered before looking again, so a shopper given back in between is seen.
            let returned = self.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();
            if let Some(account) = self.take() {
                return Ok(account);
            }
            returned.await;
        }
    }

    /// Whether `user_id` is a shopper of this run (the admin ships only their orders).
    pub fn knows(&self, user_id: &str) -> bool {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(user_id)
    }

    /// Shoppers signed up so far.
    pub fn count(&self) -> usize {
        self.known
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str, expires_in: Duration) -> Account {
        Account::new(
            format!("{name}@example.com"),
            Tokens {
                access: format!("token-of-{name}"),
                expires_in,
                refresh: "r".into(),
            },
        )
        .unwrap()
    }

    #[test]
    fn idle_shoppers_are_lent_in_turn() {
        let users = Users::new("t1");
        assert!(users.take().is_none());
        for name in ["a", "b", "c"] {
            users.give_back(account(name, Duration::from_secs(900)));
        }
        let first = users.take().unwrap();
        assert_eq!(first.email, "a@example.com");
        users.give_back(first);
        let order: Vec<String> = std::iter::from_fn(|| users.take().map(|a| a.email)).collect();
        assert_eq!(order, ["b@example.com", "c@example.com", "a@example.com"]);
        assert!(users.password().len() >= 10);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_renewed_a_minute_before_it_expires() {
        let fresh = account("a", Duration::from_secs(900));
        assert!(!fresh.expiring());
        tokio::time::advance(Duration::from_secs(839)).await;
        assert!(!fresh.expiring());
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(fresh.expiring());
        assert!(account("b", Duration::ZERO).expiring());
    }
}
