//! criterion benchmarks for parley's real-time paths live in `benches/benches/*.rs`
//! (`cargo bench -p parley-benches`). This library target is empty on purpose: the crate exists
//! only to hold the bench targets and their dev-dependencies in one place.
