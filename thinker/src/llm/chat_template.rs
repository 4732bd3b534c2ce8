//! The model's chat template (`tokenizer.chat_template`, Jinja) rendered with minijinja.
//!
//! Rendered the way HF `apply_chat_template` does: `trim_blocks` and `lstrip_blocks` on,
//! variables `messages`, `add_generation_prompt`, `bos_token`, `eos_token`, a
//! `raise_exception` function, and the Python string methods templates call on values
//! (`content.strip()` in Llama 2's, `startswith`, `split`, ...; from minijinja-contrib).
//!
//! Some templates refuse a system message (Mistral-Instruct's and Gemma's raise on any role but
//! user and assistant). For those the system prompt is folded into the first user message, the
//! way their model cards advise, so a session's system prompt works with any GGUF.

use minijinja::{Environment, ErrorKind, context};
use serde::{Deserialize, Serialize};

use super::LlmError;

/// One message of the conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: "system".into(),
            content: content.into(),
        }
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: "user".into(),
            content: content.into(),
        }
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: "assistant".into(),
            content: content.into(),
        }
    }
}

const TEMPLATE_NAME: &str = "chat";

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos_token: String,
    eos_token: String,
    /// The template renders a leading `system` message (found by trying one).
    system_role: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate").finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles `source`; `bos_token`/`eos_token` are the strings templates may print.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, LlmError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |message: String| -> Result<String, _> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        });
        env.add_template_owned(TEMPLATE_NAME, source.to_string())
            .map_err(|e| LlmError::Template(e.to_string()))?;
        let mut template = Self {
            env,
            bos_token: bos_token.to_string(),
            eos_token: eos_token.to_string(),
            system_role: true,
        };
        let with_system = [ChatMessage::system("s"), ChatMessage::user("u")];
        // Only a template that renders the user message alone but not after a system message
        // refuses the role; any other failure is left for `render` to report.
        if template.render_as_is(&with_system, true).is_err()
            && template.render_as_is(&with_system[1..], true).is_ok()
        {
            tracing::debug!("the chat template has no system role; folding it into the first turn");
            template.system_role = false;
        }
        Ok(template)
    }

    /// Whether the template takes a `system` message itself (else `render` folds it into the
    /// first user message).
    pub fn supports_system_role(&self) -> bool {
        self.system_role
    }

    /// Renders the conversation; with `add_generation_prompt` the text ends where the
    /// assistant's answer begins.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        match messages.split_first() {
            Some((system, rest)) if system.role == "system" && !self.system_role => {
                let mut folded = rest.to_vec();
                // Without a user turn yet to carry it, the system prompt waits for one.
                if let Some(first) = folded.first_mut().filter(|m| m.role == "user") {
                    first.content = format!("{}\n\n{}", system.content, first.content);
                }
                self.render_as_is(&folded, add_generation_prompt)
            }
            _ => self.render_as_is(messages, add_generation_prompt),
        }
    }

    fn render_as_is(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, LlmError> {
        let template = self
            .env
            .get_template(TEMPLATE_NAME)
            .map_err(|e| LlmError::Template(e.to_string()))?;
        template
            .render(context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => &self.bos_token,
                eos_token => &self.eos_token,
            })
            .map_err(|e| LlmError::Template(e.to_string()))
    }

    /// The text the template puts right after an assistant message's content (for ChatML:
    /// `<|im_end|>\n`). Its first token is the model's end-of-turn token.
    pub fn assistant_suffix(&self) -> Result<String, LlmError> {
        // A marker no template alters, to find where the content ends.
        const MARKER: &str = "\u{1}parley-end-probe\u{1}";
        let messages = [
            ChatMessage::user("hi"),
            ChatMessage::assistant(MARKER),
            ChatMessage::user("bye"),
        ];
        let text = self.render(&messages, false)?;
        let after = text.find(MARKER).map(|at| &text[at + MARKER.len()..]);
        let before_next_user = after.and_then(|rest| rest.find("bye").map(|end| &rest[..end]));
        before_next_user.map(str::to_string).ok_or_else(|| {
            LlmError::Template("the template does not print assistant messages".into())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `meta-llama/Llama-2-7b-chat-hf`'s `chat_template` (tokenizer_config.json), verbatim.
    const LLAMA2_CHAT: &str = r#"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}"#;

    #[test]
    fn llama2_chat_template_strips_contents_like_python() {
        let template = ChatTemplate::new(LLAMA2_CHAT, "<s>", "</s>").unwrap();
        let text = template
            .render(
                &[
                    ChatMessage::system("Be brief."),
                    ChatMessage::user("  Hi there \n"),
                    ChatMessage::assistant(" Hello! "),
                    ChatMessage::user("Bye"),
                ],
                true,
            )
            .unwrap();
        assert_eq!(
            text,
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n  Hi there [/INST] Hello! </s><s>[INST] Bye [/INST]"
        );
        assert_eq!(template.assistant_suffix().unwrap(), " </s><s>[INST] ");
    }

    /// In the style of Mistral-7B-Instruct-v0.1's and Gemma's templates: roles must alternate and
    /// any role but user and assistant raises.
    const NO_SYSTEM_ROLE: &str = r#"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token + ' ' }}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"#;

    #[test]
    fn a_template_without_a_system_role_gets_the_system_prompt_in_the_first_turn() {
        let template = ChatTemplate::new(NO_SYSTEM_ROLE, "<s>", "</s>").unwrap();
        assert!(!template.supports_system_role());
        let first = template
            .render(
                &[ChatMessage::system("Be brief."), ChatMessage::user("Hi")],
                true,
            )
            .unwrap();
        assert_eq!(first, "<s>[INST] Be brief.\n\nHi [/INST]");
        // Later turns render the first the same way, so the cached prefix still matches.
        let second = template
            .render(
                &[
                    ChatMessage::system("Be brief."),
                    ChatMessage::user("Hi"),
                    ChatMessage::assistant("Hello!"),
                    ChatMessage::user("Bye"),
                ],
                true,
            )
            .unwrap();
        assert!(second.starts_with(&first), "{second}");
        assert!(
            second.ends_with("Hello!</s> [INST] Bye [/INST]"),
            "{second}"
        );
        // Templates with the role keep it.
        assert!(
            ChatTemplate::new(LLAMA2_CHAT, "<s>", "</s>")
                .unwrap()
                .supports_system_role()
        );
    }

    #[test]
    fn raise_exception_in_a_template_is_a_template_error() {
        let template = ChatTemplate::new(LLAMA2_CHAT, "<s>", "</s>").unwrap();
        let err = template
            .render(
                &[ChatMessage::assistant("first"), ChatMessage::user("x")],
                true,
            )
            .unwrap_err();
        assert!(err.to_string().contains("must alternate"), "{err}");
    }
}
