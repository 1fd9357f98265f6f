//! inventory integration tests.
