//! The order binary.

fn main() {}
