//! The PostgreSQL side of the bulk writer: one transaction per batch,
//! existing keys looked up in one statement, rows upserted from arrays.

use std::collections::HashSet;

use super::{last_of_each_key, outcomes, StoreOutcome};
use crate::db::Result;
use crate::domain::record::Record;
use crate::domain::ResourceType;

/// Rows per upsert statement: each is a handful of array parameters, so
/// the statement's plan and text are the same whatever the batch holds.
const ROWS_PER_STATEMENT: usize = 10_000;

/// One batch in one PostgreSQL transaction; a record with a known key replaces
/// the old one. The batch's keys are looked up in one statement
/// (`record_key = ANY($3)`: one array parameter, so PostgreSQL plans it with
/// the primary key whatever the batch's size, where a generic plan of
/// hundreds of scalar parameters did not), and rows are upserted from arrays
/// (`UNNEST`), a few statements per batch.
pub(super) async fn store_postgres(
    pool: &sqlx::PgPool,
    account_sid: &str,
    rt: ResourceType,
    batch: &[Record],
) -> Result<Vec<StoreOutcome>> {
    let unique = last_of_each_key(batch);
    let mut tx = pool.begin().await?;
    let keys: Vec<&str> = unique.iter().map(|r| r.key.as_str()).collect();
    let existing: HashSet<String> = sqlx::query_scalar::<_, String>(
        "SELECT record_key FROM records WHERE account_sid = $1 AND resource_type = $2 \
         AND record_key = ANY($3)",
    )
    .bind(account_sid)
    .bind(rt.as_str())
    .bind(&keys)
    .fetch_all(&mut *tx)
    .await?
    .into_iter()
    .collect();
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let keys: Vec<&str> = chunk.iter().map(|r| r.key.as_str()).collect();
        let days: Vec<String> = chunk.iter().map(|r| r.day.to_string()).collect();
        let sort_keys: Vec<&str> = chunk.iter().map(|r| r.sort_key.as_str()).collect();
        let lines: Vec<&str> = chunk.iter().map(|r| r.line.as_str()).collect();
        sqlx::query(
            "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line) \
             SELECT $1, $2, k, d, s, l FROM UNNEST($3::text[], $4::text[], $5::text[], $6::text[]) AS t(k, d, s, l) \
             ON CONFLICT (account_sid, resource_type, record_key) DO UPDATE SET day = excluded.day, \
             sort_key = excluded.sort_key, line = excluded.line",
        )
        .bind(account_sid)
        .bind(rt.as_str())
        .bind(&keys)
        .bind(&days)
        .bind(&sort_keys)
        .bind(&lines)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(outcomes(batch, &existing))
}
