//! `parley generate "prompt"`: the Thinker alone (GGUF LLM), streaming its answer.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use parley_models::catalog::SMOLLM2_135M;
use parley_thinker::llm::{GgufThinker, SessionConfig};
use parley_thinker::seam::{StopReason, Thinker, ThinkerEvent};
use parley_thinker::stream::CancelGuard;

pub struct GenerateArgs {
    pub prompt: String,
    /// A GGUF file to use instead of the installed SmolLM2.
    pub model: Option<PathBuf>,
    pub system: Option<String>,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub seed: u64,
}

pub fn run(args: GenerateArgs) -> anyhow::Result<()> {
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
        eprintln!("(stopped at max tokens: {})", args.max_tokens);
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
