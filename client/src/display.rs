//! What `parley converse` shows while a session runs. The library never prints: the driver hands
//! these events to a callback and the CLI decides how they look.

use crate::metrics::TurnMetrics;

/// Something worth showing a person watching the conversation, in the order it happened.
#[derive(Debug, Clone, PartialEq)]
pub enum DisplayEvent {
    /// The server accepted the session (`session.created`).
    SessionStarted { session_id: Option<String> },
    /// The driver started streaming an utterance (`turn` counts from 0).
    UserSpeaking {
        turn: usize,
        wav: String,
        barge_in: bool,
    },
    /// What the server heard (`…input_audio_transcription.completed`): print as `you: <text>`.
    UserTranscript { turn: usize, text: String },
    /// The first answer text of a response arrived: print `parley: ` and then the deltas.
    AnswerStarted { turn: usize },
    /// More answer text (stream it without a newline).
    AnswerDelta { turn: usize, text: String },
    /// The response ended (`response.done`); `status` is its wire name (`completed`,
    /// `cancelled`, `incomplete`, `failed`).
    AnswerDone { turn: usize, status: String },
    /// The user talked over the answer: playback stopped after `played_ms` of it.
    BargeIn { turn: usize, played_ms: u64 },
    /// A turn's numbers, once its answer is done. [`latency_line`] formats them.
    TurnFinished(Box<TurnMetrics>),
    /// The server sent an `error` event (the session goes on).
    ServerError { code: String, message: String },
}

/// One line of latencies for a turn, e.g.
/// `v2v 812 ms · endpoint 540 ms · first token 655 ms · first audible 830 ms · rtf 0.42 · 0 underruns`.
/// Missing numbers show as `-`.
pub fn latency_line(m: &TurnMetrics) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"));
    let mut line = format!(
        "v2v {} · endpoint {} · first token {} · first audible {} · rtf {}",
        ms(m.v2v_ms),
        ms(m.endpoint_ms),
        ms(m.first_token_ms),
        ms(m.first_audible_ms),
        m.server
            .and_then(|s| s.talker_rtf)
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}")),
    );
    line.push_str(&format!(" · {} underruns", m.underruns));
    if m.interrupted {
        line.push_str(&format!(
            " · interrupted after {} (stop {}, {} audio after)",
            ms(m.played_ms),
            ms(m.stop_ms),
            ms(m.audio_after_stop_ms)
        ));
    }
    if m.timed_out {
        line.push_str(" · NO ANSWER (timed out)");
    }
    if let Some(s) = &m.server {
        let parts: Vec<String> = [
            ("endpoint", s.endpoint_ms),
            ("transcribe", s.transcribe_ms),
            ("first token", s.first_token_ms),
            ("first audio", s.first_audio_ms),
        ]
        .iter()
        .filter_map(|(name, v)| v.map(|v| format!("{name} {v:.0}")))
        .collect();
        if !parts.is_empty() {
            line.push_str(&format!(" · server: {} ms", parts.join(", ")));
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::ServerTimings;

    #[test]
    fn latency_line_shows_what_was_measured() {
        let mut m = TurnMetrics {
            v2v_ms: Some(812.4),
            endpoint_ms: Some(540.0),
            first_token_ms: Some(655.0),
            server: Some(ServerTimings {
                talker_rtf: Some(0.42),
                endpoint_ms: Some(520.0),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            latency_line(&m),
            "v2v 812 ms · endpoint 540 ms · first token 655 ms · first audible - · rtf 0.42 · \
             0 underruns · server: endpoint 520 ms"
        );
        m.interrupted = true;
        m.played_ms = Some(1000.0);
        m.stop_ms = Some(99.5);
        m.audio_after_stop_ms = Some(30.0);
        m.timed_out = true;
        let line = latency_line(&m);
        assert!(
            line.contains("interrupted after 1000 ms (stop 100 ms, 30 ms audio after)"),
            "{line}"
        );
        assert!(line.contains("NO ANSWER"), "{line}");
    }
}
