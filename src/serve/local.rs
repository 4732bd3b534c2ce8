//! A parley server inside this process (for `talk`, `converse` and `bench` without a URL, and
//! for tests): the same engine and WebSocket pipeline as `parley serve`, on a free localhost
//! port.

use std::sync::Arc;

use crate::engine::Engine;
use crate::engine::websocket::EngineRunner;
use crate::serve::config::ServeConfig;
use anyhow::Context;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct LocalServer {
    pub addr: std::net::SocketAddr,
    /// `ws://127.0.0.1:PORT/v1/realtime`.
    pub url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl LocalServer {
    /// Loads the CPU models and starts serving (call inside a tokio runtime).
    pub async fn start(max_sessions: usize) -> anyhow::Result<Self> {
        let mut config = ServeConfig::defaults();
        config.port = 0;
        config.max_sessions = max_sessions.max(1);
        let engine = tokio::task::spawn_blocking({
            let config = config.clone();
            move || Engine::from_serve_config(&config)
        })
        .await??;
        Self::start_with(engine, config).await
    }

    /// Serves `engine` with `config` (its host and port: use port 0 for a free one).
    pub async fn start_with(engine: Arc<Engine>, config: ServeConfig) -> anyhow::Result<Self> {
        let runner = Arc::new(EngineRunner::new(engine));
        let (stop, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(crate::serve::serve_until(
            config,
            runner,
            move |addr| {
                let _ = ready_tx.send(addr);
            },
            async move {
                let _ = stopped.await;
            },
        ));
        let addr = ready_rx.await.context("the local server did not start")?;
        Ok(Self {
            addr,
            url: format!("ws://{addr}/v1/realtime"),
            stop,
            task,
        })
    }

    /// `url` if given, else a server started here for `max_sessions` sessions: the URL to use
    /// and the local server to stop afterwards (`talk`, `converse` and `bench` all do this).
    pub async fn unless_url(
        url: Option<&str>,
        max_sessions: usize,
    ) -> anyhow::Result<(String, Option<Self>)> {
        match url {
            Some(url) => Ok((url.to_string(), None)),
            None => {
                let local = Self::start(max_sessions).await?;
                Ok((local.url.clone(), Some(local)))
            }
        }
    }

    /// Ends the sessions cleanly and stops.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await?
    }
}
