//! [`QwenSession`]: one conversation with the Qwen2.5-Omni Thinker, kept in its KV cache across
//! turns, implementing the [`Thinker`] seam for the engine.
//!
//! How a turn reaches the model (as the GGUF Thinker does it): the whole conversation with the
//! new user message is rendered through the checkpoint's chat template ([`super::prompt`]), and
//! only the text after what the cache already holds is tokenized and prefilled; earlier turns are
//! never prefilled again. The cache holds the previous answer's tokens exactly as generated, and
//! the template's end of that answer (`<|im_end|>\n`, never fed) begins the next suffix. A spoken
//! user turn is `<|audio_bos|>` + its audio embeddings + `<|audio_eos|>`: the text up to the
//! clip is prefilled when the turn begins, the audio block by block while the user talks
//! ([`QwenSession::begin_audio_turn`], [`QwenSession::push_audio`]), the rest when it ends.
//!
//! Each generated token is handed out once it has been fed back through the model, so its event
//! carries what the Talker needs (../shared/docs/qwen2_5_omni.md §4.3; transformers'
//! `Qwen2_5OmniForConditionalGeneration.generate` pairs generated token k with the hidden state
//! of the decoding step whose input it is): the final-norm hidden state of the position where the
//! token is the *input*, and its input embedding. The answer's last token (`<|im_end|>`) is never
//! fed: it ends the answer, and the next turn's prefill begins with it. The hidden states and
//! embeddings of every cached position are kept too ([`QwenSession::talker_context`]): the
//! Talker's prompt is the whole conversation.

use candle_core::Tensor;

use super::QwenError;
use super::audio_stream::StreamingAudioEncoder;
use super::mrope::MropePositions;
use super::prompt::{AUDIO_PLACEHOLDER, SPEECH_SYSTEM_PROMPT};
use super::thinker::QwenThinker;
use super::tokenizer::{AUDIO, QwenTokenizer, TextStream};
use crate::llm::ChatMessage;
use crate::llm::sampling::Sampler;
use crate::seam::{AnswerContext, StopReason, Thinker, ThinkerEvent, ThinkerToken};
use crate::stream::{CancelGuard, Step, StreamingModule};

/// Settings of one conversation.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionConfig {
    pub system_prompt: String,
    /// 0 is greedy.
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
    pub seed: u64,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            system_prompt: SPEECH_SYSTEM_PROMPT.to_string(),
            temperature: 0.0,
            top_p: 1.0,
            max_tokens: 256,
            seed: 299792458,
        }
    }
}

impl SessionConfig {
    fn sampler(&self) -> Sampler {
        Sampler::new(self.seed, self.temperature, self.top_p)
    }
}

/// Token ids, hidden states and input embeddings of cached positions, in order.
#[derive(Debug, Clone, Default)]
struct Context {
    /// The audio placeholder id at audio positions.
    ids: Vec<u32>,
    /// `[n, hidden]` pieces.
    hidden: Vec<Tensor>,
    embeds: Vec<Tensor>,
}

impl Context {
    fn push(&mut self, ids: &[u32], hidden: Tensor, embeds: Tensor) -> Result<(), QwenError> {
        debug_assert_eq!(ids.len(), hidden.dim(0)?);
        self.ids.extend_from_slice(ids);
        self.hidden.push(hidden);
        self.embeds.push(embeds);
        Ok(())
    }

    fn truncate(&mut self, len: usize) -> Result<(), QwenError> {
        if len >= self.ids.len() {
            return Ok(());
        }
        let hidden = Tensor::cat(&self.hidden, 0)?.narrow(0, 0, len)?;
        let embeds = Tensor::cat(&self.embeds, 0)?.narrow(0, 0, len)?;
        let ids = self.ids[..len].to_vec();
        *self = Self::default();
        if len > 0 {
            self.push(&ids, hidden, embeds)?;
        }
        Ok(())
    }
}

/// The answer being generated.
#[derive(Debug, Clone)]
struct Answer {
    /// Cache length where the answer begins.
    start: usize,
    /// Tokens fed into the cache (and handed out).
    ids: Vec<u32>,
    /// Logits for the next token.
    logits: Option<Tensor>,
    /// What the user heard of the answer after a barge-in: the answer in the history from then.
    heard: Option<String>,
    /// Tokens of heard text after a barge-in still to prefill with the next turn.
    carried: Vec<u32>,
    budget: usize,
    text: TextStream,
    finished: Option<StopReason>,
}

/// What `retract_turn` returns to.
#[derive(Debug, Clone)]
struct TurnCheckpoint {
    cache_len: usize,
    answer: Option<Answer>,
    history: Vec<ChatMessage>,
    cached_text: String,
}

/// A user turn rendered against the conversation so far.
struct TurnPlan {
    /// The conversation with the last answer and the new user message.
    history: Vec<ChatMessage>,
    /// `history` through the chat template, up to the assistant prompt.
    rendered: String,
    /// Heard tokens of the last answer not in the cache yet.
    carried: Vec<u32>,
    /// The part of `rendered` after what the cache holds.
    suffix: String,
}

/// A spoken user turn in progress.
#[derive(Debug)]
struct AudioTurn {
    encoder: StreamingAudioEncoder,
    /// The turn's 16 kHz speech so far: a barge-in truncation of the previous answer arriving
    /// after the turn began re-renders the turn, and its audio is prefilled again.
    samples: Vec<f32>,
    /// The rendered text after the clip's `<|AUDIO|>`, prefilled when the turn ends.
    rest: String,
    /// The whole rendered conversation once the turn has ended.
    rendered: String,
}

/// One conversation with the Qwen Thinker.
#[derive(Debug)]
pub struct QwenSession {
    thinker: QwenThinker,
    tokenizer: QwenTokenizer,
    config: SessionConfig,
    sampler: Sampler,
    /// The messages whose rendering is in the cache (without the answer in progress); empty
    /// before the first turn.
    history: Vec<ChatMessage>,
    /// `history` as rendered (up to the last assistant prompt): the cache holds its tokens,
    /// then the answer's.
    cached_text: String,
    context: Context,
    answer: Option<Answer>,
    before_turn: Option<TurnCheckpoint>,
    /// The spoken turn being prefilled.
    audio: Option<AudioTurn>,
}

impl QwenSession {
    /// A conversation rendered with the tokenizer's chat template (the checkpoint's).
    pub fn new(thinker: QwenThinker, tokenizer: QwenTokenizer, config: SessionConfig) -> Self {
        Self {
            sampler: config.sampler(),
            thinker,
            tokenizer,
            config,
            history: Vec::new(),
            cached_text: String::new(),
            context: Context::default(),
            answer: None,
            before_turn: None,
            audio: None,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// New settings; a new system prompt starts the conversation over.
    pub fn set_config(&mut self, config: SessionConfig) {
        let restart = config.system_prompt != self.config.system_prompt;
        self.sampler = config.sampler();
        self.config = config;
        if restart {
            self.reset();
        }
    }

    pub fn tokenizer(&self) -> &QwenTokenizer {
        &self.tokenizer
    }

    pub fn thinker(&mut self) -> &mut QwenThinker {
        &mut self.thinker
    }

    /// Positions held in the KV cache.
    pub fn cache_len(&self) -> usize {
        self.thinker.cache_len()
    }

    /// Final-norm hidden states and input embeddings (zero at audio positions, as the reference
    /// builds the Talker's input) of every cached position, each `[len, hidden]`.
    pub fn talker_context(&self) -> Result<(Tensor, Tensor), QwenError> {
        Ok((
            Tensor::cat(&self.context.hidden, 0)?,
            Tensor::cat(&self.context.embeds, 0)?,
        ))
    }

    fn limit(&self) -> usize {
        self.thinker.config().text_config.max_position_embeddings
    }

    fn prefill_ids(&mut self, ids: &[u32]) -> Result<Tensor, QwenError> {
        let needed = self.cache_len() + ids.len() + 1;
        if needed > self.limit() {
            return Err(QwenError::ContextFull {
                needed,
                limit: self.limit(),
            });
        }
        let embeds = self.thinker.token_embeddings(ids)?;
        let positions = MropePositions::sequential(self.cache_len() as i64, ids.len());
        let out = self.thinker.forward_embeds(&embeds, &positions)?;
        self.context
            .push(ids, out.hidden_states.squeeze(0)?, embeds.squeeze(0)?)?;
        last_position(&out.logits)
    }

    /// Renders the conversation with the last answer (as generated, or as heard after a
    /// barge-in) and `user` appended, and finds what the cache lacks.
    fn plan_turn(&self, user: ChatMessage) -> Result<TurnPlan, QwenError> {
        if self.audio.is_some() {
            return Err(QwenError::bad_input(
                "turn",
                "a spoken turn is in progress: end it with end_audio_turn first",
            ));
        }
        let mut history = self.history.clone();
        let mut cached = self.cached_text.clone();
        let mut carried = Vec::new();
        if history.is_empty() {
            history.push(ChatMessage::system(&self.config.system_prompt));
        }
        if let Some(answer) = &self.answer {
            let content = match &answer.heard {
                Some(heard) => heard.clone(),
                None => self.tokenizer.decode(&answer.ids)?,
            };
            cached.push_str(&content);
            history.push(ChatMessage::assistant(content));
            carried = answer.carried.clone();
        }
        history.push(user);
        let rendered = self.tokenizer.chat_template().render_chat(&history, true)?;
        let suffix = rendered
            .strip_prefix(cached.as_str())
            .ok_or_else(|| {
                QwenError::Template(
                    "the template rewrites turns already in the KV cache; this session can only \
                     append to the conversation"
                        .into(),
                )
            })?
            .to_string();
        Ok(TurnPlan {
            history,
            rendered,
            carried,
            suffix,
        })
    }

    fn checkpoint(&self) -> TurnCheckpoint {
        TurnCheckpoint {
            cache_len: self.cache_len(),
            answer: self.answer.clone(),
            history: self.history.clone(),
            cached_text: self.cached_text.clone(),
        }
    }

    /// Opens the answer after a prefill that ended with the assistant prompt.
    fn start_answer(&mut self, logits: Tensor) {
        let start = self.cache_len();
        self.answer = Some(Answer {
            start,
            ids: Vec::new(),
            logits: Some(logits),
            heard: None,
            carried: Vec::new(),
            budget: self
                .config
                .max_tokens
                .min(self.limit().saturating_sub(start)),
            text: TextStream::default(),
            finished: None,
        });
    }

    /// Starts a spoken user turn: prefills the conversation up to its `<|audio_bos|>`; the
    /// speech follows with [`Self::push_audio`] and [`Self::end_audio_turn`].
    pub fn begin_audio_turn(&mut self) -> Result<(), QwenError> {
        let checkpoint = self.checkpoint();
        let plan = self.plan_turn(ChatMessage::user(AUDIO_PLACEHOLDER))?;
        // The new turn is the last thing the template printed, so its `<|AUDIO|>` is the last.
        let at = plan.suffix.rfind(AUDIO).ok_or_else(|| {
            QwenError::Template(format!(
                "the template printed no {AUDIO} for the spoken turn"
            ))
        })?;
        let mut ids = plan.carried;
        ids.extend(self.tokenizer.encode(&plan.suffix[..at])?);
        if let Err(e) = self.prefill_ids(&ids) {
            self.restore(checkpoint)?;
            return Err(e);
        }
        self.history = plan.history;
        self.answer = None;
        self.audio = Some(AudioTurn {
            encoder: StreamingAudioEncoder::new(self.thinker.shared_audio_encoder()),
            samples: Vec::new(),
            rest: plan.suffix[at + AUDIO.len()..].to_string(),
            rendered: plan.rendered,
        });
        self.before_turn = Some(checkpoint);
        Ok(())
    }

    /// Adds 16 kHz speech to the spoken turn; each completed block is encoded and prefilled
    /// now. Returns how many audio positions were prefilled.
    pub fn push_audio(&mut self, samples: &[f32]) -> Result<usize, QwenError> {
        let turn = self.audio.as_mut().ok_or(QwenError::NoAnswer)?;
        turn.samples.extend_from_slice(samples);
        match turn.encoder.step(samples)? {
            Step::Ready(embeddings) => self.prefill_audio(&embeddings),
            Step::Pending | Step::Done => Ok(0),
        }
    }

    /// Ends the spoken turn: the last partial block, then the rest of the rendered turn
    /// (`<|audio_eos|>` and the assistant prompt). The answer then streams from `next_event`.
    /// On error the session is back where it was before the turn.
    pub fn end_audio_turn(&mut self) -> Result<(), QwenError> {
        let mut turn = self.audio.take().ok_or(QwenError::NoAnswer)?;
        match self.prefill_end_of_audio_turn(&mut turn) {
            Ok(logits) => {
                self.cached_text = turn.rendered;
                self.start_answer(logits);
                Ok(())
            }
            Err(e) => {
                if let Some(checkpoint) = self.before_turn.take() {
                    self.restore(checkpoint)?;
                }
                Err(e)
            }
        }
    }

    /// The last partial block and the text after the clip; the logits of the last position.
    fn prefill_end_of_audio_turn(&mut self, turn: &mut AudioTurn) -> Result<Tensor, QwenError> {
        if let Some(embeddings) = turn.encoder.finish()? {
            self.prefill_audio(&embeddings)?;
        }
        let ids = self.tokenizer.encode(&turn.rest)?;
        self.prefill_ids(&ids)
    }

    fn prefill_audio(&mut self, embeddings: &Tensor) -> Result<usize, QwenError> {
        let n = embeddings.dim(0)?;
        let needed = self.cache_len() + n + 1;
        if needed > self.limit() {
            return Err(QwenError::ContextFull {
                needed,
                limit: self.limit(),
            });
        }
        let out = self.thinker.prefill_audio(embeddings)?;
        // The reference zeroes the input embedding of audio positions in the Talker's input.
        // Same dtype as every other stored embedding (bf16 on a GPU), so they concatenate.
        let hidden = out.hidden_states.squeeze(0)?;
        let zeros = hidden.zeros_like()?;
        let ids = vec![self.tokenizer.special().audio; n];
        self.context.push(&ids, hidden, zeros)?;
        Ok(n)
    }

    fn restore(&mut self, checkpoint: TurnCheckpoint) -> Result<(), QwenError> {
        self.thinker
            .text_model()
            .truncate_cache(checkpoint.cache_len)?;
        self.context.truncate(checkpoint.cache_len)?;
        self.answer = checkpoint.answer;
        self.history = checkpoint.history;
        self.cached_text = checkpoint.cached_text;
        self.audio = None;
        Ok(())
    }
}

/// `[1, len, vocab]` -> the last position's `[vocab]`.
fn last_position(logits: &Tensor) -> Result<Tensor, QwenError> {
    let len = logits.dim(1)?;
    Ok(logits.narrow(1, len - 1, 1)?.flatten_all()?)
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl Thinker for QwenSession {
    type Error = QwenError;

    fn user_turn(&mut self, text: &str) -> Result<(), QwenError> {
        let checkpoint = self.checkpoint();
        let plan = self.plan_turn(ChatMessage::user(text))?;
        let mut ids = plan.carried;
        ids.extend(self.tokenizer.encode(&plan.suffix)?);
        let logits = match self.prefill_ids(&ids) {
            Ok(logits) => logits,
            Err(e) => {
                self.restore(checkpoint)?;
                return Err(e);
            }
        };
        self.history = plan.history;
        self.cached_text = plan.rendered;
        self.start_answer(logits);
        self.before_turn = Some(checkpoint);
        Ok(())
    }

    fn next_event(&mut self, cancel: &CancelGuard) -> Result<ThinkerEvent, QwenError> {
        let answer = self.answer.as_mut().ok_or(QwenError::NoAnswer)?;
        let done = |reason, answer: &mut Answer| {
            answer.finished = Some(reason);
            Ok(ThinkerEvent::Done {
                reason,
                tokens: answer.ids.len(),
            })
        };
        if let Some(reason) = answer.finished {
            return done(reason, answer);
        }
        if cancel.is_cancelled() {
            return done(StopReason::Cancelled, answer);
        }
        if answer.ids.len() >= answer.budget {
            return done(StopReason::MaxTokens, answer);
        }
        let logits = answer
            .logits
            .take()
            .ok_or_else(|| QwenError::Tokenizer("no logits for the next token".into()))?;
        let id = self.sampler.sample(&logits)?;
        if self.tokenizer.is_end_of_answer(id) {
            let answer = self.answer.as_mut().ok_or(QwenError::NoAnswer)?;
            return done(StopReason::EndOfTurn, answer);
        }
        // Feed the token: its hidden state (as input) and embedding go out with it.
        let embedding = self.thinker.token_embeddings(&[id])?;
        let positions = MropePositions::sequential(self.cache_len() as i64, 1);
        let out = self.thinker.forward_embeds(&embedding, &positions)?;
        let hidden = out.hidden_states.squeeze(0)?;
        let embedding = embedding.squeeze(0)?;
        self.context
            .push(&[id], hidden.clone(), embedding.clone())?;
        let answer = self.answer.as_mut().ok_or(QwenError::NoAnswer)?;
        answer.ids.push(id);
        answer.logits = Some(last_position(&out.logits)?);
        let text = answer.text.push(&self.tokenizer, id)?;
        Ok(ThinkerEvent::Token(ThinkerToken {
            id,
            text,
            hidden: Some(hidden.squeeze(0)?),
            embedding: Some(embedding.squeeze(0)?),
        }))
    }

    fn answer_context(&self) -> Result<Option<AnswerContext>, QwenError> {
        let answer = self.answer.as_ref().ok_or(QwenError::NoAnswer)?;
        let (hidden, embeds) = self.talker_context()?;
        let len = answer.start;
        Ok(Some(AnswerContext {
            ids: self.context.ids[..len].to_vec(),
            states: (hidden.narrow(0, 0, len)? + embeds.narrow(0, 0, len)?)?,
        }))
    }

    fn truncate_answer(&mut self, heard_text: &str) -> Result<(), QwenError> {
        if self.audio.is_some() {
            // The user's next turn began before the truncation arrived (a barge-in): undo the
            // turn, truncate, and begin it again with the speech heard so far.
            let samples = self.audio.take().map(|t| t.samples).unwrap_or_default();
            let checkpoint = self.before_turn.take().ok_or(QwenError::NoAnswer)?;
            self.restore(checkpoint)?;
            self.truncate_answer(heard_text)?;
            self.begin_audio_turn()?;
            self.push_audio(&samples)?;
            return Ok(());
        }
        let heard = self.tokenizer.encode(heard_text)?;
        let answer = self.answer.as_mut().ok_or(QwenError::NoAnswer)?;
        let keep = common_prefix(&heard, &answer.ids);
        let len = answer.start + keep;
        answer.ids.truncate(keep);
        answer.carried = heard[keep..].to_vec();
        answer.heard = Some(heard_text.to_string());
        answer.logits = None;
        answer.finished.get_or_insert(StopReason::Cancelled);
        self.thinker.text_model().truncate_cache(len)?;
        self.context.truncate(len)?;
        Ok(())
    }

    fn retract_turn(&mut self) -> Result<(), QwenError> {
        let checkpoint = self.before_turn.take().ok_or(QwenError::NoAnswer)?;
        self.restore(checkpoint)
    }

    fn reset(&mut self) {
        self.thinker.text_model().clear_cache();
        self.context = Context::default();
        self.history.clear();
        self.cached_text.clear();
        self.answer = None;
        self.before_turn = None;
        self.audio = None;
        self.sampler = self.config.sampler();
    }
}
