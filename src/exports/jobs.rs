//! Export custom jobs: submission with validation, status views, deletion.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::links::{Page, PageRequest};
use super::notifications::Cause;
use super::{Error, Exports, Result};
use crate::db::{
    Admission, DayQuota, JobKind, NewJob, QueuePlace, ReadJob, Refused, ShownJob, UserRow,
};
use crate::domain::{
    Day, DayStatus, EmailAddress, ResourceType, SidKind, WebhookMethod, WebhookUrl,
};

/// CreateExportCustomJob's parameters as received.
#[derive(Debug, Clone, Default)]
pub struct JobRequest {
    pub start_day: Option<String>,
    pub end_day: Option<String>,
    pub friendly_name: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
}

/// Who submitted a job, and the base URL links in emails start with.
#[derive(Debug, Clone)]
pub struct JobOrigin {
    /// "account ACxxx" or "API key SKxxx".
    pub initiated_by: String,
    pub base_url: String,
}

/// A validated job submission.
struct JobSpec {
    start: Day,
    end: Day,
    friendly_name: String,
    webhook: Option<(WebhookUrl, WebhookMethod)>,
    email: Option<EmailAddress>,
}

/// A parameter that must be present and not blank; its value is kept as
/// sent (FriendlyName `"  spaced  "` stays so).
fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str> {
    match value.as_deref() {
        Some(v) if !v.trim().is_empty() => Ok(v),
        _ => Err(Error::Invalid(format!(
            "Missing required parameter {name} in the post body"
        ))),
    }
}

fn day_param(value: &str, name: &str) -> Result<Day> {
    Day::parse(value).map_err(|_| {
        Error::Invalid(format!(
            "{name} {value:?} is not a real date in the format yyyy-mm-dd"
        ))
    })
}

/// Parses the WebhookUrl/WebhookMethod pair: both or neither.
pub(crate) fn webhook_params(
    url: Option<&str>,
    method: Option<&str>,
) -> Result<Option<(WebhookUrl, WebhookMethod)>> {
    let url = url.filter(|s| !s.is_empty());
    let method = method.filter(|s| !s.is_empty());
    match (url, method) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::Invalid(
            "WebhookMethod is required when WebhookUrl is given".into(),
        )),
        (None, Some(_)) => Err(Error::Invalid(
            "WebhookUrl is required when WebhookMethod is given".into(),
        )),
        (Some(u), Some(m)) => {
            let url = WebhookUrl::parse(u).ok_or_else(|| {
                Error::Invalid(format!(
                    "WebhookUrl {u:?} is not an absolute http or https URL"
                ))
            })?;
            let method = WebhookMethod::parse(m).ok_or_else(|| {
                Error::Invalid(format!("WebhookMethod {m:?} must be GET or POST"))
            })?;
            Ok(Some((url, method)))
        }
    }
}

pub(crate) fn email_param(email: Option<&str>) -> Result<Option<EmailAddress>> {
    match email.filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(e) => EmailAddress::parse(e)
            .map(Some)
            .ok_or_else(|| Error::Invalid(format!("Email {e:?} is not a valid email address"))),
    }
}

impl JobRequest {
    fn parse(&self, today: Day) -> Result<JobSpec> {
        let start = day_param(required(&self.start_day, "StartDay")?, "StartDay")?;
        let end = day_param(required(&self.end_day, "EndDay")?, "EndDay")?;
        let friendly_name = required(&self.friendly_name, "FriendlyName")?.to_string();
        if start > end {
            return Err(Error::Invalid(format!(
                "StartDay {start} is after EndDay {end}"
            )));
        }
        let latest = today.minus_days(2);
        if end > latest {
            return Err(Error::Invalid(format!(
                "EndDay {end} is too recent: it must be at most two days before the current UTC day ({latest} or earlier)"
            )));
        }
        let webhook = webhook_params(self.webhook_url.as_deref(), self.webhook_method.as_deref())?;
        let email = email_param(self.email.as_deref())?;
        Ok(JobSpec {
            start,
            end,
            friendly_name,
            webhook,
            email,
        })
    }
}

/// Days of a job grouped by status, as `details` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusGroup {
    pub status: DayStatus,
    pub days: Vec<Day>,
}

impl StatusGroup {
    /// The days as text, comma-separated: `2024-01-01, 2024-01-03`.
    pub fn days_text(&self) -> String {
        let days: Vec<String> = self.days.iter().map(Day::to_string).collect();
        days.join(", ")
    }
}

/// A job as the API shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub sid: String,
    pub resource_type: ResourceType,
    pub friendly_name: String,
    pub start_day: Day,
    pub end_day: Day,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
    pub details: Vec<StatusGroup>,
    pub queue_position: Option<i64>,
    pub estimated_completion: Option<DateTime<Utc>>,
}

pub(crate) fn group_details(days: impl Iterator<Item = (Day, DayStatus)>) -> Vec<StatusGroup> {
    let mut groups: BTreeMap<DayStatus, Vec<Day>> = BTreeMap::new();
    for (day, status) in days {
        groups.entry(status).or_default().push(day);
    }
    groups
        .into_iter()
        .map(|(status, days)| StatusGroup { status, days })
        .collect()
}

fn not_found_job(sid: &str) -> Error {
    Error::NotFound(format!("/Exports/Jobs/{sid}"))
}

impl Exports {
    pub async fn create_job(
        &self,
        account_sid: &str,
        rt: ResourceType,
        req: &JobRequest,
        origin: &JobOrigin,
    ) -> Result<JobView> {
        let spec = req.parse(self.clock().today())?;
        if let Some((url, _)) = &spec.webhook {
            self.check_webhook_target(url.as_str()).await?;
        }
        let created_at = self.clock().now_ms();
        let job = NewJob {
            sid: SidKind::Job.generate_ordered(created_at),
            account_sid: account_sid.to_string(),
            resource_type: rt.as_str().to_string(),
            friendly_name: spec.friendly_name,
            start_day: spec.start.to_string(),
            end_day: spec.end.to_string(),
            webhook_url: spec.webhook.as_ref().map(|(u, _)| u.as_str().to_string()),
            webhook_method: spec.webhook.as_ref().map(|(_, m)| m.as_str().to_string()),
            email: spec.email.map(|e| e.as_str().to_string()),
            created_at,
            days: spec
                .start
                .through(spec.end)
                .map(|d| d.to_string())
                .collect(),
            kind: JobKind::Custom,
            request_id: crate::telemetry::request_id(),
        };
        // The account and its initiation-email recipients are read by the
        // transaction that stores the job, with the rest of its batch.
        let quota = self.day_quota();
        let placed = match self
            .db()
            .insert_job(&job, &Admission::Quota(quota.clone()))
            .await?
        {
            Ok(placed) => placed,
            Err(Refused::NoAccount) => {
                return Err(Error::Invalid(format!(
                    "account {account_sid} does not exist"
                )))
            }
            Err(Refused::Quota { root_sid, used }) => {
                self.metrics().quota_rejection();
                let left = (quota.limit - used).max(0);
                let resets = chrono::DateTime::from_timestamp_millis(quota.day_end)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default();
                let wait = ((quota.day_end - self.clock().now_ms()) / 1000).max(1) as u64;
                return Err(Error::QuotaExceeded(
                    format!(
                        "This job requests {} days, but only {left} of the {} days allowed per UTC day remain today for \
                         {} and its subaccounts; the allowance resets at {resets}",
                        job.days.len(),
                        quota.limit,
                        root_sid
                    ),
                    wait,
                ));
            }
        };
        self.inner.work_submitted.notify_waiters();
        self.announce_job_start(&job, &placed.recipients, origin)
            .await?;
        // The view of the job as stored (every day Submitted), without
        // reading it back.
        let details = group_details(
            spec.start
                .through(spec.end)
                .map(|day| (day, DayStatus::Submitted)),
        );
        let row = ShownJob {
            seq: placed.seq,
            sid: job.sid,
            resource_type: rt,
            friendly_name: job.friendly_name,
            start_day: spec.start,
            end_day: spec.end,
            webhook_url: job.webhook_url,
            webhook_method: job.webhook_method,
            email: job.email,
            finished_at: None,
        };
        Ok(self.job_view(row, details, Some(placed.place)))
    }

    /// Job-initiation emails to `recipients`: the owners and admins of the
    /// account, and of its parent for a subaccount, who have not unsubscribed.
    async fn announce_job_start(
        &self,
        job: &NewJob,
        recipients: &[UserRow],
        origin: &JobOrigin,
    ) -> Result<()> {
        let now = self.clock().now_ms();
        for user in recipients {
            let unsubscribe = format!(
                "{}/unsubscribe?AccountSid={}&Email={}&Signature={}",
                origin.base_url.trim_end_matches('/'),
                user.account_sid,
                url::form_urlencoded::byte_serialize(user.email.as_bytes()).collect::<String>(),
                self.inner
                    .signer
                    .sign(&super::unsubscribe_data(&user.account_sid, &user.email))
            );
            let subject = format!("Export job started: {}", job.friendly_name);
            let body = format!(
                "{} started an export custom job.\n\n\
                 Job:           {}\n\
                 Friendly name: {}\n\
                 Account:       {}\n\
                 Resource type: {}\n\
                 Days:          {} to {} ({} days)\n\n\
                 You get this email as {} of {}. To stop receiving job-initiation emails:\n{unsubscribe}\n",
                origin.initiated_by,
                job.sid,
                job.friendly_name,
                job.account_sid,
                job.resource_type,
                job.start_day,
                job.end_day,
                job.days.len(),
                user.role,
                user.account_sid
            );
            let key = format!(
                "job:{}:initiated:{}:{}",
                job.sid, user.account_sid, user.email
            );
            let cause = Cause {
                account_sid: &job.account_sid,
                job_sid: Some(&job.sid),
                request_id: job.request_id.as_deref(),
            };
            self.enqueue_email(key, cause, &user.email, &subject, &body, now)
                .await?;
        }
        Ok(())
    }

    /// The quota of the account's family (its parent and the parent's
    /// subaccounts) for the current UTC day of the service clock.
    /// Today's requested-days allowance of an account family.
    pub(super) fn day_quota(&self) -> DayQuota {
        let today = self.clock().today().date();
        let start = today
            .and_time(chrono::NaiveTime::MIN)
            .and_utc()
            .timestamp_millis();
        DayQuota {
            limit: self.inner.engine.requested_days_per_day,
            day_start: start,
            day_end: start + 86_400_000,
        }
    }

    pub async fn fetch_job(&self, account_sid: &str, sid: &str) -> Result<JobView> {
        if !SidKind::Job.matches(sid) {
            return Err(not_found_job(sid));
        }
        let ReadJob { row, days, place } = self
            .db()
            .find_job_with_days(account_sid, sid, self.jobs_visible_since())
            .await?
            .ok_or_else(|| not_found_job(sid))?;
        Ok(self.job_view(row, group_details(days.into_iter()), place))
    }

    /// The view of a job, with its place in the queue while unfinished.
    fn job_view(
        &self,
        row: ShownJob,
        details: Vec<StatusGroup>,
        place: Option<QueuePlace>,
    ) -> JobView {
        let estimated_completion = match place {
            None => row.finished_at.and_then(DateTime::from_timestamp_millis),
            Some(place) => self.estimate_completion(place),
        };
        JobView {
            sid: row.sid,
            resource_type: row.resource_type,
            friendly_name: row.friendly_name,
            start_day: row.start_day,
            end_day: row.end_day,
            webhook_url: row.webhook_url,
            webhook_method: row.webhook_method,
            email: row.email,
            details,
            queue_position: place.map(|p| p.position),
            estimated_completion,
        }
    }

    /// Now plus the days queued up to this job, spread over the workers, at
    /// the mean duration of recently finished days. None before any day finished.
    fn estimate_completion(&self, place: QueuePlace) -> Option<DateTime<Utc>> {
        let per_day_ms = place.recent_day_ms?;
        let ahead = place.open_days_ahead as f64;
        let workers = self.inner.engine.workers.max(1) as f64;
        let waves = (ahead / workers).ceil().max(1.0);
        let ms = (waves * per_day_ms.max(1.0)).round() as i64;
        Some(self.clock().now() + chrono::Duration::milliseconds(ms))
    }

    pub async fn list_jobs(
        &self,
        account_sid: &str,
        rt: ResourceType,
        page: PageRequest,
    ) -> Result<Page<JobView>> {
        let (after, before, limit) = page.bounds();
        let rows = self
            .db()
            .list_jobs(
                account_sid,
                rt.as_str(),
                after,
                before,
                limit,
                self.jobs_visible_since(),
            )
            .await?;
        let Page {
            items: rows,
            next,
            prev,
        } = page.paginate(rows, |read| read.row.seq);
        let views = rows
            .into_iter()
            .map(|ReadJob { row, days, place }| {
                self.job_view(row, group_details(days.into_iter()), place)
            })
            .collect();
        Ok(Page {
            items: views,
            next,
            prev,
        })
    }

    /// Deletes a job: queued days never run, a running day stops. Idempotent.
    pub async fn delete_job(&self, account_sid: &str, sid: &str) -> Result<()> {
        if !SidKind::Job.matches(sid) {
            return Err(not_found_job(sid));
        }
        if self
            .db()
            .delete_job(account_sid, sid, self.clock().now_ms())
            .await?
        {
            Ok(())
        } else {
            Err(not_found_job(sid))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(start: &str, end: &str) -> JobRequest {
        JobRequest {
            start_day: Some(start.into()),
            end_day: Some(end.into()),
            friendly_name: Some("x".into()),
            ..Default::default()
        }
    }

    #[test]
    fn end_day_must_be_two_days_back() {
        let today = Day::parse("2024-05-10").unwrap();
        assert!(req("2024-05-01", "2024-05-08").parse(today).is_ok());
        assert!(req("2024-05-01", "2024-05-09").parse(today).is_err());
        assert!(req("2024-05-08", "2024-05-01").parse(today).is_err());
    }

    #[test]
    fn details_group_days_by_status() {
        let g = group_details(
            [
                ("2024-01-01", DayStatus::Completed),
                ("2024-01-02", DayStatus::Submitted),
                ("2024-01-03", DayStatus::Completed),
            ]
            .into_iter()
            .map(|(d, s)| (Day::parse(d).unwrap(), s)),
        );
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].status, DayStatus::Submitted);
        assert_eq!(g[1].days_text(), "2024-01-01, 2024-01-03");
    }
}
