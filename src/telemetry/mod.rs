//! What the service tells its operators: metrics ([`Metrics`]), the log
//! format ([`logging`]), and the id of the request being served, which log
//! lines, error bodies and stored notifications carry.

pub mod logging;
mod metrics;

use std::future::Future;

use rand::Rng;

pub use metrics::{BuildInfo, ExportOutcome, Metrics, StateGauges, DURATION_BUCKETS};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// A new request id in Twilio's shape: `RQ` and 32 lowercase hex digits.
pub fn new_request_id() -> String {
    format!("RQ{}", hex::encode(rand::thread_rng().gen::<[u8; 16]>()))
}

/// Runs `f` as the serving of request `id`: [`request_id`] answers it inside.
pub async fn serving<F: Future>(id: String, f: F) -> F::Output {
    REQUEST_ID.scope(id, f).await
}

/// The id of the request this task is serving, if it serves one.
pub fn request_id() -> Option<String> {
    REQUEST_ID.try_with(|id| id.clone()).ok()
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
        let seen = serving("RQ1".into(), async { request_id() }).await;
        assert_eq!(seen.as_deref(), Some("RQ1"));
    }
}
