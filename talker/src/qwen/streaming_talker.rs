//! [`QwenTalker`]: Qwen2.5-Omni's mouth behind the engine's [`Talker`] seam, for one session.
//!
//! Per answer: the Thinker's [`AnswerContext`] (the conversation's hidden states) arrives with
//! the start of the answer; the first Thinker token prefills the Talker ([`CodecStream::start`]),
//! each later token feeds one codec step, and the codes go into a [`Token2WavStream`] that
//! yields 0.48 s of 24 kHz audio as soon as it has 36 codes. `next_chunk` does only the work the
//! next chunk needs and returns `Pending` when a codec step waits for a Thinker token that has
//! not arrived: the Talker follows the Thinker, never the other way round.
//!
//! Nothing here maps audio back to words (the codec track has no alignment with the text), so
//! [`Talker::spoken_phrase`] stays `None` and the engine estimates what was heard.

use std::sync::Arc;

use candle_core::{DType, Tensor};
use parley_thinker::qwen::{QwenError, QwenThinker};
use parley_thinker::seam::{AnswerContext, ThinkerToken};
use parley_thinker::stream::{CancelGuard, Step};

use super::codec_sampling::CodecSampling;
use super::dit::SpeakerConditioning;
use super::sampler::{SampleError, SamplerSettings};
use super::speakers::{Speakers, SpeakersError};
use super::talker_model::TalkerModel;
use super::talker_session::{CodecStream, TalkerPrompt};
use super::token2wav::Token2Wav;
use super::token2wav_stream::Token2WavStream;

/// Codes per second of speech (2 mel frames of 10 ms each).
pub const CODES_PER_SECOND: usize = 50;

/// How a session's Qwen Talker speaks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QwenTalkerSettings {
    pub codec: CodecSampling,
    pub token2wav: SamplerSettings,
    /// Longest answer in codes (50 per second): the codec track stops there.
    pub max_codes: usize,
    /// Once the text is complete, the codec track stops at this many codes per answer token
    /// (speech runs ~17 per token): a Talker that never says its EOS cannot babble on.
    pub max_codes_per_token: usize,
    /// The codec track does not end before this many codes (transformers' `min_new_tokens`;
    /// 0 by default, as published).
    pub min_codes: usize,
}

impl Default for QwenTalkerSettings {
    fn default() -> Self {
        Self {
            codec: CodecSampling::default(),
            token2wav: SamplerSettings::default(),
            max_codes: 60 * CODES_PER_SECOND,
            max_codes_per_token: 40,
            min_codes: 0,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum QwenTalkerError {
    #[error(transparent)]
    Model(#[from] QwenError),
    #[error("token2wav: {0}")]
    Token2Wav(#[from] SampleError),
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    #[error(transparent)]
    Voice(#[from] SpeakersError),
    #[error(
        "Qwen's Talker speaks from the Thinker's hidden states, and this token has none: pair it \
         with the Qwen Thinker"
    )]
    NoStates,
    #[error("the answer's first token arrived before its context (the Thinker's answer_context)")]
    NoContext,
}

/// The weights a Qwen Talker speaks with, shared by the sessions of a server.
#[derive(Debug, Clone)]
pub struct QwenVoiceModels {
    /// For token embeddings and the rotary layout (its own KV cache is never used).
    pub thinker: Arc<QwenThinker>,
    /// Cloned per session (shared weights, its own KV cache).
    pub talker: TalkerModel,
    pub token2wav: Arc<Token2Wav>,
    /// The checkpoint's voices (`spk_dict`).
    pub speakers: Arc<Speakers>,
}

/// One answer in progress.
#[derive(Debug)]
struct Answer {
    context: Option<AnswerContext>,
    codec: Option<CodecStream>,
    audio: Token2WavStream,
    tokens: usize,
    text_finished: bool,
    codes_finished: bool,
}

/// A voice ready to speak with: its text-BOS id and its Token2Wav conditioning.
#[derive(Debug)]
struct Voice {
    name: String,
    bos: u32,
    conditioning: SpeakerConditioning,
}

/// One session's streaming Qwen Talker.
#[derive(Debug)]
pub struct QwenTalker {
    models: QwenVoiceModels,
    talker: TalkerModel,
    voice: Voice,
    /// The voice the next answer speaks with (`set_voice` during an answer).
    next_voice: Option<Voice>,
    device: candle_core::Device,
    settings: QwenTalkerSettings,
    answer: Option<Answer>,
    answers: u64,
}

impl QwenTalker {
    /// A Talker speaking with `voice` (a speaker of the checkpoint's `spk_dict`, any case).
    pub fn new(
        models: QwenVoiceModels,
        voice: &str,
        settings: QwenTalkerSettings,
    ) -> Result<Self, QwenTalkerError> {
        let device = models.speakers.get(voice)?.cond.device().clone();
        let voice = Self::prepare_voice(&models, voice)?;
        Ok(Self {
            device,
            talker: models.talker.clone(),
            models,
            voice,
            next_voice: None,
            settings,
            answer: None,
            answers: 0,
        })
    }

    /// The voice the current (or next) answer speaks with.
    pub fn voice(&self) -> &str {
        &self.voice.name
    }

    /// Looks `name` up and runs the speaker encoder on its reference mel once.
    fn prepare_voice(models: &QwenVoiceModels, name: &str) -> Result<Voice, QwenTalkerError> {
        let speaker = models.speakers.get(name)?;
        let conditioning = models
            .token2wav
            .dit
            .speaker_conditioning(&speaker.cond, &speaker.ref_mel)?;
        Ok(Voice {
            name: speaker.name.clone(),
            bos: speaker.bos_token,
            conditioning,
        })
    }

    fn new_answer(&mut self, context: Option<AnswerContext>) -> Result<Answer, QwenTalkerError> {
        let mel_dim = self.models.token2wav.dit.config().mel_dim;
        let repeats = self.models.token2wav.dit.config().repeats;
        // Each answer's noise differs, deterministically per session and answer.
        self.answers += 1;
        let noise = seeded_noise(
            self.settings.max_codes * repeats,
            mel_dim,
            self.settings.codec.seed.wrapping_add(self.answers),
            &self.device,
        )?;
        Ok(Answer {
            context,
            codec: None,
            audio: Token2WavStream::new(noise, self.settings.token2wav),
            tokens: 0,
            text_finished: false,
            codes_finished: false,
        })
    }
}

/// `[1, frames, mel_dim]` standard normal noise from a seeded generator (the device's own
/// generator cannot be seeded per session).
fn seeded_noise(
    frames: usize,
    mel_dim: usize,
    seed: u64,
    device: &candle_core::Device,
) -> Result<Tensor, candle_core::Error> {
    use rand::SeedableRng;
    use rand_distr::Distribution;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let normal = rand_distr::StandardNormal;
    let values: Vec<f32> = (0..frames * mel_dim)
        .map(|_| normal.sample(&mut rng))
        .collect();
    Tensor::from_vec(values, (1, frames, mel_dim), device)
}

impl crate::Talker for QwenTalker {
    type Error = QwenTalkerError;

    fn start_answer(&mut self, context: Option<AnswerContext>) -> Result<(), QwenTalkerError> {
        if let Some(voice) = self.next_voice.take() {
            self.voice = voice;
        }
        self.answer = Some(self.new_answer(context)?);
        Ok(())
    }

    fn push_token(&mut self, token: &ThinkerToken) -> Result<(), QwenTalkerError> {
        let (Some(hidden), Some(embedding)) = (&token.hidden, &token.embedding) else {
            return Err(QwenTalkerError::NoStates);
        };
        let state = (hidden.to_dtype(DType::F32)? + embedding.to_dtype(DType::F32)?)?;
        let speaker_bos = self.voice.bos;
        let (sampling, max_codes) = (self.settings.codec, self.settings.max_codes);
        let thinker = Arc::clone(&self.models.thinker);
        let answer = self.answer.as_mut().ok_or(QwenTalkerError::NoContext)?;
        answer.tokens += 1;
        if let Some(codec) = answer.codec.as_mut() {
            codec.push_text(state);
            return Ok(());
        }
        let context = answer.context.as_ref().ok_or(QwenTalkerError::NoContext)?;
        let prompt = TalkerPrompt {
            ids: context.ids.clone(),
            states: context.states.clone(),
            speaker_bos,
            first: state,
            first_id: token.id,
            sequential_positions: true,
        };
        let mut codec =
            CodecStream::start(&mut self.talker, &thinker, &prompt, sampling, max_codes)?;
        // Token2Wav's table has `num_embeds + 1` rows.
        codec.only_acoustic_codes(self.models.token2wav.dit.config().num_embeds + 1);
        codec.set_min_codes(self.settings.min_codes);
        answer.codec = Some(codec);
        Ok(())
    }

    fn finish(&mut self) {
        if let Some(answer) = self.answer.as_mut() {
            answer.text_finished = true;
            match answer.codec.as_mut() {
                Some(codec) => codec.finish_text(),
                // No token at all: nothing to say.
                None => {
                    answer.codes_finished = true;
                    answer.audio.finish();
                }
            }
        }
    }

    fn next_chunk(&mut self, cancel: &CancelGuard) -> Result<Step<Vec<f32>>, QwenTalkerError> {
        let token2wav = Arc::clone(&self.models.token2wav);
        let Some(answer) = self.answer.as_mut() else {
            return Ok(Step::Done);
        };
        loop {
            if cancel.is_cancelled() {
                return Ok(Step::Done);
            }
            match answer
                .audio
                .next_audio(&token2wav, &self.voice.conditioning, cancel)
            {
                Ok(Step::Ready(pcm)) => return Ok(Step::Ready(pcm)),
                Ok(Step::Done) | Err(SampleError::Cancelled) => return Ok(Step::Done),
                Ok(Step::Pending) => {}
                Err(e) => return Err(e.into()),
            }
            // Token2Wav needs more codes.
            let Some(codec) = answer.codec.as_mut() else {
                // The first Thinker token has not arrived yet.
                return Ok(Step::Pending);
            };
            if answer.codes_finished {
                // Unreachable in practice: a finished stream is never Pending.
                return Ok(Step::Done);
            }
            if answer.text_finished
                && codec.codes() >= answer.tokens * self.settings.max_codes_per_token
            {
                answer.codes_finished = true;
                answer.audio.finish();
                continue;
            }
            match codec.next_code(&mut self.talker, cancel)? {
                Step::Ready(code) => answer.audio.push_codes(&[code]),
                Step::Pending => return Ok(Step::Pending),
                Step::Done => {
                    answer.codes_finished = true;
                    answer.audio.finish();
                }
            }
        }
    }

    fn reset(&mut self) {
        self.answer = None;
        self.talker.clear_cache();
    }

    fn voices(&self) -> Vec<String> {
        self.models.speakers.names_default_first()
    }

    fn set_voice(&mut self, voice: &str) -> Result<(), QwenTalkerError> {
        let voice = Self::prepare_voice(&self.models, voice)?;
        if self.answer.is_some() {
            self.next_voice = Some(voice);
        } else {
            self.voice = voice;
            self.next_voice = None;
        }
        Ok(())
    }
}
