//! hibari: the CPU profile's English TTS (acoustic model + DSP in Rust, G2P in Rust), wired as a
//! streaming [`crate::Talker`]. Spec: `docs/hibari_port.md`.

pub mod acoustic;
pub mod dsp;
pub mod g2p;
pub mod talker;
