//! The gRPC surface of the order write side.

use std::time::Duration;

use chrono::Utc;
use diesel_async::AsyncConnection as _;
use mercato::pb::order::v1 as pb;
use mercato::pb::order::v1::order_service_server::OrderService;
use mercato_kernel::auth::Principal;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::events::outbox::{self, OutboxNotifier};
use mercato_kernel::validate;
use tonic::{Request, Response, Status};

use crate::domain::{self, NewOrder, Status as OrderState, Step};
use crate::messages;
use crate::saga::Saga;
use crate::store::{self, StoredOrder, Transition};

/// How often a retried PlaceOrder looks whether the original attempt has finished.
const WAIT_POLL: Duration = Duration::from_millis(50);
/// Longest such wait when the caller set no deadline.
const MAX_WAIT: Duration = Duration::from_secs(10);

/// The order service.
#[derive(Clone)]
pub struct OrderApi {
    db: DbPool,
    saga: Saga,
    outbox: OutboxNotifier,
}

impl OrderApi {
    /// The service over its pool and saga runner (the saga calls the peers, pricing included).
    pub fn new(db: DbPool, saga: Saga, outbox: OutboxNotifier) -> Self {
        Self { db, saga, outbox }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }

    /// A PlaceOrder whose key was used before: the same order, once it is settled.
    async fn existing(
        &self,
        existing: StoredOrder,
        order: &NewOrder,
    ) -> Result<StoredOrder, Status> {
        if existing.order.request_hash != order.fingerprint() {
            return Err(error::failed_precondition(
                "IDEMPOTENCY_KEY_REUSED",
                "this idempotency_key was used for a different order; use a new key for a new order",
            ));
        }
        let id = existing.order.id;
        if existing.order.step() == Step::Done {
            return Ok(existing);
        }
        // The first attempt may have died (its lease ran out): this retry carries the card,
        // so it can finish the checkout itself.
        {
            let mut conn = self.conn().await?;
            if let Some(taken) = store::take_lease(&mut conn, id, self.saga.lease_until())
                .await
                .map_err(error::database)?
            {
                drop(conn);
                return self.saga.drive(taken, Some(&order.card)).await;
            }
        }
        let wait = mercato_kernel::client::remaining()
            .map_or(MAX_WAIT, |left| {
                left.saturating_sub(Duration::from_millis(100))
            })
            .min(MAX_WAIT);
        let until = tokio::time::Instant::now() + wait;
        loop {
            let current = {
                let mut conn = self.conn().await?;
                store::find(&mut conn, id)
                    .await
                    .map_err(error::database)?
                    .ok_or_else(|| error::not_found("order", &id.to_string()))?
            };
            if current.order.step() == Step::Done || tokio::time::Instant::now() >= until {
                return Ok(current);
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// The order `user_id` placed with the request's idempotency key, if any.
    async fn find_by_key(
        &self,
        user_id: &str,
        order: &NewOrder,
    ) -> Result<Option<StoredOrder>, Status> {
        let mut conn = self.conn().await?;
        store::find_by_key(&mut conn, user_id, &order.idempotency_key)
            .await
            .map_err(error::database)
    }

    /// A new checkout: the saga starts and is driven until it settles (or its deadline).
    async fn place(&self, user_id: &str, order: &NewOrder) -> Result<StoredOrder, Status> {
        match self.saga.start(user_id, order).await? {
            Some(stored) => self.saga.drive(stored, Some(&order.card)).await,
            // A concurrent retry with the same key stored its order first.
            None => {
                let existing = self
                    .find_by_key(user_id, order)
                    .await?
                    .ok_or_else(|| error::internal("order vanished after a key conflict"))?;
                self.existing(existing, order).await
            }
        }
    }

    async fn load_owned(&self, id: &str, principal: &Principal) -> Result<StoredOrder, Status> {
        let uuid = validate::parse_uuid("id", id).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let order = store::find(&mut conn, uuid)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("order", id))?;
        principal.require_owner_or_admin(&order.order.user_id, "order", id)?;
        Ok(order)
    }
}

#[tonic::async_trait]
impl OrderService for OrderApi {
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> Result<Response<pb::PlaceOrderResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        if principal.is_service() {
            return Err(error::permission_denied(
                "USER_REQUIRED",
                "orders are placed with the buyer's token, not a service token",
            ));
        }
        let order = NewOrder::parse(request.into_inner()).map_err(FieldViolations::into_status)?;
        let user_id = principal.subject.as_str();
        let settled = match self.find_by_key(user_id, &order).await? {
            Some(existing) => self.existing(existing, &order).await?,
            None => self.place(user_id, &order).await?,
        };
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(messages::order(&settled)),
        }))
    }

    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> Result<Response<pb::CancelOrderResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let req = request.into_inner();
        domain::parse_cancel_reason(&req.reason).map_err(FieldViolations::into_status)?;
        let order = self.load_owned(&req.id, &principal).await?;
        match (order.order.status(), order.order.step()) {
            (OrderState::Cancelled, _) => {
                return Ok(Response::new(pb::CancelOrderResponse {
                    order: Some(messages::order(&order)),
                }));
            }
            (OrderState::Shipped, _) => {
                return Err(error::failed_precondition(
                    "ORDER_SHIPPED",
                    "the order has shipped and can no longer be cancelled",
                ));
            }
            (OrderState::Confirmed, Step::Done) => {}
            _ => {
                return Err(error::failed_precondition(
                    "ORDER_IN_PROGRESS",
                    "the order is still being processed; try again in a moment",
                ));
            }
        }
        let by = if principal.subject == order.order.user_id {
            "customer"
        } else {
            "admin"
        };
        let reason = if req.reason.trim().is_empty() {
            format!("cancelled by the {by}")
        } else {
            req.reason.trim().to_owned()
        };
        let Some(compensating) = self
            .saga
            .fail(&order, &reason, &principal.subject, None)
            .await?
        else {
            return Err(error::with_reason(
                tonic::Code::Aborted,
                "CONCURRENT_CHANGE",
                "the order changed meanwhile; read it again",
            ));
        };
        let settled = self.saga.drive(compensating, None).await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(messages::order(&settled)),
        }))
    }

    async fn ship_order(
        &self,
        request: Request<pb::ShipOrderRequest>,
    ) -> Result<Response<pb::ShipOrderResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let req = request.into_inner();
        let tracking = req.tracking_number.trim();
        if tracking.is_empty()
            || tracking.len() > 64
            || !tracking
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(error::invalid_argument(
                "tracking_number",
                "must be 1 to 64 letters, digits or '-'",
            ));
        }
        let order = self.load_owned(&req.id, &principal).await?;
        match (order.order.status(), order.order.step()) {
            (OrderState::Shipped, _) if order.order.tracking_number == tracking => {
                return Ok(Response::new(pb::ShipOrderResponse {
                    order: Some(messages::order(&order)),
                }));
            }
            (OrderState::Confirmed, Step::Done) => {}
            (state, _) => {
                return Err(error::failed_precondition(
                    "ORDER_NOT_SHIPPABLE",
                    format!(
                        "only a confirmed order can ship; this one is {}",
                        state.as_str()
                    ),
                ));
            }
        }
        let mut conn = self.conn().await?;
        let id = order.order.id;
        let shipped = conn
            .transaction(async |conn| {
                let change = Transition {
                    status: Some(OrderState::Shipped.as_str()),
                    tracking_number: Some(tracking),
                    version: Some(order.order.version + 1),
                    updated_at: Some(Utc::now()),
                    ..Transition::default()
                };
                let Some(updated) =
                    store::transition(conn, id, Step::Done, order.order.version, &change).await?
                else {
                    return Ok(None);
                };
                outbox::enqueue(conn, "order", &id.to_string(), &messages::shipped(&updated))
                    .await?;
                Ok::<_, diesel::result::Error>(Some(updated))
            })
            .await
            .map_err(error::database)?
            .ok_or_else(|| {
                error::with_reason(
                    tonic::Code::Aborted,
                    "CONCURRENT_CHANGE",
                    "the order changed meanwhile; read it again",
                )
            })?;
        self.outbox.notify();
        Ok(Response::new(pb::ShipOrderResponse {
            order: Some(messages::order(&shipped)),
        }))
    }

    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> Result<Response<pb::GetOrderResponse>, Status> {
        let id = request.into_inner().id;
        let uuid = validate::parse_uuid("id", &id).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let order = store::find(&mut conn, uuid)
            .await
            .map_err(error::database)?
            .ok_or_else(|| error::not_found("order", &id))?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(messages::order(&order)),
        }))
    }
}
