//! Proto messages built from stored rows: the responses and the events of `events.proto`.

use mercato::pb::inventory::v1 as pb;
use mercato_kernel::time::to_timestamp;
use uuid::Uuid;

use crate::domain::{Item, ReservationStatus};
use crate::store::{Reservation, StockRow};

/// The stock of a product as the API shows it.
pub fn stock(row: &StockRow) -> pb::Stock {
    pb::Stock {
        product_id: row.product_id.to_string(),
        on_hand: row.on_hand,
        reserved: row.reserved,
        available: row.available(),
        update_time: Some(to_timestamp(row.updated_at)),
    }
}

/// The stock of a product that never had a stock record: nothing on hand.
pub fn no_stock(product_id: Uuid) -> pb::Stock {
    pb::Stock {
        product_id: product_id.to_string(),
        ..Default::default()
    }
}

fn items(items: &[Item]) -> Vec<pb::StockItem> {
    items
        .iter()
        .map(|item| pb::StockItem {
            product_id: item.product_id.to_string(),
            quantity: item.quantity,
        })
        .collect()
}

/// A reservation as the API shows it.
pub fn reservation(reservation: &Reservation, status: ReservationStatus) -> pb::Reservation {
    pb::Reservation {
        order_id: reservation.row.order_id.clone(),
        items: items(&reservation.items),
        status: status.to_proto().into(),
        create_time: Some(to_timestamp(reservation.row.created_at)),
        update_time: Some(to_timestamp(reservation.row.updated_at)),
    }
}

/// Units were held for an order; `stocks` are the products' stock after the change.
pub fn stock_reserved(reservation: &Reservation, stocks: &[StockRow]) -> pb::StockReserved {
    pb::StockReserved {
        order_id: reservation.row.order_id.clone(),
        items: items(&reservation.items),
        stocks: stocks.iter().map(stock).collect(),
        reserve_time: Some(to_timestamp(reservation.row.created_at)),
    }
}

/// An order's units were sold.
pub fn stock_committed(reservation: &Reservation, stocks: &[StockRow]) -> pb::StockCommitted {
    pb::StockCommitted {
        order_id: reservation.row.order_id.clone(),
        items: items(&reservation.items),
        stocks: stocks.iter().map(stock).collect(),
        commit_time: Some(to_timestamp(reservation.row.updated_at)),
    }
}

/// An order's units were given back (to on hand when `restocked`).
pub fn stock_released(reservation: &Reservation, stocks: &[StockRow]) -> pb::StockReleased {
    pb::StockReleased {
        order_id: reservation.row.order_id.clone(),
        items: items(&reservation.items),
        stocks: stocks.iter().map(stock).collect(),
        restocked: reservation.row.restocked,
        release_time: Some(to_timestamp(reservation.row.updated_at)),
    }
}

/// An administrator corrected the stock on hand by `delta`.
pub fn stock_adjusted(
    row: &StockRow,
    delta: i32,
    reason: &str,
    actor_id: &str,
) -> pb::StockAdjusted {
    pb::StockAdjusted {
        product_id: row.product_id.to_string(),
        delta,
        stock: Some(stock(row)),
        reason: reason.to_owned(),
        actor_id: actor_id.to_owned(),
        adjust_time: Some(to_timestamp(row.updated_at)),
    }
}
