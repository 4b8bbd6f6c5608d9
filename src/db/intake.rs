//! Storing new jobs: group commit. Concurrent job creations of this process
//! queue to one task, which stores all that are waiting in one transaction
//! (their accounts and initiation-email recipients read in one statement,
//! quota counters read and written once per family, the `job_seq` counter
//! taken once, jobs and days inserted with multi-row statements). A
//! transaction per job cost six round trips under SQLite's single write lock
//! (PostgreSQL: a commit's WAL flush) each; sixteen clients creating jobs at
//! once waited on each other's (docs/decisions.md).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use tokio::sync::{mpsc, oneshot};

use super::jobs::{counter, Admission, NewJob, QueuePlace, RECENT_DAY_MS};
use super::users::{group_recipients, recipients_sql, RecipientRow, Recipients};
use super::UserRow;
use super::{placeholders, with_pool, Db, Pool, Result};
use crate::domain::DayStatus;

/// Jobs stored by one transaction at most.
const BATCH: usize = 200;
/// Rows of one multi-row INSERT: well under both drivers' bind limits
/// (SQLite 32,766, PostgreSQL 65,535) at 12 columns a job and 7 a day.
const JOB_ROWS: usize = 200;
const DAY_ROWS: usize = 1000;

/// What a stored job answers: where it stands, or why it was refused.
type Stored = std::result::Result<Placed, Refused>;

/// Why a job subject to the quota was not stored.
#[derive(Debug, Clone, PartialEq)]
pub enum Refused {
    /// Its account does not exist.
    NoAccount,
    /// Its family (`root_sid`: the parent account, or the account itself)
    /// had already requested `used` days today.
    Quota { root_sid: String, used: i64 },
}

/// A new job's place in the queue order, read in the transaction that
/// stored it (as `Db::find_job_with_days` would read it right after).
#[derive(Debug, Clone)]
pub struct Placed {
    pub seq: i64,
    /// Its place among the unfinished jobs, with the recent pace read in
    /// the same transaction.
    pub place: QueuePlace,
    /// A job subject to the quota: the owners and admins of its account and
    /// of the parent who want job-initiation emails, read in the same
    /// transaction (else none).
    pub recipients: Vec<UserRow>,
}

struct Pending {
    job: NewJob,
    admission: Admission,
    reply: oneshot::Sender<Result<Stored>>,
}

/// The queue to the storing task, started by the first creation.
#[derive(Debug, Default)]
pub(super) struct Intake(OnceLock<mpsc::UnboundedSender<Pending>>);

/// What the storing task holds: the pool and SQLite's write gate, not the
/// `Db` (whose last clone, dropped, ends the task by closing the queue).
struct Store {
    pool: Pool,
    write_gate: std::sync::Arc<tokio::sync::Mutex<()>>,
}

impl Db {
    /// Stores a job and queues each of its days, atomically, if `admission`
    /// holds. Returns its place in the queue order, or what refused it: the
    /// days the family already requested today. Jobs created at the same
    /// time share a transaction; each is stored or refused as if alone.
    pub async fn insert_job(&self, job: &NewJob, admission: &Admission) -> Result<Stored> {
        let queue = self.intake.0.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let store = Store {
                pool: self.pool.clone(),
                write_gate: self.write_gate.clone(),
            };
            tokio::spawn(store.run(rx));
            tx
        });
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            job: job.clone(),
            admission: admission.clone(),
            reply,
        };
        if queue.send(pending).is_err() {
            return Err(super::Error::Misuse("the job intake stopped"));
        }
        answer
            .await
            .map_err(|_| super::Error::Misuse("the job intake stopped"))?
    }

    /// Stores automatic daily-export jobs, each unless its (account, resource
    /// type, day) already has one, in one transaction; returns how many were
    /// stored. The daily scheduler queues a midnight's jobs in such batches.
    pub async fn insert_daily_jobs(&self, jobs: &[NewJob]) -> Result<usize> {
        let _turn = self.write_turn().await;
        with_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            // One statement a chunk, not one a job: each is a round trip on
            // PostgreSQL, 40,000 of them after a midnight of 10,000 tenants.
            let mut claimed = std::collections::HashSet::with_capacity(jobs.len());
            for chunk in jobs.chunks(JOB_ROWS) {
                let sql = format!(
                    "INSERT INTO daily_exports (account_sid, resource_type, day, job_sid, created_at) VALUES {} \
                     ON CONFLICT (account_sid, resource_type, day) DO NOTHING RETURNING job_sid",
                    placeholders(chunk.len(), 5)
                );
                let mut query = sqlx::query_scalar::<_, String>(&sql);
                for job in chunk {
                    query = query
                        .bind(&job.account_sid)
                        .bind(&job.resource_type)
                        .bind(&job.start_day)
                        .bind(&job.sid)
                        .bind(job.created_at);
                }
                claimed.extend(query.fetch_all(&mut *tx).await?);
            }
            let first: Vec<&NewJob> = jobs.iter().filter(|j| claimed.contains(&j.sid)).collect();
            store_jobs!(tx, &first);
            tx.commit().await?;
            Ok(first.len())
        })
    }
}

/// Numbers `$jobs` (consecutive values of `job_seq`, in order) and stores
/// them with their days, in the transaction `$tx`; evaluates to the first
/// seq and the job days stored before them (`job_days_stored`). A macro
/// rather than a function: the transaction's type differs per driver (see
/// `with_pool!`).
macro_rules! store_jobs {
    ($tx:ident, $jobs:expr) => {{
        let jobs: &[&NewJob] = $jobs;
        let mut first = 0_i64;
        let mut days_before = 0_i64;
        if !jobs.is_empty() {
            // One step of each counter for them all: the row locks order
            // concurrent takers, so values follow commit order.
            let day_count: usize = jobs.iter().map(|j| j.days.len()).sum();
            let counters: Vec<(String, i64)> = sqlx::query_as(
                "UPDATE service_counters SET value = value + CASE name WHEN 'job_seq' THEN $1 ELSE $2 END \
                 WHERE name IN ('job_seq', 'job_days_stored') RETURNING name, value",
            )
            .bind(jobs.len() as i64)
            .bind(day_count as i64)
            .fetch_all(&mut *$tx)
            .await?;
            for (name, value) in counters {
                if name == "job_seq" {
                    first = value - jobs.len() as i64 + 1;
                } else {
                    days_before = value - day_count as i64;
                }
            }
            for (chunk_index, chunk) in jobs.chunks(JOB_ROWS).enumerate() {
                let sql = format!(
                    "INSERT INTO jobs (seq, sid, account_sid, resource_type, friendly_name, start_day, end_day, webhook_url, \
                     webhook_method, email, created_at, kind, request_id) VALUES {}",
                    placeholders(chunk.len(), 13)
                );
                let mut query = sqlx::query(&sql);
                for (i, job) in chunk.iter().enumerate() {
                    query = query
                        .bind(first + (chunk_index * JOB_ROWS + i) as i64)
                        .bind(&job.sid)
                        .bind(&job.account_sid)
                        .bind(&job.resource_type)
                        .bind(&job.friendly_name)
                        .bind(&job.start_day)
                        .bind(&job.end_day)
                        .bind(&job.webhook_url)
                        .bind(&job.webhook_method)
                        .bind(&job.email)
                        .bind(job.created_at)
                        .bind(job.kind.as_str())
                        .bind(&job.request_id);
                }
                query.execute(&mut *$tx).await?;
            }
            let days: Vec<(i64, &NewJob, &String)> = jobs
                .iter()
                .enumerate()
                .flat_map(|(i, job)| job.days.iter().map(move |d| (first + i as i64, *job, d)))
                .collect();
            for chunk in days.chunks(DAY_ROWS) {
                let sql = format!(
                    "INSERT INTO job_days (job_seq, job_sid, account_sid, resource_type, day, status, run_after) VALUES {}",
                    placeholders(chunk.len(), 7)
                );
                let mut query = sqlx::query(&sql);
                for (seq, job, day) in chunk {
                    query = query
                        .bind(*seq)
                        .bind(&job.sid)
                        .bind(&job.account_sid)
                        .bind(&job.resource_type)
                        .bind(*day)
                        .bind(DayStatus::Submitted.as_str())
                        .bind(job.created_at);
                }
                query.execute(&mut *$tx).await?;
            }
        }
        (first, days_before)
    }};
}
use store_jobs;

/// The jobs finished and the job days closed so far (see `jobs::COUNT_UP`),
/// and the recent pace of days (for the estimates).
static FINISHED_SO_FAR: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "SELECT {}, {}, ({})",
        counter("jobs_finished"),
        counter("job_days_closed"),
        *RECENT_DAY_MS
    )
});

impl Store {
    /// Takes what waits (up to `BATCH`), stores it, answers each, until every
    /// `Db` clone is gone.
    async fn run(self, mut queue: mpsc::UnboundedReceiver<Pending>) {
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while batch.len() < BATCH {
                match queue.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            let items: Vec<(&NewJob, &Admission)> =
                batch.iter().map(|p| (&p.job, &p.admission)).collect();
            match self.store(&items).await {
                Ok(stored) => {
                    for (pending, result) in batch.into_iter().zip(stored) {
                        let _ = pending.reply.send(Ok(result));
                    }
                }
                // Each alone, so that each gets its own answer (one job's
                // failure is not the others').
                Err(error) if batch.len() == 1 => {
                    let _ = batch.remove(0).reply.send(Err(error));
                }
                Err(_) => {
                    for pending in batch {
                        let result = self
                            .store(&[(&pending.job, &pending.admission)])
                            .await
                            .map(|mut r| r.remove(0));
                        let _ = pending.reply.send(result);
                    }
                }
            }
        }
    }

    /// Stores the admitted jobs of `items` in one transaction, in order.
    async fn store(&self, items: &[(&NewJob, &Admission)]) -> Result<Vec<Stored>> {
        let _turn = super::write_turn(&self.pool, &self.write_gate).await;
        with_pool!(self, |pool| {
            // The accounts of the jobs under the quota, each with its parent
            // (whose family's quota applies) and the recipients of its
            // job-initiation emails: one statement for the batch, before
            // the transaction (on SQLite a transaction that reads first
            // cannot always become a writer).
            let sids: std::collections::BTreeSet<&str> = items
                .iter()
                .filter(|(_, admission)| matches!(admission, Admission::Quota(_)))
                .map(|(job, _)| job.account_sid.as_str())
                .collect();
            let accounts: std::collections::HashMap<String, Recipients> = if sids.is_empty() {
                Default::default()
            } else {
                let sql = recipients_sql(sids.len());
                let mut query = sqlx::query_as::<_, RecipientRow>(&sql);
                for sid in &sids {
                    query = query.bind(*sid);
                }
                group_recipients(query.fetch_all(pool).await?)
            };
            let mut tx = pool.begin().await?;
            let root_of = |job: &NewJob| -> Option<String> {
                let (parent, _) = accounts.get(&job.account_sid)?;
                Some(parent.clone().unwrap_or_else(|| job.account_sid.clone()))
            };
            // Each family's counter of the UTC day, read (and on PostgreSQL
            // row-locked: other nodes' creations of the family wait) in
            // SID order, so that two nodes' batches never wait on each
            // other crosswise; the jobs are then admitted in order against it.
            let mut families: BTreeMap<(String, i64), (i64, i64)> = BTreeMap::new();
            for (job, admission) in items {
                if let (Admission::Quota(q), Some(root)) = (admission, root_of(job)) {
                    families.insert((root, q.day_start), (0, 0));
                }
            }
            for ((root, day_start), (before, _)) in families.iter_mut() {
                *before = sqlx::query_scalar(
                    "INSERT INTO quota_usage (root_sid, day_start, days) VALUES ($1, $2, 0) \
                     ON CONFLICT (root_sid, day_start) DO UPDATE SET days = quota_usage.days RETURNING days",
                )
                .bind(root.as_str())
                .bind(*day_start)
                .fetch_one(&mut *tx)
                .await?;
            }
            let mut stored = Vec::with_capacity(items.len());
            let mut admitted = Vec::with_capacity(items.len());
            for (job, admission) in items {
                if let Admission::Quota(q) = admission {
                    let Some(root_sid) = root_of(job) else {
                        stored.push(Err(Refused::NoAccount));
                        continue;
                    };
                    let (before, added) = families
                        .get_mut(&(root_sid.clone(), q.day_start))
                        .expect("every family was read");
                    let used = *before + *added;
                    let requested = job.days.len() as i64;
                    if q.limit > 0 && used + requested > q.limit {
                        stored.push(Err(Refused::Quota { root_sid, used }));
                        continue;
                    }
                    *added += requested;
                }
                stored.push(Ok(admitted.len()));
                admitted.push(*job);
            }
            for ((root, day_start), (before, added)) in &families {
                if *added > 0 {
                    sqlx::query(
                        "UPDATE quota_usage SET days = $3 WHERE root_sid = $1 AND day_start = $2",
                    )
                    .bind(root.as_str())
                    .bind(*day_start)
                    .bind(before + added)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            let (first, stored_before) = store_jobs!(tx, &admitted);
            // What is queued before the first of them: every unfinished job
            // and open day, as they are all older. From the counters, not
            // counted: the queue may hold a midnight's 40,000 daily days.
            let (jobs_before, days_before, recent_day_ms) = if admitted.is_empty() {
                (0, 0, None)
            } else {
                let (finished, closed, recent): (i64, i64, Option<f64>) =
                    sqlx::query_as(FINISHED_SO_FAR.as_str())
                        .fetch_one(&mut *tx)
                        .await?;
                (first - 1 - finished, stored_before - closed, recent)
            };
            tx.commit().await?;
            let mut days_ahead = days_before;
            let placed: Vec<Placed> = admitted
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    days_ahead += job.days.len() as i64;
                    Placed {
                        seq: first + i as i64,
                        place: QueuePlace {
                            position: jobs_before + i as i64 + 1,
                            open_days_ahead: days_ahead,
                            recent_day_ms,
                        },
                        recipients: accounts
                            .get(&job.account_sid)
                            .map(|(_, users)| users.clone())
                            .unwrap_or_default(),
                    }
                })
                .collect();
            // Each admitted job's index among the admitted, as its place.
            Ok(stored
                .into_iter()
                .map(|s| s.map(|index| placed[index].clone()))
                .collect())
        })
    }
}
