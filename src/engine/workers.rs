//! The model threads of one session: the Thinker thread and the Talker thread.
//!
//! ```text
//!  session --ThinkerCommand--> thinker thread --TalkerCommand--> talker thread
//!     ^                             |                                 |
//!     +------- WorkerEvent ---------+                                 |
//!     +------- TalkerOutput (PCM chunks, pulled when due) ------------+
//! ```
//!
//! Model compute never runs on tokio workers. All channels are bounded: a Thinker far ahead of
//! the speech waits for the Talker, and a Talker far ahead of real time waits for the session to
//! pull its audio. Every message names the response (`seq`) it belongs to, so anything of a
//! cancelled response still in flight is recognised and dropped. Each blocking send re-checks the
//! response's cancel guard, so a cancelled response never waits on a full channel.

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, bounded};
use parley_talker::Talker;
use parley_thinker::seam::{AnswerContext, StopReason, Thinker, ThinkerEvent, ThinkerToken};
use parley_thinker::stream::{CancelGuard, Step};
use tracing::warn;

/// Thinker tokens queued for the Talker (a few sentences of text).
const TOKEN_QUEUE: usize = 256;
/// PCM chunks queued for the session (hibari's chunks are 40 ms: ~0.3 s of audio).
const AUDIO_QUEUE: usize = 8;
/// Commands queued for the Thinker.
const COMMAND_QUEUE: usize = 16;
/// Events queued for the session (text pieces and completions).
const EVENT_QUEUE: usize = 256;
/// How often a blocked send re-checks its response's cancel guard.
const SEND_POLL: Duration = Duration::from_millis(5);

/// What the session asks of the Thinker thread.
#[derive(Debug)]
pub enum ThinkerCommand {
    /// Append the user's turn and answer it; the answer streams as `WorkerEvent`s and its tokens
    /// go to the Talker.
    Answer {
        seq: u64,
        turn: UserTurn,
        guard: CancelGuard,
    },
    /// A spoken turn begins (Thinkers that hear audio): the conversation up to it is prefilled.
    BeginSpokenTurn,
    /// More 16 kHz speech of the spoken turn, prefilled block by block as it completes.
    Speech(Vec<f32>),
    /// Replace the last answer in the history by what the user heard.
    Truncate { heard_text: String },
    /// Forget the last user turn and its answer (a speculative answer the user talked over).
    Retract,
    /// New generation settings (from `session.update`).
    Configure(GenerationSettings),
    /// The Talker's voice from the next answer on (one of its `voices`, from `session.update`).
    Voice(String),
}

/// What the user said.
#[derive(Debug)]
pub enum UserTurn {
    Text(String),
    /// The spoken turn sent with `BeginSpokenTurn` and `Speech`, now ended.
    Spoken,
}

/// The Thinker settings a session may change.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    pub system_prompt: String,
    pub temperature: f64,
    pub top_p: f64,
    pub max_tokens: usize,
}

/// A Thinker whose generation settings follow `session.update`.
pub trait SessionThinker: Thinker {
    fn configure(&mut self, settings: &GenerationSettings) -> Result<(), Self::Error>;

    /// Whether the Thinker hears the user's audio itself (Qwen's audio encoder) instead of a
    /// transcript. The session sends spoken turns only to Thinkers that do.
    fn hears_speech(&self) -> bool {
        false
    }

    /// Starts a spoken turn (only called when `hears_speech`).
    fn begin_spoken_turn(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }

    /// 16 kHz speech of the spoken turn (only called when `hears_speech`).
    fn push_speech(&mut self, samples: &[f32]) -> Result<(), Self::Error> {
        let _ = samples;
        Ok(())
    }

    /// Ends the spoken turn and prepares the answer, as `user_turn` does for text (only called
    /// when `hears_speech`).
    fn end_spoken_turn(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// What the Thinker thread reports.
#[derive(Debug)]
pub enum WorkerEvent {
    /// A piece of answer text (one token's worth).
    Text { seq: u64, text: String },
    /// The answer ended.
    ThinkerDone {
        seq: u64,
        reason: StopReason,
        tokens: usize,
        /// Time from the command to the first token (prefill + first step).
        first_token: Option<Duration>,
    },
    /// The history now holds `stored_text` as the last answer.
    Truncated { stored_text: String },
    /// A model error; the response (if any) ends with status `failed`.
    Failed { seq: Option<u64>, message: String },
}

/// What the Talker thread hands the session.
#[derive(Debug)]
pub enum TalkerOutput {
    /// 24 kHz mono PCM; `phrase` is the text it speaks and that phrase's length in samples (for
    /// aligning what was heard).
    Audio {
        seq: u64,
        pcm: Vec<f32>,
        phrase: Option<(String, u64)>,
        /// Model time spent producing this chunk.
        compute: Duration,
    },
    /// The answer is fully spoken.
    Done {
        seq: u64,
    },
    Failed {
        seq: u64,
        message: String,
    },
}

/// What the Thinker thread tells the Talker thread.
#[derive(Debug)]
enum TalkerCommand {
    Start {
        seq: u64,
        guard: CancelGuard,
        context: Option<Box<AnswerContext>>,
    },
    Token {
        seq: u64,
        token: ThinkerToken,
    },
    Finish {
        seq: u64,
    },
    Voice(String),
}

/// The running model threads of one session. Dropping the command sender ends them.
pub struct Workers {
    pub commands: Sender<ThinkerCommand>,
    pub events: Receiver<WorkerEvent>,
    pub audio: Receiver<TalkerOutput>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Starts the Thinker and Talker threads of session `name`.
    pub fn spawn<T, K>(name: &str, thinker: T, talker: K) -> std::io::Result<Self>
    where
        T: SessionThinker + 'static,
        K: Talker + 'static,
    {
        let (command_tx, command_rx) = bounded(COMMAND_QUEUE);
        let (event_tx, event_rx) = bounded(EVENT_QUEUE);
        let (talker_tx, talker_rx) = bounded(TOKEN_QUEUE);
        let (audio_tx, audio_rx) = bounded(AUDIO_QUEUE);
        let thinker_thread = std::thread::Builder::new()
            .name(format!("{name}-thinker"))
            .spawn(move || run_thinker(thinker, command_rx, event_tx, talker_tx))?;
        let talker_thread = std::thread::Builder::new()
            .name(format!("{name}-talker"))
            .spawn(move || run_talker(talker, talker_rx, audio_tx))?;
        Ok(Self {
            commands: command_tx,
            events: event_rx,
            audio: audio_rx,
            threads: vec![thinker_thread, talker_thread],
        })
    }

    /// Ends both threads and waits for them. Cancel the running response first, or this waits
    /// for it to finish.
    pub fn shut_down(self) {
        let Workers {
            commands,
            events,
            audio,
            threads,
        } = self;
        drop(commands);
        // Dropping the receivers unblocks threads waiting to hand something over.
        drop(events);
        drop(audio);
        for thread in threads {
            if thread.join().is_err() {
                warn!("a model thread panicked");
            }
        }
    }
}

/// Sends `message`, waiting while the channel is full, unless `guard` is cancelled meanwhile
/// (then the message is dropped). Returns false when the receiver is gone.
fn send_unless_cancelled<M>(tx: &Sender<M>, mut message: M, guard: &CancelGuard) -> bool {
    loop {
        match tx.send_timeout(message, SEND_POLL) {
            Ok(()) => return true,
            Err(SendTimeoutError::Disconnected(_)) => return false,
            Err(SendTimeoutError::Timeout(back)) => {
                if guard.is_cancelled() {
                    return true;
                }
                message = back;
            }
        }
    }
}

fn run_thinker<T: SessionThinker>(
    mut thinker: T,
    commands: Receiver<ThinkerCommand>,
    events: Sender<WorkerEvent>,
    talker: Sender<TalkerCommand>,
) {
    while let Ok(command) = commands.recv() {
        match command {
            ThinkerCommand::Answer { seq, turn, guard } => {
                if !answer(&mut thinker, seq, &turn, &guard, &events, &talker) {
                    return;
                }
            }
            ThinkerCommand::BeginSpokenTurn => {
                if let Err(e) = thinker.begin_spoken_turn()
                    && events
                        .send(WorkerEvent::Failed {
                            seq: None,
                            message: format!("starting the spoken turn: {e}"),
                        })
                        .is_err()
                {
                    return;
                }
            }
            ThinkerCommand::Speech(samples) => {
                if let Err(e) = thinker.push_speech(&samples)
                    && events
                        .send(WorkerEvent::Failed {
                            seq: None,
                            message: format!("hearing the spoken turn: {e}"),
                        })
                        .is_err()
                {
                    return;
                }
            }
            ThinkerCommand::Truncate { heard_text } => {
                let event = match thinker.truncate_answer(&heard_text) {
                    Ok(()) => WorkerEvent::Truncated {
                        stored_text: heard_text,
                    },
                    Err(e) => WorkerEvent::Failed {
                        seq: None,
                        message: format!("truncating the answer: {e}"),
                    },
                };
                if events.send(event).is_err() {
                    return;
                }
            }
            ThinkerCommand::Retract => {
                if let Err(e) = thinker.retract_turn()
                    && events
                        .send(WorkerEvent::Failed {
                            seq: None,
                            message: format!("forgetting a speculative turn: {e}"),
                        })
                        .is_err()
                {
                    return;
                }
            }
            ThinkerCommand::Voice(voice) => {
                // In order with the answers: it reaches the Talker before the next one starts.
                if talker.send(TalkerCommand::Voice(voice)).is_err() {
                    return;
                }
            }
            ThinkerCommand::Configure(config) => {
                if let Err(e) = thinker.configure(&config)
                    && events
                        .send(WorkerEvent::Failed {
                            seq: None,
                            message: format!("session settings: {e}"),
                        })
                        .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Runs one answer; false when the session is gone.
fn answer<T: SessionThinker>(
    thinker: &mut T,
    seq: u64,
    turn: &UserTurn,
    guard: &CancelGuard,
    events: &Sender<WorkerEvent>,
    talker: &Sender<TalkerCommand>,
) -> bool {
    let start = Instant::now();
    let failed = |message: String| WorkerEvent::Failed {
        seq: Some(seq),
        message,
    };
    let prepared = match turn {
        UserTurn::Text(text) => thinker.user_turn(text),
        UserTurn::Spoken => thinker.end_spoken_turn(),
    }
    .and_then(|()| thinker.answer_context());
    let (context, error) = match prepared {
        Ok(context) => (context, None),
        Err(e) => (None, Some(e)),
    };
    let begin = TalkerCommand::Start {
        seq,
        guard: guard.clone(),
        context: context.map(Box::new),
    };
    if !send_unless_cancelled(talker, begin, guard) {
        return false;
    }
    if let Some(e) = error {
        let _ = talker.send(TalkerCommand::Finish { seq });
        return events.send(failed(e.to_string())).is_ok();
    }
    let mut first_token = None;
    loop {
        match thinker.next_event(guard) {
            Ok(ThinkerEvent::Token(token)) => {
                first_token.get_or_insert_with(|| start.elapsed());
                let text = token.text.clone();
                if !send_unless_cancelled(talker, TalkerCommand::Token { seq, token }, guard) {
                    return false;
                }
                if !text.is_empty()
                    && !send_unless_cancelled(events, WorkerEvent::Text { seq, text }, guard)
                {
                    return false;
                }
            }
            Ok(ThinkerEvent::Done { reason, tokens }) => {
                let _ = send_unless_cancelled(talker, TalkerCommand::Finish { seq }, guard);
                return events
                    .send(WorkerEvent::ThinkerDone {
                        seq,
                        reason,
                        tokens,
                        first_token,
                    })
                    .is_ok();
            }
            Err(e) => {
                let _ = talker.send(TalkerCommand::Finish { seq });
                return events.send(failed(e.to_string())).is_ok();
            }
        }
    }
}

/// The Talker's current answer.
struct Speaking {
    seq: u64,
    guard: CancelGuard,
    /// All of the answer's text has arrived.
    finished: bool,
}

fn run_talker<K: Talker>(
    mut talker: K,
    commands: Receiver<TalkerCommand>,
    audio: Sender<TalkerOutput>,
) {
    let mut current: Option<Speaking> = None;
    loop {
        // Take every waiting command first; block only when there is nothing to synthesize.
        let command = if current.is_none() {
            match commands.recv() {
                Ok(c) => Some(c),
                Err(_) => return,
            }
        } else {
            match commands.try_recv() {
                Ok(c) => Some(c),
                Err(crossbeam_channel::TryRecvError::Empty) => None,
                Err(crossbeam_channel::TryRecvError::Disconnected) => return,
            }
        };
        if let Some(command) = command {
            if !apply(command, &mut current, &mut talker, &audio) {
                return;
            }
            continue;
        }
        let Some(speaking) = current.as_ref() else {
            continue;
        };
        let (seq, guard, finished) = (speaking.seq, speaking.guard.clone(), speaking.finished);
        if guard.is_cancelled() {
            talker.reset();
            current = None;
            continue;
        }
        let start = Instant::now();
        match talker.next_chunk(&guard) {
            Ok(Step::Ready(pcm)) => {
                let output = TalkerOutput::Audio {
                    seq,
                    pcm,
                    phrase: talker
                        .spoken_phrase()
                        .map(|(text, samples)| (text.to_owned(), samples)),
                    compute: start.elapsed(),
                };
                if !send_unless_cancelled(&audio, output, &guard) {
                    return;
                }
            }
            // Waiting for text: block until the Thinker sends more.
            Ok(Step::Pending) => match commands.recv() {
                Ok(command) => {
                    if !apply(command, &mut current, &mut talker, &audio) {
                        return;
                    }
                }
                Err(_) => return,
            },
            Ok(Step::Done) => {
                current = None;
                if finished
                    && !guard.is_cancelled()
                    && audio.send(TalkerOutput::Done { seq }).is_err()
                {
                    return;
                }
            }
            Err(e) => {
                current = None;
                talker.reset();
                let failed = TalkerOutput::Failed {
                    seq,
                    message: e.to_string(),
                };
                if audio.send(failed).is_err() {
                    return;
                }
            }
        }
    }
}

/// Applies one command from the Thinker thread; false when the session is gone.
fn apply<K: Talker>(
    command: TalkerCommand,
    current: &mut Option<Speaking>,
    talker: &mut K,
    audio: &Sender<TalkerOutput>,
) -> bool {
    match command {
        TalkerCommand::Start {
            seq,
            guard,
            context,
        } => {
            talker.reset();
            if let Err(e) = talker.start_answer(context.map(|c| *c)) {
                *current = None;
                let failed = TalkerOutput::Failed {
                    seq,
                    message: e.to_string(),
                };
                return audio.send(failed).is_ok();
            }
            *current = Some(Speaking {
                seq,
                guard,
                finished: false,
            });
        }
        TalkerCommand::Token { seq, token } => {
            if let Some(s) = current.as_ref().filter(|s| s.seq == seq)
                && !s.guard.is_cancelled()
                && let Err(e) = talker.push_token(&token)
            {
                *current = None;
                talker.reset();
                let failed = TalkerOutput::Failed {
                    seq,
                    message: e.to_string(),
                };
                return audio.send(failed).is_ok();
            }
        }
        TalkerCommand::Finish { seq } => {
            if let Some(s) = current.as_mut().filter(|s| s.seq == seq) {
                s.finished = true;
                talker.finish();
            }
        }
        TalkerCommand::Voice(voice) => {
            // The session only sends voices of `Talker::voices`.
            if let Err(e) = talker.set_voice(&voice) {
                warn!("the Talker cannot speak with {voice:?}: {e}");
            }
        }
    }
    true
}
