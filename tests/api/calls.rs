use bulkexport::clock::Clock;
use bulkexport::db::{Finish, Settled};
use bulkexport::domain::{Day, DayStatus, ResourceType};
use serde_json::json;

use crate::helpers::{assert_twilio_error, gunzip, start_time, Account, Place, TestApp};

/// Loads call records, returns their sids in file order.
async fn load_calls(app: &TestApp, a: &Account, day: &str, n: usize) -> Vec<String> {
    let mut lines = String::new();
    let mut sids = Vec::new();
    for i in 0..n {
        let sid = format!("CA{:032x}", rand::random::<u128>());
        let created = format!("{day}T{:02}:00:00Z", i % 24);
        lines.push_str(&json!({"sid": sid, "date_created": created, "status": "completed", "duration": "30", "account_sid": a.sid}).to_string());
        lines.push('\n');
        sids.push((created, sid));
    }
    let (status, report) = app.ingest(a, "Calls", lines).await;
    assert_eq!(status, 200, "{report}");
    sids.sort();
    sids.into_iter().map(|(_, s)| s).collect()
}

async fn file_lines(app: &TestApp, a: &Account, day: &str) -> Vec<String> {
    gunzip(&app.download(a, "Calls", day).await)
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn deleted_archived_calls_leave_the_day_file_after_the_batch() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let sids = load_calls(&app, &a, "2024-06-05", 6).await;
    let old = load_calls(&app, &a, "2023-03-01", 2).await;
    app.create_job(&a, "Calls", "2024-06-05", "2024-06-05")
        .await;
    app.create_job(&a, "Calls", "2023-03-01", "2023-03-01")
        .await;
    app.drain().await;
    let before = file_lines(&app, &a, "2024-06-05").await;
    assert_eq!(before.len(), 6);

    let target = &sids[2];
    assert_eq!(
        app.delete(&a, &format!("/v1/Archives/2024-06-05/Calls/{target}"))
            .await,
        204
    );
    assert_eq!(
        app.delete(&a, &format!("/v1/Archives/2024-06-05/Calls/{target}"))
            .await,
        204,
        "repeat is harmless"
    );
    assert_eq!(
        app.delete(&a, &format!("/v1/Archives/2023-03-01/Calls/{}", old[0]))
            .await,
        204
    );
    let pending = app.exports.list_deletions(&a.sid).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending.iter().all(|d| d.applied_at.is_none()));

    app.drain().await;
    assert_eq!(
        file_lines(&app, &a, "2024-06-05").await,
        before,
        "nothing changes before the batch runs"
    );

    app.clock
        .set("2024-06-10T13:00:01Z".parse().unwrap())
        .unwrap();
    app.drain().await;
    let after = file_lines(&app, &a, "2024-06-05").await;
    let expected: Vec<String> = before
        .iter()
        .filter(|l| !l.contains(target.as_str()))
        .cloned()
        .collect();
    assert_eq!(
        after, expected,
        "exactly that record is gone, every other line unchanged"
    );
    let (_, days) = app.get(&a, "/v1/Exports/Calls/Days").await;
    assert!(
        days["days"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["day"] == "2024-06-05")
            .count()
            == 1
    );
    assert!(app
        .exports
        .list_deletions(&a.sid)
        .await
        .unwrap()
        .iter()
        .all(|d| d.applied_at.is_some()));

    // Under 13 months old: the Call resource stays. 13 months or more: gone from both.
    let (status, call) = app
        .get(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls/{target}.json", a.sid),
        )
        .await;
    assert_eq!(status, 200, "{call}");
    let (status, body) = app
        .get(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls/{}.json", a.sid, old[0]),
        )
        .await;
    assert_twilio_error(status, &body, 404, 20404);
    assert_eq!(file_lines(&app, &a, "2023-03-01").await.len(), 1);

    // New exports of the day leave it out too.
    app.create_job(&a, "Calls", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    assert_eq!(file_lines(&app, &a, "2024-06-05").await, expected);
}

#[tokio::test]
async fn archived_call_errors() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let b = app.account().await;
    let sids = load_calls(&app, &a, "2024-06-05", 1).await;
    let sid = &sids[0];
    for path in [
        format!("/v1/Archives/2024-13-01/Calls/{sid}"),
        format!("/v1/Archives/June-5/Calls/{sid}"),
        "/v1/Archives/2024-06-05/Calls/CA123".to_string(),
        "/v1/Archives/2024-06-05/Calls/SM0123456789abcdef0123456789abcdef".to_string(),
        format!("/v1/Archives/2024-06-04/Calls/{sid}"),
        "/v1/Archives/2024-06-05/Calls/CA0123456789abcdef0123456789abcdef".to_string(),
    ] {
        let r = app
            .http
            .delete(app.url(&path))
            .basic_auth(&a.sid, Some(&a.token))
            .send()
            .await
            .unwrap();
        let (status, body) = crate::helpers::read(r).await;
        assert_twilio_error(status, &body, 404, 20404);
    }
    let r = app
        .http
        .delete(app.url(&format!("/v1/Archives/2024-06-05/Calls/{sid}")))
        .basic_auth(&b.sid, Some(&b.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "another account's call");
    assert!(app.exports.list_deletions(&a.sid).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_call_resource_is_served_listed_and_deleted() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let sids = load_calls(&app, &a, "2024-06-05", 7).await;
    let (status, call) = app
        .get(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls/{}.json", a.sid, sids[0]),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(call["date_created"], "Wed, 05 Jun 2024 00:00:00 +0000");
    assert_eq!(call["duration"], "30");
    assert_eq!(
        call["uri"],
        format!("/2010-04-01/Accounts/{}/Calls/{}.json", a.sid, sids[0])
    );

    let mut listed: Vec<String> = Vec::new();
    let (_, mut page) = app
        .get(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls.json?PageSize=3", a.sid),
        )
        .await;
    loop {
        listed.extend(
            page["calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["sid"].as_str().unwrap().to_string()),
        );
        let Some(next) = page["next_page_uri"].as_str() else {
            break;
        };
        page = app.get(&a, next).await.1;
    }
    let newest_first: Vec<String> = sids.iter().rev().cloned().collect();
    assert_eq!(listed, newest_first);

    app.create_job(&a, "Calls", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    assert_eq!(
        app.delete(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls/{}.json", a.sid, sids[1])
        )
        .await,
        204
    );
    let (status, _) = app
        .get(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls/{}.json", a.sid, sids[1]),
        )
        .await;
    assert_eq!(status, 404, "gone from the REST API at once");
    assert_eq!(
        app.delete(
            &a,
            &format!("/2010-04-01/Accounts/{}/Calls/{}.json", a.sid, sids[1])
        )
        .await,
        404
    );
    assert_eq!(
        file_lines(&app, &a, "2024-06-05").await.len(),
        7,
        "the export record goes with the batch"
    );
    app.clock
        .set("2024-06-10T13:00:01Z".parse().unwrap())
        .unwrap();
    app.drain().await;
    let lines = file_lines(&app, &a, "2024-06-05").await;
    assert_eq!(lines.len(), 6);
    assert!(!lines.iter().any(|l| l.contains(&sids[1])));
    let other = app.account().await;
    let (status, _) = app
        .get(
            &other,
            &format!("/2010-04-01/Accounts/{}/Calls/{}.json", a.sid, sids[0]),
        )
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_deletion_racing_an_export_of_the_same_day_is_not_lost() {
    let app = TestApp::spawn_in(Place::new().await, 0, Clock::starting_at(start_time())).await;
    let a = app.account().await;
    let sids = load_calls(&app, &a, "2024-06-05", 5).await;
    app.create_job(&a, "Calls", "2024-06-05", "2024-06-05")
        .await;
    let db = app.exports.db();
    let now = app.clock.now_ms();
    // An export is under way: it read the records before the deletion was applied.
    let claimed = db
        .claim("w1", now, now - 5_000, now + 86_400_000)
        .await
        .unwrap()
        .unwrap();
    let version = db.day_version(&a.sid, "Calls", "2024-06-05").await.unwrap();
    let key = "racing/2024-06-05.json.gz";
    let stop = tokio_util::sync::CancellationToken::new();
    let written = bulkexport::export::export_day(
        db,
        app.exports.blobs(),
        key,
        &a.sid,
        ResourceType::Calls,
        Day::parse("2024-06-05").unwrap(),
        &stop,
    )
    .await
    .unwrap();
    assert_eq!(written.records, 5);
    assert_eq!(
        app.delete(&a, &format!("/v1/Archives/2024-06-05/Calls/{}", sids[0]))
            .await,
        204
    );
    app.clock
        .set("2024-06-10T13:00:01Z".parse().unwrap())
        .unwrap();
    assert_eq!(app.exports.apply_deletions_if_due().await.unwrap(), 1);
    let published = db
        .finish(
            &claimed,
            "w1",
            app.clock.now_ms(),
            Finish::Published {
                status: DayStatus::Completed,
                blob_key: key.into(),
                size: written.size as i64,
                record_count: 5,
                create_date: "2024-06-10".into(),
                garbage_after: 0,
                version,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        published,
        Settled::Lost,
        "a file made from the records before the deletion is not published"
    );

    let place = app.stop().await;
    let app = TestApp::spawn_in(
        place,
        2,
        Clock::starting_at("2024-06-10T13:05:00Z".parse().unwrap()),
    )
    .await;
    app.drain().await;
    let lines = file_lines(&app, &a, "2024-06-05").await;
    assert_eq!(lines.len(), 4);
    assert!(!lines.iter().any(|l| l.contains(&sids[0])));
}
