//! The notification binary.

fn main() {}
