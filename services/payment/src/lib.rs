//! Mercato payment service.
