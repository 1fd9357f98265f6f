//! Mercato review service.
