//! What the engine reports about itself, for whoever collects it (`parley serve`'s Prometheus
//! registry). The engine only knows this small interface.

use std::sync::Arc;
use std::time::Duration;

use parley_protocol::response::ResponseStatus;

/// Stages of a turn whose latency is observed; all but `Stop` are measured from the moment the
/// last sample of the user's speech reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The end of the turn was decided (the endpoint's silence plus processing).
    Endpoint,
    /// The transcript was ready.
    Transcribe,
    /// The Thinker's first token.
    FirstToken,
    /// The first assistant audio was sent.
    FirstAudio,
    /// Voice to voice, as the server sees it: the first assistant audio sample sent (the same
    /// instant as `FirstAudio`; clients measure their own, including the network).
    VoiceToVoice,
    /// Barge-in decided -> the response's audio stopped and `response.done` sent.
    Stop,
}

impl Stage {
    pub const ALL: [Stage; 6] = [
        Stage::Endpoint,
        Stage::Transcribe,
        Stage::FirstToken,
        Stage::FirstAudio,
        Stage::VoiceToVoice,
        Stage::Stop,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Endpoint => "endpoint",
            Stage::Transcribe => "transcribe",
            Stage::FirstToken => "first_token",
            Stage::FirstAudio => "first_audio",
            Stage::VoiceToVoice => "voice_to_voice",
            Stage::Stop => "stop",
        }
    }
}

/// Receives the engine's measurements. Called from session threads: keep it cheap and lock-free
/// where possible.
pub trait MetricsSink: Send + Sync + 'static {
    fn observe(&self, stage: Stage, latency: Duration);
    fn turn(&self);
    fn response(&self, status: ResponseStatus);
    fn cancellation(&self);
    fn backchannel(&self);
    fn talker_rtf(&self, rtf: f64);
    /// The listener's playout caught up with the audio sent: a gap in the answer.
    fn underrun(&self);
}

/// The engine's handle on a sink (none: measurements are only logged).
#[derive(Clone, Default)]
pub struct EngineMetrics(Option<Arc<dyn MetricsSink>>);

impl std::fmt::Debug for EngineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "EngineMetrics(sink)"
        } else {
            "EngineMetrics(none)"
        })
    }
}

impl EngineMetrics {
    pub fn new(sink: Arc<dyn MetricsSink>) -> Self {
        Self(Some(sink))
    }

    pub fn observe(&self, stage: Stage, latency: Duration) {
        if let Some(s) = &self.0 {
            s.observe(stage, latency);
        }
    }

    pub fn turn(&self) {
        if let Some(s) = &self.0 {
            s.turn();
        }
    }

    pub fn response(&self, status: ResponseStatus) {
        if let Some(s) = &self.0 {
            s.response(status);
        }
    }

    pub fn cancellation(&self) {
        if let Some(s) = &self.0 {
            s.cancellation();
        }
    }

    pub fn backchannel(&self) {
        if let Some(s) = &self.0 {
            s.backchannel();
        }
    }

    pub fn talker_rtf(&self, rtf: f64) {
        if let Some(s) = &self.0 {
            s.talker_rtf(rtf);
        }
    }

    pub fn underrun(&self) {
        if let Some(s) = &self.0 {
            s.underrun();
        }
    }
}
