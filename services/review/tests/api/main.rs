//! review integration tests.
