//! `parley converse`: WAVs through the whole pipeline (server VAD, ears, Thinker, Talker) at
//! real-time pace, printing the transcript, the answer as it streams and one latency line per
//! turn. Against `--connect URL`, or a server started inside this process.

use std::io::Write;
use std::path::PathBuf;

use parley_audio_io::constants::WIRE_PCM_RATE;
use parley_client::{DisplayEvent, Script, SessionOptions, latency_line, run_session};

use parley::serve::local::LocalServer;

#[derive(Debug, clap::Args)]
pub struct ConverseArgs {
    /// A question to say (repeatable: said in order, each after the previous answer).
    #[arg(long = "input", short = 'i')]
    pub inputs: Vec<PathBuf>,
    /// A script file (TOML or JSON: say / pause / wait_for_answer / barge_in steps).
    #[arg(long, conflicts_with = "inputs")]
    pub script: Option<PathBuf>,
    /// Write what the listener heard of the answers (24 kHz WAV).
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Send audio as fast as the server takes it (latency numbers then mean nothing).
    #[arg(long)]
    pub fast: bool,
    /// A running server (`ws://HOST:PORT/v1/realtime`); default: one inside this process.
    #[arg(long)]
    pub connect: Option<String>,
    /// Bearer key for `--connect`.
    #[arg(long, env = "PARLEY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
}

pub fn run(args: ConverseArgs) -> anyhow::Result<()> {
    let script = match (&args.script, args.inputs.is_empty()) {
        (Some(file), _) => Script::from_file(file)?,
        (None, false) => Script::from_inputs(&args.inputs, parley_client::DEFAULT_ANSWER_TIMEOUT)?,
        (None, true) => anyhow::bail!("say something: --input question.wav (or --script FILE)"),
    };
    let script = script.load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (url, local) = LocalServer::unless_url(args.connect.as_deref(), 1).await?;
        let mut options = SessionOptions::new(url);
        options.api_key = args.api_key.clone();
        options.fast = args.fast;
        let record = run_session(&options, &script, &mut print_event).await;
        if let Some(local) = local {
            local.stop().await?;
        }
        let record = record?;
        if let Some(failure) = &record.failure {
            eprintln!("session ended early: {failure}");
        }
        if let Some(output) = &args.output {
            parley_audio_io::wav::write_wav(output, &record.heard_audio(), WIRE_PCM_RATE)?;
            eprintln!("wrote the answers as heard to {}", output.display());
        }
        anyhow::Ok(())
    })
}

fn print_event(event: DisplayEvent) {
    let mut out = std::io::stdout().lock();
    let _ = match event {
        DisplayEvent::UserTranscript { text, .. } => writeln!(out, "you: {text}"),
        DisplayEvent::AnswerStarted { .. } => write!(out, "parley: "),
        DisplayEvent::AnswerDelta { text, .. } => write!(out, "{text}"),
        DisplayEvent::AnswerDone { status, .. } if status == "completed" => writeln!(out),
        DisplayEvent::AnswerDone { status, .. } => writeln!(out, " [{status}]"),
        DisplayEvent::BargeIn { played_ms, .. } => {
            writeln!(out, " [you cut in after {played_ms} ms]")
        }
        DisplayEvent::TurnFinished(metrics) => writeln!(out, "  {}", latency_line(&metrics)),
        DisplayEvent::ServerError { code, message } => {
            writeln!(out, "server error ({code}): {message}")
        }
        _ => Ok(()),
    };
    let _ = out.flush();
}
