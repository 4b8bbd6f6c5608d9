//! The proxy mode: an HTTP proxy listener that lets the official Twilio
//! clients reach this service unmodified, through their standard proxy and
//! CA-bundle settings. `CONNECT` to a served Twilio host (see [`names`]) is
//! answered with a TLS endpoint whose certificate the local CA ([`ca`]) issues
//! for that host; the requests inside are served by the normal API, marked as
//! coming through the proxy so that absolute URLs use the canonical
//! `https://bulkexports.twilio.com`. Plain-HTTP proxy requests for those hosts
//! are served the same way. Everything else is refused with 403: this is never
//! an open proxy, it forwards nothing anywhere.

pub mod ca;
pub mod names;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::Router;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use ca::Authority;

/// The canonical base of absolute URLs in responses served through the proxy.
pub const CANONICAL_BASE: &str = "https://bulkexports.twilio.com";

/// Marks a request that arrived through the proxy (a request extension).
#[derive(Clone, Copy, Debug)]
pub struct ViaProxy;

struct Shared {
    authority: Authority,
    api: Router,
}

/// A bound proxy listener, ready to serve.
pub struct Proxy {
    listener: TcpListener,
    authority: Authority,
}

impl Proxy {
    /// Binds `addr` and loads (or creates) the CA of `data_dir`.
    pub async fn bind(addr: &str, data_dir: &Path) -> anyhow::Result<Proxy> {
        let authority = Authority::open(data_dir)?;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen as a proxy on {addr}: {e}"))?;
        Ok(Proxy {
            listener,
            authority,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves proxy connections with `api` until `shutdown` fires.
    pub async fn run(self, api: Router, shutdown: CancellationToken) {
        let shared = Arc::new(Shared {
            authority: self.authority,
            api: api.layer(axum::Extension(ViaProxy)),
        });
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = shutdown.cancelled() => return,
            };
            let (stream, peer) = match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "proxy accept failed");
                    continue;
                }
            };
            let shared = shared.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(handle(req, peer, shared).await) }
                });
                if let Err(e) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .with_upgrades()
                    .await
                {
                    tracing::debug!(%peer, error = %e, "proxy connection ended");
                }
            });
        }
    }
}

async fn handle(req: Request<Incoming>, peer: SocketAddr, shared: Arc<Shared>) -> Response<Body> {
    if req.method() == Method::CONNECT {
        let target = req.uri().authority().cloned();
        let host = match &target {
            Some(a) if a.port_u16() == Some(443) => names::served(a.host()),
            _ => None,
        };
        let Some(host) = host else {
            let shown = target.map(|a| a.to_string()).unwrap_or_default();
            tracing::info!(target = %shown, "proxy refused a CONNECT");
            return refuse(&format!(
                "This proxy only serves the Twilio BulkExport and Voice API hosts on port 443; it refuses {shown}."
            ));
        };
        tokio::spawn(async move {
            match hyper::upgrade::on(req).await {
                Ok(upgraded) => {
                    if let Err(e) = tunnel(TokioIo::new(upgraded), &host, peer, &shared).await {
                        tracing::debug!(%host, error = %e, "proxy tunnel ended");
                    }
                }
                Err(e) => tracing::debug!(%host, error = %e, "proxy upgrade failed"),
            }
        });
        return Response::new(Body::empty());
    }
    // A plain-HTTP proxy request names its target in absolute form.
    let served = match (req.uri().scheme_str(), req.uri().host()) {
        (Some("http"), Some(host)) => names::served(host),
        _ => None,
    };
    if served.is_none() {
        return refuse(&format!(
            "This proxy only serves the Twilio BulkExport and Voice API hosts; it refuses {}.",
            req.uri()
        ));
    }
    let mut req = req.map(Body::new);
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    match shared.api.clone().oneshot(req).await {
        Ok(response) => response,
        Err(never) => match never {},
    }
}

/// TLS with a certificate for `host`, then HTTP/1.1 into the API.
async fn tunnel(
    io: TokioIo<hyper::upgrade::Upgraded>,
    host: &str,
    peer: SocketAddr,
    shared: &Shared,
) -> anyhow::Result<()> {
    let config = shared.authority.server_config(host)?;
    let tls = tokio_rustls::TlsAcceptor::from(config).accept(io).await?;
    let api = shared.api.clone().map_request(move |mut req: Request<_>| {
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    });
    http1::Builder::new()
        .serve_connection(TokioIo::new(tls), TowerToHyperService::new(api))
        .await?;
    Ok(())
}

fn refuse(message: &str) -> Response<Body> {
    let body = serde_json::json!({
        "code": 20403,
        "message": message,
        "more_info": "https://www.twilio.com/docs/errors/20403",
        "status": 403,
    });
    let mut response = Response::new(Body::from(body.to_string()));
    *response.status_mut() = StatusCode::FORBIDDEN;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
