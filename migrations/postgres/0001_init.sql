-- Times are milliseconds since the Unix epoch (BIGINT); days are 'yyyy-mm-dd' text.

CREATE TABLE service_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE service_markers (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE accounts (
    sid TEXT PRIMARY KEY,
    friendly_name TEXT NOT NULL,
    auth_token TEXT NOT NULL,
    parent_sid TEXT REFERENCES accounts (sid),
    created_at BIGINT NOT NULL
);

CREATE TABLE api_keys (
    sid TEXT PRIMARY KEY,
    account_sid TEXT NOT NULL REFERENCES accounts (sid),
    friendly_name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE records (
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    record_key TEXT NOT NULL,
    day TEXT NOT NULL,
    sort_key TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (account_sid, resource_type, record_key)
);
CREATE INDEX records_by_day ON records (account_sid, resource_type, day, sort_key);

CREATE TABLE jobs (
    seq BIGINT PRIMARY KEY,
    sid TEXT NOT NULL UNIQUE,
    account_sid TEXT NOT NULL REFERENCES accounts (sid),
    resource_type TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    start_day TEXT NOT NULL,
    end_day TEXT NOT NULL,
    webhook_url TEXT,
    webhook_method TEXT,
    email TEXT,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT,
    finished_at BIGINT
);
CREATE INDEX jobs_by_account ON jobs (account_sid, resource_type, seq);
CREATE INDEX jobs_unfinished ON jobs (finished_at, seq);

-- One row per day of a job: the durable queue.
CREATE TABLE job_days (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_seq BIGINT NOT NULL,
    job_sid TEXT NOT NULL REFERENCES jobs (sid),
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    day TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    run_after BIGINT NOT NULL,
    locked_by TEXT,
    heartbeat_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    last_error TEXT,
    UNIQUE (job_sid, day)
);
CREATE INDEX job_days_queue ON job_days (status, job_seq, day);
CREATE INDEX job_days_finished ON job_days (finished_at);

-- The Day resource: the published file of one (account, resource type, day).
CREATE TABLE days (
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    day TEXT NOT NULL,
    size BIGINT NOT NULL,
    record_count BIGINT NOT NULL,
    create_date TEXT NOT NULL,
    friendly_name TEXT NOT NULL,
    job_sid TEXT,
    blob_key TEXT NOT NULL,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_sid, resource_type, day)
);
CREATE INDEX days_by_generation ON days (account_sid, resource_type, generation);

CREATE TABLE export_configurations (
    account_sid TEXT NOT NULL,
    resource_type TEXT NOT NULL,
    enabled BOOLEAN NOT NULL,
    webhook_url TEXT,
    webhook_method TEXT,
    email TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account_sid, resource_type)
);

-- Blobs written but not (or no longer) referenced, to be removed.
CREATE TABLE blob_garbage (
    blob_key TEXT PRIMARY KEY,
    not_before BIGINT NOT NULL
);

CREATE TABLE service_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO service_counters (name, value) VALUES ('job_seq', 0), ('day_generation', 0);
