//! bulkexport: a self-hosted service that speaks Twilio's BulkExport v1 API.
//!
//! Data flows one way:
//!
//! ```text
//! cli, api (axum: routes, wire shapes, Twilio errors, the HTTP listener)
//!      proxy (CONNECT + TLS from a local CA, into the api's public routes)
//!   -> exports (use cases: accounts, ingest, jobs, days, configuration, workers, notifications)
//!        -> db     (sqlx over SQLite or PostgreSQL: all SQL; the durable queue)
//!        -> export (a day's lines -> parallel gzip -> staged blob)
//!        -> blob   (object_store: local directory or S3 bucket)
//!        -> notify (webhooks and email: signatures, timeouts, address checks)
//!   domain (pure types: ResourceType, SidKind, Day, DayStatus, record shapes, seeding)
//! ```
//!
//! The modules:
//!
//! - [`api`]: the HTTP API (routes, extractors, wire shapes, Twilio errors,
//!   downloads with ranges, the admin API and its control plane (`api::control`:
//!   reset, faults, journals), throttling of failed authentications, request
//!   ids and access logs (`api::observe`), probes and `/metrics`
//!   (`api::health`), the HTTP/1.1 listener with its timeouts), and the web
//!   console (`api::console`: pages rendered with maud, signed-cookie
//!   sessions with CSRF tokens, a strict CSP).
//! - [`proxy`]: the proxy mode for unmodified clients (CONNECT, a local CA).
//! - [`pull`]: `bulkexport pull`, a client of the BulkExport API (Twilio's
//!   or a bulkexport's) that brings a range of days into files.
//! - [`cli`]: the command line; `serve` in `cli`, the other subcommands in
//!   `cli::commands`.
//! - [`app`]: wiring: build the service from settings and run it.
//! - [`exports`]: the use cases, called by the API and the CLI; for test
//!   suites also fixtures (`exports::fixtures`), reset, fault rules
//!   (`exports::faults`) and journals (`exports::journal`); for the console,
//!   day previews, quota and signature checks (`exports::console`).
//! - [`db`]: every SQL statement, over SQLite or PostgreSQL; the record
//!   engine (`db::records`), the line segments of SQLite (`db::lines`) and of
//!   PostgreSQL (`db::records::segments`), the
//!   group commit of new jobs (`db::intake`), the work queue (`db::queue`)
//!   and the list of day files to remove (`db::garbage`).
//! - [`export`]: exporting one day into a staged blob.
//! - [`blob`]: day files in a local directory or an S3 bucket, and the
//!   removal of what interrupted uploads leave.
//! - [`gzip`]: parallel gzip that writes one member (pigz's scheme).
//! - [`background`]: threads at background priority for long work.
//! - [`notify`]: webhooks with Twilio's signature and the internal-address filter,
//!   and email over SMTP.
//! - [`domain`]: closed sets as enums, parsed values, record shapes and their
//!   normalisation (`domain::record`), seeding, the API's operation ids
//!   (`domain::operations`). No I/O.
//! - [`telemetry`]: metrics (one Prometheus recorder per service), the log
//!   format, the id of the request being served.
//! - [`clock`]: the one source of time, settable for tests.
//! - [`config`]: settings (defaults, TOML, `BULKEXPORT_*`, flags) and
//!   secrets that never print.
//! - [`net`]: CIDR ranges and the special-purpose address ranges.
//! - [`private_files`]: the umask and the permissions of the data directory.
//! - [`demo`]: the demo account and job of `serve --demo`.
//!
//! ARCHITECTURE.md says where each step of a job happens.

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
pub mod pull;
pub mod telemetry;
