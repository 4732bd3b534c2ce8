//! A session's effective settings: the server's defaults, changed by `session.update`.

use parley_audio_io::constants::WIRE_PCM_RATE;
use parley_protocol::BinaryCodec;
use parley_protocol::session::{
    AudioFormat, AudioInputConfig, AudioOutputConfig, BinaryAudioConfig, MaxOutputTokens, Modality,
    ParleySessionConfig, ServerVad, SessionAudio, SessionConfig, SessionType, TurnDetection, Voice,
};
use parley_thinker::vad::EndpointConfig;

use crate::serve::config::SessionDefaults;

/// What the server uses when a session does not say otherwise (from `parley serve`'s config).
#[derive(Debug, Clone, PartialEq)]
pub struct EngineDefaults {
    /// The system prompt.
    pub instructions: String,
    pub temperature: f64,
    pub top_p: f64,
    pub max_output_tokens: usize,
    pub endpoint: EndpointConfig,
    /// Shortest user speech that interrupts a response (shorter is a backchannel).
    pub min_interrupt_speech_ms: u32,
    /// How far ahead of real time response audio is sent: the client's jitter buffer, and the
    /// most audio a client that ignores barge-in keeps playing.
    pub audio_lead_ms: u32,
    /// Speaking rate of the Talker.
    pub speed: f32,
    /// The voice sessions start with (one of `voices`; the engine fills both from the loaded
    /// Talker, and an empty `voice` means the Talker's default).
    pub voice: String,
    /// The voices `session.update` may choose from.
    pub voices: Vec<String>,
}

impl Default for EngineDefaults {
    fn default() -> Self {
        Self::from_session_defaults(&SessionDefaults::default())
    }
}

impl EngineDefaults {
    /// The engine's defaults from `parley serve`'s configuration (file, environment, flags).
    pub fn from_session_defaults(session: &SessionDefaults) -> Self {
        Self {
            instructions: session.instructions.clone(),
            temperature: session.temperature,
            top_p: 0.9,
            max_output_tokens: session.max_output_tokens,
            endpoint: EndpointConfig {
                threshold: session.vad_threshold,
                prefix_padding_ms: session.prefix_padding_ms,
                silence_duration_ms: session.silence_duration_ms,
                ..EndpointConfig::default()
            },
            min_interrupt_speech_ms: session.min_interrupt_speech_ms,
            audio_lead_ms: 300,
            speed: 1.0,
            voice: session.voice.clone().unwrap_or_default(),
            voices: Vec::new(),
        }
    }

    /// `name` as the Talker spells it, if it is one of `voices` (any case).
    pub fn find_voice(&self, name: &str) -> Option<&str> {
        self.voices
            .iter()
            .find(|v| v.eq_ignore_ascii_case(name))
            .map(String::as_str)
    }
}

/// The settings the engine acts on, derived from the session's [`SessionConfig`].
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub instructions: String,
    pub temperature: f64,
    pub top_p: f64,
    pub max_output_tokens: usize,
    /// `None`: turn detection is off (the client commits turns itself).
    pub endpoint: Option<EndpointConfig>,
    /// Answer automatically when a turn ends.
    pub create_response: bool,
    /// Let user speech cancel a response (barge-in).
    pub interrupt_response: bool,
    pub min_interrupt_speech_ms: u32,
    pub binary: Option<BinaryCodec>,
    pub speed: f32,
    pub audio_lead_ms: u32,
    /// The Talker's voice, as the Talker spells it.
    pub voice: String,
}

impl Settings {
    /// Reads `config` (already merged with earlier updates) over `defaults`; a value out of range
    /// is an error naming the field.
    pub fn from_config(config: &SessionConfig, defaults: &EngineDefaults) -> Result<Self, String> {
        let input = config.audio.as_ref().and_then(|a| a.input.as_ref());
        let output = config.audio.as_ref().and_then(|a| a.output.as_ref());
        for (format, field) in [
            (input.and_then(|i| i.format.as_ref()), "audio.input.format"),
            (
                output.and_then(|o| o.format.as_ref()),
                "audio.output.format",
            ),
        ] {
            if let Some(format) = format
                && !matches!(
                    format,
                    AudioFormat::Pcm {
                        rate: None | Some(WIRE_PCM_RATE)
                    }
                )
            {
                return Err(format!(
                    "{field}: only audio/pcm at 24000 Hz is supported (got {format:?})"
                ));
            }
        }
        let mut endpoint = None;
        let mut create_response = true;
        let mut interrupt_response = true;
        match input.and_then(|i| i.turn_detection.as_ref()) {
            // Absent: the defaults.
            None => endpoint = Some(defaults.endpoint.clone()),
            // `null`: off.
            Some(None) => {}
            Some(Some(TurnDetection::ServerVad(vad))) => {
                let mut e = defaults.endpoint.clone();
                if let Some(t) = vad.threshold {
                    if !(0.0..=1.0).contains(&t) || t <= 0.01 {
                        return Err(format!(
                            "audio.input.turn_detection.threshold must be in (0.01, 1], got {t}"
                        ));
                    }
                    e.threshold = t as f32;
                }
                if let Some(p) = vad.prefix_padding_ms {
                    e.prefix_padding_ms = p;
                }
                if let Some(s) = vad.silence_duration_ms {
                    e.silence_duration_ms = s;
                }
                create_response = vad.create_response.unwrap_or(true);
                interrupt_response = vad.interrupt_response.unwrap_or(true);
                endpoint = Some(e);
            }
            Some(Some(other)) => {
                return Err(format!(
                    "audio.input.turn_detection: only server_vad is supported (got {other:?})"
                ));
            }
        }
        let parley = config.parley.as_ref();
        let temperature = parley
            .and_then(|p| p.temperature)
            .unwrap_or(defaults.temperature);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(format!(
                "parley.temperature must be in [0, 2], got {temperature}"
            ));
        }
        let top_p = parley.and_then(|p| p.top_p).unwrap_or(defaults.top_p);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(format!("parley.top_p must be in (0, 1], got {top_p}"));
        }
        let max_output_tokens = match config.max_output_tokens {
            None | Some(MaxOutputTokens::Inf) => defaults.max_output_tokens,
            Some(MaxOutputTokens::Limit(0)) => {
                return Err("max_output_tokens must be at least 1".to_string());
            }
            Some(MaxOutputTokens::Limit(n)) => n as usize,
        };
        let speed = output
            .and_then(|o| o.speed)
            .map_or(defaults.speed, |s| s as f32);
        if !(0.25..=4.0).contains(&speed) {
            return Err(format!(
                "audio.output.speed must be in [0.25, 4], got {speed}"
            ));
        }
        let voice = match output.and_then(|o| o.voice.as_ref()) {
            None => defaults.voice.clone(),
            Some(Voice::Named(name)) => defaults
                .find_voice(name)
                .ok_or_else(|| {
                    format!(
                        "audio.output.voice: no voice {name:?}; this server speaks with {}",
                        defaults.voices.join(", ")
                    )
                })?
                .to_string(),
            Some(Voice::Custom { id }) => {
                return Err(format!(
                    "audio.output.voice: custom voices ({id}) are not supported; this server \
                     speaks with {}",
                    defaults.voices.join(", ")
                ));
            }
        };
        Ok(Self {
            voice,
            instructions: config
                .instructions
                .clone()
                .unwrap_or_else(|| defaults.instructions.clone()),
            temperature,
            top_p,
            max_output_tokens,
            endpoint,
            create_response,
            interrupt_response,
            min_interrupt_speech_ms: parley
                .and_then(|p| p.min_interrupt_speech_ms)
                .unwrap_or(defaults.min_interrupt_speech_ms),
            binary: config.binary_codec(),
            speed,
            audio_lead_ms: defaults.audio_lead_ms,
        })
    }
}

/// The configuration a new session starts with (sent in `session.created`).
pub fn initial_session(
    id: String,
    model: Option<String>,
    defaults: &EngineDefaults,
) -> SessionConfig {
    let e = &defaults.endpoint;
    SessionConfig {
        session_type: Some(SessionType::Realtime),
        id: Some(id),
        object: Some("realtime.session".to_owned()),
        model,
        instructions: Some(defaults.instructions.clone()),
        output_modalities: Some(vec![Modality::Audio]),
        max_output_tokens: Some(MaxOutputTokens::Limit(defaults.max_output_tokens as u32)),
        audio: Some(SessionAudio {
            input: Some(AudioInputConfig {
                format: Some(AudioFormat::pcm_wire()),
                noise_reduction: None,
                transcription: None,
                turn_detection: Some(Some(TurnDetection::ServerVad(ServerVad {
                    threshold: Some(f64::from(e.threshold)),
                    prefix_padding_ms: Some(e.prefix_padding_ms),
                    silence_duration_ms: Some(e.silence_duration_ms),
                    create_response: Some(true),
                    interrupt_response: Some(true),
                    idle_timeout_ms: None,
                }))),
            }),
            output: Some(AudioOutputConfig {
                format: Some(AudioFormat::pcm_wire()),
                voice: (!defaults.voice.is_empty()).then(|| Voice::Named(defaults.voice.clone())),
                speed: Some(f64::from(defaults.speed)),
            }),
        }),
        parley: Some(ParleySessionConfig {
            binary_audio: Some(BinaryAudioConfig {
                enabled: false,
                codec: Default::default(),
            }),
            temperature: Some(defaults.temperature),
            top_p: Some(defaults.top_p),
            min_interrupt_speech_ms: Some(defaults.min_interrupt_speech_ms),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_session_reads_back_as_the_defaults() {
        let defaults = EngineDefaults::default();
        let config = initial_session("sess_1".into(), None, &defaults);
        let settings = Settings::from_config(&config, &defaults).unwrap();
        assert_eq!(settings.endpoint, Some(defaults.endpoint.clone()));
        assert_eq!(settings.instructions, defaults.instructions);
        assert_eq!(settings.max_output_tokens, defaults.max_output_tokens);
        assert_eq!(settings.min_interrupt_speech_ms, 300);
        assert!(settings.create_response && settings.interrupt_response);
        assert_eq!(settings.binary, None);
    }

    #[test]
    fn updates_change_settings_and_bad_values_name_the_field() {
        let defaults = EngineDefaults::default();
        let mut config = initial_session("sess_1".into(), None, &defaults);
        let update: SessionConfig = serde_json::from_str(
            r#"{"audio":{"input":{"turn_detection":{"type":"server_vad","silence_duration_ms":300}}},
                "parley":{"temperature":0.0}}"#,
        )
        .unwrap();
        config.apply_update(update);
        let settings = Settings::from_config(&config, &defaults).unwrap();
        assert_eq!(settings.endpoint.unwrap().silence_duration_ms, 300);
        assert_eq!(settings.temperature, 0.0);

        let off: SessionConfig =
            serde_json::from_str(r#"{"audio":{"input":{"turn_detection":null}}}"#).unwrap();
        config.apply_update(off);
        assert_eq!(
            Settings::from_config(&config, &defaults).unwrap().endpoint,
            None
        );

        let bad: SessionConfig = serde_json::from_str(r#"{"parley":{"top_p":1.5}}"#).unwrap();
        config.apply_update(bad);
        let err = Settings::from_config(&config, &defaults).unwrap_err();
        assert!(err.contains("parley.top_p"), "{err}");
    }
}
