//! hibari as parley's CPU-profile [`Talker`]: Thinker tokens → phrases → G2P → acoustic model →
//! vocoder → 24 kHz PCM chunks.
//!
//! Phrasing. The acoustic model must see a whole phrase at once (its int8 activation scales
//! are per call, `docs/hibari_port.md` §4.2), so text is cut into phrases as it arrives:
//! - at a sentence end, decided exactly as hibari's `split_sentences` does (which needs the first
//!   character of the next sentence, so a sentence is released when the next token arrives, or at
//!   [`Talker::finish`]);
//! - inside a sentence at `,` `;` `:` followed by whitespace once the phrase has at least
//!   [`HibariConfig::min_clause_words`] words (default 4), so a long first sentence starts
//!   speaking early.
//!
//! The cut depends only on the text, never on how it was split into tokens, so streamed and
//! one-shot synthesis ([`HibariTts::synthesize`]) speak the same phrases and produce identical
//! samples.
//!
//! Joining. Like the reference, phrases are concatenated without crossfade: every model call
//! starts and ends on its pad phoneme (near-silence), so the joins don't click. A phrase that
//! continues a sentence (cut at a comma) would otherwise start with the leading pad's ~0.3 s
//! of silence, a sentence-sized pause; its lead is shortened to
//! [`HibariConfig::clause_lead_ms`] with a 5 ms fade-in at the cut.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;

use parley_thinker::seam::ThinkerToken;
use parley_thinker::stream::{CancelGuard, Step};

use super::acoustic::{AcousticError, AcousticModel, Numerics};
use super::dsp::{DetNoise, HOP, PhraseAudio, SAMPLE_RATE, SpectraError, Vocoder};
use super::g2p::{G2p, G2pError, chunk_phonemes, split_sentences};
use crate::Talker;

/// Errors of the hibari TTS.
#[derive(Debug, thiserror::Error)]
pub enum HibariError {
    #[error(transparent)]
    Acoustic(#[from] AcousticError),
    #[error(transparent)]
    G2p(#[from] G2pError),
    #[error("hibari vocoder: {0}")]
    Vocoder(#[from] SpectraError),
    #[error("the answer was already finished; reset the Talker before the next one")]
    AnswerFinished,
    #[error("hibari has no voice {name:?}; it speaks only with {HIBARI_VOICE}")]
    UnknownVoice { name: String },
}

/// hibari's one voice (its `voices.json`): distilled from Kokoro-82M's `af_heart`.
pub const HIBARI_VOICE: &str = "heart";

/// Settings of the streaming Talker.
#[derive(Debug, Clone, PartialEq)]
pub struct HibariConfig {
    /// Speaking rate (1.0 = the model's pace; > 1 is faster).
    pub speed: f32,
    /// A comma, semicolon or colon ends a phrase once the phrase has this many words.
    pub min_clause_words: usize,
    /// Samples per PCM chunk (the last chunk of a phrase may be shorter).
    pub chunk_samples: usize,
    /// Noise seed of the first model call of an answer; call `i` uses `seed + i`.
    pub seed: u64,
    /// Leading silence kept on a phrase that continues a sentence.
    pub clause_lead_ms: u32,
}

impl Default for HibariConfig {
    fn default() -> Self {
        Self {
            speed: 1.0,
            min_clause_words: 4,
            // 40 ms: two transport frames, small enough for playout to start at once.
            chunk_samples: 2 * parley_audio_io::constants::frame_samples(SAMPLE_RATE),
            seed: 0,
            clause_lead_ms: 50,
        }
    }
}

/// Fade-in length at a shortened phrase start (5 ms).
const FADE_SAMPLES: usize = SAMPLE_RATE as usize / 200;

/// One piece of text synthesized by one model call (or several, if its phonemes exceed 400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phrase {
    pub text: String,
    /// Not the first phrase of its sentence (it was cut at a comma/semicolon/colon).
    pub continues_sentence: bool,
}

/// Text cut into phrases: the complete ones, and what must wait for more text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhraseSplit {
    pub phrases: Vec<Phrase>,
    /// Text not yet phrased (keeps its trailing whitespace so the next token appends correctly).
    pub rest: String,
    /// `rest` starts in the middle of a sentence.
    pub rest_continues_sentence: bool,
}

/// Cuts `text` into phrases (see the module doc). `is_final`: no more text will come, so the
/// last sentence is complete too. `continues_sentence`: `text` starts mid-sentence.
pub fn split_phrases(
    text: &str,
    min_clause_words: usize,
    is_final: bool,
    continues_sentence: bool,
) -> PhraseSplit {
    let mut sentences = split_sentences(text);
    let mut rest = String::new();
    if !is_final && let Some(last) = sentences.pop() {
        // split_sentences strips; keep the whitespace that followed, it separates the next token.
        let trailing = &text[text.trim_end().len()..];
        rest = format!("{last}{trailing}");
    }
    let mut phrases = Vec::new();
    let mut continues = continues_sentence;
    for sentence in &sentences {
        let (mut done, tail) = split_clauses(sentence, min_clause_words, continues);
        if !tail.trim().is_empty() {
            done.push(Phrase {
                text: tail.to_string(),
                continues_sentence: !done.is_empty() || continues,
            });
        }
        phrases.extend(done);
        continues = false;
    }
    let mut rest_continues = continues;
    if !rest.is_empty() {
        let (done, tail) = split_clauses(&rest, min_clause_words, continues);
        rest_continues = continues || !done.is_empty();
        rest = tail.to_string();
        phrases.extend(done);
    } else if !is_final {
        rest_continues = continues;
    }
    PhraseSplit {
        phrases,
        rest,
        rest_continues_sentence: rest_continues,
    }
}

/// The clause phrases of `sentence` that end at `,` `;` `:` + whitespace with ≥ `min_words`
/// words, and the text after the last cut.
fn split_clauses(sentence: &str, min_words: usize, continues: bool) -> (Vec<Phrase>, &str) {
    let mut phrases = Vec::new();
    let mut start = 0;
    let mut chars = sentence.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let followed_by_space = chars.peek().is_some_and(|(_, n)| n.is_whitespace());
        if matches!(c, ',' | ';' | ':') && followed_by_space {
            let phrase = sentence[start..=i].trim();
            if phrase.split_whitespace().count() >= min_words {
                phrases.push(Phrase {
                    text: phrase.to_string(),
                    continues_sentence: continues || !phrases.is_empty(),
                });
                start = i + c.len_utf8();
            }
        }
    }
    (phrases, sentence[start..].trim_start())
}

/// The loaded TTS: G2P, acoustic model and vocoder. Shared (`Arc`) by Talkers.
pub struct HibariTts {
    g2p: G2p,
    model: AcousticModel,
    vocoder: Vocoder,
}

impl HibariTts {
    /// Loads the installed `hibari-tts` model directory (`parley models fetch`).
    pub fn load(dir: &Path) -> Result<Self, HibariError> {
        Self::load_with(dir, Numerics::DynamicInt8)
    }

    pub fn load_with(dir: &Path, numerics: Numerics) -> Result<Self, HibariError> {
        let model = AcousticModel::load(dir, numerics)?;
        let g2p = G2p::load(dir)?;
        Ok(Self {
            g2p,
            model,
            vocoder: Vocoder::new(),
        })
    }

    pub fn g2p(&self) -> &G2p {
        &self.g2p
    }

    pub fn model(&self) -> &AcousticModel {
        &self.model
    }

    pub fn vocoder(&self) -> &Vocoder {
        &self.vocoder
    }

    /// Model inputs for one phrase: G2P, split at 400 phonemes, ids with the 0 pads. Chunks
    /// with fewer than 3 ids (nothing to say) are left out, as the reference does.
    pub fn phrase_ids(&self, phrase: &str) -> Result<Vec<Vec<u32>>, HibariError> {
        let phonemes = self.g2p.phonemize(phrase)?;
        Ok(chunk_phonemes(&phonemes)
            .iter()
            .map(|chunk| {
                // Vocabulary ids are 0..178, so the conversion is lossless.
                self.g2p
                    .vocab()
                    .ids(chunk)
                    .into_iter()
                    .map(|i| i as u32)
                    .collect::<Vec<u32>>()
            })
            .filter(|ids| ids.len() >= 3)
            .collect())
    }

    /// Runs the acoustic model on one chunk and starts its audio.
    pub fn start_audio(
        &self,
        ids: &[u32],
        speed: f32,
        noise: DetNoise,
    ) -> Result<(PhraseAudio, u32), HibariError> {
        let out = self.model.forward(ids, speed)?;
        let lead_frames = out.durations[0];
        let audio = self.vocoder.start(out.spectra, out.f0, noise)?;
        Ok((audio, lead_frames))
    }

    /// One-shot synthesis of a whole text with the Talker's phrasing, seeds and joins; the
    /// streaming Talker yields exactly these samples.
    pub fn synthesize(&self, text: &str, config: &HibariConfig) -> Result<Vec<f32>, HibariError> {
        let split = split_phrases(text, config.min_clause_words, true, false);
        let mut out = Vec::new();
        let mut call = 0u64;
        for phrase in &split.phrases {
            for (i, ids) in self.phrase_ids(&phrase.text)?.iter().enumerate() {
                let out_model = self.model.forward(ids, config.speed)?;
                let trim = LeadTrim::new(
                    phrase.continues_sentence && i == 0,
                    out_model.durations[0],
                    config,
                );
                let noise = DetNoise::new(config.seed.wrapping_add(call));
                call += 1;
                let audio = self.vocoder.synth(out_model.spectra, out_model.f0, noise)?;
                out.extend(
                    audio
                        .iter()
                        .enumerate()
                        .filter_map(|(n, &x)| trim.apply(n, x)),
                );
            }
        }
        Ok(out)
    }
}

/// Shortens the leading pad of a phrase that continues a sentence (see the module doc).
#[derive(Debug, Clone, Copy)]
struct LeadTrim {
    /// Samples dropped from the phrase start.
    skip: usize,
    /// Fade-in length after the cut (0 if nothing is cut).
    fade: usize,
}

impl LeadTrim {
    fn new(active: bool, lead_frames: u32, config: &HibariConfig) -> Self {
        if !active {
            return Self { skip: 0, fade: 0 };
        }
        // One 25 ms duration frame = two 12.5 ms vocoder hops.
        let lead = lead_frames as usize * 2 * HOP;
        let keep = config.clause_lead_ms as usize * SAMPLE_RATE as usize / 1000;
        let skip = lead.saturating_sub(keep);
        Self {
            skip,
            fade: if skip > 0 { FADE_SAMPLES } else { 0 },
        }
    }

    /// Sample `n` of the phrase after trimming, or `None` if it is cut.
    fn apply(&self, n: usize, x: f32) -> Option<f32> {
        if n < self.skip {
            return None;
        }
        let k = n - self.skip;
        if k < self.fade {
            Some(x * (k as f32 + 0.5) / self.fade as f32)
        } else {
            Some(x)
        }
    }
}

/// A phrase chunk being played out.
struct Playing {
    audio: PhraseAudio,
    trim: LeadTrim,
    /// Phrase samples rendered so far (before trimming).
    position: usize,
    /// Rendered but not yet handed out.
    buffer: VecDeque<f32>,
}

/// The streaming [`Talker`] on [`HibariTts`] (see the module doc for phrasing and joins).
pub struct HibariTalker {
    tts: Arc<HibariTts>,
    config: HibariConfig,
    /// Text not yet cut into phrases.
    text: String,
    text_continues_sentence: bool,
    phrases: VecDeque<Phrase>,
    /// Model inputs of the current phrase still to run, whether the first continues a sentence,
    /// and the phrase's text.
    pending_ids: VecDeque<(Vec<u32>, bool, Arc<str>)>,
    /// The phrase of the chunk last handed out.
    spoken: Option<Arc<str>>,
    playing: Option<Playing>,
    /// Model calls made in this answer (the noise seed offset).
    calls: u64,
    /// Acoustic-model calls over the Talker's life (not reset; for tests and metrics).
    total_calls: u64,
    finished: bool,
}

impl HibariTalker {
    pub fn new(tts: Arc<HibariTts>, config: HibariConfig) -> Self {
        Self {
            tts,
            config,
            text: String::new(),
            text_continues_sentence: false,
            phrases: VecDeque::new(),
            pending_ids: VecDeque::new(),
            spoken: None,
            playing: None,
            calls: 0,
            total_calls: 0,
            finished: false,
        }
    }

    /// Acoustic-model calls made since this Talker was created (`reset` keeps the count).
    pub fn model_calls(&self) -> u64 {
        self.total_calls
    }

    pub fn config(&self) -> &HibariConfig {
        &self.config
    }

    /// Moves every phrase the text so far completes into the queue.
    fn cut_phrases(&mut self) {
        let split = split_phrases(
            &self.text,
            self.config.min_clause_words,
            self.finished,
            self.text_continues_sentence,
        );
        self.phrases.extend(split.phrases);
        self.text = split.rest;
        self.text_continues_sentence = split.rest_continues_sentence;
    }

    /// Up to `chunk_samples` of the playing phrase; `None` when it is exhausted.
    fn take_chunk(&mut self) -> Option<Vec<f32>> {
        let playing = self.playing.as_mut()?;
        let want = self.config.chunk_samples.max(1);
        let mut hop = Vec::with_capacity(HOP);
        while playing.buffer.len() < want {
            hop.clear();
            if !playing.audio.render_hop(&mut hop) {
                break;
            }
            for &x in &hop {
                if let Some(y) = playing.trim.apply(playing.position, x) {
                    playing.buffer.push_back(y);
                }
                playing.position += 1;
            }
        }
        if playing.buffer.is_empty() {
            self.playing = None;
            return None;
        }
        let n = want.min(playing.buffer.len());
        Some(playing.buffer.drain(..n).collect())
    }
}

impl Talker for HibariTalker {
    type Error = HibariError;

    fn push_token(&mut self, token: &ThinkerToken) -> Result<(), HibariError> {
        if self.finished {
            return Err(HibariError::AnswerFinished);
        }
        self.text.push_str(&token.text);
        self.cut_phrases();
        Ok(())
    }

    fn finish(&mut self) {
        self.finished = true;
        self.cut_phrases();
    }

    fn next_chunk(&mut self, cancel: &CancelGuard) -> Result<Step<Vec<f32>>, HibariError> {
        loop {
            if cancel.is_cancelled() {
                self.reset();
                return Ok(Step::Done);
            }
            if let Some(chunk) = self.take_chunk() {
                return Ok(Step::Ready(chunk));
            }
            if let Some((ids, continues, text)) = self.pending_ids.pop_front() {
                self.spoken = Some(text);
                let noise = DetNoise::new(self.config.seed.wrapping_add(self.calls));
                self.calls += 1;
                self.total_calls += 1;
                let (audio, lead_frames) = self.tts.start_audio(&ids, self.config.speed, noise)?;
                self.playing = Some(Playing {
                    audio,
                    trim: LeadTrim::new(continues, lead_frames, &self.config),
                    position: 0,
                    buffer: VecDeque::new(),
                });
                continue;
            }
            if let Some(phrase) = self.phrases.pop_front() {
                let chunks = self.tts.phrase_ids(&phrase.text)?;
                let text: Arc<str> = Arc::from(phrase.text.as_str());
                self.pending_ids.extend(
                    chunks.into_iter().enumerate().map(|(i, ids)| {
                        (ids, phrase.continues_sentence && i == 0, Arc::clone(&text))
                    }),
                );
                continue;
            }
            return Ok(if self.finished {
                Step::Done
            } else {
                Step::Pending
            });
        }
    }

    fn reset(&mut self) {
        self.text.clear();
        self.text_continues_sentence = false;
        self.phrases.clear();
        self.pending_ids.clear();
        self.spoken = None;
        self.playing = None;
        self.calls = 0;
        self.finished = false;
    }

    fn voices(&self) -> Vec<String> {
        vec![HIBARI_VOICE.to_string()]
    }

    fn set_voice(&mut self, voice: &str) -> Result<(), HibariError> {
        if voice.eq_ignore_ascii_case(HIBARI_VOICE) {
            Ok(())
        } else {
            Err(HibariError::UnknownVoice {
                name: voice.to_string(),
            })
        }
    }

    fn spoken_phrase(&self) -> Option<(&str, u64)> {
        let samples = self.playing.as_ref()?.audio.total_samples();
        Some((self.spoken.as_deref()?, samples as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(split: &PhraseSplit) -> Vec<(&str, bool)> {
        split
            .phrases
            .iter()
            .map(|p| (p.text.as_str(), p.continues_sentence))
            .collect()
    }

    #[test]
    fn sentences_wait_for_the_next_sentence_to_start() {
        let s = split_phrases("Hello there.", 4, false, false);
        assert!(s.phrases.is_empty());
        assert_eq!(s.rest, "Hello there.");
        let s = split_phrases("Hello there. How", 4, false, false);
        assert_eq!(texts(&s), vec![("Hello there.", false)]);
        assert_eq!(s.rest, "How");
        // A title is not a sentence end.
        let s = split_phrases("Ask Dr. Smith", 4, false, false);
        assert!(s.phrases.is_empty());
        let s = split_phrases("Hello there.", 4, true, false);
        assert_eq!(texts(&s), vec![("Hello there.", false)]);
        assert_eq!(s.rest, "");
    }

    #[test]
    fn clauses_cut_after_enough_words() {
        let s = split_phrases("Well, I read the book yesterday, and I", 4, false, false);
        assert_eq!(texts(&s), vec![("Well, I read the book yesterday,", false)]);
        assert_eq!(s.rest, "and I");
        assert!(s.rest_continues_sentence);
        // A comma inside a number is not a clause end.
        let s = split_phrases("We need 1,250 chairs and 3 tables", 2, false, false);
        assert!(s.phrases.is_empty());
        // The rest of a cut sentence continues it.
        let s = split_phrases("and I will read it again. Next", 4, false, true);
        assert_eq!(texts(&s), vec![("and I will read it again.", true)]);
        assert!(!s.rest_continues_sentence);
    }

    #[test]
    fn phrasing_does_not_depend_on_token_boundaries() {
        let text = "Sure, here is what I found: the capital of France is Paris, a city of \
                    two million people. It sits on the Seine; it is lovely in spring.\nBye!";
        let one_shot = split_phrases(text, 4, true, false).phrases;
        for step in [1, 2, 3, 7] {
            let chars: Vec<char> = text.chars().collect();
            let mut streamed = Vec::new();
            let (mut rest, mut cont) = (String::new(), false);
            for piece in chars.chunks(step) {
                rest.extend(piece);
                let s = split_phrases(&rest, 4, false, cont);
                streamed.extend(s.phrases);
                (rest, cont) = (s.rest, s.rest_continues_sentence);
            }
            streamed.extend(split_phrases(&rest, 4, true, cont).phrases);
            assert_eq!(streamed, one_shot, "step {step}");
        }
        assert!(one_shot.len() >= 5, "{one_shot:?}");
    }
}
