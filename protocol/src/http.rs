//! Plain HTTP on the WebSocket's listener: `GET /healthz`, `GET /metrics` and the like.
//!
//! The server looks at each new connection's request head before tungstenite does. A request
//! that asks for a WebSocket upgrade (`Upgrade: websocket`) goes on to the upgrade as before;
//! anything else is answered here, once, with `Connection: close`:
//!
//! - `GET`/`HEAD` of a path the [`HttpHandler`] knows: its [`HttpResponse`];
//! - the WebSocket path without an upgrade: 426;
//! - another method: 405; an unknown path: 404; a head that is not HTTP: 400; a head over
//!   [`MAX_HEAD_BYTES`]: 431.
//!
//! The head is only *peeked* (left in the socket) so that tungstenite can read it again for an
//! upgrade; which keeps the WebSocket handshake exactly as it was.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::http::StatusCode;

/// The longest request head (request line and headers) accepted. Browsers and WebSocket clients
/// send well under 2 KiB; the limit bounds what one connection can make the server buffer.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;

/// While a head is incomplete, `peek` keeps returning the same bytes at once; wait this long
/// between looks instead of spinning. Heads almost always arrive in one TCP segment.
const PEEK_RETRY: Duration = Duration::from_millis(5);

/// Answers plain GET requests by path (without the query). `None` means "no such route": 404.
pub type HttpHandlerFn = dyn Fn(&str) -> Option<HttpResponse> + Send + Sync;
/// How the server holds its [`HttpHandlerFn`].
pub type HttpHandler = Arc<HttpHandlerFn>;

/// A complete HTTP response: status, content type and body. Used for plain routes and for
/// rejected upgrades alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpResponse {
    pub fn new(status: u16, content_type: impl Into<String>, body: impl Into<String>) -> Self {
        HttpResponse {
            status,
            content_type: content_type.into(),
            body: body.into(),
        }
    }

    /// `text/plain; charset=utf-8`.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    /// `application/json`; `body` must already be JSON text.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::new(status, "application/json", body)
    }

    /// The status line's reason phrase (`Not Found`), or an empty one for unusual codes.
    pub fn reason(&self) -> &'static str {
        StatusCode::from_u16(self.status)
            .ok()
            .and_then(|code| code.canonical_reason())
            .unwrap_or("")
    }

    /// The whole response as bytes, for `Connection: close` delivery. `head_only` (for HEAD
    /// requests) keeps `Content-Length` but leaves the body out.
    fn to_bytes(&self, head_only: bool) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n\r\n",
            self.status,
            self.reason(),
            self.content_type,
            self.body.len()
        )
        .into_bytes();
        if !head_only {
            out.extend_from_slice(self.body.as_bytes());
        }
        out
    }
}

/// What the server needs from a request head to route it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RequestHead {
    pub method: String,
    /// The path without the query string.
    pub path: String,
    /// `Upgrade: websocket` is present.
    pub wants_websocket: bool,
    /// Bytes of the head including the blank line that ends it.
    pub len: usize,
}

/// The outcome of looking at a new connection's first bytes.
#[derive(Debug)]
pub(crate) enum Peeked {
    Head(RequestHead),
    /// The bytes before the blank line are not an HTTP request.
    Malformed,
    /// No blank line within [`MAX_HEAD_BYTES`].
    TooLarge,
    /// The peer closed before sending a whole head.
    Closed,
}

/// Waits for a whole request head without consuming it. The caller bounds the wait.
pub(crate) async fn peek_head(tcp: &TcpStream) -> io::Result<Peeked> {
    let mut buf = vec![0u8; MAX_HEAD_BYTES];
    let mut seen = 0;
    loop {
        let n = tcp.peek(&mut buf).await?;
        if n == 0 {
            return Ok(Peeked::Closed);
        }
        if let Some(end) = find_head_end(&buf[..n]) {
            return Ok(parse_head(&buf[..end]).map_or(Peeked::Malformed, Peeked::Head));
        }
        if n == buf.len() {
            return Ok(Peeked::TooLarge);
        }
        if n == seen {
            tokio::time::sleep(PEEK_RETRY).await;
        }
        seen = n;
    }
}

/// The length of the head including its final `\r\n\r\n`, once it is all there.
fn find_head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// Reads the request line and the `Upgrade` header; `None` if this is not an HTTP/1 request.
pub(crate) fn parse_head(head: &[u8]) -> Option<RequestHead> {
    let text = std::str::from_utf8(head).ok()?;
    let mut lines = text.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next().filter(|m| !m.is_empty())?;
    let target = request_line.next().filter(|t| t.starts_with('/'))?;
    let version = request_line.next()?;
    if !version.starts_with("HTTP/1.") || request_line.next().is_some() {
        return None;
    }
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let wants_websocket = lines
        .filter_map(|line| line.split_once(':'))
        .any(|(name, value)| {
            name.trim().eq_ignore_ascii_case("upgrade")
                && value
                    .split(',')
                    .any(|protocol| protocol.trim().eq_ignore_ascii_case("websocket"))
        });
    Some(RequestHead {
        method: method.to_owned(),
        path: path.to_owned(),
        wants_websocket,
        len: head.len(),
    })
}

/// What a request that is not an upgrade gets.
pub(crate) fn route(
    head: &RequestHead,
    websocket_path: &str,
    handler: Option<&HttpHandlerFn>,
) -> HttpResponse {
    if head.path == websocket_path {
        return HttpResponse::text(
            426,
            format!("{websocket_path} is a WebSocket endpoint; connect with a WebSocket client"),
        );
    }
    if head.method != "GET" && head.method != "HEAD" {
        return HttpResponse::text(405, format!("{} is not supported; use GET", head.method));
    }
    handler
        .and_then(|handler| handler(&head.path))
        .unwrap_or_else(|| HttpResponse::text(404, format!("nothing at {}", head.path)))
}

/// Consumes the peeked head, writes `response` and closes. `head` is `None` when the head could
/// not be read (it is left unread; the close drains it).
pub(crate) async fn respond(
    mut tcp: TcpStream,
    head: Option<&RequestHead>,
    response: &HttpResponse,
    write_timeout: Duration,
) -> io::Result<TcpStream> {
    if let Some(head) = head {
        let mut consumed = vec![0u8; head.len];
        tcp.read_exact(&mut consumed).await?;
    }
    let head_only = head.is_some_and(|h| h.method == "HEAD");
    let bytes = response.to_bytes(head_only);
    tokio::time::timeout(write_timeout, tcp.write_all(&bytes))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "response write timed out"))??;
    Ok(tcp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed_for_method_path_and_upgrade() {
        let head = b"GET /healthz?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n";
        let parsed = parse_head(head).unwrap();
        assert_eq!(parsed.method, "GET");
        assert_eq!(parsed.path, "/healthz");
        assert!(!parsed.wants_websocket);
        assert_eq!(parsed.len, head.len());

        let upgrade =
            b"GET /v1/realtime HTTP/1.1\r\nconnection: Upgrade\r\nUPGRADE:  WebSocket \r\n\r\n";
        assert!(parse_head(upgrade).unwrap().wants_websocket);
        // A list of protocols counts too.
        let listed = b"GET / HTTP/1.1\r\nUpgrade: h2c, websocket\r\n\r\n";
        assert!(parse_head(listed).unwrap().wants_websocket);

        assert_eq!(parse_head(b"\x16\x03\x01garbage\r\n\r\n"), None);
        assert_eq!(parse_head(b"GET healthz HTTP/1.1\r\n\r\n"), None);
        assert_eq!(parse_head(b"GET / SPDY/3\r\n\r\n"), None);
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nHost: x\r\n"), None);
    }

    #[test]
    fn routes_answer_404_405_426_or_the_handler() {
        let head = |method: &str, path: &str| RequestHead {
            method: method.to_owned(),
            path: path.to_owned(),
            wants_websocket: false,
            len: 0,
        };
        let handler = |path: &str| (path == "/healthz").then(|| HttpResponse::json(200, "{}"));
        let handler: &HttpHandlerFn = &handler;
        let ws = "/v1/realtime";
        assert_eq!(
            route(&head("GET", "/healthz"), ws, Some(handler)).status,
            200
        );
        assert_eq!(
            route(&head("HEAD", "/healthz"), ws, Some(handler)).status,
            200
        );
        assert_eq!(route(&head("GET", "/nope"), ws, Some(handler)).status, 404);
        assert_eq!(route(&head("GET", "/healthz"), ws, None).status, 404);
        assert_eq!(
            route(&head("POST", "/healthz"), ws, Some(handler)).status,
            405
        );
        assert_eq!(route(&head("GET", ws), ws, Some(handler)).status, 426);
    }

    #[test]
    fn responses_carry_length_and_close_and_head_drops_the_body() {
        let response = HttpResponse::json(503, r#"{"a":1}"#);
        let full = String::from_utf8(response.to_bytes(false)).unwrap();
        assert!(full.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(full.contains("Content-Type: application/json\r\n"));
        assert!(full.contains("Content-Length: 7\r\n"));
        assert!(full.contains("Connection: close\r\n"));
        assert!(full.ends_with("\r\n\r\n{\"a\":1}"));
        let head_only = String::from_utf8(response.to_bytes(true)).unwrap();
        assert!(head_only.ends_with(
            "Content-Length: 7\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
        ));
    }
}
