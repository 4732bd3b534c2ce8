//! The session configuration carried by `session.update`, `session.created` and
//! `session.updated`, in the GA nested shape (`audio.input.*`, `audio.output.*`), plus parley's
//! own settings under a separate `parley` object.
//!
//! Every field is optional because `session.update` is a partial update: a missing field means
//! "leave as is". Fields that can be switched off with an explicit `null` (`turn_detection`,
//! `transcription`, `noise_reduction`) are `Option<Option<T>>`: `None` = not given,
//! `Some(None)` = `null`. Fields of the GA shape that parley does not support (tools, tracing,
//! prompt, ...) are accepted and ignored.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::binary::BinaryCodec;
use parley_audio_io::constants::WIRE_PCM_RATE;

/// A session configuration or a partial update of one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SessionConfig {
    /// `realtime` or `transcription`. The GA API requires it in `session.update`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub session_type: Option<SessionType>,
    /// Server-assigned id (in `session.created` / `session.updated`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `realtime.session` in server events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_modalities: Option<Vec<Modality>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<MaxOutputTokens>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<SessionAudio>,
    /// parley extensions; OpenAI clients never send this and ignore it in replies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parley: Option<ParleySessionConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionType {
    Realtime,
    Transcription,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Text,
    Audio,
}

/// `max_output_tokens`: a number, or the string `"inf"` for no limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxOutputTokens {
    Limit(u32),
    Inf,
}

impl Serialize for MaxOutputTokens {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MaxOutputTokens::Limit(n) => serializer.serialize_u32(*n),
            MaxOutputTokens::Inf => serializer.serialize_str("inf"),
        }
    }
}

impl<'de> Deserialize<'de> for MaxOutputTokens {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = MaxOutputTokens;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a positive integer or \"inf\"")
            }

            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxOutputTokens, E> {
                u32::try_from(v)
                    .map(MaxOutputTokens::Limit)
                    .map_err(|_| E::custom(format_args!("max_output_tokens {v} is too large")))
            }

            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxOutputTokens, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format_args!("max_output_tokens {v} is negative"))),
                }
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxOutputTokens, E> {
                if v == "inf" {
                    Ok(MaxOutputTokens::Inf)
                } else {
                    Err(E::invalid_value(serde::de::Unexpected::Str(v), &self))
                }
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

/// `session.audio`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SessionAudio {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<AudioInputConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<AudioOutputConfig>,
}

/// `session.audio.input`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AudioInputConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub noise_reduction: Option<Option<NoiseReduction>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub transcription: Option<Option<TranscriptionConfig>>,
    /// `Some(None)` (`null`) switches turn detection off: the client commits and asks for
    /// responses itself.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "double_option"
    )]
    pub turn_detection: Option<Option<TurnDetection>>,
}

/// `session.audio.output`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AudioOutputConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<AudioFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub voice: Option<Voice>,
    /// Speaking speed, 0.25 to 1.5 in the GA API.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
}

/// An audio format object. parley only speaks `audio/pcm` at 24 kHz; the G.711 formats are
/// parsed so the engine can refuse them with a clear error instead of a parse failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum AudioFormat {
    #[serde(rename = "audio/pcm")]
    Pcm {
        #[serde(skip_serializing_if = "Option::is_none")]
        rate: Option<u32>,
    },
    #[serde(rename = "audio/pcmu")]
    Pcmu,
    #[serde(rename = "audio/pcma")]
    Pcma,
}

impl AudioFormat {
    /// `{"type":"audio/pcm","rate":24000}`, the only format parley produces.
    pub const fn pcm_wire() -> Self {
        AudioFormat::Pcm {
            rate: Some(WIRE_PCM_RATE),
        }
    }
}

/// `noise_reduction` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoiseReduction {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<NoiseReductionType>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoiseReductionType {
    NearField,
    FarField,
}

/// `transcription` object (input audio transcription).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TranscriptionConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
}

/// `turn_detection` object, tagged by `type`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TurnDetection {
    ServerVad(ServerVad),
    SemanticVad(SemanticVad),
}

/// Energy/VAD based turn detection (`server_vad`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ServerVad {
    /// Activation threshold 0..1 (default 0.5).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Audio kept before detected speech (default 300 ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix_padding_ms: Option<u32>,
    /// Silence that ends a turn (default 500 ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub silence_duration_ms: Option<u32>,
    /// Start a response automatically when speech stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_response: Option<bool>,
    /// Cancel the current response automatically when speech starts (barge-in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupt_response: Option<bool>,
    /// Prompt the user after this much silence following a response's playback.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u32>,
}

/// Model based turn detection (`semantic_vad`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SemanticVad {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eagerness: Option<Eagerness>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub create_response: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interrupt_response: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Eagerness {
    Low,
    Medium,
    High,
    Auto,
}

/// A voice: a name (`"marin"`) or a custom voice object (`{"id": "voice_..."}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Voice {
    Named(String),
    Custom { id: String },
}

/// parley's own session settings, under `session.parley`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ParleySessionConfig {
    /// Binary audio frames instead of base64 JSON audio (see README, "Binary audio").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_audio: Option<BinaryAudioConfig>,
    /// Sampling temperature of the Thinker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling of the Thinker.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Speech shorter than this does not interrupt a response (filters coughs and echo).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_interrupt_speech_ms: Option<u32>,
}

/// `session.parley.binary_audio`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinaryAudioConfig {
    pub enabled: bool,
    /// Codec of the audio frames in both directions; PCM16 when not given.
    #[serde(default)]
    pub codec: BinaryCodec,
}

impl SessionConfig {
    /// Applies a partial update (the `session` of a `session.update`): every field the update
    /// gives replaces the current one, nested objects are merged field by field, an explicit
    /// `null` switches a nullable setting off.
    pub fn apply_update(&mut self, update: SessionConfig) {
        set(&mut self.session_type, update.session_type);
        set(&mut self.id, update.id);
        set(&mut self.object, update.object);
        set(&mut self.model, update.model);
        set(&mut self.instructions, update.instructions);
        set(&mut self.output_modalities, update.output_modalities);
        set(&mut self.max_output_tokens, update.max_output_tokens);
        if let Some(audio) = update.audio {
            let current = self.audio.get_or_insert_with(Default::default);
            if let Some(input) = audio.input {
                let cur = current.input.get_or_insert_with(Default::default);
                set(&mut cur.format, input.format);
                set(&mut cur.noise_reduction, input.noise_reduction);
                set(&mut cur.transcription, input.transcription);
                set(&mut cur.turn_detection, input.turn_detection);
            }
            if let Some(output) = audio.output {
                let cur = current.output.get_or_insert_with(Default::default);
                set(&mut cur.format, output.format);
                set(&mut cur.voice, output.voice);
                set(&mut cur.speed, output.speed);
            }
        }
        if let Some(parley) = update.parley {
            let cur = self.parley.get_or_insert_with(Default::default);
            set(&mut cur.binary_audio, parley.binary_audio);
            set(&mut cur.temperature, parley.temperature);
            set(&mut cur.top_p, parley.top_p);
            set(
                &mut cur.min_interrupt_speech_ms,
                parley.min_interrupt_speech_ms,
            );
        }
    }

    /// The binary audio codec this configuration switches on, if any.
    pub fn binary_codec(&self) -> Option<BinaryCodec> {
        let binary = self.parley.as_ref()?.binary_audio?;
        binary.enabled.then_some(binary.codec)
    }
}

/// Replaces `current` when the update carries a value.
fn set<T>(current: &mut Option<T>, update: Option<T>) {
    if update.is_some() {
        *current = update;
    }
}

/// serde helper telling a missing field (`None`) from an explicit `null` (`Some(None)`).
/// Use with `#[serde(default, skip_serializing_if = "Option::is_none", with = "double_option")]`.
mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, T: Serialize>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        // Only called when the field is present; absent fields take the `default` (None).
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_missing_turn_detection_are_different() {
        let off: AudioInputConfig = serde_json::from_str(r#"{"turn_detection":null}"#).unwrap();
        assert_eq!(off.turn_detection, Some(None));
        let untouched: AudioInputConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(untouched.turn_detection, None);
        assert_eq!(
            serde_json::to_string(&off).unwrap(),
            r#"{"turn_detection":null}"#
        );
        assert_eq!(serde_json::to_string(&untouched).unwrap(), "{}");
    }

    #[test]
    fn max_output_tokens_is_a_number_or_inf() {
        let n: MaxOutputTokens = serde_json::from_str("4096").unwrap();
        assert_eq!(n, MaxOutputTokens::Limit(4096));
        let inf: MaxOutputTokens = serde_json::from_str("\"inf\"").unwrap();
        assert_eq!(inf, MaxOutputTokens::Inf);
        assert_eq!(serde_json::to_string(&inf).unwrap(), "\"inf\"");
        assert_eq!(serde_json::to_string(&n).unwrap(), "4096");
        assert!(serde_json::from_str::<MaxOutputTokens>("\"lots\"").is_err());
        assert!(serde_json::from_str::<MaxOutputTokens>("-1").is_err());
        assert!(serde_json::from_str::<MaxOutputTokens>("1.5").is_err());
    }

    #[test]
    fn voices_are_names_or_ids() {
        let named: Voice = serde_json::from_str("\"marin\"").unwrap();
        assert_eq!(named, Voice::Named("marin".into()));
        let custom: Voice = serde_json::from_str(r#"{"id":"voice_1"}"#).unwrap();
        assert_eq!(
            custom,
            Voice::Custom {
                id: "voice_1".into()
            }
        );
    }

    #[test]
    fn unknown_ga_fields_are_ignored() {
        let json = r#"{"type":"realtime","tools":[{"type":"function","name":"f"}],
            "tracing":"auto","audio":{"input":{"format":{"type":"audio/pcm","rate":24000},
            "noise_reduction":{"type":"far_field"},"future_field":1}}}"#;
        let cfg: SessionConfig = serde_json::from_str(json).unwrap();
        assert_eq!(cfg.session_type, Some(SessionType::Realtime));
        let input = cfg.audio.unwrap().input.unwrap();
        assert_eq!(input.format, Some(AudioFormat::pcm_wire()));
        assert_eq!(
            input.noise_reduction,
            Some(Some(NoiseReduction {
                kind: Some(NoiseReductionType::FarField)
            }))
        );
    }

    #[test]
    fn apply_update_merges_nested_fields_and_nulls() {
        let mut cfg = SessionConfig {
            model: Some("parley".into()),
            instructions: Some("old".into()),
            audio: Some(SessionAudio {
                input: Some(AudioInputConfig {
                    format: Some(AudioFormat::pcm_wire()),
                    turn_detection: Some(Some(TurnDetection::ServerVad(ServerVad::default()))),
                    ..Default::default()
                }),
                output: Some(AudioOutputConfig {
                    voice: Some(Voice::Named("marin".into())),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        };
        let update: SessionConfig = serde_json::from_str(
            r#"{"instructions":"new","audio":{"input":{"turn_detection":null},
                "output":{"speed":1.25}},"parley":{"binary_audio":{"enabled":true,"codec":"opus"}}}"#,
        )
        .unwrap();
        cfg.apply_update(update);
        assert_eq!(cfg.model.as_deref(), Some("parley"));
        assert_eq!(cfg.instructions.as_deref(), Some("new"));
        let audio = cfg.audio.as_ref().unwrap();
        let input = audio.input.as_ref().unwrap();
        assert_eq!(input.format, Some(AudioFormat::pcm_wire()), "kept");
        assert_eq!(input.turn_detection, Some(None), "switched off by null");
        let output = audio.output.as_ref().unwrap();
        assert_eq!(output.voice, Some(Voice::Named("marin".into())), "kept");
        assert_eq!(output.speed, Some(1.25));
        assert_eq!(cfg.binary_codec(), Some(BinaryCodec::Opus));
    }

    #[test]
    fn binary_codec_defaults_to_pcm16_and_disabled_means_none() {
        let cfg: SessionConfig =
            serde_json::from_str(r#"{"parley":{"binary_audio":{"enabled":true}}}"#).unwrap();
        assert_eq!(cfg.binary_codec(), Some(BinaryCodec::Pcm16));
        let off: SessionConfig =
            serde_json::from_str(r#"{"parley":{"binary_audio":{"enabled":false,"codec":"opus"}}}"#)
                .unwrap();
        assert_eq!(off.binary_codec(), None);
        assert_eq!(SessionConfig::default().binary_codec(), None);
    }
}
