//! criterion benchmarks for parley's real-time paths live in `benches/benches/*.rs`
//! (`cargo bench --workspace --bench NAME`). The library holds only [`bench_main!`], the `main`
//! every bench target uses.

/// `criterion_main!` with candle's CPU thread count fixed first, as the `parley` binary fixes it
/// (`parley_models::compute_threads`): unset, candle re-reads /proc/cpuinfo on every matmul and
/// the benches would measure that instead of the models.
#[macro_export]
macro_rules! bench_main {
    ($($group:path),+ $(,)?) => {
        fn main() {
            // SAFETY: first thing in main, before any other thread exists.
            unsafe { parley_models::compute_threads::pin_compute_threads() };
            $($group();)+
            criterion::Criterion::default()
                .configure_from_args()
                .final_summary();
        }
    };
}
