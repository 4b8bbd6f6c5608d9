-- A record can be gone from the REST API (the Call resource), from the
-- exports (the archived record), or both (then the row is removed).
ALTER TABLE records ADD COLUMN rest_deleted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE records ADD COLUMN export_deleted BOOLEAN NOT NULL DEFAULT FALSE;

-- Requested deletions of call records, applied by the batch task.
CREATE TABLE deletions (
    account_sid TEXT NOT NULL,
    call_sid TEXT NOT NULL,
    -- 'archive' (DeleteArchivedCall) or 'rest' (DELETE of the Call resource)
    source TEXT NOT NULL,
    day TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    applied_at BIGINT,
    outcome TEXT,
    PRIMARY KEY (account_sid, call_sid, source)
);
CREATE INDEX deletions_pending ON deletions (applied_at, requested_at);

-- Bumped whenever the records of a day change under a running export, so
-- that an export which read the old records does not publish them.
CREATE TABLE day_versions (
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    day TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (account_sid, resource_type, day)
);

-- Periodic tasks claim each due slot once across all processes.
CREATE TABLE periodic_runs (
    task TEXT NOT NULL,
    slot BIGINT NOT NULL,
    claimed_by TEXT NOT NULL,
    claimed_at BIGINT NOT NULL,
    PRIMARY KEY (task, slot)
);

-- The day_versions.version a published file was exported from; a file behind
-- its day's version is rewritten.
ALTER TABLE days ADD COLUMN content_version BIGINT NOT NULL DEFAULT 0;
