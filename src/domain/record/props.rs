//! Property tests of the parser of untrusted input: records of every resource
//! type in REST shape and day-file shape, every optional field present or
//! absent, strings with escapes and any Unicode. The copy path (a line that
//! already is its day-file line) and the rewrite path must give the same
//! bytes; a written line must read back into the same record; no input may
//! panic the parser.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::*;

const AC: &str = "AC0123456789abcdef0123456789abcdef";

/// Any string, control characters, quotes, backslashes and astral
/// characters included.
fn any_text() -> impl Strategy<Value = Value> {
    prop_oneof![
        proptest::collection::vec(any::<char>(), 0..10)
            .prop_map(|c| Value::String(c.into_iter().collect())),
        "[a-z\"\\\\ é😀\u{0}\u{1f}\u{7f}\u{2028}]{0,8}".prop_map(Value::String),
    ]
}

fn sid(prefix: &'static str) -> impl Strategy<Value = Value> {
    "[0-9a-f]{32}".prop_map(move |hex| Value::String(format!("{prefix}{hex}")))
}

/// An instant in one of the forms input may give it.
fn timestamp() -> impl Strategy<Value = Value> {
    (946_684_800i64..1_893_456_000, 0..3u8).prop_map(|(secs, form)| {
        let t = DateTime::<Utc>::from_timestamp(secs, 0).expect("in range");
        Value::String(match form {
            0 => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            1 => t.to_rfc2822(),
            _ => t.to_rfc3339(),
        })
    })
}

fn counter() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0i64..1_000_000).prop_map(Value::from),
        (0i64..1_000_000).prop_map(|n| Value::String(n.to_string())),
    ]
}

fn one_of(values: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(values)
        .prop_map(|v| Value::String(v.to_string()))
        .boxed()
}

/// A field's value, or None to leave the field out (required fields are
/// always given; most others may also be null).
fn field(rt: ResourceType, name: &'static str) -> BoxedStrategy<Option<Value>> {
    let value: BoxedStrategy<Value> = match name {
        "account_sid" => return prop_oneof![Just(None), Just(Some(Value::from(AC)))].boxed(),
        "date_created" => return timestamp().prop_map(Some).boxed(),
        "sid" if rt == ResourceType::Messages => return sid("SM").prop_map(Some).boxed(),
        "sid" if rt == ResourceType::Calls => return sid("CA").prop_map(Some).boxed(),
        "sid" if rt == ResourceType::Conferences => return sid("CF").prop_map(Some).boxed(),
        "call_sid" if rt == ResourceType::Participants => return sid("CA").prop_map(Some).boxed(),
        "conference_sid" if rt == ResourceType::Participants => {
            return sid("CF").prop_map(Some).boxed()
        }
        "status" => one_of(statuses(rt)),
        "direction" => one_of(directions(rt)),
        "reason_conference_ended" => one_of(CONFERENCE_END_REASON),
        "error_code" => counter().boxed(),
        "coaching" | "muted" | "hold" | "end_conference_on_exit" | "start_conference_on_enter" => {
            any::<bool>().prop_map(Value::Bool).boxed()
        }
        n if TIMESTAMPS.contains(&n) => timestamp().boxed(),
        n if COUNTERS.contains(&n) => counter().boxed(),
        _ => any_text().boxed(),
    };
    prop_oneof![
        2 => value.prop_map(Some),
        1 => Just(Some(Value::Null)),
        1 => Just(None),
    ]
    .boxed()
}

/// A REST-shaped record of `rt` (day-file fields and those the day file
/// leaves out), its members in any order.
fn rest_record(rt: ResourceType) -> BoxedStrategy<String> {
    let names: Vec<&'static str> = fields(rt).iter().chain(left_out(rt)).copied().collect();
    let values: Vec<BoxedStrategy<Option<Value>>> = names.iter().map(|n| field(rt, n)).collect();
    (values, Just(names))
        .prop_flat_map(|(values, names)| {
            let members: Vec<(&'static str, Value)> = names
                .into_iter()
                .zip(values)
                .filter_map(|(n, v)| v.map(|v| (n, v)))
                .collect();
            Just(members).prop_shuffle()
        })
        .prop_map(|members| {
            let object: Map<String, Value> = members
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
            Value::Object(object).to_string()
        })
        .boxed()
}

fn any_record() -> BoxedStrategy<(ResourceType, String)> {
    proptest::sample::select(ResourceType::ALL.to_vec())
        .prop_flat_map(|rt| rest_record(rt).prop_map(move |line| (rt, line)))
        .boxed()
}

/// Reads `text` into a record; whether it was copied as it is.
fn read(rt: ResourceType, text: &str) -> Result<(bool, Record), LineError> {
    let mut r = Record::empty();
    let copied = normalize_into(rt, AC, text, &mut r)?;
    Ok((copied, r))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// A REST-shaped record is written as its day-file line; that line is
    /// copied as it is into the same record, and the same line spaced out
    /// (or with its members reordered) is rewritten into the same bytes.
    #[test]
    fn the_copy_and_rewrite_paths_give_the_same_line((rt, input) in any_record()) {
        let (_, written) = read(rt, &input).map_err(|e| TestCaseError::fail(format!("{e}: {input}")))?;
        let (copied, again) = read(rt, &written.line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        // A line without escapes is copied as it is; one with escapes is
        // written again, into the same bytes.
        prop_assert!(copied || written.line.contains('\\'), "the day-file line {} was not copied", written.line);
        prop_assert_eq!(&again, &written);
        let value: Value = serde_json::from_str(&written.line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let spaced = serde_json::to_string_pretty(&value).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let (copied, rewritten) = read(rt, &spaced).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(!copied);
        prop_assert_eq!(&rewritten, &written);
        if let Value::Object(map) = value {
            let reversed: Map<String, Value> = map.into_iter().rev().collect();
            let text = Value::Object(reversed).to_string();
            let (_, reordered) = read(rt, &text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&reordered, &written);
        }
    }

    /// Every day-file field is in the written line, in the day file's order.
    #[test]
    fn written_lines_hold_the_day_file_fields_in_order((rt, input) in any_record()) {
        let (_, written) = read(rt, &input).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let value: Value = serde_json::from_str(&written.line).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let keys: Vec<&str> = value.as_object().map(|m| m.keys().map(String::as_str).collect()).unwrap_or_default();
        let known: Vec<&str> = keys.iter().copied().filter(|k| fields(rt).contains(k)).collect();
        let order: Vec<&str> = fields(rt).iter().copied().filter(|f| known.contains(f)).collect();
        prop_assert_eq!(known, order);
        for left in left_out(rt) {
            prop_assert!(!keys.contains(left), "{left} is left out of day files");
        }
    }

    /// Arbitrary bytes never panic the parser.
    #[test]
    fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let text = String::from_utf8_lossy(&bytes);
        for rt in ResourceType::ALL {
            let _ = read(rt, &text);
        }
    }

    /// Records with a member changed to any JSON value are read or refused,
    /// never panic, and what is read is written as a line that reads back.
    #[test]
    fn any_member_value_is_read_or_refused(
        (rt, input) in any_record(),
        at in any::<prop::sample::Index>(),
        value in prop_oneof![any_text(), any::<f64>().prop_map(Value::from), any::<i64>().prop_map(Value::from), Just(Value::Array(vec![])), Just(Value::Null)],
    ) {
        let mut object: Map<String, Value> = serde_json::from_str(&input).map_err(|e| TestCaseError::fail(e.to_string()))?;
        if object.is_empty() {
            return Ok(());
        }
        let key = object.keys().nth(at.index(object.len())).cloned().unwrap_or_default();
        object.insert(key, value);
        let text = Value::Object(object).to_string();
        if let Ok((_, written)) = read(rt, &text) {
            let (_, again) = read(rt, &written.line).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(&again, &written);
        }
    }
}
