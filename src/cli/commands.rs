//! The subcommands other than `serve`: one function each, over the
//! service's parts (`app::open`) or, for `healthcheck`, over HTTP.

use std::path::PathBuf;

use super::{millis, print_json, AccountsCommand, CaCommand, UsersCommand};
use crate::app;
use crate::clock::Clock;
use crate::config::Settings;
use crate::domain::{DeliveryStatus, ResourceType};
use crate::exports::{Exports, IngestReport, Input};

pub(super) async fn healthcheck(settings: &Settings, url: Option<String>) -> anyhow::Result<()> {
    let url = url.unwrap_or_else(|| {
        let listen = settings
            .listen
            .replace("0.0.0.0:", "127.0.0.1:")
            .replace("[::]:", "[::1]:");
        format!("http://{listen}/readyz")
    });
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .build()?;
    let resp = client
        .get(&url)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "{url} answered {status}: {}",
        body.trim()
    );
    outln!("{url}: {}", body.trim());
    Ok(())
}

pub(super) fn ca(settings: &Settings, command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Init => {
            let (path, created) = crate::proxy::ca::init(&settings.data_dir)?;
            if created {
                errln!("created the proxy CA; clients must trust:");
            }
            outln!("{}", path.display());
        }
        CaCommand::Path => {
            outln!(
                "{}",
                crate::proxy::ca::existing_cert(&settings.data_dir)?.display()
            );
        }
    }
    Ok(())
}

pub(super) async fn worker(settings: &Settings, clock: Clock) -> anyhow::Result<()> {
    settings.check_for_service()?;
    let exports = app::open(settings, clock).await?;
    let count = settings.worker_count();
    anyhow::ensure!(
        count > 0,
        "a worker process needs at least one worker (workers = 0 was given)"
    );
    tracing::info!(
        workers = count,
        database = exports.db().kind(),
        "bulkexport workers running"
    );
    app::run_workers(&exports, count, app::shutdown_on_signals()).await;
    Ok(())
}

pub(super) async fn migrate(settings: &Settings, clock: Clock) -> anyhow::Result<()> {
    app::open(settings, clock).await?;
    errln!(
        "database is up to date: {}",
        crate::config::url_without_userinfo(settings.database_url().expose())
    );
    Ok(())
}

pub(super) async fn accounts(ex: &Exports, command: AccountsCommand) -> anyhow::Result<()> {
    match command {
        AccountsCommand::Create {
            friendly_name,
            parent,
            editions,
        } => {
            let account = ex.create_account(&friendly_name, parent.as_deref()).await?;
            if editions {
                ex.set_editions(&account.sid, true).await?;
            }
            let mut shown = serde_json::to_value(&account)?;
            shown["editions"] = serde_json::Value::Bool(editions);
            print_json(&shown)
        }
        AccountsCommand::Update { account, editions } => {
            ex.set_editions(&account, editions).await?;
            print_json(&serde_json::json!({"sid": account, "editions": editions}))
        }
        AccountsCommand::List => {
            for a in ex.db().list_accounts().await? {
                outln!(
                    "{}",
                    serde_json::json!({"sid": a.sid, "friendly_name": a.friendly_name, "parent_sid": a.parent_sid, "editions": a.editions})
                );
            }
            Ok(())
        }
    }
}

pub(super) async fn users(ex: &Exports, command: UsersCommand) -> anyhow::Result<()> {
    match command {
        UsersCommand::Add {
            account,
            email,
            role,
        } => {
            ex.add_user(&account, &email, &role).await?;
            print_json(
                &serde_json::json!({"account_sid": account, "email": email, "role": role.to_ascii_lowercase()}),
            )
        }
        UsersCommand::List { account } => {
            for u in ex.list_users(&account).await? {
                outln!("{}", serde_json::to_string(&u)?);
            }
            Ok(())
        }
        UsersCommand::Remove { account, email } => {
            ex.remove_user(&account, &email).await?;
            Ok(())
        }
    }
}

pub(super) async fn list_deletions(ex: &Exports, account: &str) -> anyhow::Result<()> {
    for d in ex.list_deletions(account).await? {
        let status = if d.applied_at.is_some() {
            "applied"
        } else {
            "pending"
        };
        outln!(
            "{}",
            serde_json::json!({
                "account_sid": d.account_sid, "call_sid": d.call_sid, "date": d.day, "source": d.source,
                "status": status, "requested_at": millis(d.requested_at),
                "applied_at": d.applied_at.and_then(millis), "outcome": d.outcome,
            })
        );
    }
    Ok(())
}

pub(super) async fn list_deliveries(
    ex: &Exports,
    account: Option<&str>,
    limit: i64,
) -> anyhow::Result<()> {
    for d in ex.db().list_deliveries(account, limit).await? {
        let attempts: Vec<serde_json::Value> = ex
            .db()
            .delivery_attempts(d.id)
            .await?
            .into_iter()
            .map(|a| serde_json::json!({"attempt": a.attempt, "at": millis(a.at), "outcome": a.outcome, "detail": a.detail}))
            .collect();
        outln!(
            "{}",
            serde_json::json!({
                "id": d.id, "event": d.dedupe_key, "account_sid": d.account_sid, "channel": d.channel.as_str(),
                "target": d.target, "method": d.method, "status": d.status.as_str(),
                "idempotency_token": d.idempotency_token, "created_at": millis(d.created_at),
                "next_attempt_at": (d.status == DeliveryStatus::Pending).then(|| millis(d.next_attempt_at)),
                "last_error": d.last_error, "request_id": d.request_id, "attempts": attempts,
            })
        );
    }
    Ok(())
}

pub(super) async fn ingest(
    ex: &Exports,
    account: &str,
    rt: ResourceType,
    files: &[PathBuf],
    allow_rejects: bool,
) -> anyhow::Result<()> {
    let report = ingest_files(ex, account, rt, files).await?;
    print_json(&report)?;
    if report.rejected > 0 {
        errln!("{} line(s) rejected; the report lists why", report.rejected);
        anyhow::ensure!(
            allow_rejects,
            "{} line(s) rejected (--allow-rejects to accept a partial load)",
            report.rejected
        );
    }
    Ok(())
}

pub(super) async fn ingest_files(
    ex: &Exports,
    account: &str,
    rt: ResourceType,
    files: &[PathBuf],
) -> anyhow::Result<IngestReport> {
    let mut report = IngestReport::default();
    for path in files {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?
            .into_std()
            .await;
        // A FIFO or /dev/stdin may stall; only a regular file is steady input.
        let input = match file.metadata() {
            Ok(m) if m.is_file() => Input::Steady,
            _ => Input::Streamed,
        };
        let reader = crate::exports::maybe_gunzip(crate::exports::read_file(file)).await?;
        ex.ingest(
            account,
            rt,
            &path.display().to_string(),
            input,
            reader,
            &mut report,
        )
        .await?
        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
    }
    Ok(report)
}
