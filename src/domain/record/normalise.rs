//! Checking and normalising a line's fields into a [`Record`].

use super::*;

/// A field's day-file value, where normalising changed it.
pub(super) enum Normalized {
    Text(String),
    Time(DateTime<Utc>),
    Integer(i64),
}

/// A field normalising looked at: its day-file value, and whether the input
/// already held exactly that text (a day-file timestamp, a JSON integer).
pub(super) struct Checked {
    pub(super) field: &'static str,
    pub(super) value: Normalized,
    pub(super) verbatim: bool,
}

impl Checked {
    pub(super) fn new(field: &'static str, value: Normalized, verbatim: bool) -> Checked {
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
/// copied through, which costs far less than building a `serde_json` object
/// and serialising it again; fields beyond the day file's keep their input
/// order. The line is written as a `String` piece by piece (keys and
/// timestamps by hand, each field looked for first where the day file's
/// order puts it). A refused line is checked
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
pub(super) fn normalize_into(
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
pub(super) fn normalize_members(
    rt: ResourceType,
    account_sid: &str,
    obj: &Members<'_>,
    text: &str,
    out: &mut Record,
) -> Result<bool, LineError> {
    let mut changed: SmallVec<[Checked; 12]> = SmallVec::new();
    if obj.given("account_sid").is_none() && obj.given("sid").is_none() {
        if let Some(hint) = misshapen(obj) {
            return Err(hint.into());
        }
    }
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

/// Why a line without `account_sid` or `sid` is no record, when it has a
/// shape people often give by mistake: a whole REST page, or twilio-cli's
/// camelCase output.
fn misshapen(obj: &Members<'_>) -> Option<RecordError> {
    for list in ["messages", "calls", "conferences", "participants"] {
        if obj.given(list).is_some_and(|v| v.get().starts_with('[')) {
            return Some(RecordError::WholePage(list.to_string()));
        }
    }
    ["accountSid", "dateCreated", "conferenceSid", "callSid"]
        .into_iter()
        .find(|k| obj.given(k).is_some())
        .map(|k| RecordError::CamelCase(k.to_string()))
}

/// The record's identity (what re-loading replaces), written into `key`, and
/// the SID that orders it within a second.
pub(super) fn identity<'a>(
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

pub(super) fn sid_field<'a>(
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
pub(super) fn timestamp_of(
    field: &'static str,
    v: &RawValue,
) -> Result<(DateTime<Utc>, bool), RecordError> {
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
pub(super) fn integer_of(field: &'static str, v: &RawValue) -> Result<(i64, bool), RecordError> {
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

pub(super) fn check_enum(
    obj: &Members<'_>,
    field: &'static str,
    allowed: &[&str],
) -> Result<(), RecordError> {
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
