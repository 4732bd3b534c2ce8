//! [`GgufThinker`]: one conversation with a GGUF LLM, kept in the KV cache across turns.
//!
//! How a turn reaches the model: the whole conversation (with the new user message and the
//! generation prompt) is rendered through the chat template, and only the text after what the
//! cache already holds is tokenized and prefilled. Earlier turns are never prefilled again. The
//! cache holds the previous answer's tokens exactly as generated; the template's end-of-turn text
//! (`<|im_end|>\n` for ChatML) is the start of the next suffix. Tokenizing the suffix on its own
//! equals tokenizing the full rendering because each suffix starts with a special token.
//! SentencePiece vocabularies (Llama 2, TinyLlama): the cached text is the answer's tokens
//! as they follow the prompt (the first `▁` is a space, which templates like Llama 2's print
//! before the answer), the suffix is encoded as a continuation (no dummy prefix), and only a
//! fresh prompt gets BOS (when the GGUF asks for it and the template does not print it).
//! If a template rewrites earlier turns (the rendering no longer starts with the cached text),
//! the conversation is prefilled again from the start, which is correct, only slower.
//!
//! The answer is generated lazily: `next_event` feeds the previous token, samples the next and
//! emits it, so a token is handed out as soon as it is sampled. On barge-in, `truncate_answer`
//! rolls the KV cache back to the longest common prefix of the generated tokens and the heard
//! text's tokens; the rest of the heard text is prefilled with the next turn.
//!
//! When the conversation would outgrow the context (`context_tokens`, at most the model's
//! context length) the history is dropped: the turn is prefilled after the system prompt alone.

use std::path::Path;
use std::sync::Arc;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::LlmError;
use super::chat_template::{ChatMessage, ChatTemplate};
use super::gguf_tokenizer::{GgufTokenizer, Utf8Stream};
use super::model::{GgufModel, ModelConfig};
use super::sampling::Sampler;
use super::shared::SharedGguf;
use crate::seam::{StopReason, Thinker, ThinkerEvent, ThinkerToken};
use crate::stream::CancelGuard;

/// Prefill at most this many tokens per forward pass (bounds the attention scores' memory).
const PREFILL_CHUNK: usize = 512;

/// Per-session generation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    /// The system message at the start of the conversation; `None` keeps the template's own
    /// default (if it has one).
    pub system_prompt: Option<String>,
    /// Sampling temperature; 0 means greedy (argmax).
    pub temperature: f64,
    /// Nucleus sampling mass in (0, 1]; 1 samples from the whole distribution.
    pub top_p: f64,
    /// Longest answer in tokens; a longer one stops with `StopReason::MaxTokens`.
    pub max_tokens: usize,
    /// Seed of the sampler (the session is reproducible for a given seed).
    pub seed: u64,
    /// Penalty for tokens repeated within the answer's last `repeat_last_n` tokens; 1 disables.
    pub repeat_penalty: f32,
    pub repeat_last_n: usize,
    /// Conversation length limit in tokens; `None` is the model's context length.
    pub context_tokens: Option<usize>,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            system_prompt: Some(
                "You are a helpful voice assistant. Answer briefly, in plain spoken sentences."
                    .to_string(),
            ),
            temperature: 0.7,
            top_p: 0.9,
            max_tokens: 256,
            seed: 299_792_458,
            repeat_penalty: 1.1,
            repeat_last_n: 64,
            context_tokens: None,
        }
    }
}

impl SessionConfig {
    fn validate(&self) -> Result<(), LlmError> {
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(LlmError::Config(format!(
                "temperature must be >= 0, got {}",
                self.temperature
            )));
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return Err(LlmError::Config(format!(
                "top_p must be in (0, 1], got {}",
                self.top_p
            )));
        }
        if self.max_tokens == 0 {
            return Err(LlmError::Config("max_tokens must be at least 1".into()));
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return Err(LlmError::Config(format!(
                "repeat_penalty must be > 0, got {}",
                self.repeat_penalty
            )));
        }
        if self.context_tokens == Some(0) {
            return Err(LlmError::Config("context_tokens must be at least 1".into()));
        }
        Ok(())
    }

    fn sampler(&self) -> Sampler {
        Sampler::new(self.seed, self.temperature, self.top_p)
    }
}

/// The answer being generated (or just finished) for the last user turn.
#[derive(Debug, Clone)]
struct Answer {
    /// KV position of the answer's first token.
    start: usize,
    /// Tokens emitted so far (after `truncate_answer`: the heard text's tokens).
    ids: Vec<u32>,
    /// How many of `ids` are in the KV cache.
    fed: usize,
    /// Logits for the next token, when `fed == ids.len()` and they are not used yet.
    logits: Option<Tensor>,
    /// Answers stop at this many tokens (`max_tokens`, or less near the context limit).
    budget: usize,
    text: Utf8Stream,
    /// The answer's text as heard by the user (`truncate_answer`), replacing the generated one.
    heard: Option<String>,
    finished: Option<StopReason>,
}

/// The conversation as it was before the last `user_turn`, for `retract_turn`.
#[derive(Debug)]
struct TurnCheckpoint {
    history: Vec<ChatMessage>,
    cached_text: String,
    cached_ids: Vec<u32>,
    answer: Option<Answer>,
    last_prefill: usize,
}

/// A conversation with a GGUF LLM (llama or qwen2 architecture, byte-level BPE tokenizer).
///
/// For several conversations over one model, load it once with [`SharedGguf::load`] and start
/// each with [`GgufThinker::new`]; [`GgufThinker::load`] does both for a single one.
pub struct GgufThinker {
    /// Weights, tokenizer and template, shared with other sessions of the same model.
    shared: Arc<SharedGguf>,
    /// This conversation's KV cache over the shared weights.
    model: GgufModel,
    config: SessionConfig,
    sampler: Sampler,
    /// Committed messages: system prompt, user turns and finished answers.
    history: Vec<ChatMessage>,
    /// The rendered text the KV cache holds, up to the start of the current answer.
    cached_text: String,
    /// The tokens in the KV cache (`len == model.position()`).
    cached_ids: Vec<u32>,
    answer: Option<Answer>,
    last_prefill: usize,
    /// The conversation before the last user turn, until the next one (`retract_turn`).
    before_turn: Option<TurnCheckpoint>,
}

impl std::fmt::Debug for GgufThinker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GgufThinker")
            .field("model", self.model.config())
            .field("config", &self.config)
            .field("position", &self.model.position())
            .finish_non_exhaustive()
    }
}

impl GgufThinker {
    /// Loads a GGUF model with its tokenizer and chat template for a single conversation.
    pub fn load(path: impl AsRef<Path>, config: SessionConfig) -> Result<Self, LlmError> {
        config.validate()?;
        Self::new(SharedGguf::load(path)?, config)
    }

    /// A new conversation over a model loaded once and shared with other sessions.
    pub fn new(shared: Arc<SharedGguf>, config: SessionConfig) -> Result<Self, LlmError> {
        config.validate()?;
        let mut thinker = Self {
            model: GgufModel::new(Arc::clone(shared.weights())),
            shared,
            sampler: config.sampler(),
            config,
            history: Vec::new(),
            cached_text: String::new(),
            cached_ids: Vec::new(),
            answer: None,
            last_prefill: 0,
            before_turn: None,
        };
        thinker.reset();
        Ok(thinker)
    }

    /// Changes the session settings. A changed system prompt or context limit starts a new
    /// conversation; sampling settings apply from the next token.
    pub fn set_config(&mut self, config: SessionConfig) -> Result<(), LlmError> {
        config.validate()?;
        let restart = config.system_prompt != self.config.system_prompt
            || config.context_tokens != self.config.context_tokens;
        self.sampler = config.sampler();
        self.config = config;
        if restart {
            self.reset();
        }
        Ok(())
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    pub fn model_config(&self) -> &ModelConfig {
        self.model.config()
    }

    /// The model this session runs on (to start more sessions sharing it).
    pub fn shared(&self) -> &Arc<SharedGguf> {
        &self.shared
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        self.shared.tokenizer()
    }

    pub fn template(&self) -> &ChatTemplate {
        self.shared.template()
    }

    /// Tokens that end an answer (besides any other control token).
    pub fn end_of_turn_ids(&self) -> &[u32] {
        self.shared.end_of_turn_ids()
    }

    /// Committed messages (the answer in progress is added when the next turn starts).
    pub fn history(&self) -> &[ChatMessage] {
        &self.history
    }

    /// The tokens in the KV cache, in order.
    pub fn cached_tokens(&self) -> &[u32] {
        &self.cached_ids
    }

    /// The logits (`[vocab]`) the next answer token will be sampled from, once computed (after
    /// `user_turn` / `load_history`, and after each token's forward) and until sampled.
    pub fn pending_logits(&self) -> Option<&Tensor> {
        self.answer.as_ref().and_then(|a| a.logits.as_ref())
    }

    /// How many tokens the last `user_turn` (or `load_history`) ran through prefill.
    pub fn last_prefill_tokens(&self) -> usize {
        self.last_prefill
    }

    /// The conversation length limit in tokens.
    pub fn context_limit(&self) -> usize {
        let model_limit = self.model.config().context_length;
        self.config
            .context_tokens
            .map_or(model_limit, |c| c.min(model_limit))
    }

    /// Starts over from a whole conversation (ending with a user message) prefilled at once,
    /// e.g. to restore a saved session. The messages are used as given (system prompt included).
    pub fn load_history(&mut self, messages: &[ChatMessage]) -> Result<(), LlmError> {
        if messages.last().is_none_or(|m| m.role != "user") {
            return Err(LlmError::Config(
                "a loaded conversation must end with a user message".into(),
            ));
        }
        let rendered = self.shared.template().render(messages, true)?;
        let ids = self.shared.tokenizer().encode_prompt(&rendered)?;
        self.check_fits(ids.len())?;
        self.reset();
        self.history = messages.to_vec();
        self.start_answer(rendered, Vec::new(), ids)
    }

    fn system_messages(&self) -> Vec<ChatMessage> {
        self.config
            .system_prompt
            .iter()
            .map(ChatMessage::system)
            .collect()
    }

    /// A prompt of `prompt_len` tokens must leave room for at least one answer token.
    fn check_fits(&self, prompt_len: usize) -> Result<(), LlmError> {
        let limit = self.context_limit();
        if prompt_len + 1 > limit {
            return Err(LlmError::ContextFull {
                needed: prompt_len + 1,
                limit,
            });
        }
        Ok(())
    }

    /// Prefills `carried` (unfed tokens of the previous answer) and `ids` after the first
    /// `keep` cached tokens, and opens a new answer. `rendered` is the text the cache then holds.
    fn start_answer(
        &mut self,
        rendered: String,
        carried: Vec<u32>,
        ids: Vec<u32>,
    ) -> Result<(), LlmError> {
        let mut tokens = carried;
        tokens.extend(ids);
        let mut logits = None;
        for chunk in tokens.chunks(PREFILL_CHUNK) {
            logits = Some(self.model.forward(chunk)?);
            self.cached_ids.extend_from_slice(chunk);
        }
        let logits = logits.ok_or_else(|| LlmError::Internal("empty prefill".into()))?;
        self.last_prefill = tokens.len();
        self.cached_text = rendered;
        let start = self.model.position();
        self.answer = Some(Answer {
            start,
            ids: Vec::new(),
            fed: 0,
            logits: Some(logits),
            budget: self.config.max_tokens.min(self.context_limit() - start),
            text: Utf8Stream::default(),
            heard: None,
            finished: None,
        });
        Ok(())
    }

    fn sample(&mut self, logits: &Tensor, answer_ids: &[u32]) -> Result<u32, LlmError> {
        let logits = if self.config.repeat_penalty == 1.0 || answer_ids.is_empty() {
            logits.clone()
        } else {
            let from = answer_ids.len().saturating_sub(self.config.repeat_last_n);
            candle_transformers::utils::apply_repeat_penalty(
                logits,
                self.config.repeat_penalty,
                &answer_ids[from..],
            )?
        };
        Ok(self.sampler.sample(&logits)?)
    }
}

impl GgufThinker {
    fn checkpoint(&self) -> TurnCheckpoint {
        TurnCheckpoint {
            history: self.history.clone(),
            cached_text: self.cached_text.clone(),
            cached_ids: self.cached_ids.clone(),
            answer: self.answer.clone(),
            last_prefill: self.last_prefill,
        }
    }

    /// `Thinker::user_turn` without taking the checkpoint.
    fn append_user_turn(&mut self, text: &str) -> Result<(), LlmError> {
        // Plan on copies first so an error (e.g. a turn too long for the context) loses nothing.
        let mut history = self.history.clone();
        let mut cached_text = self.cached_text.clone();
        let mut carried = Vec::new();
        let tokenizer = self.shared.tokenizer();
        if let Some(answer) = &self.answer {
            // The cache holds the answer's tokens as they follow the prompt (for SentencePiece
            // with the leading space of their first `▁`); the history holds its plain text.
            cached_text.push_str(&tokenizer.continuation_text(&answer.ids));
            let content = match &answer.heard {
                Some(heard) => heard.clone(),
                None => tokenizer.decode(&answer.ids),
            };
            history.push(ChatMessage::assistant(content));
            carried = answer.ids[answer.fed..].to_vec();
        }
        history.push(ChatMessage::user(text));
        let rendered = self.shared.template().render(&history, true)?;

        let position = self.model.position();
        let limit = self.context_limit();
        let incremental = match rendered.strip_prefix(&cached_text) {
            Some(suffix) => {
                // An empty cache (first turn, after `reset`) starts a prompt (BOS if the model
                // wants one); otherwise the suffix continues the cached text.
                let ids = if self.cached_ids.is_empty() {
                    tokenizer.encode_prompt(suffix)?
                } else {
                    tokenizer.encode_continuation(suffix)?
                };
                let fits = position + carried.len() + ids.len() + self.config.max_tokens <= limit;
                fits.then_some(ids)
            }
            None => {
                tracing::debug!("chat template rewrote earlier turns; prefilling from the start");
                None
            }
        };
        match incremental {
            Some(ids) => {
                self.history = history;
                self.start_answer(rendered, carried, ids)
            }
            None => {
                // Start over: the whole rendering if it fits, else the system prompt and this
                // turn alone.
                let ids = tokenizer.encode_prompt(&rendered)?;
                let (history, rendered, ids) = if ids.len() + self.config.max_tokens <= limit {
                    (history, rendered, ids)
                } else {
                    let mut short = self.system_messages();
                    short.push(ChatMessage::user(text));
                    let rendered = self.shared.template().render(&short, true)?;
                    let ids = tokenizer.encode_prompt(&rendered)?;
                    tracing::info!(
                        limit,
                        "conversation outgrew the context; keeping only the system prompt and the \
                         last turn"
                    );
                    (short, rendered, ids)
                };
                self.check_fits(ids.len())?;
                self.model.clear();
                self.cached_ids.clear();
                self.answer = None;
                self.history = history;
                self.start_answer(rendered, Vec::new(), ids)
            }
        }
    }
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Thinker for GgufThinker {
    type Error = LlmError;

    fn user_turn(&mut self, text: &str) -> Result<(), LlmError> {
        let checkpoint = self.checkpoint();
        self.append_user_turn(text)?;
        self.before_turn = Some(checkpoint);
        Ok(())
    }

    fn retract_turn(&mut self) -> Result<(), LlmError> {
        let checkpoint = self.before_turn.take().ok_or(LlmError::NoAnswer)?;
        // Keep the cache's common part with the old conversation; prefill the rest again only
        // if the turn had to start over (a full context).
        let keep = common_prefix(&self.cached_ids, &checkpoint.cached_ids);
        self.model.truncate(keep);
        self.cached_ids.truncate(keep);
        for chunk in checkpoint.cached_ids[keep..].chunks(PREFILL_CHUNK) {
            self.model.forward(chunk)?;
            self.cached_ids.extend_from_slice(chunk);
        }
        self.history = checkpoint.history;
        self.cached_text = checkpoint.cached_text;
        self.answer = checkpoint.answer;
        self.last_prefill = checkpoint.last_prefill;
        Ok(())
    }

    fn next_event(&mut self, cancel: &CancelGuard) -> Result<ThinkerEvent, LlmError> {
        let answer = self.answer.as_mut().ok_or(LlmError::NoAnswer)?;
        if let Some(reason) = answer.finished {
            return Ok(ThinkerEvent::Done {
                reason,
                tokens: answer.ids.len(),
            });
        }
        let stop = if cancel.is_cancelled() {
            Some(StopReason::Cancelled)
        } else if answer.ids.len() >= answer.budget {
            Some(StopReason::MaxTokens)
        } else {
            None
        };
        if let Some(reason) = stop {
            answer.finished = Some(reason);
            return Ok(ThinkerEvent::Done {
                reason,
                tokens: answer.ids.len(),
            });
        }
        if answer.fed < answer.ids.len() {
            let logits = self.model.forward(&answer.ids[answer.fed..])?;
            self.cached_ids.extend_from_slice(&answer.ids[answer.fed..]);
            answer.fed = answer.ids.len();
            answer.logits = Some(logits);
        }
        let logits = answer
            .logits
            .take()
            .ok_or_else(|| LlmError::Internal("no logits for the next token".into()))?;
        let answer_ids = std::mem::take(&mut answer.ids);
        let sampled = self.sample(&logits, &answer_ids);
        // `answer` was borrowed from `self.answer`, which `sample` does not touch.
        let answer = self
            .answer
            .as_mut()
            .ok_or_else(|| LlmError::Internal("answer vanished while sampling".into()))?;
        answer.ids = answer_ids;
        let id = sampled?;
        if self.shared.end_of_turn_ids().contains(&id) || self.shared.tokenizer().is_control(id) {
            answer.finished = Some(StopReason::EndOfTurn);
            return Ok(ThinkerEvent::Done {
                reason: StopReason::EndOfTurn,
                tokens: answer.ids.len(),
            });
        }
        answer.ids.push(id);
        let mut bytes = Vec::new();
        self.shared.tokenizer().token_bytes(id, &mut bytes);
        let text = answer.text.push(&bytes);
        Ok(ThinkerEvent::Token(ThinkerToken {
            id,
            text,
            hidden: None,
            embedding: None,
        }))
    }

    fn truncate_answer(&mut self, heard_text: &str) -> Result<(), LlmError> {
        let answer = self.answer.as_mut().ok_or(LlmError::NoAnswer)?;
        // Tokenize the heard words as the answer's own tokens began: with the leading space
        // (SentencePiece `▁`) only if the answer's first token had one, so the common prefix
        // with the generated tokens is as long as the words agree.
        let tokenizer = self.shared.tokenizer();
        let answer_starts_with_space = tokenizer
            .continuation_text(&answer.ids[..answer.ids.len().min(1)])
            .starts_with(' ');
        let heard_ids = if answer_starts_with_space && !heard_text.starts_with(' ') {
            tokenizer.encode_continuation(&format!(" {heard_text}"))?
        } else {
            tokenizer.encode_continuation(heard_text)?
        };
        let keep = common_prefix(&heard_ids, &answer.ids[..answer.fed]);
        self.model.truncate(answer.start + keep);
        self.cached_ids.truncate(answer.start + keep);
        answer.ids = heard_ids;
        answer.fed = keep;
        answer.logits = None;
        answer.heard = Some(heard_text.to_string());
        answer.finished.get_or_insert(StopReason::Cancelled);
        Ok(())
    }

    fn reset(&mut self) {
        self.model.clear();
        self.history = self.system_messages();
        self.cached_text.clear();
        self.cached_ids.clear();
        self.answer = None;
        self.last_prefill = 0;
        self.before_turn = None;
        self.sampler = self.config.sampler();
    }
}
