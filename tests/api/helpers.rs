//! `TestApp`: the real service on port 0 with a fresh data directory and a
//! clock set to a fixed date. Tests drain the workers instead of sleeping.

use std::time::Duration;

use bulkexport::app::Application;
use bulkexport::clock::Clock;
use bulkexport::config::{Secret, Settings};
use bulkexport::domain::{Day, ResourceType};
use bulkexport::exports::Exports;
use chrono::{DateTime, Utc};
use serde_json::Value;
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const ADMIN: &str = "test-admin-token";

/// The date the test clock starts at; jobs may export days up to 2024-06-08.
pub fn start_time() -> DateTime<Utc> {
    "2024-06-10T12:00:00Z".parse().expect("valid instant")
}

/// Where one test's service keeps its state: a fresh data directory, and on the
/// PostgreSQL + S3 run a fresh database and a fresh bucket prefix. Survives
/// restarts of the service within the test.
pub struct Place {
    pub dir: TempDir,
    pub database_url: Option<String>,
    storage_url: Option<String>,
}

impl Place {
    /// SQLite and files, or, when `BULKEXPORT_TEST_POSTGRES_URL` and
    /// `BULKEXPORT_TEST_S3_BUCKET` are set, a new database and S3 prefix.
    pub async fn new() -> Place {
        let dir = tempfile::tempdir().expect("tempdir");
        let name = format!("t{}", hex::encode(rand::random::<[u8; 8]>()));
        let database_url = match std::env::var("BULKEXPORT_TEST_POSTGRES_URL") {
            Ok(admin) => {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin)
                    .await
                    .expect("postgres admin connection");
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut conn)
                    .await
                    .expect("create database");
                let base = admin
                    .rsplit_once('/')
                    .map(|(b, _)| b.to_string())
                    .unwrap_or(admin);
                Some(format!("{base}/{name}"))
            }
            Err(_) => None,
        };
        let storage_url = std::env::var("BULKEXPORT_TEST_S3_BUCKET")
            .ok()
            .map(|b| format!("s3://{b}/{name}"));
        Place {
            dir,
            database_url,
            storage_url,
        }
    }

    pub fn is_s3(&self) -> bool {
        self.storage_url.is_some()
    }
}

pub struct TestApp {
    pub base: String,
    /// The proxy listener, when spawned with [`TestApp::spawn_proxied`].
    pub proxy: Option<std::net::SocketAddr>,
    pub http: reqwest::Client,
    pub exports: Exports,
    pub clock: Clock,
    pub place: Place,
    shutdown: CancellationToken,
    handle: JoinHandle<anyhow::Result<()>>,
}

pub struct Account {
    pub sid: String,
    pub token: String,
}

pub fn settings_for(place: &Place, workers: usize) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        data_dir: place.dir.path().to_path_buf(),
        database_url: place.database_url.clone().map(Secret::new),
        storage_url: place.storage_url.clone(),
        // Most tests exercise the service's own signed links; one checks pre-signed S3 links.
        presigned_downloads: false,
        admin_token: Some(Secret::new(ADMIN)),
        workers: Some(workers),
        lease_secs: 5,
        poll_ms: 50,
        retry_base_secs: 1,
        ..Settings::default()
    }
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_in(Place::new().await, 2, Clock::starting_at(start_time())).await
    }

    pub async fn spawn_in(place: Place, workers: usize, clock: Clock) -> TestApp {
        let settings = settings_for(&place, workers);
        TestApp::spawn_with(place, settings, clock).await
    }

    pub async fn spawn_with(place: Place, settings: Settings, clock: Clock) -> TestApp {
        TestApp::start(place, settings, clock, false).await
    }

    /// Also listening as the HTTPS proxy, with a CA in the test's data directory.
    pub async fn spawn_proxied() -> TestApp {
        let place = Place::new().await;
        let settings = settings_for(&place, 2);
        TestApp::start(place, settings, Clock::starting_at(start_time()), true).await
    }

    async fn start(place: Place, settings: Settings, clock: Clock, proxied: bool) -> TestApp {
        let mut app = Application::build(&settings, clock.clone())
            .await
            .expect("app builds");
        app.allow_clock_changes();
        let proxy = match proxied {
            true => Some(
                app.enable_proxy("127.0.0.1:0", &settings.data_dir)
                    .await
                    .expect("proxy binds"),
            ),
            false => None,
        };
        let base = format!("http://{}", app.local_addr().expect("bound"));
        let exports = app.exports().clone();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run_until_stopped(shutdown.clone()));
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        TestApp {
            base,
            proxy,
            http,
            exports,
            clock,
            place,
            shutdown,
            handle,
        }
    }

    /// Starts the shutdown SIGTERM starts, without waiting for its end.
    pub fn begin_shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops the service as SIGTERM would; returns where it kept its state.
    pub async fn stop(self) -> Place {
        self.shutdown.cancel();
        self.handle.await.expect("joined").expect("clean shutdown");
        self.place
    }

    pub async fn account(&self) -> Account {
        let a = self
            .exports
            .create_account("test", None)
            .await
            .expect("account");
        Account {
            sid: a.sid,
            token: a.auth_token,
        }
    }

    pub async fn seed(
        &self,
        account: &Account,
        rt: ResourceType,
        start: &str,
        end: &str,
        per_day: u32,
    ) {
        let (s, e) = (
            Day::parse(start).expect("day"),
            Day::parse(end).expect("day"),
        );
        self.exports
            .seed(&account.sid, rt, s, e, per_day, 7)
            .await
            .expect("seeded");
    }

    /// Runs the queue until nothing is left to do.
    pub async fn drain(&self) {
        assert!(
            self.exports
                .wait_idle(Duration::from_secs(60))
                .await
                .expect("db"),
            "queue did not drain"
        );
        let [counted, counters] = self.exports.db().queue_tallies().await.expect("db");
        assert_eq!(
            counted, counters,
            "unfinished jobs and open days: counted, and by the queue counters"
        );
    }

    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub async fn get(&self, a: &Account, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(self.url(path))
            .basic_auth(&a.sid, Some(&a.token))
            .send()
            .await
            .expect("sent");
        read(r).await
    }

    pub async fn post(&self, a: &Account, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .basic_auth(&a.sid, Some(&a.token))
            .form(form)
            .send()
            .await
            .expect("sent");
        read(r).await
    }

    /// Loads NDJSON records through the admin API; the ingest report.
    pub async fn ingest(
        &self,
        a: &Account,
        rt: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(&format!("/admin/v1/Accounts/{}/Records/{rt}", a.sid)))
            .bearer_auth(ADMIN)
            .body(body)
            .send()
            .await
            .expect("sent");
        read(r).await
    }

    pub async fn delete(&self, a: &Account, path: &str) -> u16 {
        let r = self
            .http
            .delete(self.url(path))
            .basic_auth(&a.sid, Some(&a.token))
            .send()
            .await
            .expect("sent");
        r.status().as_u16()
    }

    pub async fn create_job(&self, a: &Account, rt: &str, start: &str, end: &str) -> String {
        let (status, body) = self
            .post(
                a,
                &format!("/v1/Exports/{rt}/Jobs"),
                &[("StartDay", start), ("EndDay", end), ("FriendlyName", "t")],
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["job_sid"].as_str().expect("job_sid").to_string()
    }

    /// Fetches a day's download link and downloads the file.
    pub async fn download(&self, a: &Account, rt: &str, day: &str) -> Vec<u8> {
        let (status, body) = self.get(a, &format!("/v1/Exports/{rt}/Days/{day}")).await;
        assert_eq!(status, 307, "{body}");
        let link = body["redirect_to"].as_str().expect("redirect_to");
        let r = self.http.get(link).send().await.expect("download");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-type"], "application/gzip");
        assert!(r.headers().get("content-encoding").is_none());
        r.bytes().await.expect("body").to_vec()
    }
}

pub async fn read(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

pub fn gunzip(bytes: &[u8]) -> String {
    use std::io::Read;
    let mut out = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut out)
        .expect("valid gzip");
    out
}

/// Asserts a Twilio error body with this status and code.
pub fn assert_twilio_error(status: u16, body: &Value, want_status: u16, want_code: u64) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["code"], want_code, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
    assert_eq!(
        body["more_info"],
        format!("https://www.twilio.com/docs/errors/{want_code}")
    );
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}
