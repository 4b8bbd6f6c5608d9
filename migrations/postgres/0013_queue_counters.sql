-- Counters that place a new job in the queue without counting the queue
-- (src/db/jobs.rs, COUNT_UP): the unfinished jobs are job_seq - jobs_finished,
-- their open days job_days_stored - job_days_closed.
INSERT INTO service_counters (name, value)
    SELECT 'jobs_finished', (SELECT value FROM service_counters WHERE name = 'job_seq')
        - (SELECT COUNT(*) FROM jobs WHERE finished_at IS NULL);
INSERT INTO service_counters (name, value)
    SELECT 'job_days_stored', COUNT(*) FROM job_days
    WHERE status IN ('Submitted', 'Running', 'ErrorDuringRun', 'RunningToBeDeleted');
INSERT INTO service_counters (name, value) VALUES ('job_days_closed', 0);
