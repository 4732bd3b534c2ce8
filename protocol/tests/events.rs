//! JSON events: every variant round-trips, the official GA samples parse into the right values,
//! and bad input maps to the right `error` codes.

use std::collections::{BTreeMap, HashSet};

use parley_audio_io::pcm::i16_to_f32;
use parley_protocol::conversation::{ContentPart, ConversationItem, ItemStatus, MessageItem, Role};
use parley_protocol::events::*;
use parley_protocol::response::*;
use parley_protocol::session::*;
use parley_protocol::{
    BinaryCodec, ClientEvent, ErrorCode, Pcm16Audio, ServerEvent, parse_client_event,
    parse_server_event,
};

fn audio(n: usize, seed: i32) -> Pcm16Audio {
    let samples: Vec<f32> = (0..n as i32)
        .map(|i| i16_to_f32(((i * 331 + seed) % 60_000 - 30_000) as i16))
        .collect();
    Pcm16Audio::from_samples(&samples)
}

fn full_session() -> SessionConfig {
    SessionConfig {
        session_type: Some(SessionType::Realtime),
        id: Some("sess_1".into()),
        object: Some("realtime.session".into()),
        model: Some("parley-omni".into()),
        instructions: Some("Be brief.".into()),
        output_modalities: Some(vec![Modality::Audio]),
        max_output_tokens: Some(MaxOutputTokens::Inf),
        audio: Some(SessionAudio {
            input: Some(AudioInputConfig {
                format: Some(AudioFormat::pcm_wire()),
                noise_reduction: Some(Some(NoiseReduction {
                    kind: Some(NoiseReductionType::NearField),
                })),
                transcription: Some(Some(TranscriptionConfig {
                    model: Some("whisper-small".into()),
                    language: Some("en".into()),
                    prompt: Some("names: Ada".into()),
                })),
                turn_detection: Some(Some(TurnDetection::ServerVad(ServerVad {
                    threshold: Some(0.5),
                    prefix_padding_ms: Some(300),
                    silence_duration_ms: Some(500),
                    create_response: Some(true),
                    interrupt_response: Some(true),
                    idle_timeout_ms: Some(8000),
                }))),
            }),
            output: Some(AudioOutputConfig {
                format: Some(AudioFormat::pcm_wire()),
                voice: Some(Voice::Custom {
                    id: "voice_7".into(),
                }),
                speed: Some(1.25),
            }),
        }),
        parley: Some(ParleySessionConfig {
            binary_audio: Some(BinaryAudioConfig {
                enabled: true,
                codec: BinaryCodec::Opus,
            }),
            temperature: Some(0.7),
            top_p: Some(0.9),
            min_interrupt_speech_ms: Some(250),
        }),
    }
}

fn assistant_item() -> ConversationItem {
    ConversationItem::Message(MessageItem {
        id: Some("item_a".into()),
        object: Some("realtime.item".into()),
        status: Some(ItemStatus::Completed),
        role: Role::Assistant,
        content: vec![
            ContentPart::OutputAudio {
                audio: Some(audio(24, 5)),
                transcript: Some("Hello there.".into()),
            },
            ContentPart::OutputText {
                text: "Hello there.".into(),
            },
        ],
    })
}

fn user_item() -> ConversationItem {
    ConversationItem::Message(MessageItem {
        id: Some("item_u".into()),
        object: None,
        status: Some(ItemStatus::InProgress),
        role: Role::User,
        content: vec![
            ContentPart::InputText { text: "hi".into() },
            ContentPart::InputAudio {
                audio: Some(audio(10, 9)),
                transcript: None,
            },
        ],
    })
}

fn full_response() -> ResponseObject {
    ResponseObject {
        id: Some("resp_1".into()),
        object: Some("realtime.response".into()),
        status: Some(ResponseStatus::Cancelled),
        status_details: Some(StatusDetails {
            kind: Some(ResponseStatus::Cancelled),
            reason: Some(StatusReason::TurnDetected),
            error: None,
        }),
        output: Some(vec![assistant_item()]),
        usage: Some(Usage {
            total_tokens: Some(30),
            input_tokens: Some(20),
            output_tokens: Some(10),
            input_token_details: Some(InputTokenDetails {
                text_tokens: Some(5),
                audio_tokens: Some(15),
                cached_tokens: Some(0),
            }),
            output_token_details: Some(OutputTokenDetails {
                text_tokens: Some(4),
                audio_tokens: Some(6),
            }),
        }),
        conversation_id: Some("conv_1".into()),
        output_modalities: Some(vec![Modality::Audio, Modality::Text]),
        max_output_tokens: Some(MaxOutputTokens::Limit(512)),
        audio: Some(ResponseAudio {
            output: Some(ResponseAudioOutput {
                format: Some(AudioFormat::pcm_wire()),
                voice: Some(Voice::Named("marin".into())),
            }),
        }),
        metadata: Some(BTreeMap::from([("turn".to_owned(), "3".to_owned())])),
        parley: Some(ParleyResponseInfo {
            audio_stream_id: Some(3),
            timings: Some(TurnTimings {
                endpoint_ms: Some(512.0),
                transcribe_ms: Some(515.5),
                answer_started_ms: Some(330.0),
                first_token_ms: Some(640.25),
                first_audio_ms: Some(701.0),
                talker_rtf: Some(0.02),
                audio_ms: 2400.0,
                tokens: 14,
            }),
        }),
    }
}

fn all_client_events() -> Vec<ClientEvent> {
    let id = |s: &str| Some(s.to_owned());
    vec![
        ClientEvent::SessionUpdate(SessionUpdate {
            event_id: id("c1"),
            session: Box::new(full_session()),
        }),
        ClientEvent::InputAudioBufferAppend(InputAudioBufferAppend {
            event_id: id("c2"),
            audio: audio(480, 1),
        }),
        ClientEvent::InputAudioBufferCommit(InputAudioBufferCommit { event_id: id("c3") }),
        ClientEvent::InputAudioBufferClear(InputAudioBufferClear { event_id: None }),
        ClientEvent::ConversationItemCreate(ConversationItemCreate {
            event_id: id("c5"),
            previous_item_id: id("item_0"),
            item: user_item(),
        }),
        ClientEvent::ConversationItemTruncate(ConversationItemTruncate {
            event_id: id("c6"),
            item_id: "item_a".into(),
            content_index: 0,
            audio_end_ms: 1530,
        }),
        ClientEvent::ConversationItemDelete(ConversationItemDelete {
            event_id: id("c7"),
            item_id: "item_u".into(),
        }),
        ClientEvent::ConversationItemRetrieve(ConversationItemRetrieve {
            event_id: id("c7b"),
            item_id: "item_u".into(),
        }),
        ClientEvent::ResponseCreate(ResponseCreate {
            event_id: id("c8"),
            response: Some(ResponseCreateParams {
                conversation: Some("none".into()),
                input: Some(vec![ConversationItem::system_text("Say hi")]),
                instructions: Some("Answer briefly".into()),
                output_modalities: Some(vec![Modality::Text]),
                max_output_tokens: Some(MaxOutputTokens::Limit(64)),
                audio: Some(ResponseAudio::default()),
                metadata: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
            }),
        }),
        ClientEvent::ResponseCancel(ResponseCancel {
            event_id: id("c9"),
            response_id: id("resp_1"),
        }),
    ]
}

fn all_server_events() -> Vec<ServerEvent> {
    let e = |s: &str| s.to_owned();
    vec![
        ServerEvent::SessionCreated(SessionCreated {
            event_id: e("e1"),
            session: Box::new(full_session()),
        }),
        ServerEvent::SessionUpdated(SessionUpdated {
            event_id: e("e2"),
            session: Box::new(SessionConfig {
                audio: Some(SessionAudio {
                    input: Some(AudioInputConfig {
                        turn_detection: Some(Some(TurnDetection::SemanticVad(SemanticVad {
                            eagerness: Some(Eagerness::High),
                            create_response: Some(false),
                            interrupt_response: Some(true),
                        }))),
                        transcription: Some(None),
                        ..Default::default()
                    }),
                    output: None,
                }),
                ..Default::default()
            }),
        }),
        ServerEvent::Error(ErrorEvent {
            event_id: e("e3"),
            error: ErrorDetails {
                error_type: e("invalid_request_error"),
                code: Some(e("invalid_event")),
                message: e("missing field `item_id`"),
                param: Some(e("item_id")),
                event_id: Some(e("c7")),
            },
        }),
        ServerEvent::InputAudioBufferSpeechStarted(InputAudioBufferSpeechStarted {
            event_id: e("e4"),
            audio_start_ms: 10_240,
            item_id: e("item_u2"),
        }),
        ServerEvent::InputAudioBufferSpeechStopped(InputAudioBufferSpeechStopped {
            event_id: e("e5"),
            audio_end_ms: 12_000,
            item_id: e("item_u2"),
        }),
        ServerEvent::InputAudioBufferCommitted(InputAudioBufferCommitted {
            event_id: e("e6"),
            item_id: e("item_u2"),
            previous_item_id: Some(e("item_a")),
        }),
        ServerEvent::InputAudioBufferCleared(InputAudioBufferCleared { event_id: e("e7") }),
        ServerEvent::ConversationItemAdded(ConversationItemAdded {
            event_id: e("e8"),
            previous_item_id: None,
            item: user_item(),
        }),
        ServerEvent::ConversationItemDone(ConversationItemDone {
            event_id: e("e9"),
            previous_item_id: Some(e("item_u")),
            item: assistant_item(),
        }),
        ServerEvent::ConversationItemTruncated(ConversationItemTruncated {
            event_id: e("e10"),
            item_id: e("item_a"),
            content_index: 0,
            audio_end_ms: 1530,
        }),
        ServerEvent::ConversationItemDeleted(ConversationItemDeleted {
            event_id: e("e11"),
            item_id: e("item_u"),
        }),
        ServerEvent::ConversationItemRetrieved(ConversationItemRetrieved {
            event_id: e("e11b"),
            item: ConversationItem::user_text("hello"),
        }),
        ServerEvent::InputAudioTranscriptionDelta(InputAudioTranscriptionDelta {
            event_id: e("e12a"),
            item_id: e("item_u2"),
            content_index: 0,
            delta: e("what time"),
        }),
        ServerEvent::InputAudioTranscriptionCompleted(InputAudioTranscriptionCompleted {
            event_id: e("e12"),
            item_id: e("item_u2"),
            content_index: 0,
            transcript: e("what time is it"),
            usage: Some(TranscriptionUsage::Duration { seconds: 1.5 }),
        }),
        ServerEvent::ResponseCreated(ResponseCreated {
            event_id: e("e13"),
            response: Box::new(ResponseObject {
                id: Some(e("resp_2")),
                status: Some(ResponseStatus::InProgress),
                output: Some(vec![]),
                ..Default::default()
            }),
        }),
        ServerEvent::ResponseDone(ResponseDone {
            event_id: e("e14"),
            response: Box::new(full_response()),
        }),
        ServerEvent::ResponseOutputAudioDelta(ResponseOutputAudioDelta {
            event_id: e("e15"),
            response_id: e("resp_2"),
            item_id: e("item_b"),
            output_index: 0,
            content_index: 0,
            delta: audio(480, 77),
        }),
        ServerEvent::ResponseOutputAudioDone(ResponseOutputAudioDone {
            event_id: e("e16"),
            response_id: e("resp_2"),
            item_id: e("item_b"),
            output_index: 0,
            content_index: 0,
        }),
        ServerEvent::ResponseOutputAudioTranscriptDelta(ResponseOutputAudioTranscriptDelta {
            event_id: e("e17"),
            response_id: e("resp_2"),
            item_id: e("item_b"),
            output_index: 0,
            content_index: 0,
            delta: e("It is "),
        }),
        ServerEvent::ResponseOutputAudioTranscriptDone(ResponseOutputAudioTranscriptDone {
            event_id: e("e18"),
            response_id: e("resp_2"),
            item_id: e("item_b"),
            output_index: 0,
            content_index: 0,
            transcript: e("It is noon."),
        }),
        ServerEvent::ResponseOutputTextDelta(ResponseOutputTextDelta {
            event_id: e("e19"),
            response_id: e("resp_3"),
            item_id: e("item_c"),
            output_index: 1,
            content_index: 2,
            delta: e("\"quoted\" ünïcode ✓"),
        }),
        ServerEvent::ResponseOutputTextDone(ResponseOutputTextDone {
            event_id: e("e20"),
            response_id: e("resp_3"),
            item_id: e("item_c"),
            output_index: 1,
            content_index: 2,
            text: e("done"),
        }),
    ]
}

#[test]
fn every_client_event_round_trips_and_every_type_is_covered() {
    let events = all_client_events();
    let mut seen = HashSet::new();
    for event in events {
        let json = serde_json::to_string(&event).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], event.event_type(), "{json}");
        let back = parse_client_event(&json).unwrap();
        assert_eq!(back, event, "{json}");
        assert_eq!(back.event_id(), event.event_id());
        seen.insert(event.event_type());
    }
    let all: HashSet<&str> = ClientEvent::TYPES.iter().copied().collect();
    assert_eq!(seen, all, "one sample per client event type");
}

#[test]
fn every_server_event_round_trips_and_every_type_is_covered() {
    let events = all_server_events();
    let mut seen = HashSet::new();
    for event in events {
        let json = serde_json::to_string(&event).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], event.event_type(), "{json}");
        assert_eq!(value["event_id"], event.event_id(), "{json}");
        let back = parse_server_event(&json).unwrap();
        assert_eq!(back, event, "{json}");
        seen.insert(event.event_type());
    }
    let all: HashSet<&str> = ServerEvent::TYPES.iter().copied().collect();
    assert_eq!(seen, all, "one sample per server event type");
}

#[test]
fn optional_fields_are_left_out_not_sent_as_null() {
    let json = serde_json::to_string(&ClientEvent::InputAudioBufferCommit(
        InputAudioBufferCommit::default(),
    ))
    .unwrap();
    assert_eq!(json, r#"{"type":"input_audio_buffer.commit"}"#);
    let json =
        serde_json::to_string(&ClientEvent::ResponseCreate(ResponseCreate::default())).unwrap();
    assert_eq!(json, r#"{"type":"response.create"}"#);
}

/// The full `session.update` of realtime-protocols.md §1.7.
const GA_SESSION_UPDATE: &str = r#"{"type":"session.update","session":{
  "type":"realtime","model":"gpt-realtime","output_modalities":["audio"],
  "instructions":"Be brief.",
  "audio":{
    "input":{"format":{"type":"audio/pcm","rate":24000},
             "noise_reduction":{"type":"near_field"},
             "transcription":{"model":"gpt-4o-mini-transcribe"},
             "turn_detection":{"type":"server_vad","threshold":0.5,"prefix_padding_ms":300,
                               "silence_duration_ms":500,"create_response":true,"interrupt_response":true}},
    "output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}}}}"#;

#[test]
fn ga_session_update_sample_parses_into_the_nested_shape() {
    let ClientEvent::SessionUpdate(update) = parse_client_event(GA_SESSION_UPDATE).unwrap() else {
        panic!("not a session.update");
    };
    assert_eq!(update.event_id, None);
    let s = update.session;
    assert_eq!(s.session_type, Some(SessionType::Realtime));
    assert_eq!(s.model.as_deref(), Some("gpt-realtime"));
    assert_eq!(s.instructions.as_deref(), Some("Be brief."));
    assert_eq!(s.output_modalities, Some(vec![Modality::Audio]));
    let audio = s.audio.unwrap();
    let input = audio.input.unwrap();
    assert_eq!(input.format, Some(AudioFormat::Pcm { rate: Some(24_000) }));
    assert_eq!(
        input.noise_reduction,
        Some(Some(NoiseReduction {
            kind: Some(NoiseReductionType::NearField)
        }))
    );
    assert_eq!(
        input.transcription,
        Some(Some(TranscriptionConfig {
            model: Some("gpt-4o-mini-transcribe".into()),
            ..Default::default()
        }))
    );
    assert_eq!(
        input.turn_detection,
        Some(Some(TurnDetection::ServerVad(ServerVad {
            threshold: Some(0.5),
            prefix_padding_ms: Some(300),
            silence_duration_ms: Some(500),
            create_response: Some(true),
            interrupt_response: Some(true),
            idle_timeout_ms: None,
        })))
    );
    let output = audio.output.unwrap();
    assert_eq!(output.format, Some(AudioFormat::pcm_wire()));
    assert_eq!(output.voice, Some(Voice::Named("marin".into())));
    assert_eq!(s.parley, None);
}

#[test]
fn ga_client_samples_parse() {
    // 20 ms of audio, as a client would send it.
    let b64 = audio(480, 3).to_base64();
    let append = format!(r#"{{"type":"input_audio_buffer.append","audio":"{b64}"}}"#);
    let ClientEvent::InputAudioBufferAppend(a) = parse_client_event(&append).unwrap() else {
        panic!()
    };
    assert_eq!(a.audio, audio(480, 3));
    assert_eq!(a.audio.duration_ms(), 20);

    assert_eq!(
        parse_client_event(r#"{"type":"input_audio_buffer.commit"}"#).unwrap(),
        ClientEvent::InputAudioBufferCommit(InputAudioBufferCommit { event_id: None })
    );
    assert_eq!(
        parse_client_event(
            r#"{"type":"response.create","response":{"output_modalities":["audio"],"instructions":"Answer briefly"}}"#
        )
        .unwrap(),
        ClientEvent::ResponseCreate(ResponseCreate {
            event_id: None,
            response: Some(ResponseCreateParams {
                output_modalities: Some(vec![Modality::Audio]),
                instructions: Some("Answer briefly".into()),
                ..Default::default()
            }),
        })
    );
    assert_eq!(
        parse_client_event(r#"{"type":"response.cancel"}"#).unwrap(),
        ClientEvent::ResponseCancel(ResponseCancel::default())
    );
    assert_eq!(
        parse_client_event(
            r#"{"type":"conversation.item.truncate","item_id":"item_abc","content_index":0,"audio_end_ms":1530}"#
        )
        .unwrap(),
        ClientEvent::ConversationItemTruncate(ConversationItemTruncate {
            event_id: None,
            item_id: "item_abc".into(),
            content_index: 0,
            audio_end_ms: 1530,
        })
    );
    // A GA user message with text, plus fields parley ignores.
    let create = r#"{"type":"conversation.item.create","event_id":"c1","item":{"type":"message",
        "role":"user","content":[{"type":"input_text","text":"hello"}]},"future":true}"#;
    let ClientEvent::ConversationItemCreate(c) = parse_client_event(create).unwrap() else {
        panic!()
    };
    assert_eq!(c.item, ConversationItem::user_text("hello"));
}

#[test]
fn ga_server_samples_parse() {
    let started = parse_server_event(
        r#"{"type":"input_audio_buffer.speech_started","event_id":"e1","audio_start_ms":10240,"item_id":"item_user2"}"#,
    )
    .unwrap();
    assert_eq!(
        started,
        ServerEvent::InputAudioBufferSpeechStarted(InputAudioBufferSpeechStarted {
            event_id: "e1".into(),
            audio_start_ms: 10_240,
            item_id: "item_user2".into(),
        })
    );

    let b64 = audio(480, 11).to_base64();
    let delta = format!(
        r#"{{"type":"response.output_audio.delta","event_id":"e2","response_id":"resp_1","item_id":"item_abc","output_index":0,"content_index":0,"delta":"{b64}"}}"#
    );
    let ServerEvent::ResponseOutputAudioDelta(d) = parse_server_event(&delta).unwrap() else {
        panic!()
    };
    assert_eq!(
        (d.response_id.as_str(), d.item_id.as_str()),
        ("resp_1", "item_abc")
    );
    assert_eq!(d.delta, audio(480, 11));

    assert_eq!(
        parse_server_event(
            r#"{"type":"conversation.item.truncated","event_id":"e3","item_id":"item_abc","content_index":0,"audio_end_ms":1530}"#
        )
        .unwrap(),
        ServerEvent::ConversationItemTruncated(ConversationItemTruncated {
            event_id: "e3".into(),
            item_id: "item_abc".into(),
            content_index: 0,
            audio_end_ms: 1530,
        })
    );

    let done = parse_server_event(
        r#"{"type":"response.done","event_id":"e4","response":{"id":"resp_1","status":"cancelled","status_details":{"type":"cancelled","reason":"turn_detected"}}}"#,
    )
    .unwrap();
    assert_eq!(
        done,
        ServerEvent::ResponseDone(ResponseDone {
            event_id: "e4".into(),
            response: Box::new(ResponseObject {
                id: Some("resp_1".into()),
                status: Some(ResponseStatus::Cancelled),
                status_details: Some(StatusDetails {
                    kind: Some(ResponseStatus::Cancelled),
                    reason: Some(StatusReason::TurnDetected),
                    error: None,
                }),
                ..Default::default()
            }),
        })
    );

    let error = parse_server_event(
        r#"{"type":"error","event_id":"e5","error":{"type":"invalid_request_error","code":"...","message":"...","event_id":"client-evt-7"}}"#,
    )
    .unwrap();
    let ServerEvent::Error(error) = error else {
        panic!()
    };
    assert_eq!(error.error.error_type, "invalid_request_error");
    assert_eq!(error.error.event_id.as_deref(), Some("client-evt-7"));
}

#[test]
fn response_done_from_openai_with_usage_and_unknown_reason_parses() {
    // Shape of a real GA response.done: extra fields, usage details we do not model
    // (cached_tokens_details, image_tokens) and a reason newer than this code.
    let json = r#"{"type":"response.done","event_id":"e9","response":{"object":"realtime.response",
        "id":"resp_9","status":"incomplete","status_details":{"type":"incomplete","reason":"some_new_reason"},
        "output":[{"id":"item_9","type":"message","role":"assistant","status":"incomplete",
                   "content":[{"type":"output_audio","transcript":"Hel"}]}],
        "conversation_id":"conv_1","output_modalities":["audio"],"max_output_tokens":"inf",
        "audio":{"output":{"format":{"type":"audio/pcm","rate":24000},"voice":"marin"}},
        "usage":{"total_tokens":12,"input_tokens":8,"output_tokens":4,
                 "input_token_details":{"text_tokens":3,"audio_tokens":5,"image_tokens":0,
                                        "cached_tokens":0,"cached_tokens_details":{"text_tokens":0}},
                 "output_token_details":{"text_tokens":1,"audio_tokens":3}},
        "metadata":null}}"#;
    let ServerEvent::ResponseDone(done) = parse_server_event(json).unwrap() else {
        panic!()
    };
    let r = done.response;
    assert_eq!(r.status, Some(ResponseStatus::Incomplete));
    assert_eq!(r.status_details.unwrap().reason, Some(StatusReason::Other));
    assert_eq!(r.max_output_tokens, Some(MaxOutputTokens::Inf));
    assert_eq!(
        r.usage.unwrap().output_token_details.unwrap().audio_tokens,
        Some(3)
    );
    let output = r.output.unwrap();
    let ConversationItem::Message(m) = &output[0];
    assert_eq!(m.role, Role::Assistant);
    assert_eq!(
        m.content,
        vec![ContentPart::OutputAudio {
            audio: None,
            transcript: Some("Hel".into())
        }]
    );
}

#[test]
fn malformed_input_maps_to_the_documented_codes() {
    let code = |text: &str| {
        parse_client_event(text)
            .unwrap_err()
            .as_event_error()
            .map(|e| (e.code, e.event_id.clone()))
            .unwrap()
    };
    assert_eq!(code("{\"type\":"), (ErrorCode::InvalidJson, None));
    assert_eq!(
        code(r#"{"type":"output_audio_buffer.clear","event_id":"x1"}"#),
        (ErrorCode::UnknownEventType, Some("x1".into()))
    );
    assert_eq!(
        code(r#"{"type":"input_audio_buffer.append","event_id":"x2","audio":"abc$"}"#),
        (ErrorCode::InvalidAudio, Some("x2".into()))
    );
    assert_eq!(
        code(r#"{"type":"conversation.item.delete","event_id":"x3"}"#),
        (ErrorCode::InvalidEvent, Some("x3".into()))
    );
    // Wrong value types and unsupported item types are field errors too.
    assert_eq!(
        code(r#"{"type":"conversation.item.truncate","item_id":"i","content_index":"zero","audio_end_ms":1}"#).0,
        ErrorCode::InvalidEvent
    );
    assert_eq!(
        code(r#"{"type":"conversation.item.create","item":{"type":"function_call_output","call_id":"c","output":"{}"}}"#).0,
        ErrorCode::InvalidEvent
    );
    assert_eq!(
        code(r#"{"type":"session.update","session":{"audio":{"input":{"format":{"type":"audio/flac"}}}}}"#).0,
        ErrorCode::InvalidEvent
    );
}
