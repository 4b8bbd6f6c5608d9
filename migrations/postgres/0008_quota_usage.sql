-- The custom-job days each account family (a root account and its
-- subaccounts) requested per UTC day, for the quota: one row added to in the
-- creating transaction, instead of a count over jobs and job days that grew
-- with every job stored. Rows older than the job retention are removed with
-- the jobs.
CREATE TABLE quota_usage (
    root_sid TEXT NOT NULL,
    day_start BIGINT NOT NULL,
    days BIGINT NOT NULL,
    PRIMARY KEY (root_sid, day_start)
);
INSERT INTO quota_usage (root_sid, day_start, days)
    SELECT COALESCE(a.parent_sid, a.sid), j.created_at - j.created_at % 86400000, COUNT(*)
    FROM job_days d JOIN jobs j ON j.sid = d.job_sid JOIN accounts a ON a.sid = j.account_sid
    WHERE j.kind = 'custom'
    GROUP BY COALESCE(a.parent_sid, a.sid), j.created_at - j.created_at % 86400000;
