//! The order-query binary.

fn main() {}
