//! Settings: one typed tree, from defaults, then an optional TOML file, then
//! `BULKEXPORT_*` environment variables, then command-line flags.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// A value that must never be printed (tokens, passwords).
#[derive(Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Where the SQLite database and local day files live by default.
    pub data_dir: PathBuf,
    /// `sqlite://PATH`; default `sqlite://<data_dir>/bulkexport.db`.
    pub database_url: Option<String>,
    /// `file://DIR`; default `file://<data_dir>/files`.
    pub storage_url: Option<String>,
    /// Base of every absolute URL the service writes; default: from the request's Host.
    pub public_url: Option<String>,
    /// Bearer token of the admin API (`/admin/v1/...`); the admin API is off without it.
    pub admin_token: Option<Secret>,
    /// Export workers in this process; unset means one per core, 0 none (an API-only node).
    pub workers: Option<usize>,
    /// Attempts per job day before it is Failed.
    pub max_attempts: u32,
    /// First retry delay in seconds; it doubles on every further attempt.
    pub retry_base_secs: u64,
    /// A claimed day whose heartbeat is older than this is taken over.
    pub lease_secs: u64,
    /// How often idle workers look for work submitted by other processes.
    pub poll_ms: u64,
    /// How long a FetchDay download link stays valid.
    pub download_ttl_secs: u64,
    /// With S3 storage, FetchDay links to a pre-signed URL of the bucket itself
    /// (downloads bypass the service); false serves them through the service.
    pub presigned_downloads: bool,
    /// Timeout of one webhook request.
    pub webhook_timeout_secs: u64,
    /// How long a notification is retried before it is given up.
    pub delivery_retry_secs: u64,
    /// First retry delay of a notification; doubles each attempt, at most an hour.
    pub delivery_backoff_secs: u64,
    /// Refuse webhook URLs that resolve to loopback, private or link-local
    /// addresses. Off for local development; turn it on in production.
    pub refuse_private_webhooks: bool,
    /// Days that custom jobs of one account family (a parent and its
    /// subaccounts) may request per UTC day; 0 for no limit.
    pub requested_days_per_day: u32,
    /// Days (and their files) are removed this long after they were created.
    pub day_retention_secs: u64,
    /// Finished and deleted jobs are removed this long after they finished.
    pub job_retention_secs: u64,
    /// How long after a UTC day ends its automatic export starts.
    pub daily_settle_secs: u64,
    /// SMTP server for emails, as lettre reads it (`smtp://host:port`,
    /// `smtp://user:pass@host?tls=required`, `smtps://…`); unset: emails are logged.
    pub smtp_url: Option<Secret>,
    /// Sender of every email.
    pub email_from: String,
    /// How often the batch that applies deleted call records runs (service clock).
    pub deletion_batch_secs: u64,
    /// Largest accepted API request body.
    pub max_body_bytes: usize,
    /// Largest accepted body of the admin ingest endpoint.
    pub max_ingest_bytes: u64,
}

/// The settings read from `BULKEXPORT_*` variables; other variables with that
/// prefix (a test harness's, say) are not settings and are left alone.
const KEYS: [&str; 26] = [
    "listen",
    "data_dir",
    "database_url",
    "storage_url",
    "public_url",
    "admin_token",
    "workers",
    "max_attempts",
    "retry_base_secs",
    "lease_secs",
    "poll_ms",
    "download_ttl_secs",
    "presigned_downloads",
    "webhook_timeout_secs",
    "delivery_retry_secs",
    "delivery_backoff_secs",
    "refuse_private_webhooks",
    "requested_days_per_day",
    "day_retention_secs",
    "job_retention_secs",
    "daily_settle_secs",
    "smtp_url",
    "email_from",
    "deletion_batch_secs",
    "max_body_bytes",
    "max_ingest_bytes",
];

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("./data"),
            database_url: None,
            storage_url: None,
            public_url: None,
            admin_token: None,
            workers: None,
            max_attempts: 3,
            retry_base_secs: 30,
            lease_secs: 60,
            poll_ms: 1000,
            download_ttl_secs: 900,
            presigned_downloads: true,
            webhook_timeout_secs: 10,
            delivery_retry_secs: 24 * 3600,
            delivery_backoff_secs: 10,
            refuse_private_webhooks: false,
            requested_days_per_day: 366,
            day_retention_secs: 7 * 86_400,
            job_retention_secs: 7 * 86_400,
            daily_settle_secs: 3600,
            smtp_url: None,
            email_from: "BulkExport <bulkexport@localhost>".into(),
            deletion_batch_secs: 3600,
            max_body_bytes: 64 * 1024,
            max_ingest_bytes: 16 * 1024 * 1024 * 1024,
        }
    }
}

/// Settings given as command-line flags; only those set override the rest.
#[derive(Debug, Clone, Default, Serialize, clap::Args)]
pub struct SettingFlags {
    /// A TOML settings file.
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, global = true, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Data directory (default ./data).
    #[arg(long, global = true, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// Base URL written into absolute URLs (default: from the request's Host).
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Database URL (default sqlite://<data-dir>/bulkexport.db).
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// Day-file storage URL (default file://<data-dir>/files).
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// Bearer token for the admin API.
    #[arg(long, global = true, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<String>,
    /// Export workers in this process (default one per core; 0: none).
    #[arg(long, global = true, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
}

impl Settings {
    pub fn load(flags: &SettingFlags) -> anyhow::Result<Settings> {
        let mut fig = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = &flags.config {
            anyhow::ensure!(
                file.exists(),
                "settings file {} does not exist",
                file.display()
            );
            fig = fig.merge(Toml::file(file));
        }
        let settings: Settings = fig
            .merge(Env::prefixed("BULKEXPORT_").only(&KEYS))
            .merge(Serialized::defaults(flags))
            .extract()?;
        anyhow::ensure!(
            settings.max_attempts >= 1,
            "max_attempts must be at least 1"
        );
        anyhow::ensure!(settings.lease_secs >= 3, "lease_secs must be at least 3");
        Ok(settings)
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| {
            format!("sqlite://{}", self.data_dir.join("bulkexport.db").display())
        })
    }

    pub fn storage_url(&self) -> String {
        self.storage_url.clone().unwrap_or_else(|| {
            format!(
                "file://{}",
                absolute(&self.data_dir.join("files")).display()
            )
        })
    }

    pub fn worker_count(&self) -> usize {
        self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        })
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_is_read_from_the_environment() {
        let names: Vec<String> = match serde_json::to_value(Settings::default()) {
            Ok(serde_json::Value::Object(m)) => m.keys().cloned().collect(),
            other => panic!("settings serialise to an object: {other:?}"),
        };
        let mut keys: Vec<&str> = KEYS.to_vec();
        keys.sort_unstable();
        let mut names: Vec<&str> = names.iter().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(keys, names);
    }

    #[test]
    fn layers_apply_in_order() {
        #[expect(
            clippy::result_large_err,
            reason = "figment::Jail fixes the closure's error type"
        )]
        fn check(jail: &mut figment::Jail) -> figment::error::Result<()> {
            jail.create_file(
                "s.toml",
                "listen = \"127.0.0.1:9000\"\nworkers = 3\npoll_ms = 5",
            )?;
            jail.set_env("BULKEXPORT_WORKERS", "4");
            jail.set_env("BULKEXPORT_UNRELATED", "x");
            let flags = SettingFlags {
                config: Some("s.toml".into()),
                workers: Some(5),
                ..Default::default()
            };
            let s = Settings::load(&flags).map_err(|e| e.to_string())?;
            assert_eq!(s.listen, "127.0.0.1:9000");
            assert_eq!(s.workers, Some(5));
            assert_eq!(s.poll_ms, 5);
            let s = Settings::load(&SettingFlags {
                config: Some("s.toml".into()),
                ..Default::default()
            })
            .map_err(|e| e.to_string())?;
            assert_eq!(s.workers, Some(4));
            jail.create_file("bad.toml", "lisen = \"x\"")?;
            assert!(Settings::load(&SettingFlags {
                config: Some("bad.toml".into()),
                ..Default::default()
            })
            .is_err());
            Ok(())
        }
        figment::Jail::expect_with(check);
    }
}
