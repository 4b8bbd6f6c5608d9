//! What the service tells its operators: metrics ([`Metrics`]), the log
//! format ([`logging`]), and the id of the request being served, which log
//! lines, error bodies and stored notifications carry.

pub mod logging;
mod metrics;

use std::future::Future;
use std::sync::{Arc, Mutex};

use rand::Rng;

pub use metrics::{BuildInfo, ExportOutcome, Metrics, StateGauges, DURATION_BUCKETS};

tokio::task_local! {
    static REQUEST: Arc<Serving>;
}

/// The request a task serves: its id, and the fault rule that fired while
/// serving it, if one did.
#[derive(Debug)]
pub struct Serving {
    id: String,
    fault: Mutex<Option<String>>,
}

impl Serving {
    pub fn new(id: String) -> Arc<Serving> {
        Arc::new(Serving {
            id,
            fault: Mutex::new(None),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The fault rule that fired while serving the request.
    pub fn fault(&self) -> Option<String> {
        self.fault.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Notes that fault rule `sid` fired for the request being served, if any.
pub fn note_fault(sid: &str) {
    let _ = REQUEST.try_with(|r| {
        *r.fault.lock().unwrap_or_else(|e| e.into_inner()) = Some(sid.to_string());
    });
}

/// A new request id in Twilio's shape: `RQ` and 32 lowercase hex digits.
pub fn new_request_id() -> String {
    format!("RQ{}", hex::encode(rand::thread_rng().gen::<[u8; 16]>()))
}

/// Runs `f` as the serving of `request`: [`request_id`] answers its id inside.
pub async fn serving<F: Future>(request: Arc<Serving>, f: F) -> F::Output {
    REQUEST.scope(request, f).await
}

/// The id of the request this task is serving, if it serves one.
pub fn request_id() -> Option<String> {
    REQUEST.try_with(|r| r.id.clone()).ok()
}

/// An error and each of its causes, joined by `: ` (a cause whose text the
/// one before already shows is skipped).
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_rq_and_32_hex_digits_and_differ() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("RQ"));
        assert!(a[2..]
            .chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn the_request_id_is_known_only_while_serving() {
        assert_eq!(request_id(), None);
        let request = Serving::new("RQ1".into());
        let seen = serving(request.clone(), async {
            note_fault("FT1");
            request_id()
        })
        .await;
        assert_eq!(seen.as_deref(), Some("RQ1"));
        assert_eq!(request.fault().as_deref(), Some("FT1"));
        note_fault("FT2");
    }
}
