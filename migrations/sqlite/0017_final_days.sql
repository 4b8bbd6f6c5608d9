-- The days of a finished job with their final statuses, written by the
-- statement that records its end (src/db/jobs.rs, FINAL_DAYS): a job's days
-- no longer change once it finished, and FetchJob and each page of jobs then
-- read them from the job's row instead of joining its days. NULL for an
-- unfinished job, and for jobs that finished before this column: those are
-- read through the join, as before.
ALTER TABLE jobs ADD COLUMN final_days TEXT;
