//! The explicit wipe of `Reset`: every row a test may have made, in an
//! order that no foreign key objects to. The service's secrets, counters
//! and periodic-run claims stay.

use super::{with_pool, Db, Pool, Result};

/// Tables emptied by a reset, children before parents.
const SHARED_TABLES: &[&str] = &[
    "faults",
    "delivery_attempts",
    "deliveries",
    "job_days",
    "jobs",
    "daily_exports",
    "days",
    "day_versions",
    "deletions",
    "export_configurations",
    "quota_usage",
    "blob_garbage",
    "users",
    "api_keys",
];

/// The record tables of each database, after the shared ones.
const SQLITE_RECORD_TABLES: &[&str] = &[
    "record_keys",
    "records",
    "record_sets",
    "line_garbage",
    "line_segments",
];
const POSTGRES_RECORD_TABLES: &[&str] = &["records", "record_set_parts", "record_sets"];

impl Db {
    /// Deletes every account and everything that belongs to one, in one
    /// transaction; the caller removes the day files and line segments.
    pub async fn reset_all(&self) -> Result<()> {
        let records = match self.pool {
            Pool::Sqlite(_) => SQLITE_RECORD_TABLES,
            Pool::Postgres(_) => POSTGRES_RECORD_TABLES,
        };
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            for table in SHARED_TABLES.iter().chain(records) {
                sqlx::query(&format!("DELETE FROM {table}"))
                    .execute(&mut *tx)
                    .await?;
            }
            // Subaccounts before the accounts they belong to.
            sqlx::query("DELETE FROM accounts WHERE parent_sid IS NOT NULL")
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM accounts")
                .execute(&mut *tx)
                .await?;
            // No job is left unfinished, no day open (see `jobs::COUNT_UP`).
            sqlx::query(
                "UPDATE service_counters SET value = (SELECT s.value FROM service_counters s \
                 WHERE s.name = CASE service_counters.name WHEN 'jobs_finished' THEN 'job_seq' ELSE 'job_days_stored' END) \
                 WHERE name IN ('jobs_finished', 'job_days_closed')",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        })?;
        self.config_changed();
        Ok(())
    }
}
