use bulkexport::clock::Clock;
use bulkexport::db::Settled;
use bulkexport::domain::ResourceType;

use crate::helpers::{gunzip, settings_for, start_time, TestApp};

#[tokio::test]
async fn queued_work_survives_a_restart() {
    let place = crate::helpers::Place::new().await;
    let app = TestApp::spawn_in(place, 0, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-02", 25)
        .await;
    let sid = app
        .create_job(&a, "Messages", "2024-06-01", "2024-06-02")
        .await;
    let place = app.stop().await;

    let app = TestApp::spawn_in(place, 2, Clock::starting_at(start_time())).await;
    app.drain().await;
    let (_, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(job["details"][0]["status"], "Completed", "{job}");
    assert_eq!(
        gunzip(&app.download(&a, "Messages", "2024-06-02").await)
            .lines()
            .count(),
        25
    );
}

#[tokio::test]
async fn the_public_url_is_the_base_of_absolute_urls() {
    let place = crate::helpers::Place::new().await;
    let mut settings = settings_for(&place, 1);
    settings.public_url = Some("https://exports.example.com/".into());
    let app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    let (_, e) = app.get(&a, "/v1/Exports/Messages").await;
    assert_eq!(e["url"], "https://exports.example.com/v1/Exports/Messages");
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(
        list["meta"]["url"],
        "https://exports.example.com/v1/Exports/Messages/Jobs?PageSize=50&Page=0"
    );
}

#[tokio::test]
async fn a_day_claimed_by_a_dead_worker_is_taken_over_after_its_lease() {
    let place = crate::helpers::Place::new().await;
    let app = TestApp::spawn_in(place, 0, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Calls, "2024-06-03", "2024-06-03", 15)
        .await;
    let sid = app
        .create_job(&a, "Calls", "2024-06-03", "2024-06-03")
        .await;
    let now = app.clock.now_ms();
    let claimed = app
        .exports
        .db()
        .claim("killed-node", now, now - 5_000, now + 86_400_000)
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(claimed.job_sid, sid);
    let (_, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(job["details"][0]["status"], "Running");
    let place = app.stop().await;

    let later = start_time() + chrono::Duration::seconds(30);
    let app = TestApp::spawn_in(place, 2, Clock::starting_at(later)).await;
    app.drain().await;
    let (_, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(job["details"][0]["status"], "Completed", "{job}");
    assert_eq!(
        gunzip(&app.download(&a, "Calls", "2024-06-03").await)
            .lines()
            .count(),
        15
    );
}

#[tokio::test]
async fn deleting_a_job_while_a_day_runs_marks_it_running_to_be_deleted_then_deleted() {
    let place = crate::helpers::Place::new().await;
    let app = TestApp::spawn_in(place, 0, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    let sid = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-02")
        .await;
    let now = app.clock.now_ms();
    let db = app.exports.db();
    let claimed = db
        .claim("w1", now, now - 5_000, now + 86_400_000)
        .await
        .unwrap()
        .expect("claimed");
    assert_eq!(
        app.delete(&a, &format!("/v1/Exports/Jobs/{sid}")).await,
        204
    );
    let (_, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    let statuses: Vec<&str> = job["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["RunningToBeDeleted", "DeletedByUserRequest"],
        "{job}"
    );
    assert!(
        !db.heartbeat(claimed.id, "w1", now).await.unwrap(),
        "the worker is told to stop"
    );
    let published = db
        .finish(&claimed, "w1", now, bulkexport::db::Finish::Release)
        .await
        .unwrap();
    assert_eq!(published, Settled::Lost);
    db.mark_job_finished(&sid, now).await.unwrap();
    let (_, job) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(job["details"][0]["status"], "DeletedByUserRequest", "{job}");
    assert_eq!(job["details"][0]["count"], 2);
    assert_eq!(job["job_queue_position"], serde_json::Value::Null);
}

#[tokio::test]
async fn the_last_day_ends_a_quiet_job_and_leaves_an_announcing_one_to_announce_first() {
    let place = crate::helpers::Place::new().await;
    let app = TestApp::spawn_in(place, 0, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    let quiet = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-01")
        .await;
    let (status, body) = app
        .post(
            &a,
            "/v1/Exports/Calls/Jobs",
            &[
                ("StartDay", "2024-06-01"),
                ("EndDay", "2024-06-01"),
                ("FriendlyName", "mailed"),
                ("Email", "ops@example.com"),
            ],
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mailed = body["job_sid"].as_str().unwrap().to_string();
    let now = app.clock.now_ms();
    let db = app.exports.db();
    // In queue order: the quiet job's day, then the mailed one's.
    for ended in [Settled::EndedJob, Settled::Ended] {
        let claimed = db
            .claim("w1", now, now - 5_000, now + 86_400_000)
            .await
            .unwrap()
            .expect("claimed");
        let finish = bulkexport::db::Finish::Failed {
            error: "test".into(),
        };
        let settled = db.finish(&claimed, "w1", now, finish).await.unwrap();
        assert_eq!(settled, ended, "{}", claimed.job_sid);
    }
    assert!(
        db.job_if_complete(&quiet).await.unwrap().is_none(),
        "the day's own transaction recorded the quiet job's end"
    );
    let pending = db.job_if_complete(&mailed).await.unwrap();
    assert_eq!(
        pending.map(|j| j.sid),
        Some(mailed.clone()),
        "a job with an email is ended only after its email is stored"
    );
}
