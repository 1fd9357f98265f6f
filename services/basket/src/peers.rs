//! The services the basket calls, through the kernel's client stack (service token, deadline
//! propagation, retries of idempotent RPCs, UNAVAILABLE for a peer that cannot be reached).

use mercato::pb::catalog::v1::catalog_service_client::CatalogServiceClient;
use mercato::pb::discount::v1::discount_service_client::DiscountServiceClient;
use mercato::pb::order::v1::order_service_client::OrderServiceClient;
use mercato_kernel::client::{ClientError, PeerChannel, Peers};
use mercato_kernel::error;
use tonic::{Code, Status};

/// Clients of the basket's peers.
#[derive(Clone)]
pub struct PeerClients {
    /// Current prices (BatchGetProducts, with the service token).
    pub catalog: CatalogServiceClient<PeerChannel>,
    /// Coupon quotes (QuoteDiscount, with the service token).
    pub discount: DiscountServiceClient<PeerChannel>,
    /// Checkout (PlaceOrder, with the end user's token).
    pub order: OrderServiceClient<PeerChannel>,
}

impl PeerClients {
    /// Clients through the kernel's client stack.
    pub fn new(peers: &Peers) -> Result<Self, ClientError> {
        Ok(Self {
            catalog: CatalogServiceClient::new(peers.channel("catalog")?),
            discount: DiscountServiceClient::new(peers.channel("discount")?),
            order: OrderServiceClient::new(peers.channel("order")?),
        })
    }
}

/// What the caller is told when an internal peer call (made with the basket's own service
/// token) fails: an outage is passed on so the client retries later; any other answer means
/// the basket asked wrongly or is misconfigured, which the end user cannot fix.
pub fn internal_call_failed(peer: &str, status: Status) -> Status {
    match status.code() {
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted | Code::Cancelled => {
            status
        }
        code => error::internal(format!("{peer} answered {code:?}: {}", status.message())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outages_pass_through_and_refusals_become_internal() {
        let unavailable = internal_call_failed("catalog", Status::unavailable("catalog is down"));
        assert_eq!(unavailable.code(), Code::Unavailable);
        assert_eq!(unavailable.message(), "catalog is down");
        let refused = internal_call_failed("catalog", Status::permission_denied("service role"));
        assert_eq!(refused.code(), Code::Internal);
        assert!(!refused.message().contains("service role"));
    }
}
