//! The review binary.

fn main() {}
