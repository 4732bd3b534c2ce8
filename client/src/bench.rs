//! `parley bench`: many sessions at once, each running the same script, aggregated into a
//! [`BenchReport`].

use std::sync::Arc;
use std::time::Duration;

use crate::driver::{SessionOptions, run_session};
use crate::error::ClientError;
use crate::script::LoadedScript;
use crate::stats::{BenchReport, SessionSummary};
use crate::timeline::SessionRecord;

/// How to run a bench.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// Concurrent sessions (at least 1).
    pub sessions: usize,
    /// Options of every session.
    pub session: SessionOptions,
    /// Session *i* starts `i × stagger` after the first, so their turns do not all line up.
    pub stagger: Duration,
}

impl BenchOptions {
    /// `sessions` sessions against `url`, all starting at once, not keeping answer audio.
    pub fn new(url: impl Into<String>, sessions: usize) -> Self {
        let mut session = SessionOptions::new(url);
        session.keep_answer_audio = false;
        BenchOptions {
            sessions: sessions.max(1),
            session,
            stagger: Duration::ZERO,
        }
    }
}

/// Runs the sessions concurrently (one tokio task each) and returns each one's outcome, in
/// session order.
pub async fn run_sessions(
    options: &BenchOptions,
    script: Arc<LoadedScript>,
) -> Vec<Result<SessionRecord, ClientError>> {
    let handles: Vec<_> = (0..options.sessions.max(1))
        .map(|i| {
            let session = options.session.clone();
            let script = script.clone();
            let delay = options.stagger * i as u32;
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                run_session(&session, &script, &mut |_| {}).await
            })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(handles.len());
    for handle in handles {
        outcomes.push(match handle.await {
            Ok(outcome) => outcome,
            Err(e) => Err(ClientError::TaskFailed(e.to_string())),
        });
    }
    outcomes
}

/// Runs the bench and aggregates it.
pub async fn run_bench(options: &BenchOptions, script: Arc<LoadedScript>) -> BenchReport {
    let outcomes = run_sessions(options, script).await;
    report_from_outcomes(&outcomes, options.session.fast)
}

/// Aggregates finished sessions (e.g. from [`run_sessions`]).
pub fn report_from_outcomes(
    outcomes: &[Result<SessionRecord, ClientError>],
    fast: bool,
) -> BenchReport {
    let summaries: Vec<Result<SessionSummary, String>> = outcomes
        .iter()
        .map(|o| match o {
            Ok(record) => Ok(SessionSummary::from_record(record)),
            Err(e) => Err(e.to_string()),
        })
        .collect();
    BenchReport::aggregate(&summaries, fast)
}
