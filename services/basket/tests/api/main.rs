//! basket integration tests.
