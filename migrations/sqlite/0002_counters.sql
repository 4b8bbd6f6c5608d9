-- Monotonic counters taken inside the transaction that uses them, so that job
-- order and Day generation order are commit order on every database.
CREATE TABLE service_counters (
    name TEXT PRIMARY KEY,
    value BIGINT NOT NULL
);
INSERT INTO service_counters (name, value) SELECT 'job_seq', COALESCE(MAX(seq), 0) FROM jobs;
INSERT INTO service_counters (name, value) SELECT 'day_generation', COALESCE(MAX(generation), 0) FROM days;
