//! The Qwen tokenizer from a checkpoint's `tokenizer.json` (byte-level BPE with the added special
//! tokens), with the ids the Thinker needs found by their names, never by number, and checked
//! against `config.json`; and, as in Hugging Face's tokenizers, the checkpoint's chat template.

use std::path::Path;
use std::sync::Arc;

use tokenizers::Tokenizer;

use super::QwenError;
use super::config::ThinkerConfig;
use super::prompt::QwenChatTemplate;

/// ChatML and multimodal markers, by the names the published tokenizer gives them.
pub const IM_START: &str = "<|im_start|>";
pub const IM_END: &str = "<|im_end|>";
pub const END_OF_TEXT: &str = "<|endoftext|>";
pub const AUDIO: &str = "<|AUDIO|>";
pub const AUDIO_BOS: &str = "<|audio_bos|>";
pub const AUDIO_EOS: &str = "<|audio_eos|>";

/// Special ids of the Qwen vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    pub im_start: u32,
    /// Ends every turn; the Thinker's end of an answer.
    pub im_end: u32,
    pub end_of_text: u32,
    pub audio: u32,
    pub audio_bos: u32,
    pub audio_eos: u32,
}

#[derive(Debug, Clone)]
pub struct QwenTokenizer {
    inner: Tokenizer,
    special: SpecialIds,
    chat_template: Arc<QwenChatTemplate>,
}

impl QwenTokenizer {
    /// Reads `tokenizer.json` of a checkpoint directory (its audio ids must be the ones
    /// `config.json` names) and the directory's chat template.
    pub fn from_checkpoint_dir(dir: &Path, config: &ThinkerConfig) -> Result<Self, QwenError> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(QwenError::MissingFile { path });
        }
        let inner = Tokenizer::from_file(&path).map_err(|e| QwenError::BadConfig {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let id = |name: &str| {
            inner.token_to_id(name).ok_or_else(|| QwenError::BadConfig {
                path: path.clone(),
                message: format!("the tokenizer has no {name} token"),
            })
        };
        let special = SpecialIds {
            im_start: id(IM_START)?,
            im_end: id(IM_END)?,
            end_of_text: id(END_OF_TEXT)?,
            audio: id(AUDIO)?,
            audio_bos: id(AUDIO_BOS)?,
            audio_eos: id(AUDIO_EOS)?,
        };
        for (name, ours, configured) in [
            (AUDIO, special.audio, config.audio_token_index),
            (AUDIO_BOS, special.audio_bos, config.audio_start_token_id),
            (AUDIO_EOS, special.audio_eos, config.audio_end_token_id),
        ] {
            if ours != configured {
                return Err(QwenError::BadConfig {
                    path: path.clone(),
                    message: format!(
                        "{name} is id {ours} in tokenizer.json but {configured} in config.json"
                    ),
                });
            }
        }
        Ok(Self {
            inner,
            special,
            chat_template: Arc::new(QwenChatTemplate::from_checkpoint_dir(dir)?),
        })
    }

    /// The checkpoint's chat template (Qwen2.5-Omni's built-in one when it ships none).
    pub fn chat_template(&self) -> &QwenChatTemplate {
        &self.chat_template
    }

    pub fn special(&self) -> &SpecialIds {
        &self.special
    }

    /// Token ids of `text`; special-token names in it become their ids (the chat markup).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, QwenError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|e| QwenError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids` (special tokens skipped).
    pub fn decode(&self, ids: &[u32]) -> Result<String, QwenError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| QwenError::Tokenizer(e.to_string()))
    }

    /// Whether `id` ends an answer.
    pub fn is_end_of_answer(&self, id: u32) -> bool {
        id == self.special.im_end || id == self.special.end_of_text
    }

    pub(crate) fn inner(&self) -> &Tokenizer {
        &self.inner
    }
}

/// Text of a token stream, piece by piece: a piece is released once its bytes form whole UTF-8
/// characters (tokenizers' streaming decode, with the state kept here).
#[derive(Debug, Clone, Default)]
pub struct TextStream {
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
}

impl TextStream {
    /// The text `id` completes (empty while a character is still partial).
    pub fn push(&mut self, tokenizer: &QwenTokenizer, id: u32) -> Result<String, QwenError> {
        let piece = tokenizers::tokenizer::step_decode_stream(
            tokenizer.inner(),
            vec![id],
            true,
            &mut self.ids,
            &mut self.prefix,
            &mut self.prefix_index,
        )
        .map_err(|e| QwenError::Tokenizer(e.to_string()))?;
        Ok(piece.unwrap_or_default())
    }
}
