//! `parley talk`: a live spoken conversation from the desktop microphone and speaker, against
//! `--connect URL` or a server started inside this process (the same pipeline as `parley serve`).
//! Always a WebSocket client, so local and remote behave the same; see `parley::talk`.

use std::io::Write;

use parley::talk::{TalkEvent, TalkOptions, run_conversation};

use parley::serve::local::LocalServer;

#[derive(Debug, clap::Args)]
pub struct TalkArgs {
    /// A running server (`ws://HOST:PORT/v1/realtime`); default: one inside this process.
    #[arg(long)]
    pub connect: Option<String>,
    /// Bearer key for `--connect`.
    #[arg(long, env = "PARLEY_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Microphone to use (a name from `parley devices`; default: the system's).
    #[arg(long)]
    pub input_device: Option<String>,
    /// Speaker to use (a name from `parley devices`; default: the system's).
    #[arg(long)]
    pub output_device: Option<String>,
    /// Don't cancel the speaker's echo on the microphone. Only with headphones: through a
    /// loudspeaker parley then hears itself and interrupts its own answers.
    #[arg(long)]
    pub no_aec: bool,
}

#[cfg(not(feature = "device"))]
pub fn run(_args: TalkArgs) -> anyhow::Result<()> {
    anyhow::bail!(
        "this parley was built without sound-card support (feature `device`); \
         `parley converse --input question.wav` works without it"
    )
}

#[cfg(feature = "device")]
pub fn run(args: TalkArgs) -> anyhow::Result<()> {
    // Fail fast, before loading any model, on a machine without a microphone or speaker.
    drop(open_devices(&args)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if args.connect.is_none() {
            eprintln!("loading the models…");
        }
        let (url, local) = LocalServer::unless_url(args.connect.as_deref(), 1).await?;
        // Opened only now so the microphone does not pile up audio while the models load.
        let result = async {
            let ((input, capture), (output, playback)) = open_devices(&args)?;
            eprintln!(
                "microphone: {}, speaker: {}{}",
                input.name(),
                output.name(),
                if args.no_aec {
                    " (no echo cancellation: use headphones)"
                } else {
                    ""
                }
            );
            let options = TalkOptions {
                api_key: args.api_key.clone(),
                echo_cancellation: !args.no_aec,
                ..TalkOptions::default()
            };
            let stop = async {
                // If the signal handler cannot be installed, run until the connection ends.
                if tokio::signal::ctrl_c().await.is_err() {
                    std::future::pending::<()>().await;
                }
            };
            let report =
                run_conversation(&url, capture, playback, &options, print_event, stop).await?;
            // The devices close here, after the conversation.
            drop((input, output));
            anyhow::Ok(report)
        }
        .await;
        if let Some(local) = local {
            local.stop().await?;
        }
        let report = result?;
        println!();
        if let Some(failure) = &report.failure {
            eprintln!("conversation ended: {failure}");
        }
        if report.frames_dropped > 0 || report.answer_audio_dropped_ms > 0 {
            eprintln!(
                "dropped: {} microphone frames (sending fell behind), {} ms of answer audio",
                report.frames_dropped, report.answer_audio_dropped_ms
            );
        }
        anyhow::Ok(())
    })
}

#[cfg(feature = "device")]
type Devices = (
    (parley_audio_io::CaptureDevice, parley_audio_io::Capture),
    (parley_audio_io::PlaybackDevice, parley_audio_io::Playback),
);

/// Opens the microphone and the speaker, with an error that says what is missing and what to do.
#[cfg(feature = "device")]
fn open_devices(args: &TalkArgs) -> anyhow::Result<Devices> {
    use parley_audio_io::DeviceDirection;

    let hint = "`parley devices` lists this machine's sound devices; without a microphone and \
                speaker, `parley converse --input question.wav` talks to parley from WAV files";
    // cpal's own error for a missing default device can be obscure ("no longer available"):
    // say plainly when the machine has none at all.
    let devices = parley_audio_io::list_devices()
        .map_err(|e| anyhow::anyhow!("cannot list the sound devices: {e}\n{hint}"))?;
    for (direction, what) in [
        (DeviceDirection::Input, "microphone (audio input device)"),
        (DeviceDirection::Output, "speaker (audio output device)"),
    ] {
        if !devices.iter().any(|d| d.direction == direction) {
            anyhow::bail!("parley talk needs a {what}, and this machine has none\n{hint}");
        }
    }
    let input = parley_audio_io::CaptureDevice::open(args.input_device.as_deref())
        .map_err(|e| anyhow::anyhow!("parley talk needs a microphone: {e}\n{hint}"))?;
    let output = parley_audio_io::PlaybackDevice::open(args.output_device.as_deref())
        .map_err(|e| anyhow::anyhow!("parley talk needs a speaker: {e}\n{hint}"))?;
    Ok((input, output))
}

fn print_event(event: TalkEvent) {
    let mut out = std::io::stdout().lock();
    let _ = match event {
        TalkEvent::SessionStarted => {
            writeln!(out, "listening: speak now (Ctrl-C to stop)")
        }
        TalkEvent::UserTranscript { text } => writeln!(out, "you: {text}"),
        TalkEvent::AnswerStarted { .. } => write!(out, "parley: "),
        TalkEvent::AnswerDelta { text, .. } => write!(out, "{text}"),
        TalkEvent::AnswerDone { status, .. } if status == "completed" => writeln!(out),
        TalkEvent::AnswerDone { status, .. } => writeln!(out, " [{status}]"),
        TalkEvent::BargeIn {
            played_ms,
            audio_ms,
            ..
        } => writeln!(out, " [you cut in after {played_ms} of {audio_ms} ms]"),
        TalkEvent::TurnLatency(latency) => writeln!(out, "  {}", latency.line()),
        TalkEvent::ServerError { code, message } => {
            writeln!(out, "server error ({code}): {message}")
        }
        _ => Ok(()),
    };
    let _ = out.flush();
}
