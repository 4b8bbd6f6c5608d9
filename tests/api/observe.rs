//! What operators see: request ids, the access log, JSON logs, metrics and
//! probes.

use bulkexport::clock::Clock;
use bulkexport::config::Secret;
use serde_json::Value;

use crate::helpers::{settings_for, start_time, Place, TestApp};
use crate::process::Server;

fn is_request_id(id: &str) -> bool {
    id.len() == 34
        && id.starts_with("RQ")
        && id[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// A metric's value in an exposition, by its name and labels as written.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_clients() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let mut seen = Vec::new();
    for path in [
        "/v1/Exports/Messages/Jobs",
        "/v1/Exports/Jobs/JSnope",
        "/nowhere",
    ] {
        let r = app
            .http
            .get(app.url(path))
            .basic_auth(&a.sid, Some(&a.token))
            .send()
            .await
            .unwrap();
        let id = r.headers()["twilio-request-id"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(is_request_id(&id), "{path}: {id}");
        assert_eq!(r.headers()["x-request-id"], id.as_str(), "{path}");
        seen.push(id);
    }
    seen.dedup();
    assert_eq!(seen.len(), 3, "each request has its own id");
    let r = app
        .http
        .get(app.url("/livez"))
        .header("X-Request-Id", "trace-42/a b")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-42/a b");
    assert!(is_request_id(
        r.headers()["twilio-request-id"].to_str().unwrap()
    ));
}

#[tokio::test]
async fn metrics_count_requests_by_route_template_and_jobs_by_status() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(
        &a,
        bulkexport::domain::ResourceType::Messages,
        "2024-06-01",
        "2024-06-03",
        20,
    )
    .await;
    let job = app
        .create_job(&a, "Messages", "2024-06-01", "2024-06-04")
        .await;
    app.drain().await;
    let (status, _) = app.get(&a, &format!("/v1/Exports/Jobs/{job}")).await;
    assert_eq!(status, 200);
    app.download(&a, "Messages", "2024-06-02").await;
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = r.text().await.unwrap();
    assert!(!text.contains(&job), "a SID in a label:\n{text}");
    assert!(!text.contains(&a.sid), "a SID in a label:\n{text}");
    let get_job = r#"bulkexport_http_requests_total{method="GET",route="/v1/Exports/Jobs/{JobSid}",status="200"}"#;
    assert_eq!(sample(&text, get_job), Some(1.0), "{text}");
    let created = r#"bulkexport_http_requests_total{method="POST",route="/v1/Exports/{ResourceType}/Jobs",status="201"}"#;
    assert_eq!(sample(&text, created), Some(1.0), "{text}");
    let done = |outcome: &str| {
        sample(
            &text,
            &format!(
                r#"bulkexport_day_exports_total{{resource_type="Messages",outcome="{outcome}"}}"#
            ),
        )
    };
    assert_eq!(done("completed"), Some(3.0), "{text}");
    assert_eq!(done("empty"), Some(1.0), "{text}");
    assert_eq!(done("error"), Some(0.0), "{text}");
    let days = |s: &str| sample(&text, &format!(r#"bulkexport_job_days{{status="{s}"}}"#));
    assert_eq!(days("Completed"), Some(3.0), "{text}");
    assert_eq!(days("CompletedEmptyRecords"), Some(1.0), "{text}");
    assert_eq!(days("Submitted"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "bulkexport_queue_oldest_age_seconds"),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            r#"bulkexport_day_export_records_total{resource_type="Messages"}"#
        ),
        Some(60.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"bulkexport_downloads_total{status="200"}"#),
        Some(1.0),
        "{text}"
    );
    assert!(sample(&text, "bulkexport_download_bytes_total").is_some_and(|b| b > 0.0));
    assert!(
        text.contains(r#"bulkexport_build_info{version=""#) && text.contains(r#"database=""#),
        "{text}"
    );
    assert!(
        text.contains("bulkexport_http_request_duration_seconds_bucket{")
            && text.contains(r#"le="0.005""#),
        "{text}"
    );
}

#[tokio::test]
async fn a_queued_day_shows_its_age_and_refused_credentials_are_counted() {
    let app = TestApp::spawn_in(Place::new().await, 0, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    app.create_job(&a, "Calls", "2024-06-01", "2024-06-02")
        .await;
    app.clock
        .set(start_time() + chrono::Duration::seconds(90))
        .unwrap();
    let r = app
        .http
        .get(app.url("/v1/Exports/Calls/Jobs"))
        .basic_auth(&a.sid, Some("wrong-token"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        sample(&text, r#"bulkexport_job_days{status="Submitted"}"#),
        Some(2.0)
    );
    // The job was made a moment after the clock's start.
    let age = sample(&text, "bulkexport_queue_oldest_age_seconds").unwrap();
    assert!((89.0..=90.0).contains(&age), "{age}");
    assert_eq!(
        sample(&text, "bulkexport_auth_failures_total"),
        Some(1.0),
        "{text}"
    );
}

#[tokio::test]
async fn a_metrics_token_closes_the_metrics_to_others() {
    let place = Place::new().await;
    let mut settings = settings_for(&place, 0);
    settings.metrics_token = Some(Secret::new("metrics-token-0123456789"));
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = app
        .http
        .get(app.url("/metrics"))
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("bulkexport_build_info"));
}

#[tokio::test]
async fn probes_say_live_and_ready_and_not_ready_while_shutting_down() {
    let place = Place::new().await;
    let mut settings = settings_for(&place, 0);
    settings.shutdown_grace_secs = 300;
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    for path in ["/livez", "/healthz", "/readyz"] {
        let r = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let verbose = app
        .http
        .get(app.url("/readyz?verbose"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for check in ["database", "migrations", "storage", "shutdown"] {
        assert!(verbose.contains(&format!("[+] {check} ok")), "{verbose}");
    }
    app.begin_shutdown();
    // The listener serves on through the grace period, not ready.
    let r = app
        .http
        .get(app.url("/readyz?verbose"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let text = r.text().await.unwrap();
    assert!(text.contains("[-] shutdown failed"), "{text}");
    assert!(text.contains("[+] database ok"), "{text}");
    let r = app.http.get(app.url("/livez")).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_notification_records_the_request_that_caused_it() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let r = app
        .http
        .post(app.url("/v1/Exports/Messages/Jobs"))
        .basic_auth(&a.sid, Some(&a.token))
        .form(&[
            ("StartDay", "2024-06-01"),
            ("EndDay", "2024-06-01"),
            ("FriendlyName", "n"),
            ("Email", "ops@example.com"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.headers()["twilio-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    app.drain().await;
    let deliveries = app
        .exports
        .db()
        .list_deliveries(Some(&a.sid), 10)
        .await
        .unwrap();
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    assert_eq!(deliveries[0].request_id.as_deref(), Some(id.as_str()));
}

/// The log of `serve` with `env`, after one authenticated request for a job
/// that does not exist, and that request's id.
async fn log_of_one_request(env: &[(&str, &str)]) -> (String, String, String) {
    let mut server = Server::start(env);
    let account = server
        .admin("/admin/v1/Accounts", &[("FriendlyName", "log")])
        .await;
    let (sid, token) = (
        account["sid"].as_str().unwrap().to_string(),
        account["auth_token"].as_str().unwrap(),
    );
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v1/Exports/Jobs/JS{}",
            server.base,
            "0".repeat(32)
        ))
        .basic_auth(&sid, Some(token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let id = r.headers()["twilio-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    let log = server.rest_of_stderr();
    assert!(server.terminate().await.success());
    (log.join().unwrap(), id, sid)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_plain_line_per_request_with_the_route_template() {
    let (log, id, sid) = log_of_one_request(&[]).await;
    assert!(
        !log.contains('\u{1b}'),
        "colour codes in a log file:\n{log}"
    );
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(&id)).collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    for part in [
        " INFO ",
        "route=/v1/Exports/Jobs/{JobSid}",
        "status=404",
        "duration_ms=",
        &format!("account_sid={sid}"),
        "GET",
    ] {
        assert!(line.contains(part), "{part} missing: {line}");
    }
    assert!(!line.contains(&format!("JS{}", "0".repeat(32))), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line_with_the_requests_span() {
    let (log, id, sid) = log_of_one_request(&[("BULKEXPORT_LOG_FORMAT", "json")]).await;
    let mut access = Vec::new();
    for line in log.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        for field in ["timestamp", "level", "target"] {
            assert!(v[field].is_string(), "{field} missing: {line}");
        }
        assert!(v["fields"]["message"].is_string(), "{line}");
        if v["span"]["request_id"] == id.as_str() {
            access.push(v);
        }
    }
    assert_eq!(access.len(), 1, "{log}");
    let line = &access[0];
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["target"], "bulkexport::access");
    assert_eq!(line["span"]["route"], "/v1/Exports/Jobs/{JobSid}");
    assert_eq!(line["span"]["method"], "GET");
    assert_eq!(line["span"]["account_sid"], sid.as_str());
    assert_eq!(line["fields"]["status"], 404);
    assert!(line["fields"]["duration_ms"].is_number(), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_healthcheck_command_exits_0_only_when_ready() {
    let server = Server::start(&[]);
    let check = |url: String| {
        std::process::Command::new(env!("CARGO_BIN_EXE_bulkexport"))
            .args(["healthcheck", "--url", &url])
            .output()
            .unwrap()
    };
    let url = format!("{}/readyz", server.base);
    let ok = check(url.clone());
    assert!(ok.status.success(), "{ok:?}");
    assert!(server.terminate().await.success());
    let down = check(url);
    assert!(!down.status.success(), "{down:?}");
}
