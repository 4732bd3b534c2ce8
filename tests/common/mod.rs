//! Shared by the end-to-end tests: a real parley server (CPU profile, real models) on a free
//! localhost port, and a minimal client that speaks WAVs into it.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use parley::engine::Engine;
use parley::engine::models::CpuModels;
use parley::engine::settings::EngineDefaults;
use parley::serve::config::ServeConfig;
use parley::serve::local::LocalServer;
use parley_audio_io::constants::{WIRE_PCM_RATE, frame_samples};
use parley_protocol::events::{ClientEvent, InputAudioBufferAppend};
use parley_protocol::{ClientSender, Pcm16Audio, ServerEvent, ServerItem};

pub fn asset(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/audio")
        .join(name)
}

/// The words of `text`, lower-cased, punctuation dropped: transcripts compared "normalized
/// case and punctuation".
pub fn words(text: &str) -> Vec<String> {
    text.split_whitespace()
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric() || *c == '\'')
                .collect::<String>()
                .to_lowercase()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// A WAV from assets/audio at the wire rate (24 kHz).
pub fn wav_24k(name: &str) -> Vec<f32> {
    parley_audio_io::wav::read_wav(asset(name), WIRE_PCM_RATE).unwrap_or_else(|e| panic!("{e}"))
}

/// The CPU models, loaded once per test binary (sessions share them anyway).
pub fn engine() -> &'static Arc<Engine> {
    static ENGINE: OnceLock<Arc<Engine>> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let models = CpuModels::load(&parley_models::default_models_dir())
            .unwrap_or_else(|e| panic!("{e:#}"));
        let defaults = EngineDefaults {
            // Reproducible answers.
            temperature: 0.0,
            ..EngineDefaults::default()
        };
        Engine::new(models, defaults).unwrap()
    })
}

/// `parley serve` (the real server loop, auth, limits, metrics) on a free localhost port.
pub struct TestServer {
    pub url: String,
    pub http: String,
    local: LocalServer,
}

impl TestServer {
    /// Shuts the server down gracefully and waits for it.
    pub async fn stop(self) {
        self.local.stop().await.unwrap();
    }
}

pub async fn start_server_with(configure: impl FnOnce(&mut ServeConfig)) -> TestServer {
    let mut config = ServeConfig::defaults();
    config.port = 0;
    configure(&mut config);
    let local = LocalServer::start_with(Arc::clone(engine()), config)
        .await
        .unwrap();
    TestServer {
        url: local.url.clone(),
        http: format!("http://{}", local.addr),
        local,
    }
}

pub async fn start_server() -> TestServer {
    start_server_with(|_| {}).await
}

/// Streams `samples` (24 kHz) in 20 ms frames, `speedup` times faster than real time.
pub async fn speak(tx: &mut ClientSender, samples: &[f32], speedup: f64) {
    let frame = frame_samples(WIRE_PCM_RATE);
    let start = Instant::now();
    for (i, chunk) in samples.chunks(frame).enumerate() {
        let due = Duration::from_secs_f64(i as f64 * 0.020 / speedup);
        if let Some(wait) = due.checked_sub(start.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let event = ClientEvent::InputAudioBufferAppend(InputAudioBufferAppend {
            event_id: None,
            audio: Pcm16Audio::from_samples(chunk),
        });
        tx.send(&event).await.unwrap();
    }
}

/// What a client saw of one response.
#[derive(Debug, Default, Clone)]
pub struct Heard {
    pub events: Vec<(Instant, ServerEvent)>,
    pub transcript: Option<String>,
    pub answer_text: String,
    pub audio: Vec<f32>,
    pub status: Option<String>,
}

pub fn event_type(item: &ServerItem) -> &'static str {
    match item {
        ServerItem::Event(e) => e.event_type(),
        ServerItem::Audio(_) => "binary",
    }
}

/// A live microphone: streams silence in real time, and speaks what it is told to when told.
/// Dropping it (or `stop`) ends the stream and hands back the sender.
pub struct Mic {
    requests: tokio::sync::mpsc::Sender<MicRequest>,
    task: tokio::task::JoinHandle<ClientSender>,
}

enum MicRequest {
    Say(Vec<f32>),
    /// A JSON event sent between two audio frames.
    Send(Box<ClientEvent>),
}

impl Mic {
    pub fn start(mut tx: ClientSender) -> Self {
        let (say, mut requests) = tokio::sync::mpsc::channel::<MicRequest>(4);
        let task = tokio::spawn(async move {
            let frame = frame_samples(WIRE_PCM_RATE);
            let silence = vec![0.0f32; frame];
            let start = Instant::now();
            let mut sent = 0u64;
            let mut queued: std::collections::VecDeque<f32> = Default::default();
            loop {
                match requests.try_recv() {
                    Ok(MicRequest::Say(samples)) => queued.extend(samples),
                    Ok(MicRequest::Send(event)) => {
                        if tx.send(&event).await.is_err() {
                            return tx;
                        }
                    }
                    Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return tx,
                    Err(tokio::sync::mpsc::error::TryRecvError::Empty) => {}
                }
                let due = Duration::from_secs_f64(sent as f64 * 0.020);
                if let Some(wait) = due.checked_sub(start.elapsed()) {
                    tokio::time::sleep(wait).await;
                }
                let chunk: Vec<f32> = if queued.is_empty() {
                    silence.clone()
                } else {
                    let n = frame.min(queued.len());
                    queued.drain(..n).collect()
                };
                let event = ClientEvent::InputAudioBufferAppend(InputAudioBufferAppend {
                    event_id: None,
                    audio: Pcm16Audio::from_samples(&chunk),
                });
                if tx.send(&event).await.is_err() {
                    return tx;
                }
                sent += 1;
            }
        });
        Self {
            requests: say,
            task,
        }
    }

    /// Queues `samples` (24 kHz) to be spoken after what is already queued.
    pub async fn say(&self, samples: Vec<f32>) {
        self.requests.send(MicRequest::Say(samples)).await.unwrap();
    }

    /// Sends a JSON event on the same connection, between audio frames.
    pub async fn send(&self, event: ClientEvent) {
        self.requests
            .send(MicRequest::Send(Box::new(event)))
            .await
            .unwrap();
    }

    pub async fn stop(mut self) -> ClientSender {
        let (closed, _) = tokio::sync::mpsc::channel(1);
        drop(std::mem::replace(&mut self.requests, closed));
        (&mut self.task).await.unwrap()
    }
}

/// Dropping the mic drops the connection's sending half at once.
impl Drop for Mic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Receives everything the server sends, stamped with its arrival time.
pub fn collect(
    mut rx: parley_protocol::ClientReceiver,
) -> (
    tokio::sync::mpsc::UnboundedReceiver<(Instant, ServerEvent)>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, out) = tokio::sync::mpsc::unbounded_channel();
    let task = tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            if let Ok(ServerItem::Event(event)) = item
                && tx.send((Instant::now(), event)).is_err()
            {
                return;
            }
        }
    });
    (out, task)
}

/// The events of one connection, and waiting for the next of a type.
/// Dropping it drops the connection's receiving half at once (with the `Mic`, the client is
/// gone without a close frame, like a crashed app).
pub struct Events {
    pub rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, ServerEvent)>,
    pub seen: Vec<(Instant, ServerEvent)>,
    collector: tokio::task::JoinHandle<()>,
}

impl Drop for Events {
    fn drop(&mut self) {
        self.collector.abort();
    }
}

impl Events {
    pub fn new(rx: parley_protocol::ClientReceiver) -> Self {
        let (rx, collector) = collect(rx);
        Self {
            rx,
            seen: Vec::new(),
            collector,
        }
    }

    /// The next event of type `kind` (others are kept in `seen`), failing after `timeout`.
    pub async fn wait_for(&mut self, kind: &str, timeout: Duration) -> (Instant, ServerEvent) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| {
                    let types: Vec<_> = self.seen.iter().map(|(_, e)| e.event_type()).collect();
                    panic!("no {kind} within {timeout:?}; saw {types:?}")
                })
                .expect("connection closed");
            self.seen.push(next.clone());
            if next.1.event_type() == kind {
                return next;
            }
        }
    }

    /// The next event of any of `kinds`, failing after `timeout`.
    pub async fn wait_for_any(
        &mut self,
        kinds: &[&str],
        timeout: Duration,
    ) -> (Instant, ServerEvent) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("none of {kinds:?} within {timeout:?}"))
                .expect("connection closed");
            self.seen.push(next.clone());
            if kinds.contains(&next.1.event_type()) {
                return next;
            }
        }
    }

    /// Everything that arrived within `window` from now (none of it awaited).
    pub async fn drain_for(&mut self, window: Duration) {
        let deadline = tokio::time::Instant::now() + window;
        while let Ok(Some(next)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            self.seen.push(next);
        }
    }

    pub fn count(&self, kind: &str) -> usize {
        self.seen
            .iter()
            .filter(|(_, e)| e.event_type() == kind)
            .count()
    }
}
