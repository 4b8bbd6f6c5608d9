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
    crate::private_files::restrict_umask();
    if settings.data_dir.exists() && !settings.data_dir.is_dir() {
        anyhow::bail!(
            "data_dir {} exists and is not a directory",
            settings.data_dir.display()
        );
    }
    let storage = settings.storage_url();
    let database = settings.database_url();
    // The SQLite file and its companions, not the folder it is in (which
    // may be anybody's, /tmp say).
    let sqlite: Vec<std::path::PathBuf> = database
        .expose()
        .strip_prefix("sqlite://")
        .map(|p| p.split('?').next().unwrap_or(p))
        .map(|db| {
            ["", "-wal", "-shm", "-lines"]
                .iter()
                .map(|suffix| std::path::PathBuf::from(format!("{db}{suffix}")))
                .collect()
        })
        .unwrap_or_default();
    let mut private = vec![settings.data_dir.as_path()];
    private.extend(sqlite.iter().map(|p| p.as_path()));
    private.extend(storage.strip_prefix("file://").map(std::path::Path::new));
    crate::private_files::tighten_all(&private)?;
    let db = Db::connect_with_timeout(
        settings.database_url().expose(),
        std::time::Duration::from_secs(settings.database_timeout_secs.max(1)),
    )
    .await?;
    db.migrate().await?;
    let blobs = BlobStore::open(&settings.storage_url())?;
    Ok(Exports::new(db, blobs, clock, EngineSettings::from_settings(settings)).await?)
}

pub struct Application {
    listener: TcpListener,
    exports: Exports,
    state: AppState,
    limits: api::ConnectionLimits,
    workers: usize,
    proxy: Option<crate::proxy::Proxy>,
    /// How long the API serves on, not ready, after the shutdown signal.
    grace: std::time::Duration,
}

impl Application {
    pub async fn build(settings: &Settings, clock: Clock) -> anyhow::Result<Application> {
        settings.check_for_service()?;
        let exports = open(settings, clock).await?;
        exports.apply_configured_fixtures().await?;
        let listener = TcpListener::bind(&settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let state = AppState::new(exports.clone(), settings)?;
        let limits = api::ConnectionLimits {
            header_read_timeout: std::time::Duration::from_secs(
                settings.header_read_timeout_secs.max(1),
            ),
            keepalive_timeout: std::time::Duration::from_secs(
                settings.keepalive_timeout_secs.max(1),
            ),
        };
        Ok(Application {
            listener,
            exports,
            state,
            limits,
            workers: settings.worker_count(),
            proxy: None,
            grace: std::time::Duration::from_secs(settings.shutdown_grace_secs),
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

    /// Serves the API and runs the workers until `shutdown` fires; then
    /// answers `/readyz` with 503 for `shutdown_grace_secs` while it goes on
    /// serving, stops accepting, lets requests finish, and gives unfinished
    /// work back.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let workers = Workers::start(&self.exports, self.workers, &shutdown);
        let deliverer = Deliverer::start(&self.exports, &shutdown);
        let proxied = api::proxied_router(self.state.clone());
        let stop_listening = CancellationToken::new();
        let drain = {
            let (shutdown, draining) = (shutdown.clone(), self.state.draining.clone());
            let (stop, grace) = (stop_listening.clone(), self.grace);
            tokio::spawn(async move {
                shutdown.cancelled().await;
                draining.cancel();
                if !grace.is_zero() {
                    tracing::info!(
                        grace_secs = grace.as_secs(),
                        "not ready; serving on until the grace period ends"
                    );
                    tokio::time::sleep(grace).await;
                }
                stop.cancel();
            })
        };
        let app = api::router(self.state);
        let proxy = self
            .proxy
            .map(|p| tokio::spawn(p.run(proxied, stop_listening.clone())));
        api::serve(self.listener, app, self.limits, stop_listening).await;
        drain.abort();
        shutdown.cancel();
        if let Some(proxy) = proxy {
            let _ = proxy.await;
        }
        workers.shutdown().await;
        deliverer.shutdown().await;
        self.exports.db().close().await;
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
