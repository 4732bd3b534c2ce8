//! The session driver: runs a [`LoadedScript`] over one WebSocket connection like a person at a
//! microphone, while receiving events and simulating playback of the answers.
//!
//! Two tasks share the connection:
//! - a **receiving task** reads the socket continuously (reading also answers the server's
//!   pings) and stamps every message with its arrival time before handing it over through a
//!   bounded queue, so a busy driver does not distort the timings;
//! - the **driver** sends one 20 ms frame per tick on a fixed schedule (frame *k* is due at
//!   origin + *k* × 20 ms, so lateness never accumulates), reacts to events (barge-in: stop the
//!   simulated playback and send `conversation.item.truncate`), and records the timeline.
//!
//! In `fast` mode utterances and pauses are sent back to back as fast as the socket takes them,
//! each utterance followed by [`SessionOptions::fast_trailing_silence`] of silence so the server's
//! VAD can end the turn; waiting for answers still streams silence at real-time pace.

use std::sync::Arc;
use std::time::Duration;

use parley_audio_io::constants::{WIRE_PCM_RATE, frame_samples};
use parley_protocol::events::SessionUpdate;
use parley_protocol::session::SessionConfig;
use parley_protocol::{
    ClientConfig, ClientEvent, ClientReceiver, ClientSender, CloseInfo, ProtocolError,
    RealtimeClient, ServerEvent, ServerItem,
};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::FRAME;
use crate::display::DisplayEvent;
use crate::error::ClientError;
use crate::script::{LoadedScript, LoadedStep, Utterance};
use crate::timeline::{BargeInPlan, FrameMarks, Recorder, SessionRecord};

/// Samples in one 20 ms frame at the wire rate.
const FRAME_SAMPLES: usize = frame_samples(WIRE_PCM_RATE);
/// Received messages waiting for the driver (about 20 s of 20 ms audio deltas). When full, the
/// receiving task waits and TCP flow control slows the server down; nothing is dropped.
const EVENT_QUEUE: usize = 1024;

/// How to connect and how to behave.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// `ws://HOST:PORT/v1/realtime` (see [`realtime_url`]).
    pub url: String,
    /// Sent as `Authorization: Bearer <key>`.
    pub api_key: Option<String>,
    /// Send audio as fast as possible (latencies are then not meaningful).
    pub fast: bool,
    /// Silence sent after each utterance in fast mode, so the VAD sees the end of the turn.
    pub fast_trailing_silence: Duration,
    /// A `session.update` to send first (instructions, voice, VAD settings, …); the driver
    /// waits for `session.updated` before streaming.
    pub session_update: Option<SessionConfig>,
    /// Keep the answer audio (for `--output reply.wav`); off saves memory in benches.
    pub keep_answer_audio: bool,
    /// TCP connect + WebSocket upgrade.
    pub connect_timeout: Duration,
    /// Waiting for `session.created` / `session.updated`.
    pub start_timeout: Duration,
    /// After the script: how long to keep receiving while the connection closes.
    pub close_timeout: Duration,
}

impl SessionOptions {
    /// Defaults: real-time pace, answer audio kept, 1 s fast-mode tail, 10 s connect and start
    /// timeouts, 2 s close timeout.
    pub fn new(url: impl Into<String>) -> Self {
        SessionOptions {
            url: url.into(),
            api_key: None,
            fast: false,
            fast_trailing_silence: Duration::from_millis(1000),
            session_update: None,
            keep_answer_audio: true,
            connect_timeout: Duration::from_secs(10),
            start_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
        }
    }
}

/// The WebSocket URL for `server`: a `ws://` URL is used as given, `HOST:PORT` becomes
/// `ws://HOST:PORT/v1/realtime`.
pub fn realtime_url(server: &str) -> String {
    if server.starts_with("ws://") || server.starts_with("wss://") {
        server.to_owned()
    } else {
        format!("ws://{}/v1/realtime", server.trim_end_matches('/'))
    }
}

/// Runs `script` in one session and returns what was measured. `on_event` receives the
/// [`DisplayEvent`]s as they happen (pass `&mut |_| {}` to ignore them).
///
/// `Err` only when the session could not start (connection refused, bad API key, server full,
/// session refused). Trouble later (the server closing, a send failing) ends the session early
/// with [`SessionRecord::failure`] set, keeping the turns measured so far.
pub async fn run_session(
    options: &SessionOptions,
    script: &LoadedScript,
    on_event: &mut (dyn FnMut(DisplayEvent) + Send),
) -> Result<SessionRecord, ClientError> {
    let config = ClientConfig {
        connect_timeout: options.connect_timeout,
        ..ClientConfig::default()
    };
    let client = RealtimeClient::connect_with(&options.url, options.api_key.clone(), config)
        .await
        .map_err(|e| ClientError::from_connect(&options.url, e))?;
    let (mut tx, rx) = client.split();
    let (queue_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let receiver = tokio::spawn(receive(rx, queue_tx));
    let mut session = Session {
        clock: Clock(Instant::now()),
        rec: Recorder::new(options.keep_answer_audio, options.fast),
        on_event,
    };
    let result = session.run(options, script, &mut tx, &mut events).await;
    // The receiving task ends by itself when the socket closes; after an early error it may
    // still be waiting on the socket.
    receiver.abort();
    result.map(|()| session.rec.into_record())
}

/// A message off the socket and when it arrived.
struct Received {
    at: Instant,
    item: Incoming,
}

enum Incoming {
    Item(Result<ServerItem, ProtocolError>),
    Closed(Option<CloseInfo>),
}

async fn receive(mut rx: ClientReceiver, out: mpsc::Sender<Received>) {
    while let Some(item) = rx.recv().await {
        let received = Received {
            at: Instant::now(),
            item: Incoming::Item(item),
        };
        if out.send(received).await.is_err() {
            return; // the driver is gone
        }
    }
    let closed = Received {
        at: Instant::now(),
        item: Incoming::Closed(rx.close_info().cloned()),
    };
    let _ = out.send(closed).await;
}

/// The session clock: times are durations since the connection was established.
#[derive(Debug, Clone, Copy)]
struct Clock(Instant);

impl Clock {
    fn at(&self, instant: Instant) -> Duration {
        instant.saturating_duration_since(self.0)
    }
}

/// Outcome of waiting for one event during the start of a session.
enum Awaited {
    Got,
    Error { code: String, message: String },
    Closed(Option<CloseInfo>),
    TimedOut,
}

struct Session<'a> {
    clock: Clock,
    rec: Recorder,
    on_event: &'a mut (dyn FnMut(DisplayEvent) + Send),
}

impl Session<'_> {
    fn flush_display(&mut self) {
        for event in self.rec.take_display() {
            (self.on_event)(event);
        }
    }

    async fn run(
        &mut self,
        options: &SessionOptions,
        script: &LoadedScript,
        tx: &mut ClientSender,
        events: &mut mpsc::Receiver<Received>,
    ) -> Result<(), ClientError> {
        let seconds = options.start_timeout.as_secs();
        match self
            .await_event(events, "session.created", options.start_timeout)
            .await
        {
            Awaited::Got => {}
            Awaited::Error { code, message } => {
                return Err(ClientError::SessionRefused { code, message });
            }
            Awaited::Closed(close) => return Err(ClientError::ClosedBeforeSession { close }),
            Awaited::TimedOut => {
                return Err(ClientError::NoAnswer {
                    event: "session.created",
                    seconds,
                });
            }
        }
        if let Some(update) = &options.session_update {
            let event = ClientEvent::SessionUpdate(SessionUpdate {
                event_id: Some("parley_client_session_update".to_owned()),
                session: Box::new(update.clone()),
            });
            tx.send(&event).await.map_err(ClientError::Send)?;
            match self
                .await_event(events, "session.updated", options.start_timeout)
                .await
            {
                Awaited::Got => {}
                Awaited::Error { code, message } => {
                    return Err(ClientError::SessionUpdateRejected { code, message });
                }
                Awaited::Closed(close) => return Err(ClientError::ClosedBeforeSession { close }),
                Awaited::TimedOut => {
                    return Err(ClientError::NoAnswer {
                        event: "session.updated",
                        seconds,
                    });
                }
            }
        }

        let finished = self.stream(options, script, tx, events).await;
        if finished {
            // Ask the server to close, and keep recording what it still sends meanwhile
            // (late transcripts, the end of an answer).
            let _ = tx.close(1000, "script finished").await;
            let deadline = Instant::now() + options.close_timeout;
            while let Ok(Some(received)) = tokio::time::timeout_at(deadline, events.recv()).await {
                if let Incoming::Closed(_) = received.item {
                    break;
                }
                // Replies (truncates) cannot be sent any more: the script is over.
                let _ = self.record(received);
            }
        } else {
            let _ = tx.close(1000, "session failed").await;
        }
        self.flush_display();
        Ok(())
    }

    /// Waits for an event of type `wanted`, recording everything that arrives meanwhile. An
    /// `error` event first means the server refused.
    async fn await_event(
        &mut self,
        events: &mut mpsc::Receiver<Received>,
        wanted: &str,
        timeout: Duration,
    ) -> Awaited {
        let deadline = Instant::now() + timeout;
        loop {
            let received = match tokio::time::timeout_at(deadline, events.recv()).await {
                Err(_) => return Awaited::TimedOut,
                Ok(None) => return Awaited::Closed(None),
                Ok(Some(received)) => received,
            };
            let at = self.clock.at(received.at);
            match received.item {
                Incoming::Closed(close) => return Awaited::Closed(close),
                Incoming::Item(Ok(ServerItem::Event(event))) => {
                    let _ = self.rec.on_event(at, &event);
                    self.flush_display();
                    if event.event_type() == wanted {
                        return Awaited::Got;
                    }
                    if let ServerEvent::Error(e) = event {
                        return Awaited::Error {
                            code: e.error.code.unwrap_or(e.error.error_type),
                            message: e.error.message,
                        };
                    }
                }
                Incoming::Item(_) => self.rec.note_skipped_message(),
            }
        }
    }

    /// Records one received message; returns the replies to send, or why the session ended.
    fn record(&mut self, received: Received) -> Result<Vec<ClientEvent>, String> {
        let at = self.clock.at(received.at);
        let replies = match received.item {
            Incoming::Item(Ok(ServerItem::Event(event))) => self.rec.on_event(at, &event),
            // Binary audio is never negotiated by this client; unknown event types are skipped.
            Incoming::Item(Ok(ServerItem::Audio(_)) | Err(_)) => {
                self.rec.note_skipped_message();
                Vec::new()
            }
            Incoming::Closed(close) => {
                return Err(match close {
                    Some(c) => format!(
                        "the server closed the connection (code {}: {})",
                        c.code, c.reason
                    ),
                    None => "the connection ended without a close frame".to_owned(),
                });
            }
        };
        self.flush_display();
        Ok(replies)
    }

    /// Streams the script; true when it ran to its end, false when the session failed.
    async fn stream(
        &mut self,
        options: &SessionOptions,
        script: &LoadedScript,
        tx: &mut ClientSender,
        events: &mut mpsc::Receiver<Received>,
    ) -> bool {
        let tail_frames = frames_in(options.fast_trailing_silence);
        let mut cursor = Cursor::new(&script.steps, options.fast, tail_frames);
        let mut next_send = Instant::now();
        loop {
            tokio::select! {
                received = events.recv() => {
                    let Some(received) = received else {
                        self.rec.set_failure("the connection ended".to_owned());
                        return false;
                    };
                    let replies = match self.record(received) {
                        Ok(replies) => replies,
                        Err(why) => {
                            self.rec.set_failure(why);
                            return false;
                        }
                    };
                    for reply in replies {
                        if let Err(e) = tx.send(&reply).await {
                            self.rec.set_failure(format!("sending {} failed: {e}", reply.event_type()));
                            return false;
                        }
                    }
                }
                () = tokio::time::sleep_until(next_send) => {
                    let now = self.clock.at(Instant::now());
                    let Some(frame) = cursor.next_frame(&mut self.rec, now) else {
                        return true;
                    };
                    if let Err(e) = tx.send(&ClientEvent::append_audio(&frame.samples)).await {
                        self.rec.set_failure(format!("sending audio failed: {e}"));
                        return false;
                    }
                    let sent_instant = Instant::now();
                    let sent = self.clock.at(sent_instant);
                    let scheduled = if frame.burst { sent } else { self.clock.at(next_send) };
                    self.rec.frame_sent(sent, scheduled, frame.samples.len(), &frame.marks);
                    self.flush_display();
                    // Fixed schedule: the next frame is due one period after this one was due,
                    // however late this one went out. After a burst the schedule restarts now.
                    next_send = if frame.burst { sent_instant } else { next_send + FRAME };
                }
            }
        }
    }
}

/// Whole frames covering `d` (rounded up).
fn frames_in(d: Duration) -> u64 {
    d.as_nanos().div_ceil(FRAME.as_nanos()) as u64
}

/// One frame of input audio.
struct Frame {
    samples: Vec<f32>,
    /// Send right away (fast mode) instead of on the real-time schedule.
    burst: bool,
    marks: FrameMarks,
}

enum Phase {
    /// Between steps.
    Idle,
    Speaking {
        utterance: Arc<Utterance>,
        pos: usize,
        barge_in: Option<BargeInPlan>,
    },
    Silence {
        frames_left: u64,
        burst: bool,
    },
    WaitingForAnswer {
        deadline: Duration,
    },
    WaitingToBargeIn {
        after: Duration,
        utterance: Arc<Utterance>,
        deadline: Duration,
    },
}

/// Walks the script one frame at a time. Decisions that depend on the conversation (is the
/// answer done? how much has played?) ask the [`Recorder`] at the current time.
struct Cursor<'a> {
    steps: &'a [LoadedStep],
    next_step: usize,
    phase: Phase,
    fast: bool,
    tail_frames: u64,
}

impl<'a> Cursor<'a> {
    fn new(steps: &'a [LoadedStep], fast: bool, tail_frames: u64) -> Self {
        Cursor {
            steps,
            next_step: 0,
            phase: Phase::Idle,
            fast,
            tail_frames,
        }
    }

    /// The frame to send at session time `now`; `None` when the script is over.
    fn next_frame(&mut self, rec: &mut Recorder, now: Duration) -> Option<Frame> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Idle) {
                Phase::Idle => {
                    let step = self.steps.get(self.next_step)?;
                    self.next_step += 1;
                    self.phase = match step {
                        LoadedStep::Say(utterance) => Phase::Speaking {
                            utterance: utterance.clone(),
                            pos: 0,
                            barge_in: None,
                        },
                        LoadedStep::Pause(d) => Phase::Silence {
                            frames_left: frames_in(*d),
                            burst: self.fast,
                        },
                        LoadedStep::WaitForAnswer { timeout } => Phase::WaitingForAnswer {
                            deadline: now + *timeout,
                        },
                        LoadedStep::BargeIn {
                            after,
                            utterance,
                            timeout,
                        } => Phase::WaitingToBargeIn {
                            after: *after,
                            utterance: utterance.clone(),
                            deadline: now + *timeout,
                        },
                    };
                }
                Phase::Speaking {
                    utterance,
                    pos,
                    barge_in,
                } => {
                    let end = (pos + FRAME_SAMPLES).min(utterance.samples.len());
                    let mut samples = utterance.samples[pos..end].to_vec();
                    samples.resize(FRAME_SAMPLES, 0.0); // the last frame is padded with silence
                    let last = utterance.speech.last_sample;
                    let marks = FrameMarks {
                        starts: (pos == 0).then(|| (utterance.clone(), barge_in)),
                        last_speech: (pos..end).contains(&last),
                        ends: end == utterance.samples.len(),
                    };
                    self.phase = if marks.ends {
                        if self.fast {
                            Phase::Silence {
                                frames_left: self.tail_frames,
                                burst: true,
                            }
                        } else {
                            Phase::Idle
                        }
                    } else {
                        Phase::Speaking {
                            utterance,
                            pos: end,
                            barge_in,
                        }
                    };
                    return Some(Frame {
                        samples,
                        burst: self.fast,
                        marks,
                    });
                }
                Phase::Silence { frames_left, burst } => {
                    if frames_left == 0 {
                        continue; // phase is Idle now
                    }
                    self.phase = Phase::Silence {
                        frames_left: frames_left - 1,
                        burst,
                    };
                    return Some(silence(burst));
                }
                Phase::WaitingForAnswer { deadline } => {
                    if rec.answer_complete(now) {
                        continue;
                    }
                    if now >= deadline {
                        rec.mark_timed_out();
                        continue;
                    }
                    self.phase = Phase::WaitingForAnswer { deadline };
                    return Some(silence(false));
                }
                Phase::WaitingToBargeIn {
                    after,
                    utterance,
                    deadline,
                } => {
                    let progress = rec.answer_progress(now);
                    let reached = progress.is_some_and(|p| p.played >= after);
                    let missed = !reached && (progress.is_some_and(|p| p.over) || now >= deadline);
                    if reached || missed {
                        let played_at_start = progress.map_or(Duration::ZERO, |p| p.played);
                        self.phase = Phase::Speaking {
                            utterance,
                            pos: 0,
                            barge_in: Some(BargeInPlan {
                                after,
                                played_at_start,
                                missed,
                            }),
                        };
                        continue;
                    }
                    self.phase = Phase::WaitingToBargeIn {
                        after,
                        utterance,
                        deadline,
                    };
                    return Some(silence(false));
                }
            }
        }
    }
}

fn silence(burst: bool) -> Frame {
    Frame {
        samples: vec![0.0; FRAME_SAMPLES],
        burst,
        marks: FrameMarks::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_protocol::{Pcm16Audio, parse_server_event};
    use serde_json::json;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    /// `len_ms` of tone with 200 ms of silence at the end.
    fn utterance(name: &str, len_ms: usize) -> Arc<Utterance> {
        let n = len_ms * 24;
        let mut samples: Vec<f32> = (0..n - 4800)
            .map(|i| 0.3 * (i as f32 * 0.05).sin())
            .collect();
        samples.resize(n, 0.0);
        Arc::new(Utterance::from_samples(name.into(), samples).unwrap())
    }

    fn ev(mut value: serde_json::Value) -> ServerEvent {
        value["event_id"] = json!("evt");
        parse_server_event(&value.to_string()).unwrap()
    }

    /// Runs the cursor on a fake clock, one tick per 20 ms, injecting `events` at their times.
    /// Returns the (time, frame) pairs sent.
    fn run(
        steps: &[LoadedStep],
        fast: bool,
        rec: &mut Recorder,
        mut events: Vec<(Duration, ServerEvent)>,
    ) -> Vec<(Duration, bool, FrameMarks)> {
        let mut cursor = Cursor::new(steps, fast, 5);
        let mut sent = Vec::new();
        events.reverse();
        for k in 0..10_000u64 {
            let now = ms(20 * k);
            while events.last().is_some_and(|(at, _)| *at <= now) {
                let (at, event) = events.pop().unwrap();
                rec.on_event(at, &event);
            }
            let Some(frame) = cursor.next_frame(rec, now) else {
                return sent;
            };
            assert_eq!(frame.samples.len(), FRAME_SAMPLES);
            rec.frame_sent(now, now, frame.samples.len(), &frame.marks);
            sent.push((now, frame.burst, frame.marks));
        }
        panic!("the script never ended");
    }

    #[test]
    fn barge_in_starts_when_enough_of_the_answer_has_played_and_waits_time_out() {
        let question = utterance("q.wav", 1000);
        let interruption = utterance("mm.wav", 400);
        let steps = vec![
            LoadedStep::Say(question.clone()),
            LoadedStep::BargeIn {
                after: ms(500),
                utterance: interruption.clone(),
                timeout: ms(10_000),
            },
            LoadedStep::WaitForAnswer { timeout: ms(300) },
        ];
        let audio = Pcm16Audio::from_samples(&[0.2; 48_000]).to_base64(); // 2 s
        let events = vec![
            (
                ms(1200),
                ev(
                    json!({"type": "response.created", "response": {"id": "r1", "status": "in_progress"}}),
                ),
            ),
            (
                ms(1300),
                ev(
                    json!({"type": "response.output_audio.delta", "response_id": "r1", "item_id": "a1",
                "output_index": 0, "content_index": 0, "delta": audio}),
                ),
            ),
        ];
        let mut rec = Recorder::new(false, false);
        let sent = run(&steps, false, &mut rec, events);

        // 1 s question (50 frames), silence until 500 ms of the answer played (1300 + 500),
        // 400 ms interruption (20 frames), then 300 ms of waiting (15 frames) that times out.
        let turns = &rec.record().turns;
        assert_eq!(turns.len(), 2);
        assert_eq!(turns[0].started_at, ms(0));
        assert_eq!(turns[0].last_speech_sent_at, ms(780).into());
        assert_eq!(turns[1].started_at, ms(1800));
        let plan = turns[1].barge_in.unwrap();
        assert_eq!(plan.played_at_start, ms(500));
        assert!(!plan.missed);
        assert_eq!(turns[1].ended_at, Some(ms(2180)));
        assert!(turns[1].timed_out);
        assert!(!turns[0].timed_out);
        assert_eq!(sent.last().unwrap().0, ms(2480));
        assert_eq!(
            sent.len(),
            125,
            "one frame every 20 ms from 0 to 2480 ms: silence, never gaps"
        );
        assert!(sent.iter().all(|(_, burst, _)| !burst));
    }

    #[test]
    fn a_barge_in_is_missed_when_the_answer_ends_first() {
        let question = utterance("q.wav", 600);
        let steps = vec![
            LoadedStep::Say(question.clone()),
            LoadedStep::BargeIn {
                after: ms(5000),
                utterance: question.clone(),
                timeout: ms(10_000),
            },
        ];
        let audio = Pcm16Audio::from_samples(&[0.2; 4800]).to_base64(); // 200 ms
        let events = vec![
            (
                ms(700),
                ev(
                    json!({"type": "response.output_audio.delta", "response_id": "r1", "item_id": "a1",
                "output_index": 0, "content_index": 0, "delta": audio}),
                ),
            ),
            (
                ms(720),
                ev(
                    json!({"type": "response.done", "response": {"id": "r1", "status": "completed"}}),
                ),
            ),
        ];
        let mut rec = Recorder::new(false, false);
        run(&steps, false, &mut rec, events);
        let turns = &rec.record().turns;
        assert_eq!(
            turns[1].started_at,
            ms(900),
            "as soon as the 200 ms answer finished playing"
        );
        let plan = turns[1].barge_in.unwrap();
        assert!(plan.missed);
        assert_eq!(plan.played_at_start, ms(200));
    }

    #[test]
    fn fast_mode_bursts_speech_and_its_tail_but_waits_in_real_time() {
        let question = utterance("q.wav", 400);
        let steps = vec![
            LoadedStep::Say(question),
            LoadedStep::Pause(ms(100)),
            LoadedStep::WaitForAnswer { timeout: ms(100) },
        ];
        let mut rec = Recorder::new(false, true);
        let sent = run(&steps, true, &mut rec, Vec::new());
        let bursts: Vec<bool> = sent.iter().map(|(_, b, _)| *b).collect();
        // 20 speech frames + 5 tail frames + 5 pause frames burst; 5 waiting frames do not.
        assert_eq!(bursts.len(), 35);
        assert!(bursts[..30].iter().all(|b| *b));
        assert!(bursts[30..].iter().all(|b| !*b));
    }

    #[test]
    fn urls_are_completed_from_host_and_port() {
        assert_eq!(
            realtime_url("127.0.0.1:8080"),
            "ws://127.0.0.1:8080/v1/realtime"
        );
        assert_eq!(realtime_url("localhost:9/"), "ws://localhost:9/v1/realtime");
        assert_eq!(realtime_url("ws://h:1/x?model=m"), "ws://h:1/x?model=m");
    }
}
