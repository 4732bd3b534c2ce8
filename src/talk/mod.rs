//! `parley talk`: a live spoken conversation from a microphone and a speaker, always as a client
//! of the Realtime WebSocket (an in-process server or a remote one behave the same).
//!
//! ```text
//!  microphone --ring--> mic path thread: 16 kHz, echo cancellation, 24 kHz, 20 ms frames
//!                           ^ far end                    | bounded channel
//!                           |                            v
//!  speaker <--ring-- speaker path: tap thread <-- playout buffer <-- session (async):
//!                                                    append frames out, answer audio in,
//!                                                    barge-in: clear + conversation.item.truncate
//! ```
//!
//! The core, [`run_conversation`], takes any [`Capture`](parley_audio_io::Capture) /
//! [`Playback`](parley_audio_io::Playback) pair: the CLI passes the cpal devices, tests a
//! simulated room ([`room::EchoRoom`]) where the speaker's sound reaches the microphone.
//!
//! Map: [`session`] (the WebSocket conversation, events, report), [`mic_path`] (capture
//! processing thread with the echo canceller), [`speaker_path`] (playout to the speaker and the
//! far-end tap), [`room`] (the simulated room), [`error`].

pub mod error;
pub mod mic_path;
pub mod room;
pub mod session;
pub mod speaker_path;

pub use error::TalkError;
pub use room::{EchoRoom, EchoRoomConfig};
pub use session::{
    AnswerRecord, TalkEvent, TalkOptions, TalkReport, TurnLatency, run_conversation,
};
