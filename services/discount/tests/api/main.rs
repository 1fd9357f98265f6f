//! discount integration tests.
