//! `bulkexport pull` against the real service: days into files, reruns that
//! fetch nothing, resumed downloads, failed days, a 429 waited out.

use std::time::Duration;

use bulkexport::domain::{Day, ResourceType};
use bulkexport::pull::{run, PullOptions, Summary, Wait};

use crate::helpers::{read, Account, TestApp, ADMIN};

fn options(
    app: &TestApp,
    a: &Account,
    out: &std::path::Path,
    start: &str,
    end: &str,
) -> PullOptions {
    PullOptions {
        resource_types: vec![ResourceType::Messages],
        start: Day::parse(start).unwrap(),
        end: Day::parse(end).unwrap(),
        out: out.to_path_buf(),
        api_url: app.base.clone(),
        user: a.sid.clone(),
        secret: bulkexport::config::Secret::new(a.token.clone()),
        account_sid: a.sid.clone(),
        poll: Duration::from_millis(50),
        quiet: true,
        subaccounts: false,
        accounts_api: app.base.clone(),
        load: None,
        max_wait: Duration::from_millis(200),
        wait: clock_moving_wait(app),
    }
}

/// The pull's waits are spent by letting the service finish what is due and
/// moving its clock on by as long: retries and quota resets come due when
/// the pull waits for them, and never between a link and its download.
fn clock_moving_wait(app: &TestApp) -> Wait {
    let (exports, clock) = (app.exports.clone(), app.clock.clone());
    Wait::with(move |d| {
        let (exports, clock) = (exports.clone(), clock.clone());
        Box::pin(async move {
            assert!(exports.wait_idle(Duration::from_secs(60)).await.unwrap());
            let step = chrono::Duration::from_std(d).unwrap();
            exports.move_clock(clock.now() + step).unwrap();
        })
    })
}

async fn fault(app: &TestApp, form: &[(&str, &str)]) {
    let r = app
        .http
        .post(app.url("/admin/v1/Faults"))
        .bearer_auth(ADMIN)
        .form(form)
        .send()
        .await
        .unwrap();
    let (status, body) = read(r).await;
    assert_eq!(status, 201, "{body}");
}

fn manifest(out: &std::path::Path, a: &Account) -> serde_json::Value {
    let path = out.join(&a.sid).join("Messages").join("manifest.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

async fn pull(o: &PullOptions) -> Summary {
    run(o).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_with_empty_days_lands_in_files_and_a_rerun_fetches_nothing() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-02", 30)
        .await;
    let out = tempfile::tempdir().unwrap();
    let o = options(&app, &a, out.path(), "2024-06-01", "2024-06-04");
    let first = pull(&o).await;
    assert!(first.missing.is_empty(), "{:?}", first.missing);
    assert_eq!((first.days_obtained, first.days_downloaded), (4, 4));
    assert_eq!(first.jobs_created.len(), 1);
    let m = manifest(out.path(), &a);
    assert_eq!(m["days"]["2024-06-01"]["records"], 30);
    assert_eq!(m["days"]["2024-06-01"]["status"], "Completed");
    assert_eq!(m["days"]["2024-06-04"]["status"], "CompletedEmptyRecords");
    assert_eq!(m["days"]["2024-06-04"]["records"], 0);
    let file = out
        .path()
        .join(&a.sid)
        .join("Messages")
        .join("2024-06-02.json.gz");
    let text = crate::helpers::gunzip(&std::fs::read(&file).unwrap());
    assert_eq!(text.lines().count(), 30);

    let again = pull(&o).await;
    assert_eq!((again.days_obtained, again.days_downloaded), (4, 0));
    assert!(again.jobs_created.is_empty());

    // A corrupt file is fetched again, and only it.
    std::fs::write(&file, b"not gzip").unwrap();
    let repaired = pull(&o).await;
    assert_eq!(repaired.days_downloaded, 1);
    assert!(repaired.jobs_created.is_empty(), "its Day was still there");
    assert_eq!(
        crate::helpers::gunzip(&std::fs::read(&file).unwrap())
            .lines()
            .count(),
        30
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_download_is_resumed_and_a_429_is_waited_out() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-03", "2024-06-03", 500)
        .await;
    fault(
        &app,
        &[
            ("Kind", "ApiError"),
            ("Operation", "CreateExportCustomJob"),
            ("Status", "429"),
            ("Times", "1"),
        ],
    )
    .await;
    fault(
        &app,
        &[
            ("Kind", "DownloadTruncate"),
            ("Bytes", "1000"),
            ("Times", "1"),
        ],
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let summary = pull(&options(&app, &a, out.path(), "2024-06-03", "2024-06-03")).await;
    assert!(summary.missing.is_empty(), "{:?}", summary.missing);
    assert_eq!(summary.jobs_created.len(), 1);
    let file = out
        .path()
        .join(&a.sid)
        .join("Messages")
        .join("2024-06-03.json.gz");
    assert_eq!(
        crate::helpers::gunzip(&std::fs::read(&file).unwrap())
            .lines()
            .count(),
        500
    );
    let requests = app.exports.journal_requests(&Default::default(), 100);
    let ranged = requests
        .iter()
        .filter(|r| r.operation == Some("DownloadDay"))
        .count();
    assert_eq!(ranged, 2, "the cut download and its resumption");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_that_fails_is_named_and_the_others_are_obtained() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    fault(&app, &[("Kind", "DayError"), ("Day", "2024-06-02")]).await;
    let out = tempfile::tempdir().unwrap();
    let mut o = options(&app, &a, out.path(), "2024-06-01", "2024-06-03");
    // The failing day is retried on the service clock: each poll moves it on.
    o.poll = Duration::from_secs(600);
    let summary = pull(&o).await;
    assert_eq!(summary.days_obtained, 2);
    assert_eq!(summary.missing.len(), 1);
    assert_eq!(summary.missing[0].day, "2024-06-02");
    assert!(
        summary.missing[0].reason.contains("Failed"),
        "{:?}",
        summary.missing
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subaccounts_are_pulled_each_into_its_folder() {
    let app = TestApp::spawn().await;
    let parent = app.account().await;
    let child = app
        .exports
        .create_account("child", Some(&parent.sid))
        .await
        .unwrap();
    app.seed(
        &parent,
        ResourceType::Messages,
        "2024-06-01",
        "2024-06-01",
        5,
    )
    .await;
    let child_account = Account {
        sid: child.sid.clone(),
        token: child.auth_token.clone(),
    };
    app.seed(
        &child_account,
        ResourceType::Messages,
        "2024-06-01",
        "2024-06-01",
        7,
    )
    .await;
    let (status, list) = app.get(&parent, "/2010-04-01/Accounts.json").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["accounts"].as_array().unwrap().len(), 2, "{list}");
    assert_eq!(
        list["accounts"][1]["owner_account_sid"],
        parent.sid.as_str()
    );
    let (_, own) = app.get(&child_account, "/2010-04-01/Accounts.json").await;
    assert_eq!(
        own["accounts"].as_array().unwrap().len(),
        1,
        "a subaccount sees itself only"
    );

    let out = tempfile::tempdir().unwrap();
    let mut o = options(&app, &parent, out.path(), "2024-06-01", "2024-06-01");
    o.subaccounts = true;
    let summary = pull(&o).await;
    assert!(summary.missing.is_empty(), "{:?}", summary.missing);
    assert_eq!(summary.subaccounts, vec![child.sid.clone()]);
    for (sid, records) in [(&parent.sid, 5), (&child.sid, 7)] {
        let file = out
            .path()
            .join(sid)
            .join("Messages")
            .join("2024-06-01.json.gz");
        let text = crate::helpers::gunzip(&std::fs::read(&file).unwrap());
        assert_eq!(text.lines().count(), records, "{sid}");
    }
}

/// `bulkexport pull` as a process with `env`; its exit code, stdout and stderr.
async fn pull_process(args: &[&str], env: &[(&str, String)]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_bulkexport"));
    command
        .arg("pull")
        .args(args)
        .args(["--poll-secs", "1", "--json", "--quiet"])
        .env_remove("HTTPS_PROXY")
        .env_remove("HTTP_PROXY")
        .env_remove("SSL_CERT_FILE")
        .env_remove("TWILIO_AUTH_TOKEN")
        .env_remove("TWILIO_ACCOUNT_SID");
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_works_through_the_proxy_mode_as_against_twilio() {
    let app = TestApp::spawn_proxied().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Calls, "2024-06-02", "2024-06-03", 12)
        .await;
    let out = tempfile::tempdir().unwrap();
    let ca = bulkexport::proxy::ca::cert_path(app.place.dir.path());
    let env = [
        ("HTTPS_PROXY", format!("http://{}", app.proxy.unwrap())),
        ("SSL_CERT_FILE", ca.display().to_string()),
        ("TWILIO_ACCOUNT_SID", a.sid.clone()),
        ("TWILIO_AUTH_TOKEN", a.token.clone()),
    ];
    let dir = out.path().display().to_string();
    let args = [
        "--resource-type",
        "Calls",
        "--start-day",
        "2024-06-02",
        "--end-day",
        "2024-06-04",
        "--out",
        &dir,
    ];
    let (code, stdout, stderr) = pull_process(&args, &env).await;
    assert_eq!(code, 0, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["days_downloaded"], 3, "{summary}");
    let file = out
        .path()
        .join(&a.sid)
        .join("Calls")
        .join("2024-06-03.json.gz");
    assert_eq!(
        crate::helpers::gunzip(&std::fs::read(file).unwrap())
            .lines()
            .count(),
        12
    );
    let (code, stdout, _) = pull_process(&args, &env).await;
    assert_eq!(code, 0);
    let again: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (
            again["days_downloaded"].as_i64(),
            again["jobs_created"].as_array().map(Vec::len)
        ),
        (Some(0), Some(0))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_exits_2_naming_a_failed_day_and_1_without_credentials() {
    let place = crate::helpers::Place::new().await;
    let mut settings = crate::helpers::settings_for(&place, 2);
    settings.max_attempts = 1;
    let app = TestApp::spawn_with(
        place,
        settings,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let a = app.account().await;
    fault(
        &app,
        &[
            ("Kind", "DayError"),
            ("Day", "2024-06-02"),
            ("Message", "disk on fire"),
        ],
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().display().to_string();
    let args = [
        "--api-url",
        &app.base,
        "--resource-type",
        "Messages",
        "--start-day",
        "2024-06-01",
        "--end-day",
        "2024-06-02",
        "--out",
        &dir,
    ];
    let creds = [
        ("TWILIO_ACCOUNT_SID", a.sid.clone()),
        ("TWILIO_AUTH_TOKEN", a.token.clone()),
    ];
    let (code, stdout, stderr) = pull_process(&args, &creds).await;
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("Messages 2024-06-02") && stderr.contains("Failed"),
        "{stderr}"
    );
    let summary: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["days_obtained"], 1);
    let (code, _, stderr) = pull_process(&args, &[]).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("--account-sid"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_upserts_typed_rows_into_postgres_and_a_rerun_duplicates_nothing() {
    let Ok(admin_url) = std::env::var("BULKEXPORT_TEST_POSTGRES_URL") else {
        return; // PostgreSQL's run of the test command covers this
    };
    let app = TestApp::spawn().await;
    let a = app.account().await;
    for rt in ResourceType::ALL {
        app.seed(&a, rt, "2024-06-01", "2024-06-02", 15).await;
    }
    // A database of its own for the loaded tables.
    use sqlx::Connection;
    let name = format!("load{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut conn = sqlx::PgConnection::connect(&admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = format!("{}/{name}", admin_url.rsplit_once('/').unwrap().0);
    let out = tempfile::tempdir().unwrap();
    let mut o = options(&app, &a, out.path(), "2024-06-01", "2024-06-03");
    o.resource_types = ResourceType::ALL.to_vec();
    o.load = Some((
        bulkexport::config::Secret::new(url.clone()),
        "exports".into(),
    ));
    let first = pull(&o).await;
    assert!(first.missing.is_empty(), "{:?}", first.missing);
    assert_eq!(first.records_loaded, 4 * 2 * 15);
    let second = pull(&o).await;
    assert_eq!(second.days_downloaded, 0);
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    for table in ["messages", "calls", "conferences", "participants"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM exports.{table}"))
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, 30, "{table}");
    }
    // Typed columns: the casts below fail on text columns.
    let (created, segments, price): (String, Option<i64>, Option<String>) = sqlx::query_as(
        "SELECT to_char(date_created AT TIME ZONE 'UTC', 'YYYY-MM'), num_segments + 0, (price + 0)::text \
         FROM exports.messages ORDER BY sid LIMIT 1",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(created, "2024-06");
    assert!(segments.is_some());
    assert!(price.is_none_or(|p| p.parse::<f64>().is_ok()));
    let muted: Option<bool> = sqlx::query_scalar("SELECT muted FROM exports.participants LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(muted.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_longer_than_the_quota_is_split_and_the_rest_waits_for_the_reset() {
    let place = crate::helpers::Place::new().await;
    let mut settings = crate::helpers::settings_for(&place, 2);
    settings.requested_days_per_day = 3;
    let app = TestApp::spawn_with(
        place,
        settings,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-05", 4)
        .await;
    let out = tempfile::tempdir().unwrap();
    let mut o = options(&app, &a, out.path(), "2024-06-01", "2024-06-05");
    // A refused day waits for the reset the 429 announces: the next midnight.
    o.max_wait = Duration::from_secs(86_400);
    let summary = pull(&o).await;
    assert!(summary.missing.is_empty(), "{:?}", summary.missing);
    assert_eq!(summary.days_obtained, 5);
    assert!(
        summary.jobs_created.len() >= 2,
        "{:?}",
        summary.jobs_created
    );
    let quota_refusals = app
        .exports
        .journal_requests(&Default::default(), 1000)
        .iter()
        .filter(|r| r.operation == Some("CreateExportCustomJob") && r.status == 429)
        .count();
    assert!(quota_refusals >= 1);
}
