//! Fixtures: a TOML file of accounts (fixed credentials, keys, users,
//! records, configurations) that the service makes sure it holds at every
//! start and after every reset. What is missing is created, what differs is
//! set as described, and nothing else is touched.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::config::ConfigUpdate;
use super::ingest::{maybe_gunzip, read_file, IngestReport, Input};
use super::{Error, Exports, Result};
use crate::db::{Account, ApiKey};
use crate::domain::{Day, ResourceType, SidKind};

/// Seeded records per day at most, so that a fixtures file stays a fixture.
const MAX_SEED_PER_DAY: u32 = 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    accounts: Vec<FixtureAccount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureAccount {
    sid: Spanned<String>,
    auth_token: Spanned<String>,
    friendly_name: Option<String>,
    #[serde(default)]
    editions: bool,
    parent: Option<Spanned<String>>,
    #[serde(default)]
    keys: Vec<FixtureKey>,
    #[serde(default)]
    users: Vec<FixtureUser>,
    #[serde(default)]
    seed: Vec<FixtureSeed>,
    #[serde(default)]
    ingest: Vec<FixtureIngest>,
    #[serde(default)]
    configuration: Vec<FixtureConfiguration>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureKey {
    sid: Spanned<String>,
    secret: Spanned<String>,
    friendly_name: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureUser {
    email: Spanned<String>,
    role: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureSeed {
    resource_type: Spanned<String>,
    start_day: Spanned<String>,
    end_day: Spanned<String>,
    per_day: Spanned<u32>,
    #[serde(default = "one")]
    seed: u64,
}

fn one() -> u64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureIngest {
    resource_type: Spanned<String>,
    file: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureConfiguration {
    resource_type: Spanned<String>,
    enabled: bool,
    webhook_url: Option<String>,
    webhook_method: Option<String>,
    email: Option<String>,
}

/// A fixtures file read and checked: every value valid, every file there.
#[derive(Debug)]
pub struct Fixtures {
    path: PathBuf,
    text: String,
    file: File,
}

impl Fixtures {
    /// Reads and checks `path`; an error names the file, the line and what
    /// is wrong.
    pub fn load(path: &Path) -> std::result::Result<Fixtures, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("fixtures {}: {e}", path.display()))?;
        let file: File = toml::from_str(&text)
            .map_err(|e| format!("fixtures {}: {}", path.display(), e.to_string().trim_end()))?;
        let fixtures = Fixtures {
            path: path.to_path_buf(),
            text,
            file,
        };
        fixtures.check()?;
        Ok(fixtures)
    }

    /// The SID and auth token of the file's first account, if it has one.
    pub fn first_account(&self) -> Option<(String, String)> {
        self.file.accounts.first().map(|a| {
            (
                a.sid.get_ref().clone(),
                a.auth_token.get_ref().to_ascii_lowercase(),
            )
        })
    }

    /// `what` at the line of `span` in the file.
    fn at<T>(&self, value: &Spanned<T>, what: String) -> String {
        let line = self.text[..value.span().start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        format!("fixtures {}, line {line}: {what}", self.path.display())
    }

    fn ingest_path(&self, file: &str) -> PathBuf {
        let base = self.path.parent().unwrap_or(Path::new("."));
        base.join(file)
    }

    fn check(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for a in &self.file.accounts {
            let sid = a.sid.get_ref();
            if !SidKind::Account.matches(sid) {
                return Err(self.at(
                    &a.sid,
                    format!("{sid:?} is not an account SID (AC and 32 hex digits)"),
                ));
            }
            if !seen.insert(sid.as_str()) {
                return Err(self.at(&a.sid, format!("account {sid} is listed twice")));
            }
            let token = a.auth_token.get_ref();
            if token.len() != 32 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(self.at(&a.auth_token, "auth_token must be 32 hex digits".into()));
            }
            if let Some(parent) = &a.parent {
                let p = parent.get_ref();
                if p == sid || !SidKind::Account.matches(p) {
                    return Err(
                        self.at(parent, format!("parent {p:?} is not another account's SID"))
                    );
                }
                let parent_entry = self.file.accounts.iter().find(|x| x.sid.get_ref() == p);
                if parent_entry.is_some_and(|x| x.parent.is_some()) {
                    return Err(self.at(
                        parent,
                        format!("{p} is itself a subaccount; subaccounts cannot be nested"),
                    ));
                }
            }
            for k in &a.keys {
                if !SidKind::ApiKey.matches(k.sid.get_ref()) {
                    return Err(self.at(
                        &k.sid,
                        format!(
                            "{:?} is not an API key SID (SK and 32 hex digits)",
                            k.sid.get_ref()
                        ),
                    ));
                }
                if k.secret.get_ref().chars().count() < 32 {
                    return Err(self.at(
                        &k.secret,
                        "a key's secret must be at least 32 characters".into(),
                    ));
                }
            }
            for u in &a.users {
                if crate::domain::EmailAddress::parse(u.email.get_ref()).is_none() {
                    return Err(self.at(
                        &u.email,
                        format!("{:?} is not an email address", u.email.get_ref()),
                    ));
                }
            }
            for s in &a.seed {
                self.resource_type(&s.resource_type)?;
                let (start, end) = (self.day(&s.start_day)?, self.day(&s.end_day)?);
                if start > end {
                    return Err(self.at(&s.start_day, "start_day is after end_day".into()));
                }
                if *s.per_day.get_ref() > MAX_SEED_PER_DAY {
                    return Err(self.at(
                        &s.per_day,
                        format!("per_day is more than {MAX_SEED_PER_DAY}"),
                    ));
                }
            }
            for i in &a.ingest {
                self.resource_type(&i.resource_type)?;
                let path = self.ingest_path(i.file.get_ref());
                if !path.is_file() {
                    return Err(self.at(&i.file, format!("{} is not a file", path.display())));
                }
            }
            for c in &a.configuration {
                self.resource_type(&c.resource_type)?;
            }
        }
        Ok(())
    }

    fn resource_type(&self, v: &Spanned<String>) -> std::result::Result<ResourceType, String> {
        v.get_ref().parse().map_err(|_| {
            self.at(
                v,
                format!(
                    "{:?} is not Messages, Calls, Conferences or Participants",
                    v.get_ref()
                ),
            )
        })
    }

    fn day(&self, v: &Spanned<String>) -> std::result::Result<Day, String> {
        Day::parse(v.get_ref())
            .map_err(|_| self.at(v, format!("{:?} is not a day (yyyy-mm-dd)", v.get_ref())))
    }
}

impl Exports {
    /// Reads the `fixtures` file of the settings, if any, and applies it.
    pub async fn apply_configured_fixtures(&self) -> Result<()> {
        let Some(path) = &self.inner.engine.fixtures else {
            return Ok(());
        };
        let fixtures = Fixtures::load(path).map_err(Error::Invalid)?;
        self.apply_fixtures(&fixtures).await
    }

    /// Makes the service hold what `fixtures` describes (see the module notes).
    pub async fn apply_fixtures(&self, fixtures: &Fixtures) -> Result<()> {
        let now = self.clock().now_ms();
        // Parents first: a subaccount names an account that exists.
        let mut accounts: Vec<&FixtureAccount> = fixtures.file.accounts.iter().collect();
        accounts.sort_by_key(|a| a.parent.is_some());
        for a in accounts {
            let sid = a.sid.get_ref().clone();
            if let Some(parent) = &a.parent {
                let p = self.db().find_account(parent.get_ref()).await?;
                if p.as_ref().is_none_or(|p| p.parent_sid.is_some()) {
                    return Err(Error::Invalid(fixtures.at(
                        parent,
                        format!(
                            "parent {} is not an account (or is a subaccount)",
                            parent.get_ref()
                        ),
                    )));
                }
            }
            self.db()
                .upsert_account(&Account {
                    sid: sid.clone(),
                    friendly_name: a.friendly_name.clone().unwrap_or_else(|| "fixture".into()),
                    auth_token: a.auth_token.get_ref().to_ascii_lowercase(),
                    parent_sid: a.parent.as_ref().map(|p| p.get_ref().clone()),
                    created_at: now,
                    editions: a.editions,
                })
                .await?;
            for k in &a.keys {
                self.db()
                    .upsert_api_key(&ApiKey {
                        sid: k.sid.get_ref().clone(),
                        account_sid: sid.clone(),
                        friendly_name: k.friendly_name.clone().unwrap_or_else(|| "fixture".into()),
                        secret_sha256: super::accounts::sha256_hex(k.secret.get_ref()),
                        created_at: now,
                    })
                    .await?;
            }
            for u in &a.users {
                self.add_user(&sid, u.email.get_ref(), &u.role).await?;
            }
            for s in &a.seed {
                let rt = fixtures
                    .resource_type(&s.resource_type)
                    .map_err(Error::Invalid)?;
                let start = fixtures.day(&s.start_day).map_err(Error::Invalid)?;
                let end = fixtures.day(&s.end_day).map_err(Error::Invalid)?;
                self.seed(&sid, rt, start, end, *s.per_day.get_ref(), s.seed)
                    .await?;
            }
            for i in &a.ingest {
                let rt = fixtures
                    .resource_type(&i.resource_type)
                    .map_err(Error::Invalid)?;
                self.ingest_fixture_file(fixtures, &sid, rt, &i.file)
                    .await?;
            }
            for c in &a.configuration {
                let rt = fixtures
                    .resource_type(&c.resource_type)
                    .map_err(Error::Invalid)?;
                let update = ConfigUpdate {
                    enabled: Some(c.enabled.to_string()),
                    webhook_url: Some(c.webhook_url.clone().unwrap_or_default()),
                    webhook_method: c.webhook_method.clone(),
                    email: Some(c.email.clone().unwrap_or_default()),
                };
                self.update_export_config(&sid, rt, &update)
                    .await
                    .map_err(|e| match e {
                        Error::Invalid(m) => Error::Invalid(fixtures.at(&c.resource_type, m)),
                        other => other,
                    })?;
            }
        }
        // Tokens and secrets may have changed: nothing remembered may outlive them.
        self.forget_credentials();
        tracing::info!(accounts = fixtures.file.accounts.len(), file = %fixtures.path.display(), "fixtures applied");
        Ok(())
    }

    async fn ingest_fixture_file(
        &self,
        fixtures: &Fixtures,
        account_sid: &str,
        rt: ResourceType,
        file: &Spanned<String>,
    ) -> Result<()> {
        let path = fixtures.ingest_path(file.get_ref());
        let opened = std::fs::File::open(&path)
            .map_err(|e| Error::Invalid(fixtures.at(file, format!("{}: {e}", path.display()))))?;
        let reader = maybe_gunzip(read_file(opened))
            .await
            .map_err(|e| Error::Invalid(fixtures.at(file, format!("{}: {e}", path.display()))))?;
        let mut report = IngestReport::default();
        self.ingest(
            account_sid,
            rt,
            &path.display().to_string(),
            Input::Steady,
            reader,
            &mut report,
        )
        .await?
        .map_err(|e| {
            Error::Invalid(fixtures.at(file, format!("reading {}: {e}", path.display())))
        })?;
        if report.rejected > 0 {
            let first = report
                .rejections
                .first()
                .map(|r| format!(" (line {}: {})", r.line, r.reason))
                .unwrap_or_default();
            return Err(Error::Invalid(fixtures.at(
                file,
                format!("{} of its lines were rejected{first}", report.rejected),
            )));
        }
        Ok(())
    }
}
