-- Takeovers of a job day after its worker lost the lease (a crash, a
-- restart) count apart from attempts that ended in an error.
ALTER TABLE job_days ADD COLUMN takeovers INTEGER NOT NULL DEFAULT 0;
-- 1 when the current claim is a takeover, so that giving the day back
-- (shutdown) undoes the count it added.
ALTER TABLE job_days ADD COLUMN claim_took_over INTEGER NOT NULL DEFAULT 0;
