//! What happened in a session, on one monotonic clock: the per-turn timeline the metrics are
//! computed from, and the [`Recorder`] that builds it from frames sent and events received.
//!
//! All times are [`Duration`]s since the session clock's origin (the moment the connection was
//! established). Event times are arrival times, stamped by the receiving task as each message
//! comes off the socket.
//!
//! Attribution: a *turn* is one utterance of the script (a `say` or a `barge_in`). A response
//! belongs to the turn that was being spoken, or was last spoken, when its `response.created`
//! arrived. A turn's *answer* is its last response (an earlier one was a premature endpoint,
//! e.g. in a pause inside the utterance).

use std::sync::Arc;
use std::time::Duration;

use parley_audio_io::constants::{WIRE_PCM_RATE, samples_to_ms};
use parley_protocol::conversation::{ConversationItem, Role};
use parley_protocol::events::{ConversationItemTruncate, ServerEvent};
use parley_protocol::response::{ResponseStatus, StatusReason};
use parley_protocol::{ClientEvent, Pcm16Audio};

use crate::display::DisplayEvent;
use crate::metrics::{ServerTimings, TurnMetrics};
use crate::playout::PlayoutSim;
use crate::script::Utterance;
use crate::speech::first_audible_sample;

/// Answer audio kept per response, at most (10 minutes at 24 kHz); beyond it audio is still
/// played and counted but not stored.
pub const MAX_KEPT_ANSWER_SAMPLES: usize = 10 * 60 * WIRE_PCM_RATE as usize;

/// One utterance of the script and what the server did with it.
#[derive(Debug, Clone)]
pub struct TurnTimeline {
    pub index: usize,
    pub utterance: Arc<Utterance>,
    /// Set for a `barge_in` step.
    pub barge_in: Option<BargeInPlan>,
    /// The utterance's first frame was sent.
    pub started_at: Duration,
    /// Index in the session's input stream (24 kHz samples) of the utterance's first sample.
    pub stream_offset: u64,
    /// The frame holding the last speech sample was sent (the reference of v2v).
    pub last_speech_sent_at: Option<Duration>,
    /// The utterance's last frame was sent.
    pub ended_at: Option<Duration>,
    pub speech_started_at: Option<Duration>,
    /// The latest `speech_stopped` of the turn, and its `audio_end_ms`.
    pub speech_stopped_at: Option<Duration>,
    pub vad_audio_end_ms: Option<u64>,
    /// The latest `input_audio_buffer.committed` of the turn.
    pub committed_at: Option<Duration>,
    /// User items the server made from this turn's audio.
    pub user_item_ids: Vec<String>,
    pub transcript: Option<String>,
    /// A `wait_for_answer` gave up on this turn.
    pub timed_out: bool,
}

impl TurnTimeline {
    /// Input-stream time (ms since the first input sample) of the last speech sample, the clock
    /// the server's `audio_end_ms` uses.
    pub fn last_speech_stream_ms(&self) -> u64 {
        samples_to_ms(
            self.stream_offset + self.utterance.speech.last_sample as u64,
            WIRE_PCM_RATE,
        )
    }
}

/// How a `barge_in` step went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BargeInPlan {
    /// The script's `after_ms`.
    pub after: Duration,
    /// Answer audio actually played when the utterance started.
    pub played_at_start: Duration,
    /// The answer ended (or the step timed out) before `after` was reached.
    pub missed: bool,
}

/// One response and its audio as the client received and played it.
#[derive(Debug, Clone)]
pub struct ResponseTimeline {
    pub response_id: String,
    /// The turn it answers (`None` if it came before any utterance, e.g. a greeting).
    pub turn: Option<usize>,
    /// The assistant item carrying the audio (from the audio deltas).
    pub item_id: Option<String>,
    pub created_at: Duration,
    pub first_text_at: Option<Duration>,
    pub first_audio_at: Option<Duration>,
    /// Arrival of the chunk holding the first audible 10 ms of audio.
    pub first_audible_at: Option<Duration>,
    /// Samples before the first audible window (the talker's leading silence).
    pub leading_silence_samples: Option<u64>,
    pub audio_done_at: Option<Duration>,
    pub done_at: Option<Duration>,
    pub status: Option<ResponseStatus>,
    pub status_reason: Option<StatusReason>,
    /// Answer text from the transcript (or text) deltas.
    pub text: String,
    /// Received answer audio (24 kHz), if the session keeps audio; what arrived after a
    /// barge-in stop is not kept.
    pub audio: Vec<f32>,
    pub playout: PlayoutSim,
    pub interruption: Option<Interruption>,
    pub server_timings: Option<ServerTimings>,
}

impl ResponseTimeline {
    fn new(response_id: String, turn: Option<usize>, at: Duration) -> Self {
        ResponseTimeline {
            response_id,
            turn,
            item_id: None,
            created_at: at,
            first_text_at: None,
            first_audio_at: None,
            first_audible_at: None,
            leading_silence_samples: None,
            audio_done_at: None,
            done_at: None,
            status: None,
            status_reason: None,
            text: String::new(),
            audio: Vec::new(),
            playout: PlayoutSim::new(WIRE_PCM_RATE),
            interruption: None,
            server_timings: None,
        }
    }

    /// The answer as heard: received audio cut at what was played.
    pub fn heard_audio(&self) -> &[f32] {
        let played = self.playout.played_samples(Duration::MAX) as usize;
        &self.audio[..played.min(self.audio.len())]
    }
}

/// The user started speaking while this response was running or playing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interruption {
    /// `speech_started` arrived.
    pub speech_started_at: Duration,
    /// Answer samples played when playback stopped.
    pub played_samples: u64,
    /// Audio was playing (not just expected) at the stop.
    pub was_playing: bool,
    /// `audio_end_ms` of the `conversation.item.truncate` sent, if one was.
    pub truncated_at_ms: Option<u64>,
    /// `conversation.item.truncated` arrived.
    pub truncate_acked_at: Option<Duration>,
    /// The server had already finished the response (`response.done`) before the speech.
    pub after_server_done: bool,
}

/// A server `error` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerErrorRecord {
    pub at: Duration,
    pub code: String,
    pub message: String,
}

/// Everything measured in one session.
#[derive(Debug, Clone, Default)]
pub struct SessionRecord {
    pub session_id: Option<String>,
    pub turns: Vec<TurnTimeline>,
    pub responses: Vec<ResponseTimeline>,
    pub server_errors: Vec<ServerErrorRecord>,
    /// Why the session ended early (the server closed, a send failed); `None` if the script ran
    /// to its end.
    pub failure: Option<String>,
    /// Audio frames sent, and input samples they held.
    pub frames_sent: u64,
    pub input_samples_sent: u64,
    /// Frames sent more than one frame period after their scheduled time, and the worst delay
    /// (real-time mode; both measure how well the driver kept pace).
    pub late_frames: u64,
    pub max_send_lateness: Duration,
    /// Audio was sent as fast as possible (`--fast`): latencies are not meaningful.
    pub fast: bool,
    /// Messages the client could not parse (e.g. event types it does not know) and skipped.
    pub skipped_messages: u64,
}

impl SessionRecord {
    /// Metrics of every turn, in order.
    pub fn turn_metrics(&self) -> Vec<TurnMetrics> {
        self.turns
            .iter()
            .map(|t| TurnMetrics::compute(t, &self.responses))
            .collect()
    }

    /// All answers as heard, one after the other (for `--output reply.wav`, 24 kHz).
    pub fn heard_audio(&self) -> Vec<f32> {
        self.responses
            .iter()
            .flat_map(|r| r.heard_audio().iter().copied())
            .collect()
    }
}

/// What the cursor puts into a frame besides audio.
#[derive(Debug, Clone, Default)]
pub struct FrameMarks {
    /// This frame starts an utterance.
    pub starts: Option<(Arc<Utterance>, Option<BargeInPlan>)>,
    /// This frame holds the utterance's last speech sample.
    pub last_speech: bool,
    /// This frame holds the utterance's last sample.
    pub ends: bool,
}

/// Where the current answer's playback is, for a `barge_in` step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerProgress {
    pub played: Duration,
    /// Nothing more will play (done and drained, or stopped).
    pub over: bool,
}

/// Builds a [`SessionRecord`] from frames sent and events received, and decides the client's
/// reactions (stop playback and truncate on barge-in). Pure: times come in as arguments.
#[derive(Debug)]
pub struct Recorder {
    record: SessionRecord,
    keep_audio: bool,
    display: Vec<DisplayEvent>,
}

impl Recorder {
    pub fn new(keep_audio: bool, fast: bool) -> Self {
        Recorder {
            record: SessionRecord {
                fast,
                ..Default::default()
            },
            keep_audio,
            display: Vec::new(),
        }
    }

    pub fn record(&self) -> &SessionRecord {
        &self.record
    }

    pub fn into_record(self) -> SessionRecord {
        self.record
    }

    pub fn set_failure(&mut self, why: String) {
        self.record.failure.get_or_insert(why);
    }

    pub fn note_skipped_message(&mut self) {
        self.record.skipped_messages += 1;
    }

    /// Display events produced since the last call.
    pub fn take_display(&mut self) -> Vec<DisplayEvent> {
        std::mem::take(&mut self.display)
    }

    fn current_turn(&self) -> Option<usize> {
        self.record.turns.len().checked_sub(1)
    }

    /// A frame of `samples` input samples scheduled for `scheduled` was sent at `at`.
    pub fn frame_sent(
        &mut self,
        at: Duration,
        scheduled: Duration,
        samples: usize,
        marks: &FrameMarks,
    ) {
        let lateness = at.saturating_sub(scheduled);
        if lateness > crate::FRAME {
            self.record.late_frames += 1;
        }
        self.record.max_send_lateness = self.record.max_send_lateness.max(lateness);
        if let Some((utterance, barge_in)) = &marks.starts {
            let index = self.record.turns.len();
            self.display.push(DisplayEvent::UserSpeaking {
                turn: index,
                wav: utterance.name(),
                barge_in: barge_in.is_some(),
            });
            self.record.turns.push(TurnTimeline {
                index,
                utterance: utterance.clone(),
                barge_in: *barge_in,
                started_at: at,
                stream_offset: self.record.input_samples_sent,
                last_speech_sent_at: None,
                ended_at: None,
                speech_started_at: None,
                speech_stopped_at: None,
                vad_audio_end_ms: None,
                committed_at: None,
                user_item_ids: Vec::new(),
                transcript: None,
                timed_out: false,
            });
        }
        if let Some(turn) = self.record.turns.last_mut() {
            if marks.last_speech {
                turn.last_speech_sent_at = Some(at);
            }
            if marks.ends {
                turn.ended_at = Some(at);
            }
        }
        self.record.frames_sent += 1;
        self.record.input_samples_sent += samples as u64;
    }

    /// A `wait_for_answer` gave up on the current turn.
    pub fn mark_timed_out(&mut self) {
        if let Some(turn) = self.record.turns.last_mut() {
            turn.timed_out = true;
        }
    }

    /// The current turn's answer (its latest response).
    fn current_answer(&self) -> Option<&ResponseTimeline> {
        let turn = self.current_turn()?;
        self.record
            .responses
            .iter()
            .rev()
            .find(|r| r.turn == Some(turn))
    }

    /// Whether the current turn's answer is complete at `at`: `response.done` arrived with a
    /// status other than `cancelled`, and its audio has finished playing.
    pub fn answer_complete(&self, at: Duration) -> bool {
        self.current_answer().is_some_and(|r| {
            r.done_at.is_some()
                && r.status != Some(ResponseStatus::Cancelled)
                && (r.playout.received_samples() == 0 || r.playout.is_drained(at))
        })
    }

    /// How far the current turn's answer has played at `at`; `None` before its first audio.
    pub fn answer_progress(&self, at: Duration) -> Option<AnswerProgress> {
        let r = self.current_answer()?;
        r.playout.started_at()?;
        let played = r.playout.played_samples(at);
        Some(AnswerProgress {
            played: crate::playout::samples_to_duration(played, WIRE_PCM_RATE),
            over: r.playout.is_drained(at) || (r.done_at.is_some() && !r.playout.is_active(at)),
        })
    }

    fn response_index(&mut self, id: &str, at: Duration) -> usize {
        if let Some(i) = self
            .record
            .responses
            .iter()
            .position(|r| r.response_id == id)
        {
            return i;
        }
        // An event for a response whose `response.created` we did not see.
        let turn = self.current_turn();
        self.record
            .responses
            .push(ResponseTimeline::new(id.to_owned(), turn, at));
        self.record.responses.len() - 1
    }

    /// Handles one server event that arrived at `at`; returns the client events to send in
    /// reaction (a `conversation.item.truncate` on barge-in).
    pub fn on_event(&mut self, at: Duration, event: &ServerEvent) -> Vec<ClientEvent> {
        let mut replies = Vec::new();
        match event {
            ServerEvent::SessionCreated(e) => {
                self.record.session_id = e.session.id.clone();
                self.display.push(DisplayEvent::SessionStarted {
                    session_id: e.session.id.clone(),
                });
            }
            ServerEvent::Error(e) => {
                let code = e
                    .error
                    .code
                    .clone()
                    .unwrap_or_else(|| e.error.error_type.clone());
                self.display.push(DisplayEvent::ServerError {
                    code: code.clone(),
                    message: e.error.message.clone(),
                });
                self.record.server_errors.push(ServerErrorRecord {
                    at,
                    code,
                    message: e.error.message.clone(),
                });
            }
            ServerEvent::InputAudioBufferSpeechStarted(e) => {
                if let Some(turn) = self.record.turns.last_mut() {
                    turn.speech_started_at.get_or_insert(at);
                    push_unique(&mut turn.user_item_ids, &e.item_id);
                }
                self.barge_in(at, &mut replies);
            }
            ServerEvent::InputAudioBufferSpeechStopped(e) => {
                if let Some(turn) = self.record.turns.last_mut() {
                    turn.speech_stopped_at = Some(at);
                    turn.vad_audio_end_ms = Some(e.audio_end_ms);
                    push_unique(&mut turn.user_item_ids, &e.item_id);
                }
            }
            ServerEvent::InputAudioBufferCommitted(e) => {
                if let Some(turn) = self.record.turns.last_mut() {
                    turn.committed_at = Some(at);
                    push_unique(&mut turn.user_item_ids, &e.item_id);
                }
            }
            ServerEvent::ConversationItemAdded(e) => {
                let ConversationItem::Message(m) = &e.item;
                if let (Role::User, Some(id), Some(turn)) =
                    (m.role, &m.id, self.record.turns.last_mut())
                {
                    push_unique(&mut turn.user_item_ids, id);
                }
            }
            ServerEvent::InputAudioTranscriptionCompleted(e) => {
                let turn = self
                    .record
                    .turns
                    .iter()
                    .rposition(|t| t.user_item_ids.contains(&e.item_id))
                    .or(self.current_turn());
                if let Some(index) = turn {
                    let t = &mut self.record.turns[index];
                    let text = e.transcript.trim();
                    match &mut t.transcript {
                        Some(prev) if !text.is_empty() => {
                            prev.push(' ');
                            prev.push_str(text);
                        }
                        Some(_) => {}
                        None => t.transcript = Some(text.to_owned()),
                    }
                    self.display.push(DisplayEvent::UserTranscript {
                        turn: index,
                        text: text.to_owned(),
                    });
                }
            }
            ServerEvent::ResponseCreated(e) => {
                let id = e.response.id.clone().unwrap_or_default();
                let i = self.response_index(&id, at);
                self.record.responses[i].created_at = at;
            }
            ServerEvent::ResponseOutputAudioTranscriptDelta(e) => {
                self.text_delta(at, &e.response_id, &e.delta)
            }
            ServerEvent::ResponseOutputTextDelta(e) => {
                self.text_delta(at, &e.response_id, &e.delta)
            }
            ServerEvent::ResponseOutputAudioTranscriptDone(e) => {
                self.text_done(at, &e.response_id, &e.transcript)
            }
            ServerEvent::ResponseOutputTextDone(e) => self.text_done(at, &e.response_id, &e.text),
            ServerEvent::ResponseOutputAudioDelta(e) => {
                let i = self.response_index(&e.response_id, at);
                self.audio_delta(i, at, &e.item_id, &e.delta);
            }
            ServerEvent::ResponseOutputAudioDone(e) => {
                let i = self.response_index(&e.response_id, at);
                let r = &mut self.record.responses[i];
                r.playout.finish();
                r.audio_done_at.get_or_insert(at);
            }
            ServerEvent::ConversationItemTruncated(e) => {
                if let Some(r) = self
                    .record
                    .responses
                    .iter_mut()
                    .find(|r| r.item_id.as_deref() == Some(e.item_id.as_str()))
                    && let Some(int) = &mut r.interruption
                {
                    int.truncate_acked_at.get_or_insert(at);
                }
            }
            ServerEvent::ResponseDone(e) => {
                let id = e.response.id.clone().unwrap_or_default();
                let i = self.response_index(&id, at);
                let r = &mut self.record.responses[i];
                r.done_at = Some(at);
                r.status = e.response.status;
                r.status_reason = e.response.status_details.as_ref().and_then(|d| d.reason);
                // No more audio comes after response.done, even without output_audio.done.
                r.playout.finish();
                r.server_timings = serde_json::to_value(&e.response.parley)
                    .ok()
                    .and_then(|v| ServerTimings::from_parley_value(&v));
                let status = r.status.map_or("unknown", status_name).to_owned();
                let turn = r.turn;
                if let Some(turn) = turn {
                    self.display.push(DisplayEvent::AnswerDone { turn, status });
                    let metrics =
                        TurnMetrics::compute(&self.record.turns[turn], &self.record.responses);
                    self.display
                        .push(DisplayEvent::TurnFinished(Box::new(metrics)));
                }
            }
            ServerEvent::SessionUpdated(_)
            | ServerEvent::InputAudioBufferCleared(_)
            | ServerEvent::ConversationItemDone(_)
            | ServerEvent::ConversationItemDeleted(_)
            | ServerEvent::ConversationItemRetrieved(_)
            // The completed transcript is what the timeline shows.
            | ServerEvent::InputAudioTranscriptionDelta(_) => {}
        }
        replies
    }

    /// Speech started: stop every answer that is playing or still being produced, and truncate
    /// the ones the listener heard part of.
    fn barge_in(&mut self, at: Duration, replies: &mut Vec<ClientEvent>) {
        for r in &mut self.record.responses {
            if r.interruption.is_some() {
                continue;
            }
            let playing = r.playout.is_active(at);
            let running = r.done_at.is_none();
            if !playing && !running {
                continue;
            }
            let played = r.playout.stop(at);
            let truncated_at_ms = match (&r.item_id, r.playout.received_samples() > 0) {
                (Some(item_id), true) => {
                    let audio_end_ms = samples_to_ms(played, WIRE_PCM_RATE);
                    replies.push(ClientEvent::ConversationItemTruncate(
                        ConversationItemTruncate {
                            event_id: None,
                            item_id: item_id.clone(),
                            content_index: 0,
                            audio_end_ms,
                        },
                    ));
                    Some(audio_end_ms)
                }
                _ => None,
            };
            r.interruption = Some(Interruption {
                speech_started_at: at,
                played_samples: played,
                was_playing: playing,
                truncated_at_ms,
                truncate_acked_at: None,
                after_server_done: !running,
            });
            if playing && let Some(turn) = r.turn {
                self.display.push(DisplayEvent::BargeIn {
                    turn,
                    played_ms: samples_to_ms(played, WIRE_PCM_RATE),
                });
            }
        }
    }

    fn text_delta(&mut self, at: Duration, response_id: &str, delta: &str) {
        let i = self.response_index(response_id, at);
        let r = &mut self.record.responses[i];
        if r.first_text_at.is_none() {
            r.first_text_at = Some(at);
            if let Some(turn) = r.turn {
                self.display.push(DisplayEvent::AnswerStarted { turn });
            }
        }
        r.text.push_str(delta);
        if let Some(turn) = r.turn {
            self.display.push(DisplayEvent::AnswerDelta {
                turn,
                text: delta.to_owned(),
            });
        }
    }

    fn text_done(&mut self, at: Duration, response_id: &str, full: &str) {
        let i = self.response_index(response_id, at);
        let r = &mut self.record.responses[i];
        // Deltas are what streamed; the final text wins only when no delta came.
        if r.text.is_empty() && !full.is_empty() {
            r.text = full.to_owned();
            if let Some(turn) = r.turn {
                self.display.push(DisplayEvent::AnswerStarted { turn });
                self.display.push(DisplayEvent::AnswerDelta {
                    turn,
                    text: full.to_owned(),
                });
            }
        }
    }

    fn audio_delta(&mut self, i: usize, at: Duration, item_id: &str, audio: &Pcm16Audio) {
        let keep_audio = self.keep_audio;
        let r = &mut self.record.responses[i];
        r.item_id.get_or_insert_with(|| item_id.to_owned());
        let before = r.playout.received_samples();
        if !r.playout.push(at, audio.sample_count() as u64) {
            return; // after a barge-in stop: dropped, counted by the playout
        }
        r.first_audio_at.get_or_insert(at);
        let need_audible = r.first_audible_at.is_none();
        if !(keep_audio || need_audible) {
            return;
        }
        let samples = audio.to_samples();
        if need_audible && let Some(offset) = first_audible_sample(&samples, WIRE_PCM_RATE) {
            r.first_audible_at = Some(at);
            r.leading_silence_samples = Some(before + offset as u64);
        }
        if keep_audio {
            let room = MAX_KEPT_ANSWER_SAMPLES.saturating_sub(r.audio.len());
            r.audio
                .extend_from_slice(&samples[..samples.len().min(room)]);
        }
    }
}

fn push_unique(ids: &mut Vec<String>, id: &str) {
    if !ids.iter().any(|x| x == id) {
        ids.push(id.to_owned());
    }
}

/// The wire name of a response status.
pub fn status_name(status: ResponseStatus) -> &'static str {
    match status {
        ResponseStatus::Completed => "completed",
        ResponseStatus::Cancelled => "cancelled",
        ResponseStatus::Incomplete => "incomplete",
        ResponseStatus::Failed => "failed",
        ResponseStatus::InProgress => "in_progress",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_protocol::parse_server_event;
    use serde_json::json;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn ev(value: serde_json::Value) -> ServerEvent {
        let mut value = value;
        value["event_id"] = json!("evt");
        parse_server_event(&value.to_string()).unwrap()
    }

    fn audio_delta(response: &str, item: &str, samples: &[f32]) -> ServerEvent {
        ev(
            json!({"type": "response.output_audio.delta", "response_id": response,
            "item_id": item, "output_index": 0, "content_index": 0,
            "delta": Pcm16Audio::from_samples(samples).to_base64()}),
        )
    }

    fn response_event(
        kind: &str,
        id: &str,
        status: &str,
        parley: serde_json::Value,
    ) -> ServerEvent {
        ev(
            json!({"type": kind, "response": {"id": id, "status": status,
            "status_details": {"type": status, "reason": "turn_detected"}, "parley": parley}}),
        )
    }

    /// 1 s utterance: 0.8 s of tone, then 0.2 s of silence.
    fn utterance() -> Arc<Utterance> {
        let mut samples: Vec<f32> = (0..19_200).map(|i| 0.4 * (i as f32 * 0.07).sin()).collect();
        samples.resize(24_000, 0.0);
        Arc::new(Utterance::from_samples("q.wav".into(), samples).unwrap())
    }

    /// Sends the utterance as 50 frames, frame k at k × 20 ms, like the driver does.
    fn send_utterance(
        rec: &mut Recorder,
        u: &Arc<Utterance>,
        start: Duration,
        barge: Option<BargeInPlan>,
    ) {
        for k in 0..50usize {
            let pos = k * 480;
            let marks = FrameMarks {
                starts: (k == 0).then(|| (u.clone(), barge)),
                last_speech: (pos..pos + 480).contains(&u.speech.last_sample),
                ends: k == 49,
            };
            let at = start + ms(20 * k as u64);
            rec.frame_sent(at, at, 480, &marks);
        }
    }

    #[test]
    fn a_turn_yields_its_latencies_from_the_last_speech_sample() {
        let u = utterance();
        assert_eq!(u.speech.last_sample, 19_199);
        let mut rec = Recorder::new(true, false);
        send_utterance(&mut rec, &u, ms(0), None);
        // The last speech sample (0.8 s) is in frame 39, sent at 780 ms.
        assert_eq!(rec.record().turns[0].last_speech_sent_at, Some(ms(780)));

        rec.on_event(ms(300), &ev(json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 0, "item_id": "u1"})));
        rec.on_event(ms(1300), &ev(json!({"type": "input_audio_buffer.speech_stopped", "audio_end_ms": 1300, "item_id": "u1"})));
        rec.on_event(
            ms(1305),
            &ev(json!({"type": "input_audio_buffer.committed", "item_id": "u1"})),
        );
        rec.on_event(
            ms(1400),
            &ev(
                json!({"type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u1", "content_index": 0, "transcript": " hello there "}),
            ),
        );
        rec.on_event(
            ms(1450),
            &response_event("response.created", "r1", "in_progress", json!(null)),
        );
        rec.on_event(
            ms(1500),
            &ev(
                json!({"type": "response.output_audio_transcript.delta", "response_id": "r1",
            "item_id": "a1", "output_index": 0, "content_index": 0, "delta": "Hi"}),
            ),
        );
        // 40 ms of silence, then 160 ms of sound, arriving every 20 ms from 1600 ms.
        for k in 0..10u64 {
            let level = if k < 2 { 0.0 } else { 0.2 };
            rec.on_event(ms(1600 + 20 * k), &audio_delta("r1", "a1", &[level; 480]));
        }
        rec.on_event(
            ms(1790),
            &ev(
                json!({"type": "response.output_audio.done", "response_id": "r1",
            "item_id": "a1", "output_index": 0, "content_index": 0}),
            ),
        );
        assert!(!rec.answer_complete(ms(1795)), "no response.done yet");
        let timings = json!({"timings": {"endpoint_ms": 510.0, "first_audio_ms": 790.5, "talker_rtf": 0.4,
            "audio_ms": 200.0, "tokens": 3, "new_field": "ignored"}});
        rec.on_event(
            ms(1795),
            &response_event("response.done", "r1", "completed", timings),
        );
        assert!(
            !rec.answer_complete(ms(1799)),
            "still playing until 1800 ms"
        );
        assert!(rec.answer_complete(ms(1800)));

        let m = &rec.record().turn_metrics()[0];
        assert_eq!(m.v2v_ms, Some(820.0));
        assert_eq!(m.endpoint_ms, Some(520.0));
        assert_eq!(m.first_token_ms, Some(720.0));
        assert_eq!(m.first_audible_ms, Some(860.0));
        assert_eq!(m.leading_silence_ms, Some(40.0));
        // Server VAD end (1300 ms) vs the last speech sample at 799 ms in the input stream.
        assert_eq!(m.vad_end_error_ms, Some(501.0));
        assert_eq!(m.answer_audio_ms, 200.0);
        assert_eq!(m.underruns, 0);
        assert_eq!(m.user_transcript.as_deref(), Some("hello there"));
        assert_eq!(m.answer_text, "Hi");
        assert_eq!(m.status.as_deref(), Some("completed"));
        assert!(!m.interrupted);
        let server = m.server.unwrap();
        assert_eq!(server.endpoint_ms, Some(510.0));
        assert_eq!(server.first_audio_ms, Some(790.5));
        assert_eq!(server.talker_rtf, Some(0.4));
        assert_eq!(server.tokens, Some(3));
        assert_eq!(server.transcribe_ms, None);
        assert_eq!(rec.record().heard_audio().len(), 4800);

        let display = rec.take_display();
        assert!(display.contains(&DisplayEvent::UserTranscript {
            turn: 0,
            text: "hello there".into()
        }));
        assert!(display.contains(&DisplayEvent::AnswerDelta {
            turn: 0,
            text: "Hi".into()
        }));
        assert!(
            display
                .iter()
                .any(|d| matches!(d, DisplayEvent::TurnFinished(t) if t.v2v_ms == Some(820.0)))
        );
    }

    #[test]
    fn barge_in_stops_playback_truncates_at_the_played_ms_and_drops_late_audio() {
        let u = utterance();
        let mut rec = Recorder::new(true, false);
        send_utterance(&mut rec, &u, ms(0), None);
        rec.on_event(
            ms(1450),
            &response_event("response.created", "r1", "in_progress", json!(null)),
        );
        // 3 s of audio arrives between 1600 and 1900 ms: the server runs ahead of real time.
        for k in 0..150u64 {
            rec.on_event(
                ms(1600) + Duration::from_micros(2000 * k),
                &audio_delta("r1", "a1", &[0.2; 480]),
            );
        }
        let progress = rec.answer_progress(ms(2600)).unwrap();
        assert_eq!(progress.played, ms(1000));
        assert!(!progress.over);

        // The user talks over it: a barge-in utterance starts, the server hears it.
        send_utterance(
            &mut rec,
            &u,
            ms(2400),
            Some(BargeInPlan {
                after: ms(800),
                played_at_start: ms(800),
                missed: false,
            }),
        );
        let speech_at = Duration::from_micros(2_600_500); // 1000.5 ms played
        let replies = rec.on_event(
            speech_at,
            &ev(json!({"type": "input_audio_buffer.speech_started",
            "audio_start_ms": 2500, "item_id": "u2"})),
        );
        let [ClientEvent::ConversationItemTruncate(t)] = replies.as_slice() else {
            panic!("expected one truncate, got {replies:?}");
        };
        assert_eq!(
            (t.item_id.as_str(), t.content_index, t.audio_end_ms),
            ("a1", 0, 1000)
        );
        assert!(rec.take_display().contains(&DisplayEvent::BargeIn {
            turn: 0,
            played_ms: 1000
        }));

        // Late audio of the interrupted response is dropped; then the server cancels.
        rec.on_event(ms(2650), &audio_delta("r1", "a1", &[0.2; 480]));
        rec.on_event(ms(2660), &audio_delta("r1", "a1", &[0.2; 240]));
        rec.on_event(
            ms(2680),
            &ev(
                json!({"type": "conversation.item.truncated", "item_id": "a1",
            "content_index": 0, "audio_end_ms": 1000}),
            ),
        );
        rec.on_event(
            ms(2700),
            &response_event("response.done", "r1", "cancelled", json!(null)),
        );

        let metrics = rec.record().turn_metrics();
        let m = &metrics[0];
        assert!(m.interrupted);
        assert_eq!(m.truncated_at_ms, Some(1000));
        assert_eq!(m.status.as_deref(), Some("cancelled"));
        assert!((m.stop_ms.unwrap() - 99.5).abs() < 1e-9, "{:?}", m.stop_ms);
        assert_eq!(m.audio_after_stop_ms, Some(30.0));
        assert_eq!(
            m.answer_audio_ms, 3000.0,
            "dropped audio is not counted as received"
        );
        let r = &rec.record().responses[0];
        assert_eq!(r.interruption.unwrap().truncate_acked_at, Some(ms(2680)));
        assert_eq!(
            r.heard_audio().len(),
            24_012,
            "heard = played, not received"
        );
        // The barge-in turn is its own turn; its answer has not come yet.
        assert!(metrics[1].barge_in);
        assert_eq!(metrics[1].status, None);
        assert!(!rec.answer_complete(ms(3000)));
    }

    #[test]
    fn speech_after_the_answer_finished_playing_is_not_a_barge_in() {
        let u = utterance();
        let mut rec = Recorder::new(false, false);
        send_utterance(&mut rec, &u, ms(0), None);
        rec.on_event(ms(1000), &audio_delta("r1", "a1", &[0.2; 480])); // no response.created seen
        rec.on_event(
            ms(1010),
            &response_event("response.done", "r1", "completed", json!(null)),
        );
        assert_eq!(rec.record().responses[0].turn, Some(0));
        let replies = rec.on_event(
            ms(1500),
            &ev(json!({"type": "input_audio_buffer.speech_started",
            "audio_start_ms": 1400, "item_id": "u2"})),
        );
        assert!(replies.is_empty());
        assert!(rec.record().responses[0].interruption.is_none());
        assert!(rec.record().heard_audio().is_empty(), "audio not kept");
    }

    #[test]
    fn a_cancelled_premature_response_does_not_end_the_wait() {
        let u = utterance();
        let mut rec = Recorder::new(false, false);
        send_utterance(&mut rec, &u, ms(0), None);
        rec.on_event(
            ms(600),
            &response_event("response.created", "r1", "in_progress", json!(null)),
        );
        rec.on_event(ms(700), &ev(json!({"type": "input_audio_buffer.speech_started", "audio_start_ms": 650, "item_id": "u2"})));
        rec.on_event(
            ms(750),
            &response_event("response.done", "r1", "cancelled", json!(null)),
        );
        assert!(!rec.answer_complete(ms(800)));
        rec.on_event(
            ms(1500),
            &response_event("response.created", "r2", "in_progress", json!(null)),
        );
        rec.on_event(
            ms(1600),
            &response_event("response.done", "r2", "completed", json!(null)),
        );
        assert!(
            rec.answer_complete(ms(1600)),
            "a text-only answer is complete at response.done"
        );
        let m = &rec.record().turn_metrics()[0];
        assert_eq!(m.premature_responses, 1);
        assert_eq!(m.status.as_deref(), Some("completed"));
        assert_eq!(m.v2v_ms, None, "no audio");
    }
}
