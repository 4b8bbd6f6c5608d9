//! `pull --load postgres://…`: the records of pulled days upserted into a
//! typed table per resource type, one transaction per day: the day's lines
//! copied into a staging table (`COPY`), the records of that account and
//! day that the file no longer has deleted, and the rest merged by key. A
//! rerun or an overlapping range never duplicates a row, and a day exported
//! again replaces its records.

use std::io::Read;
use std::path::Path;

use sqlx::postgres::{PgPool, PgPoolOptions};

use super::manifest::{day_file, Manifest};
use super::schema::{field_type, key, postgres_table, postgres_type, table, FieldType};
use crate::domain::record::fields;
use crate::domain::ResourceType;

/// A connection to the database the records go into, and its schema.
pub struct Loader {
    pool: PgPool,
    schema: String,
}

impl Loader {
    pub async fn connect(url: &str, schema: &str) -> anyhow::Result<Loader> {
        anyhow::ensure!(
            !schema.is_empty()
                && schema
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "--load-schema {schema:?}: letters, digits and _ only"
        );
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .connect(url)
            .await
            .map_err(|e| anyhow::anyhow!("--load: {}", crate::telemetry::cause_chain(&e)))?;
        sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .execute(&pool)
            .await?;
        for rt in ResourceType::ALL {
            sqlx::query(&postgres_table(rt, schema))
                .execute(&pool)
                .await?;
        }
        Ok(Loader {
            pool,
            schema: schema.to_string(),
        })
    }

    /// Loads every day of `days` that `folder` holds whole; the records loaded.
    pub async fn load(
        &self,
        rt: ResourceType,
        account_sid: &str,
        folder: &Path,
        days: &[String],
    ) -> anyhow::Result<u64> {
        let manifest = Manifest::load(folder)?;
        let mut loaded = 0;
        for day in days.iter().filter(|d| manifest.holds(folder, d)) {
            loaded += self
                .load_day(rt, account_sid, &day_file(folder, day), day)
                .await?;
        }
        Ok(loaded)
    }

    async fn load_day(
        &self,
        rt: ResourceType,
        account_sid: &str,
        file: &Path,
        day: &str,
    ) -> anyhow::Result<u64> {
        let mut lines = Vec::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(file)?).read_to_end(&mut lines)?;
        let records = memchr::memchr_iter(b'\n', &lines).count() as u64;
        let target = format!("\"{}\".{}", self.schema, table(rt));
        let cols: Vec<String> = fields(rt).iter().map(|f| format!("\"{f}\"")).collect();
        let values: Vec<String> = fields(rt)
            .iter()
            .map(|f| match field_type(f) {
                FieldType::Text => format!("line->>'{f}'"),
                t => format!("(line->>'{f}')::{}", postgres_type(t)),
            })
            .collect();
        let keys = key(rt).join(", ");
        let staged_keys: Vec<String> = key(rt).iter().map(|k| format!("line->>'{k}'")).collect();
        let updates: Vec<String> = fields(rt)
            .iter()
            .filter(|f| !key(rt).contains(f))
            .map(|f| format!("\"{f}\" = excluded.\"{f}\""))
            .collect();
        let mut tx = self.pool.begin().await?;
        sqlx::query("CREATE TEMP TABLE bulkexport_stage (line jsonb NOT NULL) ON COMMIT DROP")
            .execute(&mut *tx)
            .await?;
        // JSON lines hold no control characters: \x01 and \x02 never clash.
        let mut copy = tx
            .copy_in_raw("COPY bulkexport_stage (line) FROM STDIN WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')")
            .await?;
        copy.send(lines).await?;
        copy.finish().await?;
        sqlx::query(&format!(
            "DELETE FROM {target} WHERE account_sid = $1 AND date_created >= $2::date AT TIME ZONE 'UTC' \
             AND date_created < ($2::date + 1) AT TIME ZONE 'UTC' \
             AND ({keys}) NOT IN (SELECT {} FROM bulkexport_stage)",
            staged_keys.join(", ")
        ))
        .bind(account_sid)
        .bind(day)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "INSERT INTO {target} ({}) SELECT {} FROM bulkexport_stage ON CONFLICT ({keys}) DO UPDATE SET {}",
            cols.join(", "),
            values.join(", "),
            updates.join(", ")
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(records)
    }
}
