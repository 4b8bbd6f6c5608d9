-- People of an account: who gets job-initiation emails (owners and admins).
CREATE TABLE users (
    account_sid TEXT NOT NULL REFERENCES accounts (sid),
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    initiation_emails BOOLEAN NOT NULL DEFAULT TRUE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (account_sid, email)
);
