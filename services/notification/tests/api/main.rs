//! notification integration tests.
