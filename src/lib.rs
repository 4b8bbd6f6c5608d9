//! bulkexport: a self-hosted service that speaks Twilio's BulkExport v1 API.
//!
//! Data flows one way:
//!
//! ```text
//! cli, api (axum: routes, wire shapes, Twilio errors)
//!   -> exports (use cases: accounts, ingest, jobs, days, configuration, workers)
//!        -> db     (sqlx over SQLite: the only SQL; the durable queue lives here)
//!        -> export (stream records -> JSON lines -> gzip -> staged blob)
//!        -> blob   (object_store: local files)
//!   domain (pure types: ResourceType, Sid, Day, DayStatus, record shapes, seeding)
//!   clock  (the one source of time)
//! ```
//!
//! `app` builds the whole service from `config::Settings` and runs it until a
//! shutdown signal. See ARCHITECTURE.md for how a job flows through these.

pub mod api;
pub mod app;
pub mod background;
pub mod blob;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod demo;
pub mod domain;
pub mod export;
pub mod exports;
pub mod gzip;
pub mod net;
pub mod notify;
pub mod private_files;
pub mod proxy;
