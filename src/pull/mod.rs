//! `bulkexport pull`: a range of days into files, from Twilio or from a
//! bulkexport. For each resource type it lists the Days there are, reuses
//! the jobs under way that cover the missing ones or creates jobs for them
//! (waiting out a 429), polls until every day is final, downloads each day
//! with resume, checks it is a whole gzip stream, counts its records, and
//! writes it atomically beside a manifest, so that a second run fetches
//! only what is missing or corrupt.

mod client;
mod load;
mod manifest;
pub mod schema;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

pub use client::{CallError, Client};
use manifest::{day_file, sha256_hex, Entry, Manifest};

use crate::config::Secret;
use crate::domain::{Day, ResourceType};

/// Days one created job covers at most (Twilio's allowance per UTC day).
const MAX_DAYS_PER_JOB: i64 = 366;
/// Attempts at one download before the day is given up for this run.
const DOWNLOAD_ATTEMPTS: u32 = 5;

/// What to pull, from where, into where.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub resource_types: Vec<ResourceType>,
    pub start: Day,
    pub end: Day,
    pub out: PathBuf,
    pub api_url: String,
    /// The credential: an account SID and token, or an API key and secret.
    pub user: String,
    pub secret: Secret,
    /// The account whose days these are (the folder's name).
    pub account_sid: String,
    /// How often unfinished jobs are polled.
    pub poll: Duration,
    pub quiet: bool,
    /// Also every subaccount of the account, listed at `accounts_api`
    /// (Twilio's `https://api.twilio.com`, or the bulkexport itself).
    pub subaccounts: bool,
    pub accounts_api: String,
    /// Also upsert the records into this PostgreSQL database, in this schema.
    pub load: Option<(Secret, String)>,
    /// The longest one wait for a quota reset lasts before asking again.
    pub max_wait: Duration,
    /// How the waits between polls and before a quota reset are spent.
    pub wait: Wait,
}

/// A wait of the pull: a real sleep, or any other way of letting that much
/// time pass (a test moves the clock of the service it pulls from, so that
/// the pull's time and the service's agree without anybody sleeping).
#[derive(Clone, Default)]
pub struct Wait(Option<WaitFn>);

type WaitFn = Arc<dyn Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync>;

impl Wait {
    /// Waits spent by `f` instead of a sleep.
    pub fn with(f: impl Fn(Duration) -> BoxFuture<'static, ()> + Send + Sync + 'static) -> Self {
        Self(Some(Arc::new(f)))
    }

    async fn wait(&self, d: Duration) {
        match &self.0 {
            Some(f) => f(d).await,
            None => tokio::time::sleep(d).await,
        }
    }
}

impl std::fmt::Debug for Wait {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Wait(custom)"
        } else {
            "Wait(sleep)"
        })
    }
}

/// A day not obtained, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Missing {
    pub account_sid: String,
    pub resource_type: String,
    pub day: String,
    pub reason: String,
}

/// What a run did.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub account_sid: String,
    /// The subaccounts pulled too (`--subaccounts`).
    pub subaccounts: Vec<String>,
    pub days_total: usize,
    /// Days present and whole after the run (fetched now or before).
    pub days_obtained: usize,
    pub days_downloaded: usize,
    pub bytes_downloaded: u64,
    pub jobs_created: Vec<String>,
    pub missing: Vec<Missing>,
    /// Records upserted into the database of `--load`.
    pub records_loaded: u64,
}

/// Runs a pull; the summary says what was obtained and what was not.
pub async fn run(o: &PullOptions) -> anyhow::Result<Summary> {
    anyhow::ensure!(o.start <= o.end, "--start-day is after --end-day");
    let client = Client::new(&o.api_url, &o.user, o.secret.expose())?;
    let mut accounts = vec![(o.account_sid.clone(), client)];
    if o.subaccounts {
        for (sid, token) in accounts[0]
            .1
            .subaccounts(&o.accounts_api, &o.account_sid)
            .await?
        {
            let sub = Client::new(&o.api_url, &sid, &token)?;
            accounts.push((sid, sub));
        }
    }
    let days: Vec<String> = o.start.through(o.end).map(|d| d.to_string()).collect();
    let mut summary = Summary {
        account_sid: o.account_sid.clone(),
        days_total: days.len() * o.resource_types.len() * accounts.len(),
        subaccounts: accounts
            .iter()
            .skip(1)
            .map(|(sid, _)| sid.clone())
            .collect(),
        ..Default::default()
    };
    let bar = if o.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::with_draw_target(
            Some(summary.days_total as u64),
            ProgressDrawTarget::stderr(),
        )
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} days final · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let loader = match &o.load {
        Some((url, schema)) => Some(load::Loader::connect(url.expose(), schema).await?),
        None => None,
    };
    for (account, client) in &accounts {
        for &rt in &o.resource_types {
            let folder = o.out.join(account).join(rt.as_str());
            std::fs::create_dir_all(&folder)?;
            pull_type(client, o, rt, &folder, &days, &mut summary, &bar).await?;
            if let Some(loader) = &loader {
                summary.records_loaded += loader.load(rt, account, &folder, &days).await?;
            }
        }
    }
    bar.finish_and_clear();
    Ok(summary)
}

/// The statuses that end a job day (a deleted job's days end too).
fn is_final(status: &str) -> bool {
    matches!(
        status,
        "Completed" | "CompletedEmptyRecords" | "Failed" | "DeletedByUserRequest"
    )
}

async fn pull_type(
    client: &Client,
    o: &PullOptions,
    rt: ResourceType,
    folder: &Path,
    days: &[String],
    summary: &mut Summary,
    bar: &ProgressBar,
) -> anyhow::Result<()> {
    let mut manifest = Manifest::load(folder)?;
    let todo: Vec<&String> = days.iter().filter(|d| !manifest.holds(folder, d)).collect();
    bar.inc((days.len() - todo.len()) as u64);
    summary.days_obtained += days.len() - todo.len();
    if todo.is_empty() {
        return Ok(());
    }
    let listed: BTreeSet<String> = client
        .list_days(rt)
        .await?
        .into_iter()
        .map(|d| d.day)
        .collect();
    // The job that will tell each day not yet published how it ended.
    let mut job_of: BTreeMap<String, String> = BTreeMap::new();
    let unlisted: Vec<&String> = todo
        .iter()
        .copied()
        .filter(|d| !listed.contains(*d))
        .collect();
    if !unlisted.is_empty() {
        let jobs = client.list_jobs(rt).await?;
        let mut create = Vec::new();
        for day in &unlisted {
            let under_way = jobs.iter().find(|j| {
                j.status_of(day)
                    .is_some_and(|s| matches!(s, "Submitted" | "Running" | "ErrorDuringRun"))
            });
            match under_way {
                Some(job) => {
                    job_of.insert((*day).clone(), job.job_sid.clone());
                }
                None => create.push(Day::parse(day).map_err(|e| anyhow::anyhow!("{e}"))?),
            }
        }
        for job in create_jobs(client, o, rt, runs(&create)).await? {
            summary.jobs_created.push(job.job_sid.clone());
            for day in job.covers() {
                job_of.insert(day.to_string(), job.job_sid.clone());
            }
        }
    }
    // Poll until every day a job will tell about is final.
    let mut status_of: BTreeMap<String, String> = BTreeMap::new();
    loop {
        let waiting: BTreeSet<&String> = job_of.values().collect();
        let mut pending = 0;
        for sid in waiting {
            let job = client.fetch_job(sid).await?;
            for (day, _) in job_of.iter().filter(|(_, s)| *s == sid) {
                let status = job.status_of(day).unwrap_or("Submitted").to_string();
                if !is_final(&status) {
                    pending += 1;
                }
                status_of.insert(day.clone(), status);
            }
        }
        if pending == 0 {
            break;
        }
        bar.set_message(format!("{} {pending} days under way", rt.as_str()));
        o.wait.wait(o.poll).await;
    }
    for day in todo {
        let status = status_of
            .get(day)
            .map(String::as_str)
            .unwrap_or("Completed");
        if matches!(status, "Failed" | "DeletedByUserRequest") {
            summary.missing.push(Missing {
                account_sid: account_of(folder),
                resource_type: rt.as_str().into(),
                day: day.clone(),
                reason: format!("the day ended {status} in job {}", job_of[day]),
            });
            bar.inc(1);
            continue;
        }
        match fetch_day(client, rt, folder, day, bar).await {
            Ok((bytes, records, sha256)) => {
                summary.days_downloaded += 1;
                summary.days_obtained += 1;
                summary.bytes_downloaded += bytes;
                manifest.days.insert(
                    day.clone(),
                    Entry {
                        status: if records == 0 {
                            "CompletedEmptyRecords"
                        } else {
                            "Completed"
                        }
                        .into(),
                        size: bytes,
                        sha256,
                        records,
                        job_sid: job_of.get(day).cloned(),
                        downloaded_at: crate::clock::Clock::system()
                            .now()
                            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    },
                );
                manifest.save(folder)?;
            }
            Err(reason) => summary.missing.push(Missing {
                account_sid: account_of(folder),
                resource_type: rt.as_str().into(),
                day: day.clone(),
                reason,
            }),
        }
        bar.inc(1);
    }
    Ok(())
}

/// The account a folder `DIR/<AccountSid>/<ResourceType>` belongs to.
fn account_of(folder: &Path) -> String {
    folder
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Runs of consecutive days, each at most [`MAX_DAYS_PER_JOB`] long.
fn runs(days: &[Day]) -> Vec<(Day, Day)> {
    let mut out: Vec<(Day, Day)> = Vec::new();
    for &day in days {
        match out.last_mut() {
            Some((start, end))
                if end.succ() == day
                    && (day.date() - start.date()).num_days() < MAX_DAYS_PER_JOB =>
            {
                *end = day
            }
            _ => out.push((day, day)),
        }
    }
    out
}

/// A job created for the days from `start` to `end`.
struct Created {
    job_sid: String,
    start: Day,
    end: Day,
}

impl Created {
    fn covers(&self) -> impl Iterator<Item = Day> {
        self.start.through(self.end)
    }
}

/// Creates a job for each run. A run refused by the quota (429) is split in
/// halves, so that what the allowance still takes today is asked for now;
/// a single day refused waits for the reset the answer announces
/// (`Retry-After`, at most `max_wait` at a time), saying so.
async fn create_jobs(
    client: &Client,
    o: &PullOptions,
    rt: ResourceType,
    runs: Vec<(Day, Day)>,
) -> anyhow::Result<Vec<Created>> {
    let mut pending: Vec<(Day, Day)> = runs.into_iter().rev().collect();
    let mut created = Vec::new();
    while let Some((start, end)) = pending.pop() {
        match client.create_job(rt, start, end).await {
            Ok(job) => created.push(Created {
                job_sid: job.job_sid,
                start,
                end,
            }),
            Err(CallError::Api {
                status: 429,
                message,
                retry_after,
                ..
            }) => {
                if start < end {
                    let half = (end.date() - start.date()).num_days() / 2;
                    let mid = start.through(end).nth(half as usize).unwrap_or(start);
                    pending.push((mid.succ(), end));
                    pending.push((start, mid));
                    continue;
                }
                let wait = Duration::from_secs(retry_after.unwrap_or(60).max(1)).min(o.max_wait);
                if !o.quiet {
                    eprintln!(
                        "{rt} {start}: {message}; waiting {} s for the allowance to reset",
                        wait.as_secs().max(1)
                    );
                }
                o.wait.wait(wait).await;
                pending.push((start, end));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(created)
}

/// Downloads a day with resume, checks it, and writes it atomically. Its
/// size, records and SHA-256; or why not.
async fn fetch_day(
    client: &Client,
    rt: ResourceType,
    folder: &Path,
    day: &str,
    bar: &ProgressBar,
) -> Result<(u64, u64, String), String> {
    let mut body: Vec<u8> = Vec::new();
    let mut etag: Option<String> = None;
    let mut last_error = String::new();
    for _ in 0..DOWNLOAD_ATTEMPTS {
        // A fresh link each attempt: an expired one is asked for again.
        let link = match client.day_link(rt, day).await {
            Ok(link) => link,
            Err(e) => return Err(format!("FetchDay: {e}")),
        };
        let response = match client
            .download(&link, body.len() as u64, etag.as_deref())
            .await
        {
            Ok(r) => r,
            Err(e) => {
                last_error = e.to_string();
                continue;
            }
        };
        if response.status().as_u16() == 200 {
            body.clear(); // a whole file: the range was not honoured
        }
        etag = response
            .headers()
            .get(reqwest::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut response = response;
        let complete = loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    bar.set_message(format!("{rt} {day}: {} bytes", body.len()));
                }
                Ok(None) => break true,
                Err(e) => {
                    last_error = format!("download cut at byte {}: {e}", body.len());
                    break false;
                }
            }
        };
        if !complete {
            continue;
        }
        let records = match count_records(&body) {
            Ok(n) => n,
            Err(e) => {
                last_error = format!("not a whole gzip file: {e}");
                body.clear();
                continue;
            }
        };
        let sha256 = sha256_hex(&body);
        let path = day_file(folder, day);
        let tmp = folder.join(format!(".{day}.json.gz.part"));
        std::fs::write(&tmp, &body)
            .and_then(|()| std::fs::File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("writing {}: {e}", path.display()))?;
        return Ok((body.len() as u64, records, sha256));
    }
    Err(last_error)
}

/// Lines in a whole gzip stream (every member, to its end and its CRC).
fn count_records(gz: &[u8]) -> std::io::Result<u64> {
    let mut decoder = flate2::read::MultiGzDecoder::new(gz);
    let mut buf = vec![0u8; 64 * 1024];
    let mut lines = 0u64;
    loop {
        let n = decoder.read(&mut buf)?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_days_make_one_run_of_at_most_a_years_allowance() {
        let d = |s: &str| Day::parse(s).unwrap();
        let days = [d("2026-01-01"), d("2026-01-02"), d("2026-01-04")];
        assert_eq!(
            runs(&days),
            vec![
                (d("2026-01-01"), d("2026-01-02")),
                (d("2026-01-04"), d("2026-01-04"))
            ]
        );
        let long: Vec<Day> = d("2024-01-01").through(d("2025-12-31")).collect();
        let split = runs(&long);
        assert_eq!(split.len(), 2);
        assert_eq!(
            (split[0].1.date() - split[0].0.date()).num_days() + 1,
            MAX_DAYS_PER_JOB
        );
    }

    #[test]
    fn records_are_counted_only_in_a_whole_gzip_stream() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"{\"a\":1}\n{\"a\":2}\n").unwrap();
        let whole = gz.finish().unwrap();
        assert_eq!(count_records(&whole).unwrap(), 2);
        assert!(count_records(&whole[..whole.len() - 4]).is_err());
    }
}
