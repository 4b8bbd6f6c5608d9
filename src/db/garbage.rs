//! The garbage list (`blob_garbage`): day files to remove once their time
//! has come. A claim lists its file before writing it and the publication
//! takes it off (an interrupted attempt leaves nothing behind); a
//! publication lists the file it replaces, due when its download links have
//! run out.

use super::{with_pool, Db, Result};

pub(super) const ADD_GARBAGE: &str =
    "INSERT INTO blob_garbage (blob_key, not_before) VALUES ($1, $2) ON CONFLICT (blob_key) DO NOTHING";

impl Db {
    /// Queues a blob for removal once `not_before` has passed.
    pub async fn add_garbage(&self, key: &str, not_before: i64) -> Result<()> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| sqlx::query(ADD_GARBAGE)
            .bind(key)
            .bind(not_before)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    /// Leases up to `limit` blobs that are due for removal until `lease_until`.
    /// The rows stay: a collector removes one with [`Db::forget_garbage`] only
    /// after the blob is gone, so a collector that fails or dies leaves the
    /// blob to be taken again once the lease runs out.
    pub async fn lease_garbage(
        &self,
        now: i64,
        lease_until: i64,
        limit: i64,
    ) -> Result<Vec<String>> {
        // Looked for first, along `blob_garbage_due`: the upkeep and every
        // drain ask, and the answer is mostly none.
        let any: Option<i32> = with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT 1 FROM blob_garbage WHERE not_before <= $1 LIMIT 1"
        )
        .bind(now)
        .fetch_optional(pool)
        .await)?;
        if any.is_none() {
            return Ok(Vec::new());
        }
        let _turn = self.write_turn().await;
        let lock = self.skip_locked();
        let sql = format!(
            "UPDATE blob_garbage SET not_before = $1 WHERE blob_key IN \
             (SELECT blob_key FROM blob_garbage WHERE not_before <= $2 ORDER BY not_before LIMIT $3{lock}) \
             RETURNING blob_key"
        );
        Ok(with_pool!(self, |pool| sqlx::query_scalar(&sql)
            .bind(lease_until)
            .bind(now)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Blobs whose removal is due and not leased by a collector.
    pub async fn due_garbage(&self, now: i64) -> Result<i64> {
        Ok(with_pool!(self, |pool| sqlx::query_scalar(
            "SELECT COUNT(*) FROM blob_garbage WHERE not_before <= $1"
        )
        .bind(now)
        .fetch_one(pool)
        .await)?)
    }

    /// Takes removed blobs off the garbage list.
    pub async fn forget_garbage(&self, keys: &[String]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        // One statement for a collector's batch (one write turn, not one each).
        let sql = format!(
            "DELETE FROM blob_garbage WHERE blob_key IN {}",
            super::placeholders(1, keys.len())
        );
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut query = sqlx::query(&sql);
            for key in keys {
                query = query.bind(key);
            }
            query.execute(pool).await.map(|_| ())
        })?;
        Ok(())
    }
}
