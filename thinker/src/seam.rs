//! The seam between Thinker and Talker, shared by every profile.
//!
//! The CPU profile's GGUF LLM and Qwen2.5-Omni's Thinker both stream one `ThinkerToken` per
//! generated token. A text-to-speech Talker (hibari) only reads `text`; Qwen's Talker also needs
//! the hidden state and the input embedding, which the Qwen Thinker fills in.

use candle_core::Tensor;

use crate::stream::CancelGuard;

/// One generated token as it leaves the Thinker.
#[derive(Debug, Clone)]
pub struct ThinkerToken {
    pub id: u32,
    /// The text this token adds to the answer (may be empty for a partial UTF-8 sequence).
    pub text: String,
    /// Final-norm hidden state `[hidden]` of the position where this token is the *input* (the
    /// decoding step that feeds it back), which is what Qwen's Talker pairs with the token
    /// (transformers' `generate`), not the state that predicted it (Qwen Thinker only).
    pub hidden: Option<Tensor>,
    /// Input embedding of this token, `[hidden]` (Qwen Thinker only).
    pub embedding: Option<Tensor>,
}

/// What an answer is conditioned on, for a Talker that speaks from the Thinker's states rather
/// than from text alone (Qwen's Talker prefills the whole conversation before its first code).
#[derive(Debug, Clone)]
pub struct AnswerContext {
    /// Token id of every position before the answer (the audio placeholder id at audio
    /// positions), for the Talker's rotary positions.
    pub ids: Vec<u32>,
    /// `[ids.len(), hidden]`: final-norm hidden state + input embedding of each position (the
    /// embedding zero at audio positions).
    pub states: Tensor,
}

/// Why an answer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// The model produced its end-of-turn token.
    EndOfTurn,
    /// `max_tokens` was reached; the answer is incomplete.
    MaxTokens,
    /// The guard was cancelled (barge-in, `response.cancel`).
    Cancelled,
}

/// What the Thinker streams for one answer.
#[derive(Debug, Clone)]
pub enum ThinkerEvent {
    Token(ThinkerToken),
    Done { reason: StopReason, tokens: usize },
}

/// A conversational LLM that keeps its conversation (KV cache) across turns.
pub trait Thinker: Send {
    type Error: std::error::Error + Send + Sync + 'static;

    /// Appends the user's turn and prepares an answer. Earlier turns are never prefilled again.
    fn user_turn(&mut self, text: &str) -> Result<(), Self::Error>;

    /// The context of the answer the last `user_turn` prepared, for Talkers that need more than
    /// the answer's tokens. `None` for Thinkers that only hand out text.
    fn answer_context(&self) -> Result<Option<AnswerContext>, Self::Error> {
        Ok(None)
    }

    /// Produces the next event of the answer. Checks `cancel` before every token.
    fn next_event(&mut self, cancel: &CancelGuard) -> Result<ThinkerEvent, Self::Error>;

    /// Replaces the last answer in the history by the part the user actually heard (barge-in).
    fn truncate_answer(&mut self, heard_text: &str) -> Result<(), Self::Error>;

    /// Forgets the last user turn and its answer, as if neither happened: the engine answered
    /// speculatively at the first silence and the user then went on speaking.
    fn retract_turn(&mut self) -> Result<(), Self::Error>;

    /// Forgets the conversation.
    fn reset(&mut self);
}
