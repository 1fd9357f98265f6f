//! Inventory integration tests against the real Postgres and NATS, with a real identity
//! service issuing the tokens. Each test has its own databases and NATS namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod events;
mod reservations;
mod stock;
mod validation;

use mercato::pb::inventory::v1::inventory_service_client::InventoryServiceClient;
use mercato::pb::inventory::v1::{
    AdjustStockRequest, CommitReservationRequest, GetStockRequest, ReleaseReservationRequest,
    Reservation, ReserveStockRequest, Stock, StockItem,
};
use mercato_testkit::{TestService, authed};
use tonic::Status;
use tonic::transport::Channel;
use tonic_types::StatusExt as _;

/// An inventory wired to its own identity, with an admin and a service-account token.
pub struct TestInventory(pub TestService);

impl std::ops::Deref for TestInventory {
    type Target = TestService;
    fn deref(&self) -> &TestService {
        &self.0
    }
}

impl TestInventory {
    pub async fn start() -> Self {
        Self(TestService::start("inventory", inventory::start).await)
    }

    pub async fn client(&self) -> InventoryServiceClient<Channel> {
        InventoryServiceClient::new(mercato_testkit::channel(self.running.grpc_addr).await)
    }

    /// Adds (or removes) units on hand as the administrator.
    pub async fn adjust(&self, product_id: &str, delta: i32) -> Result<Stock, Status> {
        let request = AdjustStockRequest {
            product_id: product_id.into(),
            delta,
            reason: "test".into(),
        };
        self.client()
            .await
            .adjust_stock(authed(request, &self.admin))
            .await
            .map(|r| r.into_inner().stock.unwrap())
    }

    /// A new product with `units` on hand (none: no stock record at all).
    pub async fn product(&self, units: i32) -> String {
        let id = uuid::Uuid::now_v7().to_string();
        if units > 0 {
            self.adjust(&id, units).await.unwrap();
        }
        id
    }

    /// The stock of a product, read anonymously.
    pub async fn stock(&self, product_id: &str) -> Stock {
        self.client()
            .await
            .get_stock(GetStockRequest {
                product_id: product_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .stock
            .unwrap()
    }

    /// (on_hand, reserved, available) of a product.
    pub async fn counts(&self, product_id: &str) -> (i32, i32, i32) {
        let stock = self.stock(product_id).await;
        (stock.on_hand, stock.reserved, stock.available)
    }

    /// ReserveStock as a service account.
    pub async fn reserve(
        &self,
        order_id: &str,
        items: &[(&str, i32)],
    ) -> Result<Reservation, Status> {
        self.client()
            .await
            .reserve_stock(authed(reserve_request(order_id, items), &self.service))
            .await
            .map(|r| r.into_inner().reservation.unwrap())
    }

    /// CommitReservation as a service account.
    pub async fn commit(&self, order_id: &str) -> Result<Reservation, Status> {
        let request = CommitReservationRequest {
            order_id: order_id.into(),
        };
        self.client()
            .await
            .commit_reservation(authed(request, &self.service))
            .await
            .map(|r| r.into_inner().reservation.unwrap())
    }

    /// ReleaseReservation as a service account.
    pub async fn release(&self, order_id: &str) -> Result<Reservation, Status> {
        let request = ReleaseReservationRequest {
            order_id: order_id.into(),
        };
        self.client()
            .await
            .release_reservation(authed(request, &self.service))
            .await
            .map(|r| r.into_inner().reservation.unwrap())
    }
}

pub fn reserve_request(order_id: &str, items: &[(&str, i32)]) -> ReserveStockRequest {
    ReserveStockRequest {
        order_id: order_id.into(),
        items: items
            .iter()
            .map(|(product_id, quantity)| StockItem {
                product_id: (*product_id).into(),
                quantity: *quantity,
            })
            .collect(),
    }
}

/// The ErrorInfo reason of a failed call.
pub fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}
