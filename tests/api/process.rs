//! The real binary as operators run it: with its log pipe closed, with
//! secrets in its settings, and fed hostile ingest bodies.

use std::io::{BufRead, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::ADMIN;

/// `bulkexport serve` on a free port, with its stderr piped; returns once it
/// listens, with the lines it wrote until then.
pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    stderr: Option<std::io::BufReader<std::process::ChildStderr>>,
    _dir: tempfile::TempDir,
}

impl Server {
    pub(crate) fn start(env: &[(&str, &str)]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_bulkexport"))
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .args(["serve", "--clock", "2024-06-10T12:00:00Z"])
            .env("BULKEXPORT_ADMIN_TOKEN", ADMIN)
            .env_remove("BULKEXPORT_DATABASE_URL")
            .env_remove("BULKEXPORT_STORAGE_URL")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                stderr.read_line(&mut line).unwrap() > 0,
                "the server exited before listening"
            );
            if line.contains("bulkexport listening") {
                break;
            }
        }
        Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            stderr: Some(stderr),
            _dir: dir,
        }
    }

    /// Everything the server writes to stderr from now on, once it exits.
    pub(crate) fn rest_of_stderr(&mut self) -> std::thread::JoinHandle<String> {
        let mut stderr = self.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut all = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut all);
            all
        })
    }

    pub(crate) async fn admin(&self, path: &str, form: &[(&str, &str)]) -> serde_json::Value {
        let r = reqwest::Client::new()
            .post(format!("{}{path}", self.base))
            .bearer_auth(ADMIN)
            .form(form)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
        r.json().await.unwrap()
    }

    /// SIGTERM, then the exit status (within 30 s, else SIGKILL and fail).
    pub(crate) async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let waited = tokio::task::spawn_blocking(move || self.child.wait().unwrap());
        match tokio::time::timeout(Duration::from_secs(30), waited).await {
            Ok(status) => status.unwrap(),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("the server did not stop on SIGTERM");
            }
        }
    }
}

/// A webhook listener: answers 200 to one request and hands back its head.
async fn one_webhook() -> (String, tokio::task::JoinHandle<String>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 16 * 1024];
        let mut n = 0;
        while !String::from_utf8_lossy(&buf[..n]).contains("JobSid=") {
            let read = conn.read(&mut buf[n..]).await.unwrap();
            assert!(read > 0);
            n += read;
        }
        conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).to_string()
    });
    (url, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_log_pipe_stops_neither_deliveries_nor_shutdown() {
    let mut server = Server::start(&[("RUST_LOG", "debug")]);
    // The log's reader goes away, as a dead `tee` or log shipper does.
    drop(server.stderr.take());
    let account = server
        .admin("/admin/v1/Accounts", &[("FriendlyName", "pipe")])
        .await;
    let (sid, token) = (
        account["sid"].as_str().unwrap(),
        account["auth_token"].as_str().unwrap(),
    );
    let (hook, received) = one_webhook().await;
    let r = reqwest::Client::new()
        .post(format!("{}/v1/Exports/Messages/Jobs", server.base))
        .basic_auth(sid, Some(token))
        .form(&[
            ("StartDay", "2024-06-01"),
            ("EndDay", "2024-06-02"),
            ("FriendlyName", "p"),
            ("WebhookUrl", &hook),
            ("WebhookMethod", "POST"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    server.admin("/admin/v1/Queue/Drain", &[]).await;
    let request = tokio::time::timeout(Duration::from_secs(30), received)
        .await
        .unwrap()
        .unwrap();
    assert!(request.contains("X-Twilio-Signature"), "{request}");
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_credentials_never_reach_the_log() {
    let mut server = Server::start(&[("BULKEXPORT_DELIVERY_RETRY_SECS", "1")]);
    let account = server
        .admin("/admin/v1/Accounts", &[("FriendlyName", "hook")])
        .await;
    let (sid, token) = (
        account["sid"].as_str().unwrap(),
        account["auth_token"].as_str().unwrap(),
    );
    // Nothing listens on port 9: every attempt fails and is logged.
    let r = reqwest::Client::new()
        .post(format!("{}/v1/Exports/Messages/Jobs", server.base))
        .basic_auth(sid, Some(token))
        .form(&[
            ("StartDay", "2024-06-01"),
            ("EndDay", "2024-06-01"),
            ("FriendlyName", "h"),
            (
                "WebhookUrl",
                "http://hookuser:HOOKPASSWORD@127.0.0.1:9/hook",
            ),
            ("WebhookMethod", "POST"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    server.admin("/admin/v1/Queue/Drain", &[]).await;
    let log = server.rest_of_stderr();
    assert!(server.terminate().await.success());
    let log = log.join().unwrap();
    assert!(
        log.contains("notification attempt did not succeed"),
        "{log}"
    );
    assert!(
        !log.contains("HOOKPASSWORD") && !log.contains("hookuser"),
        "{log}"
    );
}

#[test]
fn migrate_prints_the_database_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let url = match std::env::var("BULKEXPORT_TEST_POSTGRES_URL") {
        // Trust authentication ignores the password, so it can be anything.
        Ok(admin) => admin.replacen("://bulkexport@", "://bulkexport:PASSWORD@", 1),
        Err(_) => format!("sqlite://{}/b.db", dir.path().display()),
    };
    let out = Command::new(env!("CARGO_BIN_EXE_bulkexport"))
        .args([
            "--database-url",
            &url,
            "--data-dir",
            dir.path().to_str().unwrap(),
            "migrate",
        ])
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{printed}");
    assert!(printed.contains("database is up to date"), "{printed}");
    assert!(!printed.contains("PASSWORD"), "{printed}");
}

fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_bomb_line_is_refused_in_bounded_memory_while_the_api_answers() {
    let server = Server::start(&[("BULKEXPORT_WORKERS", "0")]);
    let account = server
        .admin("/admin/v1/Accounts", &[("FriendlyName", "bomb")])
        .await;
    let sid = account["sid"].as_str().unwrap().to_string();
    // 4 MiB of gzip that expands to one line of 768 MiB, then a good line.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b"{\"sid\":\"").unwrap();
    let block = vec![b'x'; 1 << 20];
    for _ in 0..768 {
        gz.write_all(&block).unwrap();
    }
    gz.write_all(b"\"}\n").unwrap();
    let good = format!(
        r#"{{"sid":"SM{:032x}","account_sid":"{sid}","date_created":"2024-06-01T00:00:00Z","body":"hi","status":"delivered","direction":"inbound","num_segments":"1","num_media":"0"}}"#,
        1
    );
    gz.write_all(good.as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    let url = format!("{}/admin/v1/Accounts/{sid}/Records/Messages", server.base);
    let upload = tokio::spawn(async move {
        let r = reqwest::Client::new()
            .post(url)
            .bearer_auth(ADMIN)
            .body(body)
            .send()
            .await
            .unwrap();
        (
            r.status().as_u16(),
            r.json::<serde_json::Value>().await.unwrap(),
        )
    });
    // The API answers promptly while the line is read.
    let client = reqwest::Client::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let r = client
            .get(format!("{}/healthz", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let (status, report) = upload.await.unwrap();
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["loaded"], 1, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["rejections"][0]["line"], 1, "{report}");
    let reason = report["rejections"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("max_line_bytes"), "{reason}");
    let peak = peak_rss_kib(server.child.id());
    assert!(peak < 300 * 1024, "peak RSS {peak} KiB");
    assert!(server.terminate().await.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_decompressed_size_is_bounded_and_many_keys_cost_linear_time() {
    let server = Server::start(&[
        ("BULKEXPORT_MAX_INGEST_BYTES", "50000000"),
        ("BULKEXPORT_MAX_LINE_BYTES", "4194304"),
    ]);
    let account = server
        .admin("/admin/v1/Accounts", &[("FriendlyName", "keys")])
        .await;
    let sid = account["sid"].as_str().unwrap().to_string();
    let url = format!("{}/admin/v1/Accounts/{sid}/Records/Messages", server.base);
    // 60 MB of lines in well under a megabyte of gzip: over the limit once decompressed.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for _ in 0..60 {
        gz.write_all(&[b'\n'; 1 << 20]).unwrap();
    }
    let body = gz.finish().unwrap();
    assert!(body.len() < 1 << 20);
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(ADMIN)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // A line of 160,000 distinct keys (about 2 MB) is refused in moments.
    let mut line = String::from("{");
    for n in 0..160_000 {
        line.push_str(&format!("\"k{n}\":0,"));
    }
    line.push_str("\"sid\":\"x\"}\n");
    let started = std::time::Instant::now();
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(ADMIN)
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let report: serde_json::Value = r.json().await.unwrap();
    assert_eq!(report["rejected"], 1, "{report}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(server.terminate().await.success());
}
