//! The `bulkexport` command line: one binary, subcommands sharing one set of settings.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use serde::Serialize;

/// `println!` that never panics: a closed stdout (`| head`) is not an error
/// worth a panic.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `eprintln!` that never panics on a closed stderr.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

mod commands;
mod pull;

use crate::app::{self, Application};
use crate::clock::Clock;
use crate::config::{SettingFlags, Settings};
use crate::domain::{Day, ResourceType};
use commands::{
    accounts, ca, healthcheck, ingest, list_deletions, list_deliveries, migrate, users, worker,
};

#[derive(Parser, Debug)]
#[command(
    name = "bulkexport",
    version,
    about = "A self-hosted, Twilio-compatible BulkExport service"
)]
pub struct Cli {
    #[command(flatten)]
    settings: SettingFlags,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the HTTP API and the export workers.
    Serve {
        /// Create (once) a demo account with a week of records, and print how to use it.
        #[arg(long)]
        demo: bool,
        /// Start the service clock at this RFC 3339 instant (it then runs forward in
        /// real time) and allow moving it forward with POST /admin/v1/Clock.
        #[arg(long, value_name = "INSTANT", value_parser = parse_instant)]
        clock: Option<chrono::DateTime<chrono::Utc>>,
        /// Also listen on ADDR as an HTTPS proxy for the Twilio API hosts, so the
        /// official clients work unchanged (see `bulkexport ca path`).
        /// (The setting `proxy_listen`, `BULKEXPORT_PROXY_LISTEN`.)
        #[arg(long, value_name = "ADDR")]
        proxy_listen: Option<String>,
        /// Make sure the service holds what this TOML file describes, at start
        /// and after each reset (the setting `fixtures`, `BULKEXPORT_FIXTURES`).
        #[arg(long, value_name = "FILE")]
        fixtures: Option<PathBuf>,
        /// Once it accepts connections, write one JSON object here: `url`,
        /// `pid`, `proxy_url`, and the demo or first fixture account's
        /// `account_sid` and `auth_token` (for test harnesses; works with port 0).
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Remove every account, record, job, day, file, notification and fault,
    /// then apply the fixtures again (as POST /admin/v1/Reset does; while a
    /// server runs, prefer that: it also forgets what the server remembers).
    Reset {
        /// The fixtures to apply (else the setting `fixtures`).
        #[arg(long, value_name = "FILE")]
        fixtures: Option<PathBuf>,
    },
    /// Bring a range of days into files, from Twilio or from a bulkexport:
    /// jobs reused or created, days polled, downloaded with resume, checked,
    /// and kept beside a manifest (docs/pull.md).
    Pull(pull::PullArgs),
    /// Print the day-file schema of a resource type: JSON Schema, or a table
    /// for PostgreSQL, DuckDB (a view over pulled files) or BigQuery.
    Schema(pull::SchemaArgs),
    /// The local CA of the proxy mode.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Run only the export workers (no HTTP listener), sharing the database and storage.
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Exit 0 when the service answers `/readyz` with 200 (a container health check).
    Healthcheck {
        /// The readiness URL (default: /readyz on the `listen` address).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
    /// Manage accounts.
    #[command(subcommand)]
    Accounts(AccountsCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Load NDJSON records (plain or gzip) into an account; exits non-zero
    /// when any line is rejected, unless --allow-rejects.
    Ingest {
        /// The account the records belong to (AC…).
        #[arg(long, value_name = "ACSID")]
        account: String,
        /// Messages, Calls, Conferences or Participants.
        #[arg(long, value_name = "TYPE", value_parser = parse_resource_type)]
        resource_type: ResourceType,
        /// Exit 0 even when some lines are rejected (the report lists them).
        #[arg(long)]
        allow_rejects: bool,
        /// NDJSON files, one record per line, in the REST shape or the
        /// day-file shape, plain or gzip (detected by content).
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Manage the users of an account (owners and admins get job-initiation emails).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Deleted call records, pending and applied.
    #[command(subcommand)]
    Deletions(DeletionsCommand),
    /// Inspect notifications (webhooks, emails) and their attempts.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Generate deterministic synthetic records.
    Seed {
        /// The account the records belong to (AC…).
        #[arg(long, value_name = "ACSID")]
        account: String,
        /// Messages, Calls, Conferences or Participants.
        #[arg(long, value_name = "TYPE", value_parser = parse_resource_type)]
        resource_type: ResourceType,
        /// First UTC day, yyyy-mm-dd.
        #[arg(long, value_name = "DAY", value_parser = parse_day)]
        start_day: Day,
        /// Last UTC day, yyyy-mm-dd (included).
        #[arg(long, value_name = "DAY", value_parser = parse_day)]
        end_day: Day,
        /// Records per day.
        #[arg(long, value_name = "N")]
        per_day: u32,
        /// The same seed gives the same records.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Subcommand, Debug)]
enum AccountsCommand {
    /// Create an account (or a subaccount with --parent); prints it as JSON.
    Create {
        #[arg(long)]
        friendly_name: String,
        #[arg(long)]
        parent: Option<String>,
        /// Put the account on an Editions plan (automatic daily exports).
        #[arg(long)]
        editions: bool,
    },
    /// Change an account's plan.
    Update {
        account: String,
        /// true: an Editions plan (automatic daily exports); false: not.
        #[arg(long, action = clap::ArgAction::Set)]
        editions: bool,
    },
    /// List accounts as JSON lines.
    List,
}

#[derive(Subcommand, Debug)]
enum CaCommand {
    /// Create the CA in the data directory unless it exists; prints its certificate's path.
    Init,
    /// Print the path of the CA certificate that clients must trust.
    Path,
}

#[derive(Subcommand, Debug)]
enum UsersCommand {
    /// Add a user (or change the role of an existing one).
    Add {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
        /// owner, admin, or another role
        #[arg(long)]
        role: String,
    },
    /// One JSON line per user.
    List {
        #[arg(long)]
        account: String,
    },
    /// Remove a user.
    Remove {
        #[arg(long)]
        account: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Subcommand, Debug)]
enum DeletionsCommand {
    /// One JSON line per requested deletion, with when it was applied and how.
    List {
        #[arg(long)]
        account: String,
    },
}

#[derive(Subcommand, Debug)]
enum DeliveriesCommand {
    /// One JSON line per delivery, newest first, with every attempt and its outcome.
    List {
        #[arg(long)]
        account: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
}

#[derive(Subcommand, Debug)]
enum KeysCommand {
    /// Create an API key; prints its SID and secret (shown only once) as JSON.
    Create {
        #[arg(long)]
        account: String,
        #[arg(long, default_value = "api key")]
        friendly_name: String,
    },
}

fn parse_resource_type(s: &str) -> Result<ResourceType, String> {
    s.parse()
        .map_err(|e: crate::domain::UnknownResourceType| e.to_string())
}

fn parse_instant(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("{s:?} is not an RFC 3339 instant such as 2026-01-10T00:00:00Z: {e}"))
}

fn parse_day(s: &str) -> Result<Day, String> {
    Day::parse(s).map_err(|e| e.to_string())
}

fn millis(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

fn print_json(v: &impl Serialize) -> anyhow::Result<()> {
    outln!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// An error and its causes on one line, each cause once: a cause whose
/// text the message already holds is not repeated.
pub fn describe(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::load(&cli.settings)?;
    if let Command::Serve {
        fixtures: Some(file),
        ..
    }
    | Command::Reset {
        fixtures: Some(file),
    } = &cli.command
    {
        settings.fixtures = Some(file.clone());
    }
    crate::telemetry::logging::init(settings.log_format);
    let clock = Clock::system();
    match cli.command {
        Command::Healthcheck { url } => healthcheck(&settings, url).await,
        Command::Serve {
            demo,
            clock: start,
            proxy_listen,
            fixtures: _,
            ready_file,
        } => {
            let clock = start.map(Clock::starting_at).unwrap_or(clock);
            let options = ServeOptions {
                settable_clock: start.is_some(),
                demo,
                proxy_listen: proxy_listen.or_else(|| settings.proxy_listen.clone()),
                ready_file,
            };
            serve(&settings, clock, options).await
        }
        Command::Pull(args) => pull::pull(args).await,
        Command::Schema(args) => pull::schema(&args),
        Command::Ca(command) => ca(&settings, command),
        Command::Worker => worker(&settings, clock).await,
        Command::Migrate => migrate(&settings, clock).await,
        Command::Reset { .. } => {
            app::open(&settings, clock).await?.reset().await?;
            outln!("reset");
            Ok(())
        }
        Command::Accounts(command) => accounts(&app::open(&settings, clock).await?, command).await,
        Command::Users(command) => users(&app::open(&settings, clock).await?, command).await,
        Command::Deletions(DeletionsCommand::List { account }) => {
            list_deletions(&app::open(&settings, clock).await?, &account).await
        }
        Command::Deliveries(DeliveriesCommand::List { account, limit }) => {
            list_deliveries(
                &app::open(&settings, clock).await?,
                account.as_deref(),
                limit,
            )
            .await
        }
        Command::Keys(KeysCommand::Create {
            account,
            friendly_name,
        }) => {
            let ex = app::open(&settings, clock).await?;
            print_json(&ex.create_api_key(&account, &friendly_name).await?)
        }
        Command::Ingest {
            account,
            resource_type,
            allow_rejects,
            files,
        } => {
            let ex = app::open(&settings, clock).await?;
            ingest(&ex, &account, resource_type, &files, allow_rejects).await
        }
        Command::Seed {
            account,
            resource_type,
            start_day,
            end_day,
            per_day,
            seed: seed_value,
        } => {
            anyhow::ensure!(
                start_day <= end_day,
                "--start-day must not be after --end-day"
            );
            let ex = app::open(&settings, clock).await?;
            let report = ex
                .seed(
                    &account,
                    resource_type,
                    start_day,
                    end_day,
                    per_day,
                    seed_value,
                )
                .await?;
            print_json(&serde_json::json!({"loaded": report.loaded, "replaced": report.replaced}))
        }
    }
}

/// What `serve` was asked beyond the settings.
struct ServeOptions {
    settable_clock: bool,
    demo: bool,
    proxy_listen: Option<String>,
    ready_file: Option<PathBuf>,
}

async fn serve(settings: &Settings, clock: Clock, options: ServeOptions) -> anyhow::Result<()> {
    let ServeOptions {
        settable_clock,
        demo,
        proxy_listen,
        ready_file,
    } = options;
    let mut app = Application::build(settings, clock).await?;
    let mut proxy_url = None;
    if let Some(addr) = proxy_listen {
        let bound = app.enable_proxy(&addr, &settings.data_dir).await?;
        proxy_url = Some(format!("http://{bound}"));
        tracing::info!(proxy = %bound, ca = %crate::proxy::ca::cert_path(&settings.data_dir).display(),
            "also listening as an HTTPS proxy for the Twilio API hosts");
    }
    if settable_clock {
        app.allow_clock_changes();
        tracing::info!(now = %app.exports().clock().now(), "the service clock is settable: POST /admin/v1/Clock");
    }
    let addr = app.local_addr()?;
    let base = settings
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{addr}"));
    let mut credentials = None;
    if demo {
        let (account, token) = crate::demo::ensure_demo(app.exports(), &base).await?;
        outln!(
            "{}",
            crate::demo::instructions(&base, &account, &token, app.exports().clock().today())
        );
        credentials = Some((account, token));
    } else if let Some(file) = &settings.fixtures {
        credentials = crate::exports::Fixtures::load(file)
            .map_err(|e| anyhow::anyhow!(e))?
            .first_account();
    }
    if let Some(path) = &ready_file {
        let ready = serde_json::json!({
            "url": base, "pid": std::process::id(), "proxy_url": proxy_url,
            "account_sid": credentials.as_ref().map(|c| &c.0),
            "auth_token": credentials.as_ref().map(|c| &c.1),
        });
        write_ready_file(path, &ready)?;
    }
    tracing::info!(%addr, data_dir = %settings.data_dir.display(), "bulkexport listening");
    app.run_until_stopped(app::shutdown_on_signals()).await
}

/// Writes `ready` to `path` whole or not at all (a reader polling for the
/// file never sees half of it); private, as it may hold a token.
fn write_ready_file(path: &std::path::Path, ready: &serde_json::Value) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, format!("{ready}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| anyhow::anyhow!("cannot write the ready file {}: {e}", path.display()))
}
