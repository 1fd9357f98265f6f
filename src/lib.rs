//! Mercato's protobuf contracts: the tonic/prost code generated from `proto/` and the encoded
//! descriptor set of every file, for server reflection and the edge gateway's transcoding.
//!
//! Modules mirror the proto packages: `mercato::catalog::v1::CatalogServiceClient`, …
//! [`order_events`] reads the order an order event carries, one rule for every consumer.

#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs,
    rustdoc::all
)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/_includes.rs"));
}

pub use generated::{google, mercato as pb};

pub mod order_events;

/// Encoded `google.protobuf.FileDescriptorSet` of every proto file (imports and source info
/// included; custom options such as `google.api.http` preserved).
pub const DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/mercato_descriptor.bin"));
