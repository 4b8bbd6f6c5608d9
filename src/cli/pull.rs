//! `bulkexport pull`: its arguments, credentials from flags or the usual
//! environment, and its exit status (0 all obtained, 2 some not, 1 errors).

use std::path::PathBuf;

use super::{parse_day, parse_resource_type, print_json};
use crate::clock::Clock;
use crate::domain::{Day, ResourceType};

#[derive(clap::Args, Debug)]
pub(super) struct PullArgs {
    /// Messages, Calls, Conferences or Participants; repeatable.
    #[arg(long = "resource-type", value_name = "TYPE", required = true, value_parser = parse_resource_type)]
    resource_types: Vec<ResourceType>,
    /// First UTC day, yyyy-mm-dd.
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    start_day: Day,
    /// Last UTC day (default: two days before today, the last Twilio accepts).
    #[arg(long, value_name = "DAY", value_parser = parse_day)]
    end_day: Option<Day>,
    /// Where files go: DIR/<AccountSid>/<ResourceType>/<day>.json.gz and manifest.json.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The API: Twilio's, or a bulkexport's URL.
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://bulkexports.twilio.com"
    )]
    api_url: String,
    /// The account (else TWILIO_ACCOUNT_SID).
    #[arg(long, value_name = "ACSID", env = "TWILIO_ACCOUNT_SID")]
    account_sid: Option<String>,
    /// Its auth token (else TWILIO_AUTH_TOKEN, or TWILIO_API_KEY with TWILIO_API_SECRET).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "TWILIO_AUTH_TOKEN",
        hide_env_values = true
    )]
    auth_token: Option<crate::config::Secret>,
    /// Also every subaccount of the account (listed with the 2010 API's
    /// Accounts list), each into its own folder.
    #[arg(long)]
    subaccounts: bool,
    /// Where the 2010 API's Accounts list is (default: api.twilio.com for
    /// Twilio, else the --api-url).
    #[arg(long, value_name = "URL")]
    accounts_api_url: Option<String>,
    /// Also upsert every record of the pulled days into this PostgreSQL
    /// database (`postgres://…`), a typed table per resource type.
    #[arg(long, value_name = "URL")]
    load: Option<crate::config::Secret>,
    /// The schema of --load's tables.
    #[arg(long, value_name = "NAME", default_value = "public")]
    load_schema: String,
    /// The longest one wait for a quota reset lasts before asking again.
    #[arg(long, value_name = "N", default_value_t = 3600)]
    max_wait_secs: u64,
    /// Seconds between polls of unfinished jobs.
    #[arg(long, value_name = "N", default_value_t = 5)]
    poll_secs: u64,
    /// No progress on stderr.
    #[arg(long)]
    quiet: bool,
    /// Print a summary object on stdout.
    #[arg(long)]
    json: bool,
}

pub(super) async fn pull(a: PullArgs) -> anyhow::Result<()> {
    let account_sid = a
        .account_sid
        .ok_or_else(|| anyhow::anyhow!("pull needs --account-sid (or TWILIO_ACCOUNT_SID)"))?;
    let (user, secret) = match (a.auth_token, std::env::var("TWILIO_API_KEY"), std::env::var("TWILIO_API_SECRET")) {
        (Some(token), _, _) => (account_sid.clone(), token),
        (None, Ok(key), Ok(secret)) => (key, crate::config::Secret::new(secret)),
        _ => anyhow::bail!(
            "pull needs --auth-token (or TWILIO_AUTH_TOKEN), or TWILIO_API_KEY with TWILIO_API_SECRET"
        ),
    };
    let end = a
        .end_day
        .unwrap_or_else(|| Clock::system().today().minus_days(2));
    let options = crate::pull::PullOptions {
        resource_types: a.resource_types,
        start: a.start_day,
        end,
        out: a.out,
        api_url: a.api_url.clone(),
        user,
        secret,
        account_sid,
        poll: std::time::Duration::from_secs(a.poll_secs.max(1)),
        quiet: a.quiet,
        subaccounts: a.subaccounts,
        max_wait: std::time::Duration::from_secs(a.max_wait_secs.max(1)),
        load: a.load.map(|url| (url, a.load_schema.clone())),
        wait: crate::pull::Wait::default(),
        accounts_api: a.accounts_api_url.unwrap_or_else(|| {
            if a.api_url.trim_end_matches('/') == "https://bulkexports.twilio.com" {
                "https://api.twilio.com".into()
            } else {
                a.api_url.clone()
            }
        }),
    };
    let summary = crate::pull::run(&options).await?;
    if a.json {
        print_json(&summary)?;
    }
    if !summary.missing.is_empty() {
        for m in &summary.missing {
            errln!(
                "not obtained: {} {} {}: {}",
                m.account_sid,
                m.resource_type,
                m.day,
                m.reason
            );
        }
        errln!(
            "{} of {} days not obtained",
            summary.missing.len(),
            summary.days_total
        );
        std::process::exit(2);
    }
    if !a.quiet {
        errln!(
            "{} days present ({} downloaded, {} bytes; {} jobs created)",
            summary.days_obtained,
            summary.days_downloaded,
            summary.bytes_downloaded,
            summary.jobs_created.len()
        );
    }
    Ok(())
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(super) enum SchemaFormat {
    JsonSchema,
    Postgres,
    Duckdb,
    Bigquery,
}

#[derive(clap::Args, Debug)]
pub(super) struct SchemaArgs {
    /// Messages, Calls, Conferences or Participants.
    #[arg(long, value_name = "TYPE", value_parser = parse_resource_type)]
    resource_type: ResourceType,
    #[arg(long, value_enum, default_value = "json-schema")]
    format: SchemaFormat,
    /// DuckDB: the folder `pull --out` wrote.
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: String,
    /// PostgreSQL: the schema of the table.
    #[arg(long, value_name = "NAME", default_value = "public")]
    load_schema: String,
}

pub(super) fn schema(a: &SchemaArgs) -> anyhow::Result<()> {
    use crate::pull::schema;
    match a.format {
        SchemaFormat::JsonSchema => print_json(&schema::json_schema(a.resource_type)),
        SchemaFormat::Bigquery => print_json(&schema::bigquery(a.resource_type)),
        SchemaFormat::Postgres => {
            outln!(
                "{}",
                schema::postgres_table(a.resource_type, &a.load_schema)
            );
            Ok(())
        }
        SchemaFormat::Duckdb => {
            outln!("{}", schema::duckdb_view(a.resource_type, &a.dir));
            Ok(())
        }
    }
}
