//! The driver against protocol's loopback fixture (which echoes every appended frame back as
//! answer audio): real-time pacing, order and completeness of the stream, and the errors a user
//! sees when the connection or the session is refused.

use std::path::PathBuf;
use std::time::Duration;

use parley_client::{ClientError, LoadedStep, Script, SessionOptions, Utterance, run_session};
use parley_protocol::events::{ErrorDetails, ErrorEvent};
use parley_protocol::loopback::{LOOPBACK_RESPONSE_ID, Loopback};
use parley_protocol::{
    Pcm16Audio, RealtimeServer, RunningServer, ServerConfig, ServerEvent, ServerSession,
    UpgradeDecision,
};

fn asset(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../assets/audio")
        .join(name)
}

async fn loopback_server() -> RunningServer {
    RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .spawn(Loopback)
}

fn url(server: &RunningServer) -> String {
    format!("ws://{}/v1/realtime", server.local_addr())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_seconds_of_speech_take_three_seconds_and_arrive_whole_and_in_order() {
    let server = loopback_server().await;
    let wav = asset("bench_3s.wav");
    let script = Script {
        steps: vec![parley_client::Step::Say(wav.clone())],
    }
    .load()
    .unwrap();
    let mut shown = Vec::new();
    let record = run_session(&SessionOptions::new(url(&server)), &script, &mut |e| {
        shown.push(e)
    })
    .await
    .unwrap();

    assert_eq!(record.failure, None);
    assert!(record.session_id.is_some());
    let u = Utterance::load(&wav).unwrap();
    let frames = u.samples.len().div_ceil(480);
    assert_eq!(record.frames_sent, frames as u64);
    let turn = &record.turns[0];
    // Frame k goes out at k x 20 ms: the first to the last frame span (frames - 1) x 20 ms
    // (less the first frame's own sending delay, at most a few ms; never drifting later).
    let span = turn.ended_at.unwrap() - turn.started_at;
    let expected = Duration::from_millis(20 * (frames as u64 - 1));
    assert!(
        span + Duration::from_millis(10) >= expected && span < expected + Duration::from_millis(60),
        "{frames} frames sent over {span:?}, expected {expected:?}"
    );

    // The echo is the sent audio, padded to whole frames: nothing lost, nothing reordered.
    let mut padded = u.samples.clone();
    padded.resize(frames * 480, 0.0);
    let expected_audio = Pcm16Audio::from_samples(&padded).to_samples();
    let echo = &record.responses[0];
    assert_eq!(echo.response_id, LOOPBACK_RESPONSE_ID);
    assert_eq!(echo.audio.len(), expected_audio.len());
    assert!(
        echo.audio == expected_audio,
        "echoed audio differs from what was sent"
    );
    assert!(matches!(
        shown.first(),
        Some(parley_client::DisplayEvent::SessionStarted { .. })
    ));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_without_an_answer_times_out_and_the_session_goes_on() {
    let server = loopback_server().await;
    let u = std::sync::Arc::new(Utterance::load(&asset("mm_hmm.wav")).unwrap());
    let script = parley_client::LoadedScript {
        steps: vec![
            LoadedStep::Say(u.clone()),
            LoadedStep::WaitForAnswer {
                timeout: Duration::from_millis(300),
            },
            LoadedStep::Say(u),
        ],
    };
    let mut options = SessionOptions::new(url(&server));
    options.keep_answer_audio = false;
    let record = run_session(&options, &script, &mut |_| {}).await.unwrap();
    assert_eq!(record.failure, None);
    assert_eq!(record.turns.len(), 2);
    assert!(record.turns[0].timed_out);
    let gap = record.turns[1].started_at - record.turns[0].ended_at.unwrap();
    assert!(
        gap >= Duration::from_millis(300) && gap < Duration::from_millis(400),
        "{gap:?}"
    );
    let metrics = record.turn_metrics();
    assert!(metrics[0].timed_out);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_refused_connection_names_the_url_and_the_fix() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ws://127.0.0.1:{port}/v1/realtime");
    let script = Script::from_inputs(&[asset("mm_hmm.wav")], Duration::from_secs(1))
        .unwrap()
        .load()
        .unwrap();
    let err = run_session(&SessionOptions::new(&url), &script, &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::ConnectionRefused { .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&url) && text.contains("parley serve"),
        "{text}"
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_reported_as_such() {
    let server = RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .with_upgrade_hook(|req| match req.bearer_token() {
            Some("secret") => UpgradeDecision::Accept,
            _ => UpgradeDecision::reject(401, "bad token"),
        })
        .spawn(Loopback);
    let script = Script::from_inputs(&[asset("mm_hmm.wav")], Duration::from_millis(10))
        .unwrap()
        .load()
        .unwrap();
    let mut options = SessionOptions::new(url(&server));
    for key in [None, Some("guess".to_owned())] {
        options.api_key = key;
        let err = run_session(&options, &script, &mut |_| {})
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::Unauthorized { status: 401, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("API key"), "{err}");
    }
    options.api_key = Some("secret".to_owned());
    let record = run_session(&options, &script, &mut |_| {}).await.unwrap();
    assert_eq!(record.turns.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_session_refused_with_an_error_event_shows_the_servers_reason() {
    let server = RealtimeServer::bind("127.0.0.1:0", ServerConfig::default())
        .await
        .unwrap()
        .spawn(|session: ServerSession| async move {
            let refusal = ServerEvent::Error(ErrorEvent {
                event_id: "evt_1".into(),
                error: ErrorDetails {
                    error_type: "server_error".into(),
                    code: Some("max_sessions".into()),
                    message: "the server already runs 4 sessions".into(),
                    param: None,
                    event_id: None,
                },
            });
            let _ = session.send(refusal).await;
        });
    let script = Script::from_inputs(&[asset("mm_hmm.wav")], Duration::from_millis(10))
        .unwrap()
        .load()
        .unwrap();
    let err = run_session(&SessionOptions::new(url(&server)), &script, &mut |_| {})
        .await
        .unwrap_err();
    let ClientError::SessionRefused { code, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(code, "max_sessions");
    let text = err.to_string();
    assert!(
        text.contains("refused the session") && text.contains("4 sessions"),
        "{text}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bench_runs_sessions_concurrently_and_counts_every_turn() {
    let server = loopback_server().await;
    let script = Script::from_inputs(&[asset("mm_hmm.wav")], Duration::from_millis(200))
        .unwrap()
        .load()
        .unwrap();
    let mut options = parley_client::BenchOptions::new(url(&server), 3);
    options.stagger = Duration::from_millis(50);
    let started = std::time::Instant::now();
    let outcomes = parley_client::run_sessions(&options, std::sync::Arc::new(script)).await;
    let elapsed = started.elapsed();
    // Each session: 0.44 s of speech + 0.2 s of waiting (+ closing); concurrent, not serial.
    assert!(elapsed < Duration::from_millis(1600), "{elapsed:?}");
    let report = parley_client::report_from_outcomes(&outcomes, false);
    assert_eq!(report.sessions, 3);
    assert_eq!(report.sessions_failed, 0, "{:?}", report.failures);
    assert_eq!(report.turns, 3);
    // The loopback never answers: every wait times out, and the report says so.
    assert_eq!(report.turns_failed, 3);
    assert_eq!(report.v2v_ms.count, 3, "the echo counts as answer audio");
    let json = serde_json::to_value(&report).unwrap();
    assert!(json.get("v2v_ms_p50").is_some() && json.get("v2v_ms_p95").is_some());
    server.shutdown().await.unwrap();
}
