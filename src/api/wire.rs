//! Wire shapes of the bulkexports v1 resources, and list pages.

use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{json, Value};

use super::error::json_response_sized;
use crate::domain::{Day, ResourceType};
use crate::exports::{Cursor, DayView, ExportConfig, Exports, JobView, Page, PageRequest};

#[derive(Serialize)]
pub struct StatusGroupWire {
    pub status: &'static str,
    pub count: usize,
    pub days: Vec<Day>,
}

#[derive(Serialize)]
pub struct JobWire {
    pub resource_type: &'static str,
    pub friendly_name: String,
    pub details: Vec<StatusGroupWire>,
    pub start_day: Day,
    pub end_day: Day,
    pub job_sid: String,
    pub webhook_url: Option<String>,
    pub webhook_method: Option<String>,
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub job_queue_position: Option<String>,
    pub estimated_completion_time: Option<String>,
}

impl JobWire {
    /// `with_url`: the Job resource has a `url`; ExportCustomJob has none.
    pub fn new(v: JobView, base: &str, with_url: bool) -> JobWire {
        JobWire {
            resource_type: v.resource_type.as_str(),
            friendly_name: v.friendly_name,
            details: v
                .details
                .into_iter()
                .map(|g| StatusGroupWire {
                    status: g.status.as_str(),
                    count: g.days.len(),
                    days: g.days,
                })
                .collect(),
            start_day: v.start_day,
            end_day: v.end_day,
            url: with_url.then(|| format!("{base}/v1/Exports/Jobs/{}", v.sid)),
            job_sid: v.sid,
            webhook_url: v.webhook_url,
            webhook_method: v.webhook_method,
            email: v.email,
            job_queue_position: v.queue_position.map(|p| p.to_string()),
            estimated_completion_time: v
                .estimated_completion
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        }
    }
}

#[derive(Serialize)]
pub struct DayWire {
    pub day: String,
    pub size: i64,
    pub create_date: String,
    pub friendly_name: String,
    pub resource_type: String,
}

impl From<DayView> for DayWire {
    fn from(d: DayView) -> Self {
        DayWire {
            day: d.day,
            size: d.size,
            create_date: d.create_date,
            friendly_name: d.friendly_name,
            resource_type: d.resource_type,
        }
    }
}

pub fn config_wire(c: &ExportConfig, base: &str) -> Value {
    json!({
        "enabled": c.enabled,
        "webhook_url": c.webhook_url,
        "webhook_method": c.webhook_method,
        "email": c.email,
        "resource_type": c.resource_type.as_str(),
        "url": format!("{base}/v1/Exports/{}/Configuration", c.resource_type),
    })
}

pub fn export_wire(rt: ResourceType, base: &str) -> Value {
    json!({
        "resource_type": rt.as_str(),
        "url": format!("{base}/v1/Exports/{rt}"),
        "links": {
            "days": format!("{base}/v1/Exports/{rt}/Days"),
            "export_custom_jobs": format!("{base}/v1/Exports/{rt}/Jobs"),
        },
    })
}

/// One page of a list: exactly one array, named by `meta.key`, plus `meta`.
pub struct ListPage<'a> {
    pub exports: &'a Exports,
    pub scope: &'a str,
    pub list_url: String,
    pub key: &'static str,
    pub page: PageRequest,
}

impl ListPage<'_> {
    fn page_url(&self, page: i64, cursor: Option<Cursor>) -> String {
        let mut url = format!(
            "{}?PageSize={}&Page={page}",
            self.list_url, self.page.page_size
        );
        if let Some(c) = cursor {
            url.push_str("&PageToken=");
            url.push_str(&self.exports.page_token(self.scope, c));
        }
        url
    }

    pub fn respond<T, W: Serialize>(self, found: Page<T>, wire: impl Fn(T) -> W) -> Response {
        let items: Vec<W> = found.items.into_iter().map(wire).collect();
        let page = self.page.page;
        let meta = json!({
            "page": page,
            "page_size": self.page.page_size,
            "first_page_url": self.page_url(0, None),
            "previous_page_url": found.prev.map(|c| self.page_url((page - 1).max(0), Some(c))),
            "url": self.page_url(page, self.page.cursor),
            "next_page_url": found.next.map(|c| self.page_url(page + 1, Some(c))),
            "key": self.key,
        });
        // Serialized straight from the wire structs: a page of 50 jobs built
        // as `serde_json::Value` maps first spent a fifth of its time there.
        // About 500 bytes a job, a day or an export, and the meta.
        let capacity = 1024 + 512 * items.len();
        let body = PageBody {
            key: self.key,
            items,
            meta,
        };
        json_response_sized(StatusCode::OK, &body, capacity)
    }
}

/// `{"<key>": [items], "meta": {...}}`: a list page, whose key varies.
struct PageBody<W> {
    key: &'static str,
    items: Vec<W>,
    meta: Value,
}

impl<W: Serialize> Serialize for PageBody<W> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(2))?;
        map.serialize_entry(self.key, &self.items)?;
        map.serialize_entry("meta", &self.meta)?;
        map.end()
    }
}
