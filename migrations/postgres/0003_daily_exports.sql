-- Editions plans, automatic daily exports.
ALTER TABLE accounts ADD COLUMN editions BOOLEAN NOT NULL DEFAULT FALSE;
-- 'custom' (ExportCustomJob) or 'daily' (an automatic daily export).
ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'custom';
-- When automatic exports were last switched on: days from then on are exported.
ALTER TABLE export_configurations ADD COLUMN enabled_at BIGINT;

-- One row per automatic export of a day: its unique key makes it happen once
-- across restarts and processes.
CREATE TABLE daily_exports (
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    day TEXT NOT NULL,
    job_sid TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_sid, resource_type, day)
);
