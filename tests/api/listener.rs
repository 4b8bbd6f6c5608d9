//! A real HTTP listener on loopback that records the webhooks it receives and
//! answers with the statuses it is told to.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::Router;

#[derive(Debug, Clone)]
pub struct Received {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// Form parameters of a POST, or query parameters of a GET.
    pub fn params(&self) -> Vec<(String, String)> {
        let raw = if self.method == Method::GET {
            self.uri.query().unwrap_or_default().as_bytes().to_vec()
        } else {
            self.body.to_vec()
        };
        serde_urlencoded::from_bytes(&raw).unwrap_or_default()
    }

    pub fn param(&self, name: &str) -> Option<String> {
        self.params()
            .into_iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v)
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    replies: VecDeque<StatusCode>,
}

#[derive(Clone)]
pub struct Listener {
    pub base: String,
    inner: Arc<Mutex<Inner>>,
}

impl Listener {
    pub async fn start() -> Listener {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(record).with_state(inner.clone());
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", tcp.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(tcp, app).await.unwrap() });
        Listener { base, inner }
    }

    /// The next requests are answered with these statuses, then 200.
    pub fn reply_with(&self, statuses: &[u16]) {
        let mut inner = self.inner.lock().unwrap();
        inner
            .replies
            .extend(statuses.iter().map(|s| StatusCode::from_u16(*s).unwrap()));
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }
}

async fn record(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut inner = inner.lock().unwrap();
    inner.received.push(Received {
        method,
        uri,
        headers,
        body,
    });
    inner.replies.pop_front().unwrap_or(StatusCode::OK)
}
