//! WebSocket close codes parley uses, and what a closed connection reported.

/// The session ended normally (the client closed, or the server's session finished).
pub const NORMAL: u16 = 1000;
/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// The peer broke the WebSocket protocol.
pub const PROTOCOL_ERROR: u16 = 1002;
/// A text frame was not valid UTF-8.
pub const INVALID_PAYLOAD: u16 = 1007;
/// The peer broke a rule of this server: it stopped answering pings (keepalive timeout) or
/// stopped reading what the server sends (write stall).
pub const POLICY: u16 = 1008;
/// A message was larger than the server's limit.
pub const TOO_BIG: u16 = 1009;
/// The session failed inside the server (the handler panicked).
pub const INTERNAL_ERROR: u16 = 1011;
/// The server cannot take the session now (for example, all session slots are busy); the
/// client may retry later.
pub const TRY_AGAIN_LATER: u16 = 1013;
/// Reported by a client when the server closed without a code.
pub const NO_STATUS: u16 = 1005;

/// A close code and its reason text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    pub code: u16,
    pub reason: String,
}

impl CloseInfo {
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        CloseInfo {
            code,
            reason: reason.into(),
        }
    }
}
