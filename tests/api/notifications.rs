use bulkexport::clock::Clock;
use bulkexport::domain::{Channel, DeliveryStatus};
use bulkexport::notify::twilio_signature;

use crate::helpers::{assert_twilio_error, settings_for, start_time, Place, TestApp};
use crate::listener::Listener;

fn job_form<'a>(url: &'a str, method: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("StartDay", "2024-06-01"),
        ("EndDay", "2024-06-02"),
        ("FriendlyName", "hooked"),
        ("WebhookUrl", url),
        ("WebhookMethod", method),
    ]
}

#[tokio::test]
async fn a_finished_job_posts_a_signed_webhook() {
    let app = TestApp::spawn().await;
    let hook = Listener::start().await;
    let a = app.account().await;
    let url = format!("{}/hooks/done?src=test", hook.base);
    let (status, job) = app
        .post(&a, "/v1/Exports/Messages/Jobs", &job_form(&url, "POST"))
        .await;
    assert_eq!(status, 201, "{job}");
    app.drain().await;
    let got = hook.received();
    assert_eq!(got.len(), 1, "one delivery");
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.param("AccountSid").unwrap(), a.sid);
    assert_eq!(r.param("JobSid").unwrap(), job["job_sid"].as_str().unwrap());
    assert_eq!(r.param("ResourceType").unwrap(), "Messages");
    assert_eq!(r.param("Status").unwrap(), "Completed");
    assert_eq!(r.param("FriendlyName").unwrap(), "hooked");
    assert_eq!(r.param("StartDay").unwrap(), "2024-06-01");
    assert_eq!(r.param("EndDay").unwrap(), "2024-06-02");
    assert!(r
        .param("Details")
        .unwrap()
        .contains("CompletedEmptyRecords"));
    assert_eq!(
        r.header("x-twilio-signature"),
        twilio_signature(&a.token, &url, &r.params())
    );
    assert_eq!(r.header("i-twilio-idempotency-token").len(), 32);
}

#[tokio::test]
async fn get_webhooks_sign_the_url_with_its_query() {
    let app = TestApp::spawn().await;
    let hook = Listener::start().await;
    let a = app.account().await;
    let url = format!("{}/hooks/get", hook.base);
    let (status, body) = app
        .post(&a, "/v1/Exports/Calls/Jobs", &job_form(&url, "GET"))
        .await;
    assert_eq!(status, 201, "{body}");
    app.drain().await;
    let r = &hook.received()[0];
    assert_eq!(r.method, "GET");
    assert_eq!(r.param("ResourceType").unwrap(), "Calls");
    let full = format!("{}{}", hook.base, r.uri);
    assert_eq!(
        r.header("x-twilio-signature"),
        twilio_signature(&a.token, &full, &[])
    );
}

#[tokio::test]
async fn failed_deliveries_are_retried_with_the_same_token_as_the_clock_moves() {
    let app = TestApp::spawn().await;
    let hook = Listener::start().await;
    let a = app.account().await;
    hook.reply_with(&[503, 429]);
    app.post(
        &a,
        "/v1/Exports/Messages/Jobs",
        &job_form(&format!("{}/h", hook.base), "POST"),
    )
    .await;
    app.drain().await;
    assert_eq!(
        hook.received().len(),
        1,
        "the first attempt failed; the retry waits for its time"
    );
    app.clock
        .set(app.clock.now() + chrono::Duration::seconds(11))
        .unwrap();
    app.drain().await;
    assert_eq!(hook.received().len(), 2, "second attempt after 10 s");
    app.clock
        .set(app.clock.now() + chrono::Duration::seconds(21))
        .unwrap();
    app.drain().await;
    let got = hook.received();
    assert_eq!(got.len(), 3, "third attempt after 20 more s");
    let tokens: Vec<String> = got
        .iter()
        .map(|r| r.header("i-twilio-idempotency-token"))
        .collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]), "{tokens:?}");
    let deliveries = app
        .exports
        .db()
        .list_deliveries(Some(&a.sid), 10)
        .await
        .unwrap();
    assert_eq!(deliveries[0].status, DeliveryStatus::Delivered);
    let attempts = app
        .exports
        .db()
        .delivery_attempts(deliveries[0].id)
        .await
        .unwrap();
    let outcomes: Vec<&str> = attempts.iter().map(|x| x.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "retry", "delivered"]);
    assert_eq!(attempts[0].detail, "HTTP 503");
}

#[tokio::test]
async fn client_errors_are_not_retried_and_deleted_jobs_are_not_announced() {
    let app = TestApp::spawn().await;
    let hook = Listener::start().await;
    let a = app.account().await;
    hook.reply_with(&[404]);
    app.post(
        &a,
        "/v1/Exports/Messages/Jobs",
        &job_form(&format!("{}/gone", hook.base), "POST"),
    )
    .await;
    app.drain().await;
    app.clock
        .set(app.clock.now() + chrono::Duration::hours(2))
        .unwrap();
    app.drain().await;
    assert_eq!(hook.received().len(), 1);
    let d = &app
        .exports
        .db()
        .list_deliveries(Some(&a.sid), 10)
        .await
        .unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert!(d.last_error.as_deref().unwrap().starts_with("HTTP 404"));

    let place = app.stop().await;
    let app = TestApp::spawn_in(
        place,
        0,
        Clock::starting_at(start_time() + chrono::Duration::hours(3)),
    )
    .await;
    let (_, job) = app
        .post(
            &a,
            "/v1/Exports/Calls/Jobs",
            &job_form(&format!("{}/deleted", hook.base), "POST"),
        )
        .await;
    let sid = job["job_sid"].as_str().unwrap();
    assert_eq!(
        app.delete(&a, &format!("/v1/Exports/Jobs/{sid}")).await,
        204
    );
    app.drain().await;
    assert_eq!(hook.received().len(), 1, "no webhook for a deleted job");
}

#[tokio::test]
async fn deliveries_survive_a_restart() {
    let place = Place::new().await;
    let hook = Listener::start().await;
    let app = TestApp::spawn_in(place, 2, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    hook.reply_with(&[500]);
    app.post(
        &a,
        "/v1/Exports/Messages/Jobs",
        &job_form(&format!("{}/r", hook.base), "POST"),
    )
    .await;
    app.drain().await;
    let place = app.stop().await;
    let app = TestApp::spawn_in(
        place,
        1,
        Clock::starting_at(start_time() + chrono::Duration::minutes(5)),
    )
    .await;
    app.drain().await;
    let got = hook.received();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].header("i-twilio-idempotency-token"),
        got[1].header("i-twilio-idempotency-token")
    );
}

#[tokio::test]
async fn internal_webhook_targets_can_be_refused() {
    let place = Place::new().await;
    let mut settings = settings_for(&place, 1);
    settings.refuse_private_webhooks = true;
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    for url in [
        "http://127.0.0.1:9/x",
        "http://10.0.0.8/x",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/x",
    ] {
        let (status, body) = app
            .post(&a, "/v1/Exports/Messages/Jobs", &job_form(url, "POST"))
            .await;
        assert_twilio_error(status, &body, 400, 20001);
        assert!(
            body["message"].as_str().unwrap().contains("WebhookUrl"),
            "{body}"
        );
        let (status, body) = app
            .post(
                &a,
                "/v1/Exports/Messages/Configuration",
                &[("WebhookUrl", url), ("WebhookMethod", "POST")],
            )
            .await;
        assert_twilio_error(status, &body, 400, 20001);
    }
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(list["jobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn without_smtp_emails_are_logged_and_say_so() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.exports
        .add_user(&a.sid, "owner@example.com", "owner")
        .await
        .unwrap();
    app.exports
        .add_user(&a.sid, "viewer@example.com", "viewer")
        .await
        .unwrap();
    let (status, body) = app
        .post(
            &a,
            "/v1/Exports/Messages/Jobs",
            &[
                ("StartDay", "2024-06-01"),
                ("EndDay", "2024-06-01"),
                ("FriendlyName", "m"),
                ("Email", "ops@example.com"),
            ],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.drain().await;
    let deliveries = app
        .exports
        .db()
        .list_deliveries(Some(&a.sid), 10)
        .await
        .unwrap();
    let mut emails: Vec<(&str, &str)> = deliveries
        .iter()
        .filter(|d| d.channel == Channel::Email)
        .map(|d| (d.target.as_str(), d.status.as_str()))
        .collect();
    emails.sort();
    assert_eq!(
        emails,
        [
            ("ops@example.com", "delivered"),
            ("owner@example.com", "delivered")
        ]
    );
    let attempts = app
        .exports
        .db()
        .delivery_attempts(deliveries[0].id)
        .await
        .unwrap();
    assert!(
        attempts[0].detail.contains("no SMTP server configured"),
        "{attempts:?}"
    );
}
