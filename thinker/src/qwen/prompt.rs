//! Qwen2.5-Omni's chat template (../shared/docs/qwen2_5_omni.md §3.3) and the system prompt the
//! published models need to answer in speech.
//!
//! A conversation is ChatML: `<|im_start|>{role}\n{content}<|im_end|>\n` per message, then
//! `<|im_start|>assistant\n` when an answer is wanted. A spoken user turn's content is
//! `<|audio_bos|><|AUDIO|><|audio_eos|>`; the single `<|AUDIO|>` stands for the clip and becomes
//! one token per 40 ms of speech (the audio encoder's embeddings take those positions).
//!
//! The template is rendered with the same Jinja renderer as the GGUF Thinker's
//! ([`crate::llm::ChatTemplate`]): the checkpoint's own (`chat_template.json`, or
//! `tokenizer_config.json`'s `chat_template`) when it has one, else [`BUILTIN_TEMPLATE`].

use std::path::Path;

use crate::llm::{ChatMessage, ChatTemplate};

use super::QwenError;
use super::tokenizer::{AUDIO, AUDIO_BOS, AUDIO_EOS, END_OF_TEXT, IM_END, QwenTokenizer};

/// The system prompt the published models need to answer in speech (Qwen's README, checked by
/// the reference processor; with another one "audio output may not work as expected").
pub const SPEECH_SYSTEM_PROMPT: &str = "You are Qwen, a virtual human developed by the Qwen Team, \
     Alibaba Group, capable of perceiving auditory and visual inputs, as well as generating text \
     and speech.";

/// The system prompt the template inserts when a conversation has none.
pub const TEMPLATE_SYSTEM_PROMPT: &str = "You are a helpful assistant.";

/// A user turn's content for one audio clip, as the template prints an audio item.
pub const AUDIO_PLACEHOLDER: &str = "<|audio_bos|><|AUDIO|><|audio_eos|>";

/// Qwen2.5-Omni's template for messages with plain-string content (audio given as
/// [`AUDIO_PLACEHOLDER`]): the default system message when the first is not `system`, ChatML
/// per message, the assistant prompt with `add_generation_prompt`. Written from the template's
/// logic (doc §3.3); used when a checkpoint ships no template.
pub const BUILTIN_TEMPLATE: &str = r#"
{%- for message in messages -%}
  {%- if loop.first and message.role != 'system' -%}
    {{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}
  {%- endif -%}
  {{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}
{%- endfor -%}
{%- if add_generation_prompt -%}
  {{ '<|im_start|>assistant\n' }}
{%- endif -%}
"#;

/// What a message holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    Text(String),
    /// One audio clip encoded to `tokens` embeddings (25 per second of speech).
    Audio {
        tokens: usize,
    },
}

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: Content,
}

impl Message {
    pub fn system(text: impl Into<String>) -> Self {
        Self::text("system", text)
    }
    pub fn user(text: impl Into<String>) -> Self {
        Self::text("user", text)
    }
    pub fn assistant(text: impl Into<String>) -> Self {
        Self::text("assistant", text)
    }
    /// A spoken user turn of `tokens` audio embeddings.
    pub fn user_audio(tokens: usize) -> Self {
        Self {
            role: "user".into(),
            content: Content::Audio { tokens },
        }
    }

    fn text(role: &str, text: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: Content::Text(text.into()),
        }
    }

    /// As the template sees it (an audio clip as its placeholder).
    fn to_chat_message(&self) -> ChatMessage {
        let content = match &self.content {
            Content::Text(text) => text.clone(),
            Content::Audio { .. } => AUDIO_PLACEHOLDER.to_string(),
        };
        ChatMessage {
            role: self.role.clone(),
            content,
        }
    }
}

/// A compiled Qwen chat template.
#[derive(Debug)]
pub struct QwenChatTemplate {
    template: ChatTemplate,
}

impl QwenChatTemplate {
    /// Compiles a Jinja chat template.
    pub fn new(source: &str) -> Result<Self, QwenError> {
        // Qwen's templates print no BOS; `<|im_end|>` is the end of a turn.
        let template = ChatTemplate::new(source, END_OF_TEXT, IM_END)
            .map_err(|e| QwenError::Template(e.to_string()))?;
        Ok(Self { template })
    }

    /// [`BUILTIN_TEMPLATE`].
    pub fn builtin() -> Self {
        // The built-in template is a constant that compiles (tested below).
        Self::new(BUILTIN_TEMPLATE).expect("the built-in chat template compiles")
    }

    /// The checkpoint's template (`chat_template.json`, else `tokenizer_config.json`'s
    /// `chat_template`), or the built-in one when it has neither.
    pub fn from_checkpoint_dir(dir: &Path) -> Result<Self, QwenError> {
        for file in ["chat_template.json", "tokenizer_config.json"] {
            let path = dir.join(file);
            if !path.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| QwenError::Io {
                path: path.clone(),
                source,
            })?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| QwenError::BadConfig {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            if let Some(source) = value.get("chat_template").and_then(|t| t.as_str()) {
                tracing::debug!(path = %path.display(), "chat template");
                return Self::new(source).map_err(|e| QwenError::BadConfig {
                    path,
                    message: e.to_string(),
                });
            }
        }
        Ok(Self::builtin())
    }

    /// The conversation as text; audio clips are one [`AUDIO_PLACEHOLDER`] each.
    pub fn render(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<String, QwenError> {
        let messages: Vec<ChatMessage> = messages.iter().map(Message::to_chat_message).collect();
        self.render_chat(&messages, add_generation_prompt)
    }

    pub(crate) fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, QwenError> {
        self.template
            .render(messages, add_generation_prompt)
            .map_err(|e| QwenError::Template(e.to_string()))
    }

    /// The token ids of the conversation, each audio clip's `<|AUDIO|>` repeated once per audio
    /// embedding: the Thinker's `input_ids` (`QwenThinker::prefill` with the clips' features).
    pub fn render_ids(
        &self,
        tokenizer: &QwenTokenizer,
        messages: &[Message],
        add_generation_prompt: bool,
    ) -> Result<Vec<u32>, QwenError> {
        let text = self.render(messages, add_generation_prompt)?;
        let ids = tokenizer.encode(&text)?;
        let clips: Vec<usize> = messages
            .iter()
            .filter_map(|m| match m.content {
                Content::Audio { tokens } => Some(tokens),
                Content::Text(_) => None,
            })
            .collect();
        let audio = tokenizer.special().audio;
        let mut clip = clips.iter();
        let mut expanded = Vec::with_capacity(ids.len() + clips.iter().sum::<usize>());
        for id in ids {
            if id != audio {
                expanded.push(id);
                continue;
            }
            let tokens = clip.next().ok_or_else(|| {
                QwenError::bad_input("messages", format!("more {AUDIO} markers than audio clips"))
            })?;
            expanded.extend(std::iter::repeat_n(audio, *tokens));
        }
        if clip.next().is_some() {
            return Err(QwenError::bad_input(
                "messages",
                format!(
                    "the template printed fewer {AUDIO_BOS}{AUDIO}{AUDIO_EOS} than audio clips"
                ),
            ));
        }
        Ok(expanded)
    }
}

impl Default for QwenChatTemplate {
    fn default() -> Self {
        Self::builtin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_template_writes_chatml_with_audio_and_the_default_system_prompt() {
        let template = QwenChatTemplate::builtin();
        let text = template
            .render(
                &[
                    Message::system(SPEECH_SYSTEM_PROMPT),
                    Message::user("Hi"),
                    Message::assistant("Hello!"),
                    Message::user_audio(3),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            text,
            format!(
                "<|im_start|>system\n{SPEECH_SYSTEM_PROMPT}<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
                 <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n\
                 <|audio_bos|><|AUDIO|><|audio_eos|><|im_end|>\n<|im_start|>assistant\n"
            )
        );
        let no_system = template.render(&[Message::user("Hi")], false).unwrap();
        assert_eq!(
            no_system,
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n\
             <|im_start|>user\nHi<|im_end|>\n"
        );
        assert!(no_system.contains(TEMPLATE_SYSTEM_PROMPT));
    }

    #[test]
    fn the_speech_system_prompt_is_qwens_exact_string() {
        assert_eq!(
            SPEECH_SYSTEM_PROMPT,
            "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of \
             perceiving auditory and visual inputs, as well as generating text and speech."
        );
    }

    #[test]
    fn a_checkpoints_template_is_preferred_and_a_broken_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            QwenChatTemplate::from_checkpoint_dir(dir.path())
                .unwrap()
                .render(&[Message::system("s")], false)
                .unwrap(),
            "<|im_start|>system\ns<|im_end|>\n"
        );
        let source = "{% for m in messages %}[{{ m.role }}:{{ m.content }}]{% endfor %}";
        std::fs::write(
            dir.path().join("chat_template.json"),
            serde_json::json!({ "chat_template": source }).to_string(),
        )
        .unwrap();
        let template = QwenChatTemplate::from_checkpoint_dir(dir.path()).unwrap();
        assert_eq!(
            template.render(&[Message::user("hi")], false).unwrap(),
            "[user:hi]"
        );
        std::fs::write(
            dir.path().join("chat_template.json"),
            serde_json::json!({ "chat_template": "{% for %}" }).to_string(),
        )
        .unwrap();
        let err = QwenChatTemplate::from_checkpoint_dir(dir.path()).unwrap_err();
        assert!(err.to_string().contains("chat_template.json"), "{err}");
    }
}
