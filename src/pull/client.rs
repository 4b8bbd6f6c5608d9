//! The BulkExport API as `pull` calls it: Twilio's, or a bulkexport's.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Day, ResourceType};

/// Items per page of a list: the most the API gives (Twilio's bulkexports
/// lists stop at 400, as bulkexport's do).
const PAGE_SIZE: u32 = 400;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("{0}")]
    Http(#[from] reqwest::Error),
    /// An error answer of the API: status, Twilio code, message.
    #[error("HTTP {status}: {message} (code {code})")]
    Api {
        status: u16,
        code: i64,
        message: String,
        /// `Retry-After`, in seconds, when the answer gave one.
        retry_after: Option<u64>,
    },
    #[error("unexpected answer: {0}")]
    Shape(String),
}

/// A Day as ListDay shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct ListedDay {
    pub day: String,
    pub size: i64,
}

/// A job as FetchJob and ListExportCustomJob show it: its days by status.
#[derive(Debug, Clone, Deserialize)]
pub struct JobState {
    pub job_sid: String,
    #[serde(default)]
    pub start_day: Option<String>,
    #[serde(default)]
    pub end_day: Option<String>,
    #[serde(default)]
    pub details: Vec<StatusGroup>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StatusGroup {
    pub status: String,
    #[serde(default)]
    pub days: Vec<String>,
}

impl JobState {
    /// The status of `day` in this job, if the job covers it.
    pub fn status_of(&self, day: &str) -> Option<&str> {
        self.details
            .iter()
            .find(|g| g.days.iter().any(|d| d == day))
            .map(|g| g.status.as_str())
    }
}

/// An authenticated client of one API base URL.
pub struct Client {
    http: reqwest::Client,
    base: String,
    user: String,
    secret: crate::config::Secret,
}

impl Client {
    /// `base`: `https://bulkexports.twilio.com` or a bulkexport's URL. The
    /// proxy comes from `HTTPS_PROXY`/`HTTP_PROXY` (reqwest reads them), and
    /// `SSL_CERT_FILE`, when set, adds its certificates to the trusted roots.
    pub fn new(base: &str, user: &str, secret: &str) -> anyhow::Result<Client> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("bulkexport-pull/", env!("CARGO_PKG_VERSION")));
        if let Some(file) = std::env::var_os("SSL_CERT_FILE") {
            let pem = std::fs::read(&file).map_err(|e| {
                anyhow::anyhow!(
                    "SSL_CERT_FILE {}: {e}",
                    std::path::Path::new(&file).display()
                )
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
                builder = builder.add_root_certificate(cert);
            }
        }
        Ok(Client {
            http: builder.build()?,
            base: base.trim_end_matches('/').to_string(),
            user: user.to_string(),
            secret: crate::config::Secret::new(secret),
        })
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        form: &[(&str, String)],
    ) -> Result<(u16, Value), CallError> {
        let mut request = self
            .http
            .request(method.clone(), self.url(path))
            .basic_auth(&self.user, Some(self.secret.expose()));
        if method == reqwest::Method::POST {
            request = request.form(form);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let text = response.text().await?;
        let body: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                CallError::Shape(format!(
                    "{status} {}",
                    text.chars().take(200).collect::<String>()
                ))
            })?
        };
        if status >= 400 {
            return Err(CallError::Api {
                status,
                code: body["code"].as_i64().unwrap_or(0),
                message: body["message"].as_str().unwrap_or("").to_string(),
                retry_after,
            });
        }
        Ok((status, body))
    }

    /// Every item of a list, following `meta.next_page_url`.
    async fn list(&self, path: &str, key: &str) -> Result<Vec<Value>, CallError> {
        let mut items = Vec::new();
        let mut next = Some(format!("{path}?PageSize={PAGE_SIZE}"));
        while let Some(page) = next {
            let (_, body) = self.call(reqwest::Method::GET, &page, &[]).await?;
            let page_items = body[key]
                .as_array()
                .ok_or_else(|| CallError::Shape(format!("no {key} list")))?;
            items.extend(page_items.iter().cloned());
            next = body["meta"]["next_page_url"].as_str().map(str::to_string);
        }
        Ok(items)
    }

    pub async fn list_days(&self, rt: ResourceType) -> Result<Vec<ListedDay>, CallError> {
        self.list(&format!("/v1/Exports/{rt}/Days"), "days")
            .await?
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(|e| CallError::Shape(e.to_string())))
            .collect()
    }

    pub async fn list_jobs(&self, rt: ResourceType) -> Result<Vec<JobState>, CallError> {
        self.list(&format!("/v1/Exports/{rt}/Jobs"), "jobs")
            .await?
            .into_iter()
            .map(|v| serde_json::from_value(v).map_err(|e| CallError::Shape(e.to_string())))
            .collect()
    }

    pub async fn create_job(
        &self,
        rt: ResourceType,
        start: Day,
        end: Day,
    ) -> Result<JobState, CallError> {
        let form = [
            ("StartDay", start.to_string()),
            ("EndDay", end.to_string()),
            ("FriendlyName", format!("bulkexport pull {start}..{end}")),
        ];
        let (_, body) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/Exports/{rt}/Jobs"),
                &form,
            )
            .await?;
        serde_json::from_value(body).map_err(|e| CallError::Shape(e.to_string()))
    }

    pub async fn fetch_job(&self, sid: &str) -> Result<JobState, CallError> {
        let (_, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/Exports/Jobs/{sid}"),
                &[],
            )
            .await?;
        serde_json::from_value(body).map_err(|e| CallError::Shape(e.to_string()))
    }

    /// The subaccounts the credentials' account owns, with their tokens
    /// (the 2010 API's Account list at `accounts_api`).
    pub async fn subaccounts(
        &self,
        accounts_api: &str,
        owner: &str,
    ) -> Result<Vec<(String, String)>, CallError> {
        let base = accounts_api.trim_end_matches('/');
        let mut next = Some(format!("{base}/2010-04-01/Accounts.json?PageSize=1000"));
        let mut out = Vec::new();
        while let Some(page) = next {
            let (_, body) = self.call(reqwest::Method::GET, &page, &[]).await?;
            let accounts = body["accounts"]
                .as_array()
                .ok_or_else(|| CallError::Shape("no accounts list".into()))?;
            for a in accounts {
                let (Some(sid), Some(token)) = (a["sid"].as_str(), a["auth_token"].as_str()) else {
                    continue;
                };
                if sid != owner && a["owner_account_sid"].as_str() == Some(owner) {
                    out.push((sid.to_string(), token.to_string()));
                }
            }
            next = body["next_page_uri"].as_str().map(|u| format!("{base}{u}"));
        }
        Ok(out)
    }

    /// FetchDay's download link.
    pub async fn day_link(&self, rt: ResourceType, day: &str) -> Result<String, CallError> {
        let (_, body) = self
            .call(
                reqwest::Method::GET,
                &format!("/v1/Exports/{rt}/Days/{day}"),
                &[],
            )
            .await?;
        body["redirect_to"]
            .as_str()
            .map(|l| self.url(l))
            .ok_or_else(|| CallError::Shape("FetchDay without redirect_to".into()))
    }

    /// GET of a download link (no credentials: the link is signed), from
    /// byte `from` with `If-Range: etag` when resuming.
    pub async fn download(
        &self,
        link: &str,
        from: u64,
        etag: Option<&str>,
    ) -> Result<reqwest::Response, CallError> {
        let mut request = self.http.get(link);
        if from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={from}-"));
            if let Some(etag) = etag {
                request = request.header(reqwest::header::IF_RANGE, etag);
            }
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        if status >= 400 {
            return Err(CallError::Api {
                status,
                code: 0,
                message: format!("download answered {status}"),
                retry_after: None,
            });
        }
        Ok(response)
    }
}
