//! order integration tests.
