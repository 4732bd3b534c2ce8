//! Speculative transcription: start when silence begins, use the result at the endpoint.
//!
//! The endpointer only commits a turn after some hundreds of milliseconds of silence. Whisper
//! needs the audio up to the last word, which is known as soon as the silence starts, so the
//! engine calls [`SpeculativeTranscriber::begin`] then (on its transcription thread). If the
//! user speaks again, it calls [`SpeculativeTranscriber::speech_resumed`] (and cancels the guard
//! if `begin` is still running) and the result is thrown away. When the endpoint is decided,
//! [`SpeculativeTranscriber::finish`] returns the finished transcript without running the model
//! again, or transcribes now if there was no usable speculation.

use super::error::WhisperError;
use super::transcriber::Transcriber;
use crate::stream::CancelGuard;

/// A transcript finished ahead of the endpoint.
#[derive(Debug, Clone)]
struct Speculation {
    /// The audio it transcribed; the committed utterance must start with exactly this audio.
    audio: Vec<f32>,
    pieces: Vec<String>,
    text: String,
}

/// The transcript of a committed utterance.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub text: String,
    /// True when the text came from the speculation started at the beginning of the silence.
    pub from_speculation: bool,
}

/// A [`Transcriber`] plus at most one speculative result.
#[derive(Debug)]
pub struct SpeculativeTranscriber {
    transcriber: Transcriber,
    speculation: Option<Speculation>,
}

impl SpeculativeTranscriber {
    pub fn new(transcriber: Transcriber) -> Self {
        Self {
            transcriber,
            speculation: None,
        }
    }

    pub fn transcriber_mut(&mut self) -> &mut Transcriber {
        &mut self.transcriber
    }

    /// Silence began after `utterance`: transcribe it now and keep the result. Replaces any
    /// earlier speculation. On cancellation (the user spoke again) nothing is kept.
    pub fn begin(&mut self, utterance: &[f32], cancel: &CancelGuard) -> Result<(), WhisperError> {
        self.speculation = None;
        let mut pieces = Vec::new();
        let text = self
            .transcriber
            .transcribe(utterance, cancel, |piece| pieces.push(piece.to_string()))?;
        self.speculation = Some(Speculation {
            audio: utterance.to_vec(),
            pieces,
            text,
        });
        Ok(())
    }

    /// The user spoke again after `begin`: its transcript no longer covers the utterance.
    pub fn speech_resumed(&mut self) {
        self.speculation = None;
    }

    /// Whether a finished speculative transcript is waiting for `finish`.
    pub fn has_speculation(&self) -> bool {
        self.speculation.is_some()
    }

    /// The speculative transcript, if one is waiting (e.g. to start thinking before the
    /// endpoint is decided).
    pub fn speculative_text(&self) -> Option<&str> {
        self.speculation.as_ref().map(|s| s.text.as_str())
    }

    /// The endpoint was decided on `utterance` (the audio given to `begin` plus the trailing
    /// silence). Streams the transcript through `on_piece` and returns it: the speculation's when
    /// `utterance` starts with the audio it transcribed, else a transcription run now. Either way
    /// the speculation is used up.
    pub fn finish(
        &mut self,
        utterance: &[f32],
        cancel: &CancelGuard,
        mut on_piece: impl FnMut(&str),
    ) -> Result<Finished, WhisperError> {
        if let Some(speculation) = self.speculation.take()
            && utterance.starts_with(&speculation.audio)
        {
            for piece in &speculation.pieces {
                on_piece(piece);
            }
            return Ok(Finished {
                text: speculation.text,
                from_speculation: true,
            });
        }
        let text = self.transcriber.transcribe(utterance, cancel, on_piece)?;
        Ok(Finished {
            text,
            from_speculation: false,
        })
    }
}
