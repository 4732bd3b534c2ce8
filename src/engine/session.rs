//! One conversation: the session thread that listens, decides turns and paces the answer.
//!
//! ```text
//!  client --ClientItem--> session thread: 24k -> 16k, Silero VAD, endpointer, TurnTaking,
//!                         Whisper (speculative at the first silence)
//!                              | ThinkerCommand            ^ WorkerEvent / TalkerOutput
//!                              v                           |
//!                         thinker thread --tokens--> talker thread
//!  client <--ServerItem-- session thread (events; audio paced `audio_lead_ms` ahead of real time)
//! ```
//!
//! The session thread owns all per-session state except the models' own (KV cache, Talker
//! state), which live on the model threads. It never runs the LLM or the TTS, so it keeps
//! hearing the user while parley speaks: barge-in is decided here and cancels the response's
//! epoch, which both model threads check before every step.
//!
//! Audio goes out as fast as it is produced up to `audio_lead_ms` ahead of the listener's
//! playout clock (which starts with the first sample sent), then at real time. That bounds what
//! a client buffers, and gives the server its own estimate of what was heard when the client
//! does not send `conversation.item.truncate`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, select};
use parley_audio_io::constants::{MODEL_INPUT_RATE, MODEL_OUTPUT_RATE, WIRE_PCM_RATE};
use parley_audio_io::opus_codec::{OpusDecoder, OpusEncoder};
use parley_audio_io::resample::StreamResampler;
use parley_protocol::binary::FrameKind;
use parley_protocol::conversation::{ContentPart, ConversationItem, ItemStatus, MessageItem, Role};
use parley_protocol::error::INVALID_REQUEST_ERROR;
use parley_protocol::events::{
    ClientEvent, ConversationItemAdded, ConversationItemDone, ConversationItemTruncated,
    ErrorDetails, ErrorEvent, InputAudioBufferCleared, InputAudioBufferCommitted,
    InputAudioBufferSpeechStarted, InputAudioBufferSpeechStopped, InputAudioTranscriptionCompleted,
    InputAudioTranscriptionDelta, ResponseCreated, ResponseDone, ResponseOutputAudioDelta,
    ResponseOutputAudioDone, ResponseOutputAudioTranscriptDelta, ResponseOutputAudioTranscriptDone,
    SessionCreated, SessionUpdated,
};
use parley_protocol::response::{
    ParleyResponseInfo, ResponseObject, ResponseStatus, StatusDetails, StatusReason, TurnTimings,
};
use parley_protocol::session::SessionConfig;
use parley_protocol::{
    AudioFrame, BinaryCodec, ClientItem, IdGenerator, Pcm16Audio, ServerEvent, ServerItem,
};
use parley_thinker::seam::StopReason;
use parley_thinker::stream::{Cancel, CancelGuard, StreamingModule};
use parley_thinker::vad::{EndpointEvent, Endpointer, SileroVad, VadWindow};
use parley_thinker::whisper::SpeculativeTranscriber;
use tracing::{debug, info, warn};

use super::metrics::{EngineMetrics, Stage};
use super::settings::{EngineDefaults, Settings, initial_session};
use super::turn::{TurnAction, TurnTaking};
use super::workers::{TalkerOutput, ThinkerCommand, UserTurn, WorkerEvent, Workers};

/// 16 kHz audio kept before a turn starts (covers prefix padding + the endpointer's wait).
const IDLE_HISTORY_MS: u64 = 2_000;
/// How long the session sleeps at most between looks at the clock while audio is due.
const PACING_TICK: Duration = Duration::from_millis(10);
/// Arrival times kept to map input stream positions to wall-clock time (~20 s of 20 ms frames).
const ARRIVALS_KEPT: usize = 1024;
/// Silence after the end of speech included in what Whisper transcribes: cut right at the last
/// phoneme, it sometimes repeats the first word at the end ("... does a spider have how").
const TRANSCRIBE_TAIL_MS: u64 = 150;
/// Conversation items kept for `conversation.item.retrieve` (the newest).
const ITEMS_KEPT: usize = 64;

/// Who turns the user's speech into something the Thinker takes.
pub enum Ears {
    /// Whisper transcribes each turn (speculatively at the first silence); the Thinker reads text.
    Transcriber(Box<SpeculativeTranscriber>),
    /// The Thinker hears the audio itself (Qwen2.5-Omni): each turn's speech goes to it while
    /// the user talks, and the user item has no transcript.
    Thinker,
}

/// A spoken turn on its way to a Thinker that hears audio.
#[derive(Debug, Clone, Copy)]
struct SpokenTurn {
    /// `BeginSpokenTurn` went out.
    begun: bool,
    /// 16 kHz stream position up to which the speech was sent.
    sent_to: u64,
    /// Committed without an answer (`create_response: false`): it waits for `response.create`,
    /// and speech that follows joins it.
    committed: bool,
}

/// Speech sent to a hearing Thinker in pieces of at least this many 16 kHz samples (0.2 s):
/// fewer, larger commands; its encoder works in 2 s blocks anyway.
const SPEECH_PIECE: u64 = 3_200;

/// Where the session's output goes (the WebSocket writer, or a local player).
pub trait Outbox: Send + 'static {
    /// Delivers one item in order; `Err` once the client is gone.
    fn send(&mut self, item: ServerItem) -> Result<(), OutboxClosed>;
}

/// The client is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxClosed;

/// What the transport hands the session.
#[derive(Debug)]
pub enum SessionInput {
    Client(ClientItem),
    /// The server is shutting down: cancel what runs and end.
    Shutdown,
}

/// A response in progress, or still playing out at the listener.
struct ActiveResponse {
    seq: u64,
    /// Started on the speculative transcript at the first silence, before the endpoint: nothing
    /// of it is sent until the turn is committed (`confirm_tentative`); if the user goes on, it
    /// is cancelled and the Thinker forgets the turn.
    tentative: bool,
    id: String,
    item_id: String,
    guard: CancelGuard,
    /// The answer's text as generated.
    text: String,
    tokens: usize,
    thinker_done: Option<StopReason>,
    talker_done: bool,
    failed: Option<String>,
    /// `response.done` went out; the audio may still be playing at the listener.
    done_sent: bool,
    /// Samples (24 kHz) sent, and when the first one was.
    sent_samples: u64,
    first_audio_at: Option<Instant>,
    /// Phrase spans of the audio sent, for mapping "heard up to sample n" to text.
    spans: Vec<SpokenSpan>,
    talker_compute: Duration,
    /// The listener's playout ran out of audio (the Talker fell behind real time); counted once
    /// per gap.
    underruns: u32,
    in_underrun: bool,
    /// Binary output: Opus encoder and a partial frame.
    opus: Option<(OpusEncoder, Vec<f32>)>,
    stream_id: u32,
    timing: TurnClock,
}

/// Audio samples `[start, end)` of a response speak `text`, a phrase `total` samples long (the
/// span grows as its chunks are sent).
#[derive(Debug, Clone, PartialEq)]
struct SpokenSpan {
    start: u64,
    end: u64,
    text: String,
    total: u64,
}

/// Wall-clock points of one turn.
#[derive(Debug, Clone, Copy, Default)]
struct TurnClock {
    speech_end: Option<Instant>,
    endpoint: Option<Instant>,
    transcript: Option<Instant>,
    answer_started: Option<Instant>,
    first_token: Option<Instant>,
    first_audio: Option<Instant>,
}

impl TurnClock {
    fn timings(&self, audio_ms: f64, tokens: usize, talker_rtf: Option<f64>) -> TurnTimings {
        let since = |t: Option<Instant>| {
            Some(t?.saturating_duration_since(self.speech_end?).as_secs_f64() * 1e3)
        };
        TurnTimings {
            endpoint_ms: since(self.endpoint),
            transcribe_ms: since(self.transcript),
            answer_started_ms: since(self.answer_started),
            first_token_ms: since(self.first_token),
            first_audio_ms: since(self.first_audio),
            talker_rtf,
            audio_ms,
            tokens: tokens as u64,
        }
    }
}

/// The last assistant item, which `conversation.item.truncate` may shorten.
struct LastAnswer {
    item_id: String,
    /// The answer as generated (not as truncated).
    text: String,
    sent_samples: u64,
    spans: Vec<SpokenSpan>,
    /// All of the answer's audio was produced (it was not cut short).
    complete: bool,
}

/// One session's state (see the module doc).
pub struct Session<O: Outbox> {
    name: String,
    out: O,
    ids: IdGenerator,
    defaults: EngineDefaults,
    config: SessionConfig,
    settings: Settings,
    metrics: EngineMetrics,

    resampler: StreamResampler,
    opus_in: Option<OpusDecoder>,
    vad: SileroVad,
    endpointer: Option<Endpointer>,
    turns: TurnTaking,
    ears: Ears,
    /// The spoken turn going to a Thinker that hears audio.
    spoken: Option<SpokenTurn>,
    /// 16 kHz input audio from stream sample `input_start` on.
    input: Vec<f32>,
    input_start: u64,
    /// (16 kHz stream position after a chunk, when the chunk arrived).
    arrivals: VecDeque<(u64, Instant)>,
    /// The user item being spoken, and where its audio starts.
    user_item: Option<(String, u64)>,
    /// Speech ended here (ms); transcribe speculatively once the tail after it has arrived.
    pending_speculation: Option<u64>,
    last_item_id: Option<String>,
    /// The newest conversation items as the history holds them.
    items: VecDeque<ConversationItem>,
    /// Text of user items added with `conversation.item.create`, answered by `response.create`.
    pending_user_text: Vec<String>,

    workers: Workers,
    cancel: Cancel,
    response_seq: u64,
    response: Option<ActiveResponse>,
    last_answer: Option<LastAnswer>,
    out_sequence: u32,
    stream_ids: u32,
    closed: bool,
    /// The server is shutting down: finish the current answer, start no new one, then end.
    draining: bool,
}

impl<O: Outbox> Session<O> {
    /// A session over fresh per-session model state. `workers` runs its Thinker and Talker.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: String,
        out: O,
        model: Option<String>,
        defaults: EngineDefaults,
        metrics: EngineMetrics,
        vad: SileroVad,
        ears: Ears,
        workers: Workers,
    ) -> anyhow::Result<Self> {
        let ids = IdGenerator::new();
        let config = initial_session(ids.next("sess"), model, &defaults);
        let settings = Settings::from_config(&config, &defaults)
            .map_err(|e| anyhow::anyhow!("the server's session defaults are invalid: {e}"))?;
        let endpoint = settings.endpoint.clone().unwrap_or_default();
        let endpointer = settings.endpoint.clone().map(Endpointer::new).transpose()?;
        Ok(Self {
            name,
            out,
            ids,
            turns: TurnTaking::new(
                settings.min_interrupt_speech_ms,
                endpoint.prefix_padding_ms,
                endpoint.min_speech_ms,
            ),
            defaults,
            config,
            settings,
            metrics,
            resampler: StreamResampler::new(WIRE_PCM_RATE, MODEL_INPUT_RATE)?,
            opus_in: None,
            vad,
            endpointer,
            ears,
            spoken: None,
            input: Vec::new(),
            input_start: 0,
            arrivals: VecDeque::new(),
            user_item: None,
            pending_speculation: None,
            last_item_id: None,
            items: VecDeque::new(),
            pending_user_text: Vec::new(),
            workers,
            cancel: Cancel::new(),
            response_seq: 0,
            response: None,
            last_answer: None,
            out_sequence: 0,
            stream_ids: 0,
            closed: false,
            draining: false,
        })
    }

    /// Runs the session until the client leaves or the server shuts down; then cancels what
    /// runs and joins the model threads.
    pub fn run(mut self, input: Receiver<SessionInput>) {
        let created = ServerEvent::SessionCreated(SessionCreated {
            event_id: self.ids.next("event"),
            session: Box::new(self.config.clone()),
        });
        self.send(created);
        let events = self.workers.events.clone();
        while !self.closed {
            let timeout = self.next_wakeup();
            select! {
                recv(input) -> item => match item {
                    Ok(SessionInput::Client(item)) => self.on_client(item),
                    Ok(SessionInput::Shutdown) => {
                        info!("{}: server shutting down; finishing the current answer", self.name);
                        self.draining = true;
                    }
                    Err(_) => break,
                },
                recv(events) -> event => match event {
                    Ok(event) => self.on_worker(event),
                    Err(_) => break,
                },
                default(timeout) => {}
            }
            self.pump_audio();
            self.check_playout_end();
            if self.draining
                && self
                    .response
                    .as_ref()
                    .is_none_or(|r| r.done_sent || r.tentative)
            {
                break;
            }
        }
        // Cancel whatever runs so the model threads return at their next step, then end them.
        self.cancel.cancel_all();
        let Session { workers, name, .. } = self;
        workers.shut_down();
        debug!("{name}: ended");
    }

    /// How long to wait for input before looking at the audio pacing again.
    fn next_wakeup(&self) -> Duration {
        match &self.response {
            Some(r) if !r.done_sent || r.first_audio_at.is_some() => PACING_TICK,
            _ => Duration::from_millis(250),
        }
    }

    fn send(&mut self, item: impl Into<ServerItem>) {
        if self.closed {
            return;
        }
        if self.out.send(item.into()).is_err() {
            self.closed = true;
        }
    }

    fn error(&mut self, code: &str, message: String, event_id: Option<String>) {
        let event = ServerEvent::Error(ErrorEvent {
            event_id: self.ids.next("event"),
            error: ErrorDetails {
                error_type: INVALID_REQUEST_ERROR.to_string(),
                code: Some(code.to_string()),
                message,
                param: None,
                event_id,
            },
        });
        self.send(event);
    }

    fn server_error(&mut self, message: String) {
        warn!("{}: {message}", self.name);
        let event = ServerEvent::Error(ErrorEvent {
            event_id: self.ids.next("event"),
            error: ErrorDetails {
                error_type: "server_error".to_string(),
                code: None,
                message,
                param: None,
                event_id: None,
            },
        });
        self.send(event);
    }

    // ---------------------------------------------------------------------------------------
    // Client input

    fn on_client(&mut self, item: ClientItem) {
        match item {
            ClientItem::Audio(frame) => self.on_binary_audio(frame),
            ClientItem::Event(event) => self.on_event(event),
        }
    }

    fn on_binary_audio(&mut self, frame: AudioFrame) {
        let mut samples = Vec::new();
        let result = match frame.kind {
            FrameKind::Pcm16 => frame
                .append_pcm16_samples(&mut samples)
                .map_err(|e| e.to_string()),
            FrameKind::Opus => {
                let decoder = match &mut self.opus_in {
                    Some(d) => d,
                    None => match OpusDecoder::new(WIRE_PCM_RATE) {
                        Ok(d) => self.opus_in.insert(d),
                        Err(e) => return self.server_error(format!("opus decoder: {e}")),
                    },
                };
                decoder
                    .decode(frame.sequence, &frame.payload, &mut samples)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }
            FrameKind::EndOfAudio => return,
        };
        match result {
            Ok(()) => self.on_audio(&samples),
            Err(e) => self.error("invalid_audio", format!("binary audio frame: {e}"), None),
        }
    }

    fn on_event(&mut self, event: ClientEvent) {
        match event {
            ClientEvent::InputAudioBufferAppend(append) => {
                let mut samples = Vec::with_capacity(append.audio.sample_count());
                append.audio.append_samples(&mut samples);
                self.on_audio(&samples);
            }
            ClientEvent::SessionUpdate(update) => {
                let mut config = self.config.clone();
                config.apply_update(*update.session);
                match Settings::from_config(&config, &self.defaults) {
                    Ok(settings) => self.apply_settings(config, settings),
                    Err(message) => self.error("invalid_value", message, update.event_id),
                }
            }
            ClientEvent::InputAudioBufferCommit(commit) => {
                if self.settings.endpoint.is_some() && self.user_item.is_none() {
                    return self.error(
                        "input_audio_buffer_commit_empty",
                        "nothing to commit: no speech in the buffer".to_string(),
                        commit.event_id,
                    );
                }
                let end_ms = self.stream_ms();
                if self.user_item.is_none() {
                    // Turn detection off: the whole buffer is the turn.
                    let item_id = self.ids.next("item");
                    self.user_item = Some((item_id, self.input_start));
                }
                self.commit_turn(end_ms);
            }
            ClientEvent::InputAudioBufferClear(_) => {
                self.abandon_tentative();
                self.input.clear();
                self.input_start = self.stream_position();
                self.user_item = None;
                self.drop_spoken_turn();
                if let Ears::Transcriber(ears) = &mut self.ears {
                    ears.speech_resumed();
                }
                let event = ServerEvent::InputAudioBufferCleared(InputAudioBufferCleared {
                    event_id: self.ids.next("event"),
                });
                self.send(event);
            }
            ClientEvent::ConversationItemCreate(create) => self.on_item_create(create),
            ClientEvent::ConversationItemTruncate(truncate) => self.on_truncate(truncate),
            ClientEvent::ConversationItemRetrieve(retrieve) => {
                let found = self
                    .items
                    .iter()
                    .find(|item| item.id() == Some(retrieve.item_id.as_str()))
                    .cloned();
                match found {
                    Some(item) => {
                        let event = ServerEvent::ConversationItemRetrieved(
                            parley_protocol::events::ConversationItemRetrieved {
                                event_id: self.ids.next("event"),
                                item,
                            },
                        );
                        self.send(event);
                    }
                    None => self.error(
                        "item_not_found",
                        format!("no item {} in the recent conversation", retrieve.item_id),
                        retrieve.event_id,
                    ),
                }
            }
            ClientEvent::ConversationItemDelete(delete) => self.error(
                "unsupported",
                "conversation.item.delete is not supported: the conversation lives in the model's \
                 KV cache"
                    .to_string(),
                delete.event_id,
            ),
            ClientEvent::ResponseCreate(create) => {
                if self.response.as_ref().is_some_and(|r| !r.done_sent) {
                    return self.error(
                        "conversation_already_has_active_response",
                        "a response is in progress; cancel it first".to_string(),
                        create.event_id,
                    );
                }
                if self.spoken.is_some_and(|t| t.committed) {
                    // The committed speech (and any that followed) is the turn.
                    self.feed_spoken_turn(Some(self.stream_position()));
                    self.spoken = None;
                    self.user_item = None;
                    self.finish_playing_response();
                    return self.start_response(UserTurn::Spoken, TurnClock::default(), false);
                }
                if self.pending_user_text.is_empty() {
                    return self.error(
                        "nothing_to_answer",
                        "response.create needs a new user item (speech or conversation.item.create)"
                            .to_string(),
                        create.event_id,
                    );
                }
                let text = std::mem::take(&mut self.pending_user_text).join("\n");
                self.finish_playing_response();
                self.start_response(UserTurn::Text(text), TurnClock::default(), false);
            }
            ClientEvent::ResponseCancel(cancel) => {
                let active = self.response.as_ref().filter(|r| !r.done_sent);
                match active {
                    Some(r)
                        if cancel
                            .response_id
                            .as_deref()
                            .is_none_or(|id| id == r.id.as_str()) =>
                    {
                        self.cancel_response(StatusReason::ClientCancelled, None);
                        for action in self.turns.response_finished() {
                            self.act(action);
                        }
                    }
                    _ => self.error(
                        "response_cancel_not_active",
                        "no response is in progress".to_string(),
                        cancel.event_id,
                    ),
                }
            }
        }
    }

    fn apply_settings(&mut self, mut config: SessionConfig, settings: Settings) {
        // The voice as the Talker spells it ("ethan" -> "Ethan").
        if let Some(output) = config.audio.as_mut().and_then(|a| a.output.as_mut())
            && output.voice.is_some()
        {
            output.voice = Some(parley_protocol::session::Voice::Named(
                settings.voice.clone(),
            ));
        }
        if settings.endpoint != self.settings.endpoint {
            // A new endpointer starts idle; an open user turn is dropped with it.
            self.endpointer = match settings.endpoint.clone().map(Endpointer::new).transpose() {
                Ok(e) => e,
                Err(e) => return self.error("invalid_value", e.to_string(), None),
            };
            self.user_item = None;
            self.drop_spoken_turn();
        }
        let endpoint = settings.endpoint.clone().unwrap_or_default();
        self.turns.configure(
            settings.min_interrupt_speech_ms,
            endpoint.prefix_padding_ms,
            endpoint.min_speech_ms,
        );
        let thinker_changed = settings.instructions != self.settings.instructions
            || settings.temperature != self.settings.temperature
            || settings.top_p != self.settings.top_p
            || settings.max_output_tokens != self.settings.max_output_tokens;
        if thinker_changed {
            let config = super::thinker_config(&settings);
            if self
                .workers
                .commands
                .send(ThinkerCommand::Configure(config))
                .is_err()
            {
                self.closed = true;
            }
        }
        if settings.voice != self.settings.voice
            && self
                .workers
                .commands
                .send(ThinkerCommand::Voice(settings.voice.clone()))
                .is_err()
        {
            self.closed = true;
        }
        self.settings = settings;
        self.config = config;
        let event = ServerEvent::SessionUpdated(SessionUpdated {
            event_id: self.ids.next("event"),
            session: Box::new(self.config.clone()),
        });
        self.send(event);
    }

    fn on_item_create(&mut self, create: parley_protocol::events::ConversationItemCreate) {
        let ConversationItem::Message(message) = &create.item;
        if self.spoken.is_some_and(|t| t.committed) {
            return self.error(
                "conversation_already_has_pending_speech",
                "a committed spoken turn waits for response.create; answer it before adding text"
                    .to_string(),
                create.event_id,
            );
        }
        if message.role != Role::User {
            return self.error(
                "unsupported",
                "only user messages can be added to the conversation".to_string(),
                create.event_id,
            );
        }
        let text: Vec<&str> = message
            .content
            .iter()
            .filter_map(|part| match part {
                ContentPart::InputText { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        if text.is_empty() {
            return self.error(
                "unsupported",
                "a user message needs an input_text part (audio items are spoken, not created)"
                    .to_string(),
                create.event_id,
            );
        }
        let text = text.join("\n");
        let item_id = message.id.clone().unwrap_or_else(|| self.ids.next("item"));
        self.pending_user_text.push(text.clone());
        let item = user_item(&item_id, ContentPart::InputText { text });
        self.remember(item.clone());
        let previous = self.last_item_id.replace(item_id);
        let added = ServerEvent::ConversationItemAdded(ConversationItemAdded {
            event_id: self.ids.next("event"),
            previous_item_id: previous.clone(),
            item: item.clone(),
        });
        self.send(added);
        let done = ServerEvent::ConversationItemDone(ConversationItemDone {
            event_id: self.ids.next("event"),
            previous_item_id: previous,
            item,
        });
        self.send(done);
    }

    fn on_truncate(&mut self, truncate: parley_protocol::events::ConversationItemTruncate) {
        let is_active = self
            .response
            .as_ref()
            .is_some_and(|r| r.item_id == truncate.item_id);
        if is_active {
            // The client heard less than was sent: stop the rest now.
            let active_done = self.response.as_ref().is_some_and(|r| r.done_sent);
            if !active_done {
                self.cancel_response(StatusReason::ClientCancelled, None);
            } else {
                self.retire_response();
            }
            for action in self.turns.response_finished() {
                self.act(action);
            }
        }
        let Some(last) = self
            .last_answer
            .as_ref()
            .filter(|a| a.item_id == truncate.item_id)
        else {
            return self.error(
                "item_truncate_invalid_item_id",
                format!(
                    "item {} is not the last assistant item, which is the only one that can be \
                     truncated",
                    truncate.item_id
                ),
                truncate.event_id,
            );
        };
        let played = ms_to_output_samples(truncate.audio_end_ms);
        if played > last.sent_samples {
            let sent_ms = output_samples_to_ms(last.sent_samples);
            return self.error(
                "item_truncate_invalid_audio_end_ms",
                format!(
                    "audio_end_ms {} is past the {sent_ms} ms of audio sent for item {}",
                    truncate.audio_end_ms, truncate.item_id
                ),
                truncate.event_id,
            );
        }
        let heard = heard_text(&last.text, &last.spans, played, last.complete);
        self.truncate_history(heard);
        let event = ServerEvent::ConversationItemTruncated(ConversationItemTruncated {
            event_id: self.ids.next("event"),
            item_id: truncate.item_id,
            content_index: truncate.content_index,
            audio_end_ms: truncate.audio_end_ms,
        });
        self.send(event);
    }

    fn truncate_history(&mut self, heard: String) {
        // `last_answer` keeps the generated text and its spans: a later truncate (the client's
        // own playout clock) is measured against the whole answer again.
        if let Some(last) = &self.last_answer {
            let item_id = last.item_id.clone();
            if let Some(ConversationItem::Message(m)) = self
                .items
                .iter_mut()
                .find(|item| item.id() == Some(item_id.as_str()))
            {
                m.status = Some(ItemStatus::Incomplete);
                m.content = vec![ContentPart::OutputAudio {
                    audio: None,
                    transcript: Some(heard.clone()),
                }];
            }
        }
        if self
            .workers
            .commands
            .send(ThinkerCommand::Truncate { heard_text: heard })
            .is_err()
        {
            self.closed = true;
        }
    }

    // ---------------------------------------------------------------------------------------
    // Listening

    /// Total 16 kHz samples received.
    fn stream_position(&self) -> u64 {
        self.input_start + self.input.len() as u64
    }

    fn stream_ms(&self) -> u64 {
        parley_audio_io::constants::samples_to_ms(self.stream_position(), MODEL_INPUT_RATE)
    }

    fn on_audio(&mut self, samples_24k: &[f32]) {
        let arrived = Instant::now();
        let mut samples = Vec::with_capacity(samples_24k.len());
        if let Err(e) = self.resampler.process(samples_24k, &mut samples) {
            return self.error("invalid_audio", format!("resampling: {e}"), None);
        }
        if samples.is_empty() {
            return;
        }
        self.input.extend_from_slice(&samples);
        let position = self.stream_position();
        self.arrivals.push_back((position, arrived));
        if self.arrivals.len() > ARRIVALS_KEPT {
            self.arrivals.pop_front();
        }
        if self.endpointer.is_some() {
            let first_window = self.vad.windows_done();
            let probs = match self.vad.step(&samples) {
                Ok(step) => step.ready().unwrap_or_default(),
                Err(e) => return self.error("invalid_audio", e.to_string(), None),
            };
            for window in VadWindow::sequence(first_window, &probs) {
                self.on_vad_window(window);
            }
        }
        self.feed_spoken_turn(None);
        self.trim_input();
    }

    /// Sends the spoken turn's new speech (up to `end`, a 16 kHz stream position, or all that
    /// arrived) to a Thinker that hears audio. While a response is still being answered or
    /// truncated the Thinker is busy, and the speech waits here (in `input`); a full command
    /// queue makes it wait too, unless `end` is given (the turn is being committed).
    fn feed_spoken_turn(&mut self, end: Option<u64>) {
        let Some(mut turn) = self.spoken else {
            return;
        };
        let committing = end.is_some();
        if self.response.is_some() && !committing {
            return;
        }
        let end = end.unwrap_or_else(|| self.stream_position());
        let send = |session: &mut Self, command: ThinkerCommand| -> bool {
            if committing {
                if session.workers.commands.send(command).is_err() {
                    session.closed = true;
                    return false;
                }
                true
            } else {
                session.workers.commands.try_send(command).is_ok()
            }
        };
        if !turn.begun {
            if !send(self, ThinkerCommand::BeginSpokenTurn) {
                return;
            }
            turn.begun = true;
            self.spoken = Some(turn);
        }
        if end < turn.sent_to + if committing { 1 } else { SPEECH_PIECE } {
            return;
        }
        let from = turn.sent_to.max(self.input_start) - self.input_start;
        let to = (end - self.input_start).min(self.input.len() as u64);
        if to <= from {
            return;
        }
        let piece = self.input[from as usize..to as usize].to_vec();
        if send(self, ThinkerCommand::Speech(piece)) {
            turn.sent_to = self.input_start + to;
            self.spoken = Some(turn);
        }
    }

    /// The spoken turn ends without an answer: the Thinker forgets it (not a committed one,
    /// which is conversation history).
    fn drop_spoken_turn(&mut self) {
        if self.spoken.is_some_and(|t| t.committed) {
            return;
        }
        if let Some(turn) = self.spoken.take()
            && turn.begun
            && self.workers.commands.send(ThinkerCommand::Retract).is_err()
        {
            self.closed = true;
        }
    }

    fn on_vad_window(&mut self, window: VadWindow) {
        let Some(endpointer) = self.endpointer.as_mut() else {
            return;
        };
        let now_ms = parley_audio_io::constants::samples_to_ms(window.end_sample, MODEL_INPUT_RATE);
        let events = match endpointer.step(std::slice::from_ref(&window)) {
            Ok(step) => step.ready().unwrap_or_default(),
            Err(e) => return self.server_error(format!("endpointer: {e}")),
        };
        for event in events {
            for action in self.turns.on_endpoint(event, now_ms) {
                self.act_on_endpoint(action, event);
            }
        }
        for action in self.turns.on_window(now_ms) {
            self.act(action);
        }
        if let Some(speech_end) = self.pending_speculation
            && now_ms >= speech_end + TRANSCRIBE_TAIL_MS
        {
            self.pending_speculation = None;
            self.speculate(speech_end + TRANSCRIBE_TAIL_MS);
        }
    }

    fn act_on_endpoint(&mut self, action: TurnAction, event: EndpointEvent) {
        if let (TurnAction::Speculate, EndpointEvent::SilenceStarted { at_ms }) = (action, event) {
            self.pending_speculation = Some(at_ms);
        } else {
            self.act(action);
        }
    }

    fn act(&mut self, action: TurnAction) {
        match action {
            TurnAction::SpeechStarted { audio_start_ms } => {
                let item_id = self.ids.next("item");
                let start =
                    parley_audio_io::constants::ms_to_samples(audio_start_ms, MODEL_INPUT_RATE)
                        .max(self.input_start);
                self.user_item = Some((item_id.clone(), start));
                if matches!(self.ears, Ears::Thinker) {
                    self.spoken = match self.spoken {
                        // More speech for a committed turn still waiting for its answer.
                        Some(turn) if turn.committed => Some(SpokenTurn {
                            sent_to: start,
                            ..turn
                        }),
                        _ => {
                            self.drop_spoken_turn();
                            Some(SpokenTurn {
                                begun: false,
                                sent_to: start,
                                committed: false,
                            })
                        }
                    };
                }
                let event =
                    ServerEvent::InputAudioBufferSpeechStarted(InputAudioBufferSpeechStarted {
                        event_id: self.ids.next("event"),
                        audio_start_ms,
                        item_id,
                    });
                self.send(event);
            }
            TurnAction::Speculate => self.pending_speculation = Some(self.stream_ms()),
            TurnAction::DropSpeculation => {
                self.pending_speculation = None;
                if let Ears::Transcriber(ears) = &mut self.ears {
                    ears.speech_resumed();
                }
                self.abandon_tentative();
            }
            TurnAction::CommitTurn { audio_end_ms } => {
                let event =
                    ServerEvent::InputAudioBufferSpeechStopped(InputAudioBufferSpeechStopped {
                        event_id: self.ids.next("event"),
                        audio_end_ms,
                        item_id: self
                            .user_item
                            .as_ref()
                            .map(|(id, _)| id.clone())
                            .unwrap_or_default(),
                    });
                self.send(event);
                self.commit_turn(audio_end_ms);
            }
            TurnAction::Interrupt => {
                if self.settings.interrupt_response {
                    let decided = Instant::now();
                    self.cancel_response(StatusReason::TurnDetected, Some(decided));
                }
            }
            TurnAction::Backchannel => {
                debug!(
                    "{}: backchannel during the answer; not interrupting",
                    self.name
                );
                self.metrics.backchannel();
            }
        }
    }

    /// The user's audio from the current turn's start to `end_ms`.
    fn utterance(&self, end_ms: u64) -> &[f32] {
        let start = self
            .user_item
            .as_ref()
            .map_or(self.input_start, |(_, s)| *s);
        let end = parley_audio_io::constants::ms_to_samples(end_ms, MODEL_INPUT_RATE);
        let from = start.saturating_sub(self.input_start) as usize;
        let to = (end.saturating_sub(self.input_start) as usize).min(self.input.len());
        &self.input[from.min(to)..to]
    }

    fn speculate(&mut self, end_ms: u64) {
        // A Thinker that hears audio has most of the turn prefilled already; it answers at the
        // endpoint (answering ahead would need the turn's prefill undone when the user goes on).
        if matches!(self.ears, Ears::Thinker) {
            return;
        }
        let audio = self.utterance(end_ms).to_vec();
        let Ears::Transcriber(ears) = &mut self.ears else {
            return;
        };
        // Whisper runs here, on the session thread: the user is silent, nothing else is due.
        if let Err(e) = ears.begin(&audio, &CancelGuard::never()) {
            return self.server_error(format!("speculative transcription: {e}"));
        }
        // Think ahead too: the endpoint is likely to follow, and then the first phrase is
        // already spoken (held back until the commit).
        let text = ears
            .speculative_text()
            .unwrap_or_default()
            .trim()
            .to_string();
        if !text.is_empty() && self.settings.create_response && self.response.is_none() {
            let mut turn = self.pending_user_text.clone();
            turn.push(text);
            self.start_response(UserTurn::Text(turn.join("\n")), TurnClock::default(), true);
        }
    }

    /// Drops 16 kHz audio no turn can need any more.
    fn trim_input(&mut self) {
        let keep_from =
            match &self.user_item {
                Some((_, start)) => *start,
                None => self.stream_position().saturating_sub(
                    parley_audio_io::constants::ms_to_samples(IDLE_HISTORY_MS, MODEL_INPUT_RATE),
                ),
            };
        // Trim in large steps so the copy is rare.
        let drop = keep_from.saturating_sub(self.input_start) as usize;
        if drop > MODEL_INPUT_RATE as usize {
            self.input.drain(..drop);
            self.input_start += drop as u64;
        }
    }

    /// When the sample at `ms` of the input stream arrived.
    fn arrival_of(&self, ms: u64) -> Option<Instant> {
        let sample = parley_audio_io::constants::ms_to_samples(ms, MODEL_INPUT_RATE);
        self.arrivals
            .iter()
            .find(|(end, _)| *end >= sample)
            .map(|(_, at)| *at)
    }

    fn commit_turn(&mut self, audio_end_ms: u64) {
        let mut clock = TurnClock {
            speech_end: self.arrival_of(audio_end_ms),
            endpoint: Some(Instant::now()),
            ..TurnClock::default()
        };
        let Some((item_id, _)) = self.user_item.clone() else {
            self.turns.no_response();
            return;
        };
        self.pending_speculation = None;
        if matches!(self.ears, Ears::Thinker) {
            return self.commit_spoken_turn(item_id, audio_end_ms, clock);
        }
        // The same end as the speculation's, so its transcript is reused.
        let audio = self.utterance(audio_end_ms + TRANSCRIBE_TAIL_MS).to_vec();
        let Ears::Transcriber(ears) = &mut self.ears else {
            return;
        };
        let mut pieces = Vec::new();
        let finished = ears.finish(&audio, &CancelGuard::never(), |piece| {
            pieces.push(piece.to_string())
        });
        self.user_item = None;
        let (transcript, from_speculation) = match finished {
            Ok(f) => (f.text.trim().to_string(), f.from_speculation),
            Err(e) => {
                self.server_error(format!("transcription: {e}"));
                (String::new(), false)
            }
        };
        clock.transcript = Some(Instant::now());
        // A tentative answer is only good for the transcript it was started on.
        if !from_speculation || transcript.is_empty() {
            self.abandon_tentative();
        }
        if transcript.is_empty() {
            // Noise or nothing intelligible: no turn.
            debug!("{}: no words in the turn; not answering", self.name);
            self.turns.no_response();
            let event = ServerEvent::InputAudioBufferCleared(InputAudioBufferCleared {
                event_id: self.ids.next("event"),
            });
            self.send(event);
            return;
        }
        info!("{}: user: {transcript}", self.name);
        let previous = self.last_item_id.replace(item_id.clone());
        let committed = ServerEvent::InputAudioBufferCommitted(InputAudioBufferCommitted {
            event_id: self.ids.next("event"),
            item_id: item_id.clone(),
            previous_item_id: previous.clone(),
        });
        self.send(committed);
        let item = user_item(
            &item_id,
            ContentPart::InputAudio {
                audio: None,
                transcript: Some(transcript.clone()),
            },
        );
        self.remember(item.clone());
        let added = ServerEvent::ConversationItemAdded(ConversationItemAdded {
            event_id: self.ids.next("event"),
            previous_item_id: previous.clone(),
            item: item.clone(),
        });
        self.send(added);
        // Whisper's pieces as it decoded them (at the first silence, usually: the speculation's).
        for delta in transcript_deltas(&pieces, &transcript) {
            let event = ServerEvent::InputAudioTranscriptionDelta(InputAudioTranscriptionDelta {
                event_id: self.ids.next("event"),
                item_id: item_id.clone(),
                content_index: 0,
                delta,
            });
            self.send(event);
        }
        let completed =
            ServerEvent::InputAudioTranscriptionCompleted(InputAudioTranscriptionCompleted {
                event_id: self.ids.next("event"),
                item_id,
                content_index: 0,
                transcript: transcript.clone(),
                usage: None,
            });
        self.send(completed);
        let done = ServerEvent::ConversationItemDone(ConversationItemDone {
            event_id: self.ids.next("event"),
            previous_item_id: previous,
            item,
        });
        self.send(done);
        self.pending_user_text.push(transcript);
        if let (Some(end), Some(decided)) = (clock.speech_end, clock.endpoint) {
            self.metrics.observe(Stage::Endpoint, decided - end);
            if let Some(ready) = clock.transcript {
                self.metrics.observe(Stage::Transcribe, ready - end);
            }
        }
        if self.response.as_ref().is_some_and(|r| r.tentative) {
            // Answered ahead already, on this very transcript.
            self.pending_user_text.clear();
            self.confirm_tentative(clock);
        } else if self.settings.create_response {
            let text = std::mem::take(&mut self.pending_user_text).join("\n");
            self.finish_playing_response();
            self.start_response(UserTurn::Text(text), clock, false);
        } else {
            self.turns.no_response();
        }
    }

    /// Commits a turn the Thinker heard itself: the rest of its speech goes out, the user item
    /// (audio, no transcript) is announced, and the Thinker answers.
    fn commit_spoken_turn(&mut self, item_id: String, audio_end_ms: u64, clock: TurnClock) {
        let end = parley_audio_io::constants::ms_to_samples(
            audio_end_ms + TRANSCRIBE_TAIL_MS,
            MODEL_INPUT_RATE,
        );
        self.user_item = None;
        if self.draining {
            self.drop_spoken_turn();
            self.turns.no_response();
            return;
        }
        // A barge-in's cancelled response is gone by now; a playing one is over.
        self.finish_playing_response();
        self.feed_spoken_turn(Some(end));
        let answer_now = self.settings.create_response;
        if answer_now {
            self.spoken = None;
        } else if let Some(turn) = self.spoken.as_mut() {
            // The Thinker keeps the speech; `response.create` answers it.
            turn.committed = true;
        }
        info!("{}: user spoke (heard by the Thinker)", self.name);
        let previous = self.last_item_id.replace(item_id.clone());
        let committed = ServerEvent::InputAudioBufferCommitted(InputAudioBufferCommitted {
            event_id: self.ids.next("event"),
            item_id: item_id.clone(),
            previous_item_id: previous.clone(),
        });
        self.send(committed);
        let item = user_item(
            &item_id,
            ContentPart::InputAudio {
                audio: None,
                transcript: None,
            },
        );
        self.remember(item.clone());
        let added = ServerEvent::ConversationItemAdded(ConversationItemAdded {
            event_id: self.ids.next("event"),
            previous_item_id: previous.clone(),
            item: item.clone(),
        });
        self.send(added);
        let done = ServerEvent::ConversationItemDone(ConversationItemDone {
            event_id: self.ids.next("event"),
            previous_item_id: previous,
            item,
        });
        self.send(done);
        if let (Some(end), Some(decided)) = (clock.speech_end, clock.endpoint) {
            self.metrics.observe(Stage::Endpoint, decided - end);
        }
        if answer_now {
            self.start_response(UserTurn::Spoken, clock, false);
        } else {
            self.turns.no_response();
        }
    }

    // ---------------------------------------------------------------------------------------
    // Answering

    /// A previous response still playing out at the listener is over now.
    fn finish_playing_response(&mut self) {
        if self.response.as_ref().is_some_and(|r| r.done_sent) {
            self.retire_response();
        }
    }

    /// Starts answering `user_text`. A `tentative` response stays invisible to the client until
    /// the turn is committed.
    fn start_response(&mut self, turn: UserTurn, clock: TurnClock, tentative: bool) {
        if self.draining {
            self.turns.no_response();
            return;
        }
        self.response_seq += 1;
        self.stream_ids = self.stream_ids.wrapping_add(1);
        let seq = self.response_seq;
        let guard = self.cancel.guard();
        let id = self.ids.next("resp");
        let item_id = self.ids.next("item");
        let binary = self.settings.binary;
        let opus = match binary {
            Some(BinaryCodec::Opus) => match OpusEncoder::new(MODEL_OUTPUT_RATE) {
                Ok(e) => Some((e, Vec::new())),
                Err(e) => return self.server_error(format!("opus encoder: {e}")),
            },
            _ => None,
        };
        let response = ActiveResponse {
            seq,
            tentative,
            id: id.clone(),
            item_id: item_id.clone(),
            guard: guard.clone(),
            text: String::new(),
            tokens: 0,
            thinker_done: None,
            talker_done: false,
            failed: None,
            done_sent: false,
            sent_samples: 0,
            first_audio_at: None,
            spans: Vec::new(),
            talker_compute: Duration::ZERO,
            underruns: 0,
            in_underrun: false,
            opus,
            stream_id: self.stream_ids,
            timing: TurnClock {
                answer_started: Some(Instant::now()),
                ..clock
            },
        };
        self.response = Some(response);
        if !tentative {
            self.announce_response();
        }
        let command = ThinkerCommand::Answer { seq, turn, guard };
        if self.workers.commands.send(command).is_err() {
            self.closed = true;
        }
    }

    /// Sends `response.created` and the assistant item of the active response; from here on its
    /// text and audio go out.
    fn announce_response(&mut self) {
        let Some(r) = self.response.as_ref() else {
            return;
        };
        let created = ServerEvent::ResponseCreated(ResponseCreated {
            event_id: self.ids.next("event"),
            response: Box::new(self.response_object(r, ResponseStatus::InProgress, None)),
        });
        let item_id = r.item_id.clone();
        self.send(created);
        let previous = self.last_item_id.replace(item_id.clone());
        let added = ServerEvent::ConversationItemAdded(ConversationItemAdded {
            event_id: self.ids.next("event"),
            previous_item_id: previous,
            item: assistant_item(&item_id, ItemStatus::InProgress, None),
        });
        self.send(added);
        self.turns.response_started();
        self.metrics.turn();
    }

    /// The user went on speaking (or the turn was dropped): the tentative response is cancelled
    /// and the Thinker forgets the turn it was answering.
    fn abandon_tentative(&mut self) {
        if !self.response.as_ref().is_some_and(|r| r.tentative) {
            return;
        }
        self.cancel.cancel_all();
        self.response = None;
        debug!(
            "{}: the user went on; speculative answer dropped",
            self.name
        );
        if self.workers.commands.send(ThinkerCommand::Retract).is_err() {
            self.closed = true;
        }
    }

    /// The turn was committed with the transcript the tentative response answers: make it the
    /// real response. What it already wrote goes out now; its audio starts now.
    fn confirm_tentative(&mut self, clock: TurnClock) {
        let Some(r) = self.response.as_mut() else {
            return;
        };
        r.tentative = false;
        let (answer_started, first_token) = (r.timing.answer_started, r.timing.first_token);
        r.timing = TurnClock {
            answer_started,
            first_token,
            ..clock
        };
        let text = r.text.clone();
        let (id, item_id) = (r.id.clone(), r.item_id.clone());
        if let (Some(token), Some(end)) = (first_token, clock.speech_end) {
            self.metrics.observe(Stage::FirstToken, token - end);
        }
        self.announce_response();
        if !text.is_empty() {
            let delta = ServerEvent::ResponseOutputAudioTranscriptDelta(
                ResponseOutputAudioTranscriptDelta {
                    event_id: self.ids.next("event"),
                    response_id: id,
                    item_id,
                    output_index: 0,
                    content_index: 0,
                    delta: text,
                },
            );
            self.send(delta);
        }
        self.maybe_finish();
    }

    fn response_object(
        &self,
        r: &ActiveResponse,
        status: ResponseStatus,
        details: Option<StatusDetails>,
    ) -> ResponseObject {
        let finished = status != ResponseStatus::InProgress;
        let talker_rtf = (r.sent_samples > 0).then(|| {
            r.talker_compute.as_secs_f64() / (r.sent_samples as f64 / f64::from(MODEL_OUTPUT_RATE))
        });
        ResponseObject {
            id: Some(r.id.clone()),
            object: Some("realtime.response".to_string()),
            status: Some(status),
            status_details: details,
            output: finished.then(|| {
                vec![assistant_item(
                    &r.item_id,
                    if status == ResponseStatus::Completed {
                        ItemStatus::Completed
                    } else {
                        ItemStatus::Incomplete
                    },
                    Some(r.text.clone()),
                )]
            }),
            usage: None,
            conversation_id: None,
            output_modalities: None,
            max_output_tokens: None,
            audio: None,
            metadata: None,
            parley: Some(ParleyResponseInfo {
                audio_stream_id: self.settings.binary.map(|_| r.stream_id),
                timings: finished.then(|| {
                    r.timing.timings(
                        output_samples_to_ms(r.sent_samples) as f64,
                        r.tokens,
                        talker_rtf,
                    )
                }),
            }),
        }
    }

    fn on_worker(&mut self, event: WorkerEvent) {
        match event {
            WorkerEvent::Text { seq, text } => {
                let Some(r) = self
                    .response
                    .as_mut()
                    .filter(|r| r.seq == seq && !r.done_sent)
                else {
                    return;
                };
                r.tokens += 1;
                r.text.push_str(&text);
                if r.timing.first_token.is_none() {
                    let now = Instant::now();
                    r.timing.first_token = Some(now);
                    if let Some(end) = r.timing.speech_end {
                        self.metrics.observe(Stage::FirstToken, now - end);
                    }
                }
                if r.tentative {
                    return;
                }
                let delta = ServerEvent::ResponseOutputAudioTranscriptDelta(
                    ResponseOutputAudioTranscriptDelta {
                        event_id: self.ids.next("event"),
                        response_id: r.id.clone(),
                        item_id: r.item_id.clone(),
                        output_index: 0,
                        content_index: 0,
                        delta: text,
                    },
                );
                self.send(delta);
            }
            WorkerEvent::ThinkerDone {
                seq,
                reason,
                tokens,
                first_token,
            } => {
                if let Some(r) = self.response.as_mut().filter(|r| r.seq == seq) {
                    r.thinker_done = Some(reason);
                    r.tokens = tokens;
                    if let Some(t) = first_token {
                        debug!(
                            "{}: first token after {:.0} ms",
                            self.name,
                            t.as_secs_f64() * 1e3
                        );
                    }
                    self.maybe_finish();
                }
            }
            WorkerEvent::Truncated { stored_text } => {
                debug!(
                    "{}: history keeps the answer as heard: {stored_text:?}",
                    self.name
                );
            }
            WorkerEvent::Failed { seq, message } => {
                self.server_error(message.clone());
                if let Some(r) = self
                    .response
                    .as_mut()
                    .filter(|r| seq.is_some_and(|s| s == r.seq))
                {
                    r.failed = Some(message);
                    r.thinker_done.get_or_insert(StopReason::EndOfTurn);
                    self.maybe_finish();
                }
            }
        }
    }

    /// Sends the audio that is due: everything up to `audio_lead_ms` ahead of the listener.
    fn pump_audio(&mut self) {
        loop {
            let Some(r) = self.response.as_ref() else {
                // Drain what a cancelled response left in flight.
                while self.workers.audio.try_recv().is_ok() {}
                return;
            };
            if r.done_sent || r.guard.is_cancelled() {
                while self.workers.audio.try_recv().is_ok() {}
                return;
            }
            if r.tentative {
                // Held until the turn is committed (the Talker waits on the full channel).
                return;
            }
            let mut behind = false;
            if let Some(first) = r.first_audio_at {
                let ahead_ms = output_samples_to_ms(r.sent_samples) as i64
                    - first.elapsed().as_millis() as i64;
                if ahead_ms >= i64::from(self.settings.audio_lead_ms) {
                    return;
                }
                behind = ahead_ms < 0 && !r.talker_done;
            }
            let output = match self.workers.audio.try_recv() {
                Ok(o) => o,
                Err(_) => {
                    if behind && !r.in_underrun {
                        self.metrics.underrun();
                        if let Some(r) = self.response.as_mut() {
                            r.underruns += 1;
                            r.in_underrun = true;
                        }
                    }
                    return;
                }
            };
            match output {
                TalkerOutput::Audio {
                    seq,
                    pcm,
                    phrase,
                    compute,
                } if seq == r.seq => self.send_audio(pcm, phrase, compute),
                TalkerOutput::Done { seq } if seq == r.seq => {
                    if let Some(r) = self.response.as_mut() {
                        r.talker_done = true;
                    }
                    self.maybe_finish();
                }
                TalkerOutput::Failed { seq, message } if seq == r.seq => {
                    self.server_error(format!("talker: {message}"));
                    if let Some(r) = self.response.as_mut() {
                        r.talker_done = true;
                        r.failed = Some(message);
                    }
                    self.maybe_finish();
                }
                // Left over from a cancelled response.
                _ => {}
            }
        }
    }

    fn send_audio(&mut self, pcm: Vec<f32>, phrase: Option<(String, u64)>, compute: Duration) {
        let binary = self.settings.binary;
        let Some(r) = self.response.as_mut() else {
            return;
        };
        let now = Instant::now();
        let first = r.first_audio_at.is_none();
        if first {
            r.first_audio_at = Some(now);
            r.timing.first_audio = Some(now);
        }
        let start = r.sent_samples;
        r.in_underrun = false;
        r.sent_samples += pcm.len() as u64;
        r.talker_compute += compute;
        let (text, total) = phrase.unwrap_or_default();
        match r.spans.last_mut() {
            Some(span) if span.text == text => span.end = r.sent_samples,
            _ => r.spans.push(SpokenSpan {
                start,
                end: r.sent_samples,
                text,
                total,
            }),
        }
        let (id, item_id, stream_id) = (r.id.clone(), r.item_id.clone(), r.stream_id);
        let mut frames = Vec::new();
        match binary {
            None => {}
            Some(BinaryCodec::Pcm16) => frames.push(AudioFrame::pcm16(0, start, stream_id, &pcm)),
            Some(BinaryCodec::Opus) => {
                if let Some((encoder, partial)) = &mut r.opus {
                    partial.extend_from_slice(&pcm);
                    let frame = encoder.frame_samples();
                    let mut timestamp = start + pcm.len() as u64 - partial.len() as u64;
                    while partial.len() >= frame {
                        let chunk: Vec<f32> = partial.drain(..frame).collect();
                        match encoder.encode_frame(&chunk) {
                            Ok(packet) => {
                                frames.push(AudioFrame::opus(0, timestamp, stream_id, packet))
                            }
                            Err(e) => warn!("opus encode: {e}"),
                        }
                        timestamp += frame as u64;
                    }
                }
            }
        }
        if first {
            self.turns.audio_started();
            if let Some(end) = self.response.as_ref().and_then(|r| r.timing.speech_end) {
                self.metrics.observe(Stage::FirstAudio, now - end);
                self.metrics.observe(Stage::VoiceToVoice, now - end);
            }
        }
        if binary.is_none() {
            let delta = ServerEvent::ResponseOutputAudioDelta(ResponseOutputAudioDelta {
                event_id: self.ids.next("event"),
                response_id: id,
                item_id,
                output_index: 0,
                content_index: 0,
                delta: Pcm16Audio::from_samples(&pcm),
            });
            self.send(delta);
        } else {
            for mut frame in frames {
                frame.sequence = self.out_sequence;
                self.out_sequence = self.out_sequence.wrapping_add(1);
                self.send(frame);
            }
        }
    }

    /// Ends the response once the Thinker and the Talker are both done (its audio may still be
    /// playing: the floor is given back at the end of playout).
    fn maybe_finish(&mut self) {
        let Some(r) = self.response.as_ref() else {
            return;
        };
        if r.tentative
            || r.done_sent
            || r.thinker_done.is_none()
            || !(r.talker_done || r.failed.is_some())
        {
            return;
        }
        let (status, reason) = if r.failed.is_some() {
            (ResponseStatus::Failed, None)
        } else if r.thinker_done == Some(StopReason::MaxTokens) {
            (
                ResponseStatus::Incomplete,
                Some(StatusReason::MaxOutputTokens),
            )
        } else {
            (ResponseStatus::Completed, None)
        };
        self.end_response(status, reason);
    }

    /// Sends the closing events of the active response with `status`.
    fn end_response(&mut self, status: ResponseStatus, reason: Option<StatusReason>) {
        self.flush_opus();
        let Some(r) = self.response.as_ref() else {
            return;
        };
        let (id, item_id, text) = (r.id.clone(), r.item_id.clone(), r.text.clone());
        let details = (status != ResponseStatus::Completed).then(|| StatusDetails {
            kind: Some(status),
            reason,
            error: r
                .failed
                .as_ref()
                .map(|_| parley_protocol::response::StatusError {
                    error_type: Some("server_error".to_string()),
                    code: None,
                }),
        });
        let object = self.response_object(r, status, details);
        let underruns = r.underruns;
        let timings = object.parley.as_ref().and_then(|p| p.timings);
        let item_status = if status == ResponseStatus::Completed {
            ItemStatus::Completed
        } else {
            ItemStatus::Incomplete
        };
        let sent_samples = r.sent_samples;
        let spans = r.spans.clone();
        let complete = r.talker_done;
        let stream_id = r.stream_id;
        if self.settings.binary.is_some() {
            let end = AudioFrame::end_of_audio(self.out_sequence, sent_samples, stream_id);
            self.out_sequence = self.out_sequence.wrapping_add(1);
            self.send(end);
        }
        let events = [
            ServerEvent::ResponseOutputAudioDone(ResponseOutputAudioDone {
                event_id: self.ids.next("event"),
                response_id: id.clone(),
                item_id: item_id.clone(),
                output_index: 0,
                content_index: 0,
            }),
            ServerEvent::ResponseOutputAudioTranscriptDone(ResponseOutputAudioTranscriptDone {
                event_id: self.ids.next("event"),
                response_id: id.clone(),
                item_id: item_id.clone(),
                output_index: 0,
                content_index: 0,
                transcript: text.clone(),
            }),
            ServerEvent::ConversationItemDone(ConversationItemDone {
                event_id: self.ids.next("event"),
                previous_item_id: None,
                item: assistant_item(&item_id, item_status, Some(text.clone())),
            }),
            ServerEvent::ResponseDone(ResponseDone {
                event_id: self.ids.next("event"),
                response: Box::new(object),
            }),
        ];
        for event in events {
            self.send(event);
        }
        if let Some(t) = timings {
            info!(
                "{}: turn {status:?}: endpoint {} ms, transcript {} ms, answer started {} ms, \
                 first token {} ms, first audio {} ms, {} tokens, {:.0} ms audio, talker rtf {}, \
                 {} underruns",
                self.name,
                fmt_ms(t.endpoint_ms),
                fmt_ms(t.transcribe_ms),
                fmt_ms(t.answer_started_ms),
                fmt_ms(t.first_token_ms),
                fmt_ms(t.first_audio_ms),
                t.tokens,
                t.audio_ms,
                t.talker_rtf.map_or("-".to_string(), |r| format!("{r:.3}")),
                underruns,
            );
            if let Some(rtf) = t.talker_rtf {
                self.metrics.talker_rtf(rtf);
            }
        }
        self.metrics.response(status);
        self.remember(assistant_item(&item_id, item_status, Some(text.clone())));
        self.last_answer = Some(LastAnswer {
            item_id,
            text,
            sent_samples,
            spans,
            complete,
        });
        if let Some(r) = self.response.as_mut() {
            r.done_sent = true;
        }
    }

    fn flush_opus(&mut self) {
        let Some(r) = self.response.as_mut() else {
            return;
        };
        let Some((encoder, partial)) = &mut r.opus else {
            return;
        };
        if partial.is_empty() {
            return;
        }
        let frame = encoder.frame_samples();
        let timestamp = r.sent_samples - partial.len() as u64;
        partial.resize(frame, 0.0);
        let packet = encoder.encode_frame(partial);
        partial.clear();
        let stream_id = r.stream_id;
        match packet {
            Ok(packet) => {
                let frame = AudioFrame::opus(self.out_sequence, timestamp, stream_id, packet);
                self.out_sequence = self.out_sequence.wrapping_add(1);
                self.send(frame);
            }
            Err(e) => warn!("opus encode: {e}"),
        }
    }

    /// Cancels the active response (barge-in or `response.cancel`): the model threads stop at
    /// their next step, no more audio goes out, and the history keeps what the listener heard
    /// by the playout clock (a client's `conversation.item.truncate` may refine it later).
    fn cancel_response(&mut self, reason: StatusReason, decided_at: Option<Instant>) {
        let Some(r) = self.response.as_ref() else {
            return;
        };
        self.cancel.cancel_all();
        let played = r.first_audio_at.map_or(0, |first| {
            let elapsed = ms_to_output_samples(first.elapsed().as_millis() as u64);
            elapsed.min(r.sent_samples)
        });
        let heard = heard_text(&r.text, &r.spans, played, r.talker_done);
        let was_done = r.done_sent;
        if !was_done {
            self.end_response(ResponseStatus::Cancelled, Some(reason));
        }
        self.metrics.cancellation();
        if let Some(at) = decided_at {
            self.metrics.observe(Stage::Stop, at.elapsed());
        }
        info!(
            "{}: response cancelled ({reason:?}); the listener heard {:.0} ms: {heard:?}",
            self.name,
            output_samples_to_ms(played)
        );
        self.truncate_history(heard);
        self.response = None;
    }

    /// The active response's audio has played out: give the floor back.
    fn check_playout_end(&mut self) {
        let Some(r) = self.response.as_ref() else {
            return;
        };
        if !r.done_sent {
            return;
        }
        let played_out = r.first_audio_at.is_none_or(|first| {
            first.elapsed().as_millis() as u64 >= output_samples_to_ms(r.sent_samples)
        });
        if played_out {
            self.retire_response();
            for action in self.turns.response_finished() {
                self.act(action);
            }
        }
    }

    fn retire_response(&mut self) {
        self.response = None;
    }

    /// Keeps `item` for `conversation.item.retrieve` (the newest `ITEMS_KEPT`).
    fn remember(&mut self, item: ConversationItem) {
        if self.items.len() == ITEMS_KEPT {
            self.items.pop_front();
        }
        self.items.push_back(item);
    }
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or("-".to_string(), |v| format!("{v:.0}"))
}

fn user_item(id: &str, part: ContentPart) -> ConversationItem {
    ConversationItem::Message(MessageItem {
        id: Some(id.to_string()),
        object: Some("realtime.item".to_string()),
        status: Some(ItemStatus::Completed),
        role: Role::User,
        content: vec![part],
    })
}

fn assistant_item(id: &str, status: ItemStatus, transcript: Option<String>) -> ConversationItem {
    ConversationItem::Message(MessageItem {
        id: Some(id.to_string()),
        object: Some("realtime.item".to_string()),
        status: Some(status),
        role: Role::Assistant,
        content: vec![ContentPart::OutputAudio {
            audio: None,
            transcript,
        }],
    })
}

fn output_samples_to_ms(samples: u64) -> u64 {
    parley_audio_io::constants::samples_to_ms(samples, MODEL_OUTPUT_RATE)
}

fn ms_to_output_samples(ms: u64) -> u64 {
    parley_audio_io::constants::ms_to_samples(ms, MODEL_OUTPUT_RATE)
}

/// The part of `text` the listener heard after `played` samples, given which phrase each span of
/// audio speaks. Whole phrases played count entirely; of the phrase playing at the cut, the words
/// whose share of its audio had fully played. The result is a prefix of `text` (so the Thinker
/// can keep the tokens it shares with the generated answer).
fn heard_text(text: &str, spans: &[SpokenSpan], played: u64, all_sent: bool) -> String {
    if spans.iter().all(|s| s.text.is_empty()) {
        return heard_without_phrases(text, spans.last().map_or(0, |s| s.end), played, all_sent);
    }
    let mut cursor = 0;
    for (i, span) in spans.iter().enumerate() {
        if span.start >= played {
            break;
        }
        let phrase = span.text.trim();
        let Some(offset) = find_words(&text[cursor..], phrase) else {
            continue;
        };
        let phrase_start = cursor + offset.0;
        let phrase_end = cursor + offset.1;
        // The share of the phrase heard: up to `played`, and never past what was sent of it.
        // A phrase still being sent may be longer than its audio so far; once the next one has
        // begun (or the answer is over) its audio is complete.
        let complete = all_sent || i + 1 < spans.len();
        let length = if complete {
            span.end - span.start
        } else {
            span.total.max(span.end - span.start)
        }
        .max(1);
        let heard = played.min(span.end) - span.start;
        if heard >= length {
            cursor = phrase_end;
            continue;
        }
        // Partly heard: keep the words fully spoken, assuming they share the phrase evenly.
        let fraction = heard as f64 / length as f64;
        let words: Vec<(usize, usize)> = word_bounds(&text[phrase_start..phrase_end]);
        let keep = (fraction * words.len() as f64).floor() as usize;
        if keep > 0 {
            cursor = phrase_start + words[keep - 1].1;
        }
        break;
    }
    text[..cursor].to_string()
}

/// Typical conversational speaking rate (~150 words per minute).
const WORDS_PER_SECOND: f64 = 2.5;

/// What was heard of an answer whose Talker does not say which audio speaks which words
/// (Qwen's codec track has no alignment with the text): the words in proportion to the audio
/// played when all of it was sent, else at a typical speaking rate; whole words only.
fn heard_without_phrases(text: &str, sent: u64, played: u64, all_sent: bool) -> String {
    let words = word_bounds(text);
    let keep = if all_sent && sent > 0 {
        (played.min(sent) as f64 / sent as f64 * words.len() as f64).floor() as usize
    } else {
        let seconds = played as f64 / f64::from(MODEL_OUTPUT_RATE);
        ((seconds * WORDS_PER_SECOND).floor() as usize).min(words.len())
    };
    match keep {
        0 => String::new(),
        n => text[..words[n - 1].1].to_string(),
    }
}

/// Where `phrase` (whitespace-normalised) occurs in `text`: byte range of its first and last
/// word. Phrases come from the Talker's text splitter, which only trims and cuts at whitespace.
fn find_words(text: &str, phrase: &str) -> Option<(usize, usize)> {
    let first = phrase.split_whitespace().next()?;
    let start = text.find(first)?;
    let mut end = start;
    let mut rest = &text[start..];
    for word in phrase.split_whitespace() {
        let at = rest.find(word)?;
        end = text.len() - rest.len() + at + word.len();
        rest = &rest[at + word.len()..];
    }
    Some((start, end))
}

/// Byte ranges of the whitespace-separated words of `text`.
fn word_bounds(text: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, text.len()));
    }
    out
}

/// The transcript's pieces as deltas that join to exactly `transcript` (which is trimmed):
/// Whisper's pieces with the outer whitespace removed, or the whole transcript as one delta if
/// they do not add up to it.
fn transcript_deltas(pieces: &[String], transcript: &str) -> Vec<String> {
    let joined: String = pieces.concat();
    if joined.trim() != transcript {
        return if transcript.is_empty() {
            Vec::new()
        } else {
            vec![transcript.to_string()]
        };
    }
    let mut deltas: Vec<String> = pieces.to_vec();
    // Trim the leading whitespace off the first pieces and the trailing off the last ones.
    for delta in deltas.iter_mut() {
        *delta = delta.trim_start().to_string();
        if !delta.is_empty() {
            break;
        }
    }
    for delta in deltas.iter_mut().rev() {
        *delta = delta.trim_end().to_string();
        if !delta.is_empty() {
            break;
        }
    }
    deltas.retain(|d| !d.is_empty());
    deltas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_deltas_join_to_the_trimmed_transcript() {
        let pieces = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            transcript_deltas(&pieces(&[" What", " is", " it?", " "]), "What is it?"),
            ["What", " is", " it?"]
        );
        // Pieces that do not add up (never seen; Whisper's text is its pieces) give one delta.
        assert_eq!(
            transcript_deltas(&pieces(&[" What"]), "What is it?"),
            ["What is it?"]
        );
        assert!(transcript_deltas(&pieces(&[" "]), "").is_empty());
    }

    fn span(start: u64, end: u64, text: &str) -> SpokenSpan {
        SpokenSpan {
            start,
            end,
            text: text.to_string(),
            total: end - start,
        }
    }

    #[test]
    fn without_phrases_the_words_heard_follow_the_audio_played() {
        let text = "The ocean is salty because rivers carry minerals.";
        let no_phrase = |end: u64| [span(0, end, "")];
        // All 96 000 samples sent, half played: half the words.
        assert_eq!(
            heard_text(text, &no_phrase(96_000), 48_000, true),
            "The ocean is salty"
        );
        assert_eq!(heard_text(text, &no_phrase(96_000), 96_000, true), text);
        assert_eq!(heard_text(text, &no_phrase(96_000), 0, true), "");
        // Still speaking: 1.2 s at 2.5 words/s = 3 words.
        assert_eq!(
            heard_text(text, &no_phrase(48_000), 28_800, false),
            "The ocean is"
        );
    }

    #[test]
    fn heard_text_keeps_whole_phrases_and_the_words_played_of_the_next() {
        let text = "The ocean is salty. Rivers carry minerals into it, over millions of years.";
        let spans = [
            span(0, 24_000, "The ocean is salty."),
            span(24_000, 48_000, "Rivers carry minerals into it,"),
            span(48_000, 72_000, "over millions of years."),
        ];
        assert_eq!(heard_text(text, &spans, 0, true), "");
        assert_eq!(heard_text(text, &spans, 12_000, true), "The ocean");
        assert_eq!(
            heard_text(text, &spans, 24_000, true),
            "The ocean is salty."
        );
        assert_eq!(
            heard_text(text, &spans, 24_000 + 14_400, true),
            "The ocean is salty. Rivers carry minerals"
        );
        assert_eq!(heard_text(text, &spans, 72_000, true), text);
        assert_eq!(heard_text(text, &spans, 100_000, true), text);
        // Only part of the last phrase was sent yet: its words are spread over its whole length.
        let sent_so_far = [
            span(0, 24_000, "The ocean is salty."),
            SpokenSpan {
                total: 48_000,
                ..span(24_000, 36_000, "Rivers carry minerals into it,")
            },
        ];
        assert_eq!(
            heard_text(text, &sent_so_far, 24_000 + 24_000, false),
            // Only a quarter of the phrase was sent: the listener cannot have heard more.
            "The ocean is salty. Rivers"
        );
        assert_eq!(
            heard_text(text, &sent_so_far, 24_000 + 7_000, false),
            "The ocean is salty."
        );
    }

    #[test]
    fn heard_text_is_a_prefix_even_with_odd_whitespace() {
        let text = "Sure!\n\nHere it is:  one,  two.";
        let spans = [
            span(0, 100, "Sure!"),
            span(100, 200, "Here it is: one, two."),
        ];
        let heard = heard_text(text, &spans, 150, true);
        assert!(text.starts_with(&heard), "{heard:?}");
        // Half of the second span: 2 of its 5 words.
        assert_eq!(heard, "Sure!\n\nHere it");
    }
}
