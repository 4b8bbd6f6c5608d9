use bulkexport::domain::ResourceType;

use crate::helpers::{assert_twilio_error, read, TestApp};

#[tokio::test]
async fn days_and_finished_jobs_disappear_after_seven_days() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-05", "2024-06-05", 10)
        .await;
    let sid = app
        .create_job(&a, "Messages", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    let (_, body) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-05").await;
    let link = body["redirect_to"].as_str().unwrap().to_string();
    let key = app
        .exports
        .db()
        .find_day(&a.sid, "Messages", "2024-06-05", 0)
        .await
        .unwrap()
        .unwrap()
        .blob_key;

    app.clock
        .set(app.clock.now() + chrono::Duration::days(6))
        .unwrap();
    let (status, _) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-05").await;
    assert_eq!(status, 307, "still there after 6 days");
    let (status, _) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(status, 200);

    app.clock
        .set(app.clock.now() + chrono::Duration::days(1) + chrono::Duration::seconds(1))
        .unwrap();
    let (status, body) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-05").await;
    assert_twilio_error(status, &body, 404, 20404);
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    assert_eq!(list["days"].as_array().unwrap().len(), 0);
    let (status, body) = read(app.http.get(&link).send().await.unwrap()).await;
    assert_twilio_error(status, &body, 404, 20404);
    let (status, _) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(status, 404, "the finished job is gone too");
    let (_, jobs) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 0);

    app.exports.sweep_retention().await.unwrap();
    // Draining waits for the file removals in flight, the workers' too.
    app.drain().await;
    assert!(app
        .exports
        .db()
        .find_day(&a.sid, "Messages", "2024-06-05", 0)
        .await
        .unwrap()
        .is_none());
    assert!(
        app.exports.blobs().head(&key).await.is_err(),
        "the file is deleted from the store"
    );
}

#[tokio::test]
async fn unfinished_jobs_are_kept() {
    let app = TestApp::spawn_in(
        crate::helpers::Place::new().await,
        0,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let a = app.account().await;
    let sid = app
        .create_job(&a, "Calls", "2024-06-01", "2024-06-01")
        .await;
    app.clock
        .set(app.clock.now() + chrono::Duration::days(30))
        .unwrap();
    app.exports.sweep_retention().await.unwrap();
    let (status, _) = app.get(&a, &format!("/v1/Exports/Jobs/{sid}")).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_file_whose_removal_was_interrupted_is_removed_after_the_lease() {
    use tokio::io::AsyncWriteExt;

    let app = TestApp::spawn_in(
        crate::helpers::Place::new().await,
        0,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let key = "AC00000000000000000000000000000000/Messages/2024-06-05/old.json.gz";
    let mut w = app.exports.blobs().writer(key);
    w.write_all(b"old day file").await.unwrap();
    w.shutdown().await.unwrap();
    let db = app.exports.db();
    let now = app.clock.now_ms();
    db.add_garbage(key, now).await.unwrap();

    // Another collector leased the file and died before removing it.
    let lease_ms = 5_000;
    assert_eq!(
        db.lease_garbage(now, now + lease_ms, 10).await.unwrap(),
        vec![key.to_string()]
    );
    app.exports.collect_garbage(now).await.unwrap();
    assert!(
        app.exports.blobs().head(key).await.is_ok(),
        "a leased file is left to its collector"
    );

    app.clock
        .set(app.clock.now() + chrono::Duration::milliseconds(lease_ms + 1))
        .unwrap();
    app.drain().await;
    assert!(
        app.exports.blobs().head(key).await.is_err(),
        "the file is removed once the lease ran out"
    );
    let far = app.clock.now_ms() + 1_000_000_000;
    assert!(
        db.lease_garbage(far, far, 10).await.unwrap().is_empty(),
        "and taken off the list"
    );
}
