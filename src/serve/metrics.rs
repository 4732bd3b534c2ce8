//! The server's Prometheus metrics, served at `/metrics` (OpenMetrics text).
//!
//! [`Metrics`] is a cheap, clonable handle: the engine records from any thread (tokio workers,
//! Thinker and Talker threads) with atomic counters and short-locked histograms. Not for audio
//! callbacks: those count underruns in an atomic of their own and report them from elsewhere.
//!
//! | series | kind | labels |
//! |---|---|---|
//! | `parley_sessions_active` | gauge | |
//! | `parley_sessions_total` | counter | |
//! | `parley_sessions_refused_total` | counter | `reason`: `session_limit`, `unauthorized` |
//! | `parley_turns_total` | counter | |
//! | `parley_responses_total` | counter | `status`: `completed`, `cancelled`, `incomplete`, `failed` |
//! | `parley_cancellations_total` | counter | |
//! | `parley_audio_underruns_total` | counter | |
//! | `parley_stage_latency_seconds` | histogram | `stage`: see [`Stage`] |
//! | `parley_talker_rtf` | histogram | |

use std::sync::Arc;

use parley_protocol::response::ResponseStatus;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

/// `Content-Type` of [`Metrics::render`]'s output; Prometheus scrapes it natively.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Latency buckets from 10 ms to 5 s, dense around the targets (100 ms stop, 200 ms after the
/// endpoint, 700 ms voice to voice).
const LATENCY_BUCKETS: [f64; 17] = [
    0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0,
];
/// Talker real-time factor (synthesis time / audio time); above 1 it cannot keep up.
const RTF_BUCKETS: [f64; 10] = [0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0];

type Label = [(&'static str, &'static str); 1];

pub use crate::engine::metrics::Stage;

/// Position of `stage` in [`Stage::ALL`] (the histograms are kept in that order).
fn stage_index(stage: Stage) -> usize {
    stage as usize
}

/// Why a connection got no session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// `--max-sessions` sessions were already running.
    SessionLimit,
    /// Missing or wrong API key.
    Unauthorized,
}

impl RefusalReason {
    pub fn label(self) -> &'static str {
        match self {
            RefusalReason::SessionLimit => "session_limit",
            RefusalReason::Unauthorized => "unauthorized",
        }
    }
}

struct Inner {
    registry: Registry,
    sessions_active: Gauge,
    sessions_total: Counter,
    sessions_refused: Family<Label, Counter>,
    turns: Counter,
    responses: Family<Label, Counter>,
    cancellations: Counter,
    audio_underruns: Counter,
    /// One histogram per [`Stage`], indexed by `stage_index`, taken from the family once so
    /// recording skips the family's label lookup.
    stage_latency: Vec<Histogram>,
    talker_rtf: Histogram,
}

/// The metrics handle. Clones share the same series.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sessions_active", &self.sessions_active())
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("parley");
        let sessions_active = Gauge::default();
        registry.register(
            "sessions_active",
            "Sessions running now",
            sessions_active.clone(),
        );
        let sessions_total = Counter::default();
        registry.register(
            "sessions",
            "Sessions started since the server started",
            sessions_total.clone(),
        );
        let sessions_refused = Family::<Label, Counter>::default();
        registry.register(
            "sessions_refused",
            "Connections that got no session, by reason",
            sessions_refused.clone(),
        );
        let turns = Counter::default();
        registry.register("turns", "User turns (endpoints decided)", turns.clone());
        let responses = Family::<Label, Counter>::default();
        registry.register(
            "responses",
            "Responses finished, by final status",
            responses.clone(),
        );
        let cancellations = Counter::default();
        registry.register(
            "cancellations",
            "Responses cancelled by barge-in or response.cancel",
            cancellations.clone(),
        );
        let audio_underruns = Counter::default();
        registry.register(
            "audio_underruns",
            "Times output audio was due and none was ready",
            audio_underruns.clone(),
        );
        let stage_family = Family::<Label, Histogram>::new_with_constructor(
            (|| Histogram::new(LATENCY_BUCKETS)) as fn() -> Histogram,
        );
        registry.register_with_unit(
            "stage_latency",
            "Per-turn latency of each pipeline stage",
            Unit::Seconds,
            stage_family.clone(),
        );
        // Created up front so every stage shows (with zero counts) before its first turn.
        let stage_latency = Stage::ALL
            .iter()
            .map(|stage| stage_family.get_or_create_owned(&[("stage", stage.label())]))
            .collect();
        let talker_rtf = Histogram::new(RTF_BUCKETS);
        registry.register(
            "talker_rtf",
            "Talker real-time factor per phrase (synthesis time / audio duration)",
            talker_rtf.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry,
                sessions_active,
                sessions_total,
                sessions_refused,
                turns,
                responses,
                cancellations,
                audio_underruns,
                stage_latency,
                talker_rtf,
            }),
        }
    }

    /// Counts a session as started and running until the returned guard is dropped.
    pub fn session_opened(&self) -> ActiveSession {
        self.inner.sessions_total.inc();
        self.inner.sessions_active.inc();
        ActiveSession {
            metrics: self.clone(),
        }
    }

    pub fn sessions_active(&self) -> i64 {
        self.inner.sessions_active.get()
    }

    pub fn session_refused(&self, reason: RefusalReason) {
        self.inner
            .sessions_refused
            .get_or_create(&[("reason", reason.label())])
            .inc();
    }

    /// One user turn ended (endpoint decided).
    pub fn turn(&self) {
        self.inner.turns.inc();
    }

    /// A response ended with `status` (`in_progress` is not an end and is ignored).
    pub fn response_finished(&self, status: ResponseStatus) {
        let label = match status {
            ResponseStatus::Completed => "completed",
            ResponseStatus::Cancelled => "cancelled",
            ResponseStatus::Incomplete => "incomplete",
            ResponseStatus::Failed => "failed",
            ResponseStatus::InProgress => return,
        };
        self.inner
            .responses
            .get_or_create(&[("status", label)])
            .inc();
    }

    /// A response was cancelled (barge-in or `response.cancel`).
    pub fn cancellation(&self) {
        self.inner.cancellations.inc();
    }

    /// `count` output underruns happened.
    pub fn audio_underruns(&self, count: u64) {
        self.inner.audio_underruns.inc_by(count);
    }

    /// Records one turn's latency of `stage`. Negative or non-finite values are dropped: they
    /// can only come from a clock mix-up and would poison the sum.
    pub fn observe_stage(&self, stage: Stage, seconds: f64) {
        if seconds.is_finite() && seconds >= 0.0 {
            self.inner.stage_latency[stage_index(stage)].observe(seconds);
        }
    }

    /// Records a Talker real-time factor (synthesis time / audio time).
    pub fn observe_talker_rtf(&self, rtf: f64) {
        if rtf.is_finite() && rtf >= 0.0 {
            self.inner.talker_rtf.observe(rtf);
        }
    }

    /// The OpenMetrics text exposition of every series ([`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; the encoder only forwards `fmt::Write` errors.
        if let Err(e) = encode(&mut out, &self.inner.registry) {
            tracing::error!("encoding metrics failed: {e}");
        }
        out
    }
}

/// A running session, counted in `sessions_active` until dropped.
#[derive(Debug)]
pub struct ActiveSession {
    metrics: Metrics,
}

impl Drop for ActiveSession {
    fn drop(&mut self) {
        self.metrics.inner.sessions_active.dec();
    }
}

/// The engine reports into the Prometheus registry through this.
impl crate::engine::metrics::MetricsSink for Metrics {
    fn observe(&self, stage: Stage, latency: std::time::Duration) {
        self.observe_stage(stage, latency.as_secs_f64());
    }

    fn turn(&self) {
        Metrics::turn(self);
    }

    fn response(&self, status: ResponseStatus) {
        self.response_finished(status);
    }

    fn cancellation(&self) {
        Metrics::cancellation(self);
    }

    fn backchannel(&self) {}

    fn talker_rtf(&self, rtf: f64) {
        self.observe_talker_rtf(rtf);
    }

    fn underrun(&self) {
        self.audio_underruns(1);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Parses the exposition: every line a comment or `name{labels} value`; `# EOF` last.
    /// Returns `series -> value` with the series as written (`name{labels}`).
    fn parse_exposition(text: &str) -> HashMap<String, f64> {
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines.last(),
            Some(&"# EOF"),
            "exposition must end with # EOF"
        );
        let mut series = HashMap::new();
        for line in &lines {
            if line.starts_with('#') {
                let mut parts = line.splitn(4, ' ');
                assert_eq!(parts.next(), Some("#"));
                let keyword = parts.next().unwrap();
                assert!(
                    ["HELP", "TYPE", "UNIT", "EOF"].contains(&keyword),
                    "bad comment line {line}"
                );
                continue;
            }
            let (name, value) = line.rsplit_once(' ').expect("name and value");
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line}"));
            let bare = name.split('{').next().unwrap();
            assert!(
                bare.starts_with("parley_")
                    && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad metric name in {line}"
            );
            let labels = &name[bare.len()..];
            if !labels.is_empty() {
                assert!(labels.starts_with('{') && labels.ends_with('}'), "{line}");
                for pair in labels[1..labels.len() - 1].split(',') {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(!k.is_empty() && v.starts_with('"') && v.ends_with('"'));
                }
            }
            assert!(
                series.insert(name.to_owned(), value).is_none(),
                "duplicate {name}"
            );
        }
        series
    }

    #[test]
    fn exposition_holds_every_series_with_the_recorded_values() {
        let metrics = Metrics::new();
        let other_thread = metrics.clone();
        std::thread::spawn(move || {
            other_thread.observe_stage(Stage::FirstAudio, 0.150);
            other_thread.observe_talker_rtf(0.4);
        })
        .join()
        .unwrap();
        metrics.observe_stage(Stage::FirstAudio, 0.050);
        metrics.observe_stage(Stage::VoiceToVoice, 0.650);
        metrics.observe_stage(Stage::Stop, f64::NAN); // dropped
        metrics.observe_stage(Stage::Stop, -1.0); // dropped
        let first = metrics.session_opened();
        let second = metrics.session_opened();
        drop(first);
        metrics.session_refused(RefusalReason::SessionLimit);
        metrics.session_refused(RefusalReason::SessionLimit);
        metrics.session_refused(RefusalReason::Unauthorized);
        metrics.turn();
        metrics.response_finished(ResponseStatus::Completed);
        metrics.response_finished(ResponseStatus::Cancelled);
        metrics.response_finished(ResponseStatus::InProgress); // not an end
        metrics.cancellation();
        metrics.audio_underruns(3);

        let text = metrics.render();
        let series = parse_exposition(&text);
        let get = |name: &str| {
            *series
                .get(name)
                .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
        };
        assert_eq!(get("parley_sessions_active"), 1.0);
        assert_eq!(get("parley_sessions_total"), 2.0);
        assert_eq!(
            get(r#"parley_sessions_refused_total{reason="session_limit"}"#),
            2.0
        );
        assert_eq!(
            get(r#"parley_sessions_refused_total{reason="unauthorized"}"#),
            1.0
        );
        assert_eq!(get("parley_turns_total"), 1.0);
        assert_eq!(get(r#"parley_responses_total{status="completed"}"#), 1.0);
        assert_eq!(get(r#"parley_responses_total{status="cancelled"}"#), 1.0);
        assert!(!text.contains("in_progress"));
        assert_eq!(get("parley_cancellations_total"), 1.0);
        assert_eq!(get("parley_audio_underruns_total"), 3.0);

        let stage = |suffix: &str, stage: &str, le: Option<&str>| {
            let labels = match le {
                // The encoder puts `le` before the family's own labels.
                Some(le) => format!(r#"{{le="{le}",stage="{stage}"}}"#),
                None => format!(r#"{{stage="{stage}"}}"#),
            };
            get(&format!("parley_stage_latency_seconds_{suffix}{labels}"))
        };
        assert_eq!(stage("count", "first_audio", None), 2.0);
        assert!((stage("sum", "first_audio", None) - 0.2).abs() < 1e-9);
        // Cumulative buckets: 50 ms is under 0.05, 150 ms under 0.15.
        assert_eq!(stage("bucket", "first_audio", Some("0.03")), 0.0);
        assert_eq!(stage("bucket", "first_audio", Some("0.05")), 1.0);
        assert_eq!(stage("bucket", "first_audio", Some("0.1")), 1.0);
        assert_eq!(stage("bucket", "first_audio", Some("0.15")), 2.0);
        assert_eq!(stage("bucket", "first_audio", Some("+Inf")), 2.0);
        assert_eq!(stage("bucket", "voice_to_voice", Some("0.5")), 0.0);
        assert_eq!(stage("bucket", "voice_to_voice", Some("0.7")), 1.0);
        // Every stage is there before its first observation; the bad values were dropped.
        for s in Stage::ALL {
            stage("count", s.label(), None);
        }
        assert_eq!(stage("count", "stop", None), 0.0);
        assert_eq!(get("parley_talker_rtf_count"), 1.0);
        assert_eq!(get(r#"parley_talker_rtf_bucket{le="0.5"}"#), 1.0);

        drop(second);
        assert_eq!(metrics.sessions_active(), 0);
    }
}
