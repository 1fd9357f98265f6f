//! Mercato statistics service.
