use std::io::Write;

use bulkexport::domain::ResourceType;
use serde_json::json;

use crate::helpers::{gunzip, TestApp, ADMIN};

fn gzip(text: &str) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap()
}

#[tokio::test]
async fn ingest_reports_loaded_replaced_and_rejected_lines() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let other = "AC00000000000000000000000000000000";
    let rest_message = json!({
        "account_sid": a.sid, "api_version": "2010-04-01", "body": "hello", "date_created": "Fri, 07 Jun 2024 10:00:00 +0000",
        "date_sent": "Fri, 07 Jun 2024 10:00:01 +0000", "date_updated": "Fri, 07 Jun 2024 10:00:02 +0000",
        "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+15005550006",
        "messaging_service_sid": null, "num_media": "0", "num_segments": "1", "price": "-0.00750", "price_unit": "USD",
        "sid": "SM00000000000000000000000000000001", "status": "delivered", "subresource_uris": {"media": "/m"},
        "to": "+15005550001", "uri": "/2010-04-01/Accounts/x/Messages/y.json"
    });
    let mut replaced = rest_message.clone();
    replaced["body"] = json!("hello again");
    let lines = [
        rest_message.to_string(),
        "{not json".to_string(),
        json!({"sid": "SM00000000000000000000000000000002", "date_created": "2024-06-07T09:00:00Z", "account_sid": other}).to_string(),
        json!({"date_created": "2024-06-07T09:00:00Z"}).to_string(),
        json!({"sid": "SM00000000000000000000000000000003", "date_created": "the seventh"}).to_string(),
        json!({"sid": "SM00000000000000000000000000000004", "date_created": "2024-06-07T08:00:00Z"}).to_string(),
        replaced.to_string(),
    ];
    let body = gzip(&(lines.join("\n") + "\n"));
    let (status, report) = app.ingest(&a, "Messages", body).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["loaded"], 2, "{report}");
    assert_eq!(report["replaced"], 1, "{report}");
    assert_eq!(report["rejected"], 4, "{report}");
    let rejected_lines: Vec<u64> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(rejected_lines, [2, 3, 4, 5]);
    let reasons: Vec<&str> = report["rejections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["reason"].as_str().unwrap())
        .collect();
    assert!(reasons[0].contains("bad JSON"), "{reasons:?}");
    assert!(reasons[1].contains("account_sid"), "{reasons:?}");
    assert!(reasons[2].contains("missing sid"), "{reasons:?}");
    assert!(reasons[3].contains("date_created"), "{reasons:?}");

    app.create_job(&a, "Messages", "2024-06-07", "2024-06-07")
        .await;
    app.drain().await;
    let text = gunzip(&app.download(&a, "Messages", "2024-06-07").await);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].contains("SM00000000000000000000000000000004"),
        "ordered by date_created"
    );
    assert_eq!(
        lines[1],
        format!(
            r#"{{"body":"hello again","num_segments":1,"direction":"outbound-api","from":"+15005550006","to":"+15005550001","date_updated":"2024-06-07T10:00:02Z","price":"-0.00750","account_sid":"{}","num_media":0,"status":"delivered","messaging_service_sid":null,"sid":"SM00000000000000000000000000000001","date_sent":"2024-06-07T10:00:01Z","date_created":"2024-06-07T10:00:00Z","error_code":0}}"#,
            a.sid
        )
    );
}

#[tokio::test]
async fn ingest_across_several_batches_keeps_the_last_version_of_each_record() {
    // More than two 50,000-record batches, stored while the next is parsed; a
    // record of the first batch is replaced in the last one (an update of a
    // stored row, not an insert), and one is given twice within a batch.
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let line = |i: usize, body: &str| {
        json!({"sid": format!("SM{i:032x}"), "date_created": format!("2024-06-07T{:02}:{:02}:{:02}Z", i / 3600 % 24, i / 60 % 60, i % 60), "body": body}).to_string()
    };
    let mut lines: Vec<String> = (0..110_000).map(|i| line(i, "first")).collect();
    lines.insert(60_001, line(60_000, "second"));
    // Refused in the third batch, which reuses the records of the first.
    lines.insert(
        105_000,
        r#"{"sid": "SM1", "date_created": "2024-06-07T00:00:00Z"}"#.into(),
    );
    lines.push(line(7, "last"));
    let (status, report) = app.ingest(&a, "Messages", lines.join("\n")).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["loaded"], 110_000, "{report}");
    assert_eq!(report["replaced"], 2, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["rejections"][0]["line"], 105_001, "{report}");
    app.create_job(&a, "Messages", "2024-06-07", "2024-06-07")
        .await;
    app.drain().await;
    let text = gunzip(&app.download(&a, "Messages", "2024-06-07").await);
    assert_eq!(text.lines().count(), 110_000);
    let body_of = |i: usize| {
        let sid = format!("SM{i:032x}");
        let found: Vec<&str> = text.lines().filter(|l| l.contains(&sid)).collect();
        assert_eq!(found.len(), 1, "{sid}: {found:?}");
        serde_json::from_str::<serde_json::Value>(found[0]).unwrap()["body"].clone()
    };
    assert_eq!(body_of(7), "last");
    assert_eq!(body_of(60_000), "second");
    assert_eq!(body_of(8), "first");
}

#[tokio::test]
async fn concurrent_ingests_of_the_same_records_leave_one_of_each() {
    // Nothing but the writers' lock on the record set keeps a key unique on
    // PostgreSQL (its key index is a hash index): four loads of the same
    // 20,000 records at once store each record once.
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let body = |version: usize| {
        (0..20_000)
            .map(|i| json!({"sid": format!("SM{i:032x}"), "date_created": "2024-06-08T10:00:00Z", "body": format!("v{version}")}).to_string())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let loads = (0..4).map(|v| app.ingest(&a, "Messages", body(v)));
    let reports = futures::future::join_all(loads).await;
    let (mut loaded, mut replaced) = (0, 0);
    for (status, report) in &reports {
        assert_eq!(*status, 200, "{report}");
        loaded += report["loaded"].as_u64().unwrap();
        replaced += report["replaced"].as_u64().unwrap();
    }
    assert_eq!((loaded, replaced), (20_000, 60_000), "{reports:?}");
    app.create_job(&a, "Messages", "2024-06-08", "2024-06-08")
        .await;
    app.drain().await;
    let text = gunzip(&app.download(&a, "Messages", "2024-06-08").await);
    assert_eq!(text.lines().count(), 20_000);
}

#[tokio::test]
async fn ingest_reads_lines_split_across_the_pieces_of_a_body() {
    // Lines come in 7-byte pieces, so nearly every line spans several; CRLF
    // endings, a blank line, a line that is not UTF-8 and a last line
    // without a newline are each taken as in one piece.
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let line = |i: usize| {
        json!({"sid": format!("SM{i:032x}"), "date_created": format!("2024-06-07T00:00:{i:02}Z"), "body": "é"}).to_string()
    };
    let mut body: Vec<u8> = Vec::new();
    for i in 0..20 {
        body.extend_from_slice(line(i).as_bytes());
        body.extend_from_slice(if i % 2 == 0 { b"\r\n" } else { b"\n" });
    }
    body.extend_from_slice(b"\n{\"sid\": \"\xff\"}\n");
    body.extend_from_slice(line(20).as_bytes());
    let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(7).map(|c| Ok(c.to_vec())).collect();
    let (status, report) = app
        .ingest(
            &a,
            "Messages",
            reqwest::Body::wrap_stream(futures::stream::iter(pieces)),
        )
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["loaded"], 21, "{report}");
    assert_eq!(report["rejected"], 1, "{report}");
    assert_eq!(report["rejections"][0]["line"], 22, "{report}");
    assert_eq!(
        report["rejections"][0]["reason"], "not valid UTF-8",
        "{report}"
    );
    app.create_job(&a, "Messages", "2024-06-07", "2024-06-07")
        .await;
    app.drain().await;
    let text = gunzip(&app.download(&a, "Messages", "2024-06-07").await);
    let sids: Vec<String> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["sid"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let expected: Vec<String> = (0..21).map(|i| format!("SM{i:032x}")).collect();
    assert_eq!(sids, expected);
    assert!(text.lines().all(|l| l.contains(r#""body":"é""#)), "{text}");
}

#[tokio::test]
async fn ingest_of_unknown_account_or_type_is_refused() {
    let app = TestApp::spawn().await;
    let r = app
        .http
        .post(app.url("/admin/v1/Accounts/AC00000000000000000000000000000000/Records/Messages"))
        .bearer_auth(ADMIN)
        .body("{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let a = app.account().await;
    let r = app
        .http
        .post(app.url(&format!("/admin/v1/Accounts/{}/Records/Faxes", a.sid)))
        .bearer_auth(ADMIN)
        .body("{}\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn seeding_is_deterministic_and_idempotent() {
    let app = TestApp::spawn().await;
    let a = app.account().await;
    app.seed(&a, ResourceType::Calls, "2024-06-01", "2024-06-02", 30)
        .await;
    app.seed(&a, ResourceType::Calls, "2024-06-01", "2024-06-02", 30)
        .await;
    let n = app
        .exports
        .db()
        .count_records(&a.sid, ResourceType::Calls, "2024-06-01".parse_day())
        .await
        .unwrap();
    assert_eq!(n, 30);
}

trait ParseDay {
    fn parse_day(&self) -> bulkexport::domain::Day;
}

impl ParseDay for &str {
    fn parse_day(&self) -> bulkexport::domain::Day {
        bulkexport::domain::Day::parse(self).unwrap()
    }
}

#[tokio::test]
async fn a_load_finds_the_records_another_writer_stored_between_its_batches() {
    // A load into an empty set looks up only the keys it stored itself (on
    // PostgreSQL, see src/db/records/parts.rs) until another writer stores
    // records in the set between two of its batches. Keys of both parts.
    use bulkexport::db::StoreOutcome::{Loaded, Replaced};
    let app = TestApp::spawn().await;
    let a = app.account().await;
    let record = |n: u64, body: &str| {
        let sid = format!("SM{:032x}", (n << 32) | n); // the part: n's lowest bit
        bulkexport::domain::record::Record {
            key: sid.clone(),
            day: bulkexport::domain::Day::parse("2024-06-05").unwrap(),
            sort_key: format!("2024-06-05T00:00:{n:02}Z|{sid}"),
            line: json!({"sid": sid, "body": body}).to_string(),
        }
    };
    let db = app.exports.db();
    let mut load = db
        .record_writer(&a.sid, ResourceType::Messages)
        .await
        .unwrap();
    let mut other = db
        .record_writer(&a.sid, ResourceType::Messages)
        .await
        .unwrap();
    let first = load
        .store((0..4).map(|n| record(n, "load")).collect())
        .await
        .unwrap();
    assert_eq!(first, [Loaded; 4]);
    let again = load
        .store(vec![record(1, "load again"), record(4, "load")])
        .await
        .unwrap();
    assert_eq!(
        again,
        [Replaced, Loaded],
        "its own records, stored in an earlier batch"
    );
    let batch = |of: &[(u64, &str)]| of.iter().map(|&(n, body)| record(n, body)).collect();
    let others = other.store(batch(&[(5, "other"), (6, "other"), (2, "other")]));
    assert_eq!(others.await.unwrap(), [Loaded, Loaded, Replaced]);
    let last = load.store(batch(&[(5, "load"), (6, "load"), (7, "load")]));
    let last = last.await.unwrap();
    assert_eq!(
        last,
        [Replaced, Replaced, Loaded],
        "the other writer's records are found"
    );
    other.finish().await.unwrap();
    load.finish().await.unwrap();
    app.create_job(&a, "Messages", "2024-06-05", "2024-06-05")
        .await;
    app.drain().await;
    let text = gunzip(&app.download(&a, "Messages", "2024-06-05").await);
    let bodies: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["body"].to_string())
        .collect();
    assert_eq!(
        bodies,
        [
            "load",
            "load again",
            "other",
            "load",
            "load",
            "load",
            "load",
            "load"
        ]
        .map(|b| format!("{b:?}")),
        "one line a record, the last stored"
    );
}
