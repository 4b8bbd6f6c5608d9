//! What the metrics read from the database at each scrape: the same on
//! every node, whichever one is asked.

use super::{with_pool, Db, Result};
use crate::domain::{Channel, DayStatus, DeliveryStatus};
use crate::telemetry::StateGauges;

impl Db {
    /// Job days per status, the age of the oldest Submitted one at `now_ms`,
    /// and notifications per channel and status.
    pub async fn state_gauges(&self, now_ms: i64) -> Result<StateGauges> {
        type Read = (Vec<(String, i64)>, Option<i64>, Vec<(String, String, i64)>);
        let (days, oldest, notes): Read = with_pool!(self, |pool| {
            let days = sqlx::query_as("SELECT status, COUNT(*) FROM job_days GROUP BY status")
                .fetch_all(pool)
                .await?;
            // Along job_days_queue: the first Submitted day of the oldest job.
            let oldest = sqlx::query_scalar(
                "SELECT j.created_at FROM job_days d JOIN jobs j ON j.seq = d.job_seq \
                     WHERE d.status = 'Submitted' ORDER BY d.job_seq LIMIT 1",
            )
            .fetch_optional(pool)
            .await?;
            let notes = sqlx::query_as(
                "SELECT channel, status, COUNT(*) FROM deliveries GROUP BY channel, status",
            )
            .fetch_all(pool)
            .await?;
            Ok::<_, sqlx::Error>((days, oldest, notes))
        })?;
        let count_days = |s: DayStatus| {
            days.iter()
                .find(|(name, _)| name == s.as_str())
                .map_or(0, |(_, n)| *n)
        };
        let count_notes = |c: Channel, s: DeliveryStatus| {
            notes
                .iter()
                .find(|(channel, status, _)| channel == c.as_str() && status == s.as_str())
                .map_or(0, |(.., n)| *n)
        };
        let mut notifications = Vec::new();
        for c in [Channel::Webhook, Channel::Email] {
            for s in [
                DeliveryStatus::Pending,
                DeliveryStatus::Delivered,
                DeliveryStatus::Failed,
            ] {
                notifications.push((c.as_str(), s.as_str(), count_notes(c, s)));
            }
        }
        Ok(StateGauges {
            job_days: DayStatus::ALL
                .iter()
                .map(|&s| (s.as_str(), count_days(s)))
                .collect(),
            queue_oldest_age_seconds: oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1000.0),
            notifications,
        })
    }
}
