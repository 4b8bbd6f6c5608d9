//! The holes an outside security review found, each closed: admin token,
//! file permissions, leftovers of interrupted uploads, throttling, takeovers,
//! ranges, an unreachable database, a full disk, a closed log pipe.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use bulkexport::app::Application;
use bulkexport::clock::Clock;
use bulkexport::config::Secret;
use bulkexport::domain::ResourceType;
use tokio::io::AsyncWriteExt;

use crate::helpers::{assert_twilio_error, read, settings_for, start_time, Place, TestApp, ADMIN};

#[tokio::test]
async fn an_empty_or_short_admin_token_stops_the_service_at_start() {
    for token in ["", "0123456789abcde"] {
        let place = Place::new().await;
        let mut settings = settings_for(&place, 0);
        settings.admin_token = Some(Secret::new(token));
        let e = Application::build(&settings, Clock::starting_at(start_time()))
            .await
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("admin_token"), "{e}");
    }
    for command in ["serve", "worker"] {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_bulkexport"))
            .args([
                "--data-dir",
                dir.path().to_str().unwrap(),
                "--listen",
                "127.0.0.1:0",
                command,
            ])
            .env("BULKEXPORT_ADMIN_TOKEN", "")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{command} started");
        assert!(err.contains("admin_token"), "{command}: {err}");
    }
}

#[tokio::test]
async fn admin_answers_carry_no_cors_headers_and_are_not_served_through_the_proxy() {
    let app = TestApp::spawn_proxied().await;
    let r = app
        .http
        .post(app.url("/admin/v1/Accounts"))
        .bearer_auth(ADMIN)
        .header("Origin", "https://evil.example")
        .form(&[("FriendlyName", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/admin/v1/Accounts"))
        .header("Origin", "https://evil.example")
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // Through the proxy listener (a plain-HTTP proxy request), the admin API
    // does not exist.
    let proxy = app.proxy.unwrap();
    let via = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{proxy}")).unwrap())
        .build()
        .unwrap();
    let r = via
        .post("http://bulkexports.twilio.com/admin/v1/Accounts")
        .bearer_auth(ADMIN)
        .form(&[("FriendlyName", "x")])
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_twilio_error(status, &body, 404, 20404);
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_data_directory_is_private_whatever_the_umask() {
    let place = Place::new().await;
    let dir = place.dir.path().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(dir.join("old")).unwrap();
    std::fs::write(dir.join("old/file"), b"x").unwrap();
    std::fs::set_permissions(dir.join("old/file"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let app = TestApp::spawn_in(place, 1, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-01", 50)
        .await;
    app.create_job(&a, "Messages", "2024-06-01", "2024-06-01")
        .await;
    app.drain().await;
    let mut seen = 0;
    let mut stack = vec![dir.clone()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            assert_eq!(mode(&p), 0o700, "{}", p.display());
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        } else {
            assert_eq!(mode(&p) & 0o077, 0, "{}", p.display());
            seen += 1;
        }
    }
    // On SQLite and local files: the database, its WAL, a segment of lines
    // and a day file at least (with PostgreSQL and S3 they live elsewhere).
    if !app.place.is_s3() {
        assert!(seen >= 4, "{seen} files");
    }
}

#[tokio::test]
async fn nothing_of_an_interrupted_upload_survives_the_grace_period() {
    let app = TestApp::spawn().await;
    let key = "ACdead/Messages/2024-06-01/1-1.json.gz";
    let grace = 24 * 3600 * 1000;
    app.exports
        .db()
        .add_garbage(key, app.clock.now_ms() + grace)
        .await
        .unwrap();
    // A write that had begun its multipart upload when its process died: the
    // writer is forgotten, as a killed process forgets it (no abort, no drop).
    let mut writer = app.exports.blobs().writer(key);
    let part = vec![7u8; 12 * 1024 * 1024];
    writer.write_all(&part).await.unwrap();
    writer.write_all(&part).await.unwrap();
    writer.flush().await.unwrap();
    std::mem::forget(writer);
    assert!(app.exports.blobs().leftovers(key).await.unwrap() > 0);
    app.drain().await;
    assert!(
        app.exports.blobs().leftovers(key).await.unwrap() > 0,
        "removed before its time"
    );
    app.exports
        .move_clock(start_time() + chrono::Duration::milliseconds(grace + 1000))
        .unwrap();
    app.drain().await;
    assert_eq!(app.exports.blobs().leftovers(key).await.unwrap(), 0);
}

#[tokio::test]
async fn wrong_credentials_are_throttled_per_account_and_per_address() {
    let app = TestApp::spawn().await;
    let (a, b) = (app.account().await, app.account().await);
    let from = |ip: &str| {
        reqwest::Client::builder()
            .local_address(ip.parse::<std::net::IpAddr>().unwrap())
            .build()
            .unwrap()
    };
    let jobs = app.url("/v1/Exports/Messages/Jobs");
    let first = from("127.0.0.1");
    for _ in 0..30 {
        let r = first
            .get(&jobs)
            .basic_auth(&a.sid, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    // The account is locked, even with its right token, even from elsewhere.
    for client in [&first, &from("127.0.0.3")] {
        let r = client
            .get(&jobs)
            .basic_auth(&a.sid, Some(&a.token))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 429);
        let retry: u64 = r.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        let (status, body) = read(r).await;
        assert_twilio_error(status, &body, 429, 20429);
    }
    // Another account from another address is unaffected.
    let r = from("127.0.0.2")
        .get(&jobs)
        .basic_auth(&b.sid, Some(&b.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // One address guessing across accounts is locked out, for every account.
    let guesser = from("127.0.0.4");
    for n in 0..30 {
        let sid = format!("AC{n:032x}");
        let r = guesser
            .get(&jobs)
            .basic_auth(&sid, Some("wrong"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = guesser
        .get(&jobs)
        .basic_auth(&b.sid, Some(&b.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // The admin token too.
    let admin = from("127.0.0.5");
    for _ in 0..30 {
        let r = admin
            .post(app.url("/admin/v1/Accounts"))
            .bearer_auth("not-the-admin-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let r = from("127.0.0.6")
        .post(app.url("/admin/v1/Accounts"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // Once the minute has passed, the right credentials work again.
    app.exports
        .move_clock(start_time() + chrono::Duration::seconds(61))
        .unwrap();
    let r = first
        .get(&jobs)
        .basic_auth(&a.sid, Some(&a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn takeovers_count_apart_from_attempts_up_to_max_takeovers() {
    for (takeovers, ends) in [(10, "Completed"), (11, "Failed")] {
        let place = Place::new().await;
        let clock = Clock::starting_at(start_time());
        let app = TestApp::spawn_in(place, 0, clock.clone()).await;
        let a = app.account().await;
        app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-01", 5)
            .await;
        let job = app
            .create_job(&a, "Messages", "2024-06-01", "2024-06-01")
            .await;
        // A first claim, then workers that die holding the day, each taken
        // over once its lease has run out; the live worker's claim is the
        // last takeover.
        let lease = 5_000;
        for n in 0..takeovers {
            let now = clock.now_ms();
            let c = app
                .exports
                .db()
                .claim(&format!("dead-{n}"), now, now - lease, now + 86_400_000)
                .await
                .unwrap()
                .unwrap();
            assert_eq!((c.attempts, c.takeovers), (1, n));
            app.exports
                .move_clock(clock.now() + chrono::Duration::milliseconds(lease + 1000))
                .unwrap();
        }
        let place = app.stop().await;
        let app = TestApp::spawn_in(place, 1, clock.clone()).await;
        app.drain().await;
        let (_, body) = app.get(&a, &format!("/v1/Exports/Jobs/{job}")).await;
        assert_eq!(body["details"][0]["status"], ends, "{body}");
    }
}

#[tokio::test]
async fn any_range_header_gets_a_206_200_or_416() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-01", 20)
        .await;
    app.create_job(&a, "Messages", "2024-06-01", "2024-06-01")
        .await;
    app.drain().await;
    let (_, body) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-01").await;
    let link = body["redirect_to"].as_str().unwrap().to_string();
    let size = app.download(&a, "Messages", "2024-06-01").await.len() as u64;
    for (range, want, content_range) in [
        (
            "bytes=0-18446744073709551615",
            206,
            format!("bytes 0-{}/{size}", size - 1),
        ),
        (
            "bytes=5-18446744073709551615",
            206,
            format!("bytes 5-{}/{size}", size - 1),
        ),
        (
            "bytes=5-99999999999999999999999",
            206,
            format!("bytes 5-{}/{size}", size - 1),
        ),
        (
            "bytes=99999999999999999999999-",
            416,
            format!("bytes */{size}"),
        ),
        ("bytes=-0", 416, format!("bytes */{size}")),
        ("bytes=9-3", 200, String::new()),
    ] {
        let r = app
            .http
            .get(&link)
            .header("Range", range)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), want, "{range}");
        let shown = r
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_string());
        if !content_range.is_empty() {
            assert_eq!(shown.as_deref(), Some(content_range.as_str()), "{range}");
        }
        if want == 206 {
            let len: u64 = r.headers()["content-length"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(r.bytes().await.unwrap().len() as u64, len, "{range}");
        }
    }
}

#[tokio::test]
async fn an_ingest_that_fills_the_disk_says_so_and_what_was_committed() {
    // SQLite and local files on a small tmpfs (the test command runs as root).
    let place = Place::new().await;
    if place.is_s3() {
        return; // records live in PostgreSQL on that run: its disk is not ours to fill
    }
    let mount = place.dir.path().join("small");
    std::fs::create_dir(&mount).unwrap();
    let mounted = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=3m",
            "tmpfs",
            mount.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(
        mounted.success(),
        "mounting a tmpfs needs root, as the test command has"
    );
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mount.clone());
    let mut settings = settings_for(&place, 0);
    settings.data_dir = mount.clone();
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    let line = |n: u32| {
        format!(
            r#"{{"sid":"SM{n:032x}","account_sid":"{}","date_created":"2024-06-01T00:00:00Z","body":"{}","status":"delivered","direction":"inbound","num_segments":"1","num_media":"0"}}"#,
            a.sid,
            "x".repeat(400)
        )
    };
    let body: String = (0..20_000).map(|n| line(n) + "\n").collect();
    let (status, body) = app.ingest(&a, "Messages", body).await;
    assert_eq!(status, 507, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("ran out of disk space"), "{message}");
    assert!(message.contains("Committed before that"), "{message}");
}

/// A TCP forwarder to `target` that can be cut, as a network outage would.
struct Forwarder {
    addr: std::net::SocketAddr,
    tasks: tokio::task::JoinSet<()>,
}

impl Forwarder {
    async fn to(target: String) -> Forwarder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        tasks.spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                conns.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        Forwarder { addr, tasks }
    }

    /// Drops every connection and stops listening.
    async fn cut(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

#[tokio::test]
async fn an_unreachable_database_answers_503_within_the_timeout() {
    if std::env::var("BULKEXPORT_TEST_POSTGRES_URL").is_err() {
        return; // PostgreSQL's run of the test command covers this
    }
    let place = Place::new().await;
    let mut settings = settings_for(&place, 0);
    let url = settings.database_url.take().unwrap().expose().to_string();
    let (scheme_user, rest) = url.split_once('@').unwrap();
    let (host_port, db) = rest.split_once('/').unwrap();
    let forwarder = Forwarder::to(host_port.to_string()).await;
    settings.database_url = Some(Secret::new(format!(
        "{scheme_user}@{}/{db}",
        forwarder.addr
    )));
    settings.database_timeout_secs = 2;
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    let (status, _) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(status, 200);
    forwarder.cut().await;
    for _ in 0..2 {
        let started = std::time::Instant::now();
        let (status, body) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
        assert_twilio_error(status, &body, 503, 20503);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
