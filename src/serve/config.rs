//! `parley serve`'s configuration: defaults, a TOML file, `PARLEY_*` environment variables and
//! command-line flags, in that order of increasing precedence (CLI > env > file > defaults).
//!
//! Every source is read into the same [`Overrides`] shape (every setting optional) and laid
//! over the defaults one after another. The file looks like this (every key optional; an unknown
//! key is an error that names it and the file):
//!
//! ```toml
//! host = "127.0.0.1"
//! port = 8080
//! profile = "cpu"
//! models_dir = "/srv/parley/models"
//! api_key = "..."                 # prefer PARLEY_API_KEY: files get copied around
//! max_sessions = 4
//! shutdown_grace_secs = 10
//!
//! [session]                       # what a new session starts with; clients may change it
//! instructions = "You are a helpful voice assistant."
//! voice = "heart"                # cpu: heart; qwen: a speaker of the checkpoint (Chelsie, Ethan)
//! temperature = 0.7
//! max_output_tokens = 256
//! vad_threshold = 0.5
//! prefix_padding_ms = 300
//! silence_duration_ms = 500
//! min_interrupt_speech_ms = 300
//! ```

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use parley_models::Profile;
use serde::Deserialize;

use super::auth::ApiKey;

/// The port `parley serve` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 8080;
/// Loopback only by default: exposing the server is a deliberate `--host 0.0.0.0`.
pub const DEFAULT_HOST: &str = "127.0.0.1";
/// Concurrent sessions; on this 2-core machine more than a few would all get slow.
pub const DEFAULT_MAX_SESSIONS: usize = 4;
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Everything `parley serve` needs to start.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeConfig {
    pub host: String,
    pub port: u16,
    pub profile: Profile,
    pub models_dir: PathBuf,
    /// The qwen profile's checkpoint: a hub id (`Qwen/Qwen2.5-Omni-3B`) or a directory.
    pub model: Option<String>,
    /// When set, upgrades need `Authorization: Bearer <key>`.
    pub api_key: Option<ApiKey>,
    /// Sessions served at once; the next one is refused.
    pub max_sessions: usize,
    /// On Ctrl-C/SIGTERM, how long running sessions get to finish before they are closed.
    pub shutdown_grace: Duration,
    pub session: SessionDefaults,
}

/// What a new session starts with (a client can change most of it with `session.update`).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDefaults {
    /// The system prompt.
    pub instructions: String,
    /// `None`: the Talker's own voice.
    pub voice: Option<String>,
    /// Thinker sampling temperature; 0 is greedy.
    pub temperature: f64,
    /// Longest answer in tokens.
    pub max_output_tokens: usize,
    /// Speech probability above which the VAD hears speech, in (0, 1).
    pub vad_threshold: f32,
    /// Audio kept before the detected start of speech.
    pub prefix_padding_ms: u32,
    /// Silence that ends the user's turn (the endpoint).
    pub silence_duration_ms: u32,
    /// Speech shorter than this while parley talks ("mm-hmm") does not interrupt it.
    pub min_interrupt_speech_ms: u32,
}

impl Default for SessionDefaults {
    fn default() -> Self {
        SessionDefaults {
            instructions:
                "You are a helpful voice assistant. Answer briefly, in plain spoken sentences."
                    .to_owned(),
            voice: None,
            temperature: 0.7,
            max_output_tokens: 256,
            vad_threshold: 0.5,
            prefix_padding_ms: 300,
            silence_duration_ms: 500,
            min_interrupt_speech_ms: 300,
        }
    }
}

impl ServeConfig {
    /// The defaults, before any file, environment or flag.
    pub fn defaults() -> Self {
        ServeConfig {
            host: DEFAULT_HOST.to_owned(),
            port: DEFAULT_PORT,
            profile: Profile::Cpu,
            models_dir: parley_models::default_models_dir(),
            model: None,
            api_key: None,
            max_sessions: DEFAULT_MAX_SESSIONS,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            session: SessionDefaults::default(),
        }
    }

    /// Resolves the configuration of this process: `args`, the process environment, and the
    /// file named by `--config` or `PARLEY_CONFIG`.
    pub fn load(args: &ServeArgs) -> Result<Self, ConfigError> {
        Self::load_with_env(args, |name| std::env::var(name).ok())
    }

    /// [`load`](Self::load) with the environment given as a lookup (tests).
    pub fn load_with_env(
        args: &ServeArgs,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // Empty variables count as unset, as shells make "unsetting" by `VAR=` common.
        let env = |name: &str| env(name).filter(|value| !value.is_empty());
        let file_path = args
            .config
            .clone()
            .or_else(|| env(ENV_CONFIG).map(PathBuf::from));
        let file = match &file_path {
            Some(path) => Overrides::from_file(path)?,
            None => Overrides::default(),
        };
        let mut config = Self::defaults();
        config.apply(file);
        config.apply(Overrides::from_env(env)?);
        config.apply(args.to_overrides());
        config.validate()?;
        Ok(config)
    }

    fn apply(&mut self, layer: Overrides) {
        let Overrides {
            host,
            port,
            profile,
            models_dir,
            model,
            api_key,
            max_sessions,
            shutdown_grace_secs,
            session,
        } = layer;
        set(&mut self.host, host);
        set(&mut self.port, port);
        set(&mut self.profile, profile);
        set(&mut self.models_dir, models_dir);
        if model.is_some() {
            self.model = model;
        }
        if api_key.is_some() {
            self.api_key = api_key;
        }
        set(&mut self.max_sessions, max_sessions);
        set(
            &mut self.shutdown_grace,
            shutdown_grace_secs.map(Duration::from_secs),
        );
        let SessionOverrides {
            instructions,
            voice,
            temperature,
            max_output_tokens,
            vad_threshold,
            prefix_padding_ms,
            silence_duration_ms,
            min_interrupt_speech_ms,
        } = session;
        let s = &mut self.session;
        set(&mut s.instructions, instructions);
        if voice.is_some() {
            s.voice = voice;
        }
        set(&mut s.temperature, temperature);
        set(&mut s.max_output_tokens, max_output_tokens);
        set(&mut s.vad_threshold, vad_threshold);
        set(&mut s.prefix_padding_ms, prefix_padding_ms);
        set(&mut s.silence_duration_ms, silence_duration_ms);
        set(&mut s.min_interrupt_speech_ms, min_interrupt_speech_ms);
    }

    /// Values every source could get wrong, checked once on the merged result.
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid =
            |setting: &'static str, message: String| Err(ConfigError::Invalid { setting, message });
        if self.host.trim().is_empty() {
            return invalid("host", "is empty".to_owned());
        }
        if self.max_sessions == 0 {
            return invalid("max_sessions", "must be at least 1".to_owned());
        }
        let s = &self.session;
        if !(s.temperature.is_finite() && s.temperature >= 0.0) {
            return invalid(
                "temperature",
                format!("{} is not a number >= 0", s.temperature),
            );
        }
        if s.max_output_tokens == 0 {
            return invalid("max_output_tokens", "must be at least 1".to_owned());
        }
        if !(s.vad_threshold > 0.0 && s.vad_threshold < 1.0) {
            return invalid(
                "vad_threshold",
                format!("{} is not between 0 and 1", s.vad_threshold),
            );
        }
        if s.silence_duration_ms == 0 {
            return invalid("silence_duration_ms", "must be at least 1".to_owned());
        }
        Ok(())
    }
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

/// A configuration that cannot be used. Never contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A syntax error, an unknown key or a mistyped value; `message` names the key.
    #[error("config file {}: {message}", path.display())]
    File { path: PathBuf, message: String },
    #[error("environment variable {name}: {message}")]
    Env { name: &'static str, message: String },
    #[error("setting `{setting}` {message}")]
    Invalid {
        setting: &'static str,
        message: String,
    },
}

/// One source's settings; `None` leaves the setting to the sources below it. Also the TOML
/// file's schema.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    pub host: Option<String>,
    pub port: Option<u16>,
    #[serde(default, deserialize_with = "deserialize_profile")]
    pub profile: Option<Profile>,
    pub models_dir: Option<PathBuf>,
    pub model: Option<String>,
    pub api_key: Option<ApiKey>,
    pub max_sessions: Option<usize>,
    pub shutdown_grace_secs: Option<u64>,
    #[serde(default)]
    pub session: SessionOverrides,
}

/// The `[session]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionOverrides {
    pub instructions: Option<String>,
    pub voice: Option<String>,
    pub temperature: Option<f64>,
    pub max_output_tokens: Option<usize>,
    pub vad_threshold: Option<f32>,
    pub prefix_padding_ms: Option<u32>,
    pub silence_duration_ms: Option<u32>,
    pub min_interrupt_speech_ms: Option<u32>,
}

fn parse_profile(text: &str) -> Result<Profile, String> {
    Profile::from_str(text, true).map_err(|_| {
        let known: Vec<String> = Profile::value_variants()
            .iter()
            .filter_map(|p| p.to_possible_value())
            .map(|v| v.get_name().to_owned())
            .collect();
        format!("unknown profile `{text}` (known: {})", known.join(", "))
    })
}

fn deserialize_profile<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Profile>, D::Error> {
    let text = String::deserialize(deserializer)?;
    parse_profile(&text)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// "line N, `key`: what is wrong". toml's own `Display` quotes the offending line, which could
/// be the `api_key` line, so only its message is used (which never holds a string value we
/// reject: [`ApiKey`] errors do not repeat the key).
fn describe_toml_error(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim_end();
    let Some(span) = error.span() else {
        return message.to_owned();
    };
    let start = span.start.min(text.len());
    let line_number = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) if !key.trim().is_empty() => {
            format!("line {line_number}, `{}`: {message}", key.trim())
        }
        _ => format!("line {line_number}: {message}"),
    }
}

/// `--config` falls back to this variable.
pub const ENV_CONFIG: &str = "PARLEY_CONFIG";

impl Overrides {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.to_owned(),
            message: describe_toml_error(&text, &e),
        })
    }

    /// Reads the `PARLEY_*` variables (names in [`ServeArgs`]' help).
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        fn parsed<T: FromStr>(
            env: &impl Fn(&str) -> Option<String>,
            name: &'static str,
        ) -> Result<Option<T>, ConfigError>
        where
            T::Err: std::fmt::Display,
        {
            env(name)
                .map(|text| {
                    text.trim().parse::<T>().map_err(|e| ConfigError::Env {
                        name,
                        message: e.to_string(),
                    })
                })
                .transpose()
        }
        let profile = env("PARLEY_PROFILE")
            .map(|text| {
                parse_profile(text.trim()).map_err(|message| ConfigError::Env {
                    name: "PARLEY_PROFILE",
                    message,
                })
            })
            .transpose()?;
        Ok(Overrides {
            host: env("PARLEY_HOST"),
            port: parsed(&env, "PARLEY_PORT")?,
            profile,
            // The same variable `parley models` uses.
            models_dir: env(parley_models::MODELS_DIR_ENV).map(PathBuf::from),
            model: env("PARLEY_MODEL"),
            api_key: parsed(&env, "PARLEY_API_KEY")?,
            max_sessions: parsed(&env, "PARLEY_MAX_SESSIONS")?,
            shutdown_grace_secs: parsed(&env, "PARLEY_SHUTDOWN_GRACE_SECS")?,
            session: SessionOverrides {
                instructions: env("PARLEY_INSTRUCTIONS"),
                voice: env("PARLEY_VOICE"),
                temperature: parsed(&env, "PARLEY_TEMPERATURE")?,
                max_output_tokens: parsed(&env, "PARLEY_MAX_OUTPUT_TOKENS")?,
                vad_threshold: parsed(&env, "PARLEY_VAD_THRESHOLD")?,
                prefix_padding_ms: parsed(&env, "PARLEY_PREFIX_PADDING_MS")?,
                silence_duration_ms: parsed(&env, "PARLEY_SILENCE_DURATION_MS")?,
                min_interrupt_speech_ms: parsed(&env, "PARLEY_MIN_INTERRUPT_SPEECH_MS")?,
            },
        })
    }
}

/// `parley serve`'s flags. Each one overrides its environment variable, which overrides the
/// config file, which overrides the default.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML config file [env: PARLEY_CONFIG].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on; 0.0.0.0 for every interface [env: PARLEY_HOST] [default: 127.0.0.1].
    #[arg(long)]
    pub host: Option<String>,
    /// [env: PARLEY_PORT] [default: 8080].
    #[arg(long)]
    pub port: Option<u16>,
    /// Which models to serve [env: PARLEY_PROFILE] [default: cpu].
    #[arg(long, value_enum)]
    pub profile: Option<Profile>,
    /// Where models are installed [env: PARLEY_MODELS] [default: ~/.cache/parley/models].
    #[arg(long, value_name = "DIR")]
    pub models_dir: Option<PathBuf>,
    /// The qwen profile's checkpoint: `Qwen/Qwen2.5-Omni-3B`, `-7B` or a directory
    /// [env: PARLEY_MODEL].
    #[arg(long, value_name = "ID|DIR")]
    pub model: Option<String>,
    /// Require `Authorization: Bearer <KEY>` [env: PARLEY_API_KEY]. The environment variable
    /// keeps the key out of `ps` output.
    #[arg(long, value_name = "KEY")]
    pub api_key: Option<ApiKey>,
    /// Sessions served at once; the next one is refused [env: PARLEY_MAX_SESSIONS] [default: 4].
    #[arg(long, value_name = "N")]
    pub max_sessions: Option<usize>,
    /// On Ctrl-C/SIGTERM, seconds running sessions get to finish
    /// [env: PARLEY_SHUTDOWN_GRACE_SECS] [default: 10].
    #[arg(long, value_name = "SECS")]
    pub shutdown_grace_secs: Option<u64>,
    /// System prompt of new sessions [env: PARLEY_INSTRUCTIONS].
    #[arg(long)]
    pub instructions: Option<String>,
    /// Voice of new sessions [env: PARLEY_VOICE].
    #[arg(long)]
    pub voice: Option<String>,
    /// Thinker temperature, 0 = greedy [env: PARLEY_TEMPERATURE] [default: 0.7].
    #[arg(long)]
    pub temperature: Option<f64>,
    /// Longest answer in tokens [env: PARLEY_MAX_OUTPUT_TOKENS] [default: 256].
    #[arg(long, value_name = "N")]
    pub max_output_tokens: Option<usize>,
    /// VAD speech threshold, 0..1 [env: PARLEY_VAD_THRESHOLD] [default: 0.5].
    #[arg(long)]
    pub vad_threshold: Option<f32>,
    /// Audio kept before detected speech, ms [env: PARLEY_PREFIX_PADDING_MS] [default: 300].
    #[arg(long, value_name = "MS")]
    pub prefix_padding_ms: Option<u32>,
    /// Silence that ends a turn, ms [env: PARLEY_SILENCE_DURATION_MS] [default: 500].
    #[arg(long, value_name = "MS")]
    pub silence_duration_ms: Option<u32>,
    /// Shortest speech that interrupts parley, ms [env: PARLEY_MIN_INTERRUPT_SPEECH_MS]
    /// [default: 300].
    #[arg(long, value_name = "MS")]
    pub min_interrupt_speech_ms: Option<u32>,
}

impl ServeArgs {
    fn to_overrides(&self) -> Overrides {
        Overrides {
            host: self.host.clone(),
            port: self.port,
            profile: self.profile,
            models_dir: self.models_dir.clone(),
            model: self.model.clone(),
            api_key: self.api_key.clone(),
            max_sessions: self.max_sessions,
            shutdown_grace_secs: self.shutdown_grace_secs,
            session: SessionOverrides {
                instructions: self.instructions.clone(),
                voice: self.voice.clone(),
                temperature: self.temperature,
                max_output_tokens: self.max_output_tokens,
                vad_threshold: self.vad_threshold,
                prefix_padding_ms: self.prefix_padding_ms,
                silence_duration_ms: self.silence_duration_ms,
                min_interrupt_speech_ms: self.min_interrupt_speech_ms,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn args(flags: &[&str]) -> ServeArgs {
        TestCli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))
            .unwrap()
            .serve
    }

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn write_file(dir: &tempfile::TempDir, text: &str) -> PathBuf {
        let path = dir.path().join("parley.toml");
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn defaults_apply_without_any_source() {
        let config = ServeConfig::load_with_env(&args(&[]), env(&[])).unwrap();
        assert_eq!(config.host, "127.0.0.1");
        assert_eq!(config.port, 8080);
        assert_eq!(config.profile, Profile::Cpu);
        assert_eq!(config.api_key, None);
        assert_eq!(config.max_sessions, 4);
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
        assert_eq!(config.session.min_interrupt_speech_ms, 300);
        assert_eq!(config.session.silence_duration_ms, 500);
    }

    #[test]
    fn cli_beats_env_beats_file_beats_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            &dir,
            r#"
                host = "0.0.0.0"
                port = 9000
                max_sessions = 2
                shutdown_grace_secs = 3
                api_key = "from-file"
                [session]
                temperature = 0.1
                voice = "file-voice"
                silence_duration_ms = 700
                min_interrupt_speech_ms = 200
            "#,
        );
        let file_arg = file.to_str().unwrap();
        let environment = env(&[
            ("PARLEY_PORT", "9100"),
            ("PARLEY_MAX_SESSIONS", "3"),
            ("PARLEY_API_KEY", "from-env"),
            ("PARLEY_VOICE", "env-voice"),
            ("PARLEY_SILENCE_DURATION_MS", "600"),
            ("PARLEY_MODELS", "/models/env"),
            ("PARLEY_HOST", ""), // empty = unset: the file's host stays
        ]);
        let config = ServeConfig::load_with_env(
            &args(&[
                "--config",
                file_arg,
                "--port",
                "9200",
                "--voice",
                "cli-voice",
                "--api-key",
                "from-cli",
            ]),
            environment,
        )
        .unwrap();
        // CLI over env over file.
        assert_eq!(config.port, 9200);
        assert_eq!(config.session.voice.as_deref(), Some("cli-voice"));
        assert!(config.api_key.as_ref().unwrap().matches("from-cli"));
        // Env over file.
        assert_eq!(config.max_sessions, 3);
        assert_eq!(config.session.silence_duration_ms, 600);
        assert_eq!(config.models_dir, PathBuf::from("/models/env"));
        // File over defaults.
        assert_eq!(config.host, "0.0.0.0");
        assert_eq!(config.shutdown_grace, Duration::from_secs(3));
        assert_eq!(config.session.temperature, 0.1);
        assert_eq!(config.session.min_interrupt_speech_ms, 200);
        // Defaults where nobody spoke.
        assert_eq!(config.session.max_output_tokens, 256);
        assert_eq!(config.session.prefix_padding_ms, 300);

        // The file can also come from PARLEY_CONFIG; the env key then beats the file's.
        let config = ServeConfig::load_with_env(
            &args(&[]),
            env(&[("PARLEY_CONFIG", file_arg), ("PARLEY_API_KEY", "from-env")]),
        )
        .unwrap();
        assert_eq!(config.port, 9000);
        assert!(config.api_key.as_ref().unwrap().matches("from-env"));
        let from_file =
            ServeConfig::load_with_env(&args(&[]), env(&[("PARLEY_CONFIG", file_arg)])).unwrap();
        assert!(from_file.api_key.unwrap().matches("from-file"));
    }

    #[test]
    fn bad_files_name_the_file_and_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let check = |text: &str, expected: &[&str]| {
            let path = write_file(&dir, text);
            let err =
                ServeConfig::load_with_env(&args(&["--config", path.to_str().unwrap()]), env(&[]))
                    .unwrap_err();
            let message = err.to_string();
            assert!(message.contains("parley.toml"), "{message}");
            for part in expected {
                assert!(message.contains(part), "{message} lacks {part}");
            }
        };
        check("prot = 9000\n", &["prot"]);
        check("[session]\nvoise = \"x\"\n", &["voise"]);
        check("port = \"eighty\"\n", &["port"]);
        check("port = 70000\n", &["port"]);
        check("profile = \"gpu\"\n", &["gpu", "cpu"]);
        check("port = \n", &["line 1"]);
        check("api_key = \"\"\n", &["api_key", "empty"]);

        let missing = dir.path().join("absent.toml");
        let err =
            ServeConfig::load_with_env(&args(&["--config", missing.to_str().unwrap()]), env(&[]))
                .unwrap_err();
        assert!(matches!(err, ConfigError::ReadFile { .. }), "{err}");
        assert!(err.to_string().contains("absent.toml"));
    }

    #[test]
    fn bad_env_and_flag_values_are_named() {
        let err =
            ServeConfig::load_with_env(&args(&[]), env(&[("PARLEY_PORT", "http")])).unwrap_err();
        assert!(err.to_string().contains("PARLEY_PORT"), "{err}");
        let err =
            ServeConfig::load_with_env(&args(&[]), env(&[("PARLEY_PROFILE", "tpu")])).unwrap_err();
        assert!(err.to_string().contains("PARLEY_PROFILE"), "{err}");
        let err =
            ServeConfig::load_with_env(&args(&["--max-sessions", "0"]), env(&[])).unwrap_err();
        assert!(err.to_string().contains("max_sessions"), "{err}");
        let err =
            ServeConfig::load_with_env(&args(&["--vad-threshold", "1.5"]), env(&[])).unwrap_err();
        assert!(err.to_string().contains("vad_threshold"), "{err}");
        assert!(TestCli::try_parse_from(["serve", "--api-key", "has space"]).is_err());
        assert!(TestCli::try_parse_from(["serve", "--port", "-1"]).is_err());
    }

    #[test]
    fn the_api_key_never_shows_in_debug_or_errors() {
        let secret = "sk-very-secret-123";
        let dir = tempfile::tempdir().unwrap();
        let path = write_file(&dir, &format!("api_key = \"{secret}\"\nport = \"x\"\n"));
        let cli = TestCli::try_parse_from(["serve", "--api-key", secret]).unwrap();
        assert!(!format!("{cli:?}").contains(secret));
        let config = ServeConfig::load_with_env(&cli.serve, env(&[])).unwrap();
        assert!(!format!("{config:?}").contains(secret));
        let err =
            ServeConfig::load_with_env(&args(&["--config", path.to_str().unwrap()]), env(&[]))
                .unwrap_err();
        assert!(!err.to_string().contains(secret), "{err}");
        // Not even when the key's own line is the bad one.
        let path = write_file(&dir, &format!("api_key = \"{secret} x\"\n"));
        let err =
            ServeConfig::load_with_env(&args(&["--config", path.to_str().unwrap()]), env(&[]))
                .unwrap_err();
        assert!(err.to_string().contains("api_key"), "{err}");
        assert!(!err.to_string().contains(secret), "{err}");
    }
}
