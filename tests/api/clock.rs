use bulkexport::app::Application;
use bulkexport::clock::Clock;

use crate::helpers::{assert_twilio_error, read, settings_for, start_time, Place, TestApp, ADMIN};

#[tokio::test]
async fn the_admin_api_moves_the_clock_forward_only() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let set = |now: &'static str| {
        app.http
            .post(app.url("/admin/v1/Clock"))
            .bearer_auth(ADMIN)
            .form(&[("Now", now)])
            .send()
    };
    let (status, body) = app
        .post(
            &a,
            "/v1/Exports/Messages/Jobs",
            &[
                ("StartDay", "2024-06-10"),
                ("EndDay", "2024-06-10"),
                ("FriendlyName", "x"),
            ],
        )
        .await;
    assert_twilio_error(status, &body, 400, 20001);

    let (status, body) = read(set("2024-06-12T00:00:00Z").await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let now = body["now"].as_str().unwrap();
    assert!(now.starts_with("2024-06-12T00:00:0"), "{now}");
    let (status, body) = app
        .post(
            &a,
            "/v1/Exports/Messages/Jobs",
            &[
                ("StartDay", "2024-06-10"),
                ("EndDay", "2024-06-10"),
                ("FriendlyName", "x"),
            ],
        )
        .await;
    assert_eq!(
        status, 201,
        "EndDay validation follows the clock at once: {body}"
    );

    let (status, body) = read(set("2024-06-11T00:00:00Z").await.unwrap()).await;
    assert_twilio_error(status, &body, 400, 20001);
    assert!(
        body["message"].as_str().unwrap().contains("backward"),
        "{body}"
    );
    let (status, body) = read(set("next tuesday").await.unwrap()).await;
    assert_twilio_error(status, &body, 400, 20001);
    let r = app
        .http
        .post(app.url("/admin/v1/Clock"))
        .form(&[("Now", "2030-01-01T00:00:00Z")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn the_clock_advances_by_a_duration() {
    let app = TestApp::spawn().await;
    let advance = |by: &'static str| {
        app.http
            .post(app.url("/admin/v1/Clock"))
            .bearer_auth(ADMIN)
            .form(&[("Advance", by)])
            .send()
    };
    let before = app.clock.now();
    let (status, body) = read(advance("36h").await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    let now: chrono::DateTime<chrono::Utc> = body["now"].as_str().unwrap().parse().unwrap();
    let moved = now - before;
    assert!(
        moved >= chrono::Duration::hours(36)
            && moved < chrono::Duration::hours(36) + chrono::Duration::seconds(5),
        "{moved}"
    );
    for bad in ["tomorrow", "-1h", "0s"] {
        let (status, body) = read(advance(bad).await.unwrap()).await;
        assert_twilio_error(status, &body, 400, 20001);
        assert!(
            body["message"].as_str().unwrap().contains("Advance"),
            "{body}"
        );
    }
    let (status, body) = read(
        app.http
            .post(app.url("/admin/v1/Clock"))
            .bearer_auth(ADMIN)
            .form(&[("Advance", "1h"), ("Now", "2030-01-01T00:00:00Z")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_twilio_error(status, &body, 400, 20001);
}

#[tokio::test]
async fn without_a_settable_clock_the_endpoint_is_404() {
    let place = Place::new().await;
    let settings = settings_for(&place, 0);
    let app = Application::build(&settings, Clock::starting_at(start_time()))
        .await
        .unwrap();
    let base = format!("http://{}", app.local_addr().unwrap());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(app.run_until_stopped(shutdown.clone()));
    let r = reqwest::Client::new()
        .post(format!("{base}/admin/v1/Clock"))
        .bearer_auth(ADMIN)
        .form(&[("Now", "2030-01-01T00:00:00Z")])
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_twilio_error(status, &body, 404, 20404);
    shutdown.cancel();
    running.await.unwrap().unwrap();
}
