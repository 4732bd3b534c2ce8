//! `parley talk` without headphones, end to end: the real talk pipeline (microphone path with the
//! echo canceller, playout, speaker tap, barge-in) against a real in-process server (CPU models),
//! on a simulated room where whatever the speaker plays reaches the microphone
//! (`parley::talk::EchoRoom`: direct sound at full level after 30 ms, 150 ms of reverberation, low
//! noise).
//!
//! - with echo cancellation, parley hears its own answer coming back and does not interrupt
//!   itself;
//! - the same room without echo cancellation: it does (so the first test can fail);
//! - with echo cancellation, the user talking over the answer still interrupts it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use parley::talk::{
    EchoRoom, EchoRoomConfig, TalkEvent, TalkOptions, TalkReport, run_conversation,
};
use parley_audio_io::constants::WIRE_PCM_RATE;
use tokio::sync::{mpsc, oneshot};

/// The room's devices run at the wire rate; the microphone path still resamples to 16 kHz for
/// the echo canceller and back.
const ROOM_RATE: u32 = WIRE_PCM_RATE;

/// The speaker's direct sound reaches the microphone at full level, 10 dB louder than the room's
/// default (a laptop with the volume up): the echo is then about 5 dB below the user's voice.
const ECHO_GAIN: f32 = 1.0;

/// One conversation at a time: the server's models share two cores.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What a test saw: every event with its time, the report and the room's echo level.
struct Run {
    events: Vec<(Instant, TalkEvent)>,
    report: TalkReport,
    echo_dbfs: Option<f64>,
}

impl Run {
    fn print(&self) {
        for (_, e) in &self.events {
            if !matches!(e, TalkEvent::AnswerDelta { .. }) {
                eprintln!("  {e:?}");
            }
        }
        eprintln!("report: {:#?}", self.report);
        eprintln!("echo at the microphone: {:?} dBFS", self.echo_dbfs);
    }
}

/// Says `question` into the room, holds the conversation until `done` says so (it sees the
/// events so far and the room, every 50 ms and on every event), and returns what happened.
async fn talk_in_room(
    echo_cancellation: bool,
    question: &str,
    timeout: Duration,
    mut done: impl FnMut(&[(Instant, TalkEvent)], &EchoRoom) -> bool,
) -> Run {
    let server = start_server().await;
    let mut config = EchoRoomConfig::new(ROOM_RATE);
    config.shape.direct_gain = ECHO_GAIN;
    let (room, capture, playback) = EchoRoom::start(config).unwrap();
    let mut speech = vec![0.0; ROOM_RATE as usize / 2];
    speech.extend(wav_24k(question));
    room.say(&speech);

    let (event_tx, mut event_rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let url = server.url.clone();
    let options = TalkOptions {
        echo_cancellation,
        ..TalkOptions::default()
    };
    let conversation = tokio::spawn(async move {
        run_conversation(
            &url,
            capture,
            playback,
            &options,
            move |event| {
                let _ = event_tx.send((Instant::now(), event));
            },
            async {
                let _ = stop_rx.await;
            },
        )
        .await
    });

    let deadline = Instant::now() + timeout;
    let mut events = Vec::new();
    loop {
        if let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_millis(50), event_rx.recv()).await
        {
            events.push(event);
        }
        if done(&events, &room) {
            break;
        }
        if Instant::now() >= deadline {
            let _ = stop_tx.send(());
            let report = conversation.await.unwrap().unwrap();
            Run {
                events,
                report,
                echo_dbfs: room.echo_rms_dbfs(),
            }
            .print();
            panic!("the conversation did not get there within {timeout:?}");
        }
    }
    let _ = stop_tx.send(());
    let report = conversation.await.unwrap().unwrap();
    while let Ok(event) = event_rx.try_recv() {
        events.push(event);
    }
    server.stop().await;
    let run = Run {
        events,
        report,
        echo_dbfs: room.echo_rms_dbfs(),
    };
    run.print();
    run
}

/// RMS level of the speech in an asset (its 20 ms frames above -50 dBFS), in dBFS.
fn speech_dbfs(name: &str) -> f64 {
    let audio = wav_24k(name);
    let frame = WIRE_PCM_RATE as usize / 50;
    let loud: Vec<f64> = audio
        .chunks(frame)
        .map(|c| f64::from(parley_audio_io::pcm::rms(c)).powi(2))
        .filter(|&p| p > 1e-5)
        .collect();
    10.0 * (loud.iter().sum::<f64>() / loud.len().max(1) as f64).log10()
}

fn played_out(events: &[(Instant, TalkEvent)]) -> Option<Instant> {
    events.iter().find_map(|(at, e)| match e {
        TalkEvent::AnswerPlayedOut { .. } => Some(*at),
        _ => None,
    })
}

fn barged_in(events: &[(Instant, TalkEvent)]) -> bool {
    events
        .iter()
        .any(|(_, e)| matches!(e, TalkEvent::BargeIn { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_echo_cancellation_parley_does_not_interrupt_itself() {
    let _serial = SERIAL.lock().await;
    // Until the first answer has played out (or was cut), then one more second for a late
    // self-interruption to show up.
    let run = talk_in_room(
        true,
        "q_ocean_salty.wav",
        Duration::from_secs(60),
        |events, _| {
            barged_in(events)
                || played_out(events).is_some_and(|at| at.elapsed() > Duration::from_secs(1))
        },
    )
    .await;
    let report = &run.report;

    // The echo was really there, about as loud as the user: only the canceller kept it from
    // the VAD (the next test shows the VAD takes it for speech).
    let echo = run.echo_dbfs.expect("the speaker played nothing");
    let user = speech_dbfs("q_ocean_salty.wav");
    eprintln!("at the microphone: echo {echo:.1} dBFS, the user's question {user:.1} dBFS");
    assert!(
        echo > user - 10.0,
        "echo at the microphone only {echo:.1} dBFS against the user's {user:.1} dBFS"
    );

    let heard = report
        .transcripts
        .first()
        .expect("the question was not transcribed");
    assert!(
        heard.to_lowercase().contains("salt"),
        "the question came through the echo canceller as {heard:?}"
    );
    let answer = report.answers.first().expect("no answer");
    assert_eq!(answer.status.as_deref(), Some("completed"), "{answer:?}");
    assert!(
        answer.audio_ms >= 1500,
        "a {} ms answer is too short to test echo",
        answer.audio_ms
    );
    assert!(!answer.barged_in, "parley interrupted itself: {answer:?}");
    assert!(answer.played_ms + 20 >= answer.audio_ms, "{answer:?}");
    // The only speech the server heard was the question.
    assert_eq!(report.speech_started, 1, "{report:?}");
    assert_eq!(report.speech_started_over_answer, 0);
    assert_eq!(report.truncations, 0);
    assert_eq!(report.frames_dropped, 0);
    assert!(report.failure.is_none(), "{:?}", report.failure);
    let erle = report.echo.and_then(|e| e.erle_db);
    eprintln!("AEC3 estimates: {:?}", report.echo);
    assert!(erle.is_some(), "the echo canceller reported no estimates");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_echo_cancellation_parley_interrupts_itself() {
    let _serial = SERIAL.lock().await;
    let run = talk_in_room(
        false,
        "q_ocean_salty.wav",
        Duration::from_secs(60),
        // Until the answer was cut (and its response.done came) or played out.
        |events, _| {
            let done = events
                .iter()
                .any(|(_, e)| matches!(e, TalkEvent::AnswerDone { .. }));
            (barged_in(events) && done) || played_out(events).is_some()
        },
    )
    .await;
    let report = &run.report;
    let answer = report.answers.first().expect("no answer");
    assert!(
        answer.barged_in,
        "without echo cancellation the answer's own echo should have cut it: {answer:?}"
    );
    assert!(answer.played_ms < answer.audio_ms, "{answer:?}");
    assert!(report.speech_started_over_answer >= 1, "{report:?}");
    assert!(report.truncations >= 1, "{report:?}");
    eprintln!("the answer ended {:?}", answer.status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_echo_cancellation_the_user_can_still_barge_in() {
    let _serial = SERIAL.lock().await;
    let interruption = wav_24k("q_spider_legs.wav");
    let mut said_at: Option<(Instant, u64)> = None;
    let run = talk_in_room(
        true,
        "q_ocean_salty.wav",
        Duration::from_secs(60),
        |events, room| {
            let answering = events
                .iter()
                .any(|(_, e)| matches!(e, TalkEvent::AnswerStarted { .. }));
            // Once a second of the answer has been played, talk over it.
            if said_at.is_none()
                && answering
                && room.speaker_samples_played() >= u64::from(ROOM_RATE)
            {
                room.say(&interruption);
                said_at = Some((Instant::now(), room.speaker_samples_played()));
            }
            barged_in(events) || played_out(events).is_some()
        },
    )
    .await;
    let (said, _) = said_at.expect("the answer never played a second");
    let report = &run.report;
    let answer = report.answers.first().expect("no answer");
    assert!(
        answer.barged_in,
        "the user's speech did not cut the answer: {answer:?}"
    );
    assert!(
        answer.played_ms >= 1000 && answer.played_ms < answer.audio_ms,
        "{answer:?}"
    );
    let (cut_at, _) = run
        .events
        .iter()
        .find(|(_, e)| matches!(e, TalkEvent::BargeIn { .. }))
        .unwrap();
    let reaction = cut_at.duration_since(said);
    eprintln!("playback cut {reaction:?} after the user started speaking");
    // The server's VAD needs the user's speech to last before it interrupts (min speech +
    // 300 ms backchannel rule); more than 2 s means it heard something else.
    assert!(reaction < Duration::from_secs(2), "{reaction:?}");
    assert_eq!(report.truncations, 1);
}
