//! Mercato notification service.
