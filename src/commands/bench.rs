//! `parley bench`: N concurrent sessions over WebSocket from WAV scripts at real-time pace;
//! voice-to-voice and stage latencies as a table and JSON (`v2v_ms_p50`, ...).

use std::path::PathBuf;
use std::sync::Arc;

use parley_client::{BenchOptions, Script, run_bench};

use parley::serve::local::LocalServer;

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// A running server (`ws://HOST:PORT/v1/realtime`); default: one inside this process.
    #[arg(long)]
    pub url: Option<String>,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 1)]
    pub sessions: usize,
    /// Questions each session says in turn (repeatable).
    #[arg(long = "input", short = 'i')]
    pub inputs: Vec<PathBuf>,
    /// A script file instead (TOML or JSON; see `parley converse --help`).
    #[arg(long, conflicts_with = "inputs")]
    pub script: Option<PathBuf>,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Milliseconds between session starts, so turns do not all line up.
    #[arg(long, default_value_t = 0)]
    pub stagger_ms: u64,
    /// Send audio as fast as the server takes it (load only; latencies then mean nothing).
    #[arg(long)]
    pub fast: bool,
    /// Bearer key for `--url`.
    #[arg(long, env = "PARLEY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let script = match (&args.script, args.inputs.is_empty()) {
        (Some(file), _) => Script::from_file(file)?,
        (None, false) => Script::from_inputs(&args.inputs, parley_client::DEFAULT_ANSWER_TIMEOUT)?,
        (None, true) => anyhow::bail!("give the sessions something to say: --input question.wav"),
    };
    let script = Arc::new(script.load()?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(async {
        let (url, local) = LocalServer::unless_url(args.url.as_deref(), args.sessions).await?;
        let mut options = BenchOptions::new(url, args.sessions.max(1));
        options.session.api_key = args.api_key.clone();
        options.session.fast = args.fast;
        options.stagger = std::time::Duration::from_millis(args.stagger_ms);
        let report = run_bench(&options, script).await;
        if let Some(local) = local {
            local.stop().await?;
        }
        anyhow::Ok(report)
    })?;
    println!("{}", report.render_table());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
