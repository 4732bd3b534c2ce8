//! One spoken conversation over the Realtime WebSocket: the microphone path's frames go out as
//! `input_audio_buffer.append`, the answer's audio comes back into the playout buffer, and the
//! user talking over an answer stops it (barge-in).
//!
//! Barge-in: on `input_audio_buffer.speech_started` while an answer is playing (or still being
//! produced) the playout buffer is cleared at once, and `conversation.item.truncate` tells the
//! server how much of the answer was actually played (the playout clock), so the history holds
//! only what the user heard.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use parley_audio_io::constants::{MODEL_INPUT_RATE, WIRE_PCM_RATE, ms_to_samples, samples_to_ms};
use parley_audio_io::echo::EchoEstimates;
use parley_audio_io::{
    AudioCounters, AudioError, Capture, EchoConfig, Playback, PlayoutBuffer, ResponseId, audio_ring,
};
use parley_client::ClientError;
use parley_client::timeline::status_name;
use parley_protocol::events::ConversationItemTruncate;
use parley_protocol::response::TurnTimings;
use parley_protocol::{
    ClientConfig, ClientEvent, ClientReceiver, ClientSender, ProtocolError, RealtimeClient,
    ServerEvent, ServerItem,
};
use tokio::sync::mpsc;

use super::error::TalkError;
use super::mic_path::{MicPath, MicStats};
use super::speaker_path::SpeakerPath;

/// Received messages waiting for the session loop (about 20 s of 20 ms audio deltas). When full
/// the receiving task waits and TCP flow control slows the server down; nothing is dropped.
const EVENT_QUEUE: usize = 1024;
/// Microphone frames waiting to be sent (1 s); beyond that the microphone path drops frames.
const MIC_QUEUE_FRAMES: usize = 50;
/// Room of the far-end ring between the speaker tap and the microphone path (1 s).
const FAR_END_RING_MS: u64 = 1000;
/// How often the playout clock is looked at (first audio played, answer played out).
const PLAYOUT_TICK: Duration = Duration::from_millis(20);
/// Send times of recent frames kept to time the end of the user's speech (30 s).
const SENT_FRAMES_KEPT: usize = 1500;

/// How to hold the conversation.
#[derive(Debug, Clone)]
pub struct TalkOptions {
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Cancel the speaker's echo on the microphone path (off only with headphones).
    pub echo_cancellation: bool,
    pub echo: EchoConfig,
    /// Most answer audio waiting to be played; audio beyond it is dropped (counted).
    pub max_queued_answer_ms: u64,
    /// TCP connect + WebSocket upgrade.
    pub connect_timeout: Duration,
    /// Waiting for `session.created`.
    pub start_timeout: Duration,
}

impl Default for TalkOptions {
    fn default() -> Self {
        Self {
            api_key: None,
            echo_cancellation: true,
            echo: EchoConfig::default(),
            max_queued_answer_ms: 60_000,
            connect_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// Something worth showing the person talking, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum TalkEvent {
    /// The server accepted the session; the microphone is live.
    SessionStarted,
    /// The server heard the user start speaking; `over_answer`: while an answer was playing or
    /// being prepared (a barge-in follows if any of it was left to play).
    UserSpeechStarted {
        audio_start_ms: u64,
        over_answer: bool,
    },
    UserSpeechStopped {
        audio_end_ms: u64,
    },
    /// What the server heard: print as `you: <text>`.
    UserTranscript {
        text: String,
    },
    /// The first answer text arrived: print `parley: ` and then the deltas.
    AnswerStarted {
        response_id: String,
    },
    AnswerDelta {
        response_id: String,
        text: String,
    },
    /// `response.done`; `status` is its wire name (`completed`, `cancelled`, …).
    AnswerDone {
        response_id: String,
        status: String,
    },
    /// All of a finished answer's audio has left for the speaker.
    AnswerPlayedOut {
        response_id: String,
        played_ms: u64,
    },
    /// The user talked over the answer: playback stopped after `played_ms` of its `audio_ms`.
    BargeIn {
        response_id: String,
        played_ms: u64,
        audio_ms: u64,
    },
    /// A turn's numbers, once its answer has played out or been cut.
    TurnLatency(TurnLatency),
    /// The server sent an `error` event (the session goes on).
    ServerError {
        code: String,
        message: String,
    },
}

/// Latencies of one turn, in ms from the moment the frame holding the end of the user's speech
/// (the server VAD's `speech_stopped.audio_end_ms`) was sent. `None`: it did not happen.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TurnLatency {
    pub response_id: String,
    /// `speech_stopped` received.
    pub endpoint_ms: Option<f64>,
    pub first_token_ms: Option<f64>,
    /// First answer audio received.
    pub first_audio_received_ms: Option<f64>,
    /// Voice to voice: first answer audio taken for the speaker (by the playout clock, which
    /// runs ahead of the loudspeaker by the device buffering).
    pub v2v_ms: Option<f64>,
    /// The server's own stage timings (`response.parley.timings`).
    pub server: Option<TurnTimings>,
}

impl TurnLatency {
    /// One line, e.g. `v2v 690 ms · endpoint 520 ms · first token 610 ms · first audio 650 ms`.
    pub fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
        let mut line = format!(
            "v2v {} · endpoint {} · first token {} · first audio {}",
            ms(self.v2v_ms),
            ms(self.endpoint_ms),
            ms(self.first_token_ms),
            ms(self.first_audio_received_ms),
        );
        if let Some(rtf) = self.server.and_then(|s| s.talker_rtf) {
            line.push_str(&format!(" · talker rtf {rtf:.2}"));
        }
        line
    }
}

/// One answer as the user got it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AnswerRecord {
    pub response_id: String,
    /// `response.done` status (`None`: the session ended first).
    pub status: Option<String>,
    pub text: String,
    /// Answer audio received (and queued for the speaker).
    pub audio_ms: u64,
    /// Of it, what left for the speaker.
    pub played_ms: u64,
    /// The user cut in (the playout was cleared with some of it unplayed).
    pub barged_in: bool,
}

/// What happened in a conversation.
#[derive(Debug, Clone, Default)]
pub struct TalkReport {
    pub transcripts: Vec<String>,
    pub answers: Vec<AnswerRecord>,
    /// Every `input_audio_buffer.speech_started`.
    pub speech_started: u32,
    /// Of those, while an answer was playing or being prepared.
    pub speech_started_over_answer: u32,
    /// `conversation.item.truncate` events sent.
    pub truncations: u32,
    pub frames_sent: u64,
    /// Microphone frames dropped because sending fell behind.
    pub frames_dropped: u64,
    /// Far-end audio the echo canceller refused (the microphone was not delivering).
    pub far_end_refused_ms: u64,
    /// Answer audio dropped because the playout buffer was full.
    pub answer_audio_dropped_ms: u64,
    /// Microphone samples lost because the processing thread fell behind the device.
    pub capture_overrun_samples: u64,
    /// The echo canceller's last estimates (with echo cancellation on).
    pub echo: Option<EchoEstimates>,
    /// Why the conversation ended early (`None`: it was stopped).
    pub failure: Option<String>,
}

/// Holds a spoken conversation with the server at `url` until `stop` completes (Ctrl-C in the
/// CLI), the connection ends or the microphone path fails: `capture` is the microphone and
/// `playback` the speaker, real (cpal) or virtual. `on_event` sees what happens as it happens.
///
/// `Err` only when the conversation could not start; trouble later ends it with
/// [`TalkReport::failure`] set.
pub async fn run_conversation(
    url: &str,
    capture: Capture,
    playback: Playback,
    options: &TalkOptions,
    mut on_event: impl FnMut(TalkEvent) + Send,
    stop: impl Future<Output = ()>,
) -> Result<TalkReport, TalkError> {
    let config = ClientConfig {
        connect_timeout: options.connect_timeout,
        ..ClientConfig::default()
    };
    let client = RealtimeClient::connect_with(url, options.api_key.clone(), config)
        .await
        .map_err(|e| ClientError::from_connect(url, e))?;
    let (mut tx, rx) = client.split();
    let (queue_tx, mut incoming) = mpsc::channel(EVENT_QUEUE);
    let receiver = tokio::spawn(receive(rx, queue_tx));
    let result = async {
        wait_for_session(&mut incoming, options.start_timeout).await?;
        on_event(TalkEvent::SessionStarted);
        converse(
            capture,
            playback,
            options,
            &mut tx,
            &mut incoming,
            &mut on_event,
            stop,
        )
        .await
    }
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), tx.close(1000, "bye")).await;
    receiver.abort();
    result
}

enum Incoming {
    Item(Result<ServerItem, ProtocolError>),
    Closed(String),
}

/// Reads the socket continuously (which also answers the server's pings).
async fn receive(mut rx: ClientReceiver, out: mpsc::Sender<Incoming>) {
    while let Some(item) = rx.recv().await {
        if out.send(Incoming::Item(item)).await.is_err() {
            return;
        }
    }
    let why = match rx.close_info() {
        Some(c) => format!(
            "the server closed the connection (code {}: {})",
            c.code, c.reason
        ),
        None => "the connection ended without a close frame".to_owned(),
    };
    let _ = out.send(Incoming::Closed(why)).await;
}

async fn wait_for_session(
    incoming: &mut mpsc::Receiver<Incoming>,
    timeout: Duration,
) -> Result<(), TalkError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, incoming.recv()).await {
            Err(_) => return Err(TalkError::NoSession(timeout)),
            Ok(None | Some(Incoming::Closed(_))) => return Err(TalkError::ClosedBeforeSession),
            Ok(Some(Incoming::Item(Ok(ServerItem::Event(event))))) => match event {
                ServerEvent::SessionCreated(_) => return Ok(()),
                ServerEvent::Error(e) => {
                    return Err(TalkError::SessionRefused {
                        code: e.error.code.unwrap_or(e.error.error_type),
                        message: e.error.message,
                    });
                }
                _ => {}
            },
            Ok(Some(Incoming::Item(_))) => {}
        }
    }
}

/// Starts the audio paths and runs the session loop until it ends.
async fn converse(
    capture: Capture,
    playback: Playback,
    options: &TalkOptions,
    tx: &mut ClientSender,
    incoming: &mut mpsc::Receiver<Incoming>,
    on_event: &mut (dyn FnMut(TalkEvent) + Send),
    stop: impl Future<Output = ()>,
) -> Result<TalkReport, TalkError> {
    let capture_counters = Arc::clone(&capture.counters);
    let (far_writer, far_reader) = audio_ring(
        ms_to_samples(FAR_END_RING_MS, WIRE_PCM_RATE) as usize,
        Arc::new(AudioCounters::new()),
    );
    // Speaker first: the microphone path must find the far-end ring being fed.
    let (speaker, playout_input) = SpeakerPath::start(playback, far_writer)?;
    let playout = Arc::new(PlayoutBuffer::new(
        playout_input,
        options.max_queued_answer_ms,
    )?);
    let (frames_tx, mut frames) = mpsc::channel(MIC_QUEUE_FRAMES);
    let stats = Arc::new(MicStats::default());
    let mic = MicPath::start(
        capture,
        far_reader,
        options.echo_cancellation.then(|| options.echo.clone()),
        frames_tx,
        Arc::clone(&stats),
    )?;

    let mut session = Session {
        playout: Arc::clone(&playout),
        report: TalkReport::default(),
        live: Vec::new(),
        next_playout_id: 0,
        sent_samples: 0,
        sent_frames: VecDeque::with_capacity(SENT_FRAMES_KEPT),
        speech_end_sent: None,
        speech_stopped_at: None,
        on_event,
    };
    let mut tick = tokio::time::interval(PLAYOUT_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            biased;
            () = &mut stop => break,
            received = incoming.recv() => {
                let item = match received {
                    None => {
                        session.report.failure = Some("the connection ended".to_owned());
                        break;
                    }
                    Some(Incoming::Closed(why)) => {
                        session.report.failure = Some(why);
                        break;
                    }
                    Some(Incoming::Item(item)) => item,
                };
                // Unknown event types and binary frames (never negotiated) are skipped.
                if let Ok(ServerItem::Event(event)) = item {
                    for reply in session.on_server_event(event).await {
                        if let Err(e) = tx.send(&reply).await {
                            session.report.failure =
                                Some(format!("sending {} failed: {e}", reply.event_type()));
                            break;
                        }
                    }
                    if session.report.failure.is_some() {
                        break;
                    }
                }
            }
            frame = frames.recv() => {
                let Some(frame) = frame else {
                    session.report.failure = Some(
                        stats.failure().unwrap_or_else(|| "the microphone path stopped".to_owned()),
                    );
                    break;
                };
                if let Err(e) = tx.send(&ClientEvent::append_audio(&frame)).await {
                    session.report.failure = Some(format!("sending audio failed: {e}"));
                    break;
                }
                session.frame_sent(frame.len());
            }
            _ = tick.tick() => session.check_playout(),
        }
    }
    // Stop the microphone first (nothing more to send), then the speaker.
    drop(mic);
    drop(playout);
    let mut report = session.finish();
    drop(speaker);
    report.frames_sent = stats.frames.load(Ordering::Relaxed);
    report.frames_dropped = stats.frames_dropped.load(Ordering::Relaxed);
    report.far_end_refused_ms = samples_to_ms(
        stats.far_end_refused.load(Ordering::Relaxed),
        MODEL_INPUT_RATE,
    );
    report.echo = stats.echo_estimates();
    report.capture_overrun_samples = capture_counters.overrun_samples();
    Ok(report)
}

/// An answer that is still being produced or played.
struct LiveAnswer {
    response_id: String,
    playout_id: ResponseId,
    item_id: Option<String>,
    /// Index in `report.answers`.
    record: usize,
    done: bool,
    enqueued: u64,
    first_text: Option<Instant>,
    first_audio: Option<Instant>,
    first_played: Option<Instant>,
    timings: Option<TurnTimings>,
    /// When the user's speech this answers ended (the frame was sent), if known.
    speech_end: Option<Instant>,
    speech_stopped: Option<Instant>,
}

struct Session<'a> {
    playout: Arc<PlayoutBuffer>,
    report: TalkReport,
    live: Vec<LiveAnswer>,
    next_playout_id: u64,
    sent_samples: u64,
    /// (input stream position in ms at the end of the frame, when it was sent).
    sent_frames: VecDeque<(u64, Instant)>,
    speech_end_sent: Option<Instant>,
    speech_stopped_at: Option<Instant>,
    on_event: &'a mut (dyn FnMut(TalkEvent) + Send),
}

impl Session<'_> {
    fn emit(&mut self, event: TalkEvent) {
        (self.on_event)(event);
    }

    fn frame_sent(&mut self, samples: usize) {
        self.sent_samples += samples as u64;
        if self.sent_frames.len() == SENT_FRAMES_KEPT {
            self.sent_frames.pop_front();
        }
        self.sent_frames.push_back((
            samples_to_ms(self.sent_samples, WIRE_PCM_RATE),
            Instant::now(),
        ));
    }

    /// When the frame holding input position `ms` was sent.
    fn sent_at(&self, ms: u64) -> Option<Instant> {
        self.sent_frames
            .iter()
            .find(|(end_ms, _)| *end_ms >= ms)
            .map(|(_, at)| *at)
    }

    fn live_mut(&mut self, response_id: &str) -> Option<&mut LiveAnswer> {
        self.live.iter_mut().find(|a| a.response_id == response_id)
    }

    /// Handles one event; returns what to send back.
    async fn on_server_event(&mut self, event: ServerEvent) -> Vec<ClientEvent> {
        let now = Instant::now();
        match event {
            ServerEvent::InputAudioBufferSpeechStarted(e) => {
                self.report.speech_started += 1;
                let over_answer = !self.live.is_empty();
                if over_answer {
                    self.report.speech_started_over_answer += 1;
                }
                self.emit(TalkEvent::UserSpeechStarted {
                    audio_start_ms: e.audio_start_ms,
                    over_answer,
                });
                if over_answer {
                    return self.barge_in().await;
                }
            }
            ServerEvent::InputAudioBufferSpeechStopped(e) => {
                self.speech_end_sent = self.sent_at(e.audio_end_ms);
                self.speech_stopped_at = Some(now);
                self.emit(TalkEvent::UserSpeechStopped {
                    audio_end_ms: e.audio_end_ms,
                });
            }
            ServerEvent::InputAudioTranscriptionCompleted(e) => {
                self.report.transcripts.push(e.transcript.clone());
                self.emit(TalkEvent::UserTranscript { text: e.transcript });
            }
            ServerEvent::ResponseCreated(e) => {
                let response_id = e.response.id.clone().unwrap_or_default();
                self.next_playout_id += 1;
                self.report.answers.push(AnswerRecord {
                    response_id: response_id.clone(),
                    ..AnswerRecord::default()
                });
                self.live.push(LiveAnswer {
                    response_id,
                    playout_id: ResponseId(self.next_playout_id),
                    item_id: None,
                    record: self.report.answers.len() - 1,
                    done: false,
                    enqueued: 0,
                    first_text: None,
                    first_audio: None,
                    first_played: None,
                    timings: None,
                    speech_end: self.speech_end_sent.take(),
                    speech_stopped: self.speech_stopped_at.take(),
                });
            }
            ServerEvent::ResponseOutputAudioTranscriptDelta(d) => {
                self.answer_text(&d.response_id, d.delta, now)
            }
            ServerEvent::ResponseOutputTextDelta(d) => {
                self.answer_text(&d.response_id, d.delta, now)
            }
            ServerEvent::ResponseOutputAudioDelta(d) => {
                let mut samples = Vec::new();
                d.delta.append_samples(&mut samples);
                let playout = Arc::clone(&self.playout);
                let Some(answer) = self.live_mut(&d.response_id) else {
                    return Vec::new(); // cut by a barge-in: not played
                };
                answer.item_id.get_or_insert(d.item_id);
                answer.first_audio.get_or_insert(now);
                match playout.enqueue(answer.playout_id, &samples) {
                    Ok(()) => {
                        answer.enqueued += samples.len() as u64;
                        let record = answer.record;
                        self.report.answers[record].audio_ms =
                            samples_to_ms(answer.enqueued, WIRE_PCM_RATE);
                    }
                    Err(AudioError::ResponseCleared(_)) => {}
                    Err(e) => {
                        if self.report.answer_audio_dropped_ms == 0 {
                            tracing::warn!("answer audio dropped: {e}");
                        }
                        self.report.answer_audio_dropped_ms +=
                            samples_to_ms(samples.len() as u64, WIRE_PCM_RATE);
                    }
                }
            }
            ServerEvent::ResponseDone(e) => {
                let response_id = e.response.id.clone().unwrap_or_default();
                let status = e.response.status.map_or("unknown", status_name).to_owned();
                if let Some(record) = self
                    .report
                    .answers
                    .iter_mut()
                    .find(|a| a.response_id == response_id)
                {
                    record.status = Some(status.clone());
                }
                if let Some(answer) = self.live_mut(&response_id) {
                    answer.done = true;
                    answer.timings = e.response.parley.as_ref().and_then(|p| p.timings);
                }
                self.emit(TalkEvent::AnswerDone {
                    response_id,
                    status,
                });
                self.check_playout();
            }
            ServerEvent::Error(e) => self.emit(TalkEvent::ServerError {
                code: e.error.code.unwrap_or(e.error.error_type),
                message: e.error.message,
            }),
            _ => {}
        }
        Vec::new()
    }

    fn answer_text(&mut self, response_id: &str, text: String, now: Instant) {
        let Some(answer) = self.live_mut(response_id) else {
            return;
        };
        let first = answer.first_text.is_none();
        answer.first_text.get_or_insert(now);
        let record = answer.record;
        self.report.answers[record].text.push_str(&text);
        if first {
            self.emit(TalkEvent::AnswerStarted {
                response_id: response_id.to_owned(),
            });
        }
        self.emit(TalkEvent::AnswerDelta {
            response_id: response_id.to_owned(),
            text,
        });
    }

    /// The user started speaking over the live answers: stop playback now and tell the server
    /// how much of each was heard.
    async fn barge_in(&mut self) -> Vec<ClientEvent> {
        let playout = Arc::clone(&self.playout);
        // `clear` waits (normally a couple of ms, at most 250) for the speaker tap to carry out
        // the flush, so its counts are exact; off the async workers.
        // Only a panic inside `clear` makes this fail; the counts are then unknown.
        let cleared = tokio::task::spawn_blocking(move || playout.clear())
            .await
            .unwrap_or_default();
        let mut replies = Vec::new();
        for answer in std::mem::take(&mut self.live) {
            let played = cleared
                .iter()
                .find(|c| c.id == answer.playout_id)
                .map_or(answer.enqueued, |c| c.played_samples);
            let played_ms = samples_to_ms(played, WIRE_PCM_RATE);
            let audio_ms = samples_to_ms(answer.enqueued, WIRE_PCM_RATE);
            let cut = !answer.done || played < answer.enqueued;
            {
                let record = &mut self.report.answers[answer.record];
                record.played_ms = played_ms;
                record.barged_in = cut;
            }
            if cut {
                if let Some(item_id) = &answer.item_id {
                    replies.push(ClientEvent::ConversationItemTruncate(
                        ConversationItemTruncate {
                            event_id: None,
                            item_id: item_id.clone(),
                            content_index: 0,
                            audio_end_ms: played_ms,
                        },
                    ));
                    self.report.truncations += 1;
                }
                self.emit(TalkEvent::BargeIn {
                    response_id: answer.response_id.clone(),
                    played_ms,
                    audio_ms,
                });
            }
            self.emit_latency(&answer);
        }
        replies
    }

    /// Looks at the playout clock: first audio played, finished answers played out.
    fn check_playout(&mut self) {
        let now = Instant::now();
        let mut finished = Vec::new();
        for (i, answer) in self.live.iter_mut().enumerate() {
            let played = self.playout.played_samples(answer.playout_id);
            if played > 0 {
                answer.first_played.get_or_insert(now);
            }
            if answer.done && played >= answer.enqueued {
                self.report.answers[answer.record].played_ms = samples_to_ms(played, WIRE_PCM_RATE);
                finished.push(i);
            }
        }
        for i in finished.into_iter().rev() {
            let answer = self.live.remove(i);
            let played_ms = self.report.answers[answer.record].played_ms;
            self.emit(TalkEvent::AnswerPlayedOut {
                response_id: answer.response_id.clone(),
                played_ms,
            });
            self.emit_latency(&answer);
        }
    }

    fn emit_latency(&mut self, answer: &LiveAnswer) {
        let since = |at: Option<Instant>| {
            let start = answer.speech_end?;
            Some(at?.saturating_duration_since(start).as_secs_f64() * 1000.0)
        };
        self.emit(TalkEvent::TurnLatency(TurnLatency {
            response_id: answer.response_id.clone(),
            endpoint_ms: since(answer.speech_stopped),
            first_token_ms: since(answer.first_text),
            first_audio_received_ms: since(answer.first_audio),
            v2v_ms: since(answer.first_played),
            server: answer.timings,
        }));
    }

    /// The report, with what was played of answers still live when the session ended.
    fn finish(mut self) -> TalkReport {
        for answer in &self.live {
            let played = self.playout.played_samples(answer.playout_id);
            self.report.answers[answer.record].played_ms = samples_to_ms(played, WIRE_PCM_RATE);
        }
        self.report
    }
}
