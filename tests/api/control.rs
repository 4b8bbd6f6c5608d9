//! The control plane: faults of every kind, and the journals that record
//! what happened.

use bulkexport::notify::twilio_signature;
use serde_json::Value;

use crate::helpers::{assert_twilio_error, read, Account, TestApp, ADMIN};
use crate::listener::Listener;

impl TestApp {
    async fn admin_post(&self, path: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(ADMIN)
            .form(form)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    async fn admin_get(&self, path: &str) -> Value {
        let r = self
            .http
            .get(self.url(path))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        let (status, body) = read(r).await;
        assert_eq!(status, 200, "{path}: {body}");
        body
    }

    async fn fault(&self, form: &[(&str, &str)]) -> String {
        let (status, body) = self.admin_post("/admin/v1/Faults", form).await;
        assert_eq!(status, 201, "{body}");
        body["sid"].as_str().unwrap().to_string()
    }

    async fn advance(&self, by: &str) {
        let (status, body) = self.admin_post("/admin/v1/Clock", &[("Advance", by)]).await;
        assert_eq!(status, 200, "{body}");
    }

    async fn job_statuses(&self, a: &Account, job: &str) -> Vec<String> {
        let (status, body) = self.get(a, &format!("/v1/Exports/Jobs/{job}")).await;
        assert_eq!(status, 200, "{body}");
        body["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["status"].as_str().unwrap().to_string())
            .collect()
    }
}

#[tokio::test]
async fn a_day_error_once_is_retried_to_completion_and_without_times_ends_failed() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(
        &a,
        bulkexport::domain::ResourceType::Messages,
        "2024-06-01",
        "2024-06-02",
        5,
    )
    .await;
    let once = app
        .fault(&[
            ("Kind", "DayError"),
            ("Day", "2024-06-01"),
            ("Times", "1"),
            ("Message", "disk on fire"),
        ])
        .await;
    app.fault(&[("Kind", "DayError"), ("Day", "2024-06-02")])
        .await;
    let job = app
        .create_job(&a, "Messages", "2024-06-01", "2024-06-02")
        .await;
    app.drain().await;
    assert_eq!(app.job_statuses(&a, &job).await, ["ErrorDuringRun"]);
    for _ in 0..3 {
        app.advance("10m").await;
        app.drain().await;
    }
    let mut statuses = app.job_statuses(&a, &job).await;
    statuses.sort();
    assert_eq!(statuses, ["Completed", "Failed"]);
    let faults = app.admin_get("/admin/v1/Faults").await;
    let fired: Vec<(String, i64)> = faults["faults"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["sid"].as_str().unwrap().into(),
                f["fired"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(fired[0], (once, 1));
    assert_eq!(fired[1].1, 3, "every attempt of the other day failed");
}

#[tokio::test]
async fn day_empty_and_day_delay_shape_the_export() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(
        &a,
        bulkexport::domain::ResourceType::Calls,
        "2024-06-01",
        "2024-06-02",
        5,
    )
    .await;
    app.fault(&[
        ("Kind", "DayEmpty"),
        ("ResourceType", "Calls"),
        ("Day", "2024-06-01"),
    ])
    .await;
    app.fault(&[
        ("Kind", "DayDelay"),
        ("Day", "2024-06-02"),
        ("Seconds", "3600"),
    ])
    .await;
    let job = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-02")
        .await;
    let r = app
        .http
        .post(app.url("/admin/v1/Queue/Drain"))
        .bearer_auth(ADMIN)
        .form(&[("TimeoutSeconds", "1")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 504, "the delayed day is still running");
    let mut statuses = app.job_statuses(&a, &job).await;
    statuses.sort();
    assert_eq!(statuses, ["CompletedEmptyRecords", "Running"]);
    app.advance("1h").await;
    app.drain().await;
    let mut statuses = app.job_statuses(&a, &job).await;
    statuses.sort();
    assert_eq!(statuses, ["Completed", "CompletedEmptyRecords"]);
}

#[tokio::test]
async fn a_duplicated_webhook_arrives_that_often_signed_with_one_token_and_the_journal_says_so() {
    let app = TestApp::spawn().await;
    let hook = Listener::start().await;
    let a = app.account().await;
    let fault = app
        .fault(&[("Kind", "WebhookDuplicate"), ("Copies", "3")])
        .await;
    let url = format!("{}/hook", hook.base);
    let (status, job) = app
        .post(
            &a,
            "/v1/Exports/Messages/Jobs",
            &[
                ("StartDay", "2024-06-01"),
                ("EndDay", "2024-06-01"),
                ("FriendlyName", "dup"),
                ("WebhookUrl", &url),
                ("WebhookMethod", "POST"),
                ("Email", "ops@example.com"),
            ],
        )
        .await;
    assert_eq!(status, 201, "{job}");
    let job = job["job_sid"].as_str().unwrap();
    app.drain().await;
    let got = hook.received();
    assert_eq!(got.len(), 3);
    let token = got[0].header("i-twilio-idempotency-token");
    for r in &got {
        assert_eq!(r.header("i-twilio-idempotency-token"), token);
        assert_eq!(
            r.header("x-twilio-signature"),
            twilio_signature(&a.token, &url, &r.params())
        );
    }
    let journal = app
        .admin_get(&format!(
            "/admin/v1/Deliveries?JobSid={job}&Channel=webhook"
        ))
        .await;
    let d = &journal["deliveries"][0];
    assert_eq!(
        journal["deliveries"].as_array().unwrap().len(),
        1,
        "{journal}"
    );
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["idempotency_token"], token.as_str());
    assert_eq!(
        d["headers"]["X-Twilio-Signature"],
        got[0].header("x-twilio-signature").as_str()
    );
    assert_eq!(d["headers"]["I-Twilio-Idempotency-Token"], token.as_str());
    assert_eq!(d["params"]["JobSid"], job);
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["attempts"][0]["fault"], fault.as_str());
    let emails = app
        .admin_get(&format!("/admin/v1/Emails?JobSid={job}"))
        .await;
    let e = &emails["emails"][0];
    assert_eq!(e["to"], "ops@example.com");
    assert_eq!(e["kind"], "completion");
    assert!(e["subject"].as_str().unwrap().contains("dup"), "{e}");
    assert!(e["text"].as_str().unwrap().contains(job), "{e}");
    assert!(e["text"].as_str().unwrap().contains("Completed"), "{e}");
    let r = app
        .http
        .delete(app.url("/admin/v1/Deliveries"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let journal = app.admin_get("/admin/v1/Deliveries").await;
    assert_eq!(journal["deliveries"], serde_json::json!([]));
}

#[tokio::test]
async fn a_delayed_webhook_waits_on_the_service_clock() {
    let app = TestApp::spawn().await;
    let hook = Listener::start().await;
    let a = app.account().await;
    app.fault(&[
        ("Kind", "WebhookDelay"),
        ("Seconds", "600"),
        ("AccountSid", &a.sid),
    ])
    .await;
    let url = format!("{}/hook", hook.base);
    app.post(
        &a,
        "/v1/Exports/Messages/Jobs",
        &[
            ("StartDay", "2024-06-01"),
            ("EndDay", "2024-06-01"),
            ("FriendlyName", "late"),
            ("WebhookUrl", &url),
            ("WebhookMethod", "POST"),
        ],
    )
    .await;
    app.drain().await;
    assert!(hook.received().is_empty());
    app.advance("10m").await;
    app.drain().await;
    assert_eq!(hook.received().len(), 1);
}

#[tokio::test]
async fn downloads_can_be_cut_short_or_expired_and_api_calls_answer_an_injected_error() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(
        &a,
        bulkexport::domain::ResourceType::Messages,
        "2024-06-01",
        "2024-06-01",
        200,
    )
    .await;
    let job = app
        .create_job(&a, "Messages", "2024-06-01", "2024-06-01")
        .await;
    app.drain().await;
    let cut = app
        .fault(&[
            ("Kind", "DownloadTruncate"),
            ("Bytes", "100"),
            ("Times", "1"),
        ])
        .await;
    let (_, day) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-01").await;
    let r = app
        .http
        .get(day["redirect_to"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let announced: usize = r.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(announced > 100);
    assert!(r.bytes().await.is_err(), "the client notices the cut");
    // Once only: the next download is whole.
    let whole = app.download(&a, "Messages", "2024-06-01").await;
    assert_eq!(whole.len(), announced);

    app.fault(&[("Kind", "DownloadExpired"), ("Times", "1")])
        .await;
    let (_, day) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-01").await;
    let (status, body) = read(
        app.http
            .get(day["redirect_to"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_twilio_error(status, &body, 403, 20403);

    let injected = app
        .fault(&[
            ("Kind", "ApiError"),
            ("Operation", "FetchJob"),
            ("Status", "503"),
            ("Message", "try later"),
        ])
        .await;
    let r = app
        .http
        .get(app.url(&format!("/v1/Exports/Jobs/{job}")))
        .basic_auth(&a.sid, Some(&a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["retry-after"], "1");
    let (status, body) = read(r).await;
    assert_twilio_error(status, &body, 503, 20503);
    assert_eq!(body["message"], "try later");
    // Other operations are served.
    assert_eq!(app.get(&a, "/v1/Exports/Messages/Jobs").await.0, 200);
    let requests = app
        .admin_get("/admin/v1/Requests?Operation=FetchJob&Status=503")
        .await;
    let r = &requests["requests"][0];
    assert_eq!(
        requests["requests"].as_array().unwrap().len(),
        1,
        "{requests}"
    );
    assert_eq!(r["fault"], injected.as_str());
    assert_eq!(r["account_sid"], a.sid.as_str());
    assert_eq!(r["path"], format!("/v1/Exports/Jobs/{job}").as_str());
    let downloads = app
        .admin_get("/admin/v1/Requests?Operation=DownloadDay")
        .await;
    let faults: Vec<&Value> = downloads["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["fault"])
        .collect();
    assert!(faults.contains(&&Value::String(cut)), "{downloads}");
    let r = app
        .http
        .delete(app.url("/admin/v1/Faults"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(app.get(&a, &format!("/v1/Exports/Jobs/{job}")).await.0, 200);
}

#[tokio::test]
async fn wrong_fault_rules_are_refused_and_store_nothing() {
    let app = TestApp::spawn().await;
    for form in [
        vec![("Kind", "Meteor")],
        vec![],
        vec![("Kind", "WebhookDuplicate")],
        vec![("Kind", "DayDelay"), ("Seconds", "-5")],
        vec![("Kind", "ApiError"), ("Status", "200")],
        vec![("Kind", "DayError"), ("Operation", "fetchjob")],
        vec![("Kind", "DayError"), ("Probability", "1.5")],
        vec![("Kind", "DayError"), ("AccountSid", "AC1")],
        vec![("Kind", "DayError"), ("Colour", "red")],
    ] {
        let (status, body) = app.admin_post("/admin/v1/Faults", &form).await;
        assert_twilio_error(status, &body, 400, 20001);
    }
    assert_eq!(
        app.admin_get("/admin/v1/Faults").await["faults"],
        serde_json::json!([])
    );
    let r = app
        .http
        .delete(app.url(&format!("/admin/v1/Faults/FT{}", "0".repeat(32))))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = app
        .http
        .get(app.url("/admin/v1/Faults"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}
