//! The PostgreSQL side of the bulk writer: one transaction per batch,
//! existing keys looked up per batch, multi-row upserts.

use std::collections::HashSet;

use super::{last_of_each_key, outcomes, StoreOutcome};
use crate::db::Result;
use crate::domain::record::Record;
use crate::domain::ResourceType;

/// Rows per multi-row statement on PostgreSQL: 6 parameters each, well under its limit.
const ROWS_PER_STATEMENT: usize = 200;

/// One batch in one PostgreSQL transaction; a record with a known key replaces
/// the old one. Existing keys are looked up per batch and rows are written
/// with multi-row upserts, so a batch costs a few statements, not two per record.
pub(super) async fn store_postgres(
    pool: &sqlx::PgPool,
    account_sid: &str,
    rt: ResourceType,
    batch: &[Record],
) -> Result<Vec<StoreOutcome>> {
    let unique = last_of_each_key(batch);
    let mut tx = pool.begin().await?;
    let mut existing: HashSet<String> = HashSet::new();
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 3)).collect();
        let sql = format!(
            "SELECT record_key FROM records WHERE account_sid = $1 AND resource_type = $2 AND record_key IN ({})",
            marks.join(", ")
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql)
            .bind(account_sid)
            .bind(rt.as_str());
        for r in chunk {
            q = q.bind(&r.key);
        }
        existing.extend(q.fetch_all(&mut *tx).await?);
    }
    for chunk in unique.chunks(ROWS_PER_STATEMENT) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let m: Vec<String> = (1..=6).map(|k| format!("${}", i * 6 + k)).collect();
                format!("({})", m.join(", "))
            })
            .collect();
        let sql = format!(
            "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line) VALUES {} \
             ON CONFLICT (account_sid, resource_type, record_key) DO UPDATE SET day = excluded.day, \
             sort_key = excluded.sort_key, line = excluded.line",
            rows.join(", ")
        );
        let mut q = sqlx::query(&sql);
        for r in chunk {
            q = q
                .bind(account_sid)
                .bind(rt.as_str())
                .bind(&r.key)
                .bind(r.day.to_string())
                .bind(&r.sort_key)
                .bind(&r.line);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(outcomes(batch, &existing))
}
