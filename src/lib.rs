//! parley: a real-time streaming Thinker–Talker voice agent (the engine behind the `parley`
//! command). See README.md for the architecture; [`engine`] runs conversations.

pub mod engine;
pub mod serve;
pub mod talk;
