//! `parley generate "prompt"`: the Thinker alone (the GGUF LLM, or with `--qwen` the
//! Qwen2.5-Omni Thinker, asked by text or by a WAV), streaming its answer.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use parley_models::catalog::SMOLLM2_135M;
use parley_thinker::llm::{GgufThinker, SessionConfig};
use parley_thinker::seam::{StopReason, Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

pub struct GenerateArgs {
    pub prompt: String,
    /// A GGUF file to use instead of the installed SmolLM2.
    pub model: Option<PathBuf>,
    /// A Qwen2.5-Omni hub repo or checkpoint directory.
    pub qwen: Option<String>,
    /// A spoken question for the Qwen Thinker.
    pub audio: Option<PathBuf>,
    pub system: Option<String>,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub seed: u64,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
    if args.qwen.is_some() {
        return run_qwen(args);
    }
    let path = match args.model {
        Some(p) => p,
        None => super::model_dir::require(SMOLLM2_135M)?.join("model.gguf"),
    };
    let defaults = SessionConfig::default();
    let config = SessionConfig {
        system_prompt: args.system.or(defaults.system_prompt.clone()),
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        seed: args.seed,
        ..defaults
    };
    let mut thinker = GgufThinker::load(&path, config)?;

    let prefill_start = Instant::now();
    thinker.user_turn(&args.prompt)?;
    let prefill = prefill_start.elapsed();
    let prompt_tokens = thinker.last_prefill_tokens();

    stream_answer(&mut thinker, prefill, prompt_tokens, args.max_tokens)?;
    Ok(())
}

/// Prints the answer as it streams, then the prompt and decode speeds.
fn stream_answer<T: Thinker>(
    thinker: &mut T,
    prefill: std::time::Duration,
    prompt_tokens: usize,
    max_tokens: usize,
) -> anyhow::Result<()> {
    let cancel = CancelGuard::never();
    let decode_start = Instant::now();
    let mut first_token = None;
    let mut stdout = std::io::stdout();
    let (reason, tokens) = loop {
        match thinker.next_event(&cancel)? {
            ThinkerEvent::Token(t) => {
                first_token.get_or_insert_with(|| decode_start.elapsed());
                // Streamed as generated; a failed write to stdout is not worth stopping for.
                let _ = write!(stdout, "{}", t.text);
                let _ = stdout.flush();
            }
            ThinkerEvent::Done { reason, tokens } => break (reason, tokens),
        }
    };
    let decode = decode_start.elapsed();
    println!();
    if reason == StopReason::MaxTokens {
        eprintln!("(stopped at max tokens: {})", max_tokens);
    }
    eprintln!(
        "prompt: {prompt_tokens} tokens in {:.0} ms ({:.0} tokens/s); decode: {tokens} tokens in \
         {:.0} ms ({:.1} tokens/s); first token after {:.0} ms",
        prefill.as_secs_f64() * 1e3,
        prompt_tokens as f64 / prefill.as_secs_f64().max(1e-9),
        decode.as_secs_f64() * 1e3,
        tokens as f64 / decode.as_secs_f64().max(1e-9),
        (prefill + first_token.unwrap_or_default()).as_secs_f64() * 1e3,
    );
    Ok(())
}

/// The Qwen2.5-Omni Thinker: checkpoint from the hub (HF cache) or a directory.
fn run_qwen(args: GenerateArgs) -> anyhow::Result<()> {
    use parley_thinker::qwen::{self, QwenSession, QwenTokenizer};

    let model = args.qwen.as_deref().unwrap_or_default();
    let dir = qwen::hub::resolve(model, true)?;
    let checkpoint = qwen::Checkpoint::open(&dir)?;
    let device = qwen::device::default_device()?;
    // The loader logs the weights' size, the load time and the resident memory.
    let load_start = Instant::now();
    let thinker = parley::engine::qwen_models::load_thinker(&checkpoint, &device)?;
    let tokenizer = QwenTokenizer::from_checkpoint_dir(&dir, &checkpoint.config)?;
    eprintln!("loaded in {:.1} s", load_start.elapsed().as_secs_f64());
    let defaults = qwen::SessionConfig::default();
    let config = qwen::SessionConfig {
        system_prompt: args.system.unwrap_or(defaults.system_prompt),
        temperature: args.temperature,
        top_p: args.top_p,
        max_tokens: args.max_tokens,
        seed: args.seed,
    };
    let mut session = QwenSession::new(thinker, tokenizer, config);
    let before = session.cache_len();
    let prefill_start = Instant::now();
    match &args.audio {
        Some(path) => {
            let samples = parley_audio_io::wav::read_wav(path, qwen::features::SAMPLE_RATE)
                .with_context(|| format!("reading {}", path.display()))?;
            session.begin_audio_turn()?;
            // As a live turn would arrive: 100 ms at a time, blocks encoded as they complete.
            for piece in samples.chunks(qwen::features::SAMPLE_RATE as usize / 10) {
                session.push_audio(piece)?;
            }
            session.end_audio_turn()?;
        }
        None => session.user_turn(&args.prompt)?,
    }
    let prefill = prefill_start.elapsed();
    let prompt_tokens = session.cache_len() - before;
    stream_answer(&mut session, prefill, prompt_tokens, args.max_tokens)
}
