//! parley-client: drives a parley server from WAV scripts like a person would, and measures the
//! voice loop. It is the library behind `parley converse` (one session, printed as it streams)
//! and `parley bench` (many concurrent sessions, aggregated).
//!
//! A session connects to the OpenAI-Realtime-compatible WebSocket
//! (`ws://HOST:PORT/v1/realtime`, optional bearer key), streams the script's audio as
//! `input_audio_buffer.append` events (base64 PCM16, 24 kHz mono, 20 ms frames) on a fixed
//! real-time schedule, and meanwhile receives the server's events and plays the answer audio on
//! a simulated loudspeaker. Silence is streamed between utterances, never gaps: a real
//! microphone always sends. When the server's VAD hears the user start talking over an answer
//! (`input_audio_buffer.speech_started`), the client stops playback at once, drops the queued
//! audio and sends `conversation.item.truncate` with the milliseconds actually played.
//!
//! ```no_run
//! # async fn demo() -> Result<(), parley_client::ClientError> {
//! use parley_client::{DisplayEvent, Script, SessionOptions, latency_line, realtime_url, run_session};
//!
//! let script = Script::from_inputs(&["q.wav".into()], parley_client::DEFAULT_ANSWER_TIMEOUT)?.load()?;
//! let options = SessionOptions::new(realtime_url("127.0.0.1:8080"));
//! let record = run_session(&options, &script, &mut |event| match event {
//!     DisplayEvent::UserTranscript { text, .. } => println!("you: {text}"),
//!     DisplayEvent::AnswerStarted { .. } => print!("parley: "),
//!     DisplayEvent::AnswerDelta { text, .. } => print!("{text}"),
//!     DisplayEvent::AnswerDone { .. } => println!(),
//!     DisplayEvent::TurnFinished(m) => println!("  {}", latency_line(&m)),
//!     _ => {}
//! }).await?;
//! parley_audio_io::wav::write_wav("reply.wav", &record.heard_audio(), 24_000)
//!     .expect("write reply.wav");
//! # Ok(()) }
//! ```
//!
//! # Scripts
//!
//! A script is a list of [`Step`]s:
//! - `say`: stream a WAV (any rate/width; read with `parley_audio_io::wav::read_wav` and
//!   resampled to 24 kHz) at real-time pace;
//! - `pause`: stream silence for a while;
//! - `wait_for_answer`: stream silence until the answer to the last utterance is done
//!   (`response.done`, not cancelled) **and** has finished playing, or until the timeout (the
//!   turn is then marked `timed_out` and the script goes on);
//! - `barge_in`: stream silence until `after_ms` of the current answer has been played, then say
//!   the WAV over it (if the answer ends first the WAV is said anyway and the turn is marked
//!   `barge_in_missed`).
//!
//! From the command line, `--input a.wav --input b.wav` is [`Script::from_inputs`]: say a, wait
//! for the answer, say b, wait. A script file ([`Script::from_file`]) is TOML (`.toml`) or JSON
//! (anything else); relative WAV paths are relative to the file; `answer_timeout_ms` (default
//! 60000) is the default timeout of `wait_for_answer` and `barge_in`:
//!
//! ```toml
//! answer_timeout_ms = 30000
//!
//! [[steps]]
//! say = "q_tell_joke.wav"
//!
//! [[steps]]
//! barge_in = { after_ms = 1500, wav = "mm_hmm.wav" }   # optional timeout_ms
//!
//! [[steps]]
//! wait_for_answer = {}                                 # or { timeout_ms = 9000 }
//!
//! [[steps]]
//! pause = { ms = 500 }
//! ```
//!
//! The same in JSON: `{"answer_timeout_ms": 30000, "steps": [{"say": "q_tell_joke.wav"},
//! {"barge_in": {"after_ms": 1500, "wav": "mm_hmm.wav"}}, {"wait_for_answer": {}},
//! {"pause": {"ms": 500}}]}`.
//!
//! # Measurements
//!
//! Everything is timed on one monotonic clock in the client, events by their arrival time.
//! Latencies start when the frame holding the user's **last speech sample** was sent, found
//! per WAV with the energy rule in [`speech`] (10 ms windows, −40 dB below the loudest window),
//! so the WAV's trailing silence does not count. [`metrics`] defines each number:
//! voice-to-voice (first answer audio received), endpoint delay (`speech_stopped`/`committed`
//! received), first text token, first audible audio, barge-in stop latency (`response.done`
//! cancelled minus `speech_started`, plus the answer audio that still arrived after
//! `speech_started`), underruns of the simulated playback ([`playout`]), and the server's own
//! stage timings and talker RTF from `response.parley.timings` when present.
//!
//! **`--fast`** ([`SessionOptions::fast`]) sends utterances and pauses as fast as the server
//! accepts them, each utterance followed by a burst of silence long enough for the VAD to end
//! the turn ([`SessionOptions::fast_trailing_silence`], 1 s); waiting still streams silence in
//! real time. The audio then reaches the server faster than a person could speak it, so the
//! latency numbers are **not meaningful** in fast mode (the report says so); use it to load the
//! server, not to measure it.
//!
//! Bench percentiles are **nearest-rank** ([`stats`]): with few turns, p95 is the largest or
//! second-largest value measured, never an interpolation.
//!
//! # Map
//! - [`script`]: steps, script files, loaded audio; [`speech`]: the energy rule.
//! - [`driver`]: connecting and running one session ([`run_session`]).
//! - [`timeline`]: the per-turn timeline and the [`Recorder`] that builds it from events;
//!   [`playout`]: the simulated loudspeaker; [`metrics`]: per-turn numbers.
//! - [`bench`] and [`stats`]: concurrent sessions, percentiles, the JSON/text report.
//! - [`display`]: what `converse` shows; [`error`]: [`ClientError`].

pub mod bench;
pub mod display;
pub mod driver;
pub mod error;
pub mod metrics;
pub mod playout;
pub mod script;
pub mod speech;
pub mod stats;
pub mod timeline;

use std::time::Duration;

use parley_audio_io::constants::FRAME_MS;

pub use bench::{BenchOptions, report_from_outcomes, run_bench, run_sessions};
pub use display::{DisplayEvent, latency_line};
pub use driver::{SessionOptions, realtime_url, run_session};
pub use error::ClientError;
pub use metrics::{ServerTimings, TurnMetrics};
pub use playout::PlayoutSim;
pub use script::{DEFAULT_ANSWER_TIMEOUT, LoadedScript, LoadedStep, Script, Step, Utterance};
pub use speech::{SpeechBounds, speech_bounds};
pub use stats::{BenchReport, SessionSummary, Summary, percentile};
pub use timeline::{Recorder, ResponseTimeline, SessionRecord, TurnTimeline};

/// One input frame: the pace of the driver.
pub const FRAME: Duration = Duration::from_millis(FRAME_MS as u64);
