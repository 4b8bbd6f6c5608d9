//! Fixtures at start and Reset: fixed credentials CI can hard-code, and a
//! wipe between tests.

use bulkexport::app::Application;
use bulkexport::clock::Clock;

use crate::helpers::{read, settings_for, start_time, Account, Place, TestApp, ADMIN};

const PARENT: &str = "AC00000000000000000000000000000001";
const CHILD: &str = "AC00000000000000000000000000000002";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const KEY: &str = "SK00000000000000000000000000000001";
const SECRET: &str = "a-secret-of-at-least-32-characters-long";

fn fixtures(token: &str) -> String {
    format!(
        r#"
[[accounts]]
sid = "{PARENT}"
auth_token = "{token}"
friendly_name = "ci"
editions = true
  [[accounts.keys]]
  sid = "{KEY}"
  secret = "{SECRET}"
  [[accounts.users]]
  email = "owner@example.com"
  role = "owner"
  [[accounts.seed]]
  resource_type = "Messages"
  start_day = "2024-06-01"
  end_day = "2024-06-03"
  per_day = 10
  seed = 1
  [[accounts.ingest]]
  resource_type = "Calls"
  file = "calls.ndjson"
  [[accounts.configuration]]
  resource_type = "Messages"
  enabled = true
  webhook_url = "http://127.0.0.1:9/daily"
  webhook_method = "POST"

[[accounts]]
sid = "{CHILD}"
auth_token = "fedcba9876543210fedcba9876543210"
parent = "{PARENT}"
"#
    )
}

/// A place whose data directory holds `fixtures.toml` (with `text`) and the
/// Calls file it loads.
async fn place_with(text: &str) -> (Place, std::path::PathBuf) {
    let place = Place::new().await;
    let dir = place.dir.path().join("fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let calls: String = (0..5)
        .map(|i| {
            format!(
                "{{\"sid\":\"CA{i:032x}\",\"date_created\":\"2024-06-02T10:00:00Z\",\"status\":\"completed\"}}\n"
            )
        })
        .collect();
    std::fs::write(dir.join("calls.ndjson"), calls).unwrap();
    let file = dir.join("fixtures.toml");
    std::fs::write(&file, text).unwrap();
    (place, file)
}

async fn spawn_with_fixtures(place: Place, file: &std::path::Path) -> TestApp {
    let mut settings = settings_for(&place, 2);
    settings.fixtures = Some(file.to_path_buf());
    TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await
}

fn fixed(sid: &str, token: &str) -> Account {
    Account {
        sid: sid.into(),
        token: token.into(),
    }
}

#[tokio::test]
async fn fixtures_give_fixed_credentials_records_and_configuration() {
    let (place, file) = place_with(&fixtures(TOKEN)).await;
    let app = spawn_with_fixtures(place, &file).await;
    let parent = fixed(PARENT, TOKEN);
    let (status, body) = app.get(&parent, "/v1/Exports/Messages/Configuration").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["enabled"], true, "{body}");
    assert_eq!(body["webhook_url"], "http://127.0.0.1:9/daily", "{body}");
    // The key and the subaccount's token authenticate too.
    let (status, _) = app
        .get(&fixed(KEY, SECRET), "/v1/Exports/Messages/Jobs")
        .await;
    assert_eq!(status, 200);
    let child = fixed(CHILD, "fedcba9876543210fedcba9876543210");
    assert_eq!(app.get(&child, "/v1/Exports/Calls/Jobs").await.0, 200);
    // Seeded Messages and ingested Calls export.
    app.create_job(&parent, "Messages", "2024-06-01", "2024-06-03")
        .await;
    app.create_job(&parent, "Calls", "2024-06-02", "2024-06-02")
        .await;
    app.drain().await;
    let text = crate::helpers::gunzip(&app.download(&parent, "Messages", "2024-06-02").await);
    assert_eq!(text.lines().count(), 10);
    let text = crate::helpers::gunzip(&app.download(&parent, "Calls", "2024-06-02").await);
    assert_eq!(text.lines().count(), 5);
    let users = app.exports.list_users(PARENT).await.unwrap();
    assert_eq!(users.len(), 1);

    // A restart with a changed token keeps the jobs made since and takes the new token.
    let place = app.stop().await;
    let new_token = "11111111111111111111111111111111";
    std::fs::write(&file, fixtures(new_token)).unwrap();
    let app = spawn_with_fixtures(place, &file).await;
    assert_eq!(app.get(&parent, "/v1/Exports/Messages/Jobs").await.0, 401);
    let (status, body) = app
        .get(&fixed(PARENT, new_token), "/v1/Exports/Messages/Jobs")
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1, "{body}");
}

#[tokio::test]
async fn a_wrong_fixtures_file_stops_the_start_naming_its_line() {
    let cases = [
        (
            fixtures(TOKEN).replace(PARENT, "AC123"),
            "line 3",
            "account SID",
        ),
        (
            fixtures(TOKEN).replace("friendly_name = \"ci\"", "colour = \"red\""),
            "line 5",
            "colour",
        ),
        (
            fixtures(TOKEN).replace("calls.ndjson", "missing.ndjson"),
            "line 21",
            "missing.ndjson",
        ),
        (
            fixtures(TOKEN).replace("start_day = \"2024-06-01\"", "start_day = \"June\""),
            "line 15",
            "June",
        ),
    ];
    for (text, line, what) in cases {
        let (place, file) = place_with(&text).await;
        let mut settings = settings_for(&place, 0);
        settings.fixtures = Some(file);
        let err = Application::build(&settings, Clock::starting_at(start_time()))
            .await
            .err()
            .expect("the start fails");
        let message = format!("{err:#}");
        assert!(
            message.contains(line) && message.contains(what),
            "{message}"
        );
    }
}

#[tokio::test]
async fn reset_removes_everything_and_applies_the_fixtures_again() {
    let (place, file) = place_with(&fixtures(TOKEN)).await;
    let app = spawn_with_fixtures(place, &file).await;
    let parent = fixed(PARENT, TOKEN);
    let other = app.account().await;
    let job = app
        .create_job(&parent, "Messages", "2024-06-01", "2024-06-01")
        .await;
    app.drain().await;
    app.download(&parent, "Messages", "2024-06-01").await;
    // A local store's files are counted; a bucket is emptied the same way.
    let local = !app.place.is_s3();
    if local {
        assert!(count_files(app.place.dir.path()) > 0);
    }

    let r = app
        .http
        .post(app.url("/admin/v1/Reset"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.get(&other, "/v1/Exports/Messages/Jobs").await.0, 401);
    let (status, _) = app.get(&parent, &format!("/v1/Exports/Jobs/{job}")).await;
    assert_eq!(status, 404);
    let (status, body) = app.get(&parent, "/v1/Exports/Messages/Days").await;
    assert_eq!(status, 200);
    assert_eq!(body["days"].as_array().unwrap().len(), 0, "{body}");
    if local {
        assert_eq!(count_files(app.place.dir.path()), 0, "day files remain");
    }
    // The fixtures' records are back: a new job exports them.
    app.create_job(&parent, "Messages", "2024-06-01", "2024-06-01")
        .await;
    app.drain().await;
    let text = crate::helpers::gunzip(&app.download(&parent, "Messages", "2024-06-01").await);
    assert_eq!(text.lines().count(), 10);
    let r = app
        .http
        .post(app.url("/admin/v1/Reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

/// Day files in the local store (none on S3, where the store is a bucket).
fn count_files(data_dir: &std::path::Path) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .map(|e| e.unwrap().path())
                    .map(|p| {
                        if p.is_dir() {
                            walk(&p)
                        } else {
                            usize::from(p.to_string_lossy().ends_with(".json.gz"))
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&data_dir.join("files"))
}
