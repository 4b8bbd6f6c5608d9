//! The application as a value: build it from settings (database migrated,
//! listener bound), then run it until a shutdown signal. Tests bind port 0.

use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{self, AppState};
use crate::blob::BlobStore;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::Db;
use crate::exports::{Deliverer, EngineSettings, Exports, Workers};

/// The service's parts, without a listener: what CLI commands use.
pub async fn open(settings: &Settings, clock: Clock) -> anyhow::Result<Exports> {
    let db = Db::connect(&settings.database_url()).await?;
    db.migrate().await?;
    let blobs = BlobStore::open(&settings.storage_url())?;
    Ok(Exports::new(db, blobs, clock, EngineSettings::from_settings(settings)).await?)
}

pub struct Application {
    listener: TcpListener,
    exports: Exports,
    state: AppState,
    workers: usize,
    proxy: Option<crate::proxy::Proxy>,
}

impl Application {
    pub async fn build(settings: &Settings, clock: Clock) -> anyhow::Result<Application> {
        let exports = open(settings, clock).await?;
        let listener = TcpListener::bind(&settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let state = AppState {
            exports: exports.clone(),
            public_url: settings.public_url.clone(),
            admin_token: settings.admin_token.clone(),
            max_body_bytes: settings.max_body_bytes,
            max_ingest_bytes: settings.max_ingest_bytes,
            settable_clock: false,
        };
        Ok(Application {
            listener,
            exports,
            state,
            workers: settings.worker_count(),
            proxy: None,
        })
    }

    /// Also listen as an HTTP proxy on `addr` (see [`crate::proxy`]), with the
    /// CA of `data_dir` (created if missing). Returns the bound address.
    pub async fn enable_proxy(
        &mut self,
        addr: &str,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<SocketAddr> {
        let proxy = crate::proxy::Proxy::bind(addr, data_dir).await?;
        let bound = proxy.local_addr()?;
        self.proxy = Some(proxy);
        Ok(bound)
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Lets the admin API move the service clock forward (`serve --clock`).
    pub fn allow_clock_changes(&mut self) {
        self.state.settable_clock = true;
    }

    pub fn exports(&self) -> &Exports {
        &self.exports
    }

    /// Serves the API and runs the workers until `shutdown` fires; then stops
    /// accepting, lets requests finish, and gives unfinished work back.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let workers = Workers::start(&self.exports, self.workers, &shutdown);
        let deliverer = Deliverer::start(&self.exports, &shutdown);
        let app = api::router(self.state);
        let proxy = self
            .proxy
            .map(|p| tokio::spawn(p.run(app.clone(), shutdown.clone())));
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await;
        shutdown.cancel();
        if let Some(proxy) = proxy {
            let _ = proxy.await;
        }
        workers.shutdown().await;
        deliverer.shutdown().await;
        self.exports.db().close().await;
        served?;
        Ok(())
    }
}

/// Runs `count` workers until `shutdown` fires, then gives unfinished work back.
pub async fn run_workers(exports: &Exports, count: usize, shutdown: CancellationToken) {
    let workers = Workers::start(exports, count, &shutdown);
    let deliverer = Deliverer::start(exports, &shutdown);
    shutdown.cancelled().await;
    workers.shutdown().await;
    deliverer.shutdown().await;
    exports.db().close().await;
}

/// A token cancelled on SIGINT or SIGTERM.
pub fn shutdown_on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot listen for SIGTERM");
                        let _ = ctrl_c.await;
                        t.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}
