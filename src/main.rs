//! The `parley` command: a real-time streaming Thinker–Talker voice agent, and a tool to measure
//! how fast its listen–think–speak loop is.

mod cli;
mod commands;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    pin_compute_threads();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PARLEY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = cli::Cli::parse();
    cli::run(cli)
}

/// candle sizes its CPU thread pool from `RAYON_NUM_THREADS`; when unset it recounts the cores
/// (reading /proc/cpuinfo) on every matmul, which costs more than a whole Silero VAD window.
/// Setting it once, to the same count, removes that cost.
fn pin_compute_threads() {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        // SAFETY: called first thing in main, before any other thread exists, so nothing can
        // read the environment concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", cores.to_string()) };
    }
}
