//! The crate's error type. Messages name the URL or file involved and, where there is one, the fix.

use std::path::PathBuf;

use parley_protocol::{CloseInfo, ProtocolError};
use thiserror::Error;

/// Everything that can stop a session or a script from starting.
///
/// Problems in the middle of a session (the server closing, a turn without an answer) do not
/// show up here: they are recorded in the [`SessionRecord`](crate::SessionRecord) so the turns
/// measured before them are kept.
#[derive(Debug, Error)]
pub enum ClientError {
    #[error(
        "could not connect to {url}: connection refused. Is a server running there? Start one with `parley serve`."
    )]
    ConnectionRefused { url: String },
    #[error(
        "{url} refused the API key (HTTP {status}): the key is wrong or missing; pass it with the API-key option{}",
        detail(body)
    )]
    Unauthorized {
        url: String,
        status: u16,
        body: String,
    },
    #[error(
        "{url} is at its connection limit (HTTP 503); try fewer sessions or later{}",
        detail(body)
    )]
    ServerFull { url: String, body: String },
    #[error("{url} refused the WebSocket upgrade with HTTP {status}{}{}", detail(body), path_hint(*status))]
    Rejected {
        url: String,
        status: u16,
        body: String,
    },
    #[error("connecting to {url} timed out")]
    ConnectTimeout { url: String },
    #[error("could not connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: ProtocolError,
    },
    /// The server answered the new connection with an `error` event instead of
    /// `session.created`, typically because it already runs its maximum number of sessions.
    #[error("the server refused the session: {message} (error code `{code}`)")]
    SessionRefused { code: String, message: String },
    #[error("the server rejected the session.update: {message} (error code `{code}`)")]
    SessionUpdateRejected { code: String, message: String },
    #[error("the server closed the connection before the session started{}", close_detail(.close))]
    ClosedBeforeSession { close: Option<CloseInfo> },
    #[error("no {event} from the server within {seconds} s")]
    NoAnswer { event: &'static str, seconds: u64 },
    #[error("sending to the server failed: {0}")]
    Send(#[source] ProtocolError),
    #[error("could not read the WAV file: {0}")]
    Wav(#[from] parley_audio_io::AudioError),
    #[error("{path} has no speech: every sample is below the silence floor")]
    NoSpeech { path: PathBuf },
    #[error("could not read the script {path}: {source}")]
    ScriptIo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("bad script {path}: {message}")]
    Script { path: PathBuf, message: String },
    #[error("the script is empty: give at least one WAV or step")]
    EmptyScript,
    /// A bench session's task ended abnormally (a bug: it panicked).
    #[error("the session task failed: {0}")]
    TaskFailed(String),
}

fn detail(body: &str) -> String {
    if body.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", body.trim())
    }
}

fn path_hint(status: u16) -> &'static str {
    if status == 404 {
        " (parley serves WebSockets at /v1/realtime)"
    } else {
        ""
    }
}

fn close_detail(close: &Option<CloseInfo>) -> String {
    match close {
        Some(c) => format!(" (close code {}: {})", c.code, c.reason),
        None => String::new(),
    }
}

impl ClientError {
    /// Maps a failed [`RealtimeClient::connect`](parley_protocol::RealtimeClient::connect) to
    /// the error a user can act on.
    pub fn from_connect(url: &str, error: ProtocolError) -> Self {
        let url = url.to_owned();
        match error {
            ProtocolError::Rejected {
                status: status @ (401 | 403),
                body,
            } => ClientError::Unauthorized { url, status, body },
            ProtocolError::Rejected { status: 503, body } => ClientError::ServerFull { url, body },
            ProtocolError::Rejected { status, body } => ClientError::Rejected { url, status, body },
            ProtocolError::Timeout(_) => ClientError::ConnectTimeout { url },
            other if is_connection_refused(&other) => ClientError::ConnectionRefused { url },
            other => ClientError::Connect { url, source: other },
        }
    }
}

/// Whether an `io::Error` of kind `ConnectionRefused` is somewhere in the error's source chain
/// (tungstenite wraps it; matching the chain avoids depending on tungstenite's types here).
fn is_connection_refused(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        current = e.source();
    }
    false
}
