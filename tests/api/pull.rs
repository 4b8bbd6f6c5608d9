//! `bulkexport pull` against the real service: days into files, reruns that
//! fetch nothing, resumed downloads, failed days, a 429 waited out.

use std::time::Duration;

use bulkexport::domain::{Day, ResourceType};
use bulkexport::pull::{run, PullOptions, Summary};

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
        secret: a.token.clone(),
        account_sid: a.sid.clone(),
        poll: Duration::from_millis(50),
        quiet: true,
        subaccounts: false,
        accounts_api: app.base.clone(),
    }
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
    let o = options(&app, &a, out.path(), "2024-06-01", "2024-06-03");
    // The failing day is retried on the service clock: move it along while pulling.
    let pulling = tokio::spawn(async move { run(&o).await.unwrap() });
    while !pulling.is_finished() {
        app.drain().await;
        app.exports
            .move_clock(app.clock.now() + chrono::Duration::minutes(10))
            .unwrap();
        tokio::task::yield_now().await;
    }
    let summary = pulling.await.unwrap();
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
