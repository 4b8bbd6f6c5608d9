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
    let rows = [
        ("AC1", "Calls", "CA01", "2024-06-01", false),
        ("AC1", "Calls", "CA02", "2024-06-01", true),
        ("AC1", "Messages", "SM01", "2024-06-02", false),
        ("AC2", "Calls", "CA01", "2024-06-01", false),
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
    // The service migrates the rest of the way as it starts.
    let settings = settings_for(&place, 0);
    let _app = TestApp::spawn_with(place, settings, Clock::starting_at(start_time())).await;
    let moved: Vec<(String, String, String, String, bool, String)> = sqlx::query_as(
        "SELECT s.account_sid, s.resource_type, r.record_key, r.day, r.export_deleted, r.line \
         FROM records r JOIN record_sets s ON s.id = r.set_id ORDER BY 1, 2, 3",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let expected: Vec<(String, String, String, String, bool, String)> = rows
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
    assert_eq!(moved, expected);
    let sets: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM record_sets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(sets, 3);
}
