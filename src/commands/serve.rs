//! `parley serve`: the Realtime WebSocket server on the loaded models.

use std::sync::Arc;

use parley::engine::Engine;
use parley::engine::websocket::EngineRunner;
use parley::serve::config::{ServeArgs, ServeConfig};

pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let config = ServeConfig::load(args)?;
    let engine = Engine::from_serve_config(&config)?;
    let runner = Arc::new(EngineRunner::new(engine));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(parley::serve::serve(config, runner, |addr| {
        let url = format!("ws://{addr}/v1/realtime");
        println!("parley is listening on {url}");
        println!("  talk:      parley talk --connect {url}");
        println!("  converse:  parley converse --connect {url} --input question.wav");
        println!("  bench:     parley bench --url {url} --sessions 2");
        println!("  health:    http://{addr}/healthz    metrics: http://{addr}/metrics");
        println!("Ctrl-C stops it (sessions end cleanly).");
    }))
}
