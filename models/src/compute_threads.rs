//! candle's CPU thread count, fixed once per process.
//!
//! candle sizes its CPU thread pool from `RAYON_NUM_THREADS`; when unset, candle 0.11 recounts
//! the cores (reading /proc/cpuinfo) on every matmul, which costs more than a whole Silero VAD
//! window (measured 170 vs 51 µs per window, 79 vs 96 LLM tokens/s). The binary and the
//! benchmarks set it once, to the machine's core count, before anything else runs.

/// Sets `RAYON_NUM_THREADS` to the number of cores unless the user set it.
///
/// # Safety
/// Must be called before the process starts any other thread: changing the environment while
/// another thread may read it is undefined behaviour.
pub unsafe fn pin_compute_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: the caller guarantees no other thread exists yet.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", cores.to_string()) };
    }
}
