//! Records in the day-file shape of `record-format.md`: the field layout of each
//! resource type, and the normalisation of REST-shaped input into that shape.

use std::borrow::Cow;

use smallvec::SmallVec;

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::Value;

use super::{Day, ResourceType, SidKind};

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
}

/// Why one input record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("not a JSON object")]
    NotAnObject,
    #[error("missing {0}")]
    Missing(&'static str),
    #[error("{field} {value:?} is not a {kind} SID")]
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
}

const MESSAGE_STATUS: &[&str] = &[
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
const MESSAGE_DIRECTION: &[&str] = &["inbound", "outbound-api", "outbound-call", "outbound-reply"];
const CALL_STATUS: &[&str] = &[
    "queued",
    "ringing",
    "in-progress",
    "completed",
    "busy",
    "failed",
    "no-answer",
    "canceled",
];
const CALL_DIRECTION: &[&str] = &["inbound", "outbound-api", "outbound-dial"];
const CONFERENCE_STATUS: &[&str] = &["init", "in-progress", "completed"];
const CONFERENCE_END_REASON: &[&str] = &[
    "conference-ended-via-api",
    "participant-with-end-conference-on-exit-left",
    "participant-with-end-conference-on-exit-kicked",
    "last-participant-kicked",
    "last-participant-left",
];
const PARTICIPANT_STATUS: &[&str] = &[
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
fn left_out(rt: ResourceType) -> &'static [&'static str] {
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

const TIMESTAMPS: &[&str] = &[
    "date_created",
    "date_updated",
    "date_sent",
    "start_time",
    "end_time",
];
const COUNTERS: &[&str] = &["num_segments", "num_media", "duration", "queue_time"];

/// Formats an instant the way day files do: `2020-07-26T22:21:20Z`.
pub fn iso(t: DateTime<Utc>) -> String {
    let mut out = String::with_capacity(20);
    push_iso(&mut out, t);
    out
}

/// Appends [`iso`]'s text of `t` to `out`. Written out by hand, digit by
/// digit: chrono's `format` re-parses its pattern on every call, and even
/// `format!` with padded fields was a tenth of parsing a line.
fn push_iso(out: &mut String, t: DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let t = t.naive_utc();
    let year = match u32::try_from(t.year()) {
        Ok(year) if year <= 9999 => year,
        _ => return out.push_str(&t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
    };
    let digit = |n: u32| char::from(b'0' + (n % 10) as u8);
    let two = |out: &mut String, n: u32| {
        out.push(digit(n / 10));
        out.push(digit(n));
    };
    two(out, year / 100);
    two(out, year % 100);
    out.push('-');
    two(out, t.month());
    out.push('-');
    two(out, t.day());
    out.push('T');
    two(out, t.hour());
    out.push(':');
    two(out, t.minute());
    out.push(':');
    two(out, t.second());
    out.push('Z');
}

/// Exactly `YYYY-MM-DDTHH:MM:SSZ`, read without a format string; None for
/// anything else (which the general parsers then try).
fn parse_day_file_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, &c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(num(0, 4)? as i32, num(5, 7)?, num(8, 10)?)?;
    Some(
        date.and_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?
            .and_utc(),
    )
}

/// Parses RFC 2822 (`Sun, 26 Jul 2020 22:21:20 +0000`) or ISO 8601 / RFC 3339.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    // Day-file timestamps (`2020-07-26T22:21:20Z`) are by far the most common input.
    if let Some(t) = parse_day_file_timestamp(s) {
        return Some(t);
    }
    if let Ok(t) = DateTime::parse_from_rfc2822(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

/// One input line's members in order, values left as their JSON text. A key
/// given twice keeps its first place and its last value, as a parsed
/// `serde_json` object would.
///
/// Held inline up to [`INLINE_MEMBERS`]: a heap vector of that size is a
/// request glibc's allocator serves from its large bins, and each such request
/// first consolidates its free lists, which cost about a tenth of parsing.
struct Members<'a>(SmallVec<[(Key<'a>, &'a RawValue); INLINE_MEMBERS]>);

/// Members of a line held without allocating: a day-file Call, the widest
/// record, has 24; a REST-shaped line has a few more.
const INLINE_MEMBERS: usize = 40;

/// An object key: borrowed from the line unless it had escapes.
#[derive(serde::Deserialize)]
struct Key<'a>(#[serde(borrow)] Cow<'a, str>);

/// `a == b` for object keys, inline: keys are short, and a call to `memcmp`
/// for each of the comparisons a line needs (finding each field, spotting
/// repeated keys) was a tenth of parsing it; `examples/parse_lines.rs` went
/// from 1.37-1.42 s to 1.19-1.30 s. Two overlapping 8-byte words cover keys
/// of 8 to 16 bytes, which are most of them.
fn key_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8 bytes"));
    if (8..=16).contains(&n) {
        word(a, 0) == word(b, 0) && word(a, n - 8) == word(b, n - 8)
    } else {
        a.iter().zip(b).all(|(x, y)| x == y)
    }
}

impl<'a> Members<'a> {
    fn get(&self, field: &str) -> Option<&'a RawValue> {
        self.position(field, 0).map(|i| self.0[i].1)
    }

    /// Where `field` is, looking first at `hint` (input in the day file's
    /// order finds every field there), then everywhere.
    fn position(&self, field: &str, hint: usize) -> Option<usize> {
        match self.0.get(hint) {
            Some((k, _)) if key_eq(&k.0, field) => Some(hint),
            _ => self.0.iter().position(|(k, _)| key_eq(&k.0, field)),
        }
    }

    /// The field's value unless it is missing or null.
    fn given(&self, field: &str) -> Option<&'a RawValue> {
        self.get(field).filter(|v| v.get() != "null")
    }
}

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MembersVisitor;
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut members: SmallVec<[(Key<'de>, &'de RawValue); INLINE_MEMBERS]> =
                    SmallVec::new();
                // Repeated keys are found by comparing with each member while
                // there are few (every real record), through an index past
                // that, so that a line of many keys costs linear time.
                let mut index: Option<std::collections::HashMap<String, usize>> = None;
                while let Some(key) = map.next_key::<Key<'de>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    let found = match &index {
                        Some(index) => index.get(key.0.as_ref()).copied(),
                        None => members.iter().position(|(k, _)| key_eq(&k.0, &key.0)),
                    };
                    match found {
                        Some(i) => members[i].1 = value,
                        None => {
                            if let Some(index) = &mut index {
                                index.insert(key.0.to_string(), members.len());
                            }
                            members.push((key, value));
                            if index.is_none() && members.len() > INLINE_MEMBERS {
                                index = Some(
                                    members
                                        .iter()
                                        .enumerate()
                                        .map(|(i, (k, _))| (k.0.to_string(), i))
                                        .collect(),
                                );
                            }
                        }
                    }
                }
                Ok(Members::<'de>(members))
            }
        }
        d.deserialize_map(MembersVisitor)
    }
}

/// Why one input line was refused: not JSON, or not a record.
#[derive(Debug, thiserror::Error)]
pub enum LineError {
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error(transparent)]
    Record(#[from] RecordError),
}

/// A JSON string value's text, unescaped; None for other values.
fn text_of(v: &RawValue) -> Option<Cow<'_, str>> {
    let raw = v.get();
    if !raw.starts_with('"') {
        return None;
    }
    if !raw.contains('\\') {
        return Some(Cow::Borrowed(&raw[1..raw.len() - 1]));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// How an error quotes a bad value: a string's text, else its compact JSON.
fn shown(v: &RawValue) -> String {
    match text_of(v) {
        Some(s) => s.into_owned(),
        None => serde_json::from_str::<Value>(v.get())
            .map(|v| v.to_string())
            .unwrap_or_else(|_| v.get().to_string()),
    }
}

/// Writes `v` as `serde_json` writes the value it parses to: compact, strings
/// escaped minimally, numbers in their shortest form. A string without
/// escapes, `null`, `true` and `false` already are; the rest go through a
/// `Value`, which also refuses what reading the line only skipped over (a
/// number out of range, nesting past serde_json's limit).
fn write_value(line: &mut String, v: &RawValue) -> serde_json::Result<()> {
    let raw = v.get();
    let verbatim = match raw.as_bytes()[0] {
        b'"' => !raw.contains('\\'),
        b'n' | b't' | b'f' => true,
        _ => false,
    };
    if verbatim {
        line.push_str(raw);
    } else {
        line.push_str(&serde_json::to_string(&serde_json::from_str::<Value>(
            raw,
        )?)?);
    }
    Ok(())
}

/// Writes `"key":` (after a comma unless it is the first), escaped as
/// `serde_json` escapes a string: only `"`, `\` and control characters.
fn write_key(line: &mut String, key: &str) {
    if line.len() > 1 {
        line.push(',');
    }
    if key.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        line.push('"');
        line.push_str(key);
        line.push('"');
    } else {
        line.push_str(&serde_json::to_string(key).expect("a string serialises"));
    }
    line.push(':');
}

/// Bytes a record's line buffer gets beyond what its line needs, so that a
/// bulk load can refill it with a longer line (see [`normalize_members`]).
const LINE_ROOM: usize = 256;

/// A field's day-file value, where normalising changed it.
enum Normalized {
    Text(String),
    Time(DateTime<Utc>),
    Integer(i64),
}

/// A field normalising looked at: its day-file value, and whether the input
/// already held exactly that text (a day-file timestamp, a JSON integer).
struct Checked {
    field: &'static str,
    value: Normalized,
    verbatim: bool,
}

impl Checked {
    fn new(field: &'static str, value: Normalized, verbatim: bool) -> Checked {
        Checked {
            field,
            value,
            verbatim,
        }
    }
}

/// Turns one NDJSON line (REST shape or day-file shape) into a stored record of
/// `account_sid`'s `rt` export.
///
/// The line is read once into its members with their values left as JSON
/// text: only the fields normalising looks at are decoded, and the rest are
/// copied through. Against building a `serde_json` object and serialising it
/// again, this took the 1M-line ingest's parsing from about 5.2 to 3.3 s of
/// CPU, with the same bytes, except that fields beyond the day file's keep
/// their input order. Writing the line as a `String` piece by piece (keys and
/// timestamps by hand, each field found where the day file's order puts it
/// before searching) then took `examples/parse_lines.rs` from 2.41 to 1.42 s
/// for the same 1M lines, with the same output. A refused line is checked
/// whole as JSON first, so that bad JSON anywhere in it is reported as such.
pub fn normalize_line(
    rt: ResourceType,
    account_sid: &str,
    text: &str,
) -> Result<Record, LineError> {
    let mut record = Record::empty();
    normalize_line_into(rt, account_sid, text, &mut record)?;
    Ok(record)
}

/// [`normalize_line`] into `out`, reusing its strings' buffers: a bulk load
/// refills the records of a batch the writer has stored instead of allocating
/// (and, on the writer's thread, freeing) three strings per line. On error
/// `out` holds nothing meaningful.
pub fn normalize_line_into(
    rt: ResourceType,
    account_sid: &str,
    text: &str,
    out: &mut Record,
) -> Result<(), LineError> {
    normalize_into(rt, account_sid, text, out).map(|_copied| ())
}

/// [`normalize_line_into`], saying whether the line was copied as it is
/// (see [`is_day_file_line`]).
fn normalize_into(
    rt: ResourceType,
    account_sid: &str,
    text: &str,
    out: &mut Record,
) -> Result<bool, LineError> {
    let normalized = if text.trim_start().starts_with('{') {
        serde_json::from_str::<Members<'_>>(text)
            .map_err(LineError::from)
            .and_then(|mut obj| {
                let dropped = left_out(rt);
                obj.0
                    .retain(|(k, _)| !dropped.iter().any(|d| key_eq(d, &k.0)));
                normalize_members(rt, account_sid, &obj, text, out)
            })
    } else {
        Err(RecordError::NotAnObject.into())
    };
    normalized.map_err(|refused| match serde_json::from_str::<Value>(text) {
        Err(json) => LineError::Json(json),
        Ok(_) => refused,
    })
}

/// Normalises the members of one line, `text`, into `out`. Scratch space is
/// kept on the stack and the line's buffer sized from the input, so that a
/// line costs few allocations, none of them from glibc's large bins (see
/// [`Members`]), and none at all into a reused record.
///
/// A line that already is its day-file line (see [`is_day_file_line`]), as
/// when a day file is loaded back, is copied as it is instead of being
/// written field by field.
fn normalize_members(
    rt: ResourceType,
    account_sid: &str,
    obj: &Members<'_>,
    text: &str,
    out: &mut Record,
) -> Result<bool, LineError> {
    let mut changed: SmallVec<[Checked; 12]> = SmallVec::new();
    match obj.given("account_sid") {
        None => changed.push(Checked::new(
            "account_sid",
            Normalized::Text(account_sid.to_string()),
            false,
        )),
        Some(v) => match text_of(v) {
            Some(s) if s == account_sid => {}
            Some(s) => return Err(RecordError::OtherAccount(s.into_owned()).into()),
            None => return Err(RecordError::NotAString("account_sid").into()),
        },
    }
    let order_sid = identity(rt, obj, &mut out.key)?;
    let created = match obj.given("date_created") {
        None => return Err(RecordError::Missing("date_created").into()),
        Some(v) => timestamp_of("date_created", v)?.0,
    };
    for &field in TIMESTAMPS {
        if let Some(v) = obj.given(field) {
            let (t, verbatim) = timestamp_of(field, v)?;
            changed.push(Checked::new(field, Normalized::Time(t), verbatim));
        }
    }
    for &field in COUNTERS {
        if let Some(v) = obj.given(field) {
            let (n, verbatim) = integer_of(field, v)?;
            changed.push(Checked::new(field, Normalized::Integer(n), verbatim));
        }
    }
    if rt == ResourceType::Messages {
        let (code, verbatim) = match obj.given("error_code") {
            None => (0, false),
            Some(v) => integer_of("error_code", v)?,
        };
        changed.push(Checked::new(
            "error_code",
            Normalized::Integer(code),
            verbatim,
        ));
    }
    check_enum(obj, "status", statuses(rt))?;
    check_enum(obj, "direction", directions(rt))?;
    if rt == ResourceType::Conferences {
        check_enum(obj, "reason_conference_ended", CONFERENCE_END_REASON)?;
    }

    // The day-file fields in their order, then whatever else the input had,
    // in its order.
    let known = fields(rt);
    // A reused buffer too small for this line is replaced, not grown (growing
    // copies what it held), with room for longer lines after it, since a
    // body's length varies: in a profile of the 1M-line load, growing was
    // about 6% of the parsing thread's time. One more than twice the size a
    // new buffer gets is given up too, or a load's records would each end up
    // the size of its longest lines (measured against the new size, so that
    // a buffer just made is not given up for the next short line).
    let wanted = text.len() + 64;
    let room = wanted + LINE_ROOM;
    if out.line.capacity() < wanted || out.line.capacity() > 2 * room {
        out.line = String::with_capacity(room);
    }
    let line = &mut out.line;
    line.clear();
    let copied = is_day_file_line(known, obj, &changed, text);
    if copied {
        line.push_str(text);
    } else {
        write_line(known, obj, &changed, line)?;
    }
    out.sort_key.clear();
    push_iso(&mut out.sort_key, created);
    out.sort_key.push('|');
    out.sort_key.push_str(&order_sid);
    out.day = Day::from_date(created.date_naive());
    Ok(copied)
}

/// True when `text`, whose members are `obj`, is byte for byte what
/// [`write_line`] would write: exactly the day-file fields in their order,
/// no whitespace between tokens, no escapes, each checked field verbatim and
/// every other value a string, `null`, `true` or `false` (which
/// [`write_value`] copies). On the 1M day-file lines of `bench/export.sh`,
/// `examples/parse_lines.rs` took 1.37-1.42 s with this against 1.64-1.75 s
/// without, with the same output (CRC-32).
fn is_day_file_line(known: &[&str], obj: &Members<'_>, changed: &[Checked], text: &str) -> bool {
    if obj.0.len() != known.len() || !changed.iter().all(|c| c.verbatim) {
        return false;
    }
    // Braces, and a comma between members.
    let mut len = 2 + known.len() - 1;
    for ((key, value), &field) in obj.0.iter().zip(known) {
        let raw = value.get();
        let copied = matches!(raw.as_bytes()[0], b'"' | b'n' | b't' | b'f')
            || changed.iter().any(|c| key_eq(c.field, field));
        if !key_eq(&key.0, field) || !copied {
            return false;
        }
        // `"key":value`
        len += field.len() + 3 + raw.len();
    }
    len == text.len() && memchr::memchr(b'\\', text.as_bytes()).is_none()
}

/// Writes the day-file line of `obj` into `line` (empty), with the checked
/// fields' values in their day-file form.
fn write_line(
    known: &[&str],
    obj: &Members<'_>,
    changed: &[Checked],
    line: &mut String,
) -> Result<(), LineError> {
    line.push('{');
    let emit = |line: &mut String, f: &str, given: Option<&RawValue>| {
        write_key(line, f);
        match changed
            .iter()
            .find(|c| key_eq(c.field, f))
            .map(|c| &c.value)
        {
            Some(Normalized::Text(s)) => {
                line.push_str(&serde_json::to_string(s).expect("a string serialises"))
            }
            Some(Normalized::Time(t)) => {
                line.push('"');
                push_iso(line, *t);
                line.push('"');
            }
            Some(Normalized::Integer(n)) => line.push_str(itoa::Buffer::new().format(*n)),
            None => match given {
                Some(v) => write_value(line, v)?,
                None => line.push_str("null"),
            },
        }
        Ok::<(), serde_json::Error>(())
    };
    // Which members the day-file fields took; the rest follow them.
    let mut used: SmallVec<[bool; INLINE_MEMBERS]> = smallvec::smallvec![false; obj.0.len()];
    let mut hint = 0;
    for &f in known {
        let at = obj.position(f, hint);
        if let Some(i) = at {
            used[i] = true;
            hint = i + 1;
        }
        emit(line, f, at.map(|i| obj.0[i].1))?;
    }
    for (i, (k, v)) in obj.0.iter().enumerate() {
        if !used[i] {
            emit(line, &k.0, Some(v))?;
        }
    }
    line.push('}');
    Ok(())
}

/// The record's identity (what re-loading replaces), written into `key`, and
/// the SID that orders it within a second.
fn identity<'a>(
    rt: ResourceType,
    obj: &Members<'a>,
    key: &mut String,
) -> Result<Cow<'a, str>, RecordError> {
    key.clear();
    let order_sid = match rt {
        ResourceType::Messages => sid_field(
            obj,
            "sid",
            &[SidKind::Message, SidKind::MediaMessage],
            "message (SM/MM)",
        )?,
        ResourceType::Calls => sid_field(obj, "sid", &[SidKind::Call], "call (CA)")?,
        ResourceType::Conferences => {
            sid_field(obj, "sid", &[SidKind::Conference], "conference (CF)")?
        }
        ResourceType::Participants => {
            let call = sid_field(obj, "call_sid", &[SidKind::Call], "call (CA)")?;
            let conf = sid_field(
                obj,
                "conference_sid",
                &[SidKind::Conference],
                "conference (CF)",
            )?;
            key.push_str(&conf);
            key.push('/');
            call
        }
    };
    key.push_str(&order_sid);
    Ok(order_sid)
}

fn sid_field<'a>(
    obj: &Members<'a>,
    field: &'static str,
    kinds: &[SidKind],
    kind_name: &'static str,
) -> Result<Cow<'a, str>, RecordError> {
    let v = obj.given(field).ok_or(RecordError::Missing(field))?;
    match text_of(v) {
        Some(s) if kinds.iter().any(|k| k.matches(&s)) => Ok(s),
        _ => Err(RecordError::BadSid {
            field,
            value: shown(v),
            kind: kind_name,
        }),
    }
}

/// The instant `v` gives, and whether `v` is already its day-file text.
fn timestamp_of(field: &'static str, v: &RawValue) -> Result<(DateTime<Utc>, bool), RecordError> {
    let raw = v.get();
    // `"YYYY-MM-DDTHH:MM:SSZ"`, which is written back as it is.
    if raw.len() == 22 && raw.starts_with('"') && raw.ends_with('"') {
        if let Some(t) = parse_day_file_timestamp(&raw[1..21]) {
            return Ok((t, true));
        }
    }
    text_of(v)
        .and_then(|s| parse_timestamp(&s))
        .map(|t| (t, false))
        .ok_or_else(|| RecordError::BadDate {
            field,
            value: shown(v),
        })
}

/// The integer `v` gives, and whether `v` is already its day-file text.
fn integer_of(field: &'static str, v: &RawValue) -> Result<(i64, bool), RecordError> {
    let parsed = match text_of(v) {
        Some(s) => s.trim().parse::<i64>().ok().map(|n| (n, false)),
        // A JSON integer in range parses as an `i64` as it is, without a
        // `Value` (3% of parsing a Message), and is written back as it was:
        // JSON has no leading zeros or `+`. `-0`, a float to serde_json,
        // goes through the `Value` and is refused as before.
        None => match v.get().parse::<i64>() {
            Ok(n) if !v.get().starts_with("-0") => Some((n, true)),
            _ => match serde_json::from_str::<Value>(v.get()) {
                Ok(Value::Number(n)) => n.as_i64().map(|n| (n, false)),
                _ => None,
            },
        },
    };
    parsed.ok_or_else(|| RecordError::BadInteger {
        field,
        value: shown(v),
    })
}

fn check_enum(obj: &Members<'_>, field: &'static str, allowed: &[&str]) -> Result<(), RecordError> {
    let Some(v) = obj.given(field) else {
        return Ok(());
    };
    match text_of(v) {
        Some(s) if allowed.is_empty() || allowed.contains(&s.as_ref()) => Ok(()),
        _ => Err(RecordError::BadEnum {
            field,
            value: shown(v),
            allowed: allowed.join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// [`normalize_line`] of a record built with `json!`.
    fn normalize(rt: ResourceType, account_sid: &str, input: Value) -> Result<Record, RecordError> {
        match normalize_line(rt, account_sid, &input.to_string()) {
            Ok(record) => Ok(record),
            Err(LineError::Record(e)) => Err(e),
            Err(LineError::Json(e)) => panic!("json! wrote bad JSON: {e}"),
        }
    }

    const AC: &str = "AC0123456789abcdef0123456789abcdef";

    #[test]
    fn day_file_timestamps_read_and_write_like_the_general_parser_and_formatter() {
        for text in [
            "2024-06-01T00:00:00Z",
            "1999-12-31T23:59:59Z",
            "2024-02-29T12:34:56Z",
            "0001-01-01T00:00:00Z",
        ] {
            let fast = parse_day_file_timestamp(text).unwrap();
            assert_eq!(
                Some(fast),
                DateTime::parse_from_rfc3339(text)
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            );
            assert_eq!(iso(fast), text);
            assert_eq!(iso(fast), fast.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        // Years outside 0000-9999 are chrono's to write.
        for year in [-1, 0, 999, 9999, 10000] {
            let t = chrono::NaiveDate::from_ymd_opt(year, 3, 4)
                .unwrap()
                .and_hms_opt(5, 6, 7)
                .unwrap()
                .and_utc();
            assert_eq!(iso(t), t.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        // Not the exact shape, or not a real time: left to the general parsers.
        for text in [
            "2023-02-29T00:00:00Z",
            "2024-06-01T24:00:00Z",
            "2024-06-01 00:00:00Z",
            "2024-06-01T00:00:00+00:00",
            "2024-6-01T00:00:00Z",
            "+024-06-01T00:00:00Z",
        ] {
            assert_eq!(parse_day_file_timestamp(text), None, "{text}");
        }
        assert_eq!(
            parse_timestamp("2024-06-01T00:00:00+00:00"),
            parse_timestamp("2024-06-01T00:00:00Z")
        );
        assert_eq!(
            parse_timestamp("Sat, 01 Jun 2024 00:00:00 +0000"),
            parse_timestamp("2024-06-01T00:00:00Z")
        );
        assert_eq!(parse_timestamp("2023-02-29T00:00:00Z"), None);
    }

    #[test]
    fn rest_message_becomes_day_file_line() {
        let rest = json!({
            "account_sid": AC, "api_version": "2010-04-01", "body": "hi", "date_created": "Sun, 26 Jul 2020 22:21:20 +0000",
            "date_sent": "Sun, 26 Jul 2020 22:21:21 +0000", "date_updated": "Sun, 26 Jul 2020 22:21:22 +0000",
            "direction": "outbound-api", "error_code": null, "error_message": null, "from": "+16505551111",
            "messaging_service_sid": null, "num_media": "0", "num_segments": "1", "price": "-0.00750",
            "price_unit": "USD", "sid": "SM0123456789abcdef0123456789abcdef", "status": "delivered",
            "subresource_uris": {"media": "/x"}, "to": "+16505552222", "uri": "/2010-04-01/x.json"
        });
        let r = normalize(ResourceType::Messages, AC, rest).unwrap();
        assert_eq!(r.day.to_string(), "2020-07-26");
        assert_eq!(r.key, "SM0123456789abcdef0123456789abcdef");
        assert_eq!(
            r.line,
            r#"{"body":"hi","num_segments":1,"direction":"outbound-api","from":"+16505551111","to":"+16505552222","date_updated":"2020-07-26T22:21:22Z","price":"-0.00750","account_sid":"AC0123456789abcdef0123456789abcdef","num_media":0,"status":"delivered","messaging_service_sid":null,"sid":"SM0123456789abcdef0123456789abcdef","date_sent":"2020-07-26T22:21:21Z","date_created":"2020-07-26T22:21:20Z","error_code":0}"#
        );
        let again: Value = serde_json::from_str(&r.line).unwrap();
        assert_eq!(normalize(ResourceType::Messages, AC, again).unwrap(), r);
    }

    #[test]
    fn day_file_lines_are_kept_as_they_are_and_near_misses_rewritten() {
        let rest = json!({
            "account_sid": AC, "body": "hi ñ", "date_created": "Sun, 26 Jul 2020 22:21:20 +0000",
            "date_sent": "2020-07-26T22:21:21Z", "date_updated": "2020-07-26T22:21:22Z",
            "direction": "outbound-api", "error_code": "30003", "from": "+16505551111",
            "messaging_service_sid": null, "num_media": "0", "num_segments": 2, "price": "-0.00750",
            "sid": "SM0123456789abcdef0123456789abcdef", "status": "delivered", "to": "+16505552222"
        });
        let written = normalize(ResourceType::Messages, AC, rest).unwrap();
        let day_line = written.line.clone();
        // Whether `text` is copied as it is, and its record.
        let read = |rt: ResourceType, text: &str| {
            let mut r = Record::empty();
            let copied = normalize_into(rt, AC, text, &mut r).unwrap();
            (copied, r)
        };
        // The day file's own line is copied as it is, into the same record.
        assert_eq!(
            read(ResourceType::Messages, &day_line),
            (true, written.clone())
        );

        // Anything that is not exactly a day-file line is written field by
        // field, into the same line.
        let near_misses = [
            day_line.replacen(r#""body":"#, r#"  "body" : "#, 1),
            day_line.replacen(r#","to":"#, r#", "to":"#, 1),
            format!(" {day_line}\t"),
            day_line.replacen(r#""num_segments":2"#, r#""num_segments":"2""#, 1),
            day_line.replacen(r#""error_code":30003"#, r#""error_code":"30003""#, 1),
            day_line.replacen("2020-07-26T22:21:21Z", "Sun, 26 Jul 2020 22:21:21 +0000", 1),
            day_line.replacen("2020-07-26T22:21:22Z", "2020-07-26T22:21:22+00:00", 1),
            day_line.replacen("hi ñ", r"hi \u00f1", 1),
            day_line.replacen(r#""status""#, r#""st\u0061tus""#, 1),
            day_line.replacen(r#""price":"-0.00750","#, "", 1).replacen(
                r#""error_code""#,
                r#""price":"-0.00750","error_code""#,
                1,
            ),
            day_line.replacen(r#""body":"hi ñ""#, r#""body":"x","body":"hi ñ""#, 1),
            day_line.replacen(r#""body":"hi ñ","#, "", 1),
        ];
        for (n, text) in near_misses.iter().enumerate() {
            assert_ne!(text, &day_line, "near miss {n} is a change");
            let (copied, r) = read(ResourceType::Messages, text);
            assert!(!copied, "{text}");
            if n == near_misses.len() - 1 {
                // Without a body, the day file's null stands in its place.
                assert_eq!(r.line, day_line.replacen(r#""hi ñ""#, "null", 1), "{text}");
            } else {
                assert_eq!(r, written, "{text}");
            }
        }
        // A missing or null error code is written as 0.
        let zero = day_line.replacen(r#""error_code":30003"#, r#""error_code":0"#, 1);
        for text in [
            day_line.replacen(r#","error_code":30003"#, "", 1),
            day_line.replacen(r#""error_code":30003"#, r#""error_code":null"#, 1),
        ] {
            assert_eq!(
                normalize_line(ResourceType::Messages, AC, &text)
                    .unwrap()
                    .line,
                zero
            );
        }
        // Values the day file's line only copies when they are strings, null or
        // booleans: a number elsewhere is written as serde_json writes it.
        let priced = day_line.replacen(r#""price":"-0.00750""#, r#""price":-7.50e-3"#, 1);
        assert_eq!(
            normalize_line(ResourceType::Messages, AC, &priced)
                .unwrap()
                .line,
            day_line.replacen(r#""price":"-0.00750""#, r#""price":-0.0075"#, 1)
        );
        // A field beyond the day file's keeps the line from being copied.
        let extra = day_line.replacen('}', r#","x":"y"}"#, 1);
        let (copied, r) = read(ResourceType::Messages, &extra);
        assert!(!copied);
        assert_eq!(r.line, extra);

        // The same holds for the other resources' day files.
        let call = json!({
            "sid": "CA0123456789abcdef0123456789abcdef", "account_sid": AC,
            "date_created": "2020-07-26T22:21:20Z", "start_time": "Sun, 26 Jul 2020 22:21:20 +0000",
            "duration": "15", "queue_time": 0, "status": "completed", "direction": "inbound",
            "answered_by": null, "to": "+16505552222"
        });
        let conference = json!({
            "sid": "CF0123456789abcdef0123456789abcdef", "account_sid": AC,
            "date_created": "2020-07-26T22:21:20Z", "status": "completed", "region": "us1",
            "reason_conference_ended": "last-participant-left", "friendly_name": "room"
        });
        let participant = json!({
            "call_sid": "CA0123456789abcdef0123456789abcdef", "account_sid": AC,
            "conference_sid": "CF0123456789abcdef0123456789abcdef", "muted": false, "hold": true,
            "date_created": "2020-07-26T22:21:20Z", "status": "connected", "queue_time": "3"
        });
        for (rt, rest) in [
            (ResourceType::Calls, call),
            (ResourceType::Conferences, conference),
            (ResourceType::Participants, participant),
        ] {
            let written = normalize(rt, AC, rest).unwrap();
            assert_eq!(read(rt, &written.line), (true, written), "{rt:?}");
        }
    }

    #[test]
    fn keys_compare_as_strings_do() {
        let keys: Vec<String> = (0..24)
            .flat_map(|n| {
                let base = "abcdefghijklmnopqrstuvwx"[..n].to_string();
                let mut last = base.clone();
                if let Some(c) = last.pop() {
                    last.push(if c == 'z' { 'a' } else { 'z' });
                }
                let first = base.replacen('a', "q", 1);
                [base, last, first]
            })
            .collect();
        for a in &keys {
            for b in &keys {
                assert_eq!(key_eq(a, b), a == b, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn bad_records_say_why() {
        let base = json!({"sid": "CA0123456789abcdef0123456789abcdef", "date_created": "2020-07-26T22:21:20Z"});
        assert!(normalize(ResourceType::Calls, AC, base.clone()).is_ok());
        let mut other = base.clone();
        other["account_sid"] = json!("AC1123456789abcdef0123456789abcdef");
        assert!(matches!(
            normalize(ResourceType::Calls, AC, other),
            Err(RecordError::OtherAccount(_))
        ));
        let mut bad_date = base.clone();
        bad_date["date_created"] = json!("yesterday");
        assert!(matches!(
            normalize(ResourceType::Calls, AC, bad_date),
            Err(RecordError::BadDate { .. })
        ));
        let mut no_sid = base.clone();
        no_sid.as_object_mut().unwrap().remove("sid");
        assert_eq!(
            normalize(ResourceType::Calls, AC, no_sid),
            Err(RecordError::Missing("sid"))
        );
        let mut bad_status = base.clone();
        bad_status["status"] = json!("exploded");
        assert!(matches!(
            normalize(ResourceType::Calls, AC, bad_status),
            Err(RecordError::BadEnum { .. })
        ));
        let mut bad_dur = base;
        bad_dur["duration"] = json!("ten");
        assert!(matches!(
            normalize(ResourceType::Calls, AC, bad_dur),
            Err(RecordError::BadInteger { .. })
        ));
    }

    /// A counter is an integer: given as a JSON number in range, or as a
    /// string; a fraction, an exponent, `-0` (a float to serde_json) or a
    /// number past `i64` is refused.
    #[test]
    fn counters_are_integers_given_as_numbers_or_strings() {
        let call = |duration: Value| {
            json!({"sid": "CA0123456789abcdef0123456789abcdef", "date_created": "2020-07-26T22:21:20Z",
                "duration": duration})
        };
        for (given, stored) in [
            (json!(42), "42"),
            (json!(-7), "-7"),
            (json!(0), "0"),
            (json!(" 12 "), "12"),
            (json!(i64::MAX), "9223372036854775807"),
        ] {
            let r = normalize(ResourceType::Calls, AC, call(given.clone())).unwrap();
            assert!(
                r.line.contains(&format!("\"duration\":{stored},")),
                "{given}: {}",
                r.line
            );
        }
        for raw in ["1.5", "1e3", "-0", "9223372036854775808"] {
            let line = call(json!(null)).to_string().replace("null", raw);
            assert!(
                matches!(
                    normalize_line(ResourceType::Calls, AC, &line),
                    Err(LineError::Record(RecordError::BadInteger { .. }))
                ),
                "{raw}"
            );
        }
    }

    #[test]
    fn participants_are_keyed_by_conference_and_call() {
        let p = json!({"call_sid": "CA0123456789abcdef0123456789abcdef", "conference_sid": "CF0123456789abcdef0123456789abcdef",
            "date_created": "Sun, 26 Jul 2020 22:21:20 +0000", "label": "x", "queue_time": "12"});
        let r = normalize(ResourceType::Participants, AC, p).unwrap();
        assert_eq!(
            r.key,
            "CF0123456789abcdef0123456789abcdef/CA0123456789abcdef0123456789abcdef"
        );
        assert!(r.line.contains(r#""queue_time":12"#));
        assert!(!r.line.contains("label"));
    }

    #[test]
    fn lines_are_read_as_serde_json_reads_them() {
        const SM: &str = "SM0123456789abcdef0123456789abcdef";
        let head = format!(r#"{{"sid":"{SM}","date_created":"2020-07-26T22:21:20Z""#);
        let line = |rest: &str| format!("{head}{rest}}}");
        let ok = |text: &str| {
            normalize_line(ResourceType::Messages, AC, text)
                .unwrap()
                .line
        };
        let reason = |text: &str| {
            normalize_line(ResourceType::Messages, AC, text)
                .unwrap_err()
                .to_string()
        };
        let tail = |text: &str| {
            let l = ok(text);
            l[l.find(r#""error_code":0"#).unwrap() + 14..].to_string()
        };

        // Extra fields keep their input order and come out as serde_json
        // writes them: escapes decoded and re-escaped minimally, numbers in
        // their shortest form, whitespace gone.
        assert_eq!(
            tail(&line(
                r#", "z": 1.50, "a": {"k": [1, 2]}, "m": "\u0041\/\n", "b": 1E+2, "c": -0, "d": true, "e": []"#
            )),
            r#","z":1.5,"a":{"k":[1,2]},"m":"A/\n","b":100.0,"c":-0.0,"d":true,"e":[]}"#
        );
        // Keys are escaped as serde_json escapes them.
        assert_eq!(
            tail(&line(r#","q\"k":1,"b\\k":2,"c\u0001k":3,"é\u007fk":4"#)),
            ",\"q\\\"k\":1,\"b\\\\k\":2,\"c\\u0001k\":3,\"é\u{7f}k\":4}"
        );
        // A key given twice keeps its first place and its last value; an
        // escaped key is the key it spells.
        let twice = ok(&line(r#","body":"first","x":1,"b\u006fdy":"second""#));
        assert!(twice.starts_with(r#"{"body":"second","#), "{twice}");
        assert!(twice.ends_with(r#""error_code":0,"x":1}"#), "{twice}");
        // Normalised fields outside the day file's own are normalised too.
        assert_eq!(
            tail(&line(
                r#","start_time":"Sun, 26 Jul 2020 22:21:20 +0000","queue_time":"12""#
            )),
            r#","start_time":"2020-07-26T22:21:20Z","queue_time":12}"#
        );
        // The SID may be written with escapes.
        let escaped_sid = line("").replacen("\"SM", "\"\\u0053M", 1);
        assert_eq!(
            normalize_line(ResourceType::Messages, AC, &escaped_sid)
                .unwrap()
                .key,
            SM
        );

        // Not an object, and not JSON.
        for text in ["[1, 2]", "\"x\"", "5", "null"] {
            assert_eq!(reason(text), "not a JSON object", "{text}");
        }
        assert_eq!(
            reason("[1"),
            "bad JSON: EOF while parsing a list at line 1 column 2"
        );
        assert_eq!(
            reason(r#"{"a":1} x"#),
            "bad JSON: trailing characters at line 1 column 9"
        );
        // What reading the line only skips over is still checked as a whole
        // line's JSON, wherever it is, and reported as serde_json would.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for (rest, why) in [
            (r#","x":1e400"#, "number out of range"),
            (&format!(r#","x":{deep}"#)[..], "recursion limit exceeded"),
            (r#","x":"\ud800""#, "hex escape"),
            (r#","sid":"\ud800""#, "hex escape"),
            (r#","num_segments":1e400"#, "number out of range"),
        ] {
            let why_now = reason(&line(rest));
            assert!(
                why_now.starts_with("bad JSON: ") && why_now.contains(why),
                "{rest}: {why_now}"
            );
        }
        assert!(reason("{\"body\":\"a\u{1}b\"}").starts_with("bad JSON: control character"));
    }
}
