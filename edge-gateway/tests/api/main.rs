//! Gateway end-to-end tests.
