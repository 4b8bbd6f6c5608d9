use bulkexport::domain::ResourceType;
use serde_json::Value;

use crate::helpers::{assert_twilio_error, TestApp};

#[tokio::test]
async fn every_bad_job_parameter_is_a_400_that_names_it_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let ok = [
        ("StartDay", "2024-06-01"),
        ("EndDay", "2024-06-02"),
        ("FriendlyName", "x"),
    ];
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            vec![("EndDay", "2024-06-02"), ("FriendlyName", "x")],
            "StartDay",
        ),
        (
            vec![("StartDay", "2024-06-01"), ("FriendlyName", "x")],
            "EndDay",
        ),
        (
            vec![("StartDay", "2024-06-01"), ("EndDay", "2024-06-02")],
            "FriendlyName",
        ),
        (
            vec![
                ("StartDay", "2024/06/01"),
                ("EndDay", "2024-06-02"),
                ("FriendlyName", "x"),
            ],
            "StartDay",
        ),
        (
            vec![
                ("StartDay", "2024-02-30"),
                ("EndDay", "2024-06-02"),
                ("FriendlyName", "x"),
            ],
            "StartDay",
        ),
        (
            vec![
                ("StartDay", "2024-06-01"),
                ("EndDay", "June 2"),
                ("FriendlyName", "x"),
            ],
            "EndDay",
        ),
        (
            vec![
                ("StartDay", "2024-06-05"),
                ("EndDay", "2024-06-02"),
                ("FriendlyName", "x"),
            ],
            "StartDay",
        ),
        (
            vec![
                ("StartDay", "2024-06-01"),
                ("EndDay", "2024-06-09"),
                ("FriendlyName", "x"),
            ],
            "EndDay",
        ),
        (
            [&ok[..], &[("WebhookUrl", "https://example.com/h")]].concat(),
            "WebhookMethod",
        ),
        (
            [&ok[..], &[("WebhookMethod", "POST")]].concat(),
            "WebhookUrl",
        ),
        (
            [
                &ok[..],
                &[
                    ("WebhookUrl", "https://example.com/h"),
                    ("WebhookMethod", "PUT"),
                ],
            ]
            .concat(),
            "WebhookMethod",
        ),
        (
            [
                &ok[..],
                &[("WebhookUrl", "example.com/h"), ("WebhookMethod", "POST")],
            ]
            .concat(),
            "WebhookUrl",
        ),
        ([&ok[..], &[("Email", "not-an-email")]].concat(), "Email"),
    ];
    for (form, param) in cases {
        let (status, body) = app.post(&a, "/v1/Exports/Messages/Jobs", &form).await;
        assert_twilio_error(status, &body, 400, 20001);
        assert!(
            body["message"].as_str().unwrap().contains(param),
            "{param}: {body}"
        );
    }
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(list["jobs"], Value::Array(vec![]), "nothing stored");

    let (status, body) = app.post(&a, "/v1/Exports/Messages/Jobs", &ok).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app
        .post(
            &a,
            "/v1/Exports/Messages/Jobs",
            &[
                ("StartDay", "2024-06-08"),
                ("EndDay", "2024-06-08"),
                ("FriendlyName", "x"),
            ],
        )
        .await;
    assert_eq!(status, 201, "two days before today is the latest EndDay");
}

#[tokio::test]
async fn bad_resource_types_and_job_sids_are_404() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let (status, body) = app.get(&a, "/v1/Exports/Faxes/Jobs").await;
    assert_twilio_error(status, &body, 404, 20404);
    assert_eq!(
        body["message"],
        "The requested resource /Exports/Faxes/Jobs was not found"
    );
    let (status, body) = app
        .post(&a, "/v1/Exports/Faxes/Jobs", &[("StartDay", "2024-06-01")])
        .await;
    assert_twilio_error(status, &body, 404, 20404);
    let (status, body) = app.get(&a, "/v1/Exports/Jobs/JS123").await;
    assert_twilio_error(status, &body, 404, 20404);
    let unknown = "JS0123456789abcdef0123456789abcdef";
    let (status, body) = app.get(&a, &format!("/v1/Exports/Jobs/{unknown}")).await;
    assert_twilio_error(status, &body, 404, 20404);
    assert_eq!(
        body["message"],
        format!("The requested resource /Exports/Jobs/{unknown} was not found")
    );
    assert_eq!(
        app.delete(&a, &format!("/v1/Exports/Jobs/{unknown}")).await,
        404
    );
}

#[tokio::test]
async fn a_job_runs_to_completion_with_details() {
    let clock = || bulkexport::clock::Clock::starting_at(crate::helpers::start_time());
    let app = TestApp::spawn_in(crate::helpers::Place::new().await, 0, clock()).await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-02", 40)
        .await;
    let sid = app
        .create_job(&a, "Messages", "2024-06-01", "2024-06-03")
        .await;
    let (_, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(job["job_queue_position"], "1");
    assert_eq!(job["details"][0]["status"], "Submitted");
    assert_eq!(job["details"][0]["count"], 3);
    assert_eq!(job["url"], format!("{}/v1/Exports/Jobs/{sid}", app.base));
    let app = TestApp::spawn_in(app.stop().await, 2, clock()).await;
    app.drain().await;
    let (status, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(status, 200);
    let details = job["details"].as_array().unwrap();
    assert_eq!(details.len(), 2, "{job}");
    assert_eq!(details[0]["status"], "Completed");
    assert_eq!(details[0]["count"], 2);
    assert_eq!(
        details[0]["days"],
        serde_json::json!(["2024-06-01", "2024-06-02"])
    );
    assert_eq!(details[1]["status"], "CompletedEmptyRecords");
    assert_eq!(details[1]["days"], serde_json::json!(["2024-06-03"]));
    // The finished job's days come from its row now; its page shows the same.
    let (_, page) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(page["jobs"][0]["details"], job["details"], "{page}");
    assert_eq!(job["job_queue_position"], Value::Null);
    assert!(job["estimated_completion_time"].as_str().is_some());
    for key in [
        "resource_type",
        "friendly_name",
        "start_day",
        "end_day",
        "webhook_url",
        "webhook_method",
        "email",
    ] {
        assert!(job.get(key).is_some(), "{key} in {job}");
    }
}

#[tokio::test]
async fn queue_positions_and_estimates_follow_the_queue() {
    let place = crate::helpers::Place::new().await;
    let app = TestApp::spawn_in(
        place,
        0,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let a = app.account().await;
    let first = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-01")
        .await;
    let second = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-02")
        .await;
    let (_, j1) = app.get(&a, &format!("/v1/Exports/Jobs/{first}")).await;
    let (_, j2) = app.get(&a, &format!("/v1/Exports/Jobs/{second}")).await;
    assert_eq!(j1["job_queue_position"], "1");
    assert_eq!(j2["job_queue_position"], "2");
    assert_eq!(
        app.delete(&a, &format!("/v1/Exports/Jobs/{first}")).await,
        204
    );
    let (_, j2) = app.get(&a, &format!("/v1/Exports/Jobs/{second}")).await;
    assert_eq!(
        j2["job_queue_position"], "1",
        "positions only ever decrease"
    );
}

#[tokio::test]
async fn a_page_of_jobs_shows_each_job_s_place_as_fetch_job_does() {
    let clock = || bulkexport::clock::Clock::starting_at(crate::helpers::start_time());
    let app = TestApp::spawn_in(crate::helpers::Place::new().await, 0, clock()).await;
    let a = app.account().await;
    let done = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-01")
        .await;
    // One finished day gives the estimates their pace.
    let app = TestApp::spawn_in(app.stop().await, 2, clock()).await;
    app.drain().await;
    let app = TestApp::spawn_in(app.stop().await, 0, clock()).await;
    let other = app.account().await;
    app.create_job(&other, "Calls", "2024-06-01", "2024-06-01")
        .await;
    let second = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-01")
        .await;
    let third = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-04")
        .await;
    let (status, page) = app.get(&a, "/v1/Exports/Calls/Jobs?PageSize=10").await;
    assert_eq!(status, 200);
    let listed = page["jobs"].as_array().unwrap();
    let sids: Vec<&str> = listed
        .iter()
        .map(|j| j["job_sid"].as_str().unwrap())
        .collect();
    assert_eq!(sids, [done.as_str(), second.as_str(), third.as_str()]);
    let positions: Vec<&Value> = listed.iter().map(|j| &j["job_queue_position"]).collect();
    assert_eq!(
        positions,
        [&Value::Null, &Value::from("2"), &Value::from("3")]
    );
    let estimate = |job: &Value| {
        let text = job["estimated_completion_time"]
            .as_str()
            .expect("an estimate");
        chrono::DateTime::parse_from_rfc3339(text).unwrap()
    };
    assert!(
        estimate(&listed[2]) > estimate(&listed[1]),
        "three more days queued ahead of the third job: {page}"
    );
    for job in listed {
        let sid = job["job_sid"].as_str().unwrap();
        let (_, fetched) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
        assert_eq!(fetched["job_queue_position"], job["job_queue_position"]);
        assert_eq!(fetched["details"], job["details"]);
        estimate(&fetched);
    }
}

#[tokio::test]
async fn jobs_page_forward_and_back() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let mut sids = Vec::new();
    for _ in 0..5 {
        sids.push(
            app.create_job(&a, "Conferences", "2024-06-01", "2024-06-01")
                .await,
        );
    }
    let other = app.account().await;
    app.create_job(&other, "Conferences", "2024-06-01", "2024-06-01")
        .await;

    let (status, page) = app.get(&a, "/v1/Exports/Conferences/Jobs?PageSize=2").await;
    assert_eq!(status, 200);
    let object = page.as_object().unwrap();
    assert_eq!(
        object.values().filter(|v| v.is_array()).count(),
        1,
        "exactly one array"
    );
    assert_eq!(page["meta"]["key"], "jobs");
    assert_eq!(page["meta"]["previous_page_url"], Value::Null);
    assert_eq!(
        page["meta"]["first_page_url"],
        format!("{}/v1/Exports/Conferences/Jobs?PageSize=2&Page=0", app.base)
    );
    let mut seen: Vec<String> = Vec::new();
    let mut pages = vec![page];
    loop {
        let page = pages.last().unwrap().clone();
        seen.extend(
            page["jobs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["job_sid"].as_str().unwrap().to_string()),
        );
        let Some(next) = page["meta"]["next_page_url"].as_str() else {
            break;
        };
        let (status, next_page) = app.get(&a, next).await;
        assert_eq!(status, 200);
        pages.push(next_page);
    }
    assert_eq!(
        seen, sids,
        "every job of this account once, in submission order"
    );
    assert_eq!(pages.len(), 3);
    let prev = pages[2]["meta"]["previous_page_url"].as_str().unwrap();
    let (_, back) = app.get(&a, prev).await;
    let back_sids: Vec<&str> = back["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_sid"].as_str().unwrap())
        .collect();
    assert_eq!(back_sids, [sids[2].as_str(), sids[3].as_str()]);
    assert_eq!(back["meta"]["page"], 1);

    for bad in [
        "PageSize=0",
        "PageSize=x",
        "PageToken=PA5",
        "PageToken=PA1-0011223344556677",
    ] {
        let (status, body) = app
            .get(&a, &format!("/v1/Exports/Conferences/Jobs?{bad}"))
            .await;
        assert_twilio_error(status, &body, 400, 20001);
    }
    let (status, _) = app
        .get(&a, "/v1/Exports/Conferences/Jobs?PageSize=1000")
        .await;
    assert_eq!(status, 200);
    let token = pages[1]["meta"]["url"]
        .as_str()
        .unwrap()
        .split("PageToken=")
        .nth(1)
        .unwrap()
        .to_string();
    let (status, body) = app
        .get(
            &other,
            &format!("/v1/Exports/Conferences/Jobs?PageToken={token}"),
        )
        .await;
    assert_twilio_error(status, &body, 400, 20001);
}

#[tokio::test]
async fn another_accounts_job_is_not_found() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let b = app.account().await;
    let sid = app
        .create_job(&a, "Messages", "2024-06-01", "2024-06-01")
        .await;
    let (status, body) = app.get(&b, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_twilio_error(status, &body, 404, 20404);
    assert_eq!(
        app.delete(&b, &format!("/v1/Exports/Jobs/{sid}")).await,
        404
    );
    let (status, _) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn deleting_a_queued_job_stops_its_days_and_keeps_it_fetchable() {
    let place = crate::helpers::Place::new().await;
    let app = TestApp::spawn_in(
        place,
        0,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let a = app.account().await;
    let sid = app
        .create_job(&a, "Messages", "2024-06-01", "2024-06-03")
        .await;
    assert_eq!(
        app.delete(&a, &format!("/v1/Exports/Jobs/{sid}")).await,
        204
    );
    assert_eq!(
        app.delete(&a, &format!("/v1/Exports/Jobs/{sid}")).await,
        204,
        "idempotent"
    );
    let (_, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(job["details"][0]["status"], "DeletedByUserRequest", "{job}");
    assert_eq!(job["details"][0]["count"], 3);
    let place = app.stop().await;
    let app = TestApp::spawn_in(
        place,
        2,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    app.drain().await;
    let (_, days) = app.get(&a, "/v1/Exports/Messages/Days").await;
    assert_eq!(days["days"], Value::Array(vec![]), "deleted days never run");
}

#[tokio::test]
async fn form_bodies_on_get_and_connection_close_are_fine() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let r = app
        .http
        .get(app.url("/v1/Exports/Messages/Jobs"))
        .basic_auth(&a.sid, Some(&a.token))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Connection", "close")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["connection"], "close");
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let big = "x".repeat(100 * 1024);
    let (status, body) = app
        .post(&a, "/v1/Exports/Messages/Jobs", &[("FriendlyName", &big)])
        .await;
    assert_twilio_error(status, &body, 413, 20001);
}

#[tokio::test]
async fn export_configuration_round_trips_and_validates() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let (status, c) = app.get(&a, "/v1/Exports/Calls/Configuration").await;
    assert_eq!(status, 200);
    assert_eq!(c["enabled"], false);
    assert_eq!(
        c["url"],
        format!("{}/v1/Exports/Calls/Configuration", app.base)
    );
    let (status, body) = app
        .post(
            &a,
            "/v1/Exports/Calls/Configuration",
            &[("Enabled", "true")],
        )
        .await;
    assert_twilio_error(status, &body, 400, 20001);
    assert!(
        body["message"].as_str().unwrap().contains("Editions"),
        "{body}"
    );
    app.exports.set_editions(&a.sid, true).await.unwrap();
    let (status, c) = app
        .post(
            &a,
            "/v1/Exports/Calls/Configuration",
            &[
                ("Enabled", "true"),
                ("WebhookUrl", "https://example.com/x"),
                ("WebhookMethod", "GET"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["enabled"], true);
    assert_eq!(c["webhook_method"], "GET");
    let (status, body) = app
        .post(
            &a,
            "/v1/Exports/Calls/Configuration",
            &[("Enabled", "maybe")],
        )
        .await;
    assert_twilio_error(status, &body, 400, 20001);
    assert!(body["message"].as_str().unwrap().contains("Enabled"));
    let (_, c) = app.get(&a, "/v1/Exports/Calls/Configuration").await;
    assert_eq!(c["enabled"], true, "a refused update changes nothing");
    let (_, e) = app.get(&a, "/v1/Exports/Calls").await;
    assert_eq!(
        e["links"]["days"],
        format!("{}/v1/Exports/Calls/Days", app.base)
    );
    assert_eq!(
        e["links"]["export_custom_jobs"],
        format!("{}/v1/Exports/Calls/Jobs", app.base)
    );
}

#[tokio::test]
async fn a_finished_job_reads_the_same_each_time_it_is_fetched() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Calls, "2024-06-01", "2024-06-01", 5)
        .await;
    let sid = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-02")
        .await;
    let path = format!("/v1/Exports/Jobs/{sid}");
    let (_, queued) = app.get(&a, &path).await;
    app.drain().await;
    // The first read of the finished job takes the full statement, the
    // later ones the narrow one (`db::jobs::FinishedJobs`).
    let (status, first) = app.get(&a, &path).await;
    assert_eq!(status, 200);
    assert_ne!(first, queued, "{first}");
    assert!(first["estimated_completion_time"].is_string(), "{first}");
    for _ in 0..3 {
        assert_eq!(app.get(&a, &path).await, (200, first.clone()));
    }
}
