//! The statistics binary.

fn main() {}
