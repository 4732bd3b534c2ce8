//! The qwen profile end to end over the real WebSocket, on the tiny random Qwen2.5-Omni
//! checkpoint (assets/goldens/qwen_omni/tiny_full): the user's speech goes to the Thinker's audio
//! encoder while they talk, the Talker and streaming Token2Wav answer in audio, and a barge-in
//! cancels all three. The tiny model's words and audio are noise; the turn-taking, streaming,
//! timing, cancellation and protocol are the real ones.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use parley::engine::Engine;
use parley::engine::qwen_models::QwenModels;
use parley::engine::settings::EngineDefaults;
use parley::serve::config::ServeConfig;
use parley::serve::local::LocalServer;
use parley_audio_io::constants::WIRE_PCM_RATE;
use parley_protocol::response::{ResponseStatus, StatusReason};
use parley_protocol::{RealtimeClient, ServerEvent};
use parley_talker::qwen::streaming_talker::QwenTalkerSettings;
use parley_talker::qwen::token2wav::Token2WavConfig;

const TINY_CHECKPOINT: &str = "assets/goldens/qwen_omni/tiny_full/checkpoint";

/// `min_codes`: the tiny Talker picks its EOS within a code or two; real speech needs more.
fn engine(max_output_tokens: usize, min_codes: usize) -> Arc<Engine> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(TINY_CHECKPOINT);
    let mut models = QwenModels::load(&parley_models::default_models_dir(), dir.to_str().unwrap())
        .unwrap_or_else(|e| panic!("{e:#}"));
    models.set_talker_settings(QwenTalkerSettings {
        min_codes,
        ..QwenTalkerSettings::default()
    });
    let defaults = EngineDefaults {
        temperature: 0.0,
        max_output_tokens,
        instructions: parley_thinker::qwen::SPEECH_SYSTEM_PROMPT.to_string(),
        ..EngineDefaults::default()
    };
    Engine::new(models, defaults).unwrap()
}

async fn start(engine: Arc<Engine>) -> LocalServer {
    let mut config = ServeConfig::defaults();
    config.port = 0;
    LocalServer::start_with(engine, config).await.unwrap()
}

async fn connect(url: &str) -> (Mic, Events) {
    let client = RealtimeClient::connect(url, None).await.unwrap();
    let (tx, rx) = client.split();
    let mut events = Events::new(rx);
    events
        .wait_for("session.created", Duration::from_secs(10))
        .await;
    (Mic::start(tx), events)
}

fn audio_of(events: &Events) -> Vec<f32> {
    let mut audio = Vec::new();
    for (_, e) in &events.seen {
        if let ServerEvent::ResponseOutputAudioDelta(d) = e {
            d.delta.append_samples(&mut audio);
        }
    }
    audio
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoken_turn_is_heard_by_the_thinker_and_answered_in_streamed_audio() {
    // 80 codes (1.6 s): the first Token2Wav chunk at 36 codes, then the rest.
    let server = start(engine(3, 80)).await;
    let (mic, mut events) = connect(&server.url).await;
    mic.say(wav_24k("q_weather_today.wav")).await;

    let (committed_at, _) = events
        .wait_for("input_audio_buffer.committed", Duration::from_secs(15))
        .await;
    let (_, done) = events
        .wait_for("response.done", Duration::from_secs(60))
        .await;
    mic.stop().await;
    let ServerEvent::ResponseDone(done) = done else {
        unreachable!()
    };
    for (_, e) in &events.seen {
        if let ServerEvent::Error(e) = e {
            eprintln!("error event: {:?}", e.error);
        }
    }
    // The tiny model never ends its answer itself: it stops at max_output_tokens.
    assert_eq!(done.response.status, Some(ResponseStatus::Incomplete));
    // The Thinker heard the audio itself: no transcription step.
    assert_eq!(
        events.count("conversation.item.input_audio_transcription.completed"),
        0
    );
    let deltas = events.count("response.output_audio_transcript.delta");
    assert!((1..=3).contains(&deltas), "{deltas} text deltas");
    // Audio streamed in Token2Wav chunks (0.48 s = 11 520 samples at 24 kHz, the first one
    // and the last one shorter), all of it after the turn was committed.
    let audio = audio_of(&events);
    assert!(!audio.is_empty(), "no answer audio");
    assert!(audio.iter().all(|x| x.is_finite() && x.abs() <= 1.0));
    let first_audio = events
        .seen
        .iter()
        .find(|(_, e)| e.event_type() == "response.output_audio.delta")
        .map(|(at, _)| *at)
        .unwrap();
    assert!(first_audio >= committed_at);
    let timings = done.response.parley.and_then(|p| p.timings).unwrap();
    eprintln!(
        "answer audio {:.2} s; timings {timings:?}",
        audio.len() as f64 / f64::from(WIRE_PCM_RATE)
    );
    // At least the 80 codes asked for (2 mel frames of `hop` samples each), and no more than the
    // finished text's budget (40 codes per token).
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(TINY_CHECKPOINT);
    let hop = Token2WavConfig::from_checkpoint_dir(&dir)
        .unwrap()
        .bigvgan_config
        .hop();
    let codes = audio.len() as f64 / (2 * hop) as f64;
    assert!((80.0..=120.0).contains(&codes), "{codes} codes of audio");
    // More than one chunk: streamed, not synthesized at the end.
    assert!(events.count("response.output_audio.delta") >= 2);
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_cancels_the_qwen_answer_and_the_next_spoken_turn_is_answered() {
    // A long answer (up to 64 tokens, 40 codes each): something to interrupt.
    let server = start(engine(64, 1000)).await;
    let (mic, mut events) = connect(&server.url).await;
    mic.say(wav_24k("q_ocean_salty.wav")).await;
    let (_, created) = events
        .wait_for("response.created", Duration::from_secs(30))
        .await;
    let ServerEvent::ResponseCreated(created) = created else {
        unreachable!()
    };
    let first = created.response.id.unwrap();
    let (_, next) = events
        .wait_for_any(
            &["response.output_audio.delta", "error"],
            Duration::from_secs(30),
        )
        .await;
    assert!(
        !matches!(next, ServerEvent::Error(_)),
        "{next:?} instead of the answer's audio"
    );
    // Let some of it play, then talk over it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    mic.say(wav_24k("q_weather_today.wav")).await;
    events
        .wait_for("input_audio_buffer.speech_started", Duration::from_secs(10))
        .await;
    let (done_at, done) = events
        .wait_for("response.done", Duration::from_secs(10))
        .await;
    let ServerEvent::ResponseDone(done) = done else {
        unreachable!()
    };
    assert_eq!(done.response.id.as_deref(), Some(first.as_str()));
    assert_eq!(done.response.status, Some(ResponseStatus::Cancelled));
    assert_eq!(
        done.response.status_details.and_then(|d| d.reason),
        Some(StatusReason::TurnDetected)
    );
    // Nothing of the cancelled answer after its response.done.
    events.drain_for(Duration::from_millis(300)).await;
    let late = events
        .seen
        .iter()
        .filter(|(at, e)| *at > done_at && e.event_type() == "response.output_audio.delta")
        .count();
    assert_eq!(late, 0, "audio deltas after the cancel");
    // The interrupting speech is the next turn: heard, committed and answered.
    let (_, created) = events
        .wait_for("response.created", Duration::from_secs(30))
        .await;
    let ServerEvent::ResponseCreated(created) = created else {
        unreachable!()
    };
    assert_ne!(created.response.id.as_deref(), Some(first.as_str()));
    events
        .wait_for("response.output_audio.delta", Duration::from_secs(30))
        .await;
    mic.stop().await;
    server.stop().await.unwrap();
}

async fn update_session(mic: &Mic, json: &str) {
    let session: parley_protocol::session::SessionConfig = serde_json::from_str(json).unwrap();
    mic.send(parley_protocol::ClientEvent::SessionUpdate(
        parley_protocol::events::SessionUpdate {
            event_id: None,
            session: Box::new(session),
        },
    ))
    .await;
}

fn voice_of(session: &parley_protocol::session::SessionConfig) -> Option<String> {
    match session.audio.as_ref()?.output.as_ref()?.voice.as_ref()? {
        parley_protocol::session::Voice::Named(name) => Some(name.clone()),
        parley_protocol::session::Voice::Custom { id } => Some(id.clone()),
    }
}

/// One spoken question answered: the answer's audio.
async fn answer_audio(mic: &Mic, events: &mut Events) -> Vec<f32> {
    let seen_before = events.seen.len();
    mic.say(wav_24k("q_weather_today.wav")).await;
    events
        .wait_for("response.done", Duration::from_secs(60))
        .await;
    let mut audio = Vec::new();
    for (_, e) in &events.seen[seen_before..] {
        if let ServerEvent::ResponseOutputAudioDelta(d) = e {
            d.delta.append_samples(&mut audio);
        }
    }
    audio
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_session_speaks_with_the_voice_it_chooses_and_an_unknown_voice_is_refused() {
    let server = start(engine(3, 40)).await;

    // The default voice, as session.created says.
    let client = RealtimeClient::connect(&server.url, None).await.unwrap();
    let (tx, rx) = client.split();
    let mut events = Events::new(rx);
    let (_, created) = events
        .wait_for("session.created", Duration::from_secs(10))
        .await;
    let ServerEvent::SessionCreated(created) = created else {
        unreachable!()
    };
    assert_eq!(voice_of(&created.session).as_deref(), Some("Chelsie"));
    let mic = Mic::start(tx);
    let chelsie = answer_audio(&mic, &mut events).await;
    mic.stop().await;

    // Another session picks Ethan (any case), then asks for a voice the checkpoint lacks.
    let (mic, mut events) = connect(&server.url).await;
    update_session(&mic, r#"{"audio":{"output":{"voice":"ethan"}}}"#).await;
    let (_, updated) = events
        .wait_for("session.updated", Duration::from_secs(10))
        .await;
    let ServerEvent::SessionUpdated(updated) = updated else {
        unreachable!()
    };
    assert_eq!(voice_of(&updated.session).as_deref(), Some("Ethan"));
    update_session(&mic, r#"{"audio":{"output":{"voice":"alloy"}}}"#).await;
    let (_, error) = events.wait_for("error", Duration::from_secs(10)).await;
    let ServerEvent::Error(error) = error else {
        unreachable!()
    };
    assert_eq!(error.error.code.as_deref(), Some("invalid_value"));
    assert!(
        error.error.message.contains("alloy") && error.error.message.contains("Chelsie, Ethan"),
        "{}",
        error.error.message
    );
    // The refused update changed nothing: the session goes on, in Ethan's voice.
    let ethan = answer_audio(&mic, &mut events).await;
    mic.stop().await;

    // Same question, same greedy Thinker, same seeds: only the voice differs, and so does the
    // audio (another text-BOS for the Talker, another speaker conditioning for Token2Wav).
    assert!(!chelsie.is_empty() && !ethan.is_empty());
    assert_ne!(
        chelsie, ethan,
        "Ethan's answer sounds exactly like Chelsie's"
    );
    server.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_create_response_off_a_spoken_turn_waits_for_response_create() {
    let server = start(engine(3, 40)).await;
    let (mic, mut events) = connect(&server.url).await;
    update_session(
        &mic,
        r#"{"audio":{"input":{"turn_detection":{"type":"server_vad","create_response":false}}}}"#,
    )
    .await;
    events
        .wait_for("session.updated", Duration::from_secs(10))
        .await;
    mic.say(wav_24k("q_weather_today.wav")).await;
    events
        .wait_for("input_audio_buffer.committed", Duration::from_secs(15))
        .await;
    events.drain_for(Duration::from_millis(1500)).await;
    assert_eq!(events.count("response.created"), 0, "answered on its own");
    assert_eq!(events.count("conversation.item.done"), 1);

    // Text cannot be slipped in before the spoken turn is answered.
    mic.send(parley_protocol::ClientEvent::ConversationItemCreate(
        parley_protocol::events::ConversationItemCreate {
            event_id: None,
            previous_item_id: None,
            item: parley_protocol::conversation::ConversationItem::user_text("And tomorrow?"),
        },
    ))
    .await;
    let (_, error) = events.wait_for("error", Duration::from_secs(10)).await;
    let ServerEvent::Error(error) = error else {
        unreachable!()
    };
    assert_eq!(
        error.error.code.as_deref(),
        Some("conversation_already_has_pending_speech")
    );

    mic.send(parley_protocol::ClientEvent::ResponseCreate(
        parley_protocol::events::ResponseCreate {
            event_id: None,
            response: None,
        },
    ))
    .await;
    events
        .wait_for("response.created", Duration::from_secs(10))
        .await;
    let (_, done) = events
        .wait_for("response.done", Duration::from_secs(60))
        .await;
    let ServerEvent::ResponseDone(done) = done else {
        unreachable!()
    };
    assert_eq!(done.response.status, Some(ResponseStatus::Incomplete));
    assert!(
        !audio_of(&events).is_empty(),
        "the spoken turn was not answered in audio"
    );
    mic.stop().await;
    server.stop().await.unwrap();
}
