//! payment integration tests.
