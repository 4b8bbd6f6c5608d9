//! Activity records, stored already serialised in the day-file shape.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::{with_pool, Db, Result};
use crate::domain::record::Record;
use crate::domain::{Day, ResourceType};

/// What storing one record did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    Loaded,
    Replaced,
}

const INSERT_NEW: &str = "INSERT INTO records (account_sid, resource_type, record_key, day, sort_key, line) \
                          VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (account_sid, resource_type, record_key) DO NOTHING";
const REPLACE: &str = "UPDATE records SET day = $1, sort_key = $2, line = $3 \
                       WHERE account_sid = $4 AND resource_type = $5 AND record_key = $6";

impl Db {
    /// Stores records in one transaction; a record with a known key replaces the old one.
    pub async fn store_records(
        &self,
        account_sid: &str,
        rt: ResourceType,
        batch: &[Record],
    ) -> Result<Vec<StoreOutcome>> {
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let mut out = Vec::with_capacity(batch.len());
            for r in batch {
                let day = r.day.to_string();
                let inserted = sqlx::query(INSERT_NEW)
                    .bind(account_sid)
                    .bind(rt.as_str())
                    .bind(&r.key)
                    .bind(&day)
                    .bind(&r.sort_key)
                    .bind(&r.line)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if inserted == 1 {
                    out.push(StoreOutcome::Loaded);
                    continue;
                }
                sqlx::query(REPLACE)
                    .bind(&day)
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
        })
    }

    /// The day-file lines of one day, in file order, streamed.
    pub fn day_lines(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
    ) -> BoxStream<'_, Result<String>> {
        let sql = "SELECT line FROM records WHERE account_sid = $1 AND resource_type = $2 AND day = $3 AND NOT export_deleted \
                   ORDER BY sort_key";
        let (account, day) = (account_sid.to_string(), day.to_string());
        with_pool!(self, |pool| sqlx::query_scalar::<_, String>(sql)
            .bind(account)
            .bind(rt.as_str())
            .bind(day)
            .fetch(pool)
            .map_err(Into::into)
            .boxed())
    }

    pub async fn count_records(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
    ) -> Result<i64> {
        let sql = "SELECT COUNT(*) FROM records WHERE account_sid = $1 AND resource_type = $2 AND day = $3 AND NOT export_deleted";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(account_sid)
            .bind(rt.as_str())
            .bind(day.to_string())
            .fetch_one(pool)
            .await)?)
    }
}
