//! Bench aggregation: percentiles over all turns of all sessions, a JSON report and a text table.
//!
//! Percentiles use the **nearest-rank** method: the p-th percentile of n sorted values is the
//! value at 1-based rank ⌈p/100 · n⌉ (at least 1). It is always one of the measured values, so
//! with few samples p95 is simply the largest or second largest, never an interpolation.

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use crate::metrics::TurnMetrics;
use crate::timeline::SessionRecord;

/// Nearest-rank percentile of `sorted` (ascending, no NaN); `None` for no values.
pub fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// p50 / p95 / max of one metric.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub count: usize,
    pub p50: Option<f64>,
    pub p95: Option<f64>,
    pub max: Option<f64>,
}

impl Summary {
    /// Summarizes `values`, ignoring NaN.
    pub fn of(values: impl IntoIterator<Item = f64>) -> Summary {
        let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
        v.sort_by(f64::total_cmp);
        Summary {
            count: v.len(),
            p50: percentile(&v, 50.0),
            p95: percentile(&v, 95.0),
            max: v.last().copied(),
        }
    }
}

/// What a bench needs from one session: its turns' metrics and how it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionSummary {
    pub turns: Vec<TurnMetrics>,
    /// Why the session stopped early, if it did.
    pub failure: Option<String>,
    pub server_errors: usize,
    pub late_frames: u64,
    pub max_send_lateness: Duration,
}

impl SessionSummary {
    pub fn from_record(record: &SessionRecord) -> Self {
        SessionSummary {
            turns: record.turn_metrics(),
            failure: record.failure.clone(),
            server_errors: record.server_errors.len(),
            late_frames: record.late_frames,
            max_send_lateness: record.max_send_lateness,
        }
    }
}

/// Distinct failure messages kept in a report.
pub const MAX_FAILURE_MESSAGES: usize = 20;

/// The result of `parley bench`. Serializes to flat JSON: counts by name, and for every metric
/// `<name>_p50`, `<name>_p95`, `<name>_max`, `<name>_count` (e.g. `v2v_ms_p50`); missing values
/// are `null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BenchReport {
    pub sessions: usize,
    /// Sessions that could not start or ended early.
    pub sessions_failed: usize,
    pub turns: usize,
    /// Turns without a usable answer: timed out, no response, or status `failed`.
    pub turns_failed: usize,
    /// Answers cancelled (barge-in or otherwise).
    pub cancellations: usize,
    pub barge_ins: usize,
    pub barge_ins_missed: usize,
    pub premature_responses: usize,
    pub underruns: u64,
    pub underrun_ms: f64,
    pub server_errors: usize,
    pub late_frames: u64,
    pub max_send_lateness_ms: f64,
    /// Audio was sent as fast as possible: the latencies are not meaningful.
    pub fast: bool,
    pub v2v_ms: Summary,
    pub endpoint_ms: Summary,
    pub first_token_ms: Summary,
    pub first_audible_ms: Summary,
    pub stop_ms: Summary,
    pub audio_after_stop_ms: Summary,
    pub vad_end_error_ms: Summary,
    pub talker_rtf: Summary,
    pub server_endpoint_ms: Summary,
    pub server_transcribe_ms: Summary,
    pub server_first_token_ms: Summary,
    pub server_first_audio_ms: Summary,
    /// Distinct failure messages (session failures and turn timeouts), at most
    /// [`MAX_FAILURE_MESSAGES`].
    pub failures: Vec<String>,
}

/// Whether a turn counts as failed in a report.
pub fn turn_failed(t: &TurnMetrics) -> bool {
    t.timed_out || t.status.is_none() || t.status.as_deref() == Some("failed")
}

impl BenchReport {
    /// Aggregates sessions: `Ok` for sessions that ran (maybe ending early: see `failure`),
    /// `Err(message)` for sessions that could not start.
    pub fn aggregate(sessions: &[Result<SessionSummary, String>], fast: bool) -> BenchReport {
        let mut r = BenchReport {
            sessions: sessions.len(),
            fast,
            ..Default::default()
        };
        let mut failures: Vec<String> = Vec::new();
        let mut note = |msg: String| {
            if failures.len() < MAX_FAILURE_MESSAGES && !failures.contains(&msg) {
                failures.push(msg);
            }
        };
        let mut turns: Vec<&TurnMetrics> = Vec::new();
        for s in sessions {
            match s {
                Err(msg) => {
                    r.sessions_failed += 1;
                    note(msg.clone());
                }
                Ok(s) => {
                    if let Some(f) = &s.failure {
                        r.sessions_failed += 1;
                        note(f.clone());
                    }
                    r.server_errors += s.server_errors;
                    r.late_frames += s.late_frames;
                    r.max_send_lateness_ms = r
                        .max_send_lateness_ms
                        .max(s.max_send_lateness.as_secs_f64() * 1000.0);
                    for t in &s.turns {
                        if t.timed_out {
                            note(format!(
                                "turn {} ({}): no answer before the timeout",
                                t.turn, t.wav
                            ));
                        }
                        turns.push(t);
                    }
                }
            }
        }
        r.turns = turns.len();
        r.turns_failed = turns.iter().filter(|t| turn_failed(t)).count();
        r.cancellations = turns
            .iter()
            .filter(|t| t.status.as_deref() == Some("cancelled"))
            .count();
        r.barge_ins = turns.iter().filter(|t| t.barge_in).count();
        r.barge_ins_missed = turns.iter().filter(|t| t.barge_in_missed).count();
        r.premature_responses = turns.iter().map(|t| t.premature_responses).sum();
        r.underruns = turns.iter().map(|t| u64::from(t.underruns)).sum();
        r.underrun_ms = turns.iter().map(|t| t.underrun_ms).sum();
        let summary = |f: &dyn Fn(&TurnMetrics) -> Option<f64>| {
            Summary::of(turns.iter().filter_map(|t| f(t)))
        };
        r.v2v_ms = summary(&|t| t.v2v_ms);
        r.endpoint_ms = summary(&|t| t.endpoint_ms);
        r.first_token_ms = summary(&|t| t.first_token_ms);
        r.first_audible_ms = summary(&|t| t.first_audible_ms);
        r.stop_ms = summary(&|t| t.stop_ms);
        r.audio_after_stop_ms = summary(&|t| t.audio_after_stop_ms);
        r.vad_end_error_ms = summary(&|t| t.vad_end_error_ms);
        r.talker_rtf = summary(&|t| t.server.and_then(|s| s.talker_rtf));
        r.server_endpoint_ms = summary(&|t| t.server.and_then(|s| s.endpoint_ms));
        r.server_transcribe_ms = summary(&|t| t.server.and_then(|s| s.transcribe_ms));
        r.server_first_token_ms = summary(&|t| t.server.and_then(|s| s.first_token_ms));
        r.server_first_audio_ms = summary(&|t| t.server.and_then(|s| s.first_audio_ms));
        r.failures = failures;
        r
    }

    /// Every metric summary with its JSON name and a label for the table.
    pub fn summaries(&self) -> [(&'static str, &'static str, Summary); 12] {
        [
            ("v2v_ms", "voice-to-voice (ms)", self.v2v_ms),
            ("endpoint_ms", "endpoint (ms)", self.endpoint_ms),
            ("first_token_ms", "first token (ms)", self.first_token_ms),
            (
                "first_audible_ms",
                "first audible (ms)",
                self.first_audible_ms,
            ),
            ("stop_ms", "barge-in stop (ms)", self.stop_ms),
            (
                "audio_after_stop_ms",
                "audio after stop (ms)",
                self.audio_after_stop_ms,
            ),
            (
                "vad_end_error_ms",
                "VAD end error (ms)",
                self.vad_end_error_ms,
            ),
            ("talker_rtf", "talker RTF", self.talker_rtf),
            (
                "server_endpoint_ms",
                "server endpoint (ms)",
                self.server_endpoint_ms,
            ),
            (
                "server_transcribe_ms",
                "server transcribe (ms)",
                self.server_transcribe_ms,
            ),
            (
                "server_first_token_ms",
                "server first token (ms)",
                self.server_first_token_ms,
            ),
            (
                "server_first_audio_ms",
                "server first audio (ms)",
                self.server_first_audio_ms,
            ),
        ]
    }

    /// The flat JSON object (see the type's documentation).
    pub fn to_json_value(&self) -> Value {
        let mut m = Map::new();
        let mut put = |k: &str, v: Value| {
            m.insert(k.to_owned(), v);
        };
        put("sessions", self.sessions.into());
        put("sessions_failed", self.sessions_failed.into());
        put("turns", self.turns.into());
        put("turns_failed", self.turns_failed.into());
        put("cancellations", self.cancellations.into());
        put("barge_ins", self.barge_ins.into());
        put("barge_ins_missed", self.barge_ins_missed.into());
        put("premature_responses", self.premature_responses.into());
        put("underruns", self.underruns.into());
        put("underrun_ms", self.underrun_ms.into());
        put("server_errors", self.server_errors.into());
        put("late_frames", self.late_frames.into());
        put("max_send_lateness_ms", self.max_send_lateness_ms.into());
        put("fast", self.fast.into());
        for (name, _, s) in self.summaries() {
            put(&format!("{name}_p50"), s.p50.into());
            put(&format!("{name}_p95"), s.p95.into());
            put(&format!("{name}_max"), s.max.into());
            put(&format!("{name}_count"), s.count.into());
        }
        put("failures", self.failures.clone().into());
        Value::Object(m)
    }

    /// A readable table of the report.
    pub fn render_table(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "{} sessions ({} failed), {} turns ({} failed), {} cancelled, {} barge-ins ({} missed), \
             {} underruns ({:.0} ms), {} server errors",
            self.sessions,
            self.sessions_failed,
            self.turns,
            self.turns_failed,
            self.cancellations,
            self.barge_ins,
            self.barge_ins_missed,
            self.underruns,
            self.underrun_ms,
            self.server_errors,
        );
        if self.fast {
            let _ = writeln!(
                out,
                "--fast: audio was sent faster than real time; latencies are not meaningful"
            );
        }
        let _ = writeln!(
            out,
            "{:<26}{:>6}{:>10}{:>10}{:>10}",
            "metric", "n", "p50", "p95", "max"
        );
        let cell = |v: Option<f64>, rtf: bool| match v {
            None => "-".to_owned(),
            Some(v) if rtf => format!("{v:.2}"),
            Some(v) => format!("{v:.0}"),
        };
        for (name, label, s) in self.summaries() {
            if s.count == 0 {
                continue;
            }
            let rtf = name == "talker_rtf";
            let _ = writeln!(
                out,
                "{:<26}{:>6}{:>10}{:>10}{:>10}",
                label,
                s.count,
                cell(s.p50, rtf),
                cell(s.p95, rtf),
                cell(s.max, rtf)
            );
        }
        if self.late_frames > 0 {
            let _ = writeln!(
                out,
                "client pacing: {} frames sent late (worst {:.0} ms): the client machine was overloaded",
                self.late_frames, self.max_send_lateness_ms
            );
        }
        for f in &self.failures {
            let _ = writeln!(out, "failure: {f}");
        }
        out
    }
}

impl Serialize for BenchReport {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json_value().serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ServerTimings;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=20).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(10.0)); // rank ceil(10) = 10
        assert_eq!(percentile(&v, 95.0), Some(19.0)); // rank ceil(19) = 19
        assert_eq!(percentile(&v, 100.0), Some(20.0));
        assert_eq!(percentile(&v, 0.0), Some(1.0)); // rank clamped to 1
        assert_eq!(percentile(&[7.0], 50.0), Some(7.0));
        assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
        // 3 values: p50 = rank 2, p95 = rank ceil(2.85) = 3.
        assert_eq!(percentile(&[1.0, 2.0, 30.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[1.0, 2.0, 30.0], 95.0), Some(30.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn summary_sorts_and_ignores_nan() {
        let s = Summary::of([300.0, f64::NAN, 100.0, 200.0, 400.0]);
        assert_eq!(s.count, 4);
        assert_eq!(s.p50, Some(200.0));
        assert_eq!(s.p95, Some(400.0));
        assert_eq!(s.max, Some(400.0));
        assert_eq!(Summary::of([]), Summary::default());
    }

    fn turn(v2v: f64, status: &str) -> TurnMetrics {
        TurnMetrics {
            wav: "q.wav".into(),
            status: Some(status.into()),
            v2v_ms: Some(v2v),
            endpoint_ms: Some(v2v - 300.0),
            underruns: 1,
            underrun_ms: 20.0,
            server: Some(ServerTimings {
                talker_rtf: Some(0.5),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn aggregation_counts_and_summarizes_every_turn() {
        let ok = SessionSummary {
            turns: vec![turn(800.0, "completed"), turn(1000.0, "cancelled")],
            ..Default::default()
        };
        let timed_out = TurnMetrics {
            timed_out: true,
            wav: "x.wav".into(),
            ..Default::default()
        };
        let partial = SessionSummary {
            turns: vec![turn(900.0, "completed"), timed_out],
            failure: Some("the server closed the connection".into()),
            server_errors: 2,
            late_frames: 3,
            max_send_lateness: Duration::from_millis(45),
        };
        let sessions = vec![Ok(ok), Ok(partial), Err("connection refused".to_owned())];
        let r = BenchReport::aggregate(&sessions, false);
        assert_eq!(r.sessions, 3);
        assert_eq!(r.sessions_failed, 2);
        assert_eq!(r.turns, 4);
        assert_eq!(r.turns_failed, 1);
        assert_eq!(r.cancellations, 1);
        assert_eq!(r.underruns, 3);
        assert_eq!(r.underrun_ms, 60.0);
        assert_eq!(r.server_errors, 2);
        assert_eq!(r.late_frames, 3);
        assert_eq!(r.max_send_lateness_ms, 45.0);
        assert_eq!(r.v2v_ms.count, 3);
        assert_eq!(r.v2v_ms.p50, Some(900.0));
        assert_eq!(r.v2v_ms.p95, Some(1000.0));
        assert_eq!(r.v2v_ms.max, Some(1000.0));
        assert_eq!(r.endpoint_ms.p50, Some(600.0));
        assert_eq!(r.talker_rtf.max, Some(0.5));
        assert_eq!(r.failures.len(), 3, "{:?}", r.failures);

        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["v2v_ms_p50"], 900.0);
        assert_eq!(json["v2v_ms_p95"], 1000.0);
        assert_eq!(json["v2v_ms_max"], 1000.0);
        assert_eq!(json["v2v_ms_count"], 3);
        assert_eq!(json["stop_ms_p50"], Value::Null);
        assert_eq!(json["turns"], 4);
        assert_eq!(json["sessions_failed"], 2);
        let table = r.render_table();
        assert!(table.contains("voice-to-voice (ms)"), "{table}");
        assert!(table.contains("900"), "{table}");
        assert!(
            !table.contains("barge-in stop"),
            "empty metrics are left out: {table}"
        );
    }
}
