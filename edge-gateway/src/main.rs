//! The edge-gateway binary.

fn main() {}
