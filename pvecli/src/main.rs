//! `orbitlab`: the command-line edge over the engine.

fn main() {}
