//! Integration tests: the real service on port 0, driven over HTTP.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod auth;
mod calls;
mod clock;
mod console;
mod control;
mod daily;
mod days;
mod edges;
mod fixtures;
mod hardening;
mod helpers;
mod ingest;
mod jobs;
mod lifecycle;
mod listener;
mod notifications;
mod observe;
mod openapi;
mod postgres;
mod process;
mod proxy;
mod pull;
mod quota;
mod retention;
