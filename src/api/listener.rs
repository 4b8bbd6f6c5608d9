//! The HTTP/1.1 listener of the API: each connection is served by hyper
//! with the client's address attached (`ConnectInfo`), and closed when its
//! client is too slow to send a request's headers (`header_read_timeout`,
//! from the request's first byte) or leaves it idle between requests
//! (`keepalive_timeout`). On shutdown it stops accepting, lets requests in
//! flight finish, and closes idle connections.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use http::{Request, Response};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

/// How long a client may take over a request's headers, and may keep a
/// connection idle.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub keepalive_timeout: Duration,
}

/// Serves `app` on `listener` until `shutdown` fires.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let tracker = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    continue;
                }
            },
            _ = shutdown.cancelled() => break,
        };
        let (app, shutdown) = (app.clone(), shutdown.clone());
        tracker.spawn(serve_connection(stream, peer, app, limits, shutdown));
    }
    tracker.close();
    tracker.wait().await;
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: ConnectionLimits,
    shutdown: CancellationToken,
) {
    let activity = Arc::new(Activity::new());
    let io = Watched {
        inner: stream,
        activity: activity.clone(),
    };
    let on_request = activity.clone();
    let service = app.map_request(move |mut req: Request<_>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        on_request.request_started();
        req
    });
    let on_response = activity.clone();
    let service = service.map_response(move |resp: Response<Body>| {
        let guard = InFlight(on_response.clone());
        resp.map(|body| {
            Body::new(Guarded {
                body,
                _guard: guard,
            })
        })
    });
    let conn =
        http1::Builder::new().serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = activity.changed.notified() => {}
            _ = tokio::time::sleep(activity.time_left(limits)) => {
                if activity.expired(limits) {
                    tracing::debug!(%peer, "closed a connection that was idle or slow to send its headers");
                    return;
                }
            }
        }
    }
}

/// What the watchdog of one connection reads: requests in flight, when the
/// connection last became idle, and when the next request's first byte came.
struct Activity {
    origin: Instant,
    in_flight: AtomicUsize,
    idle_since_ms: AtomicU64,
    /// 0: no byte of a next request yet; else its time + 1.
    head_started_ms: AtomicU64,
    /// Wakes the watchdog when its deadline may have moved.
    changed: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            origin: Instant::now(),
            in_flight: AtomicUsize::new(0),
            idle_since_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(0),
            changed: tokio::sync::Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.head_started_ms.store(0, Ordering::SeqCst);
    }

    fn request_finished(&self) {
        self.idle_since_ms.store(self.now_ms(), Ordering::SeqCst);
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.changed.notify_one();
    }

    fn bytes_read(&self) {
        if self.in_flight.load(Ordering::SeqCst) == 0 {
            let now = self.now_ms() + 1;
            let first =
                self.head_started_ms
                    .compare_exchange(0, now, Ordering::SeqCst, Ordering::SeqCst);
            if first.is_ok() {
                self.changed.notify_one();
            }
        }
    }

    /// The deadline that applies now, in ms since `origin`, if any.
    fn deadline_ms(&self, limits: ConnectionLimits) -> Option<u64> {
        if self.in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Some(match self.head_started_ms.load(Ordering::SeqCst) {
            0 => self
                .idle_since_ms
                .load(Ordering::SeqCst)
                .saturating_add(ms(limits.keepalive_timeout)),
            started => (started - 1).saturating_add(ms(limits.header_read_timeout)),
        })
    }

    fn expired(&self, limits: ConnectionLimits) -> bool {
        self.deadline_ms(limits)
            .is_some_and(|deadline| self.now_ms() >= deadline)
    }

    fn time_left(&self, limits: ConnectionLimits) -> Duration {
        match self.deadline_ms(limits) {
            Some(deadline) => Duration::from_millis(deadline.saturating_sub(self.now_ms()).max(10)),
            // A request in flight: look again later.
            None => limits.header_read_timeout.min(limits.keepalive_timeout),
        }
    }
}

/// Marks a request finished when its response body is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

/// A response body that holds its request's [`InFlight`] until it is done.
struct Guarded {
    body: Body,
    _guard: InFlight,
}

impl http_body::Body for Guarded {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A connection whose reads are reported to its [`Activity`].
struct Watched {
    inner: tokio::net::TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
