//! Text frame -> typed event. Every failure becomes an [`EventError`] with the code the `error`
//! event will carry:
//!
//! | input                                              | code                 |
//! |----------------------------------------------------|----------------------|
//! | not JSON                                           | `invalid_json`       |
//! | JSON but not an object, or no string `type`        | `invalid_event`      |
//! | a `type` this side does not know                   | `unknown_event_type` |
//! | a known `type` with a bad audio field              | `invalid_audio`      |
//! | a known `type` with any other missing or bad field | `invalid_event`      |
//!
//! The fast path is one serde pass. Only after a failure is the text looked at again to find out
//! what was wrong and to recover the `event_id` (bounded by the message size limit).

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::audio::AUDIO_ERROR_PREFIX;
use crate::error::{ErrorCode, EventError, ProtocolError};
use crate::events::{ClientEvent, ServerEvent};

/// Parses a client event (server side).
pub fn parse_client_event(text: &str) -> Result<ClientEvent, ProtocolError> {
    parse_event(text, ClientEvent::TYPES).map_err(ProtocolError::from)
}

/// Parses a server event (client side). An event type this version does not know comes back as
/// an `unknown_event_type` error the client can skip: servers add event types over time.
pub fn parse_server_event(text: &str) -> Result<ServerEvent, ProtocolError> {
    parse_event(text, ServerEvent::TYPES).map_err(ProtocolError::from)
}

/// Parses `text` as `T` (a `type`-tagged enum whose tags are `known_types`).
pub(crate) fn parse_event<T: DeserializeOwned>(
    text: &str,
    known_types: &[&str],
) -> Result<T, EventError> {
    serde_json::from_str(text).map_err(|e| classify(text, &e, known_types))
}

fn classify(text: &str, err: &serde_json::Error, known_types: &[&str]) -> EventError {
    if err.is_syntax() || err.is_eof() {
        return EventError::new(ErrorCode::InvalidJson, format!("not valid JSON: {err}"));
    }
    // The text is valid JSON (serde only failed on the data), so this parse succeeds; if it
    // somehow does not, the error below still says the right thing.
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let Some(object) = value.as_object() else {
        return EventError::new(
            ErrorCode::InvalidEvent,
            "an event must be a JSON object with a string `type` field",
        );
    };
    let event_id = object
        .get("event_id")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let event_type = match object.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(_) | None => {
            return EventError {
                param: Some("type".to_owned()),
                event_id,
                ..EventError::new(
                    ErrorCode::InvalidEvent,
                    "an event must have a string `type` field",
                )
            };
        }
    };
    if !known_types.contains(&event_type.as_str()) {
        return EventError {
            param: Some("type".to_owned()),
            event_type: Some(event_type.clone()),
            event_id,
            ..EventError::new(
                ErrorCode::UnknownEventType,
                format!("unknown or unsupported event type `{event_type}`"),
            )
        };
    }
    let detail = message_without_position(err);
    let (code, message) = match detail.strip_prefix(AUDIO_ERROR_PREFIX) {
        Some(audio_detail) => (
            ErrorCode::InvalidAudio,
            format!("`{event_type}`: {audio_detail}"),
        ),
        None => (ErrorCode::InvalidEvent, format!("`{event_type}`: {detail}")),
    };
    EventError {
        code,
        message,
        param: missing_field_name(&detail),
        event_type: Some(event_type),
        event_id,
    }
}

/// serde_json appends " at line L column C"; for a one-line event that is noise.
fn message_without_position(err: &serde_json::Error) -> String {
    let full = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match full.strip_suffix(&suffix) {
        Some(stripped) => stripped.to_owned(),
        None => full,
    }
}

/// serde says "missing field `item_id`"; that field is the error's `param`.
fn missing_field_name(detail: &str) -> Option<String> {
    let rest = detail.strip_prefix("missing field `")?;
    let end = rest.find('`')?;
    Some(rest[..end].to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_err(text: &str) -> EventError {
        match parse_client_event(text) {
            Ok(ev) => panic!("{text} parsed as {ev:?}"),
            Err(e) => e.as_event_error().cloned().expect("an event error"),
        }
    }

    #[test]
    fn syntax_errors_are_invalid_json() {
        for text in ["{not json", "", "{\"type\":\"input_audio_buffer.commit\",}"] {
            let e = client_err(text);
            assert_eq!(e.code, ErrorCode::InvalidJson, "{text}");
            assert_eq!(e.event_id, None);
        }
    }

    #[test]
    fn non_objects_and_missing_type_are_invalid_events() {
        assert_eq!(client_err("[1,2]").code, ErrorCode::InvalidEvent);
        assert_eq!(client_err("\"hello\"").code, ErrorCode::InvalidEvent);
        let e = client_err(r#"{"event_id":"c1"}"#);
        assert_eq!(e.code, ErrorCode::InvalidEvent);
        assert_eq!(e.param.as_deref(), Some("type"));
        assert_eq!(e.event_id.as_deref(), Some("c1"));
        assert_eq!(
            client_err(r#"{"type":7}"#).code,
            ErrorCode::InvalidEvent,
            "type must be a string"
        );
    }

    #[test]
    fn unknown_types_keep_the_event_id() {
        let e = client_err(r#"{"type":"output_audio_buffer.clear","event_id":"c9","item_id":"x"}"#);
        assert_eq!(e.code, ErrorCode::UnknownEventType);
        assert_eq!(e.event_id.as_deref(), Some("c9"));
        assert_eq!(e.event_type.as_deref(), Some("output_audio_buffer.clear"));
        // A server event sent by a client is unknown on the server side.
        assert_eq!(
            client_err(r#"{"type":"session.created","event_id":"x","session":{}}"#).code,
            ErrorCode::UnknownEventType
        );
    }

    #[test]
    fn bad_fields_are_invalid_events_with_the_field_as_param() {
        let e =
            client_err(r#"{"type":"conversation.item.truncate","event_id":"c3","item_id":"i"}"#);
        assert_eq!(e.code, ErrorCode::InvalidEvent);
        assert_eq!(e.param.as_deref(), Some("content_index"));
        assert_eq!(e.event_id.as_deref(), Some("c3"));
        assert!(
            e.message.contains("missing field `content_index`"),
            "{}",
            e.message
        );
        // audio_end_ms must be an integer (a known client bug sends 1530.5).
        let e = client_err(
            r#"{"type":"conversation.item.truncate","item_id":"i","content_index":0,"audio_end_ms":1530.5}"#,
        );
        assert_eq!(e.code, ErrorCode::InvalidEvent);
        assert!(!e.message.contains(" at line "), "{}", e.message);
    }

    #[test]
    fn bad_audio_is_invalid_audio_even_when_nested() {
        let e = client_err(r#"{"type":"input_audio_buffer.append","event_id":"c2","audio":"!!"}"#);
        assert_eq!(e.code, ErrorCode::InvalidAudio);
        assert_eq!(e.event_id.as_deref(), Some("c2"));
        let e = client_err(r#"{"type":"input_audio_buffer.append","audio":"AQID"}"#);
        assert_eq!(e.code, ErrorCode::InvalidAudio);
        assert!(e.message.contains("odd number of bytes"), "{}", e.message);
        let e = client_err(
            r#"{"type":"conversation.item.create","item":{"type":"message","role":"user",
               "content":[{"type":"input_audio","audio":"%%%"}]}}"#,
        );
        assert_eq!(e.code, ErrorCode::InvalidAudio);
        // A missing audio field is a field error, not an audio error.
        assert_eq!(
            client_err(r#"{"type":"input_audio_buffer.append"}"#).code,
            ErrorCode::InvalidEvent
        );
    }

    #[test]
    fn unknown_server_events_are_skippable_errors() {
        let err = parse_server_event(
            r#"{"type":"rate_limits.updated","event_id":"e1","rate_limits":[]}"#,
        )
        .unwrap_err();
        let e = err.as_event_error().unwrap();
        assert_eq!(e.code, ErrorCode::UnknownEventType);
        assert_eq!(e.event_type.as_deref(), Some("rate_limits.updated"));
    }

    #[test]
    fn error_events_carry_code_message_and_client_event_id() {
        let e = client_err(r#"{"type":"bogus","event_id":"c1"}"#);
        let json = serde_json::to_value(e.to_server_event("evt_1".into())).unwrap();
        assert_eq!(json["type"], "error");
        assert_eq!(json["event_id"], "evt_1");
        assert_eq!(json["error"]["type"], "invalid_request_error");
        assert_eq!(json["error"]["code"], "unknown_event_type");
        assert_eq!(json["error"]["event_id"], "c1");
        assert!(json["error"]["message"].as_str().unwrap().contains("bogus"));
    }
}
