//! A session behind the Realtime WebSocket transport: the tokio side of a session.
//!
//! The transport's tasks stay on tokio; the session runs on its own thread. Client items go to
//! the session through its bounded input queue (when it is full this task waits, stops reading
//! the socket, and TCP slows the client down); the session's output goes back through the
//! transport's bounded outgoing queue, which the session thread waits on (`block_on` from its
//! own thread, never from a tokio worker).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::TrySendError;
use parley_protocol::{ServerItem, ServerSession, SessionSender};
use tokio::runtime::Handle;
use tracing::{info, warn};

use super::Engine;
use super::metrics::EngineMetrics;
use super::session::{Outbox, OutboxClosed, SessionInput};
use crate::serve::{SessionContext, SessionRunner};

/// A client that reads nothing for this long is dropped (its session ends).
const STALLED_CLIENT: Duration = Duration::from_secs(10);
/// How often a full session input queue is retried.
const INPUT_RETRY: Duration = Duration::from_millis(2);

/// Sends the session's output into the transport's outgoing queue.
struct WebSocketOutbox {
    sender: SessionSender,
    runtime: Handle,
}

impl Outbox for WebSocketOutbox {
    fn send(&mut self, item: ServerItem) -> Result<(), OutboxClosed> {
        let sender = &self.sender;
        self.runtime
            .block_on(async { tokio::time::timeout(STALLED_CLIENT, sender.send(item)).await })
            .map_err(|_| OutboxClosed)?
            .map_err(|_| OutboxClosed)
    }
}

/// Runs engine sessions for `parley serve`.
pub struct EngineRunner {
    engine: Arc<Engine>,
}

impl EngineRunner {
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

impl SessionRunner for EngineRunner {
    fn run(
        &self,
        session: ServerSession,
        ctx: SessionContext,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let engine = Arc::clone(&self.engine);
        let metrics = EngineMetrics::new(Arc::new(ctx.metrics.clone()));
        Box::pin(async move {
            let shutdown = ctx.shutdown.clone();
            run_session(
                engine,
                session,
                metrics,
                async move { shutdown.wait().await },
            )
            .await
        })
    }
}

/// Runs one WebSocket session to its end: the client leaving, or the server shutting down.
pub async fn run_session(
    engine: Arc<Engine>,
    session: ServerSession,
    metrics: EngineMetrics,
    shutdown: impl Future<Output = ()> + Send,
) {
    let (info, mut incoming, sender) = session.into_parts();
    let outbox = WebSocketOutbox {
        sender: sender.clone(),
        runtime: Handle::current(),
    };
    let started = tokio::task::spawn_blocking({
        let engine = Arc::clone(&engine);
        let model = info.model.clone();
        move || engine.start_session(outbox, model, metrics)
    })
    .await;
    let handle = match started {
        Ok(Ok(handle)) => handle,
        Ok(Err(e)) => {
            warn!("connection {}: cannot start a session: {e:#}", info.id);
            let _ = sender.close(1011, "cannot start a session").await;
            return;
        }
        Err(e) => {
            warn!("connection {}: session start panicked: {e}", info.id);
            return;
        }
    };
    info!(
        "connection {} from {}: session started",
        info.id, info.peer_addr
    );
    let input = handle.input;
    let thread = handle.thread;
    // Resolves when the session thread has ended (and joined its model threads).
    let mut ended = tokio::task::spawn_blocking(move || thread.join());
    let mut shutdown = std::pin::pin!(shutdown);
    let mut shutting_down = false;
    let mut session_over = false;
    loop {
        let message = tokio::select! {
            _ = &mut ended => {
                session_over = true;
                break;
            }
            item = incoming.recv() => match item {
                Some(item) => SessionInput::Client(item),
                None => break,
            },
            // The session finishes its current answer, then ends (and `ended` resolves); the
            // client keeps being heard meanwhile.
            () = &mut shutdown, if !shutting_down => {
                shutting_down = true;
                SessionInput::Shutdown
            }
        };
        if !forward(&input, message).await {
            break;
        }
    }
    // Dropping the input ends the session thread (if it still runs); it cancels its response
    // and joins its model threads before returning.
    drop(input);
    if !session_over && let Err(e) = ended.await {
        warn!("connection {}: joining the session: {e}", info.id);
    }
    release_freed_memory();
    info!("connection {}: session ended", info.id);
}

/// Hands `message` to the session thread, waiting while its queue is full; false once it is gone.
async fn forward(
    input: &crossbeam_channel::Sender<SessionInput>,
    mut message: SessionInput,
) -> bool {
    loop {
        match input.try_send(message) {
            Ok(()) => return true,
            Err(TrySendError::Full(back)) => {
                message = back;
                tokio::time::sleep(INPUT_RETRY).await;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
}

/// A session's KV cache, buffers and threads are freed when it ends, but glibc keeps freed memory
/// in its per-thread arenas; a long-running server would look like it grows with every session.
/// `malloc_trim` hands the free pages back to the OS.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own allocator state, under its locks; it has no
    // preconditions on the caller.
    unsafe {
        libc::malloc_trim(0);
    }
}
