//! The steps of the journeys: one per kind of call a shopper (or the admin) makes, each with
//! its own latency histogram and error table.

/// One kind of call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// IdentityService.Register.
    SignUp,
    /// IdentityService.IssueToken, password grant.
    SignIn,
    /// IdentityService.IssueToken, refresh-token grant.
    Refresh,
    /// CatalogService.ListCategories.
    Categories,
    /// CatalogService.ListProducts of a category.
    ListProducts,
    /// CatalogService.ListProducts with a query.
    Search,
    /// CatalogService.GetProduct.
    Product,
    /// ReviewService.ListReviews.
    Reviews,
    /// ReviewService.GetRatingSummary.
    Rating,
    /// InventoryService.GetStock.
    Stock,
    /// BasketService.GetBasket.
    Basket,
    /// BasketService.ClearBasket.
    ClearBasket,
    /// BasketService.AddItem.
    AddItem,
    /// BasketService.UpdateItem.
    UpdateItem,
    /// BasketService.ApplyCoupon.
    ApplyCoupon,
    /// BasketService.Checkout.
    Checkout,
    /// OrderQueryService.WatchOrder until the order settles.
    WatchOrder,
    /// OrderQueryService.ListOrders of the shopper.
    Orders,
    /// OrderQueryService.GetOrder.
    Order,
    /// NotificationService.ListNotifications.
    Notifications,
    /// NotificationService.MarkRead.
    MarkRead,
    /// OrderQueryService.ListOrders of confirmed orders, as the admin.
    AdminOrders,
    /// OrderService.ShipOrder, as the admin.
    AdminShip,
    /// InventoryService.GetStock, as the admin.
    AdminStock,
    /// InventoryService.AdjustStock, as the admin.
    AdminRestock,
}

impl Step {
    /// Every step, in the order summaries list them.
    pub const ALL: [Step; 25] = [
        Step::SignUp,
        Step::SignIn,
        Step::Refresh,
        Step::Categories,
        Step::ListProducts,
        Step::Search,
        Step::Product,
        Step::Reviews,
        Step::Rating,
        Step::Stock,
        Step::Basket,
        Step::ClearBasket,
        Step::AddItem,
        Step::UpdateItem,
        Step::ApplyCoupon,
        Step::Checkout,
        Step::WatchOrder,
        Step::Orders,
        Step::Order,
        Step::Notifications,
        Step::MarkRead,
        Step::AdminOrders,
        Step::AdminShip,
        Step::AdminStock,
        Step::AdminRestock,
    ];

    /// Position in [`Step::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The name in summaries.
    pub fn name(self) -> &'static str {
        match self {
            Step::SignUp => "sign-up",
            Step::SignIn => "sign-in",
            Step::Refresh => "refresh-token",
            Step::Categories => "categories",
            Step::ListProducts => "list-products",
            Step::Search => "search",
            Step::Product => "product",
            Step::Reviews => "reviews",
            Step::Rating => "rating",
            Step::Stock => "stock",
            Step::Basket => "basket",
            Step::ClearBasket => "clear-basket",
            Step::AddItem => "add-item",
            Step::UpdateItem => "update-item",
            Step::ApplyCoupon => "apply-coupon",
            Step::Checkout => "checkout",
            Step::WatchOrder => "watch-order",
            Step::Orders => "orders",
            Step::Order => "order",
            Step::Notifications => "notifications",
            Step::MarkRead => "mark-read",
            Step::AdminOrders => "admin-orders",
            Step::AdminShip => "admin-ship",
            Step::AdminStock => "admin-stock",
            Step::AdminRestock => "admin-restock",
        }
    }

    /// The RPC the step calls.
    pub fn rpc(self) -> &'static str {
        match self {
            Step::SignUp => "IdentityService.Register",
            Step::SignIn | Step::Refresh => "IdentityService.IssueToken",
            Step::Categories => "CatalogService.ListCategories",
            Step::ListProducts | Step::Search => "CatalogService.ListProducts",
            Step::Product => "CatalogService.GetProduct",
            Step::Reviews => "ReviewService.ListReviews",
            Step::Rating => "ReviewService.GetRatingSummary",
            Step::Stock | Step::AdminStock => "InventoryService.GetStock",
            Step::Basket => "BasketService.GetBasket",
            Step::ClearBasket => "BasketService.ClearBasket",
            Step::AddItem => "BasketService.AddItem",
            Step::UpdateItem => "BasketService.UpdateItem",
            Step::ApplyCoupon => "BasketService.ApplyCoupon",
            Step::Checkout => "BasketService.Checkout",
            Step::WatchOrder => "OrderQueryService.WatchOrder",
            Step::Orders | Step::AdminOrders => "OrderQueryService.ListOrders",
            Step::Order => "OrderQueryService.GetOrder",
            Step::Notifications => "NotificationService.ListNotifications",
            Step::MarkRead => "NotificationService.MarkRead",
            Step::AdminShip => "OrderService.ShipOrder",
            Step::AdminRestock => "InventoryService.AdjustStock",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_step_sits_at_its_index_with_a_unique_name() {
        for (i, step) in Step::ALL.iter().enumerate() {
            assert_eq!(step.index(), i, "{step:?}");
        }
        let mut names: Vec<&str> = Step::ALL.iter().map(|s| s.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Step::ALL.len());
    }
}
