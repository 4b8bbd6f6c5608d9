//! Tests of the record writer and the day scan, on SQLite.

use super::*;

fn message(n: u32, body: &str) -> Record {
    Record {
        key: format!("SM{n:032x}"),
        day: Day::parse("2024-06-01").unwrap(),
        sort_key: format!("2024-06-01T00:00:00Z|SM{n:032x}"),
        line: format!("{{\"sid\":\"SM{n:032x}\",\"body\":\"{body}\"}}"),
    }
}

/// The pool of a SQLite `db`, for a test's own statements.
fn sqlite_pool(db: &Db) -> &sqlx::SqlitePool {
    match &db.pool {
        super::super::Pool::Sqlite(p) => p,
        super::super::Pool::Postgres(_) => unreachable!("a SQLite database"),
    }
}

/// A writer of account AC1's Messages.
async fn messages_writer(db: &Db) -> RecordWriter {
    db.record_writer("AC1", ResourceType::Messages)
        .await
        .unwrap()
}

/// A migrated SQLite database in a directory that lives as long as the
/// returned guard.
async fn migrated_sqlite() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::connect(&format!("sqlite://{}/t.db", dir.path().display()))
        .await
        .unwrap();
    db.migrate().await.unwrap();
    (dir, db)
}

/// The day's lines, read the way an export reads them.
fn day_lines(file: &std::path::Path, day: Day) -> Vec<String> {
    let mut lines = Vec::new();
    scan_day_sqlite(file, "AC1", ResourceType::Messages, day, 1, |c| {
        lines.push(String::from_utf8(c).unwrap());
        true
    })
    .unwrap();
    lines
}

/// What the pool (any other connection) sees of the day.
async fn stored(db: &Db) -> i64 {
    let day = Day::parse("2024-06-01").unwrap();
    db.count_records("AC1", ResourceType::Messages, day)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_sqlite_writer_reports_records_as_it_commits_them_and_a_dropped_one_keeps_only_those() {
    use StoreOutcome::{Loaded, Replaced};
    let (_dir, db) = migrated_sqlite().await;
    let mut w = messages_writer(&db).await;
    let Target::Sqlite(Some(load)) = &mut w.target else {
        panic!("a SQLite database gets a SQLite writer");
    };
    load.commit_every = 4;

    assert_eq!(w.store(vec![]).await.unwrap(), vec![]);
    let first = w.store(vec![message(1, "a"), message(2, "a")]).await;
    assert_eq!(first.unwrap(), vec![], "nothing committed yet");
    assert_eq!(stored(&db).await, 0, "other connections see nothing yet");

    // Reaching four records commits both batches and reports them; a key
    // stored earlier in the open transaction counts as replaced.
    let second = w.store(vec![message(2, "b"), message(3, "b")]).await;
    assert_eq!(second.unwrap(), vec![Loaded, Loaded, Replaced, Loaded]);
    assert_eq!(stored(&db).await, 3);

    let third = w.store(vec![message(4, "c"), message(1, "c")]).await;
    assert_eq!(third.unwrap(), vec![], "below the threshold again");
    drop(w);
    assert_eq!(
        stored(&db).await,
        3,
        "a dropped writer's open transaction is rolled back"
    );

    let mut w = messages_writer(&db).await;
    w.group_commits();
    let fourth = w.store(vec![message(4, "d"), message(1, "d")]).await;
    assert_eq!(fourth.unwrap(), vec![]);
    assert_eq!(
        w.finish().await.unwrap(),
        vec![Loaded, Replaced],
        "finish commits the rest"
    );
    assert_eq!(stored(&db).await, 4);

    // Without grouped commits, each batch commits on its own.
    let mut w = messages_writer(&db).await;
    let fifth = w.store(vec![message(5, "e"), message(2, "e")]).await;
    assert_eq!(fifth.unwrap(), vec![Loaded, Replaced]);
    assert_eq!(stored(&db).await, 5, "committed before finish");
    assert_eq!(w.finish().await.unwrap(), vec![]);
    let file = db.sqlite_file().unwrap();
    let day = Day::parse("2024-06-01").unwrap();
    let lines = day_lines(&file, day);
    let bodies: Vec<&str> = lines.iter().map(|l| &l[l.len() - 4..l.len() - 3]).collect();
    assert_eq!(
        bodies,
        ["d", "e", "b", "d", "e"],
        "the last version of each record"
    );

    // A key repeated in a batch is loaded by its first occurrence and
    // left holding its last; outcomes come back in batch order.
    let mut w = messages_writer(&db).await;
    let sixth = w
        .store(vec![message(7, "f"), message(7, "g"), message(6, "f")])
        .await;
    assert_eq!(sixth.unwrap(), vec![Loaded, Replaced, Loaded]);
    w.finish().await.unwrap();
    let lines = day_lines(&file, day);
    assert_eq!(lines.len(), 7);
    assert!(lines[6].contains(&format!("SM{:032x}\",\"body\":\"g", 7)));
}

/// Two SIDs of `prefix` whose hashes are equal: they differ only in hex
/// digits the hash leaves out.
fn colliding(prefix: &str) -> (String, String) {
    let a = format!("{prefix}0123456700000000cafebabe00000000");
    let b = format!("{prefix}01234567ffffffffcafebabe12345678");
    assert_eq!(key_hash(&a), key_hash(&b));
    (a, b)
}

fn record(key: &str, body: &str) -> Record {
    Record {
        key: key.to_string(),
        day: Day::parse("2024-06-01").unwrap(),
        sort_key: format!("2024-06-01T00:00:00Z|{key}"),
        line: format!("{{\"sid\":\"{key}\",\"body\":\"{body}\"}}"),
    }
}

#[test]
fn the_hash_takes_both_halves_of_a_sid_and_both_sids_of_a_participant() {
    assert_eq!(
        key_hash("SM0123456789abcdefABCDEF0123456789") as u64,
        0x0123_4567_abcd_ef01,
        "upper-case hex counts as lower-case"
    );
    let participant = format!(
        "CF00000001{}/CA{}00000002{}",
        "0".repeat(24),
        "0".repeat(16),
        "0".repeat(8)
    );
    assert_eq!(key_hash(&participant) as u64, 0x0000_0001_0000_0002);
    assert_eq!(key_hash("") as u64, 0, "short keys are hashed too");
}

/// Keys and their parts on PostgreSQL (`postgres::part_of`); the migration
/// test in tests/api/postgres.rs checks that migration 0017 computes the same.
#[test]
fn a_key_belongs_to_the_part_of_the_lowest_bit_of_its_hash() {
    let cases = [
        ("CA01".to_string(), 0), // shorter than 9 bytes
        (format!("CA{}", "1".repeat(32)), 1),
        (format!("CA{}", "2".repeat(32)), 0),
        (format!("CA{}", "B".repeat(32)), 1), // upper-case hex
        (format!("CA{}", "c".repeat(32)), 0),
        (format!("SM{}", "z".repeat(32)), 1), // not hex: 15
        ("1\u{e9}\u{e9}\u{e9}\u{e9}".to_string(), 1), // 9 bytes, 5 characters
    ];
    for (key, part) in cases {
        assert_eq!(part_of(&key), part, "{key}");
    }
}

/// Two calls whose keys share a hash, stored with these bodies.
async fn stored_calls(db: &Db, bodies: [&str; 2]) -> (String, String) {
    let (c, d) = colliding("CA");
    let mut w = db.record_writer("AC1", ResourceType::Calls).await.unwrap();
    w.store(vec![record(&c, bodies[0]), record(&d, bodies[1])])
        .await
        .unwrap();
    w.finish().await.unwrap();
    (c, d)
}

#[tokio::test]
async fn keys_that_share_a_hash_are_stored_and_replaced_apart() {
    use StoreOutcome::{Loaded, Replaced};
    let (_dir, db) = migrated_sqlite().await;
    let (a, b) = colliding("SM");
    let mut w = messages_writer(&db).await;
    let first = w.store(vec![record(&a, "1"), record(&b, "1")]).await;
    assert_eq!(first.unwrap(), vec![Loaded, Loaded]);
    let again = w.store(vec![record(&b, "2"), record(&a, "2")]).await;
    assert_eq!(again.unwrap(), vec![Replaced, Replaced]);
    w.finish().await.unwrap();
    // A new writer finds the key stored without a hash.
    let mut w = messages_writer(&db).await;
    let third = w.store(vec![record(&b, "3")]).await;
    assert_eq!(third.unwrap(), vec![Replaced]);
    w.finish().await.unwrap();
    let lines = day_lines(
        &db.sqlite_file().unwrap(),
        Day::parse("2024-06-01").unwrap(),
    );
    assert_eq!(lines.len(), 2);
    assert!(lines
        .iter()
        .any(|l| l.contains(&a) && l.contains("\"body\":\"2")));
    assert!(lines
        .iter()
        .any(|l| l.contains(&b) && l.contains("\"body\":\"3")));

    // Calls are found, hidden and deleted by their own key.
    let (c, d) = stored_calls(&db, ["c", "d"]).await;
    let found = db.find_call("AC1", &d).await.unwrap().unwrap();
    assert!(found.line.contains(&d));
    db.hide_call_resource("AC1", &d).await.unwrap();
    assert!(db.find_call("AC1", &d).await.unwrap().unwrap().rest_deleted);
    assert!(!db.find_call("AC1", &c).await.unwrap().unwrap().rest_deleted);
    let other = colliding("CA").0.replace("cafebabe", "cafebab0");
    assert!(db.find_call("AC1", &other).await.unwrap().is_none());
}

/// A load of records stored before replaces them many rows at a time; a
/// record given twice is replaced twice, the later last, and each old
/// line is freed once.
#[tokio::test]
async fn a_reload_replaces_rows_many_at_a_time() {
    let (_dir, db) = migrated_sqlite().await;
    let mut w = messages_writer(&db).await;
    let first: Vec<Record> = (0..300).map(|n| spread(n, "1")).collect();
    w.store(first).await.unwrap();
    let mut again: Vec<Record> = (0..300).map(|n| spread(n, "2")).collect();
    again.insert(160, spread(150, "3")); // in the statement of its first time
    again.insert(200, spread(5, "3")); // in a later one
    let outcomes = w.store(again).await.unwrap();
    assert_eq!(outcomes, vec![StoreOutcome::Replaced; 302]);
    w.finish().await.unwrap();
    let lines = day_lines(
        &db.sqlite_file().unwrap(),
        Day::parse("2024-06-01").unwrap(),
    );
    assert_eq!(lines.len(), 300);
    for n in [5, 150] {
        let found: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(&spread(n, "").key))
            .collect();
        assert_eq!(found.len(), 1);
        assert!(found[0].contains("\"body\":\"3"), "{found:?}");
    }
    assert_eq!(
        lines.iter().filter(|l| l.contains("\"body\":\"2")).count(),
        298
    );
    assert_eq!(db.line_garbage().await.unwrap(), 302);
}

/// Of two new keys with one hash in a batch, the first takes the hash;
/// the second, given twice, is stored once, without it, and replaced.
#[tokio::test]
async fn a_key_without_a_hash_given_twice_in_one_batch_is_stored_once() {
    use StoreOutcome::{Loaded, Replaced};
    let (_dir, db) = migrated_sqlite().await;
    let (a, b) = colliding("SM");
    let mut w = messages_writer(&db).await;
    let batch = vec![record(&a, "1"), record(&b, "1"), record(&b, "2")];
    assert_eq!(
        w.store(batch).await.unwrap(),
        vec![Loaded, Loaded, Replaced]
    );
    let again = w.store(vec![record(&b, "3"), record(&a, "3")]).await;
    assert_eq!(again.unwrap(), vec![Replaced, Replaced]);
    w.finish().await.unwrap();
    let lines = day_lines(
        &db.sqlite_file().unwrap(),
        Day::parse("2024-06-01").unwrap(),
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines.iter().all(|l| l.contains("\"body\":\"3")));
    let keys: Vec<(Option<i64>, String)> = sqlx::query_as(
        "SELECT k.key_hash, r.record_key FROM records r LEFT JOIN record_keys k ON k.row = r.rowid \
         ORDER BY r.rowid",
    )
    .fetch_all(sqlite_pool(&db))
    .await
    .unwrap();
    assert_eq!(keys, vec![(Some(key_hash(&a)), a), (None, b)]);
}

/// A message whose key's hash is `n` (in its first half).
fn spread(n: u32, body: &str) -> Record {
    record(&format!("SM{n:08x}{}{n:08x}", "0".repeat(16)), body)
}

/// The day as an export reads it, in chunks of at least `chunk_bytes`.
fn day_text(file: &std::path::Path, chunk_bytes: usize) -> String {
    let mut text = String::new();
    let day = Day::parse("2024-06-01").unwrap();
    scan_day_sqlite(file, "AC1", ResourceType::Messages, day, chunk_bytes, |c| {
        text.push_str(std::str::from_utf8(&c).unwrap());
        true
    })
    .unwrap();
    text
}

fn segment_bytes(file: &std::path::Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(Lines::beside(file).dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "seg") {
            all.extend(std::fs::read(path).unwrap());
        }
    }
    all
}

fn count(haystack: &[u8], needle: &str) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// Rows go in many at a time; what each record did, and what is stored,
/// is what storing them one at a time gives: new keys, known keys, a key
/// twice in one statement, and a key whose hash another key holds. The
/// lines of replaced records are erased by a sweep, but not while a
/// reader that could still see them holds the lock; rows that keep their
/// line (stored before segments) are read in their place.
#[tokio::test]
async fn rows_stored_many_at_a_time_match_one_at_a_time_and_dead_lines_are_swept() {
    use StoreOutcome::{Loaded, Replaced};
    let (_dir, db) = migrated_sqlite().await;
    let file = db.sqlite_file().unwrap();
    let (a, b) = colliding("SM");
    let mut w = messages_writer(&db).await;
    let mut first: Vec<Record> = (0..300).map(|n| spread(n, "1")).collect();
    first.insert(10, record(&a, "1"));
    let stored = w.store(first).await.unwrap();
    assert_eq!(stored, vec![Loaded; 301]);
    let mut second: Vec<Record> = (150..450).map(|n| spread(n, "2")).collect();
    second.insert(60, spread(200, "2b")); // 200 again, in the same statement
    second.insert(70, record(&b, "2")); // a's hash, another key
    let mut expected = vec![Replaced; 150];
    expected.extend(vec![Loaded; 150]);
    expected.insert(60, Replaced);
    expected.insert(70, Loaded);
    assert_eq!(w.store(second).await.unwrap(), expected);
    w.finish().await.unwrap();

    // A row stored before segments existed keeps its line in the row.
    let inline_key = format!("SM{:08x}{}{:08x}a", 100, "0".repeat(16), 100);
    sqlx::query(
        "INSERT INTO records (set_id, key_hash, record_key, day, sort_key, line) \
         SELECT id, NULL, $1, '2024-06-01', $2, $3 FROM record_sets WHERE account_sid = 'AC1'",
    )
    .bind(&inline_key)
    .bind(format!("2024-06-01T00:00:00Z|{inline_key}"))
    .bind(format!("{{\"sid\":\"{inline_key}\",\"inline\":true}}"))
    .execute(sqlite_pool(&db))
    .await
    .unwrap();

    let text = day_text(&file, 1);
    assert_eq!(
        text,
        day_text(&file, 1 << 20),
        "ranges read whole give the same bytes"
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 450 + 2 + 1);
    let body_of = |key: &str| {
        let line = lines
            .iter()
            .find(|l| l.contains(&format!("\"{key}\"")))
            .unwrap();
        line.split("\"body\":\"")
            .nth(1)
            .map(|b| b.trim_end_matches("\"}").to_string())
    };
    assert_eq!(body_of(&spread(149, "").key).as_deref(), Some("1"));
    assert_eq!(body_of(&spread(150, "").key).as_deref(), Some("2"));
    assert_eq!(
        body_of(&spread(200, "").key).as_deref(),
        Some("2b"),
        "the later 200 wins"
    );
    assert_eq!(body_of(&a).as_deref(), Some("1"));
    assert_eq!(body_of(&b).as_deref(), Some("2"));
    let inline_at = lines
        .iter()
        .position(|l| l.contains("\"inline\":true"))
        .unwrap();
    assert!(lines[inline_at - 1].contains(&spread(100, "").key));

    // The 150 lines replaced, and the earlier 200 of the second batch, are dead.
    assert_eq!(db.line_garbage().await.unwrap(), 151);
    let old = format!("\"sid\":\"{}\",\"body\":\"1\"", spread(150, "").key);
    assert_eq!(count(&segment_bytes(&file), &old), 1);
    let reading = Lines::beside(&file).reader().unwrap();
    assert_eq!(
        db.sweep_lines().await.unwrap(),
        0,
        "a reader holds the lock"
    );
    assert_eq!(db.line_garbage().await.unwrap(), 151);
    drop(reading);
    assert_eq!(db.sweep_lines().await.unwrap(), 151);
    assert_eq!(db.line_garbage().await.unwrap(), 0);
    let segments = segment_bytes(&file);
    assert_eq!(count(&segments, &old), 0, "the replaced line is erased");
    let earlier_200 = format!("\"sid\":\"{}\",\"body\":\"2\"", spread(200, "").key);
    assert_eq!(count(&segments, &earlier_200), 0);
    assert_eq!(count(&segments, "\"body\":\"2b\""), 1);
    assert_eq!(day_text(&file, 1 << 20), text, "live lines are untouched");
}

/// A call removed by a deletion leaves nothing of its line once swept.
#[tokio::test]
async fn a_deleted_calls_line_is_erased_by_the_sweep() {
    let (_dir, db) = migrated_sqlite().await;
    let (c, d) = stored_calls(&db, ["kept", "secret"]).await;
    let file = db.sqlite_file().unwrap();
    assert_eq!(count(&segment_bytes(&file), &d), 1);
    let deletion = super::super::DeletionRow {
        account_sid: "AC1".into(),
        call_sid: d.clone(),
        source: "archive".into(),
        day: "2024-06-01".into(),
        requested_at: 0,
        applied_at: None,
        outcome: None,
    };
    db.apply_deletion(&deletion, true, "deleted", 1)
        .await
        .unwrap();
    assert!(db.find_call("AC1", &d).await.unwrap().is_none());
    assert_eq!(db.sweep_lines().await.unwrap(), 1);
    let segments = segment_bytes(&file);
    assert_eq!(count(&segments, &d), 0);
    assert_eq!(count(&segments, "secret"), 0);
    assert!(db
        .find_call("AC1", &c)
        .await
        .unwrap()
        .unwrap()
        .line
        .contains("kept"));

    // The hashed call goes too, and its key with it: loaded again, it is new.
    let deletion = super::super::DeletionRow {
        call_sid: c.clone(),
        ..deletion
    };
    db.apply_deletion(&deletion, true, "deleted", 2)
        .await
        .unwrap();
    let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM record_keys")
        .fetch_one(sqlite_pool(&db))
        .await
        .unwrap();
    assert_eq!(keys, 0);
    let mut w = db.record_writer("AC1", ResourceType::Calls).await.unwrap();
    let stored = w.store(vec![record(&c, "back")]).await.unwrap();
    assert_eq!(stored, vec![StoreOutcome::Loaded]);
    w.finish().await.unwrap();
    let found = db.find_call("AC1", &c).await.unwrap().unwrap();
    assert!(found.line.contains("back"));
}

/// Migration 0007 moves the rows of the text-keyed table and computes in
/// SQL the hash [`key_hash`] computes; of two keys with one hash, one
/// keeps it and the other is stored without. Migration 0009 moves the
/// hashes to `record_keys`.
#[test]
fn the_migration_keeps_every_record_and_hashes_keys_as_the_writer_does() {
    let conn = rusqlite::Connection::open_in_memory().unwrap();
    for sql in [
        include_str!("../../../migrations/sqlite/0001_init.sql"),
        include_str!("../../../migrations/sqlite/0002_counters.sql"),
        include_str!("../../../migrations/sqlite/0003_deliveries.sql"),
        include_str!("../../../migrations/sqlite/0004_daily_exports.sql"),
        include_str!("../../../migrations/sqlite/0005_users.sql"),
        include_str!("../../../migrations/sqlite/0006_call_deletions.sql"),
    ] {
        conn.execute_batch(sql).unwrap();
    }
    let (a, b) = colliding("SM");
    let rows = [
        ("AC1", "Messages", a.clone(), false),
        ("AC1", "Messages", b.clone(), false),
        (
            "AC1",
            "Messages",
            "SM0123456789ABCDEF0123456789abcdef".to_string(),
            false,
        ),
        ("AC2", "Messages", a.clone(), false),
        (
            "AC1",
            "Calls",
            "CA00000000111111112222222233333333".to_string(),
            true,
        ),
        (
            "AC1",
            "Participants",
            "CF0123456789abcdef0123456789abcdef/CAfedcba9876543210fedcba9876543210".to_string(),
            false,
        ),
    ];
    for (account, rt, key, deleted) in &rows {
        conn.execute(
            "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line, export_deleted) \
             VALUES (?1, ?2, ?3, '2024-06-01', ?3, ?3, ?4)",
            (account, rt, key, deleted),
        )
        .unwrap();
    }
    conn.execute_batch(include_str!(
        "../../../migrations/sqlite/0007_record_sets.sql"
    ))
    .unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT s.account_sid, s.resource_type, r.record_key, r.key_hash, r.export_deleted, r.line \
             FROM records r JOIN record_sets s ON s.id = r.set_id",
        )
        .unwrap();
    let moved: Vec<(String, String, String, Option<i64>, bool, String)> = stmt
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(moved.len(), rows.len());
    for (account, rt, key, deleted) in &rows {
        let m = moved
            .iter()
            .find(|m| m.0 == *account && m.1 == *rt && m.2 == *key)
            .unwrap();
        assert_eq!((m.4, m.5.as_str()), (*deleted, key.as_str()));
        if !(account == &"AC1" && key == &b) {
            assert_eq!(m.3, Some(key_hash(key)), "{key}");
        } else {
            assert_eq!(m.3, None, "the second key with one hash in a set");
        }
    }

    // Migration 0009 points each hash at its row; a removed row takes its key along.
    for sql in [
        include_str!("../../../migrations/sqlite/0008_line_segments.sql"),
        include_str!("../../../migrations/sqlite/0009_record_keys.sql"),
    ] {
        conn.execute_batch(sql).unwrap();
    }
    let unpointed = "SELECT COUNT(*) FROM records r WHERE key_hash IS NOT NULL AND NOT EXISTS \
         (SELECT 1 FROM record_keys k WHERE k.key_hash = r.key_hash AND k.set_id = r.set_id AND k.row = r.rowid)";
    let count = |sql: &str| conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap();
    assert_eq!(count(unpointed), 0);
    assert_eq!(
        count("SELECT COUNT(*) FROM record_keys"),
        rows.len() as i64 - 1
    );
    conn.execute("DELETE FROM records WHERE record_key = ?1", [&a])
        .unwrap();
    assert_eq!(
        count("SELECT COUNT(*) FROM record_keys"),
        rows.len() as i64 - 3
    );
    assert_eq!(count(unpointed), 0);
}
