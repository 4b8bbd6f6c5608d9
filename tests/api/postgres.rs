//! What only PostgreSQL has: its migrations of stored records.

use crate::helpers::*;
use bulkexport::clock::Clock;

#[tokio::test]
async fn records_stored_before_record_sets_move_into_them_with_their_flags() {
    if std::env::var("BULKEXPORT_TEST_POSTGRES_URL").is_err() {
        return; // PostgreSQL's run of the test command covers this
    }
    let place = Place::new().await;
    let url = place.database_url.clone().unwrap();
    // The schema as it was before migration 0007, with records in it.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let mut before = sqlx::migrate!("./migrations/postgres");
    before.migrations = before
        .migrations
        .iter()
        .filter(|m| m.version < 7)
        .cloned()
        .collect::<Vec<_>>()
        .into();
    before.run(&pool).await.unwrap();
    let (part_1, part_0) = (
        format!("CA{}", "B".repeat(32)),
        format!("CA{}", "c".repeat(32)),
    );
    let rows = [
        ("AC1", "Calls", "CA01", "2024-06-01", false),
        ("AC1", "Calls", "CA02", "2024-06-01", true),
        ("AC1", "Messages", "SM01", "2024-06-02", false),
        ("AC2", "Calls", "CA01", "2024-06-01", false),
        // Keys of either part (migration 0017), as in the unit test
        // `a_key_belongs_to_the_part_of_the_lowest_bit_of_its_hash`.
        ("AC1", "Calls", part_1.as_str(), "2024-06-01", false),
        ("AC1", "Calls", part_0.as_str(), "2024-06-01", false),
        (
            "AC1",
            "Calls",
            "1\u{e9}\u{e9}\u{e9}\u{e9}",
            "2024-06-01",
            false,
        ),
    ];
    for (account, rt, key, day, deleted) in rows {
        sqlx::query(
            "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line, export_deleted) \
             VALUES ($1, $2, $3, $4, $3, $1 || $3, $5)",
        )
        .bind(account)
        .bind(rt)
        .bind(key)
        .bind(day)
        .bind(deleted)
        .execute(&pool)
        .await
        .unwrap();
    }
    // Sort keys as the service writes them start with the record's time
    // (migration 0016 reads its second from there); the others above are bare.
    sqlx::query(
        "UPDATE records SET sort_key = '2024-06-01T01:02:03Z|CA02' WHERE record_key = 'CA02'",
    )
    .execute(&pool)
    .await
    .unwrap();
    // The service migrates the rest of the way as it starts.
    let settings = settings_for(&place, 0);
    let _app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let moved: Vec<(String, String, String, String, bool, String)> = sqlx::query_as(
        // Lines now kept in segments (migration 0015), those moved there in
        // the plain format: a zero byte, then each line and a newline.
        "SELECT s.account_sid, s.resource_type, r.record_key, \
         to_char(to_timestamp(r.at) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), r.export_deleted, \
         split_part(convert_from(substring(l.data FROM 2), 'UTF8'), E'\\n', r.ord + 1) \
         FROM records r JOIN record_sets s ON s.id = r.set_id JOIN line_segments l ON l.id = r.seg \
         WHERE get_byte(l.data, 0) = 0 ORDER BY 1, 2, 3",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut expected: Vec<(String, String, String, String, bool, String)> = rows
        .iter()
        .map(|(a, rt, k, d, del)| {
            (
                a.to_string(),
                rt.to_string(),
                k.to_string(),
                d.to_string(),
                *del,
                format!("{a}{k}"),
            )
        })
        .collect();
    expected.sort();
    assert_eq!(moved, expected);
    let parts: Vec<(String, i16)> =
        sqlx::query_as("SELECT record_key, part FROM records ORDER BY record_key, part")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut expected: Vec<(String, i16)> = [
        ("CA01", 0),
        ("CA01", 0),
        ("CA02", 0),
        ("SM01", 0),
        (part_1.as_str(), 1),
        (part_0.as_str(), 0),
        ("1\u{e9}\u{e9}\u{e9}\u{e9}", 1),
    ]
    .iter()
    .map(|(k, p)| (k.to_string(), *p))
    .collect();
    expected.sort();
    assert_eq!(parts, expected);
    let seconds: Vec<(String, i64)> = sqlx::query_as(
        "SELECT record_key, at FROM records WHERE length(record_key) = 4 ORDER BY record_key, at",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let june_1 = 1_717_200_000; // 2024-06-01T00:00:00Z
    assert_eq!(
        seconds,
        [
            ("CA01".to_string(), june_1),
            ("CA01".to_string(), june_1),
            ("CA02".to_string(), june_1 + 3723),
            ("SM01".to_string(), june_1 + 86_400),
        ]
    );
    let sets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM record_sets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sets, 3);
}

/// A segment's lines as stored (see src/db/records/segments.rs): the plain
/// format, or an LZ4 block after its size.
fn segment_text(data: &[u8]) -> String {
    let raw = match data[0] {
        0 => data[1..].to_vec(),
        1 => {
            let size = u32::from_le_bytes(data[1..5].try_into().unwrap()) as usize;
            lz4_flex::block::decompress(&data[5..], size).unwrap()
        }
        other => panic!("a segment of format {other}"),
    };
    String::from_utf8(raw).unwrap()
}

#[tokio::test]
async fn replaced_lines_leave_their_segments_and_empty_segments_go() {
    if std::env::var("BULKEXPORT_TEST_POSTGRES_URL").is_err() {
        return; // PostgreSQL's run of the test command covers this
    }
    let app = TestApp::spawn().await;
    let pool = sqlx::PgPool::connect(app.place.database_url.as_deref().unwrap())
        .await
        .unwrap();
    let a = app.account().await;
    let line = |n: u32, body: &str| {
        format!(
            r#"{{"sid":"SM{n:032x}","account_sid":"{}","date_created":"2024-06-01T00:00:{n:02}Z","body":"{body}","status":"delivered","direction":"inbound","num_segments":"1","num_media":"0"}}"#,
            a.sid
        )
    };
    let all: String = (0..3).map(|n| line(n, "first words") + "\n").collect();
    let (status, report) = app.ingest(&a, "Messages", all.clone()).await;
    assert_eq!(
        (status, report["loaded"].as_u64()),
        (200, Some(3)),
        "{report}"
    );
    let segments = || async {
        let rows: Vec<(i32, i32, Vec<u8>)> =
            sqlx::query_as("SELECT lines, dead, data FROM line_segments ORDER BY id")
                .fetch_all(&pool)
                .await
                .unwrap();
        rows.into_iter()
            .map(|(lines, dead, data)| (lines, dead, segment_text(&data)))
            .collect::<Vec<_>>()
    };
    let before = segments().await;
    assert!(before.iter().all(|(_, dead, _)| *dead == 0), "{before:?}");
    assert!(before
        .iter()
        .any(|(_, _, text)| text.contains("first words")));

    // One record replaced: its old line is emptied where it was kept.
    let (status, report) = app.ingest(&a, "Messages", line(1, "second words")).await;
    assert_eq!(
        (status, report["replaced"].as_u64()),
        (200, Some(1)),
        "{report}"
    );
    let after = segments().await;
    let old_lines: Vec<&str> = after
        .iter()
        .flat_map(|(_, _, text)| text.lines())
        .filter(|l| l.contains("SM00000000000000000000000000000001"))
        .collect();
    assert_eq!(old_lines.len(), 1, "{after:?}");
    assert!(old_lines[0].contains("second words"), "{old_lines:?}");
    assert_eq!(after.iter().map(|(_, dead, _)| dead).sum::<i32>(), 1);

    // All of them replaced: the segments left with no live line are deleted.
    let (status, report) = app.ingest(&a, "Messages", all).await;
    assert_eq!(
        (status, report["replaced"].as_u64()),
        (200, Some(3)),
        "{report}"
    );
    let last = segments().await;
    let live: i32 = last.iter().map(|(lines, dead, _)| lines - dead).sum();
    assert_eq!(live, 3, "{last:?}");
    assert!(
        !last
            .iter()
            .any(|(_, _, text)| text.contains("second words")),
        "{last:?}"
    );
    assert!(last.iter().all(|(lines, dead, _)| dead < lines), "{last:?}");
}
