use crate::helpers::{assert_twilio_error, Account, TestApp};

fn days_back(n: i64) -> String {
    (chrono::NaiveDate::from_ymd_opt(2024, 6, 8).unwrap() - chrono::Days::new(n as u64)).to_string()
}

async fn request(app: &TestApp, a: &Account, days: i64) -> (u16, serde_json::Value) {
    let (start, end) = (days_back(days - 1), days_back(0));
    app.post(
        a,
        "/v1/Exports/Calls/Jobs",
        &[
            ("StartDay", &start),
            ("EndDay", &end),
            ("FriendlyName", "q"),
        ],
    )
    .await
}

#[tokio::test]
async fn a_family_shares_366_requested_days_per_utc_day() {
    let app = TestApp::spawn_in(
        crate::helpers::Place::new().await,
        0,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let parent = app.account().await;
    let sub = app
        .exports
        .create_account("sub", Some(&parent.sid))
        .await
        .unwrap();
    let sub = Account {
        sid: sub.sid,
        token: sub.auth_token,
    };
    let stranger = app.account().await;

    assert_eq!(request(&app, &parent, 300).await.0, 201);
    let (status, body) = request(&app, &sub, 100).await;
    assert_twilio_error(status, &body, 429, 20429);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("only 66 of the 366"), "{message}");
    assert!(
        message.contains("resets at 2024-06-11T00:00:00Z"),
        "{message}"
    );
    let (_, list) = app.get(&sub, "/v1/Exports/Calls/Jobs").await;
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        0,
        "nothing of the refused job is stored"
    );

    assert_eq!(request(&app, &sub, 66).await.0, 201);
    assert_eq!(request(&app, &parent, 1).await.0, 429);
    assert_eq!(
        request(&app, &stranger, 366).await.0,
        201,
        "other families have their own allowance"
    );

    app.clock
        .set("2024-06-11T00:00:01Z".parse().unwrap())
        .unwrap();
    assert_eq!(
        request(&app, &parent, 366).await.0,
        201,
        "a new UTC day, a new allowance"
    );
}
