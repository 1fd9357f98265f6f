//! The payment binary.

fn main() {}
