//! The discount binary.

fn main() {}
