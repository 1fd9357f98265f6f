//! statistics integration tests.
