//! The Talker's codec stream for one answer: the "dual track" input the reference builds
//! (../shared/docs/qwen2_5_omni.md §4.3), fed incrementally so speech can start while the
//! Thinker is still writing.
//!
//! - Prefill: the prompt's Thinker hidden state + input embedding at every position (embedding
//!   zero at audio positions), then the speaker's text-BOS embedding, then the first answer
//!   token's hidden + embedding; the codec pad and BOS embeddings are added to the last two.
//! - Each codec step's input: the previous code's embedding + the next answer token's
//!   hidden + embedding (one Thinker token per code); after the answer, the text-EOS embedding,
//!   then the text-pad embedding on every later step.
//! - A step that needs a Thinker token that has not arrived yet is `Pending`: the Talker waits for
//!   the Thinker, never the other way round.
//!
//! [`generate`] runs Thinker and Talker greedily one after the other exactly like transformers'
//! `Qwen2_5OmniForConditionalGeneration.generate` (the `reference-check generate` contract).

use std::collections::VecDeque;

use candle_core::{D, DType, Tensor};
use parley_thinker::qwen::{MropePositions, QwenError, QwenThinker, mrope::prompt_positions};
use parley_thinker::stream::{CancelGuard, Step};

use super::codec_sampling::{CodecSampler, CodecSampling};
use super::talker_model::TalkerModel;

/// The Thinker side of a Talker prompt.
#[derive(Debug, Clone)]
pub struct TalkerPrompt {
    /// Prompt token ids (for the TMRoPE positions), ending where the answer starts.
    pub ids: Vec<u32>,
    /// `[len, embedding_size]`: final-norm hidden state + input embedding of each prompt
    /// position (the embedding zeroed at audio positions).
    pub states: Tensor,
    /// The speaker's text-BOS id (`spk_dict.pt`).
    pub speaker_bos: u32,
    /// Hidden + embedding of the answer's first token `[embedding_size]`.
    pub first: Tensor,
    /// The answer's first token id.
    pub first_id: u32,
    /// Positions are `0..len` on all three rotary streams instead of TMRoPE from `ids`. What a
    /// conversation session uses: it feeds the Thinker sequentially (audio-only TMRoPE is
    /// sequential: one position per 40 ms token), and a conversation's ids may hold an
    /// `<|AUDIO|>` the model itself wrote, which has no clip for `ids`-derived positions.
    pub sequential_positions: bool,
}

/// One answer's codec tokens.
#[derive(Debug)]
pub struct CodecStream {
    /// Thinker inputs still to feed, one per codec step, `[embedding_size]` each.
    reply: VecDeque<Tensor>,
    text_finished: bool,
    text_eos: Tensor,
    text_pad: Tensor,
    next_position: i64,
    /// Logits of the next code, when the step before it has run.
    logits: Option<Tensor>,
    /// The last code, chosen but not fed back yet.
    unfed: Option<u32>,
    sampler: CodecSampler,
    end_ids: [u32; 2],
    codes: usize,
    /// The end is not chosen before this many codes (`min_new_tokens` in transformers).
    min_codes: usize,
    max_codes: usize,
    done: bool,
}

impl CodecStream {
    /// Prefills the Talker with the prompt (its cache is cleared first).
    pub fn start(
        talker: &mut TalkerModel,
        thinker: &QwenThinker,
        prompt: &TalkerPrompt,
        sampling: CodecSampling,
        max_codes: usize,
    ) -> Result<Self, QwenError> {
        let config = talker.config().clone();
        let thinker_embed = |id: u32| -> Result<Tensor, QwenError> {
            Ok(thinker
                .prompt_embeddings(&[id], None)?
                .squeeze(0)?
                .squeeze(0)?)
        };
        let width = config.embedding_size;
        let (codec_pad, codec_bos) = (
            config.tts_codec_pad_token_id,
            config.tts_codec_start_token_id,
        );
        let len = prompt.ids.len();
        let mut rows = vec![
            prompt.states.to_dtype(DType::F32)?,
            thinker_embed(prompt.speaker_bos)?.reshape((1, width))?,
            prompt.first.reshape((1, width))?.to_dtype(DType::F32)?,
        ];
        // Codec pad on the speaker-BOS position, codec BOS on the first answer token's.
        let codec = talker
            .codec_embeddings(&[codec_pad, codec_bos])?
            .squeeze(0)?;
        let tail = Tensor::cat(&[&rows[1], &rows[2]], 0)?;
        let tail = (tail + codec)?;
        rows.truncate(1);
        rows.push(tail);
        let inputs = Tensor::cat(&rows, 0)?.unsqueeze(0)?;

        let mut text_ids = prompt.ids.clone();
        text_ids.extend([prompt.speaker_bos, prompt.first_id]);
        let positions: MropePositions = if prompt.sequential_positions {
            MropePositions::sequential(0, text_ids.len())
        } else {
            prompt_positions(&text_ids, 0, thinker.config())?
        };
        talker.clear_cache();
        let logits = talker.forward(&inputs, &positions)?;
        let last = logits.narrow(1, len + 1, 1)?.flatten_all()?;

        let mut sampler = CodecSampler::new(sampling, config.decoder.vocab_size, &[codec_bos]);
        let mut seen = vec![config.tts_codec_mask_token_id; len];
        seen.extend([codec_pad, codec_bos]);
        sampler.observe(&seen);
        Ok(Self {
            reply: VecDeque::new(),
            text_finished: false,
            text_eos: thinker_embed(config.tts_text_end_token_id)?,
            text_pad: thinker_embed(config.tts_text_pad_token_id)?,
            next_position: positions.next_position(),
            logits: Some(last),
            unfed: None,
            sampler,
            end_ids: [codec_pad, config.tts_codec_end_token_id],
            codes: 0,
            min_codes: 0,
            max_codes,
            done: false,
        })
    }

    /// The next answer token's hidden + embedding `[embedding_size]`, as the Thinker makes it.
    pub fn push_text(&mut self, state: Tensor) {
        self.reply.push_back(state);
    }

    /// The Thinker's answer is complete: the text track goes on with text-EOS, then text-pad.
    pub fn finish_text(&mut self) {
        if !self.text_finished {
            self.reply.push_back(self.text_eos.clone());
            self.reply.push_back(self.text_pad.clone());
            self.text_finished = true;
        }
    }

    /// Lets the codec track choose only codes below `acoustic` (Token2Wav's codec table) or its
    /// end. The reference's `generate` does not restrict it (a trained Talker puts no weight on
    /// the other special ids); a streaming Talker feeding Token2Wav must not pass one on.
    pub fn only_acoustic_codes(&mut self, acoustic: usize) {
        let end_ids = self.end_ids;
        let vocab = self.sampler.vocab();
        self.sampler.suppress(
            (acoustic.min(vocab) as u32..vocab as u32).filter(|id| !end_ids.contains(id)),
        );
    }

    /// The codec track does not end before `min_codes` codes.
    pub fn set_min_codes(&mut self, min_codes: usize) {
        self.min_codes = min_codes;
    }

    /// Codes produced so far.
    pub fn codes(&self) -> usize {
        self.codes
    }

    /// The next codec token: `Pending` while the step needs a Thinker token not yet pushed,
    /// `Done` at the codec EOS (not returned) or after `max_codes`. Checks `cancel` before each
    /// model step.
    pub fn next_code(
        &mut self,
        talker: &mut TalkerModel,
        cancel: &CancelGuard,
    ) -> Result<Step<u32>, QwenError> {
        if self.done || cancel.is_cancelled() {
            return Ok(Step::Done);
        }
        if let Some(code) = self.unfed {
            let text = if self.reply.len() == 1 && self.text_finished {
                // Only text-pad is left: it stays for every later step.
                self.reply[0].clone()
            } else {
                match self.reply.pop_front() {
                    Some(text) => text,
                    None => return Ok(Step::Pending),
                }
            };
            let codec = talker.codec_embeddings(&[code])?;
            let input = codec.broadcast_add(&text.to_dtype(DType::F32)?)?;
            let positions = MropePositions::sequential(self.next_position, 1);
            let logits = talker.forward(&input, &positions)?;
            self.next_position += 1;
            self.logits = Some(logits.flatten_all()?);
            self.unfed = None;
            if cancel.is_cancelled() {
                return Ok(Step::Done);
            }
        }
        let Some(logits) = self.logits.take() else {
            return Ok(Step::Done);
        };
        let code = if self.codes < self.min_codes {
            self.sampler.sample_excluding(&logits, &self.end_ids)?
        } else {
            self.sampler.sample(&logits)?
        };
        if self.end_ids.contains(&code) {
            self.done = true;
            return Ok(Step::Done);
        }
        self.codes += 1;
        if self.codes >= self.max_codes {
            self.done = true;
        } else {
            self.unfed = Some(code);
        }
        Ok(Step::Ready(code))
    }
}

/// A greedy Thinker answer prepared for the Talker.
#[derive(Debug)]
pub struct ThinkerAnswer {
    /// New token ids (the last one, or the end-of-answer token, never fed back).
    pub text: Vec<u32>,
    /// The Talker's prompt (prompt states, speaker BOS, the first answer token).
    pub prompt: TalkerPrompt,
    /// Hidden + embedding of the later fed answer tokens, in order (one per codec step).
    pub rest: Vec<Tensor>,
}

/// Greedy Thinker answer (up to `max_text` new tokens, stopping at `thinker_eos`) as transformers'
/// `generate` makes it, with the states the Talker reads.
pub fn thinker_answer(
    thinker: &mut QwenThinker,
    ids: &[u32],
    features: Option<&Tensor>,
    speaker_bos: u32,
    thinker_eos: &[u32],
    max_text: usize,
) -> Result<ThinkerAnswer, QwenError> {
    let audio_id = thinker.config().audio_token_index;
    thinker.text_model().clear_cache();
    let audio = features
        .map(|f| thinker.audio_encoder().forward(f))
        .transpose()?;
    let embeds = thinker.prompt_embeddings(ids, audio.as_ref())?;
    let positions = thinker.prompt_positions(ids)?;
    let out = thinker.forward_embeds(&embeds, &positions)?;
    // Audio positions give the Talker their hidden state only.
    let keep: Vec<f32> = ids
        .iter()
        .map(|&id| if id == audio_id { 0.0 } else { 1.0 })
        .collect();
    let keep = Tensor::from_vec(keep, (1, ids.len(), 1), embeds.device())?;
    let prompt_states = (&out.hidden_states + embeds.broadcast_mul(&keep)?)?.squeeze(0)?;

    // Greedy text; every token but the last is fed back (its hidden + embedding recorded).
    let mut text = Vec::new();
    let mut states = Vec::new();
    let mut logits = out.logits.narrow(1, ids.len() - 1, 1)?.flatten_all()?;
    let mut next_position = positions.next_position();
    loop {
        let id = logits.argmax(D::Minus1)?.to_scalar::<u32>()?;
        text.push(id);
        if thinker_eos.contains(&id) || text.len() >= max_text {
            break;
        }
        let embedding = thinker.prompt_embeddings(&[id], None)?;
        let step =
            thinker.forward_embeds(&embedding, &MropePositions::sequential(next_position, 1))?;
        next_position += 1;
        states.push((step.hidden_states + embedding)?.flatten_all()?);
        logits = step.logits.flatten_all()?;
    }
    if states.is_empty() {
        // The reference cannot build a Talker prompt without one fed answer token.
        return Err(QwenError::bad_input(
            "input_ids",
            "the Thinker stopped after one token: nothing for the Talker to speak",
        ));
    }
    let first = states.remove(0);
    Ok(ThinkerAnswer {
        prompt: TalkerPrompt {
            ids: ids.to_vec(),
            states: prompt_states,
            speaker_bos,
            first,
            first_id: text[0],
            sequential_positions: false,
        },
        text,
        rest: states,
    })
}

/// Greedy Thinker, then the greedy Talker (up to `max_codes`, the reference's penalty and
/// suppression) as transformers' `generate` runs them: returns the new text ids and the codes
/// handed to Token2Wav.
#[allow(clippy::too_many_arguments)]
pub fn generate(
    thinker: &mut QwenThinker,
    talker: &mut TalkerModel,
    ids: &[u32],
    features: Option<&Tensor>,
    speaker_bos: u32,
    thinker_eos: &[u32],
    max_text: usize,
    max_codes: usize,
) -> Result<(Vec<u32>, Vec<u32>), QwenError> {
    let answer = thinker_answer(thinker, ids, features, speaker_bos, thinker_eos, max_text)?;
    let mut stream = CodecStream::start(
        talker,
        thinker,
        &answer.prompt,
        CodecSampling::greedy(),
        max_codes,
    )?;
    for state in answer.rest {
        stream.push_text(state);
    }
    stream.finish_text();
    let mut codes = Vec::new();
    let never = CancelGuard::never();
    while let Step::Ready(code) = stream.next_code(talker, &never)? {
        codes.push(code);
    }
    Ok((answer.text, codes))
}
