//! The `radscore` command.
fn main() {}
