//! The journeys a shopper's visit can take, and the weighted mix that picks one per visit.
//! Weights are relative (`browse=3,checkout=5` is the same mix as `browse=30,checkout=50`);
//! the checkout share turns the target checkout rate into a visit rate.

use std::collections::BTreeMap;
use std::fmt;

/// What one visit does (docs/loadgen.md describes each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Journey {
    /// Categories, a listing, a search and a few product pages; buys nothing.
    Browse,
    /// Product pages, basket, coupon, checkout, the order watched until it settles, then the
    /// notifications.
    Checkout,
    /// The shopper's orders and notifications, one marked read.
    Account,
}

impl Journey {
    /// Every journey, in the order summaries list them.
    pub const ALL: [Journey; 3] = [Journey::Browse, Journey::Checkout, Journey::Account];

    /// The name used in flags, the mix file and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Journey::Browse => "browse",
            Journey::Checkout => "checkout",
            Journey::Account => "account",
        }
    }

    /// Position in [`Journey::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    fn from_name(name: &str) -> Option<Journey> {
        Journey::ALL.into_iter().find(|j| j.name() == name)
    }
}

impl fmt::Display for Journey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mix that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MixError {
    /// A name that is no journey.
    #[error("unknown journey '{0}' in the mix (journeys: browse, checkout, account)")]
    UnknownJourney(String),
    /// A weight that is negative, not a number or infinite.
    #[error("the weight of '{0}' must be a number of 0 or more")]
    BadWeight(String),
    /// A `name=weight` part without its `=`.
    #[error("'{0}' in the mix is not journey=weight")]
    NotAPair(String),
    /// All weights zero.
    #[error("the mix gives every journey a weight of 0")]
    Empty,
}

/// Relative weights of the journeys.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    /// Cumulative shares, ending at 1: a uniform number below `cumulative[i]` and at or above
    /// the previous one picks `Journey::ALL[i]`.
    cumulative: [f64; 3],
    /// Each journey's share, summing to 1.
    shares: [f64; 3],
}

impl Default for Mix {
    /// Half the visits check out, a third only browse, the rest look at their account: the
    /// shape of a shop where most visitors who come back buy something.
    fn default() -> Self {
        Self::from_weights([30.0, 50.0, 20.0]).unwrap_or_else(|_| unreachable!("valid weights"))
    }
}

impl Mix {
    fn from_weights(weights: [f64; 3]) -> Result<Self, MixError> {
        for (journey, weight) in Journey::ALL.iter().zip(weights) {
            if !weight.is_finite() || weight < 0.0 {
                return Err(MixError::BadWeight(journey.name().to_owned()));
            }
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(MixError::Empty);
        }
        let shares = weights.map(|w| w / total);
        let mut cumulative = [0.0; 3];
        let mut sum = 0.0;
        for (slot, share) in cumulative.iter_mut().zip(shares) {
            sum += share;
            *slot = sum;
        }
        // Rounding must not leave a gap just below 1.
        cumulative[2] = 1.0;
        Ok(Self { cumulative, shares })
    }

    /// The mix of a TOML `[mix]` table; journeys it does not name get 0.
    pub fn from_table(table: &BTreeMap<String, f64>) -> Result<Self, MixError> {
        let mut weights = [0.0; 3];
        for (name, weight) in table {
            let journey =
                Journey::from_name(name).ok_or_else(|| MixError::UnknownJourney(name.clone()))?;
            weights[journey.index()] = *weight;
        }
        Self::from_weights(weights)
    }

    /// The mix of a `--mix browse=3,checkout=5,account=2` flag; journeys it does not name
    /// get 0.
    pub fn parse(text: &str) -> Result<Self, MixError> {
        let mut table = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = part
                .split_once('=')
                .ok_or_else(|| MixError::NotAPair(part.to_owned()))?;
            let name = name.trim();
            let weight = weight
                .trim()
                .parse::<f64>()
                .map_err(|_| MixError::BadWeight(name.to_owned()))?;
            table.insert(name.to_owned(), weight);
        }
        Self::from_table(&table)
    }

    /// The journey for a uniform sample `u` in [0, 1).
    pub fn pick(&self, u: f64) -> Journey {
        let index = self
            .cumulative
            .iter()
            .position(|&edge| u < edge)
            .unwrap_or(Journey::ALL.len() - 1);
        // A zero-weight journey has an empty interval, so position never lands on it unless
        // u is exactly its edge; skip forward to the next journey that has weight.
        let index = (index..Journey::ALL.len())
            .find(|&i| self.shares[i] > 0.0)
            .or_else(|| (0..index).rev().find(|&i| self.shares[i] > 0.0))
            .unwrap_or(index);
        Journey::ALL[index]
    }

    /// The share of visits that are `journey`, 0 to 1.
    pub fn share(&self, journey: Journey) -> f64 {
        self.shares[journey.index()]
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for journey in Journey::ALL {
            let share = self.share(journey);
            if share > 0.0 {
                if !first {
                    f.write_str(", ")?;
                }
                write!(f, "{journey} {:.0}%", share * 100.0)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flag_mix_gives_relative_shares_and_unnamed_journeys_none() {
        let mix = Mix::parse("browse=1, checkout=3").unwrap();
        assert_eq!(mix.share(Journey::Browse), 0.25);
        assert_eq!(mix.share(Journey::Checkout), 0.75);
        assert_eq!(mix.share(Journey::Account), 0.0);
        assert_eq!(mix.to_string(), "browse 25%, checkout 75%");
        assert_eq!(mix, Mix::parse("browse=10,checkout=30").unwrap());
    }

    #[test]
    fn a_toml_table_is_the_same_mix_as_the_flag() {
        let table = BTreeMap::from([
            ("browse".to_owned(), 3.0),
            ("checkout".to_owned(), 5.0),
            ("account".to_owned(), 2.0),
        ]);
        assert_eq!(
            Mix::from_table(&table).unwrap(),
            Mix::parse("browse=3,checkout=5,account=2").unwrap()
        );
    }

    #[test]
    fn bad_mixes_say_what_is_wrong() {
        assert_eq!(
            Mix::parse("browse=1,shopping=2"),
            Err(MixError::UnknownJourney("shopping".into()))
        );
        assert_eq!(
            Mix::parse("browse=-1,checkout=1"),
            Err(MixError::BadWeight("browse".into()))
        );
        assert_eq!(
            Mix::parse("browse=lots"),
            Err(MixError::BadWeight("browse".into()))
        );
        assert_eq!(
            Mix::parse("checkout"),
            Err(MixError::NotAPair("checkout".into()))
        );
        assert_eq!(Mix::parse("browse=0,checkout=0"), Err(MixError::Empty));
        assert_eq!(Mix::parse(""), Err(MixError::Empty));
    }

    #[test]
    fn picks_follow_the_weights() {
        let mix = Mix::parse("browse=1,checkout=2,account=1").unwrap();
        assert_eq!(mix.pick(0.0), Journey::Browse);
        assert_eq!(mix.pick(0.2499), Journey::Browse);
        assert_eq!(mix.pick(0.25), Journey::Checkout);
        assert_eq!(mix.pick(0.7499), Journey::Checkout);
        assert_eq!(mix.pick(0.75), Journey::Account);
        assert_eq!(mix.pick(0.99999), Journey::Account);

        let mut counts = [0_u32; 3];
        let steps = 10_000;
        for i in 0..steps {
            counts[mix.pick(f64::from(i) / f64::from(steps)).index()] += 1;
        }
        assert_eq!(counts, [2500, 5000, 2500]);
    }

    #[test]
    fn a_journey_without_weight_is_never_picked() {
        let mix = Mix::parse("browse=1,account=1").unwrap();
        for i in 0..1000 {
            assert_ne!(mix.pick(f64::from(i) / 1000.0), Journey::Checkout);
        }
        let only = Mix::parse("checkout=1").unwrap();
        for u in [0.0, 0.5, 0.999_999] {
            assert_eq!(only.pick(u), Journey::Checkout);
        }
    }
}
