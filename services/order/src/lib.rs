//! Mercato order service.
