//! Per-turn numbers, computed from a [`TurnTimeline`] and its responses.
//!
//! Every latency is measured on the client's monotonic session clock from the moment the frame
//! holding the user's **last speech sample** was sent (see [`crate::speech`] for how it is
//! found), so the trailing silence of the WAV does not count:
//!
//! | metric | end point |
//! |---|---|
//! | `v2v_ms` (voice-to-voice) | first answer audio sample received |
//! | `endpoint_ms` | `speech_stopped` received (or `committed`, if no `speech_stopped`) |
//! | `first_token_ms` | first answer text delta received |
//! | `first_audible_ms` | first audible 10 ms of answer audio received (v2v plus the talker's leading silence) |
//!
//! Barge-in (on the interrupted answer): `stop_ms` = `response.done` (cancelled) received minus
//! `speech_started` received; `audio_after_stop_ms` = answer audio that still arrived after
//! `speech_started` (dropped by the client). Server stage timings come from
//! `response.parley.timings` when the server sends them (measured from the last user speech
//! sample the *server* received).

use std::time::Duration;

use parley_audio_io::constants::WIRE_PCM_RATE;
use parley_protocol::response::ResponseStatus;
use serde::Serialize;

use crate::playout::samples_to_duration;
use crate::timeline::{ResponseTimeline, TurnTimeline, status_name};

/// The server's own stage timings of a response (`response.parley.timings`), all optional.
/// Times are ms from the last user speech sample the server received.
///
/// Read leniently from the JSON of `response.parley` (see [`Self::from_parley_value`]) rather
/// than from protocol's typed struct, so a server that adds, drops or retypes a field does not
/// break measuring.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerTimings {
    pub endpoint_ms: Option<f64>,
    pub transcribe_ms: Option<f64>,
    pub first_token_ms: Option<f64>,
    pub first_audio_ms: Option<f64>,
    /// Talker synthesis time / audio duration (below 1 = faster than real time).
    pub talker_rtf: Option<f64>,
    /// Audio the server sent for the response.
    pub audio_ms: Option<f64>,
    /// Thinker tokens generated.
    pub tokens: Option<u64>,
}

impl ServerTimings {
    /// Reads `timings` from the JSON of a `response.parley` object, leniently: unknown fields
    /// are ignored, a field that is not a number is treated as absent. `None` when there is no
    /// `timings` object.
    pub fn from_parley_value(parley: &serde_json::Value) -> Option<Self> {
        let t = parley.get("timings")?.as_object()?;
        let num = |k: &str| t.get(k).and_then(serde_json::Value::as_f64);
        Some(ServerTimings {
            endpoint_ms: num("endpoint_ms"),
            transcribe_ms: num("transcribe_ms"),
            first_token_ms: num("first_token_ms"),
            first_audio_ms: num("first_audio_ms"),
            talker_rtf: num("talker_rtf"),
            audio_ms: num("audio_ms"),
            tokens: t.get("tokens").and_then(serde_json::Value::as_u64),
        })
    }
}

/// What one turn measured. Latencies in ms (`None` when the event never came).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct TurnMetrics {
    pub turn: usize,
    /// The WAV's file name.
    pub wav: String,
    /// This utterance was a `barge_in` step.
    pub barge_in: bool,
    /// The `barge_in` step could not interrupt (the answer ended or the step timed out first).
    pub barge_in_missed: bool,
    pub user_transcript: Option<String>,
    pub answer_text: String,
    /// Final status of the answer (`completed`, `cancelled`, …); `None`: no answer.
    pub status: Option<String>,
    pub v2v_ms: Option<f64>,
    pub endpoint_ms: Option<f64>,
    pub first_token_ms: Option<f64>,
    pub first_audible_ms: Option<f64>,
    /// Silence at the start of the answer audio.
    pub leading_silence_ms: Option<f64>,
    /// Server VAD end (`speech_stopped.audio_end_ms`) minus the last speech sample's position in
    /// the input stream: how late (or, negative, early) the server placed the end of speech.
    pub vad_end_error_ms: Option<f64>,
    pub answer_audio_ms: f64,
    pub played_ms: Option<f64>,
    pub underruns: u32,
    pub underrun_ms: f64,
    /// The answer was cut by the user speaking.
    pub interrupted: bool,
    pub stop_ms: Option<f64>,
    pub audio_after_stop_ms: Option<f64>,
    /// `audio_end_ms` sent in `conversation.item.truncate`.
    pub truncated_at_ms: Option<u64>,
    pub server: Option<ServerTimings>,
    /// Responses before the answer in the same turn (premature endpoints).
    pub premature_responses: usize,
    /// `wait_for_answer` gave up.
    pub timed_out: bool,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `b - a` in ms, negative when `b` came first.
fn diff_ms(a: Duration, b: Duration) -> f64 {
    if b >= a { ms(b - a) } else { -ms(a - b) }
}

impl TurnMetrics {
    /// The metrics of `turn`; `responses` is every response of the session (the turn's are
    /// picked out by their `turn` field).
    pub fn compute(turn: &TurnTimeline, responses: &[ResponseTimeline]) -> TurnMetrics {
        let own: Vec<&ResponseTimeline> = responses
            .iter()
            .filter(|r| r.turn == Some(turn.index))
            .collect();
        let answer = own.last().copied();
        let reference = turn.last_speech_sent_at;
        let since_speech = |t: Option<Duration>| Some(diff_ms(reference?, t?));
        let interruption = answer.and_then(|r| r.interruption);
        let stop_ms = match (answer, interruption) {
            (Some(r), Some(int)) if r.status == Some(ResponseStatus::Cancelled) => {
                r.done_at.map(|done| diff_ms(int.speech_started_at, done))
            }
            _ => None,
        };
        let samples_ms = |n: u64| ms(samples_to_duration(n, WIRE_PCM_RATE));
        TurnMetrics {
            turn: turn.index,
            wav: turn.utterance.name(),
            barge_in: turn.barge_in.is_some(),
            barge_in_missed: turn.barge_in.is_some_and(|b| b.missed),
            user_transcript: turn.transcript.clone(),
            answer_text: answer.map(|r| r.text.clone()).unwrap_or_default(),
            status: answer
                .and_then(|r| r.status)
                .map(|s| status_name(s).to_owned()),
            v2v_ms: since_speech(answer.and_then(|r| r.first_audio_at)),
            endpoint_ms: since_speech(turn.speech_stopped_at.or(turn.committed_at)),
            first_token_ms: since_speech(answer.and_then(|r| r.first_text_at)),
            first_audible_ms: since_speech(answer.and_then(|r| r.first_audible_at)),
            leading_silence_ms: answer
                .and_then(|r| r.leading_silence_samples)
                .map(samples_ms),
            vad_end_error_ms: turn
                .vad_audio_end_ms
                .map(|end| end as f64 - turn.last_speech_stream_ms() as f64),
            answer_audio_ms: answer.map_or(0.0, |r| samples_ms(r.playout.received_samples())),
            played_ms: answer
                .filter(|r| r.playout.started_at().is_some())
                .map(|r| samples_ms(r.playout.played_samples(Duration::MAX))),
            underruns: answer.map_or(0, |r| r.playout.underruns()),
            underrun_ms: answer.map_or(0.0, |r| ms(r.playout.underrun_time())),
            interrupted: interruption.is_some_and(|i| i.was_playing),
            stop_ms,
            audio_after_stop_ms: interruption
                .and(answer)
                .map(|r| samples_ms(r.playout.dropped_after_stop())),
            truncated_at_ms: interruption.and_then(|i| i.truncated_at_ms),
            server: answer.and_then(|r| r.server_timings),
            premature_responses: own.len().saturating_sub(1),
            timed_out: turn.timed_out,
        }
    }
}
