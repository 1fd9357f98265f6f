//! The checkout saga, orchestrated here and persisted with the order:
//! reserve stock → redeem coupon → charge → commit stock → CONFIRMED. A step that fails for
//! good switches the saga to compensation (refund, release coupon, release stock → CANCELLED
//! with a reason the customer can read). A step that cannot tell yet (a peer is down after
//! the card may have been charged) keeps its place and is retried by the recovery sweep.
//!
//! Every peer call is idempotent per order id, and the peers keep "released" tombstones, so
//! running a step twice, or a compensation before the step it undoes, is harmless.
//!
//! A saga starts when PlaceOrder's order is priced and stored ([`Saga::start`], in `place`).

mod place;

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato::pb::discount::v1 as discount;
use mercato::pb::discount::v1::discount_service_client::DiscountServiceClient;
use mercato::pb::inventory::v1 as inventory;
use mercato::pb::inventory::v1::inventory_service_client::InventoryServiceClient;
use mercato::pb::payment::v1 as payment;
use mercato::pb::payment::v1::payment_service_client::PaymentServiceClient;
use mercato_kernel::client::{ClientError, PeerChannel, Peers};
use mercato_kernel::db::DbPool;
use mercato_kernel::error;
use mercato_kernel::events::outbox::{self, OutboxNotifier};
use mercato_kernel::money::Amount;
use tonic::{Code, Status};

use crate::domain::{Status as OrderState, Step, payment_failure_text};
use crate::messages;
use crate::store::{self, StoredOrder, Transition};

/// Who cancels when the saga gives up.
pub const SYSTEM: &str = "system";

/// Clients of the peers the saga calls.
#[derive(Clone)]
pub struct PeerClients {
    pub catalog: CatalogServiceClient<PeerChannel>,
    pub inventory: InventoryServiceClient<PeerChannel>,
    pub discount: DiscountServiceClient<PeerChannel>,
    pub payment: PaymentServiceClient<PeerChannel>,
}

impl PeerClients {
    /// Clients through the kernel's client stack.
    pub fn new(peers: &Peers) -> Result<Self, ClientError> {
        Ok(Self {
            catalog: CatalogServiceClient::new(peers.channel("catalog")?),
            inventory: InventoryServiceClient::new(peers.channel("inventory")?),
            discount: DiscountServiceClient::new(peers.channel("discount")?),
            payment: PaymentServiceClient::new(peers.channel("payment")?),
        })
    }
}

/// What a step decided.
enum Next {
    /// Move on: apply this change (it names the next step).
    Advance(Change),
    /// Give up: compensate, with this reason for the customer, and the payment the step
    /// saw refused, if any (so the order keeps its id).
    Fail {
        reason: String,
        payment_id: Option<String>,
    },
    /// Cannot tell now; try again later.
    Later(String),
}

impl Next {
    /// Give up without a payment to keep.
    fn fail(reason: impl Into<String>) -> Self {
        Self::Fail {
            reason: reason.into(),
            payment_id: None,
        }
    }
}

/// A transition decided by a step.
#[derive(Default)]
struct Change {
    step: Option<Step>,
    status: Option<OrderState>,
    discount_nanos: Option<i64>,
    payment_id: Option<String>,
}

/// Runs sagas.
#[derive(Clone)]
pub struct Saga {
    db: DbPool,
    peers: PeerClients,
    outbox: OutboxNotifier,
    /// How long an executor may hold a saga before another one may take over.
    pub lease: Duration,
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Internal
            | Code::Unknown
            | Code::Cancelled
    )
}

/// Back-off before the sweep retries a saga that could not progress.
fn retry_delay(attempts: i32) -> Duration {
    let exp = u32::try_from(attempts.clamp(0, 6)).unwrap_or(6);
    Duration::from_secs(2u64.pow(exp)).min(Duration::from_secs(60))
}

const INTERRUPTED: &str = "the checkout was interrupted before payment; nothing was charged, please place the order again";

impl Saga {
    /// A saga runner.
    pub fn new(db: DbPool, peers: PeerClients, outbox: OutboxNotifier, lease: Duration) -> Self {
        Self {
            db,
            peers,
            outbox,
            lease,
        }
    }

    /// The lease deadline for a lease taken now.
    pub fn lease_until(&self) -> chrono::DateTime<Utc> {
        Utc::now() + chrono::Duration::from_std(self.lease).unwrap_or(chrono::Duration::MAX)
    }

    /// Drives a saga whose lease the caller holds, until it is done or cannot progress now.
    /// `card` is there only on the request that placed (or retried) the order: the card is
    /// never stored, so a saga resumed without it cannot charge and is compensated instead.
    pub async fn drive(
        &self,
        mut order: StoredOrder,
        card: Option<&payment::Card>,
    ) -> Result<StoredOrder, Status> {
        loop {
            let step = order.order.step();
            let next = match step {
                Step::Done => return Ok(order),
                Step::Reserve | Step::Redeem if card.is_none() => Next::fail(INTERRUPTED),
                Step::Reserve => self.reserve(&order).await,
                Step::Redeem => self.redeem(&order).await,
                Step::Charge => self.charge(&order, card).await,
                Step::Commit => self.commit(&order).await,
                Step::Compensate => self.compensate(&order).await,
            };
            let applied = match next {
                Next::Advance(change) => self.apply(&order, change).await?,
                Next::Fail { reason, payment_id } => {
                    tracing::info!(order_id = %order.order.id, ?step, %reason, "checkout failed; compensating");
                    self.fail(&order, &reason, SYSTEM, payment_id).await?
                }
                Next::Later(cause) => {
                    tracing::warn!(order_id = %order.order.id, ?step, %cause, "saga step postponed");
                    let retry_at = Utc::now()
                        + chrono::Duration::from_std(retry_delay(order.order.saga_attempts))
                            .unwrap_or(chrono::Duration::MAX);
                    let mut conn = self.db.get().await.map_err(error::pool)?;
                    store::release_lease(&mut conn, order.order.id, retry_at)
                        .await
                        .map_err(error::database)?;
                    return Ok(order);
                }
            };
            order = match applied {
                Some(updated) => updated,
                // Another executor moved the saga: report where it stands now.
                None => return self.reload(order.order.id).await,
            };
        }
    }

    async fn reload(&self, id: uuid::Uuid) -> Result<StoredOrder, Status> {
        let mut conn = self.db.get().await.map_err(error::pool)?;
        store::find(&mut conn, id)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("order", &id.to_string()))
    }

    fn currency(order: &StoredOrder) -> &str {
        &order.order.currency
    }

    fn money(order: &StoredOrder, nanos: i64) -> mercato::pb::r#type::v1::Money {
        Amount::from_total_nanos(Self::currency(order), i128::from(nanos)).to_proto()
    }

    async fn reserve(&self, order: &StoredOrder) -> Next {
        let request = inventory::ReserveStockRequest {
            order_id: order.order.id.to_string(),
            items: order
                .lines
                .iter()
                .map(|l| inventory::StockItem {
                    product_id: l.product_id.clone(),
                    quantity: l.quantity,
                })
                .collect(),
        };
        match self.peers.inventory.clone().reserve_stock(request).await {
            Ok(_) => Next::Advance(Change {
                step: Some(if order.order.coupon_code.is_empty() {
                    Step::Charge
                } else {
                    Step::Redeem
                }),
                ..Change::default()
            }),
            Err(status) if status.code() == Code::FailedPrecondition => {
                Next::fail(out_of_stock_reason(order, &status))
            }
            Err(status) if transient(status.code()) => Next::fail(
                "stock could not be reserved because the inventory service is unavailable; \
                 nothing was charged, please try again",
            ),
            Err(status) => Next::fail(format!("stock could not be reserved: {}", status.message())),
        }
    }

    async fn redeem(&self, order: &StoredOrder) -> Next {
        let request = discount::RedeemCouponRequest {
            code: order.order.coupon_code.clone(),
            order_id: order.order.id.to_string(),
            user_id: order.order.user_id.clone(),
            subtotal: Some(Self::money(order, order.order.subtotal_nanos)),
        };
        let code = &order.order.coupon_code;
        match self.peers.discount.clone().redeem_coupon(request).await {
            Ok(response) => {
                let granted = response
                    .into_inner()
                    .redemption
                    .and_then(|r| r.discount)
                    .and_then(|m| Amount::parse(&m).ok())
                    .filter(|a| a.currency() == Self::currency(order))
                    .map_or(0, |a| i64::try_from(a.total_nanos()).unwrap_or(0));
                Next::Advance(Change {
                    step: Some(Step::Charge),
                    discount_nanos: Some(granted.clamp(0, order.order.subtotal_nanos)),
                    ..Change::default()
                })
            }
            Err(status) if transient(status.code()) => Next::fail(format!(
                "coupon {code} could not be checked because the discount service is \
                     unavailable; nothing was charged, please try again"
            )),
            Err(status) => Next::fail(format!(
                "coupon {code} cannot be used: {}",
                status.message()
            )),
        }
    }

    async fn charge(&self, order: &StoredOrder, card: Option<&payment::Card>) -> Next {
        let total = order.order.total_nanos();
        if total == 0 {
            return Next::Advance(Change {
                step: Some(Step::Commit),
                ..Change::default()
            });
        }
        let key = order.order.id.to_string();
        let outcome = match card {
            Some(card) => {
                let request = payment::ChargeRequest {
                    order_id: key.clone(),
                    user_id: order.order.user_id.clone(),
                    amount: Some(Self::money(order, total)),
                    card: Some(card.clone()),
                    idempotency_key: key,
                };
                self.peers
                    .payment
                    .clone()
                    .charge(request)
                    .await
                    .map(|r| r.into_inner().payment)
            }
            // Resumed without the card: only learn whether the earlier attempt went through.
            None => {
                let request = payment::LookupChargeRequest {
                    idempotency_key: key,
                };
                match self.peers.payment.clone().lookup_charge(request).await {
                    Err(status) if status.code() == Code::NotFound => {
                        return Next::fail(INTERRUPTED);
                    }
                    other => other.map(|r| r.into_inner().payment),
                }
            }
        };
        match outcome {
            Ok(Some(p)) if p.status() == payment::PaymentStatus::Captured => {
                Next::Advance(Change {
                    step: Some(Step::Commit),
                    payment_id: Some(p.id),
                    ..Change::default()
                })
            }
            Ok(Some(p)) if p.status() == payment::PaymentStatus::Failed => Next::Fail {
                reason: format!(
                    "payment failed: {}",
                    payment_failure_text(p.failure_reason())
                ),
                payment_id: Some(p.id),
            },
            Ok(other) => Next::Later(format!("unexpected payment state: {other:?}")),
            Err(status) if transient(status.code()) => {
                Next::Later(format!("payment outcome unknown: {}", status.message()))
            }
            Err(status) => Next::fail(format!("payment failed: {}", status.message())),
        }
    }

    async fn commit(&self, order: &StoredOrder) -> Next {
        let request = inventory::CommitReservationRequest {
            order_id: order.order.id.to_string(),
        };
        match self
            .peers
            .inventory
            .clone()
            .commit_reservation(request)
            .await
        {
            Ok(_) => Next::Advance(Change {
                step: Some(Step::Done),
                status: Some(OrderState::Confirmed),
                ..Change::default()
            }),
            Err(status) if transient(status.code()) => {
                Next::Later(format!("stock commit: {}", status.message()))
            }
            Err(status) => Next::fail(format!(
                "the stock reservation was lost ({}); the payment is refunded",
                status.message()
            )),
        }
    }

    async fn compensate(&self, order: &StoredOrder) -> Next {
        let id = order.order.id.to_string();
        if !order.order.payment_id.is_empty() {
            let request = payment::RefundRequest {
                id: order.order.payment_id.clone(),
                amount: None,
                reason: order.order.cancellation_reason.chars().take(500).collect(),
                idempotency_key: format!("cancel-{id}"),
            };
            match self.peers.payment.clone().refund(request).await {
                // Nothing captured (a refused card) or nothing left: nothing to give back.
                Ok(_) => {}
                Err(status) if status.code() == Code::FailedPrecondition => {}
                Err(status) => return Next::Later(format!("refund: {}", status.message())),
            }
        }
        if !order.order.coupon_code.is_empty() {
            let request = discount::ReleaseRedemptionRequest {
                order_id: id.clone(),
            };
            if let Err(status) = self
                .peers
                .discount
                .clone()
                .release_redemption(request)
                .await
            {
                return Next::Later(format!("coupon release: {}", status.message()));
            }
        }
        let request = inventory::ReleaseReservationRequest { order_id: id };
        if let Err(status) = self
            .peers
            .inventory
            .clone()
            .release_reservation(request)
            .await
        {
            return Next::Later(format!("stock release: {}", status.message()));
        }
        Next::Advance(Change {
            step: Some(Step::Done),
            status: Some(OrderState::Cancelled),
            ..Change::default()
        })
    }

    /// Switches the saga to compensation.
    pub async fn fail(
        &self,
        order: &StoredOrder,
        reason: &str,
        by: &str,
        payment_id: Option<String>,
    ) -> Result<Option<StoredOrder>, Status> {
        let mut conn = self.db.get().await.map_err(error::pool)?;
        let change = Transition {
            saga_step: Some(Step::Compensate.as_str()),
            cancellation_reason: Some(reason),
            cancelled_by: Some(by),
            payment_id: payment_id.as_deref(),
            saga_lease_until: Some(Some(self.lease_until())),
            updated_at: Some(Utc::now()),
            ..Transition::default()
        };
        store::transition(
            &mut conn,
            order.order.id,
            order.order.step(),
            order.order.version,
            &change,
        )
        .await
        .map_err(error::database)
    }

    /// Applies a step's change, with its event when the status changes, in one transaction.
    async fn apply(
        &self,
        order: &StoredOrder,
        change: Change,
    ) -> Result<Option<StoredOrder>, Status> {
        let status_change = change.status;
        let previous = order.order.status().to_proto();
        let done = change.step == Some(Step::Done);
        let version = order.order.version + i64::from(status_change.is_some());
        let mut conn = self.db.get().await.map_err(error::pool)?;
        let from_step = order.order.step();
        let id = order.order.id;
        let updated = conn
            .transaction(async |conn| {
                let transition = Transition {
                    status: status_change.map(OrderState::as_str),
                    saga_step: change.step.map(Step::as_str),
                    discount_nanos: change.discount_nanos,
                    payment_id: change.payment_id.as_deref(),
                    version: Some(version),
                    saga_lease_until: Some(if done { None } else { Some(self.lease_until()) }),
                    updated_at: Some(Utc::now()),
                    ..Transition::default()
                };
                let Some(updated) =
                    store::transition(conn, id, from_step, order.order.version, &transition)
                        .await?
                else {
                    return Ok(None);
                };
                let aggregate = id.to_string();
                match status_change {
                    Some(OrderState::Confirmed) => {
                        outbox::enqueue(conn, "order", &aggregate, &messages::confirmed(&updated))
                            .await?;
                    }
                    Some(OrderState::Cancelled) => {
                        outbox::enqueue(
                            conn,
                            "order",
                            &aggregate,
                            &messages::cancelled(&updated, previous),
                        )
                        .await?;
                    }
                    _ => {}
                }
                Ok::<_, diesel::result::Error>(Some(updated))
            })
            .await
            .map_err(error::database)?;
        if status_change.is_some() {
            self.outbox.notify();
        }
        Ok(updated)
    }
}

/// "«Lamp» is out of stock" when the inventory named the product, else its message.
fn out_of_stock_reason(order: &StoredOrder, status: &Status) -> String {
    use tonic_types::StatusExt as _;
    let product = status
        .get_error_details()
        .error_info()
        .and_then(|info| info.metadata.get("product_id").cloned());
    let name = product.and_then(|id| {
        order
            .lines
            .iter()
            .find(|l| l.product_id == id)
            .map(|l| l.name.clone())
    });
    match name {
        Some(name) => format!(
            "not enough stock of \u{ab}{name}\u{bb}: {}",
            status.message()
        ),
        None => format!("not enough stock: {}", status.message()),
    }
}
