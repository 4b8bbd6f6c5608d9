//! ExportConfiguration: per account and resource type, whether days are
//! exported automatically and whom to tell.

use super::jobs::{email_param, webhook_params};
use super::{Error, Exports, Result};
use crate::db::ExportConfigRow;
use crate::domain::ResourceType;

#[derive(Debug, Clone)]
pub struct ExportConfig {
    pub resource_type: ResourceType,
    pub enabled: bool,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
}

/// UpdateExportConfiguration's parameters as received; unset ones keep their value.
#[derive(Debug, Clone, Default)]
pub struct ConfigUpdate {
    pub enabled: Option<String>,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
}

fn parse_bool(s: &str) -> Result<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::Invalid(format!(
            "Enabled {s:?} must be true or false"
        ))),
    }
}

impl Exports {
    pub async fn fetch_export_config(
        &self,
        account_sid: &str,
        rt: ResourceType,
    ) -> Result<ExportConfig> {
        let row = self
            .db()
            .find_export_config(account_sid, rt.as_str())
            .await?;
        let row = row.unwrap_or_default();
        Ok(ExportConfig {
            resource_type: rt,
            enabled: row.enabled,
            webhook_url: row.webhook_url,
            webhook_method: row.webhook_method,
            email: row.email,
        })
    }

    pub async fn update_export_config(
        &self,
        account_sid: &str,
        rt: ResourceType,
        u: &ConfigUpdate,
    ) -> Result<ExportConfig> {
        let current = self
            .db()
            .find_export_config(account_sid, rt.as_str())
            .await?
            .unwrap_or_default();
        let enabled = match u.enabled.as_deref() {
            Some(s) => parse_bool(s)?,
            None => current.enabled,
        };
        if enabled && !current.enabled && !self.require_account(account_sid).await?.editions {
            return Err(Error::Invalid(
                "Enabled cannot be true: automatic daily exports are available only to accounts on an Editions plan \
                 (bulkexport accounts update ACSID --editions true)"
                    .into(),
            ));
        }
        let now = self.clock().now_ms();
        let enabled_at = match (enabled, current.enabled) {
            (true, false) => Some(now),
            (true, true) => current.enabled_at.or(Some(now)),
            (false, _) => None,
        };
        let url = u.webhook_url.clone().or(current.webhook_url);
        let method = u.webhook_method.clone().or(current.webhook_method);
        let webhook = webhook_params(url.as_deref(), method.as_deref())?;
        if let Some((url, _)) = &webhook {
            self.check_webhook_target(url.as_str()).await?;
        }
        let email = match &u.email {
            Some(e) => email_param(Some(e))?.map(|e| e.as_str().to_string()),
            None => current.email,
        };
        let row = ExportConfigRow {
            enabled,
            webhook_url: webhook.as_ref().map(|(u, _)| u.as_str().to_string()),
            webhook_method: webhook.as_ref().map(|(_, m)| m.as_str().to_string()),
            email,
            enabled_at,
        };
        self.db()
            .save_export_config(account_sid, rt.as_str(), &row, now)
            .await?;
        self.fetch_export_config(account_sid, rt).await
    }
}
