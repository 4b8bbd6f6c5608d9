//! The service's metrics, in Prometheus's text format.
//!
//! Each service value holds its own recorder (`metrics-exporter-prometheus`,
//! without its HTTP listener): the API serves it on `/metrics`, and tests
//! that run several services in one process read each apart. Names follow
//! Prometheus's conventions: base units, `_total` counters, and no label
//! that grows with the data (never an account, job or day). Gauges of the
//! queue and the notifications are read from the database at each scrape,
//! so every node answers the same.

use std::sync::Arc;
use std::time::Duration;

use metrics::{with_local_recorder, Label};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};

use crate::domain::ResourceType;

/// Bucket bounds of the duration histograms, in seconds: 5 ms to 10 s.
pub const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How a job day's export ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportOutcome {
    Completed,
    Empty,
    Error,
    LostLease,
    Cancelled,
}

impl ExportOutcome {
    pub const ALL: [ExportOutcome; 5] = [
        ExportOutcome::Completed,
        ExportOutcome::Empty,
        ExportOutcome::Error,
        ExportOutcome::LostLease,
        ExportOutcome::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExportOutcome::Completed => "completed",
            ExportOutcome::Empty => "empty",
            ExportOutcome::Error => "error",
            ExportOutcome::LostLease => "lost_lease",
            ExportOutcome::Cancelled => "cancelled",
        }
    }
}

/// What the database holds now, read at each scrape.
#[derive(Debug, Clone, Default)]
pub struct StateGauges {
    /// Job days per status (every status, zero included).
    pub job_days: Vec<(&'static str, i64)>,
    /// Age of the oldest Submitted job day, in seconds (0 when none).
    pub queue_oldest_age_seconds: f64,
    /// Notifications per channel and status (every pair, zero included).
    pub notifications: Vec<(&'static str, &'static str, i64)>,
}

/// The labels of `bulkexport_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    pub database: &'static str,
    pub storage: &'static str,
}

/// The recorder of one service and the events it counts.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<PrometheusRecorder>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(build: &BuildInfo) -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets(DURATION_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let m = Metrics {
            recorder: Arc::new(recorder),
        };
        m.with(|| {
            metrics::describe_counter!(
                "bulkexport_http_requests_total",
                "HTTP requests answered, by method, route template and status"
            );
            metrics::describe_histogram!(
                "bulkexport_http_request_duration_seconds",
                metrics::Unit::Seconds,
                "Time to answer an HTTP request (to its response head)"
            );
            metrics::describe_gauge!("bulkexport_job_days", "Job days in each status now");
            metrics::describe_gauge!(
                "bulkexport_queue_oldest_age_seconds",
                metrics::Unit::Seconds,
                "Age of the oldest Submitted job day (0 when none)"
            );
            metrics::describe_counter!(
                "bulkexport_day_exports_total",
                "Job day exports ended, by resource type and outcome"
            );
            metrics::describe_histogram!(
                "bulkexport_day_export_duration_seconds",
                metrics::Unit::Seconds,
                "Time to export one job day"
            );
            metrics::describe_counter!(
                "bulkexport_day_export_records_total",
                "Records written into day files"
            );
            metrics::describe_counter!(
                "bulkexport_day_export_bytes_total",
                metrics::Unit::Bytes,
                "Compressed bytes of day files written"
            );
            metrics::describe_counter!(
                "bulkexport_notification_attempts_total",
                "Webhook and email delivery attempts, by channel and outcome"
            );
            metrics::describe_gauge!(
                "bulkexport_notifications",
                "Notifications per channel and status now"
            );
            metrics::describe_counter!(
                "bulkexport_ingest_records_total",
                "Ingested record lines, by resource type and outcome"
            );
            metrics::describe_counter!(
                "bulkexport_downloads_total",
                "Day file downloads answered, by status"
            );
            metrics::describe_counter!(
                "bulkexport_download_bytes_total",
                metrics::Unit::Bytes,
                "Bytes of day files sent"
            );
            metrics::describe_counter!(
                "bulkexport_auth_failures_total",
                "Requests whose credentials were refused"
            );
            metrics::describe_counter!(
                "bulkexport_quota_rejections_total",
                "Job creations refused by the daily quota"
            );
            metrics::describe_gauge!(
                "bulkexport_build_info",
                "The running version and what it stores into (always 1)"
            );
            metrics::gauge!("bulkexport_build_info",
                "version" => env!("CARGO_PKG_VERSION"),
                "database" => build.database,
                "storage" => build.storage)
            .set(1.0);
            // Series that exist from the start, so that rates over them
            // begin at zero rather than at their first event.
            for rt in ResourceType::ALL {
                for outcome in ExportOutcome::ALL {
                    metrics::counter!("bulkexport_day_exports_total",
                        "resource_type" => rt.as_str(), "outcome" => outcome.as_str())
                    .absolute(0);
                }
            }
            metrics::counter!("bulkexport_auth_failures_total").absolute(0);
            metrics::counter!("bulkexport_quota_rejections_total").absolute(0);
            metrics::counter!("bulkexport_download_bytes_total").absolute(0);
        });
        m
    }

    fn with<T>(&self, f: impl FnOnce() -> T) -> T {
        with_local_recorder(self.recorder.as_ref(), f)
    }

    /// One HTTP request answered.
    pub fn http_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let labels = [
            Label::new("method", method.to_string()),
            Label::new("route", route.to_string()),
            Label::new("status", status.to_string()),
        ];
        self.with(|| {
            metrics::counter!("bulkexport_http_requests_total", labels.iter()).increment(1);
            metrics::histogram!(
                "bulkexport_http_request_duration_seconds",
                labels[..2].iter()
            )
            .record(took.as_secs_f64());
        });
    }

    /// One job day's export ended.
    pub fn day_export(
        &self,
        rt: ResourceType,
        outcome: ExportOutcome,
        took: Duration,
        records: u64,
        bytes: u64,
    ) {
        self.with(|| {
            let rt = rt.as_str();
            metrics::counter!("bulkexport_day_exports_total",
                "resource_type" => rt, "outcome" => outcome.as_str())
            .increment(1);
            metrics::histogram!("bulkexport_day_export_duration_seconds", "resource_type" => rt)
                .record(took.as_secs_f64());
            metrics::counter!("bulkexport_day_export_records_total", "resource_type" => rt)
                .increment(records);
            metrics::counter!("bulkexport_day_export_bytes_total", "resource_type" => rt)
                .increment(bytes);
        });
    }

    /// One delivery attempt of a webhook or an email.
    pub fn notification_attempt(&self, channel: &'static str, outcome: &'static str) {
        self.with(|| {
            metrics::counter!("bulkexport_notification_attempts_total",
                "channel" => channel, "outcome" => outcome)
            .increment(1);
        });
    }

    /// Lines of one ingest: loaded, replaced, rejected.
    pub fn ingest(&self, rt: ResourceType, loaded: u64, replaced: u64, rejected: u64) {
        self.with(|| {
            let rt = rt.as_str();
            for (outcome, n) in [
                ("loaded", loaded),
                ("replaced", replaced),
                ("rejected", rejected),
            ] {
                metrics::counter!("bulkexport_ingest_records_total",
                    "resource_type" => rt, "outcome" => outcome)
                .increment(n);
            }
        });
    }

    /// A download answered with `status`, sending `bytes` of a day file.
    pub fn download(&self, status: u16, bytes: u64) {
        self.with(|| {
            metrics::counter!("bulkexport_downloads_total", "status" => status.to_string())
                .increment(1);
            metrics::counter!("bulkexport_download_bytes_total").increment(bytes);
        });
    }

    pub fn auth_failure(&self) {
        self.with(|| metrics::counter!("bulkexport_auth_failures_total").increment(1));
    }

    pub fn quota_rejection(&self) {
        self.with(|| metrics::counter!("bulkexport_quota_rejections_total").increment(1));
    }

    /// The exposition: the counters and histograms so far, with the
    /// database's gauges as `state` says.
    pub fn render(&self, state: &StateGauges) -> String {
        self.with(|| {
            for &(status, n) in &state.job_days {
                metrics::gauge!("bulkexport_job_days", "status" => status).set(n as f64);
            }
            metrics::gauge!("bulkexport_queue_oldest_age_seconds")
                .set(state.queue_oldest_age_seconds);
            for &(channel, status, n) in &state.notifications {
                metrics::gauge!("bulkexport_notifications", "channel" => channel, "status" => status)
                    .set(n as f64);
            }
        });
        self.recorder.handle().render()
    }
}
