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

/// A service with no workers and a fixed clock, and a parent account with
/// one subaccount.
async fn family() -> (TestApp, Account, Account) {
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
    (app, parent, sub)
}

#[tokio::test]
async fn a_family_shares_366_requested_days_per_utc_day() {
    let (app, parent, sub) = family().await;
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

/// Creations arriving together are stored together (one transaction for
/// what waits); each is still admitted or refused as if alone, against the
/// family's allowance, and answers its own exact queue position.
#[tokio::test]
async fn concurrent_creations_are_each_admitted_exactly_and_placed_in_order() {
    let (app, parent, sub) = family().await;
    // 40 requests of 10 days each, half from the subaccount: 36 fit in 366.
    let answers = futures::future::join_all((0..40).map(|i| {
        let who = if i % 2 == 0 { &parent } else { &sub };
        request(&app, who, 10)
    }))
    .await;
    let created: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(status, _)| *status == 201)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(created.len(), 36, "366 days allow 36 jobs of 10 days");
    for (status, body) in answers.iter().filter(|(status, _)| *status != 201) {
        assert_twilio_error(*status, body, 429, 20429);
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("only 6 of the 366"), "{message}");
    }
    let mut positions: Vec<i64> = created
        .iter()
        .map(|job| job["job_queue_position"].as_str().unwrap().parse().unwrap())
        .collect();
    positions.sort();
    assert_eq!(positions, (1..=36).collect::<Vec<i64>>());
    for job in created {
        let sid = job["job_sid"].as_str().unwrap();
        let path = format!("/v1/Exports/Jobs/{sid}");
        let owner = if app.get(&parent, &path).await.0 == 200 {
            &parent
        } else {
            &sub
        };
        let (status, fetched) = app.get(owner, &path).await;
        assert_eq!(status, 200);
        assert_eq!(
            fetched["job_queue_position"], job["job_queue_position"],
            "the answer of the creation is what FetchJob reads: {job}"
        );
        assert_eq!(fetched["details"], job["details"]);
    }
    let (status, _) = request(&app, &parent, 7).await;
    assert_eq!(status, 429, "the counter holds what was admitted");
    assert_eq!(request(&app, &parent, 6).await.0, 201);
}
