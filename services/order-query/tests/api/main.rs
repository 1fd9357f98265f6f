//! order-query integration tests.
