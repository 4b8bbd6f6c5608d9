use bulkexport::domain::record::Record;
use bulkexport::domain::{seed, Day, ResourceType};
use serde_json::Value;

use crate::helpers::{assert_twilio_error, gunzip, TestApp};

#[tokio::test]
async fn day_files_hold_exactly_the_seeded_records_in_order() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    for rt in ResourceType::ALL {
        app.seed(&a, rt, "2024-06-05", "2024-06-05", 120).await;
        app.create_job(&a, rt.as_str(), "2024-06-05", "2024-06-05")
            .await;
    }
    app.drain().await;
    for rt in ResourceType::ALL {
        let mut expected: Vec<Record> =
            seed::day_records(&a.sid, rt, Day::parse("2024-06-05").unwrap(), 120, 7);
        expected.sort_by(|x, y| x.sort_key.cmp(&y.sort_key));
        let file = app.download(&a, rt.as_str(), "2024-06-05").await;
        let path = app.place.dir.path().join(format!("{rt}.json.gz"));
        std::fs::write(&path, &file).unwrap();
        let tested = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&path)
            .status()
            .expect("gzip is installed");
        assert!(tested.success(), "gzip -t reads the whole file");
        let text = gunzip(&file);
        let lines: Vec<&str> = text.lines().collect();
        let want: Vec<&str> = expected.iter().map(|r| r.line.as_str()).collect();
        assert_eq!(lines, want, "{rt}");
        assert!(text.ends_with('\n'));
    }
    let (status, days) = app.get(&a, "/v1/Exports/Calls/Days").await;
    assert_eq!(status, 200);
    let day = &days["days"][0];
    assert_eq!(day["day"], "2024-06-05");
    assert_eq!(day["resource_type"], "Calls");
    assert_eq!(day["friendly_name"], "t");
    assert_eq!(day["create_date"], "2024-06-10");
    assert!(day["size"].as_i64().unwrap() > 100);
}

#[tokio::test]
async fn empty_days_get_an_empty_gzip_file() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.create_job(&a, "Participants", "2024-06-04", "2024-06-04")
        .await;
    app.drain().await;
    let bytes = app.download(&a, "Participants", "2024-06-04").await;
    assert!(!bytes.is_empty());
    assert_eq!(gunzip(&bytes), "");
}

#[tokio::test]
async fn downloads_support_ranges_etags_and_head() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-05", "2024-06-05", 300)
        .await;
    app.create_job(&a, "Messages", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    let whole = app.download(&a, "Messages", "2024-06-05").await;
    let (_, link) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-05").await;
    let link = link["redirect_to"].as_str().unwrap().to_string();

    let r = app
        .http
        .get(&link)
        .header("Range", "bytes=10-99")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes 10-99/{}", whole.len())
    );
    assert_eq!(r.bytes().await.unwrap().to_vec(), whole[10..100].to_vec());
    let r = app
        .http
        .get(&link)
        .header("Range", "bytes=100-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().to_vec(), whole[100..].to_vec());
    let r = app
        .http
        .get(&link)
        .header("Range", format!("bytes={}-", whole.len()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 416);

    let r = app.http.head(&link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], whole.len().to_string());
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let r = app
        .http
        .get(&link)
        .header("If-None-Match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 304);
}

#[tokio::test]
async fn tampered_and_expired_links_are_403_and_need_no_basic_auth() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.create_job(&a, "Calls", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    let (status, body) = app.get(&a, "/v1/Exports/Calls/Days/2024-06-05").await;
    assert_eq!(status, 307);
    let link = body["redirect_to"].as_str().unwrap().to_string();
    let r = app
        .http
        .get(app.url("/v1/Exports/Calls/Days/2024-06-05"))
        .basic_auth(&a.sid, Some(&a.token))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["location"], link.as_str());
    assert!(link.starts_with(&app.base));

    let tampered = link.replace("Calls/2024-06-05", "Calls/2024-06-04");
    let (status, body) = crate::helpers::read(app.http.get(&tampered).send().await.unwrap()).await;
    assert_twilio_error(status, &body, 403, 20403);
    let other = app.account().await;
    let stolen = link.replace(&a.sid, &other.sid);
    assert_eq!(app.http.get(&stolen).send().await.unwrap().status(), 403);
    let no_sig = link.split('?').next().unwrap().to_string();
    assert_eq!(app.http.get(&no_sig).send().await.unwrap().status(), 403);

    app.clock
        .set(app.clock.now() + chrono::Duration::minutes(16))
        .unwrap();
    let (status, body) = crate::helpers::read(app.http.get(&link).send().await.unwrap()).await;
    assert_twilio_error(status, &body, 403, 20403);
    assert!(body["message"].as_str().unwrap().contains("expired"));
}

#[tokio::test]
async fn unknown_malformed_and_foreign_days_are_404() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let b = app.account().await;
    app.create_job(&a, "Calls", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    for path in [
        "/v1/Exports/Calls/Days/2024-06-06",
        "/v1/Exports/Calls/Days/2024-13-01",
        "/v1/Exports/Calls/Days/yesterday",
    ] {
        let (status, body) = app.get(&a, path).await;
        assert_twilio_error(status, &body, 404, 20404);
    }
    let (status, body) = app.get(&b, "/v1/Exports/Calls/Days/2024-06-05").await;
    assert_twilio_error(status, &body, 404, 20404);
    let (status, _) = app.get(&a, "/v1/Exports/Faxes/Days/2024-06-05").await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_removed_file_is_404() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.create_job(&a, "Calls", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    let (_, body) = app.get(&a, "/v1/Exports/Calls/Days/2024-06-05").await;
    let link = body["redirect_to"].as_str().unwrap().to_string();
    let day = app
        .exports
        .db()
        .find_day(&a.sid, "Calls", "2024-06-05", 0)
        .await
        .unwrap()
        .unwrap();
    app.exports.blobs().delete(&day.blob_key).await.unwrap();
    let (status, body) = crate::helpers::read(app.http.get(&link).send().await.unwrap()).await;
    assert_twilio_error(status, &body, 404, 20404);
}

#[tokio::test]
async fn exporting_a_day_again_replaces_it_and_moves_it_last() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.create_job(&a, "Messages", "2024-06-01", "2024-06-03")
        .await;
    app.drain().await;
    let days = |v: &Value| -> Vec<String> {
        v["days"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["day"].as_str().unwrap().to_string())
            .collect()
    };
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    let mut first = days(&list);
    first.sort();
    assert_eq!(first, ["2024-06-01", "2024-06-02", "2024-06-03"]);
    let key = || {
        app.exports
            .db()
            .find_day(&a.sid, "Messages", "2024-06-01", 0)
    };
    let replaced = key().await.unwrap().unwrap().blob_key;

    app.seed(&a, ResourceType::Messages, "2024-06-01", "2024-06-01", 10)
        .await;
    app.create_job(&a, "Messages", "2024-06-01", "2024-06-01")
        .await;
    app.drain().await;
    let (_, list) = app.get(&a, "/v1/Exports/Messages/Days").await;
    let order = days(&list);
    assert_eq!(order.len(), 3);
    assert_eq!(order.last().unwrap(), "2024-06-01");
    assert_eq!(
        gunzip(&app.download(&a, "Messages", "2024-06-01").await)
            .lines()
            .count(),
        10
    );

    // A day later (past the download links of the replaced file and the
    // grace of unpublished ones): the replaced file is removed, the
    // published one stays.
    let published = key().await.unwrap().unwrap().blob_key;
    assert_ne!(published, replaced);
    app.clock
        .set(app.clock.now() + chrono::Duration::hours(25))
        .unwrap();
    app.drain().await;
    assert!(app.exports.blobs().head(&replaced).await.is_err());
    assert!(app.exports.blobs().head(&published).await.is_ok());

    let (_, p1) = app.get(&a, "/v1/Exports/Messages/Days?PageSize=2").await;
    let next = p1["meta"]["next_page_url"].as_str().unwrap().to_string();
    let (_, p2) = app.get(&a, &next).await;
    assert_eq!([days(&p1), days(&p2)].concat(), order);
    assert_eq!(p2["meta"]["next_page_url"], Value::Null);
    // Twilio's "Page size too large", as days.list(limit=401) gets it.
    let (status, body) = app.get(&a, "/v1/Exports/Messages/Days?PageSize=401").await;
    assert_twilio_error(status, &body, 400, 20007);
}

#[tokio::test]
async fn fetch_day_links_to_the_bucket_itself_when_the_store_can_presign() {
    let place = crate::helpers::Place::new().await;
    let s3 = place.is_s3();
    let mut settings = crate::helpers::settings_for(&place, 1);
    settings.presigned_downloads = true;
    let app = TestApp::spawn_with(
        place,
        settings,
        bulkexport::clock::Clock::starting_at(crate::helpers::start_time()),
    )
    .await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Messages, "2024-06-05", "2024-06-05", 20)
        .await;
    app.create_job(&a, "Messages", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    let (status, body) = app.get(&a, "/v1/Exports/Messages/Days/2024-06-05").await;
    assert_eq!(status, 307);
    let link = body["redirect_to"].as_str().unwrap();
    if s3 {
        let endpoint = std::env::var("AWS_ENDPOINT").unwrap();
        assert!(
            link.starts_with(&endpoint),
            "a pre-signed bucket URL: {link}"
        );
        assert!(link.contains("X-Amz-Signature="), "{link}");
    } else {
        assert!(
            link.starts_with(&app.base),
            "local files fall back to the service's own link: {link}"
        );
    }
    let r = app.http.get(link).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("content-encoding").is_none());
    assert_eq!(gunzip(&r.bytes().await.unwrap()).lines().count(), 20);
}

#[tokio::test]
async fn records_of_one_second_are_in_sid_order_and_participants_in_call_sid_order() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let sid = |prefix: &str, n: u32| format!("{prefix}{n:032x}");
    // Three messages of one second, given in reverse SID order, and one of
    // the second before.
    let message = |n: u32, second: u32| {
        format!(
            r#"{{"sid":"{}","account_sid":"{}","date_created":"2024-06-01T10:00:{second:02}Z","status":"delivered","direction":"inbound"}}"#,
            sid("SM", n),
            a.sid
        )
    };
    let messages = [message(3, 7), message(2, 7), message(1, 7), message(9, 6)];
    // Participants of one second: their conferences' order is the reverse of
    // their calls', and a day file orders them by call.
    let participant = |call: u32, conference: u32| {
        format!(
            r#"{{"call_sid":"{}","conference_sid":"{}","account_sid":"{}","date_created":"2024-06-01T10:00:07Z","status":"connected"}}"#,
            sid("CA", call),
            sid("CF", conference),
            a.sid
        )
    };
    let participants = [participant(1, 3), participant(3, 1), participant(2, 2)];
    for (rt, lines, field, prefix, want) in [
        ("Messages", &messages[..], "sid", "SM", &[9, 1, 2, 3][..]),
        (
            "Participants",
            &participants[..],
            "call_sid",
            "CA",
            &[1, 2, 3][..],
        ),
    ] {
        let (status, report) = app.ingest(&a, rt, lines.join("\n")).await;
        assert_eq!(
            (status, report["loaded"].as_u64()),
            (200, Some(lines.len() as u64)),
            "{report}"
        );
        app.create_job(&a, rt, "2024-06-01", "2024-06-01").await;
        app.drain().await;
        let text = gunzip(&app.download(&a, rt, "2024-06-01").await);
        let sids: Vec<String> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()[field]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        let want: Vec<String> = want.iter().map(|&n| sid(prefix, n)).collect();
        assert_eq!(sids, want, "{rt}");
    }
}
