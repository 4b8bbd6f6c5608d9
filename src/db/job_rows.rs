//! The rows of jobs and job days as read, decoded by position: a page of
//! ListExportCustomJob decodes 50 jobs, and decoding each column by name (a
//! lookup per column, a type check, an owned `String` per enum) cost a fifth
//! of the service's time in that call. The columns are this module's own
//! `JOB_COLUMNS` and `SHOWN_COLUMNS`; a value of another type still fails to
//! decode.

use std::sync::LazyLock;

use sqlx::{ColumnIndex, Decode, FromRow, Row, Type};

use super::jobs::JobKind;
use crate::domain::{BadDay, Day, DayStatus, ResourceType, UnknownDayStatus};

#[derive(Debug, Clone)]
pub struct JobRow {
    pub seq: i64,
    pub sid: String,
    pub account_sid: String,
    pub resource_type: ResourceType,
    pub friendly_name: String,
    pub start_day: Day,
    pub end_day: Day,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub kind: JobKind,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct JobDayRow {
    pub job_sid: String,
    pub day: Day,
    pub status: DayStatus,
}

/// An unfinished job's place in the queue, read with the job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QueuePlace {
    /// Its position among unfinished jobs, from 1.
    pub position: i64,
    /// The open job days at or before it, its own included.
    pub open_days_ahead: i64,
    /// The mean milliseconds of recent days (`jobs::RECENT_DAY_MS`), read
    /// by the same statement; None before any day completed.
    pub recent_day_ms: Option<f64>,
}

/// The columns of a job that its API view shows, and `seq` (the order of
/// pages): all that FetchJob and ListExportCustomJob read of the job.
#[derive(Debug, Clone)]
pub struct ShownJob {
    pub seq: i64,
    pub sid: String,
    pub resource_type: ResourceType,
    pub friendly_name: String,
    pub start_day: Day,
    pub end_day: Day,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
    pub finished_at: Option<i64>,
}

/// A job as its view needs it: the shown columns, its days and their
/// statuses in day order, and its place in the queue (None once it finished).
#[derive(Debug, Clone)]
pub struct ReadJob {
    pub row: ShownJob,
    pub days: Vec<(Day, DayStatus)>,
    pub place: Option<QueuePlace>,
}

/// A job and one of its days (none for a job without days), as a join
/// reads them, with the job's place in the queue.
pub(super) struct JobWithDay {
    job: ShownJob,
    day: Option<(Day, DayStatus)>,
    place: Option<QueuePlace>,
    /// A finished job's days, from its row (`jobs.final_days`): then the
    /// join read none of them.
    final_days: Option<Vec<(Day, DayStatus)>>,
}

macro_rules! shown_columns {
    () => {
        "seq, sid, resource_type, friendly_name, start_day, end_day, webhook_url, \
         webhook_method, email, finished_at"
    };
}

/// The columns a `ShownJob` is decoded from, in this order.
pub(super) const SHOWN_COLUMNS: &str = shown_columns!();

/// The columns a `JobRow` is decoded from, in this order: `SHOWN_COLUMNS`
/// first, then the rest.
pub(super) const JOB_COLUMNS: &str = concat!(
    shown_columns!(),
    ", account_sid, created_at, deleted_at, kind, request_id"
);

/// `SHOWN_COLUMNS` of the relation `j`.
pub(super) static SHOWN_COLUMNS_OF_J: LazyLock<String> = LazyLock::new(|| {
    let columns: Vec<String> = SHOWN_COLUMNS
        .split(',')
        .map(|c| format!("j.{}", c.trim()))
        .collect();
    columns.join(", ")
});

/// Column `index` read as text and parsed into `T`.
fn parsed<'r, R, T>(row: &'r R, index: usize) -> sqlx::Result<T>
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let text: &str = row.try_get_unchecked(index)?;
    text.parse().map_err(|e: T::Err| sqlx::Error::ColumnDecode {
        index: index.to_string(),
        source: e.to_string().into(),
    })
}

impl<'r, R> FromRow<'r, R> for JobRow
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        let ShownJob {
            seq,
            sid,
            resource_type,
            friendly_name,
            start_day,
            end_day,
            webhook_url,
            webhook_method,
            email,
            finished_at,
        } = ShownJob::from_row(row)?;
        Ok(JobRow {
            seq,
            sid,
            account_sid: text(row, 10)?,
            resource_type,
            friendly_name,
            start_day,
            end_day,
            webhook_url,
            webhook_method,
            email,
            created_at: row.try_get_unchecked(11)?,
            deleted_at: row.try_get_unchecked(12)?,
            finished_at,
            kind: parsed(row, 13)?,
            request_id: maybe_text(row, 14)?,
        })
    }
}

/// Column `i` as an owned string, and as an optional one.
fn text<'r, R>(row: &'r R, i: usize) -> sqlx::Result<String>
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get_unchecked::<&str, _>(i).map(str::to_owned)
}

fn maybe_text<'r, R>(row: &'r R, i: usize) -> sqlx::Result<Option<String>>
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
{
    row.try_get_unchecked::<Option<&str>, _>(i)
        .map(|s| s.map(str::to_owned))
}

impl<'r, R> FromRow<'r, R> for ShownJob
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
{
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        Ok(ShownJob {
            seq: row.try_get_unchecked(0)?,
            sid: text(row, 1)?,
            resource_type: parsed(row, 2)?,
            friendly_name: text(row, 3)?,
            start_day: parsed(row, 4)?,
            end_day: parsed(row, 5)?,
            webhook_url: maybe_text(row, 6)?,
            webhook_method: maybe_text(row, 7)?,
            email: maybe_text(row, 8)?,
            finished_at: row.try_get_unchecked(9)?,
        })
    }
}

impl<'r, R> FromRow<'r, R> for JobWithDay
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    f64: Decode<'r, R::Database> + Type<R::Database>,
{
    /// `SHOWN_COLUMNS`, then the day and its status (both NULL for no day),
    /// then the queue position, the open days ahead and the recent pace
    /// (see `jobs::read_jobs_sql`; the first two NULL for a finished job),
    /// then `final_days`.
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        let day = match row.try_get_unchecked::<Option<&str>, _>(10)? {
            Some(_) => Some((parsed(row, 10)?, parsed(row, 11)?)),
            None => None,
        };
        let position: Option<i64> = row.try_get_unchecked(12)?;
        let ahead: Option<i64> = row.try_get_unchecked(13)?;
        let place = match (position, ahead) {
            (Some(position), Some(open_days_ahead)) => Some(QueuePlace {
                position,
                open_days_ahead,
                recent_day_ms: row.try_get_unchecked(14)?,
            }),
            _ => None,
        };
        let final_days = match row.try_get_unchecked::<Option<&str>, _>(15)? {
            Some(text) => Some(final_days(text).map_err(|e| sqlx::Error::ColumnDecode {
                index: "15".to_string(),
                source: e.into(),
            })?),
            None => None,
        };
        Ok(JobWithDay {
            job: ShownJob::from_row(row)?,
            day,
            place,
            final_days,
        })
    }
}

impl<'r, R> FromRow<'r, R> for JobDayRow
where
    R: Row,
    usize: ColumnIndex<R>,
    &'r str: Decode<'r, R::Database> + Type<R::Database>,
{
    /// The job's SID, the day, its status.
    fn from_row(row: &'r R) -> sqlx::Result<Self> {
        Ok(JobDayRow {
            job_sid: row.try_get_unchecked::<&str, _>(0)?.to_owned(),
            day: parsed(row, 1)?,
            status: parsed(row, 2)?,
        })
    }
}

/// `jobs.final_days` (`jobs::final_days_of`): `yyyy-mm-ddStatus` items,
/// comma-separated, in any order; as the days in day order.
fn final_days(text: &str) -> Result<Vec<(Day, DayStatus)>, String> {
    let mut days = text
        .split(',')
        .map(|item| {
            let (day, status) = item
                .split_at_checked(10)
                .ok_or_else(|| format!("{item:?} is not a day and its status"))?;
            Ok((
                day.parse().map_err(|e: BadDay| e.to_string())?,
                status
                    .parse()
                    .map_err(|e: UnknownDayStatus| e.to_string())?,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    days.sort_unstable_by_key(|(day, _)| *day);
    Ok(days)
}

/// Jobs joined with their days (rows of one job adjacent, its days in any
/// order), as each job with its days in day order, in the order read.
pub(super) fn group_job_rows(rows: Vec<JobWithDay>) -> Vec<ReadJob> {
    let mut jobs: Vec<ReadJob> = Vec::new();
    for JobWithDay {
        job,
        day,
        place,
        final_days,
    } in rows
    {
        if jobs.last().is_none_or(|last| last.row.sid != job.sid) {
            jobs.push(ReadJob {
                row: job,
                days: final_days.unwrap_or_default(),
                place,
            });
        }
        if let (Some(day), Some(read)) = (day, jobs.last_mut()) {
            read.days.push(day);
        }
    }
    for read in &mut jobs {
        read.days.sort_unstable_by_key(|(day, _)| *day);
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_days_read_in_day_order_and_refuse_what_is_not_theirs() {
        let days =
            final_days("2024-06-03Failed,2024-06-01Completed,2024-06-02CompletedEmptyRecords")
                .unwrap();
        let read: Vec<(String, &str)> = days
            .iter()
            .map(|(day, status)| (day.to_string(), status.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                ("2024-06-01".to_string(), "Completed"),
                ("2024-06-02".to_string(), "CompletedEmptyRecords"),
                ("2024-06-03".to_string(), "Failed"),
            ]
        );
        for bad in [
            "",
            "2024-06-01",
            "2024-06-01Done",
            "2024-6-01Completed",
            "2024-06-01Completed,",
        ] {
            assert!(final_days(bad).is_err(), "{bad:?}");
        }
    }
}
