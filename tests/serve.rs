//! `parley serve` as a user runs it: the real binary in its own process, with the CPU models
//! (`parley models fetch`). Sessions end cleanly when clients vanish; API key and session limit.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use parley_protocol::{ProtocolError, RealtimeClient, ServerEvent};

/// A `parley serve` child process on a free port.
struct ServeProcess {
    child: Child,
    url: String,
    http: String,
}

impl ServeProcess {
    fn start(extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_parley"))
            .args(["serve", "--port", "0"])
            .args(extra)
            .env("PARLEY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("parley serve starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines
                .next()
                .expect("parley serve exited before listening")
                .unwrap();
            if let Some(url) = line.strip_prefix("parley is listening on ") {
                break url.trim().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let http = url
            .replace("ws://", "http://")
            .trim_end_matches("/v1/realtime")
            .to_string();
        Self { child, url, http }
    }

    /// (session threads, resident memory in KiB) of the server process. Sessions name their
    /// threads `session-N`, `session-N-thinker`, `session-N-talker`.
    fn threads_and_rss(&self) -> (usize, u64) {
        let pid = self.child.id();
        let rss = parley_models::memory::resident_bytes_of(pid).unwrap() / 1024;
        let session_threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with("session-"))
            .count();
        (session_threads, rss)
    }

    fn get(&self, path: &str) -> String {
        // A minimal HTTP/1.0 GET: enough for /healthz and /metrics.
        use std::io::{Read, Write};
        let addr = self.http.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Connects (optionally with a key), waits for `session.created`, and asks a question.
async fn ask(url: &str, key: Option<&str>, wav: &str) -> (Mic, Events) {
    let client = RealtimeClient::connect(url, key.map(str::to_string))
        .await
        .unwrap();
    let (tx, rx) = client.split();
    let mut events = Events::new(rx);
    events
        .wait_for("session.created", Duration::from_secs(10))
        .await;
    let mic = Mic::start(tx);
    mic.say(wav_24k(wav)).await;
    (mic, events)
}

/// Polls until the server is back to `threads` threads, or fails after `timeout`.
async fn wait_for_threads(server: &ServeProcess, threads: usize, timeout: Duration) -> u64 {
    let start = Instant::now();
    loop {
        let (now, rss) = server.threads_and_rss();
        if now == threads {
            return rss;
        }
        assert!(
            start.elapsed() < timeout,
            "{now} threads {timeout:?} after the client left; {threads} before"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_vanishes_mid_answer_frees_its_session() {
    let server = ServeProcess::start(&[]);
    let (idle_threads, _) = server.threads_and_rss();
    assert_eq!(idle_threads, 0);

    // Warm: one whole conversation, so lazily grown pools and caches exist.
    let (mic, mut events) = ask(&server.url, None, "q_capital_france.wav").await;
    events
        .wait_for("response.done", Duration::from_secs(60))
        .await;
    drop(mic);
    drop(events);
    let baseline_rss = wait_for_threads(&server, idle_threads, Duration::from_secs(5)).await;

    // Memory returns to about its baseline after each session. What glibc keeps after a
    // session varies from round to round (measured: 0-45 MB over the baseline, up and down by
    // ~35 MB between rounds, no trend over 10 rounds), so a single round is not compared with the
    // next. A leaked session (25-40 MB each: its KV cache, buffers and threads) would show as a
    // trend: the lowest RSS of the last three rounds would sit 75 MB or more over the lowest of
    // the first three.
    let slack = 80 * 1024;
    let rounds = 6;
    let mut after = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let (mic, mut events) = ask(&server.url, None, "q_ocean_salty.wav").await;
        events
            .wait_for("response.output_audio.delta", Duration::from_secs(60))
            .await;
        let (busy_threads, busy_rss) = server.threads_and_rss();
        assert_eq!(
            busy_threads, 3,
            "a session runs on three threads of its own"
        );
        // Vanish: no close frame, the socket just goes away mid-answer.
        drop(mic);
        drop(events);
        wait_for_threads(&server, idle_threads, Duration::from_secs(5)).await;
        // The session's memory goes back after its threads have ended (the connection task
        // trims the allocator once it has joined them): give it a moment, not forever.
        let bound = baseline_rss + slack;
        let settle = Instant::now();
        let mut rss = server.threads_and_rss().1;
        while rss > bound && settle.elapsed() < Duration::from_secs(3) {
            tokio::time::sleep(Duration::from_millis(100)).await;
            rss = server.threads_and_rss().1;
        }
        eprintln!(
            "round {round}: RSS {baseline_rss} KiB before, {busy_rss} KiB with the session, \
             {rss} KiB after"
        );
        assert!(
            rss <= bound,
            "round {round}: RSS {rss} KiB after the session, {baseline_rss} KiB before"
        );
        after.push(rss);
    }
    let early = after[..3].iter().min().copied().unwrap_or_default();
    let late = after[rounds - 3..]
        .iter()
        .min()
        .copied()
        .unwrap_or_default();
    assert!(
        late <= early + 48 * 1024,
        "RSS after a session grows from round to round: {after:?} KiB"
    );
    let health = server.get("/healthz");
    assert!(
        health.starts_with("HTTP/1.1 200") || health.starts_with("HTTP/1.0 200"),
        "{health}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_and_session_limit_refuse_clearly_and_spare_the_others() {
    let server = ServeProcess::start(&["--api-key", "sesame-1234", "--max-sessions", "1"]);

    for key in [None, Some("wrong-key")] {
        let refused = RealtimeClient::connect(&server.url, key.map(str::to_string)).await;
        match refused {
            Err(ProtocolError::Rejected { status, body }) => {
                assert_eq!(status, 401, "{body}");
                assert!(body.contains("invalid_api_key"), "{body}");
                assert!(
                    !body.contains("sesame"),
                    "the key leaked into the refusal: {body}"
                );
            }
            Err(other) => panic!("key {key:?} was not refused with 401: {other}"),
            Ok(_) => panic!("key {key:?} was let in"),
        }
    }

    // The one allowed session, mid-conversation when the second client knocks.
    let (mic, mut events) = ask(&server.url, Some("sesame-1234"), "q_capital_france.wav").await;
    events
        .wait_for("response.created", Duration::from_secs(30))
        .await;

    let second = RealtimeClient::connect(&server.url, Some("sesame-1234".into()))
        .await
        .unwrap();
    let (_second_tx, second_rx) = second.split();
    let mut second_events = Events::new(second_rx);
    let (_, refusal) = second_events
        .wait_for("error", Duration::from_secs(10))
        .await;
    let ServerEvent::Error(refusal) = refusal else {
        unreachable!()
    };
    assert_eq!(refusal.error.code.as_deref(), Some("session_limit_reached"));
    assert!(
        refusal.error.message.contains('1'),
        "{}",
        refusal.error.message
    );
    assert_eq!(second_events.count("session.created"), 0);

    // The first session is unaffected: its answer completes.
    let (_, done) = events
        .wait_for("response.done", Duration::from_secs(60))
        .await;
    let ServerEvent::ResponseDone(done) = done else {
        unreachable!()
    };
    assert_eq!(
        done.response.status,
        Some(parley_protocol::response::ResponseStatus::Completed)
    );
    drop(mic);

    // The turn is in the metrics.
    let metrics = server.get("/metrics");
    assert!(metrics.contains("parley_turns_total"), "{metrics}");
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("parley_sessions_refused_total") && l.contains("session_limit"))
        .unwrap_or_else(|| panic!("no refusal counter in {metrics}"));
    assert!(refused.ends_with(" 1"), "{refused}");
    let first_audio = metrics
        .lines()
        .find(|l| l.contains("parley_stage_latency_seconds_count") && l.contains("first_audio"))
        .unwrap_or_else(|| panic!("no first_audio latency in {metrics}"));
    assert!(first_audio.ends_with(" 1"), "{first_audio}");
}
