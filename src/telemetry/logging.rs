//! Log lines on stderr: text for people (colours only on a terminal) or one
//! JSON object per line for log collectors, filtered by `RUST_LOG`.

use std::io::IsTerminal;

use serde::{Deserialize, Serialize};
use tracing_subscriber::EnvFilter;

/// The shape of log lines (`log_format`, `BULKEXPORT_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `timestamp level span{fields}: target: message fields`.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `fields.message`,
    /// `target`, the current `span` and its parents in `spans`.
    Json,
}

/// The filter when `RUST_LOG` is unset: the service at INFO, sqlx quiet.
const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// Installs the process's log subscriber. A second call (tests) does nothing.
pub fn init(format: LogFormat) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // A log line that cannot be written (a closed pipe) is dropped: the
        // fallback of reporting it on stderr would panic the logging task.
        .log_internal_errors(false);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .try_init(),
    };
}
