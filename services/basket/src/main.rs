//! The basket binary.

fn main() {}
