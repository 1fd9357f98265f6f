//! Mercato edge gateway.
