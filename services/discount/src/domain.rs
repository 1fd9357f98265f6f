//! Discount rules, free of I/O: what a valid coupon and a valid redemption request are, and
//! whether (and by how much) a coupon applies to a subtotal. Requests are parsed here once;
//! everything past this module holds valid values.

pub mod applicability;
pub mod coupon;
pub mod redemption;

pub use applicability::{Inapplicable, Reason, discount_for};
pub use coupon::{Benefit, CouponCode, CouponTerms, NewCoupon};
pub use redemption::{QuoteRequest, RedeemRequest, RedemptionStatus, Replay};
