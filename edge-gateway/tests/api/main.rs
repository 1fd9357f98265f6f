//! Gateway end-to-end tests: one gateway per test on an ephemeral port, in front of real
//! services (the test shop) or stubs where a behaviour needs control over the upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod authorization;
mod bad_bodies;
mod connections;
mod endpoints;
mod grpc_web;
mod helpers;
mod passthrough;
mod replicas;
mod rest;
mod stubs;
