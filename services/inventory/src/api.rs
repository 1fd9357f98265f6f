//! The gRPC surface of the inventory. Each write is one transaction that changes the stock
//! and writes its event to the outbox; the AuthLayer has already enforced each RPC's policy.

use diesel_async::{AsyncConnection as _, AsyncPgConnection};
use mercato::pb::inventory::v1 as pb;
use mercato::pb::inventory::v1::inventory_service_server::InventoryService;
use mercato_kernel::auth::Principal;
use mercato_kernel::db::{DbConn, DbPool};
use mercato_kernel::error::{self, FieldViolations};
use mercato_kernel::events::outbox::{self, OutboxNotifier};
use mercato_kernel::validate;
use tonic::{Request, Response, Status};

use crate::domain::{
    Adjustment, Item, OrderId, Repeat, ReservationStatus, ReserveCommand, Shortfall, Step,
    Transition,
};
use crate::error::Error;
use crate::messages;
use crate::store::{self, Reservation};

/// `source` of every event the inventory publishes.
const SOURCE: &str = "inventory";

/// The inventory's gRPC service.
#[derive(Clone)]
pub struct InventoryApi {
    db: DbPool,
    outbox: OutboxNotifier,
}

impl InventoryApi {
    /// An inventory over `db`, waking the outbox relay after each committed event.
    pub fn new(db: DbPool, outbox: OutboxNotifier) -> Self {
        Self { db, outbox }
    }

    async fn conn(&self) -> Result<DbConn, Status> {
        self.db.get().await.map_err(error::pool)
    }
}

/// The status stored in `reservation`.
fn status_of(reservation: &store::ReservationRow) -> Result<ReservationStatus, Error> {
    reservation
        .status()
        .ok_or_else(|| Error::Corrupt(format!("reservation status {:?}", reservation.status)))
}

/// The reservation response of `reservation`.
fn reservation_message(reservation: &Reservation) -> Result<pb::Reservation, Status> {
    Ok(messages::reservation(
        reservation,
        status_of(&reservation.row)?,
    ))
}

/// Why `items` (sorted; the first is the one whose hold just failed) cannot all be reserved.
async fn shortfalls(conn: &mut AsyncPgConnection, items: &[Item]) -> Result<Vec<Shortfall>, Error> {
    let ids: Vec<_> = items.iter().map(|i| i.product_id).collect();
    let rows = store::stocks(conn, &ids).await?;
    let available = |product_id| {
        rows.iter()
            .find(|r| r.product_id == product_id)
            .map_or(0, store::StockRow::available)
    };
    Ok(items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let shortfall = Shortfall {
                product_id: item.product_id,
                available: available(item.product_id),
                requested: item.quantity,
            };
            (i, shortfall)
        })
        // The failed one is always reported, even if a release freed units since.
        .filter(|(i, s)| *i == 0 || s.available < s.requested)
        .map(|(_, s)| s)
        .collect())
}

/// Moves a locked reservation through `transition`: each item's stock in product order,
/// then the status, then the event, all in the caller's transaction.
async fn apply(
    conn: &mut AsyncPgConnection,
    reservation: Reservation,
    transition: Transition,
) -> Result<Reservation, Error> {
    let mut stocks = Vec::with_capacity(reservation.items.len());
    for item in &reservation.items {
        stocks.push(store::shift(conn, item.product_id, transition.shift(item.quantity)).await?);
    }
    let row = store::set_status(
        conn,
        &reservation.row.order_id,
        transition.target(),
        transition.restocks(),
    )
    .await?;
    let moved = Reservation {
        row,
        items: reservation.items,
    };
    let order_id = moved.row.order_id.as_str();
    match transition {
        Transition::Commit => {
            let event = messages::stock_committed(&moved, &stocks);
            outbox::enqueue(conn, SOURCE, order_id, &event).await?;
        }
        Transition::Unhold | Transition::Restock => {
            let event = messages::stock_released(&moved, &stocks);
            outbox::enqueue(conn, SOURCE, order_id, &event).await?;
        }
    }
    Ok(moved)
}

/// The reservation of `order_id` with its items, locked for update.
async fn locked_reservation(
    conn: &mut AsyncPgConnection,
    order_id: &OrderId,
) -> Result<Option<Reservation>, Error> {
    let Some(row) = store::reservation(conn, order_id, true).await? else {
        return Ok(None);
    };
    let items = store::items(conn, &row.order_id).await?;
    Ok(Some(Reservation { row, items }))
}

#[tonic::async_trait]
impl InventoryService for InventoryApi {
    async fn get_stock(
        &self,
        request: Request<pb::GetStockRequest>,
    ) -> Result<Response<pb::GetStockResponse>, Status> {
        let product_id = validate::parse_uuid("product_id", &request.get_ref().product_id)
            .map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let row = store::stock(&mut conn, product_id)
            .await
            .map_err(error::database)?;
        // Inventory cannot know whether the catalog has the product; for ordering, a product
        // without a stock record has nothing on hand.
        let stock = row.map_or_else(|| messages::no_stock(product_id), |r| messages::stock(&r));
        Ok(Response::new(pb::GetStockResponse { stock: Some(stock) }))
    }

    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> Result<Response<pb::AdjustStockResponse>, Status> {
        let actor_id = Principal::of(&request)?.subject.clone();
        let adjustment =
            Adjustment::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let Adjustment {
            product_id,
            delta,
            ref reason,
        } = adjustment;
        let mut conn = self.conn().await?;
        let row = conn
            .transaction::<_, Error, _>(async |conn| {
                let row = if delta > 0 {
                    store::add_on_hand(conn, product_id, delta)
                        .await?
                        .ok_or(Error::StockLimit(product_id))?
                } else {
                    let units = -delta;
                    match store::remove_on_hand(conn, product_id, units).await? {
                        Some(row) => row,
                        None => {
                            let free = store::stock(conn, product_id)
                                .await?
                                .map_or(0, |s| s.available());
                            return Err(Error::InsufficientStock {
                                product_id,
                                free,
                                requested: units,
                            });
                        }
                    }
                };
                let event = messages::stock_adjusted(&row, delta, reason, &actor_id);
                outbox::enqueue(conn, SOURCE, &product_id.to_string(), &event).await?;
                Ok(row)
            })
            .await?;
        self.outbox.notify();
        tracing::info!(%product_id, delta, on_hand = row.on_hand, actor_id, "stock adjusted");
        Ok(Response::new(pb::AdjustStockResponse {
            stock: Some(messages::stock(&row)),
        }))
    }

    async fn reserve_stock(
        &self,
        request: Request<pb::ReserveStockRequest>,
    ) -> Result<Response<pb::ReserveStockResponse>, Status> {
        let cmd = ReserveCommand::parse(request.get_ref()).map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let (reservation, created) = conn
            .transaction::<_, Error, _>(async |conn| {
                // The reservation row first: a repeat (or a tombstone) is found here, and
                // concurrent calls for one order queue on it.
                let Some(row) =
                    store::insert_reservation(conn, &cmd.order_id, ReservationStatus::Held).await?
                else {
                    // Locked, so a repeat answers after an in-flight commit or release.
                    let existing = store::reservation(conn, &cmd.order_id, true)
                        .await?
                        .ok_or_else(|| Error::Corrupt("conflicting reservation vanished".into()))?;
                    let stored = store::items(conn, &existing.order_id).await?;
                    return match status_of(&existing)?.on_repeat(&stored, &cmd.items) {
                        Repeat::Unchanged => Ok((
                            Reservation {
                                row: existing,
                                items: stored,
                            },
                            false,
                        )),
                        Repeat::Mismatch => Err(Error::Mismatch(cmd.order_id.clone())),
                        Repeat::Released => Err(Error::Released(cmd.order_id.clone())),
                    };
                };
                // Items are sorted by product id: every transaction locks stock rows in the
                // same order, so concurrent reservations cannot deadlock.
                let mut stocks = Vec::with_capacity(cmd.items.len());
                for (i, item) in cmd.items.iter().enumerate() {
                    match store::hold(conn, item.product_id, item.quantity).await? {
                        Some(stock) => stocks.push(stock),
                        // Returning the error rolls back the holds made so far.
                        None => {
                            return Err(Error::OutOfStock(
                                shortfalls(conn, &cmd.items[i..]).await?,
                            ));
                        }
                    }
                }
                store::insert_items(conn, &cmd.order_id, &cmd.items).await?;
                let reservation = Reservation {
                    row,
                    items: cmd.items.clone(),
                };
                let event = messages::stock_reserved(&reservation, &stocks);
                outbox::enqueue(conn, SOURCE, cmd.order_id.as_str(), &event).await?;
                Ok((reservation, true))
            })
            .await?;
        if created {
            self.outbox.notify();
            tracing::info!(order_id = %cmd.order_id, items = cmd.items.len(), "stock reserved");
        }
        Ok(Response::new(pb::ReserveStockResponse {
            reservation: Some(reservation_message(&reservation)?),
        }))
    }

    async fn release_reservation(
        &self,
        request: Request<pb::ReleaseReservationRequest>,
    ) -> Result<Response<pb::ReleaseReservationResponse>, Status> {
        let order_id = OrderId::parse_field(&request.get_ref().order_id)
            .map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let (reservation, moved) = conn
            .transaction::<_, Error, _>(async |conn| {
                let current = match locked_reservation(conn, &order_id).await? {
                    Some(current) => current,
                    None => {
                        // Compensation overtook the reservation: a tombstone makes sure the
                        // late ReserveStock can never hold stock for this order.
                        if let Some(row) =
                            store::insert_reservation(conn, &order_id, ReservationStatus::Released)
                                .await?
                        {
                            let tombstone = Reservation {
                                row,
                                items: Vec::new(),
                            };
                            return Ok((tombstone, false));
                        }
                        // A ReserveStock of this order committed meanwhile: release that.
                        locked_reservation(conn, &order_id).await?.ok_or_else(|| {
                            Error::Corrupt("conflicting reservation vanished".into())
                        })?
                    }
                };
                match status_of(&current.row)?.on_release() {
                    Step::Move(transition) => Ok((apply(conn, current, transition).await?, true)),
                    Step::Unchanged => Ok((current, false)),
                    Step::Refuse => Err(Error::Released(order_id.clone())),
                }
            })
            .await?;
        if moved {
            self.outbox.notify();
            tracing::info!(%order_id, restocked = reservation.row.restocked, "reservation released");
        }
        Ok(Response::new(pb::ReleaseReservationResponse {
            reservation: Some(reservation_message(&reservation)?),
        }))
    }

    async fn commit_reservation(
        &self,
        request: Request<pb::CommitReservationRequest>,
    ) -> Result<Response<pb::CommitReservationResponse>, Status> {
        let order_id = OrderId::parse_field(&request.get_ref().order_id)
            .map_err(FieldViolations::into_status)?;
        let mut conn = self.conn().await?;
        let (reservation, moved) = conn
            .transaction::<_, Error, _>(async |conn| {
                let current = locked_reservation(conn, &order_id)
                    .await?
                    .ok_or_else(|| Error::NotFound(order_id.clone()))?;
                match status_of(&current.row)?.on_commit() {
                    Step::Move(transition) => Ok((apply(conn, current, transition).await?, true)),
                    Step::Unchanged => Ok((current, false)),
                    Step::Refuse => Err(Error::Released(order_id.clone())),
                }
            })
            .await?;
        if moved {
            self.outbox.notify();
            tracing::info!(%order_id, "reservation committed");
        }
        Ok(Response::new(pb::CommitReservationResponse {
            reservation: Some(reservation_message(&reservation)?),
        }))
    }
}
