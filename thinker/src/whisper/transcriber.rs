//! Whisper tiny.en speech recognition of one utterance: log-mel, encoder, greedy decoder.
//!
//! The utterance is encoded at its own length instead of Whisper's 30 s window: candle's
//! `AudioEncoder` narrows its sinusoidal positional embedding to the frames it is given, so a 3 s
//! clip costs 150 encoder positions instead of 1500. Decoding is greedy with the prompt
//! `<|startoftranscript|><|notimestamps|>`, the config's `suppress_tokens` on every step and
//! `begin_suppress_tokens` (blank, end of text) on the first, like the reference
//! (tools/reference/whisper_transcripts.py).
//!
//! Not padding has one visible effect: Whisper predicts end-of-text when it sees the rest of its
//! 30 s window empty. On a bare utterance it instead starts the transcript over after the last
//! word. The decoder's alignment heads (config `alignment_heads`) show where in the audio each
//! step reads; when that jumps back by more than half a second the transcript is complete (see
//! `restarts_reading`). With this rule all committed reference utterances decode exactly; padding
//! with silence instead does not work short of the full 30 s (tried +0.1, +0.5, +1 and +5 s:
//! most clips still repeat), and the full window costs ~1500 encoder positions.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, IndexOp, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{self as candle_whisper, model::Whisper};
use serde::Deserialize;
use tokenizers::Tokenizer;

use super::decoder::CachedDecoder;
use super::error::WhisperError;
use super::mel::LogMel;
use crate::stream::CancelGuard;

/// Whisper's sample rate; the engine feeds 16 kHz model input (`MODEL_INPUT_RATE`).
pub const SAMPLE_RATE: u32 = parley_audio_io::constants::MODEL_INPUT_RATE;
/// Longest stretch the encoder takes at once (its 1500 positions are 3000 mel frames = 30 s).
pub const MAX_WINDOW_SAMPLES: usize = 30 * SAMPLE_RATE as usize;

/// Reference rule for "no speech": the probability of `<|nocaptions|>` at the start-of-transcript
/// position above this...
pub const NO_SPEECH_THRESHOLD: f32 = 0.6;
/// ...and an average token log-probability below this (openai-whisper's `transcribe` defaults).
pub const LOGPROB_THRESHOLD: f32 = -1.0;

/// Token budget per window: a generous speaking rate (about three times fast speech) plus a
/// constant, so a decoder stuck repeating itself on noise stops early instead of running to the
/// 448-position context.
const MAX_TOKENS_PER_SECOND: usize = 16;
const MIN_TOKEN_BUDGET: usize = 16;

/// File names inside the model directory (`parley models fetch` writes them).
pub const CONFIG_FILE: &str = "config.json";
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const TOKENIZER_FILE: &str = "tokenizer.json";

/// The special tokens decoding needs, looked up once in the tokenizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialTokens {
    pub start_of_transcript: u32,
    pub no_timestamps: u32,
    pub end_of_text: u32,
    /// `<|nocaptions|>` in English-only models, `<|nospeech|>` in newer multilingual ones.
    pub no_speech: u32,
}

impl SpecialTokens {
    fn from_tokenizer(tokenizer: &Tokenizer) -> Result<Self, WhisperError> {
        let id = |name: &str| {
            tokenizer
                .token_to_id(name)
                .ok_or_else(|| WhisperError::MissingSpecialToken(name.to_string()))
        };
        let no_speech = candle_whisper::NO_SPEECH_TOKENS
            .iter()
            .find_map(|name| tokenizer.token_to_id(name))
            .ok_or_else(|| WhisperError::MissingSpecialToken("<|nocaptions|>".to_string()))?;
        Ok(Self {
            start_of_transcript: id(candle_whisper::SOT_TOKEN)?,
            no_timestamps: id(candle_whisper::NO_TIMESTAMPS_TOKEN)?,
            end_of_text: id(candle_whisper::EOT_TOKEN)?,
            no_speech,
        })
    }

    /// The decoder prompt of an English-only model transcribing without timestamps.
    fn prompt(&self) -> [u32; 2] {
        [self.start_of_transcript, self.no_timestamps]
    }
}

/// The fields of config.json that candle's `Config` does not keep.
#[derive(Debug, Deserialize)]
struct ExtraConfig {
    #[serde(default)]
    begin_suppress_tokens: Vec<u32>,
    /// `[layer, head]` pairs of decoder cross-attention heads that follow the spoken words.
    #[serde(default)]
    alignment_heads: Vec<(usize, usize)>,
}

/// Where the time of one transcription went (filled by `transcribe_timed`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimings {
    pub mel: std::time::Duration,
    pub encoder: std::time::Duration,
    pub decoder: std::time::Duration,
    /// Decoder steps run (generated tokens plus the final end-of-text step).
    pub decoder_steps: usize,
}

/// The decoded text of one window and whether Whisper judged it speech.
#[derive(Debug, Clone, PartialEq)]
struct WindowResult {
    text: String,
    no_speech_prob: f32,
    avg_logprob: f32,
}

/// Whisper speech recognition; load once, then transcribe utterance after utterance.
///
/// `Clone` shares the weights (candle tensors and the decoder's matrices are reference-counted)
/// and gives the clone its own decoding state: one per session, transcribing in parallel.
#[derive(Clone)]
pub struct Transcriber {
    model: Whisper,
    decoder: CachedDecoder,
    mel: LogMel,
    tokenizer: Tokenizer,
    tokens: SpecialTokens,
    /// Additive logit masks: `-inf` on tokens never to emit / not to emit first.
    suppress: Vec<f32>,
    suppress_first: Vec<f32>,
    alignment_heads: Vec<(usize, usize)>,
    device: Device,
}

impl std::fmt::Debug for Transcriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcriber")
            .field("tokens", &self.tokens)
            .field("config", &self.model.config)
            .finish_non_exhaustive()
    }
}

impl Transcriber {
    /// Loads config.json, model.safetensors (f16 on disk, converted to f32 for the CPU) and
    /// tokenizer.json from `model_dir` (e.g. `~/.cache/parley/models/whisper-tiny.en`).
    pub fn load(model_dir: &Path) -> Result<Self, WhisperError> {
        let device = Device::Cpu;
        let config_path = existing_file(model_dir, CONFIG_FILE)?;
        let weights_path = existing_file(model_dir, WEIGHTS_FILE)?;
        let tokenizer_path = existing_file(model_dir, TOKENIZER_FILE)?;

        let config_text =
            std::fs::read_to_string(&config_path).map_err(|e| bad(&config_path, e))?;
        let config: candle_whisper::Config =
            serde_json::from_str(&config_text).map_err(|e| bad(&config_path, e))?;
        let extra: ExtraConfig =
            serde_json::from_str(&config_text).map_err(|e| bad(&config_path, e))?;

        // Convert every tensor to f32 once: the candle encoder and our decoder then share the
        // same storage (`to_dtype` to the same dtype is a cheap clone).
        let weights: HashMap<String, Tensor> =
            candle_core::safetensors::load(&weights_path, &device)
                .map_err(|e| bad(&weights_path, e))?
                .into_iter()
                .map(|(name, t)| Ok((name, t.to_dtype(DType::F32)?)))
                .collect::<Result<_, candle_core::Error>>()?;
        let vb = VarBuilder::from_tensors(weights, DType::F32, &device);
        let model = Whisper::load(&vb, config.clone()).map_err(|e| bad(&weights_path, e))?;
        let decoder = CachedDecoder::load(vb.pp("model.decoder"), &config)
            .map_err(|e| bad(&weights_path, e))?;

        let tokenizer =
            Tokenizer::from_file(&tokenizer_path).map_err(|e| bad(&tokenizer_path, e))?;
        let tokens = SpecialTokens::from_tokenizer(&tokenizer)?;

        let vocab = config.vocab_size;
        let mut suppress = vec![0f32; vocab];
        for &id in &config.suppress_tokens {
            if let Some(slot) = suppress.get_mut(id as usize) {
                *slot = f32::NEG_INFINITY;
            }
        }
        let mut suppress_first = suppress.clone();
        for &id in &extra.begin_suppress_tokens {
            if let Some(slot) = suppress_first.get_mut(id as usize) {
                *slot = f32::NEG_INFINITY;
            }
        }

        let mel = LogMel::new(config.num_mel_bins, SAMPLE_RATE);
        Ok(Self {
            model,
            decoder,
            mel,
            tokenizer,
            tokens,
            suppress,
            suppress_first,
            alignment_heads: extra.alignment_heads,
            device,
        })
    }

    pub fn special_tokens(&self) -> SpecialTokens {
        self.tokens
    }

    /// Transcribes one utterance (16 kHz mono), calling `on_piece` with each new piece of text as
    /// it is decoded; the pieces concatenate to the returned text. Silence, noise and empty
    /// input give an empty transcript (see `is_speech`). Checks `cancel` before every decoder
    /// step and returns `WhisperError::Cancelled` once it is cancelled.
    pub fn transcribe(
        &mut self,
        samples: &[f32],
        cancel: &CancelGuard,
        on_piece: impl FnMut(&str),
    ) -> Result<String, WhisperError> {
        self.transcribe_timed(samples, cancel, on_piece)
            .map(|(text, _)| text)
    }

    /// `transcribe`, also reporting where the time went.
    pub fn transcribe_timed(
        &mut self,
        samples: &[f32],
        cancel: &CancelGuard,
        mut on_piece: impl FnMut(&str),
    ) -> Result<(String, StageTimings), WhisperError> {
        let mut timings = StageTimings::default();
        let mut text = String::new();
        // Utterances longer than the encoder's window are transcribed window by window.
        for window in samples.chunks(MAX_WINDOW_SAMPLES) {
            if cancel.is_cancelled() {
                return Err(WhisperError::Cancelled);
            }
            let start = std::time::Instant::now();
            let mel = self.log_mel(window)?;
            timings.mel += start.elapsed();

            let start = std::time::Instant::now();
            let features = self.encode(&mel)?;
            timings.encoder += start.elapsed();

            let start = std::time::Instant::now();
            let budget =
                MIN_TOKEN_BUDGET + MAX_TOKENS_PER_SECOND * window.len() / SAMPLE_RATE as usize;
            let separator = if text.is_empty() { "" } else { " " };
            let mut pieces_started = false;
            let result = self.decode(&features, budget, cancel, &mut timings, |piece| {
                if !pieces_started && !separator.is_empty() {
                    on_piece(separator);
                }
                pieces_started = true;
                on_piece(piece)
            })?;
            timings.decoder += start.elapsed();
            if !result.text.is_empty() {
                text.push_str(separator);
                text.push_str(&result.text);
            }
        }
        Ok((text, timings))
    }

    /// The log-mel features of one window (at most 30 s) as the encoder input `[1, n_mels,
    /// frames]`. Frames are the ones centred inside the clip, rounded up to an even count (the
    /// encoder's second convolution halves them).
    pub fn log_mel(&self, samples: &[f32]) -> Result<Tensor, WhisperError> {
        let frames = LogMel::frames_for(samples.len().min(MAX_WINDOW_SAMPLES)).max(1);
        let frames = frames + frames % 2;
        let mel = self.mel.compute(samples, frames);
        Ok(Tensor::from_vec(
            mel,
            (1, self.mel.n_mels(), frames),
            &self.device,
        )?)
    }

    /// Runs the encoder on log-mel features, `[1, positions, d_model]` with positions = frames / 2.
    pub fn encode(&mut self, mel: &Tensor) -> Result<Tensor, WhisperError> {
        Ok(self.model.encoder.forward(mel, true)?)
    }

    /// Greedy decoding of encoded audio. Pieces are streamed as soon as the decoded text is known
    /// to be speech: when the no-speech probability is low, from the first token; when it is high,
    /// only at the end and only if the tokens were confident (avg log-probability rule).
    fn decode(
        &mut self,
        features: &Tensor,
        max_tokens: usize,
        cancel: &CancelGuard,
        timings: &mut StageTimings,
        mut on_piece: impl FnMut(&str),
    ) -> Result<WindowResult, WhisperError> {
        let prompt = self.tokens.prompt();
        let max_tokens = max_tokens.min(self.model.config.max_target_positions - prompt.len());
        self.decoder.reset();
        let mut generated: Vec<u32> = Vec::new();
        let mut emitted = 0usize;
        let mut sum_logprob = 0f32;
        let mut no_speech_prob = 0f32;
        let mut stream_now = false;
        let mut furthest_read = 0usize;
        let mut next_input: Vec<u32> = prompt.to_vec();
        loop {
            if cancel.is_cancelled() {
                return Err(WhisperError::Cancelled);
            }
            let first = generated.is_empty() && next_input.len() == prompt.len();
            let hidden = self.decoder.forward(&next_input, features)?;
            timings.decoder_steps += 1;
            let positions = hidden.dim(1)?;
            if first {
                // The no-speech token is scored at the start-of-transcript position.
                let sot_logits = self.decoder.logits(&hidden.i((.., 0..1, ..))?)?;
                no_speech_prob = softmax_prob(&sot_logits, self.tokens.no_speech as usize);
                stream_now = no_speech_prob <= NO_SPEECH_THRESHOLD;
            }
            let mut logits =
                self.decoder
                    .logits(&hidden.i((.., positions - 1..positions, ..))?)?;
            let mask = if first {
                &self.suppress_first
            } else {
                &self.suppress
            };
            for (l, m) in logits.iter_mut().zip(mask) {
                *l += m;
            }
            let (next, logprob) = argmax_logprob(&logits);
            if next == self.tokens.end_of_text || generated.len() >= max_tokens {
                break;
            }
            // Whisper never sees the end of its 30 s window here, so after the last word it
            // tends to start the transcript over instead of predicting end-of-text. Its
            // alignment heads show it: the position it reads jumps back.
            let reading = self.decoder.attended_position(&self.alignment_heads)?;
            let restarted = reading.is_some_and(|pos| restarts_reading(pos, furthest_read));
            furthest_read = furthest_read.max(reading.unwrap_or(0));
            if restarted {
                // Punctuation attends anywhere: a final "?" predicted while looking back still
                // ends the sentence. Otherwise the words since the last sentence end may already
                // be the repeat (predicted while the reading still sat at the end of the audio):
                // they are dropped when they equal the transcript's first tokens.
                if self.is_punctuation(next)? {
                    sum_logprob += logprob;
                    generated.push(next);
                } else {
                    let repeat = self.possible_repeat_len(&generated)?;
                    generated.truncate(generated.len() - repeat);
                }
                break;
            }
            sum_logprob += logprob;
            generated.push(next);
            next_input.clear();
            next_input.push(next);
            if stream_now {
                let repeat = self.possible_repeat_len(&generated)?;
                let confirmed = &generated[..generated.len() - repeat];
                emitted = self.emit_new_text(confirmed, emitted, false, &mut on_piece)?;
            }
        }
        let avg_logprob = if generated.is_empty() {
            0.0
        } else {
            sum_logprob / generated.len() as f32
        };
        let speech = is_speech(no_speech_prob, avg_logprob);
        if !speech {
            // Only reachable when nothing was streamed (stream_now is false).
            return Ok(WindowResult {
                text: String::new(),
                no_speech_prob,
                avg_logprob,
            });
        }
        self.emit_new_text(&generated, emitted, true, &mut on_piece)?;
        Ok(WindowResult {
            text: self.text_of(&generated)?.trim().to_string(),
            no_speech_prob,
            avg_logprob,
        })
    }

    fn token_text(&self, id: u32) -> Result<String, WhisperError> {
        self.tokenizer
            .decode(&[id], false)
            .map_err(|e| WhisperError::Tokenizer(e.to_string()))
    }

    /// A token that is only punctuation (".", "?", ",", ...).
    fn is_punctuation(&self, id: u32) -> Result<bool, WhisperError> {
        let text = self.token_text(id)?;
        let text = text.trim();
        Ok(!text.is_empty() && text.chars().all(|c| c.is_ascii_punctuation()))
    }

    /// A token that ends a sentence (".", "?", "!").
    fn ends_sentence(&self, id: u32) -> Result<bool, WhisperError> {
        Ok(self.token_text(id)?.trim_end().ends_with(['.', '?', '!']))
    }

    /// How many of the newest tokens may be the start of a repeat: the tokens after the last
    /// sentence end when they equal the transcript's first tokens. They are streamed only once
    /// they diverge from it, and dropped if the decoder turns out to be starting over.
    fn possible_repeat_len(&self, generated: &[u32]) -> Result<usize, WhisperError> {
        let mut last_end = None;
        for (i, &id) in generated.iter().enumerate() {
            if self.ends_sentence(id)? {
                last_end = Some(i);
            }
        }
        Ok(match last_end {
            Some(end) if generated.starts_with(&generated[end + 1..]) => generated.len() - end - 1,
            _ => 0,
        })
    }

    /// Decoded text of the generated tokens (text tokens only), without leading whitespace.
    fn text_of(&self, generated: &[u32]) -> Result<String, WhisperError> {
        let text_ids: Vec<u32> = generated
            .iter()
            .copied()
            .filter(|&id| id < self.tokens.end_of_text)
            .collect();
        let text = self
            .tokenizer
            .decode(&text_ids, true)
            .map_err(|e| WhisperError::Tokenizer(e.to_string()))?;
        Ok(text.trim_start().to_string())
    }

    /// Streams the text decoded since `emitted` bytes. Holds back an incomplete UTF-8 sequence
    /// (decoded as U+FFFD) and trailing whitespace (the final text is trimmed) until `last`.
    fn emit_new_text(
        &self,
        generated: &[u32],
        emitted: usize,
        last: bool,
        on_piece: &mut impl FnMut(&str),
    ) -> Result<usize, WhisperError> {
        let text = self.text_of(generated)?;
        let text = text.trim_end();
        if !last && text.ends_with('\u{FFFD}') {
            return Ok(emitted);
        }
        match text.get(emitted..) {
            Some(piece) if !piece.is_empty() => {
                on_piece(piece);
                Ok(text.len())
            }
            _ => Ok(emitted),
        }
    }
}

/// openai-whisper's silence rule: a window is skipped when the model itself says "no speech"
/// (`<|nocaptions|>` probability above 0.6) *and* what it decoded anyway is unconfident (average
/// log-probability below -1). Noise decoded as a confident "you" is thereby still kept, as in
/// the reference; the rule is Whisper's own, not a separate energy gate.
pub fn is_speech(no_speech_prob: f32, avg_logprob: f32) -> bool {
    !(no_speech_prob > NO_SPEECH_THRESHOLD && avg_logprob < LOGPROB_THRESHOLD)
}

/// Whether the decoder, having read up to audio position `furthest`, now reads at `position`
/// so far back (0.5 s = 25 encoder positions) that it is transcribing audio again rather than
/// moving on. Alignment heads move forward with the words; their jitter stays within a word.
fn restarts_reading(position: usize, furthest: usize) -> bool {
    const MIN_JUMP: usize = 25;
    position + MIN_JUMP <= furthest
}

/// Probability of `index` under the softmax of `logits`.
fn softmax_prob(logits: &[f32], index: usize) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = logits.iter().map(|l| (l - max).exp()).sum();
    logits.get(index).map_or(0.0, |l| (l - max).exp() / sum)
}

/// The most likely token and its log-probability.
fn argmax_logprob(logits: &[f32]) -> (u32, f32) {
    let (best, best_logit) =
        logits
            .iter()
            .copied()
            .enumerate()
            .fold(
                (0, f32::NEG_INFINITY),
                |acc, (i, l)| if l > acc.1 { (i, l) } else { acc },
            );
    let sum: f32 = logits.iter().map(|l| (l - best_logit).exp()).sum();
    (best as u32, -sum.ln())
}

fn existing_file(dir: &Path, name: &str) -> Result<PathBuf, WhisperError> {
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(WhisperError::MissingModelFile { path })
    }
}

fn bad(path: &Path, e: impl std::fmt::Display) -> WhisperError {
    WhisperError::BadModelFile {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
