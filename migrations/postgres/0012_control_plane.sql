-- The control plane for test suites: what each notification was, sent and
-- met (the delivery journal), and the fault rules every node applies.
ALTER TABLE deliveries ADD COLUMN job_sid TEXT;
-- The exact headers of the last webhook request sent, as a JSON list of pairs.
ALTER TABLE deliveries ADD COLUMN headers TEXT;
-- A WebhookDelay fault that held the delivery back.
ALTER TABLE deliveries ADD COLUMN fault TEXT;
ALTER TABLE delivery_attempts ADD COLUMN status_code BIGINT;
ALTER TABLE delivery_attempts ADD COLUMN fault TEXT;

CREATE TABLE faults (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sid TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    account_sid TEXT,
    resource_type TEXT,
    day TEXT,
    job_sid TEXT,
    operation TEXT,
    -- Fires at most this often (NULL: no limit), with this probability.
    times BIGINT,
    probability DOUBLE PRECISION NOT NULL DEFAULT 1,
    -- The kind's own values (Message, Seconds, Copies, Bytes, Status, Code) as JSON.
    params TEXT NOT NULL,
    fired BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
