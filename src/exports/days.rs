//! Days: the published files, their signed download links, and downloads.

use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use super::links::{Cursor, Page, PageRequest};
use super::{Error, Exports, Result};
use crate::db::DayRow;
use crate::domain::{Day, ResourceType};

#[derive(Debug, Clone)]
pub struct DayView {
    pub day: String,
    pub size: i64,
    pub create_date: String,
    pub friendly_name: String,
    pub resource_type: String,
    /// Records in the day file.
    pub records: i64,
}

impl From<DayRow> for DayView {
    fn from(r: DayRow) -> Self {
        DayView {
            day: r.day.to_string(),
            size: r.size,
            create_date: r.create_date,
            records: r.record_count,
            friendly_name: r.friendly_name,
            resource_type: r.resource_type.to_string(),
        }
    }
}

/// A signed, expiring link to a day file.
#[derive(Debug, Clone)]
pub enum DownloadLink {
    /// Served by this service: a path and query relative to its base URL.
    Service(String),
    /// A pre-signed URL of the object store itself.
    Store(String),
}

/// A day file ready to be served.
#[derive(Debug, Clone)]
pub struct Download {
    pub(super) key: String,
    pub size: u64,
    pub etag: String,
}

fn not_found_day(rt: ResourceType, day: &str) -> Error {
    Error::NotFound(format!("/Exports/{rt}/Days/{day}"))
}

fn link_data(account_sid: &str, rt: ResourceType, day: Day, expires: i64) -> String {
    format!("download:{account_sid}:{rt}:{day}:{expires}")
}

impl Exports {
    pub(crate) fn list_scope(account_sid: &str, rt: ResourceType, list: &str) -> String {
        format!("{account_sid}:{rt}:{list}")
    }

    pub fn page_request(
        &self,
        scope: &str,
        page_size: Option<&str>,
        page: Option<&str>,
        token: Option<&str>,
        max: i64,
    ) -> Result<PageRequest> {
        PageRequest::parse(&self.inner.signer, scope, page_size, page, token, max)
    }

    pub fn page_token(&self, scope: &str, cursor: Cursor) -> String {
        self.inner.signer.page_token(scope, cursor)
    }

    pub async fn list_days(
        &self,
        account_sid: &str,
        rt: ResourceType,
        page: PageRequest,
    ) -> Result<Page<DayView>> {
        let (after, before, limit) = page.bounds();
        let rows = self
            .db()
            .list_days(
                account_sid,
                rt.as_str(),
                after,
                before,
                limit,
                self.days_visible_since(),
            )
            .await?;
        let p = page.paginate(rows, |r| r.generation);
        Ok(Page {
            items: p.items.into_iter().map(DayView::from).collect(),
            next: p.next,
            prev: p.prev,
        })
    }

    /// A download link for a published day, valid for the configured time:
    /// a pre-signed store URL when configured and `store_links` allows it,
    /// otherwise a signed link to this service.
    pub async fn fetch_day(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: &str,
        store_links: bool,
    ) -> Result<DownloadLink> {
        let parsed = Day::parse(day).map_err(|_| not_found_day(rt, day))?;
        let row = self
            .db()
            .find_day(account_sid, rt.as_str(), day, self.days_visible_since())
            .await?
            .ok_or_else(|| not_found_day(rt, day))?;
        let ttl = self.inner.engine.download_ttl_secs;
        let target = super::FaultTarget {
            account_sid: Some(account_sid),
            resource_type: Some(rt),
            day: Some(parsed),
            operation: Some("FetchDay"),
            ..Default::default()
        };
        let expired = self
            .fire(super::FaultKind::DownloadExpired, target)
            .await?
            .is_some();
        // A download a `DownloadTruncate` rule may cut goes through the
        // service, which applies it, not straight to the bucket.
        let cut = self
            .may_fire(
                super::FaultKind::DownloadTruncate,
                super::FaultTarget {
                    operation: Some("DownloadDay"),
                    ..target
                },
            )
            .await?;
        if self.inner.engine.presigned_downloads && store_links && !expired && !cut {
            let ttl = std::time::Duration::from_secs(ttl.max(1) as u64);
            if let Some(url) = self.blobs().presigned_get(&row.blob_key, ttl).await? {
                return Ok(DownloadLink::Store(url));
            }
        }
        // A `DownloadExpired` fault: a link whose time ran out a second ago.
        let expires = self.clock().now().timestamp() + if expired { -1 } else { ttl };
        let signature = self
            .inner
            .signer
            .sign(&link_data(account_sid, rt, parsed, expires));
        Ok(DownloadLink::Service(format!(
            "/v1/Downloads/{account_sid}/{rt}/{parsed}.json.gz?Expires={expires}&Signature={signature}"
        )))
    }

    /// Checks a download link and finds the file it names.
    pub async fn open_download(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
        expires: i64,
        signature: &str,
    ) -> Result<Download> {
        if !self
            .inner
            .signer
            .verify(&link_data(account_sid, rt, day, expires), signature)
        {
            return Err(Error::Forbidden("The download link signature is not valid"));
        }

        let row = self
            .db()
            .find_day(
                account_sid,
                rt.as_str(),
                &day.to_string(),
                self.days_visible_since(),
            )
            .await?
            .ok_or_else(|| not_found_day(rt, &day.to_string()))?;
        // A link to a Day that retention removed answers 404 even once it has expired.
        if self.clock().now().timestamp() > expires {
            return Err(Error::Forbidden("The download link has expired"));
        }
        let meta = match self.blobs().head(&row.blob_key).await {
            Ok(m) => m,
            Err(crate::blob::Error::Store(object_store::Error::NotFound { .. })) => {
                return Err(not_found_day(rt, &day.to_string()))
            }
            Err(e) => return Err(e.into()),
        };
        let etag = format!("\"{:x}-{}\"", row.generation, meta.size);
        Ok(Download {
            key: row.blob_key,
            size: meta.size,
            etag,
        })
    }

    /// The bytes of a download, whole or the range `start..end`.
    pub async fn download_body(
        &self,
        d: &Download,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BoxStream<'static, std::io::Result<bytes::Bytes>>> {
        let got = self.blobs().get(&d.key, range).await?;
        Ok(got.into_stream().map_err(std::io::Error::other).boxed())
    }

    /// How many bytes a `DownloadTruncate` fault lets a download of this
    /// day send before the connection closes, if one fires.
    pub async fn download_cut(
        &self,
        account_sid: &str,
        rt: ResourceType,
        day: Day,
    ) -> Result<Option<u64>> {
        let target = super::FaultTarget {
            account_sid: Some(account_sid),
            resource_type: Some(rt),
            day: Some(day),
            operation: Some("DownloadDay"),
            ..Default::default()
        };
        Ok(self
            .fire(super::FaultKind::DownloadTruncate, target)
            .await?
            .map(|f| f.number("bytes").unwrap_or(0).max(0) as u64))
    }
}
