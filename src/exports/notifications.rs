//! Completion notifications: what is sent when a job ends, and the loop that
//! delivers stored notifications with retries.

use std::time::Duration;

use rand::Rng;
use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::jobs::{group_details, StatusGroup};
use super::{Exports, Result};
use super::{FaultKind, FaultTarget};
use crate::db::{AttemptRecord, DeliveryRow, JobKind, JobRow, NewDelivery};
use crate::domain::{AttemptOutcome, Channel, DayStatus, DeliveryStatus};
use crate::notify::Outcome;

/// Longest wait between two attempts of one delivery.
const MAX_BACKOFF_MS: i64 = 3_600_000;
/// Jobs finished by the sweep per pass.
const SWEEP_BATCH: i64 = 100;

/// The process's delivery loop.
pub struct Deliverer {
    tasks: JoinSet<()>,
}

impl Deliverer {
    pub fn start(exports: &Exports, shutdown: &CancellationToken) -> Deliverer {
        let mut tasks = JoinSet::new();
        let ex = exports.clone();
        let stop = shutdown.clone();
        let id = format!("{}-deliver", super::worker::node_id());
        tasks.spawn(async move { ex.delivery_loop(&id, &stop).await });
        Deliverer { tasks }
    }

    pub async fn shutdown(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// One notification to store.
pub(crate) struct Notice<'a> {
    /// Identifies the event and channel: the same key is stored once.
    pub dedupe_key: String,
    pub account_sid: &'a str,
    pub channel: Channel,
    pub target: &'a str,
    pub method: &'a str,
    /// JSON list of [name, value] pairs.
    pub params: String,
    /// The API request behind it (else the one being served, if any).
    pub request_id: Option<&'a str>,
    /// The job it announces, if any.
    pub job_sid: Option<&'a str>,
}

/// Whose notification it is, the job it announces and the API request
/// behind it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cause<'a> {
    pub account_sid: &'a str,
    pub job_sid: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

impl<'a> Cause<'a> {
    /// The job's account, the job, and the request that created the job.
    pub fn of(job: &'a JobRow) -> Cause<'a> {
        Cause {
            account_sid: &job.account_sid,
            job_sid: Some(&job.sid),
            request_id: job.request_id.as_deref(),
        }
    }
}

pub(crate) fn webhook_params(pairs: &[(&str, String)]) -> String {
    json!(pairs
        .iter()
        .map(|(k, v)| [k.to_string(), v.clone()])
        .collect::<Vec<_>>())
    .to_string()
}

pub(super) fn parse_params(s: &str) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<(String, String)>>(s).unwrap_or_default()
}

impl Exports {
    /// Called whenever a job may have ended: once every day is final, stores
    /// its notifications (unless it was deleted), then records its end. Safe
    /// to call twice or from several processes: a notification is stored once
    /// per job and channel, and the end is recorded once.
    pub(crate) async fn finish_job_if_complete(&self, sid: &str) -> Result<()> {
        let now = self.clock().now_ms();
        let Some(job) = self.db().job_if_complete(sid).await? else {
            return Ok(());
        };
        if job.deleted_at.is_none() {
            let days = self
                .db()
                .job_days_between(
                    &job.account_sid,
                    job.resource_type.as_str(),
                    job.seq,
                    job.seq,
                )
                .await?;
            let details = group_details(days.iter().map(|d| (d.day, d.status)));
            let failed = details.iter().any(|g| g.status == DayStatus::Failed);
            let status = if failed {
                DayStatus::Failed
            } else {
                DayStatus::Completed
            }
            .as_str();
            if job.kind == JobKind::Daily {
                self.announce_daily_export(&job, status, now).await?;
            } else {
                self.announce_custom_job(&job, &details, status, now)
                    .await?;
            }
        }
        self.db().mark_job_finished(sid, now).await?;
        Ok(())
    }

    /// The job's webhook and email, when it asked for them.
    async fn announce_custom_job(
        &self,
        job: &JobRow,
        details: &[StatusGroup],
        status: &str,
        now: i64,
    ) -> Result<()> {
        let sid = &job.sid;
        if let (Some(url), Some(method)) = (&job.webhook_url, &job.webhook_method) {
            let details_json = json!(details
                .iter()
                .map(
                    |g| json!({"status": g.status.as_str(), "count": g.days.len(), "days": g.days})
                )
                .collect::<Vec<_>>());
            let params = webhook_params(&[
                ("AccountSid", job.account_sid.clone()),
                ("ResourceType", job.resource_type.to_string()),
                ("Status", status.to_string()),
                ("JobSid", sid.clone()),
                ("FriendlyName", job.friendly_name.clone()),
                ("StartDay", job.start_day.to_string()),
                ("EndDay", job.end_day.to_string()),
                ("Details", details_json.to_string()),
            ]);
            let key = format!("job:{sid}:webhook");
            self.enqueue_webhook(key, Cause::of(job), url, method, params, now)
                .await?;
        }
        if let Some(to) = &job.email {
            let subject = format!("Export job {} finished: {status}", job.friendly_name);
            let mut body = format!(
                "Your BulkExport custom job has finished.\n\n\
                 Job:           {sid}\n\
                 Friendly name: {}\n\
                 Account:       {}\n\
                 Resource type: {}\n\
                 Days:          {} to {}\n\
                 Status:        {status}\n\n\
                 Days by status:\n",
                job.friendly_name, job.account_sid, job.resource_type, job.start_day, job.end_day
            );
            for g in details {
                body.push_str(&format!(
                    "  {} ({}): {}\n",
                    g.status,
                    g.days.len(),
                    g.days_text()
                ));
            }
            body.push_str(
                "\nDownload each day with FetchDay (GET /v1/Exports/{ResourceType}/Days/{Day}).\n",
            );
            self.enqueue_email(
                format!("job:{sid}:email"),
                Cause::of(job),
                to,
                &subject,
                &body,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// The configuration's webhook and email for an automatic daily export that ended.
    async fn announce_daily_export(&self, job: &JobRow, status: &str, now: i64) -> Result<()> {
        let Some(config) = self
            .db()
            .find_export_config(&job.account_sid, job.resource_type.as_str())
            .await?
        else {
            return Ok(());
        };
        let size = self
            .db()
            .find_day(
                &job.account_sid,
                job.resource_type.as_str(),
                &job.start_day.to_string(),
                0,
            )
            .await?
            .map(|d| d.size)
            .unwrap_or(0);
        let event = format!(
            "daily:{}:{}:{}",
            job.account_sid, job.resource_type, job.start_day
        );
        if let (Some(url), Some(method)) = (&config.webhook_url, &config.webhook_method) {
            let params = webhook_params(&[
                ("AccountSid", job.account_sid.clone()),
                ("ResourceType", job.resource_type.to_string()),
                ("Status", status.to_string()),
                ("Day", job.start_day.to_string()),
                ("Size", size.to_string()),
            ]);
            let key = format!("{event}:webhook");
            self.enqueue_webhook(key, Cause::of(job), url, method, params, now)
                .await?;
        }
        if let Some(to) = &config.email {
            let subject = format!(
                "Daily export of {} for {}: {status}",
                job.resource_type, job.start_day
            );
            let body = format!(
                "The automatic daily export has finished.\n\n\
                 Account:       {}\n\
                 Resource type: {}\n\
                 Day:           {}\n\
                 Status:        {status}\n\
                 Size:          {size} bytes\n",
                job.account_sid, job.resource_type, job.start_day
            );
            self.enqueue_email(
                format!("{event}:email"),
                Cause::of(job),
                to,
                &subject,
                &body,
                now,
            )
            .await?;
        }
        Ok(())
    }

    /// Stores a webhook to call (once per `dedupe_key`).
    async fn enqueue_webhook(
        &self,
        dedupe_key: String,
        cause: Cause<'_>,
        url: &str,
        method: &str,
        params: String,
        now: i64,
    ) -> Result<()> {
        let notice = Notice {
            dedupe_key,
            account_sid: cause.account_sid,
            channel: Channel::Webhook,
            target: url,
            method,
            params,
            request_id: cause.request_id,
            job_sid: cause.job_sid,
        };
        self.enqueue(notice, now).await
    }

    /// Stores an email to send (once per `dedupe_key`).
    pub(crate) async fn enqueue_email(
        &self,
        dedupe_key: String,
        cause: Cause<'_>,
        to: &str,
        subject: &str,
        body: &str,
        now: i64,
    ) -> Result<()> {
        let params =
            webhook_params(&[("Subject", subject.to_string()), ("Body", body.to_string())]);
        let notice = Notice {
            dedupe_key,
            account_sid: cause.account_sid,
            channel: Channel::Email,
            target: to,
            method: "SMTP",
            params,
            request_id: cause.request_id,
            job_sid: cause.job_sid,
        };
        self.enqueue(notice, now).await
    }

    /// Stores a notification (once per event and channel) and wakes the deliverer.
    pub(crate) async fn enqueue(&self, notice: Notice<'_>, now: i64) -> Result<()> {
        let Notice {
            dedupe_key,
            account_sid,
            channel,
            target,
            method,
            params,
            request_id,
            job_sid,
        } = notice;
        let token = hex::encode(rand::thread_rng().gen::<[u8; 16]>());
        let delay = match channel {
            Channel::Webhook => {
                let target = FaultTarget {
                    account_sid: Some(account_sid),
                    job_sid,
                    ..Default::default()
                };
                self.fire(FaultKind::WebhookDelay, target).await?
            }
            Channel::Email => None,
        };
        let next_attempt_at = now
            + delay
                .as_ref()
                .and_then(|f| f.number("seconds"))
                .unwrap_or(0)
                * 1000;
        let delivery = NewDelivery {
            dedupe_key,
            account_sid: account_sid.to_string(),
            channel,
            target: target.to_string(),
            method: method.to_string(),
            params,
            idempotency_token: token,
            created_at: now,
            next_attempt_at,
            give_up_at: next_attempt_at + self.inner.engine.delivery_retry_ms,
            job_sid: job_sid.map(str::to_string),
            fault: delay.map(|f| f.sid),
            request_id: request_id
                .map(str::to_string)
                .or_else(crate::telemetry::request_id),
        };
        if self.db().insert_delivery(&delivery).await? {
            self.inner.delivery_queued.notify_waiters();
        }
        Ok(())
    }

    async fn delivery_loop(&self, worker: &str, stop: &CancellationToken) {
        let poll = Duration::from_millis(self.inner.engine.poll_ms.max(10));
        while !stop.is_cancelled() {
            let woken = self.inner.delivery_queued.notified();
            match self.deliver_next(worker).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, "delivery step failed"),
            }
            let periodic = |name: &'static str| tracing::info_span!("periodic", task = name);
            if let Err(e) = self
                .sweep_finished_jobs()
                .instrument(periodic("finish_jobs"))
                .await
            {
                tracing::error!(error = %e, "finishing jobs failed");
            }
            if let Err(e) = self
                .schedule_daily_exports()
                .instrument(periodic("daily_schedule"))
                .await
            {
                tracing::error!(error = %e, "scheduling daily exports failed");
            }
            if let Err(e) = self
                .apply_deletions_if_due()
                .instrument(periodic("deletion_batch"))
                .await
            {
                tracing::error!(error = %e, "applying call deletions failed");
            }
            if let Err(e) = self
                .rewrite_stale_days()
                .instrument(periodic("day_rewrites"))
                .await
            {
                tracing::error!(error = %e, "queueing day rewrites failed");
            }
            if let Err(e) = self
                .sweep_retention()
                .instrument(periodic("retention"))
                .await
            {
                tracing::error!(error = %e, "retention sweep failed");
            }
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Finishes jobs whose last day ended in a process that died before it
    /// could record the end and queue the notifications.
    async fn sweep_finished_jobs(&self) -> Result<()> {
        for sid in self.db().complete_unfinished_jobs(SWEEP_BATCH).await? {
            self.finish_job_if_complete(&sid).await?;
        }
        Ok(())
    }

    /// Makes one attempt at the next due delivery. False when none is due.
    pub(crate) async fn deliver_next(&self, worker: &str) -> Result<bool> {
        let now = self.clock().now_ms();
        let lease = 2 * self.inner.engine.webhook_timeout.as_millis() as i64 + 5_000;
        let Some(d) = self.db().claim_delivery(worker, now, lease).await? else {
            return Ok(false);
        };
        let span = tracing::info_span!("notification", delivery = d.id, event = %d.dedupe_key,
            channel = %d.channel, attempt = d.attempts,
            request_id = %d.request_id.as_deref().unwrap_or("-"));
        self.attempt_and_settle(&d, worker).instrument(span).await?;
        Ok(true)
    }

    /// One attempt at a claimed delivery, recorded with its consequence.
    async fn attempt_and_settle(&self, d: &DeliveryRow, worker: &str) -> Result<()> {
        let sent = self.attempt(d).await;
        let outcome = sent.outcome;
        let now = self.clock().now_ms();
        let backoff = self
            .inner
            .engine
            .delivery_backoff_ms
            .saturating_mul(1 << (d.attempts - 1).clamp(0, 20))
            .min(MAX_BACKOFF_MS);
        let (label, detail, status, next) = match outcome {
            Outcome::Delivered(detail) => (
                AttemptOutcome::Delivered,
                detail,
                DeliveryStatus::Delivered,
                now,
            ),
            Outcome::Retry(detail) if now + backoff <= d.give_up_at => (
                AttemptOutcome::Retry,
                detail,
                DeliveryStatus::Pending,
                now + backoff,
            ),
            Outcome::Retry(detail) => (
                AttemptOutcome::Failed,
                format!("{detail}; giving up after {} attempts", d.attempts),
                DeliveryStatus::Failed,
                now,
            ),
            Outcome::Fail(detail) => (AttemptOutcome::Failed, detail, DeliveryStatus::Failed, now),
        };
        if status != DeliveryStatus::Delivered {
            let target = match d.channel {
                Channel::Webhook => crate::config::url_without_userinfo(&d.target),
                Channel::Email => d.target.escape_default().to_string(),
            };
            tracing::warn!(delivery = d.id, %target, detail = %detail.escape_default(), %status, "notification attempt did not succeed");
        }
        self.metrics()
            .notification_attempt(d.channel.as_str(), label.as_str());
        let attempt = AttemptRecord {
            outcome: label,
            detail,
            status_code: sent.status_code,
            headers: (!sent.headers.is_empty())
                .then(|| serde_json::to_string(&sent.headers).unwrap_or_default()),
            // The first attempt also names a fault that delayed the delivery.
            fault: sent
                .fault
                .or_else(|| (d.attempts == 1).then(|| d.fault.clone()).flatten()),
        };
        Ok(self
            .db()
            .settle_delivery(d, worker, now, &attempt, status, next)
            .await?)
    }

    /// Sends a claimed delivery once (or, when a `WebhookDuplicate` fault
    /// fires, that many times, each signed, with the same idempotency token).
    async fn attempt(&self, d: &DeliveryRow) -> Attempted {
        let params = parse_params(&d.params);
        let plain = |outcome| Attempted {
            outcome,
            status_code: None,
            headers: Vec::new(),
            fault: None,
        };
        match d.channel {
            Channel::Webhook => {
                let token = match self.db().find_account(&d.account_sid).await {
                    Ok(Some(a)) => a.auth_token,
                    Ok(None) => {
                        return plain(Outcome::Fail(format!(
                            "account {} no longer exists",
                            d.account_sid
                        )))
                    }
                    Err(e) => return plain(Outcome::Retry(format!("database: {e}"))),
                };
                let target = FaultTarget {
                    account_sid: Some(&d.account_sid),
                    job_sid: d.job_sid.as_deref(),
                    ..Default::default()
                };
                let duplicate = match self.fire(FaultKind::WebhookDuplicate, target).await {
                    Ok(fired) => fired,
                    Err(e) => return plain(Outcome::Retry(format!("database: {e}"))),
                };
                let copies = duplicate
                    .as_ref()
                    .and_then(|f| f.number("copies"))
                    .unwrap_or(1);
                let mut sent = None;
                for _ in 0..copies.max(1) {
                    let s = self
                        .inner
                        .webhooks
                        .send_recorded(&d.target, &d.method, &params, &token, &d.idempotency_token)
                        .await;
                    let failed = !matches!(s.outcome, Outcome::Delivered(_));
                    sent = Some(s);
                    if failed {
                        break;
                    }
                }
                let sent = sent.expect("at least one copy is sent");
                Attempted {
                    outcome: sent.outcome,
                    status_code: sent.status_code,
                    headers: sent.headers,
                    fault: duplicate.map(|f| f.sid),
                }
            }
            Channel::Email => {
                let field = |name: &str| {
                    params
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("")
                };
                plain(
                    self.inner
                        .emails
                        .send(&d.target, field("Subject"), field("Body"))
                        .await,
                )
            }
        }
    }

    /// Checks a webhook URL against the internal-address setting.
    pub(crate) async fn check_webhook_target(&self, url: &str) -> Result<()> {
        if self.inner.engine.refuse_private_webhooks {
            crate::notify::check_public(url)
                .await
                .map_err(|e| super::Error::Invalid(format!("WebhookUrl {e}")))?;
        }
        Ok(())
    }
}

/// One attempt at a delivery as it went (see `Exports::attempt`).
struct Attempted {
    outcome: Outcome,
    status_code: Option<u16>,
    headers: Vec<(String, String)>,
    /// A `WebhookDuplicate` fault that fired for it.
    fault: Option<String>,
}
