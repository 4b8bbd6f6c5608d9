//! Records in the day-file shape (one JSON object per line, ISO 8601 UTC
//! timestamps, counters as integers): the field layout of each resource
//! type, and the normalisation of REST-shaped input into that shape.
//!
//! A line is read once into its members with values kept as JSON text
//! ([`parse`]), checked and normalised field by field ([`normalise`]), and
//! written as its day-file line ([`write`]); a line that already is its
//! day-file line is copied as it is, and both paths give the same bytes.

mod normalise;
mod parse;
#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
mod time;
mod write;

use std::borrow::Cow;

use smallvec::SmallVec;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Day, ResourceType, SidKind};
use normalise::*;
use parse::*;
use time::*;
use write::*;

pub use normalise::{normalize_line, normalize_line_into};
pub use parse::LineError;
pub use time::{iso, parse_timestamp};

/// A record ready to store: its identity, its UTC day, its place within the day
/// and its serialised day-file line (without the trailing newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: String,
    pub day: Day,
    pub sort_key: String,
    pub line: String,
}

impl Record {
    /// A record with nothing in it yet, for [`normalize_line_into`] to fill.
    pub fn empty() -> Record {
        Record {
            key: String::new(),
            day: Day::from_date(chrono::NaiveDate::MIN),
            sort_key: String::new(),
            line: String::new(),
        }
    }

    /// The second the sort key starts with, counted from the Unix epoch:
    /// the day's first second plus the `THH:MM:SSZ` before the key's `|`
    /// (a key without one counts as the day's first second). Ordering a
    /// day by it and then by the sort key is ordering by the sort key;
    /// PostgreSQL indexes it (`records_by_time`, migration 0016, which
    /// computes it the same way).
    pub fn second(&self) -> i64 {
        let second = match self.sort_key.split_once('|') {
            Some((stamp, _)) => time::second_of_day(stamp).unwrap_or(0),
            None => 0,
        };
        self.day.first_second() + i64::from(second)
    }
}

/// Why one input record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field} {value:?} is not a {kind} SID (the prefix and 32 lower-case hex digits)")]
    BadSid {
        field: &'static str,
        value: String,
        kind: &'static str,
    },
    #[error("account_sid {0} is not the account being loaded")]
    OtherAccount(String),
    #[error("{field} {value:?} is not an RFC 2822 or ISO 8601 date")]
    BadDate { field: &'static str, value: String },
    #[error("{field} {value:?} is not an integer")]
    BadInteger { field: &'static str, value: String },
    #[error("{field} {value:?} is not one of {allowed}")]
    BadEnum {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error("{0} must be a string")]
    NotAString(&'static str),
    #[error("this line is a whole page of the REST API, not one record: give one record per line, for example with jq -c '.{0}[]'")]
    WholePage(String),
    #[error("this line has camelCase keys ({0}), as twilio-cli's JSON output does: the service reads the REST API's snake_case fields (account_sid, date_created, …); fetch the records from the REST API, or a day file")]
    CamelCase(String),
}

pub(super) const MESSAGE_STATUS: &[&str] = &[
    "queued",
    "sending",
    "sent",
    "failed",
    "delivered",
    "undelivered",
    "receiving",
    "received",
    "accepted",
    "scheduled",
    "read",
    "partially_delivered",
    "canceled",
];
pub(super) const MESSAGE_DIRECTION: &[&str] =
    &["inbound", "outbound-api", "outbound-call", "outbound-reply"];
pub(super) const CALL_STATUS: &[&str] = &[
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
];
pub(super) const CALL_DIRECTION: &[&str] = &["inbound", "outbound-api", "outbound-dial"];
pub(super) const CONFERENCE_STATUS: &[&str] = &["init", "in-progress", "completed"];
pub(super) const CONFERENCE_END_REASON: &[&str] = &[
    "conference-ended-via-api",
    "participant-with-end-conference-on-exit-left",
    "participant-with-end-conference-on-exit-kicked",
    "last-participant-kicked",
    "last-participant-left",
];
pub(super) const PARTICIPANT_STATUS: &[&str] = &[
    "queued",
    "connecting",
    "ringing",
    "connected",
    "complete",
    "failed",
];

pub(crate) fn statuses(rt: ResourceType) -> &'static [&'static str] {
    match rt {
        ResourceType::Messages => MESSAGE_STATUS,
        ResourceType::Calls => CALL_STATUS,
        ResourceType::Conferences => CONFERENCE_STATUS,
        ResourceType::Participants => PARTICIPANT_STATUS,
    }
}

pub(crate) fn directions(rt: ResourceType) -> &'static [&'static str] {
    match rt {
        ResourceType::Messages => MESSAGE_DIRECTION,
        ResourceType::Calls => CALL_DIRECTION,
        _ => &[],
    }
}

pub(crate) const CONFERENCE_END_REASONS: &[&str] = CONFERENCE_END_REASON;

/// The fields of each resource's day-file line, in the order they are written
/// (the REST schema's order, less the fields the day file leaves out).
pub fn fields(rt: ResourceType) -> &'static [&'static str] {
    match rt {
        ResourceType::Messages => &[
            "body",
            "num_segments",
            "direction",
            "from",
            "to",
            "date_updated",
            "price",
            "account_sid",
            "num_media",
            "status",
            "messaging_service_sid",
            "sid",
            "date_sent",
            "date_created",
            "error_code",
        ],
        ResourceType::Calls => &[
            "sid",
            "date_created",
            "date_updated",
            "parent_call_sid",
            "account_sid",
            "to",
            "to_formatted",
            "from",
            "from_formatted",
            "phone_number_sid",
            "status",
            "start_time",
            "end_time",
            "duration",
            "price",
            "price_unit",
            "direction",
            "answered_by",
            "api_version",
            "forwarded_from",
            "group_sid",
            "caller_name",
            "queue_time",
            "trunk_sid",
        ],
        ResourceType::Conferences => &[
            "account_sid",
            "date_created",
            "date_updated",
            "friendly_name",
            "region",
            "sid",
            "status",
            "reason_conference_ended",
            "call_sid_ending_conference",
        ],
        ResourceType::Participants => &[
            "account_sid",
            "call_sid",
            "call_sid_to_coach",
            "coaching",
            "conference_sid",
            "date_created",
            "date_updated",
            "end_conference_on_exit",
            "muted",
            "hold",
            "start_conference_on_enter",
            "status",
            "queue_time",
        ],
    }
}

/// REST fields that the day file leaves out.
pub(super) fn left_out(rt: ResourceType) -> &'static [&'static str] {
    match rt {
        ResourceType::Messages => &[
            "price_unit",
            "api_version",
            "error_message",
            "uri",
            "subresource_uris",
        ],
        ResourceType::Calls => &["uri", "subresource_uris"],
        ResourceType::Conferences => &["api_version", "uri", "subresource_uris"],
        ResourceType::Participants => &["uri", "label"],
    }
}

pub(super) const TIMESTAMPS: &[&str] = &[
    "date_created",
    "date_updated",
    "date_sent",
    "start_time",
    "end_time",
];
pub(super) const COUNTERS: &[&str] = &["num_segments", "num_media", "duration", "queue_time"];
