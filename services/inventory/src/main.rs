//! The inventory binary.

fn main() {}
