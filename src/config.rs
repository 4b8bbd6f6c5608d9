//! Settings: one typed tree, from defaults, then an optional TOML file, then
//! `BULKEXPORT_*` environment variables, then command-line flags.

use std::fmt;
use std::path::{Path, PathBuf};

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// A value that must never be printed (tokens, passwords, URLs that may
/// carry a password). Debug and Display redact it; `expose` is the one way
/// to the value.
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

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret::new(s))
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `url` without its userinfo (`user:password@`), for logs and messages;
/// text that does not parse as a URL is shown as `***`.
pub fn url_without_userinfo(url: &str) -> String {
    let Ok(mut u) = url::Url::parse(url) else {
        return "***".into();
    };
    if u.username().is_empty() && u.password().is_none() {
        return u.to_string();
    }
    if u.set_username("").is_err() || u.set_password(None).is_err() {
        return "***".into();
    }
    u.to_string()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP API listens on.
    pub listen: String,
    /// Also listen here as the HTTPS proxy of the proxy mode (`serve` only).
    pub proxy_listen: Option<String>,
    /// Where the SQLite database and local day files live by default.
    pub data_dir: PathBuf,
    /// `sqlite://PATH` or `postgres://…`; default `sqlite://<data_dir>/bulkexport.db`.
    pub database_url: Option<Secret>,
    /// How long a request waits for a database connection before it is
    /// answered 503 (also the connect timeout).
    pub database_timeout_secs: u64,
    /// `file://DIR`; default `file://<data_dir>/files`.
    pub storage_url: Option<String>,
    /// Base of every absolute URL the service writes; default: from the request's Host.
    pub public_url: Option<String>,
    /// Bearer token of the admin API (`/admin/v1/...`); the admin API is off without it.
    pub admin_token: Option<Secret>,
    /// Export workers in this process; unset means one per core, 0 none (an API-only node).
    pub workers: Option<usize>,
    /// Attempts per job day that end in an error before it is Failed.
    pub max_attempts: u32,
    /// Takeovers of a job day whose worker lost its lease (a crash, a
    /// restart) before it is Failed; counted apart from `max_attempts`.
    pub max_takeovers: u32,
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
    /// Largest accepted body of the admin ingest endpoint, compressed and
    /// decompressed.
    pub max_ingest_bytes: u64,
    /// Longest accepted record line of an ingest; a longer line is rejected
    /// without being held in memory.
    pub max_line_bytes: usize,
    /// Failed authentications per minute for one account SID, from one client
    /// address, or for the admin token, after which attempts get 429; 0: no limit.
    pub auth_failures_per_minute: u32,
    /// Addresses (or CIDR ranges) of reverse proxies whose `X-Forwarded-For`,
    /// `X-Forwarded-Proto` and `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<String>,
    /// How long a client may take to send a request's headers.
    pub header_read_timeout_secs: u64,
    /// How long an idle keep-alive connection stays open.
    pub keepalive_timeout_secs: u64,
    /// Log lines as `text` or `json` (one object per line).
    pub log_format: crate::telemetry::logging::LogFormat,
    /// When set, `GET /metrics` asks for it as a Bearer token.
    pub metrics_token: Option<Secret>,
    /// After SIGTERM, how long the API goes on serving while `/readyz`
    /// answers 503, so that a load balancer stops sending before it closes.
    pub shutdown_grace_secs: u64,
    /// A TOML file of accounts, keys, users, records and configurations that
    /// `serve` makes sure it holds at start and after a reset.
    pub fixtures: Option<PathBuf>,
    /// API requests the admin request journal keeps (per process).
    pub journal_size: usize,
}

/// The shortest admin token accepted.
pub const MIN_ADMIN_TOKEN_CHARS: usize = 16;

/// The settings read from `BULKEXPORT_*` variables; other variables with that
/// prefix (a test harness's, say) are not settings and are left alone.
const KEYS: [&str; 39] = [
    "listen",
    "fixtures",
    "journal_size",
    "log_format",
    "metrics_token",
    "shutdown_grace_secs",
    "proxy_listen",
    "data_dir",
    "database_url",
    "database_timeout_secs",
    "max_takeovers",
    "max_line_bytes",
    "auth_failures_per_minute",
    "trusted_proxies",
    "header_read_timeout_secs",
    "keepalive_timeout_secs",
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
            proxy_listen: None,
            data_dir: PathBuf::from("./data"),
            database_url: None,
            database_timeout_secs: 5,
            storage_url: None,
            public_url: None,
            admin_token: None,
            workers: None,
            max_attempts: 3,
            max_takeovers: 10,
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
            max_line_bytes: 1024 * 1024,
            auth_failures_per_minute: 30,
            trusted_proxies: Vec::new(),
            header_read_timeout_secs: 10,
            keepalive_timeout_secs: 60,
            log_format: Default::default(),
            metrics_token: None,
            shutdown_grace_secs: 0,
            fixtures: None,
            journal_size: 10_000,
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
    pub database_url: Option<Secret>,
    /// Day-file storage URL (default file://<data-dir>/files).
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage_url: Option<String>,
    /// Bearer token for the admin API.
    #[arg(long, global = true, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin_token: Option<Secret>,
    /// Export workers in this process (default one per core; 0: none).
    #[arg(long, global = true, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Any setting, as in the TOML file (`--set max_attempts=5`,
    /// `--set 'trusted_proxies=["10.0.0.0/8"]'`); repeatable, wins over the rest.
    #[arg(long = "set", global = true, value_name = "KEY=VALUE")]
    #[serde(skip)]
    pub set: Vec<String>,
}

impl SettingFlags {
    /// The `--set` pairs as a TOML document, each value read as TOML (a bare
    /// word that is not TOML is taken as a string).
    fn set_as_toml(&self) -> anyhow::Result<String> {
        let mut doc = String::new();
        for pair in &self.set {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("--set {pair:?} is not KEY=VALUE"))?;
            let key = key.trim();
            anyhow::ensure!(
                KEYS.contains(&key),
                "--set {key}: there is no such setting (see docs/operations.md)"
            );
            let value = value.trim();
            let literal = format!("v = {value}");
            let is_toml = Figment::from(Toml::string(&literal))
                .extract::<serde_json::Value>()
                .is_ok();
            let as_toml = if is_toml {
                value.to_string()
            } else {
                serde_json::to_string(value)?
            };
            doc.push_str(&format!("{key} = {as_toml}\n"));
        }
        Ok(doc)
    }
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
        let mut settings: Settings = fig
            .merge(Env::prefixed("BULKEXPORT_").only(&KEYS))
            .merge(Serialized::defaults(flags))
            .merge(Toml::string(&flags.set_as_toml()?))
            .extract()?;
        // figment skips empty variables; an admin token set to nothing (an
        // unset `${ADMIN_TOKEN}` in a deployment) must still be noticed.
        if settings.admin_token.is_none()
            && std::env::var_os("BULKEXPORT_ADMIN_TOKEN").is_some_and(|v| v.is_empty())
        {
            settings.admin_token = Some(Secret::new(""));
        }
        anyhow::ensure!(
            settings.max_attempts >= 1,
            "max_attempts must be at least 1"
        );
        anyhow::ensure!(settings.lease_secs >= 3, "lease_secs must be at least 3");
        anyhow::ensure!(
            settings.max_line_bytes >= 1024,
            "max_line_bytes must be at least 1024"
        );
        for p in &settings.trusted_proxies {
            crate::net::IpRange::parse(p).map_err(|e| anyhow::anyhow!("trusted_proxies: {e}"))?;
        }
        Ok(settings)
    }

    /// What a process that serves or works the queue refuses to start with:
    /// an admin token that is set but too short to resist guessing (an empty
    /// `${ADMIN_TOKEN}` of an unset variable, say).
    pub fn check_for_service(&self) -> anyhow::Result<()> {
        if let Some(token) = &self.admin_token {
            anyhow::ensure!(
                token.expose().chars().count() >= MIN_ADMIN_TOKEN_CHARS,
                "admin_token (BULKEXPORT_ADMIN_TOKEN, --admin-token) is set but {}: \
                 it must be at least {MIN_ADMIN_TOKEN_CHARS} characters, or unset to turn the admin API off",
                if token.expose().is_empty() { "empty" } else { "too short" }
            );
        }
        if let Some(token) = &self.metrics_token {
            anyhow::ensure!(
                token.expose().chars().count() >= MIN_ADMIN_TOKEN_CHARS,
                "metrics_token (BULKEXPORT_METRICS_TOKEN) is set but shorter than \
                 {MIN_ADMIN_TOKEN_CHARS} characters; unset it to leave /metrics open"
            );
        }
        Ok(())
    }

    /// The database URL, a secret: it may carry a password.
    pub fn database_url(&self) -> Secret {
        self.database_url.clone().unwrap_or_else(|| {
            Secret::new(format!(
                "sqlite://{}",
                self.data_dir.join("bulkexport.db").display()
            ))
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
    fn secrets_never_print() {
        let url = Secret::new("postgres://user:PASSWORD@db.internal/bulkexport");
        assert!(!format!("{url} {url:?}").contains("PASSWORD"));
        assert_eq!(
            url_without_userinfo(url.expose()),
            "postgres://db.internal/bulkexport"
        );
        assert_eq!(
            url_without_userinfo("https://u:p@hooks.example.com/x?y=1"),
            "https://hooks.example.com/x?y=1"
        );
        assert_eq!(
            url_without_userinfo("sqlite:///tmp/b.db"),
            "sqlite:///tmp/b.db"
        );
        let settings = Settings {
            database_url: Some(url),
            smtp_url: Some(Secret::new("smtps://mail:HUNTER2@smtp.example.com")),
            admin_token: Some(Secret::new("an-admin-token-of-some-length")),
            ..Settings::default()
        };
        let shown = format!("{settings:?}");
        for secret in ["PASSWORD", "HUNTER2", "an-admin-token"] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
    }

    #[test]
    fn a_short_or_empty_admin_token_stops_a_service() {
        for token in ["", "short"] {
            let s = Settings {
                admin_token: Some(Secret::new(token)),
                ..Settings::default()
            };
            let e = s.check_for_service().unwrap_err().to_string();
            assert!(e.contains("admin_token"), "{e}");
        }
        let ok = Settings {
            admin_token: Some(Secret::new("sixteen-chars-ok")),
            ..Settings::default()
        };
        ok.check_for_service().unwrap();
        Settings::default().check_for_service().unwrap();
    }

    #[test]
    fn any_setting_can_be_given_with_set() {
        #[expect(
            clippy::result_large_err,
            reason = "figment::Jail fixes the closure's error type"
        )]
        fn check(jail: &mut figment::Jail) -> figment::error::Result<()> {
            jail.create_file(
                "s.toml",
                "proxy_listen = \"127.0.0.1:8443\"\nmax_attempts = 4",
            )?;
            let flags = SettingFlags {
                config: Some("s.toml".into()),
                set: vec![
                    "max_attempts=5".into(),
                    "email_from=ops@example.com".into(),
                    r#"trusted_proxies=["10.0.0.0/8"]"#.into(),
                ],
                ..Default::default()
            };
            let s = Settings::load(&flags).map_err(|e| e.to_string())?;
            assert_eq!(s.proxy_listen.as_deref(), Some("127.0.0.1:8443"));
            assert_eq!(s.max_attempts, 5);
            assert_eq!(s.email_from, "ops@example.com");
            assert_eq!(s.trusted_proxies, vec!["10.0.0.0/8".to_string()]);
            for bad in ["nonsense=1", "max_attempts"] {
                let flags = SettingFlags {
                    set: vec![bad.into()],
                    ..Default::default()
                };
                assert!(Settings::load(&flags).is_err(), "{bad}");
            }
            Ok(())
        }
        figment::Jail::expect_with(check);
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
