//! Activity records, stored already serialised in the day-file shape.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::{Db, Result};
use crate::domain::record::Record;
use crate::domain::{Day, ResourceType};

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Loaded,
    Replaced,
}

impl Db {
    /// Stores records in one transaction; a record with a known key replaces the old one.
    pub async fn store_records(
        &self,
        account_sid: &str,
        rt: ResourceType,
        batch: &[Record],
    ) -> Result<Vec<StoreOutcome>> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        for r in batch {
            let inserted = sqlx::query(
                "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line) VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (account_sid, resource_type, record_key) DO NOTHING",
            )
            .bind(account_sid)
            .bind(rt.as_str())
            .bind(&r.key)
            .bind(r.day.to_string())
            .bind(&r.sort_key)
            .bind(&r.line)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 1 {
                out.push(StoreOutcome::Loaded);
                continue;
            }
            sqlx::query(
                "UPDATE records SET day = ?, sort_key = ?, line = ? WHERE account_sid = ? AND resource_type = ? AND record_key = ?",
            )
            .bind(r.day.to_string())
            .bind(&r.sort_key)
            .bind(&r.line)
            .bind(account_sid)
            .bind(rt.as_str())
            .bind(&r.key)
            .execute(&mut *tx)
            .await?;
            out.push(StoreOutcome::Replaced);
        }
        tx.commit().await?;
        Ok(out)
    }

    /// The day-file lines of one day, in file order, streamed.
    pub fn day_lines(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
    ) -> BoxStream<'_, Result<String>> {
        sqlx::query_scalar::<_, String>(
            "SELECT line FROM records WHERE account_sid = ? AND resource_type = ? AND day = ? ORDER BY sort_key",
        )
        .bind(account_sid.to_string())
        .bind(rt.as_str())
        .bind(day.to_string())
        .fetch(&self.pool)
        .map_err(Into::into)
        .boxed()
    }

    pub async fn count_records(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM records WHERE account_sid = ? AND resource_type = ? AND day = ?",
        )
        .bind(account_sid)
        .bind(rt.as_str())
        .bind(day.to_string())
        .fetch_one(&self.pool)
        .await?)
    }
}
