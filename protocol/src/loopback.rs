//! A transport test fixture, not an agent: a [`SessionHandler`] that echoes audio so the
//! WebSocket transport can be exercised end to end until the engine lands.
//!
//! - On connect it sends `session.created` (24 kHz PCM in and out, binary audio off).
//! - `session.update` is merged into the session ([`SessionConfig::apply_update`]) and answered
//!   with `session.updated`; that is also how binary audio gets switched on.
//! - `input_audio_buffer.append` comes back as `response.output_audio.delta` with the same audio
//!   (response `resp_loopback`, item `item_loopback`).
//! - A binary frame comes back as a binary frame with the same kind, flags, timestamp, stream id
//!   and payload, and the server's own sequence number.
//! - `input_audio_buffer.commit` / `.clear` get `.committed` / `.cleared`.
//! - Everything else gets an `error` with code `unsupported_by_loopback`.

use crate::binary::AudioFrame;
use crate::connection::{ClientItem, ServerItem, ServerSession, SessionHandler};
use crate::error::INVALID_REQUEST_ERROR;
use crate::events::{
    ClientEvent, ErrorDetails, ErrorEvent, InputAudioBufferCleared, InputAudioBufferCommitted,
    ResponseOutputAudioDelta, ServerEvent, SessionCreated, SessionUpdated,
};
use crate::ids::IdGenerator;
use crate::session::{
    AudioFormat, AudioInputConfig, AudioOutputConfig, BinaryAudioConfig, Modality,
    ParleySessionConfig, SessionAudio, SessionConfig, SessionType,
};

/// Response id of every echoed delta.
pub const LOOPBACK_RESPONSE_ID: &str = "resp_loopback";
/// Item id of every echoed delta.
pub const LOOPBACK_ITEM_ID: &str = "item_loopback";
/// `error.code` for events the fixture does not handle.
pub const UNSUPPORTED_CODE: &str = "unsupported_by_loopback";

/// The echo handler. `RealtimeServer::spawn(Loopback)` serves it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Loopback;

impl SessionHandler for Loopback {
    async fn run(&self, session: ServerSession) {
        run(session).await
    }
}

/// Runs the echo session until the client leaves.
pub async fn run(mut session: ServerSession) {
    let ids = IdGenerator::new();
    let mut config = initial_session(&ids, session.info().model.clone());
    let created = ServerEvent::SessionCreated(SessionCreated {
        event_id: ids.next("evt"),
        session: Box::new(config.clone()),
    });
    if session.send(created).await.is_err() {
        return;
    }
    let mut out_sequence: u32 = 0;
    while let Some(item) = session.recv().await {
        let reply: ServerItem = match item {
            ClientItem::Audio(frame) => {
                let echo = AudioFrame {
                    sequence: out_sequence,
                    ..frame
                };
                out_sequence = out_sequence.wrapping_add(1);
                echo.into()
            }
            ClientItem::Event(event) => answer(event, &mut config, &ids).into(),
        };
        if session.send(reply).await.is_err() {
            return;
        }
    }
}

fn initial_session(ids: &IdGenerator, model: Option<String>) -> SessionConfig {
    SessionConfig {
        session_type: Some(SessionType::Realtime),
        id: Some(ids.next("sess")),
        object: Some("realtime.session".to_owned()),
        model,
        instructions: None,
        output_modalities: Some(vec![Modality::Audio]),
        max_output_tokens: None,
        audio: Some(SessionAudio {
            input: Some(AudioInputConfig {
                format: Some(AudioFormat::pcm_wire()),
                noise_reduction: None,
                transcription: None,
                turn_detection: Some(None),
            }),
            output: Some(AudioOutputConfig {
                format: Some(AudioFormat::pcm_wire()),
                voice: None,
                speed: None,
            }),
        }),
        parley: Some(ParleySessionConfig {
            binary_audio: Some(BinaryAudioConfig {
                enabled: false,
                codec: Default::default(),
            }),
            ..Default::default()
        }),
    }
}

fn answer(event: ClientEvent, config: &mut SessionConfig, ids: &IdGenerator) -> ServerEvent {
    let event_id = ids.next("evt");
    match event {
        ClientEvent::SessionUpdate(update) => {
            config.apply_update(*update.session);
            ServerEvent::SessionUpdated(SessionUpdated {
                event_id,
                session: Box::new(config.clone()),
            })
        }
        ClientEvent::InputAudioBufferAppend(append) => {
            ServerEvent::ResponseOutputAudioDelta(ResponseOutputAudioDelta {
                event_id,
                response_id: LOOPBACK_RESPONSE_ID.to_owned(),
                item_id: LOOPBACK_ITEM_ID.to_owned(),
                output_index: 0,
                content_index: 0,
                delta: append.audio,
            })
        }
        ClientEvent::InputAudioBufferCommit(_) => {
            ServerEvent::InputAudioBufferCommitted(InputAudioBufferCommitted {
                event_id,
                item_id: ids.next("item"),
                previous_item_id: None,
            })
        }
        ClientEvent::InputAudioBufferClear(_) => {
            ServerEvent::InputAudioBufferCleared(InputAudioBufferCleared { event_id })
        }
        other => ServerEvent::Error(ErrorEvent {
            event_id,
            error: ErrorDetails {
                error_type: INVALID_REQUEST_ERROR.to_owned(),
                code: Some(UNSUPPORTED_CODE.to_owned()),
                message: format!(
                    "`{}` is not handled by the loopback test fixture, which only echoes audio",
                    other.event_type()
                ),
                param: None,
                event_id: other.event_id().map(str::to_owned),
            },
        }),
    }
}
