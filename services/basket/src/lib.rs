//! Mercato basket service.
