//! Deleting call records: requests, the batch that applies them, the content
//! versions that keep exports honest, and the Call resource's reads.

use super::jobs::OPEN_STATUSES;
use super::lines::{LineReader, Placed};
use super::records::{EraseLines, SegmentPlace};
use super::{with_pool, Db, Result};
use crate::domain::{Day, ResourceType};

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct DeletionRow {
    pub account_sid: String,
    pub call_sid: String,
    pub source: String,
    pub day: String,
    pub requested_at: i64,
    pub applied_at: Option<i64>,
    pub outcome: Option<String>,
}

/// A call record with what is left of it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CallRecord {
    pub day: String,
    pub sort_key: String,
    pub line: String,
    pub rest_deleted: bool,
    pub export_deleted: bool,
    /// Where the line is when it is kept in a segment (SQLite, see
    /// `db::lines`); [`Db::find_call`] and [`Db::list_calls`] read it into `line`.
    #[sqlx(default)]
    line_seg: Option<i64>,
    #[sqlx(default)]
    line_off: Option<i64>,
    #[sqlx(default)]
    line_len: Option<i64>,
    /// PostgreSQL's segment of the line, and the line's number in it (see
    /// `db::records::segments`).
    #[sqlx(default)]
    seg_data: Option<Vec<u8>>,
    #[sqlx(default)]
    seg_ord: Option<i32>,
}

impl CallRecord {
    /// Reads the line from its segment, when it is kept in one.
    fn read_line(&mut self, lines: Option<&mut LineReader>) -> Result<()> {
        if let (Some(lines), Some(seg), Some(off), Some(len)) =
            (lines, self.line_seg, self.line_off, self.line_len)
        {
            self.line = lines.line(Placed { seg, off, len })?;
        }
        if let (Some(data), Some(ord)) = (self.seg_data.take(), self.seg_ord) {
            self.line = super::records::segment_line(&data, ord)?;
        }
        Ok(())
    }
}

/// A Day whose file is behind its day's records.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StaleDay {
    pub account_sid: String,
    #[sqlx(try_from = "String")]
    pub resource_type: ResourceType,
    #[sqlx(try_from = "String")]
    pub day: Day,
    pub friendly_name: String,
}

const DELETION_COLUMNS: &str =
    "account_sid, call_sid, source, day, requested_at, applied_at, outcome";

/// Binds the parameters of [`Db::call_record`]'s condition to `q`, a query
/// of either driver: the account, "Calls", the call's SID and, where the
/// database needs it, the key's hash.
macro_rules! bind_call {
    ($q:expr, $account_sid:expr, $call_sid:expr, $hash:expr) => {{
        let q = $q
            .bind($account_sid)
            .bind(ResourceType::Calls.as_str())
            .bind($call_sid);
        match $hash {
            Some(h) => q.bind(h),
            None => q,
        }
    }};
}

impl Db {
    /// The condition on `records` that selects call `$3` of account `$1`
    /// (with `$2` bound to "Calls"), and the hash to bind as `$4` where the
    /// database needs one. On SQLite a key's hash (see `records::key_hash`)
    /// leads to its row through `record_keys`, and a key stored without one
    /// (its hash held by another key) is found among those of its set. On
    /// PostgreSQL the key's part leads to its partial hash index.
    fn call_record(&self, call_sid: &str) -> (String, Option<i64>) {
        let set = self.record_set();
        match self.pool {
            super::Pool::Sqlite(_) => (
                format!(
                    "rowid IN (SELECT row FROM record_keys WHERE key_hash = $4 AND {set} \
                     UNION ALL SELECT rowid FROM records WHERE {set} AND key_hash IS NULL) \
                     AND record_key = $3"
                ),
                Some(super::records::key_hash(call_sid)),
            ),
            // The key's part is in the text, for its partial hash index.
            super::Pool::Postgres(_) => (
                format!(
                    "{set} AND record_key = $3 AND part = {}",
                    super::records::part_of(call_sid)
                ),
                None,
            ),
        }
    }

    /// The columns of a [`CallRecord`]: on SQLite also where its line is; on
    /// PostgreSQL its day and sort key computed from its second and key.
    fn call_columns(&self) -> String {
        match self.pool {
            super::Pool::Sqlite(_) => {
                "day, sort_key, line, rest_deleted, export_deleted, line_seg, line_off, line_len".into()
            }
            super::Pool::Postgres(_) => format!(
                "{} AS day, {} AS sort_key, '' AS line, rest_deleted, export_deleted, \
                 (SELECT data FROM line_segments s WHERE s.id = records.seg) AS seg_data, ord AS seg_ord",
                super::records::PG_DAY,
                self.sort_key()
            ),
        }
    }

    /// A record's sort key in SQL: a column on SQLite, computed on PostgreSQL.
    fn sort_key(&self) -> &'static str {
        match self.pool {
            super::Pool::Sqlite(_) => "sort_key",
            super::Pool::Postgres(_) => super::records::PG_SORT_KEY,
        }
    }

    pub async fn find_call(&self, account_sid: &str, call_sid: &str) -> Result<Option<CallRecord>> {
        let (call, hash) = self.call_record(call_sid);
        let sql = format!("SELECT {} FROM records WHERE {call}", self.call_columns());
        let mut lines = self.line_reader().await?;
        let found: Option<CallRecord> = with_pool!(self, |pool| {
            bind_call!(sqlx::query_as(&sql), account_sid, call_sid, hash)
                .fetch_optional(pool)
                .await
        })?;
        found
            .map(|mut c| c.read_line(lines.as_mut()).map(|()| c))
            .transpose()
    }

    /// Records a deletion request; a repeated one is ignored. True when new.
    pub async fn request_deletion(
        &self,
        account_sid: &str,
        call_sid: &str,
        source: &str,
        day: &str,
        now: i64,
    ) -> Result<bool> {
        let sql = "INSERT INTO deletions (account_sid, call_sid, source, day, requested_at) VALUES ($1, $2, $3, $4, $5) \
                   ON CONFLICT (account_sid, call_sid, source) DO NOTHING";
        let n = with_pool!(self, |pool| sqlx::query(sql)
            .bind(account_sid)
            .bind(call_sid)
            .bind(source)
            .bind(day)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// True when a deletion of this call was ever requested (for idempotent repeats).
    pub async fn deletion_requested(
        &self,
        account_sid: &str,
        call_sid: &str,
        source: &str,
    ) -> Result<bool> {
        let sql = "SELECT COUNT(*) FROM deletions WHERE account_sid = $1 AND call_sid = $2 AND source = $3";
        let n: i64 = with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(account_sid)
            .bind(call_sid)
            .bind(source)
            .fetch_one(pool)
            .await)?;
        Ok(n > 0)
    }

    /// Removes the Call resource from the REST API at once (its export record
    /// goes with the next batch).
    pub async fn hide_call_resource(&self, account_sid: &str, call_sid: &str) -> Result<()> {
        let (call, hash) = self.call_record(call_sid);
        let sql = format!("UPDATE records SET rest_deleted = TRUE WHERE {call}");
        with_pool!(self, |pool| {
            bind_call!(sqlx::query(&sql), account_sid, call_sid, hash)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    pub async fn pending_deletions(
        &self,
        requested_before: i64,
        limit: i64,
    ) -> Result<Vec<DeletionRow>> {
        let sql = format!(
            "SELECT {DELETION_COLUMNS} FROM deletions WHERE applied_at IS NULL AND requested_at <= $1 \
             ORDER BY requested_at LIMIT $2"
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(requested_before)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Applies one deletion: the record leaves the exports (and, with
    /// `remove_row`, the REST API too); the day's content version moves on,
    /// so its file is rewritten and an export that read the old records does
    /// not publish them.
    pub async fn apply_deletion(
        &self,
        d: &DeletionRow,
        remove_row: bool,
        outcome: &str,
        now: i64,
    ) -> Result<()> {
        let (call, hash) = self.call_record(&d.call_sid);
        let change = if remove_row {
            format!("DELETE FROM records WHERE {call}")
        } else {
            format!("UPDATE records SET export_deleted = TRUE WHERE {call}")
        };
        // A removed row's line, kept in a segment, is erased by the next
        // sweep on SQLite, in this transaction on PostgreSQL.
        let places = match (&self.pool, remove_row) {
            (super::Pool::Postgres(_), true) => Some(format!(
                "SELECT seg, ord FROM records WHERE {call} FOR UPDATE"
            )),
            _ => None,
        };
        let freed = match (&self.pool, remove_row) {
            (super::Pool::Sqlite(_), true) => Some(format!(
                "INSERT INTO line_garbage (seg, off, len) \
                 SELECT line_seg, line_off, line_len FROM records WHERE {call} AND line_seg IS NOT NULL"
            )),
            _ => None,
        };
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            if let Some(freed) = &freed {
                bind_call!(sqlx::query(freed), &d.account_sid, &d.call_sid, hash)
                    .execute(&mut *tx)
                    .await?;
            }
            let erased: Vec<SegmentPlace> = match &places {
                Some(places) => {
                    bind_call!(sqlx::query_as(places), &d.account_sid, &d.call_sid, hash)
                        .fetch_all(&mut *tx)
                        .await?
                }
                None => Vec::new(),
            };
            bind_call!(sqlx::query(&change), &d.account_sid, &d.call_sid, hash)
                .execute(&mut *tx)
                .await?;
            tx.erase_lines(&erased).await?;
            sqlx::query(
                "INSERT INTO day_versions (account_sid, resource_type, day, version) VALUES ($1, 'Calls', $2, 1) \
                 ON CONFLICT (account_sid, resource_type, day) DO UPDATE SET version = day_versions.version + 1",
            )
            .bind(&d.account_sid)
            .bind(&d.day)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE deletions SET applied_at = $1, outcome = $2 WHERE account_sid = $3 AND call_sid = $4 AND source = $5",
            )
            .bind(now)
            .bind(outcome)
            .bind(&d.account_sid)
            .bind(&d.call_sid)
            .bind(&d.source)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    pub async fn list_deletions(&self, account_sid: &str) -> Result<Vec<DeletionRow>> {
        let sql = format!("SELECT {DELETION_COLUMNS} FROM deletions WHERE account_sid = $1 ORDER BY requested_at, call_sid");
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_sid)
            .fetch_all(pool)
            .await)?)
    }

    /// The current content version of a day (0 before any change).
    pub async fn day_version(
        &self,
        account_sid: &str,
        resource_type: &str,
        day: &str,
    ) -> Result<i64> {
        let sql = "SELECT COALESCE(MAX(version), 0) FROM day_versions WHERE account_sid = $1 AND resource_type = $2 AND day = $3";
        Ok(with_pool!(self, |pool| sqlx::query_scalar(sql)
            .bind(account_sid)
            .bind(resource_type)
            .bind(day)
            .fetch_one(pool)
            .await)?)
    }

    /// Days whose file was exported from older records and that no open job
    /// rewrites yet. Only days whose records changed (a version above 0)
    /// are read, along `day_versions_changed`: not every day published.
    pub async fn stale_days(&self, limit: i64) -> Result<Vec<StaleDay>> {
        let sql = format!(
            "WITH stale AS MATERIALIZED (SELECT d.account_sid, d.resource_type, d.day, d.friendly_name \
             FROM day_versions v JOIN days d \
             ON d.account_sid = v.account_sid AND d.resource_type = v.resource_type AND d.day = v.day \
             WHERE v.version > 0 AND d.content_version < v.version) \
             SELECT s.account_sid, s.resource_type, s.day, s.friendly_name FROM stale s \
             WHERE NOT EXISTS (SELECT 1 FROM job_days q \
               WHERE q.account_sid = s.account_sid AND q.resource_type = s.resource_type AND q.day = s.day \
               AND q.status IN {open}) \
             ORDER BY s.account_sid, s.day LIMIT $1",
            open = *OPEN_STATUSES
        );
        Ok(with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(limit)
            .fetch_all(pool)
            .await)?)
    }

    /// Claims one due run of a periodic task: true for exactly one caller per slot.
    pub async fn claim_periodic(
        &self,
        task: &str,
        slot: i64,
        node: &str,
        now: i64,
    ) -> Result<bool> {
        let sql = "INSERT INTO periodic_runs (task, slot, claimed_by, claimed_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (task, slot) DO NOTHING";
        let n = with_pool!(self, |pool| sqlx::query(sql)
            .bind(task)
            .bind(slot)
            .bind(node)
            .bind(now)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// One page of an account's Call resources, newest first, before `before`
    /// or after `after` (sort keys).
    pub async fn list_calls(
        &self,
        account_sid: &str,
        before: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<CallRecord>> {
        let (cond, order, pos) = match (before, after) {
            (_, Some(a)) => (">", "ASC", a.to_string()),
            (Some(b), None) => ("<", "DESC", b.to_string()),
            (None, None) => ("<", "DESC", "\u{10FFFF}".to_string()),
        };
        // PostgreSQL orders by what its sort key is made of, a call's second
        // and SID (its key), which its time index holds in that order.
        let order_by = match self.pool {
            super::Pool::Sqlite(_) => format!("sort_key {order}"),
            super::Pool::Postgres(_) => format!("at {order}, record_key {order}"),
        };
        let sql = format!(
            "SELECT {} FROM records WHERE {} \
             AND NOT rest_deleted AND {key} {cond} $3 ORDER BY {order_by} LIMIT $4",
            self.call_columns(),
            self.record_set(),
            key = self.sort_key(),
        );
        let mut lines = self.line_reader().await?;
        let mut rows: Vec<CallRecord> = with_pool!(self, |pool| sqlx::query_as(&sql)
            .bind(account_sid)
            .bind(ResourceType::Calls.as_str())
            .bind(pos)
            .bind(limit)
            .fetch_all(pool)
            .await)?;
        for row in &mut rows {
            row.read_line(lines.as_mut())?;
        }
        if after.is_some() {
            rows.reverse();
        }
        Ok(rows)
    }
}
