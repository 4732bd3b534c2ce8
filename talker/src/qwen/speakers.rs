//! Qwen2.5-Omni's voices: `spk_dict.pt` from the checkpoint, one entry per speaker (Chelsie,
//! Ethan) with the text-BOS token the Talker starts from, the speaker vector `cond`
//! `[1, enc_emb_dim]` and the reference mel `ref_mel` `[1, T, 80]` the DiT conditions on.
//!
//! The checkpoint ships a torch pickle; [`Speakers::from_torch`] reads it directly (candle's
//! pickle reader plus the archive's `data.pkl` for the plain-int BOS tokens) and
//! [`Speakers::save`] / [`Speakers::load`] keep a converted copy as safetensors
//! (`<name>.cond`, `<name>.ref_mel`, `<name>.bos_token` i64 `[1]`), which needs no pickle
//! reading at start-up (`parley models speakers`).

use std::collections::{BTreeMap, HashMap};
use std::io::BufReader;
use std::path::{Path, PathBuf};

use candle_core::pickle::{Object, PthTensors, Stack};
use candle_core::{DType, Device, Tensor};

/// The voice the published checkpoints use when none is asked for.
pub const DEFAULT_SPEAKER: &str = "Chelsie";

#[derive(Debug, thiserror::Error)]
pub enum SpeakersError {
    #[error("{path}: {message}")]
    Read { path: PathBuf, message: String },
    #[error("{path}: speaker {speaker:?} has no {field}")]
    MissingField {
        path: PathBuf,
        speaker: String,
        field: &'static str,
    },
    #[error("unknown speaker {name:?}; this checkpoint has {available}")]
    UnknownSpeaker { name: String, available: String },
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// One voice.
#[derive(Debug, Clone)]
pub struct Speaker {
    pub name: String,
    /// Thinker-vocabulary id whose embedding starts the Talker's text track.
    pub bos_token: u32,
    /// `[1, enc_emb_dim]` f32.
    pub cond: Tensor,
    /// `[1, T, mel_dim]` f32.
    pub ref_mel: Tensor,
}

/// The voices of a checkpoint, by name.
#[derive(Debug, Clone)]
pub struct Speakers {
    by_name: BTreeMap<String, Speaker>,
}

impl Speakers {
    /// Reads a checkpoint's `spk_dict.pt` (a torch pickle of
    /// `{name: {"bos_token": int, "cond": Tensor, "ref_mel": Tensor}}`).
    pub fn from_torch(path: &Path) -> Result<Self, SpeakersError> {
        let read_err = |message: String| SpeakersError::Read {
            path: path.to_path_buf(),
            message,
        };
        let missing = |speaker: &str, field| SpeakersError::MissingField {
            path: path.to_path_buf(),
            speaker: speaker.to_string(),
            field,
        };
        let root = read_pickle(path).map_err(read_err)?;
        let Object::Dict(entries) = root else {
            return Err(read_err("expected a dict of speakers".into()));
        };
        let mut by_name = BTreeMap::new();
        for (key, value) in entries {
            let Object::Unicode(name) = key else {
                continue;
            };
            let Object::Dict(fields) = value else {
                return Err(read_err(format!("speaker {name:?} is not a dict")));
            };
            let bos_object = fields
                .iter()
                .find(|(k, _)| *k == Object::Unicode("bos_token".into()))
                .map(|(_, v)| v.clone());
            // The tensors of this speaker's dict, through candle's pickle reader.
            let tensors = PthTensors::new(path, Some(&name))?;
            let tensor = |field: &'static str| -> Result<Tensor, SpeakersError> {
                let t = tensors.get(field)?.ok_or_else(|| missing(&name, field))?;
                Ok(t.to_dtype(DType::F32)?)
            };
            let bos_token = match bos_object {
                Some(Object::Int(id)) => u32::try_from(id).ok(),
                Some(Object::Long(id)) => u32::try_from(id).ok(),
                // A 0-d or 1-element tensor.
                Some(_) => tensors
                    .get("bos_token")?
                    .and_then(|t| t.flatten_all().ok())
                    .and_then(|t| t.to_dtype(DType::I64).ok())
                    .and_then(|t| t.to_vec1::<i64>().ok())
                    .and_then(|v| v.first().and_then(|&id| u32::try_from(id).ok())),
                None => None,
            }
            .ok_or_else(|| missing(&name, "bos_token"))?;
            let speaker = Speaker {
                bos_token,
                cond: tensor("cond")?,
                ref_mel: tensor("ref_mel")?,
                name: name.clone(),
            };
            by_name.insert(name, speaker);
        }
        if by_name.is_empty() {
            return Err(read_err("no speakers in the file".into()));
        }
        Ok(Self { by_name })
    }

    /// Reads a copy written by [`Self::save`].
    pub fn load(path: &Path) -> Result<Self, SpeakersError> {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| {
            SpeakersError::Read {
                path: path.to_path_buf(),
                message: e.to_string(),
            }
        })?;
        let mut by_name = BTreeMap::new();
        for key in tensors.keys() {
            let Some(name) = key.strip_suffix(".bos_token") else {
                continue;
            };
            let field = |f: &'static str| {
                tensors.get(&format!("{name}.{f}")).cloned().ok_or_else(|| {
                    SpeakersError::MissingField {
                        path: path.to_path_buf(),
                        speaker: name.to_string(),
                        field: f,
                    }
                })
            };
            let bos = field("bos_token")?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
            let bos_token = bos
                .first()
                .and_then(|&id| u32::try_from(id).ok())
                .ok_or_else(|| SpeakersError::MissingField {
                    path: path.to_path_buf(),
                    speaker: name.to_string(),
                    field: "bos_token",
                })?;
            let speaker = Speaker {
                name: name.to_string(),
                bos_token,
                cond: field("cond")?,
                ref_mel: field("ref_mel")?,
            };
            by_name.insert(name.to_string(), speaker);
        }
        if by_name.is_empty() {
            return Err(SpeakersError::Read {
                path: path.to_path_buf(),
                message: "no speakers in the file".into(),
            });
        }
        Ok(Self { by_name })
    }

    /// Writes all voices as one safetensors file.
    pub fn save(&self, path: &Path) -> Result<(), SpeakersError> {
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for (name, s) in &self.by_name {
            let bos = Tensor::new(&[i64::from(s.bos_token)], &Device::Cpu)?;
            tensors.insert(format!("{name}.bos_token"), bos);
            tensors.insert(format!("{name}.cond"), s.cond.clone());
            tensors.insert(format!("{name}.ref_mel"), s.ref_mel.clone());
        }
        candle_core::safetensors::save(&tensors, path)?;
        Ok(())
    }

    /// A voice by name (case-insensitive, so `chelsie` works from a command line).
    pub fn get(&self, name: &str) -> Result<&Speaker, SpeakersError> {
        self.by_name
            .values()
            .find(|s| s.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| SpeakersError::UnknownSpeaker {
                name: name.to_string(),
                available: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The names with the published default ([`DEFAULT_SPEAKER`]) first, when present.
    pub fn names_default_first(&self) -> Vec<String> {
        let mut names: Vec<String> = self.names().map(str::to_string).collect();
        if let Some(at) = names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(DEFAULT_SPEAKER))
        {
            names[..=at].rotate_right(1);
        }
        names
    }
}

/// The object stored in a torch zip archive's `data.pkl`.
fn read_pickle(path: &Path) -> Result<Object, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file))
        .map_err(|e| format!("not a torch zip archive: {e}"))?;
    let name = archive
        .file_names()
        .find(|n| n.ends_with("data.pkl"))
        .map(str::to_string)
        .ok_or("no data.pkl in the archive")?;
    let entry = archive.by_name(&name).map_err(|e| e.to_string())?;
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut BufReader::new(entry))
        .map_err(|e| e.to_string())?;
    stack.finalize().map_err(|e| e.to_string())
}
