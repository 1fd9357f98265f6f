//! Mercato order-query service.
