//! Conversation items: what `conversation.item.create` inserts and `conversation.item.added` /
//! `.done` report. parley supports message items (user, assistant, system) with text and audio
//! content parts; other GA item types (function calls, MCP) are rejected as `invalid_event`.

use serde::{Deserialize, Serialize};

use crate::audio::Pcm16Audio;

/// A conversation item, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ConversationItem {
    Message(MessageItem),
}

impl ConversationItem {
    /// A user message with one `input_text` part.
    pub fn user_text(text: impl Into<String>) -> Self {
        Self::message(Role::User, ContentPart::InputText { text: text.into() })
    }

    /// A system message with one `input_text` part.
    pub fn system_text(text: impl Into<String>) -> Self {
        Self::message(Role::System, ContentPart::InputText { text: text.into() })
    }

    fn message(role: Role, part: ContentPart) -> Self {
        ConversationItem::Message(MessageItem {
            id: None,
            object: None,
            status: None,
            role,
            content: vec![part],
        })
    }

    /// The item id, if set.
    pub fn id(&self) -> Option<&str> {
        match self {
            ConversationItem::Message(m) => m.id.as_deref(),
        }
    }
}

/// A `message` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageItem {
    /// Given by the client on create, or assigned by the server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.item` in server events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<ItemStatus>,
    pub role: Role,
    #[serde(default)]
    pub content: Vec<ContentPart>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
    System,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemStatus {
    Completed,
    Incomplete,
    InProgress,
}

/// One content part of a message, tagged by `type`. User and system messages use the `input_*`
/// parts, assistant messages the `output_*` parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    InputText {
        #[serde(default)]
        text: String,
    },
    InputAudio {
        /// Base64 PCM16 24 kHz.
        #[serde(skip_serializing_if = "Option::is_none")]
        audio: Option<Pcm16Audio>,
        #[serde(skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
    OutputText {
        #[serde(default)]
        text: String,
    },
    OutputAudio {
        #[serde(skip_serializing_if = "Option::is_none")]
        audio: Option<Pcm16Audio>,
        /// What the audio says; kept in sync with what was heard after a truncate.
        #[serde(skip_serializing_if = "Option::is_none")]
        transcript: Option<String>,
    },
}
