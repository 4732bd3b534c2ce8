//! The `parley` command: a real-time streaming Thinker–Talker voice agent, and a tool to measure
//! how fast its listen–think–speak loop is.

mod cli;
mod commands;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    // SAFETY: first thing in main, before any other thread exists.
    unsafe { parley_models::compute_threads::pin_compute_threads() };
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
