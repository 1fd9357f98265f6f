//! Mercato inventory service.
