//! HTTP edges found by an outside conformance run: every rejection is a
//! Twilio error, input is taken as sent or refused (never silently
//! changed), URLs are built only from trusted names, and slow or idle
//! connections are closed.

use std::time::Duration;

use bulkexport::clock::Clock;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{assert_twilio_error, read, settings_for, start_time, Place, TestApp};

#[tokio::test]
async fn a_path_that_is_not_utf8_is_a_twilio_404() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    for path in [
        "/v1/Exports/Jobs/%FF",
        "/v1/Exports/%FF/Days",
        "/v1/Exports/Messages/Days/%C3%28",
        "/2010-04-01/Accounts/%FF/Calls.json",
    ] {
        let (status, body) = app.get(&a, path).await;
        assert_twilio_error(status, &body, 404, 20404);
    }
}

#[tokio::test]
async fn page_numbers_are_bounded_and_next_pages_stay_valid() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let (status, body) = app
        .get(&a, "/v1/Exports/Messages/Jobs?Page=9223372036854775807")
        .await;
    assert_twilio_error(status, &body, 400, 20001);
    let (status, body) = app
        .get(&a, "/v1/Exports/Messages/Jobs?Page=1000000000")
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .get(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls.json?PageSize=1001", a.sid),
        )
        .await;
    assert_twilio_error(status, &body, 400, 20007);
}

#[tokio::test]
async fn the_host_header_is_checked_and_forwarded_names_need_a_trusted_proxy() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let export = |host: &'static str| {
        app.http
            .get(app.url("/v1/Exports/Messages"))
            .basic_auth(&a.sid, Some(&a.token))
            .header("Host", host)
    };
    let (status, body) = read(export("a\"b<c").send().await.unwrap()).await;
    assert_twilio_error(status, &body, 400, 20001);
    let (status, body) = read(export("exports.example.com:8443").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert!(body["url"]
        .as_str()
        .unwrap()
        .starts_with("http://exports.example.com:8443/"));
    // Forwarded names from a client that is not a trusted proxy are ignored.
    let r = export("exports.example.com")
        .header("X-Forwarded-Host", "evil.example")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    let (_, body) = read(r).await;
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("http://exports.example.com/"),
        "{body}"
    );

    let place = Place::new().await;
    let mut settings = settings_for(&place, 0);
    settings.trusted_proxies = vec!["127.0.0.0/8".into()];
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    let r = app
        .http
        .get(app.url("/v1/Exports/Messages"))
        .basic_auth(&a.sid, Some(&a.token))
        .header("X-Forwarded-Host", "exports.example.com")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    let (_, body) = read(r).await;
    assert!(
        body["url"]
            .as_str()
            .unwrap()
            .starts_with("https://exports.example.com/"),
        "{body}"
    );
    let r = app
        .http
        .get(app.url("/v1/Exports/Messages"))
        .basic_auth(&a.sid, Some(&a.token))
        .header("X-Forwarded-Host", "evil.example/x?")
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_twilio_error(status, &body, 400, 20001);
}

#[tokio::test]
async fn control_characters_and_invalid_utf8_are_refused_and_names_kept_as_sent() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    for url in [
        "http://hooks.example.com/a\r\nX-Injected: 1",
        "http://hooks.example.com/\ta",
        "http://hooks.example.com/a b",
    ] {
        let (status, body) = app
            .post(
                &a,
                "/v1/Exports/Messages/Jobs",
                &[
                    ("StartDay", "2024-06-01"),
                    ("EndDay", "2024-06-01"),
                    ("FriendlyName", "t"),
                    ("WebhookUrl", url),
                    ("WebhookMethod", "POST"),
                ],
            )
            .await;
        assert_twilio_error(status, &body, 400, 20001);
        let (status, body) = app
            .post(
                &a,
                "/v1/Exports/Messages/Configuration",
                &[("WebhookUrl", url), ("WebhookMethod", "POST")],
            )
            .await;
        assert_twilio_error(status, &body, 400, 20001);
    }
    let r = app
        .http
        .post(app.url("/v1/Exports/Messages/Jobs"))
        .basic_auth(&a.sid, Some(&a.token))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("StartDay=2024-06-01&EndDay=2024-06-01&FriendlyName=%FF%FE")
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_twilio_error(status, &body, 400, 20001);
    let (_, jobs) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0, "nothing stored");
    let (status, body) = app
        .post(
            &a,
            "/v1/Exports/Messages/Jobs",
            &[
                ("StartDay", "2024-06-01"),
                ("EndDay", "2024-06-01"),
                ("FriendlyName", "  spaced  "),
            ],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["friendly_name"], "  spaced  ");
}

/// Reads until the server closes the connection; the time it took.
async fn time_to_close(mut conn: tokio::net::TcpStream) -> Duration {
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(Duration::from_secs(30), async {
        while conn.read(&mut buf).await.map(|n| n > 0).unwrap_or(false) {}
    })
    .await;
    assert!(closed.is_ok(), "the server kept the connection open");
    started.elapsed()
}

#[tokio::test]
async fn slow_headers_and_idle_connections_are_closed() {
    let place = Place::new().await;
    let mut settings = settings_for(&place, 0);
    settings.header_read_timeout_secs = 1;
    settings.keepalive_timeout_secs = 2;
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let addr = app.base.trim_start_matches("http://").to_string();

    // A client that sends part of a request line and stops.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GE").await.unwrap();
    let took = time_to_close(slow).await;
    assert!(
        took < Duration::from_secs(2),
        "slow headers open for {took:?}"
    );

    // A keep-alive connection left idle after its request.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let took = time_to_close(idle).await;
    assert!(
        took >= Duration::from_millis(1500),
        "idle connection closed after {took:?}"
    );
    assert!(
        took < Duration::from_secs(4),
        "idle connection open for {took:?}"
    );

    // A connection that has not sent a byte yet counts as idle.
    let fresh = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let took = time_to_close(fresh).await;
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(4),
        "{took:?}"
    );
}
