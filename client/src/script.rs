//! Scripts: what the simulated person says and when. See the crate documentation for the file
//! format.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parley_audio_io::constants::WIRE_PCM_RATE;
use parley_audio_io::wav::read_wav;
use serde::Deserialize;

use crate::error::ClientError;
use crate::speech::{SpeechBounds, speech_bounds};

/// How long [`Step::WaitForAnswer`] waits when the script does not say.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

/// One step of a script. Audio is always flowing: between utterances the driver streams
/// silence, as a real microphone would.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stream the WAV (resampled to 24 kHz) at real-time pace, in 20 ms frames.
    Say(PathBuf),
    /// Stream this much silence.
    Pause(Duration),
    /// Stream silence until the answer to the last utterance is complete (`response.done`) and
    /// has finished playing, or until `timeout` (the turn is then marked timed out).
    WaitForAnswer { timeout: Duration },
    /// Stream silence until `after` of the current answer's audio has been played, then say the
    /// WAV over it. If the answer ends (or `timeout` passes) first, the WAV is said anyway and the
    /// turn is marked as a missed barge-in.
    BargeIn {
        after: Duration,
        wav: PathBuf,
        timeout: Duration,
    },
}

/// A list of steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub steps: Vec<Step>,
}

/// The file format (JSON or TOML), one entry per step.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptFile {
    /// Default timeout of `wait_for_answer` and `barge_in` steps.
    #[serde(default)]
    answer_timeout_ms: Option<u64>,
    steps: Vec<StepSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum StepSpec {
    Say(PathBuf),
    Pause {
        ms: u64,
    },
    WaitForAnswer {
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
    BargeIn {
        after_ms: u64,
        wav: PathBuf,
        #[serde(default)]
        timeout_ms: Option<u64>,
    },
}

impl Script {
    /// The script of `--input a.wav --input b.wav`: say each WAV and wait for its answer.
    pub fn from_inputs(wavs: &[PathBuf], answer_timeout: Duration) -> Result<Script, ClientError> {
        if wavs.is_empty() {
            return Err(ClientError::EmptyScript);
        }
        let steps = wavs
            .iter()
            .flat_map(|wav| {
                [
                    Step::Say(wav.clone()),
                    Step::WaitForAnswer {
                        timeout: answer_timeout,
                    },
                ]
            })
            .collect();
        Ok(Script { steps })
    }

    /// Reads a script file: TOML when the name ends in `.toml`, JSON otherwise. Relative WAV
    /// paths are relative to the script's directory.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Script, ClientError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ClientError::ScriptIo {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let is_toml = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"));
        let parsed = if is_toml {
            toml::from_str::<ScriptFile>(&text).map_err(|e| e.to_string())
        } else {
            serde_json::from_str::<ScriptFile>(&text).map_err(|e| e.to_string())
        };
        let file = parsed.map_err(|message| ClientError::Script {
            path: path.to_path_buf(),
            message,
        })?;
        Self::from_spec(file, base).map_err(|message| ClientError::Script {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Parses a JSON script; relative WAV paths are taken relative to `base`.
    pub fn from_json_str(text: &str, base: &Path) -> Result<Script, ClientError> {
        let file: ScriptFile =
            serde_json::from_str(text).map_err(|e| inline_error(e.to_string()))?;
        Self::from_spec(file, base).map_err(inline_error)
    }

    /// Parses a TOML script; relative WAV paths are taken relative to `base`.
    pub fn from_toml_str(text: &str, base: &Path) -> Result<Script, ClientError> {
        let file: ScriptFile = toml::from_str(text).map_err(|e| inline_error(e.to_string()))?;
        Self::from_spec(file, base).map_err(inline_error)
    }

    fn from_spec(file: ScriptFile, base: &Path) -> Result<Script, String> {
        let default_timeout = file
            .answer_timeout_ms
            .map_or(DEFAULT_ANSWER_TIMEOUT, Duration::from_millis);
        let timeout = |ms: Option<u64>| ms.map_or(default_timeout, Duration::from_millis);
        let steps = file
            .steps
            .into_iter()
            .map(|spec| match spec {
                StepSpec::Say(wav) => Step::Say(base.join(wav)),
                StepSpec::Pause { ms } => Step::Pause(Duration::from_millis(ms)),
                StepSpec::WaitForAnswer { timeout_ms } => Step::WaitForAnswer {
                    timeout: timeout(timeout_ms),
                },
                StepSpec::BargeIn {
                    after_ms,
                    wav,
                    timeout_ms,
                } => Step::BargeIn {
                    after: Duration::from_millis(after_ms),
                    wav: base.join(wav),
                    timeout: timeout(timeout_ms),
                },
            })
            .collect();
        let script = Script { steps };
        script.validate()?;
        Ok(script)
    }

    /// A script must say something, and a barge-in needs an earlier utterance whose answer it
    /// can interrupt.
    fn validate(&self) -> Result<(), String> {
        let mut said = false;
        for (i, step) in self.steps.iter().enumerate() {
            match step {
                Step::Say(_) => said = true,
                Step::BargeIn { .. } if !said => {
                    return Err(format!(
                        "step {}: a barge_in needs an earlier `say` whose answer it interrupts",
                        i + 1
                    ));
                }
                _ => {}
            }
        }
        if said {
            Ok(())
        } else {
            Err("the script has no `say` step".to_owned())
        }
    }

    /// Reads every WAV (each file once), resampled to 24 kHz, and finds its speech.
    pub fn load(&self) -> Result<LoadedScript, ClientError> {
        let mut cache: HashMap<PathBuf, Arc<Utterance>> = HashMap::new();
        let mut utterance = |path: &PathBuf| -> Result<Arc<Utterance>, ClientError> {
            if let Some(u) = cache.get(path) {
                return Ok(u.clone());
            }
            let u = Arc::new(Utterance::load(path)?);
            cache.insert(path.clone(), u.clone());
            Ok(u)
        };
        let mut steps = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            steps.push(match step {
                Step::Say(path) => LoadedStep::Say(utterance(path)?),
                Step::Pause(d) => LoadedStep::Pause(*d),
                Step::WaitForAnswer { timeout } => LoadedStep::WaitForAnswer { timeout: *timeout },
                Step::BargeIn {
                    after,
                    wav,
                    timeout,
                } => LoadedStep::BargeIn {
                    after: *after,
                    utterance: utterance(wav)?,
                    timeout: *timeout,
                },
            });
        }
        Ok(LoadedScript { steps })
    }
}

fn inline_error(message: String) -> ClientError {
    ClientError::Script {
        path: PathBuf::from("<inline>"),
        message,
    }
}

/// A WAV ready to stream: 24 kHz mono samples and where the speech is.
#[derive(Debug, Clone)]
pub struct Utterance {
    pub path: PathBuf,
    /// Mono at [`WIRE_PCM_RATE`].
    pub samples: Vec<f32>,
    pub speech: SpeechBounds,
}

impl Utterance {
    /// Reads `path` at 24 kHz and finds its speech; a file without speech is an error.
    pub fn load(path: &Path) -> Result<Utterance, ClientError> {
        let samples = read_wav(path, WIRE_PCM_RATE)?;
        Self::from_samples(path.to_path_buf(), samples)
    }

    /// An utterance from 24 kHz samples (`path` only names it).
    pub fn from_samples(path: PathBuf, samples: Vec<f32>) -> Result<Utterance, ClientError> {
        let speech = speech_bounds(&samples, WIRE_PCM_RATE)
            .ok_or_else(|| ClientError::NoSpeech { path: path.clone() })?;
        Ok(Utterance {
            path,
            samples,
            speech,
        })
    }

    /// The file name, for display.
    pub fn name(&self) -> String {
        self.path.file_name().map_or_else(
            || self.path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    }
}

/// A script with its audio loaded. Cheap to share between bench sessions (`Arc`).
#[derive(Debug, Clone)]
pub struct LoadedScript {
    pub steps: Vec<LoadedStep>,
}

/// A [`Step`] with its audio.
#[derive(Debug, Clone)]
pub enum LoadedStep {
    Say(Arc<Utterance>),
    Pause(Duration),
    WaitForAnswer {
        timeout: Duration,
    },
    BargeIn {
        after: Duration,
        utterance: Arc<Utterance>,
        timeout: Duration,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_list_says_and_waits_for_each() {
        let s =
            Script::from_inputs(&["a.wav".into(), "b.wav".into()], Duration::from_secs(5)).unwrap();
        let wait = Step::WaitForAnswer {
            timeout: Duration::from_secs(5),
        };
        assert_eq!(
            s.steps,
            vec![
                Step::Say("a.wav".into()),
                wait.clone(),
                Step::Say("b.wav".into()),
                wait
            ]
        );
        assert!(matches!(
            Script::from_inputs(&[], Duration::from_secs(5)),
            Err(ClientError::EmptyScript)
        ));
    }

    const TOML: &str = r#"
answer_timeout_ms = 30000

[[steps]]
say = "q.wav"

[[steps]]
barge_in = { after_ms = 1500, wav = "/abs/mm_hmm.wav" }

[[steps]]
wait_for_answer = {}

[[steps]]
pause = { ms = 400 }

[[steps]]
say = "q2.wav"

[[steps]]
wait_for_answer = { timeout_ms = 9000 }
"#;

    const JSON: &str = r#"{"answer_timeout_ms": 30000, "steps": [
        {"say": "q.wav"},
        {"barge_in": {"after_ms": 1500, "wav": "/abs/mm_hmm.wav"}},
        {"wait_for_answer": {}},
        {"pause": {"ms": 400}},
        {"say": "q2.wav"},
        {"wait_for_answer": {"timeout_ms": 9000}}
    ]}"#;

    fn expected() -> Vec<Step> {
        let t = Duration::from_secs(30);
        vec![
            Step::Say("/base/q.wav".into()),
            Step::BargeIn {
                after: Duration::from_millis(1500),
                wav: "/abs/mm_hmm.wav".into(),
                timeout: t,
            },
            Step::WaitForAnswer { timeout: t },
            Step::Pause(Duration::from_millis(400)),
            Step::Say("/base/q2.wav".into()),
            Step::WaitForAnswer {
                timeout: Duration::from_secs(9),
            },
        ]
    }

    #[test]
    fn toml_and_json_scripts_parse_to_the_same_steps() {
        let base = Path::new("/base");
        assert_eq!(Script::from_toml_str(TOML, base).unwrap().steps, expected());
        assert_eq!(Script::from_json_str(JSON, base).unwrap().steps, expected());
    }

    #[test]
    fn script_files_resolve_paths_against_their_directory() {
        let dir = tempfile::tempdir().unwrap();
        let toml_path = dir.path().join("s.toml");
        std::fs::write(&toml_path, TOML).unwrap();
        let s = Script::from_file(&toml_path).unwrap();
        assert_eq!(s.steps[0], Step::Say(dir.path().join("q.wav")));
        let json_path = dir.path().join("s.json");
        std::fs::write(&json_path, JSON).unwrap();
        assert_eq!(Script::from_file(&json_path).unwrap().steps.len(), 6);
    }

    #[test]
    fn bad_scripts_say_what_is_wrong() {
        let base = Path::new("/");
        let typo = r#"{"steps":[{"sai":"a.wav"}]}"#;
        let err = Script::from_json_str(typo, base).unwrap_err().to_string();
        assert!(err.contains("sai"), "{err}");
        let barge_first = "[[steps]]\nbarge_in = { after_ms = 1, wav = \"a.wav\" }\n";
        let err = Script::from_toml_str(barge_first, base)
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs an earlier `say`"), "{err}");
        let silent = r#"{"steps":[{"pause":{"ms":100}}]}"#;
        let err = Script::from_json_str(silent, base).unwrap_err().to_string();
        assert!(err.contains("no `say`"), "{err}");
        let missing = Script::from_file("/nonexistent/script.toml")
            .unwrap_err()
            .to_string();
        assert!(missing.contains("/nonexistent/script.toml"), "{missing}");
    }

    #[test]
    fn loading_reads_each_wav_once_and_rejects_silence() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tone.wav");
        let tone: Vec<f32> = (0..16_000).map(|i| 0.3 * (i as f32 * 0.05).sin()).collect();
        parley_audio_io::wav::write_wav(&wav, &tone, 16_000).unwrap();
        let s = Script::from_inputs(&[wav.clone(), wav.clone()], Duration::from_secs(1)).unwrap();
        let loaded = s.load().unwrap();
        let (LoadedStep::Say(a), LoadedStep::Say(b)) = (&loaded.steps[0], &loaded.steps[2]) else {
            panic!("expected two Say steps");
        };
        assert!(Arc::ptr_eq(a, b));
        assert_eq!(a.samples.len(), 24_000, "resampled 16 kHz -> 24 kHz");

        let silent = dir.path().join("silent.wav");
        parley_audio_io::wav::write_wav(&silent, &[0.0; 1600], 16_000).unwrap();
        let err = Script::from_inputs(&[silent], Duration::from_secs(1))
            .unwrap()
            .load()
            .unwrap_err();
        assert!(matches!(err, ClientError::NoSpeech { .. }), "{err}");
    }
}
