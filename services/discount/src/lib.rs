//! Mercato discount service.
