use bulkexport::clock::Clock;
use bulkexport::domain::ResourceType;
use bulkexport::notify::twilio_signature;
use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::helpers::{gunzip, Place, TestApp};
use crate::listener::Listener;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn listed_days(list: &Value) -> Vec<String> {
    let mut days: Vec<String> = list["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["day"].as_str().unwrap().to_string())
        .collect();
    days.sort();
    days
}

#[tokio::test]
async fn an_enabled_configuration_exports_each_ended_day_once_and_announces_it() {
    let app = TestApp::spawn_in(
        Place::new().await,
        2,
        Clock::starting_at(at("2024-06-10T12:00:00Z")),
    )
    .await;
    let hook = Listener::start().await;
    let a = app.account().await;
    app.exports.set_editions(&a.sid, true).await.unwrap();
    app.seed(&a, ResourceType::Messages, "2024-06-10", "2024-06-13", 25)
        .await;
    let url = format!("{}/daily", hook.base);
    let (status, c) = app
        .post(
            &a,
            "/v1/Exports/Messages/Configuration",
            &[
                ("Enabled", "true"),
                ("WebhookUrl", &url),
                ("WebhookMethod", "POST"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{c}");

    app.drain().await;
    app.clock.set(at("2024-06-11T00:30:00Z")).unwrap();
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    assert!(
        listed_days(&list).is_empty(),
        "the day has ended but the settle delay has not passed"
    );

    app.clock.set(at("2024-06-11T01:00:01Z")).unwrap();
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    assert_eq!(listed_days(&list), ["2024-06-10"]);
    assert_eq!(list["days"][0]["create_date"], "2024-06-11");
    assert_eq!(
        gunzip(&app.download(&a, "Messages", "2024-06-10").await)
            .lines()
            .count(),
        25
    );
    let got = hook.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.param("Day").unwrap(), "2024-06-10");
    assert_eq!(r.param("Status").unwrap(), "Completed");
    assert_eq!(r.param("ResourceType").unwrap(), "Messages");
    assert_eq!(r.param("AccountSid").unwrap(), a.sid);
    assert_eq!(
        r.param("Size").unwrap(),
        list["days"][0]["size"].to_string()
    );
    assert_eq!(
        r.header("x-twilio-signature"),
        twilio_signature(&a.token, &url, &r.params())
    );

    assert_eq!(
        app.exports.schedule_daily_exports().await.unwrap(),
        0,
        "exactly once"
    );
    app.drain().await;
    assert_eq!(hook.received().len(), 1);
    let (_, jobs) = app.get(&a, "/v1/Exports/Messages/Jobs").await;
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        0,
        "daily exports are not custom jobs"
    );

    // Down for three days: the missed days are caught up at the next start.
    let place = app.stop().await;
    let app = TestApp::spawn_in(place, 2, Clock::starting_at(at("2024-06-14T02:00:00Z"))).await;
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    assert_eq!(
        listed_days(&list),
        ["2024-06-10", "2024-06-11", "2024-06-12", "2024-06-13"]
    );
    let announced: Vec<String> = hook
        .received()
        .iter()
        .map(|r| r.param("Day").unwrap())
        .collect();
    assert_eq!(announced.len(), 4, "{announced:?}");

    // Down for a month: only what retention still allows is caught up.
    let place = app.stop().await;
    let app = TestApp::spawn_in(place, 2, Clock::starting_at(at("2024-07-20T02:00:00Z"))).await;
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    let days = listed_days(&list);
    assert_eq!(
        days.first().map(String::as_str),
        Some("2024-07-13"),
        "{days:?}"
    );
    assert_eq!(days.last().map(String::as_str), Some("2024-07-19"));
    assert_eq!(days.len(), 7);
}

#[tokio::test]
async fn disabling_stops_the_daily_exports() {
    let app = TestApp::spawn_in(
        Place::new().await,
        1,
        Clock::starting_at(at("2024-06-10T12:00:00Z")),
    )
    .await;
    let a = app.account().await;
    app.exports.set_editions(&a.sid, true).await.unwrap();
    app.post(
        &a,
        "/v1/Exports/Calls/Configuration",
        &[("Enabled", "true")],
    )
    .await;
    app.post(
        &a,
        "/v1/Exports/Calls/Configuration",
        &[("Enabled", "false")],
    )
    .await;
    app.clock.set(at("2024-06-12T12:00:00Z")).unwrap();
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Calls/Days").await;
    assert!(listed_days(&list).is_empty());
}

/// The scheduler does not rescan every configuration while nothing is due,
/// but a change made through the service is seen at once: an account put
/// back on Editions gets the day it missed without waiting for the next one.
#[tokio::test]
async fn a_change_after_a_quiet_scan_is_scheduled_at_once() {
    let app = TestApp::spawn_in(
        Place::new().await,
        2,
        Clock::starting_at(at("2024-06-10T12:00:00Z")),
    )
    .await;
    let (a, b) = (app.account().await, app.account().await);
    for account in [&a, &b] {
        app.exports.set_editions(&account.sid, true).await.unwrap();
        app.seed(
            account,
            ResourceType::Messages,
            "2024-06-10",
            "2024-06-10",
            3,
        )
        .await;
        let (status, c) = app
            .post(
                account,
                "/v1/Exports/Messages/Configuration",
                &[("Enabled", "true")],
            )
            .await;
        assert_eq!(status, 200, "{c}");
    }
    app.exports.set_editions(&b.sid, false).await.unwrap();
    app.clock.set(at("2024-06-11T01:00:01Z")).unwrap();
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    assert_eq!(listed_days(&list), ["2024-06-10"]);
    let (_, list) = app.get(&b, "/v1/Exports/Messages/Days").await;
    assert!(listed_days(&list).is_empty(), "not on Editions: {list}");

    app.exports.set_editions(&b.sid, true).await.unwrap();
    app.drain().await;
    let (_, list) = app.get(&b, "/v1/Exports/Messages/Days").await;
    assert_eq!(listed_days(&list), ["2024-06-10"]);
}

#[tokio::test]
async fn a_daily_day_another_scan_queued_is_not_queued_again() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let job = |day: &str| bulkexport::db::NewJob {
        sid: bulkexport::domain::SidKind::Job.generate(),
        account_sid: a.sid.clone(),
        resource_type: "Messages".into(),
        friendly_name: format!("Daily export {day}"),
        start_day: day.into(),
        end_day: day.into(),
        webhook_url: None,
        webhook_method: None,
        email: None,
        created_at: app.clock.now_ms(),
        days: vec![day.into()],
        kind: bulkexport::db::JobKind::Daily,
        request_id: None,
    };
    let db = app.exports.db();
    assert_eq!(db.insert_daily_jobs(&[job("2024-06-01")]).await.unwrap(), 1);
    // A second scan (another process's) with the same day and a new one.
    let again = [job("2024-06-01"), job("2024-06-02")];
    assert_eq!(db.insert_daily_jobs(&again).await.unwrap(), 1);
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    assert_eq!(listed_days(&list), ["2024-06-01", "2024-06-02"]);
}
