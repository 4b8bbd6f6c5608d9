//! Tests of record normalisation and writing.

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
fn a_records_second_is_its_sort_keys_timestamp_and_orders_its_day_like_the_key() {
    let mut day = Vec::new();
    for (year, hms, sid) in [
        (2024, (23, 59, 59), "SM0f"),
        (2024, (0, 0, 0), "SM01"),
        (2024, (12, 34, 56), "SM02"),
        (2024, (12, 34, 56), "SM01"),
        (1969, (1, 2, 3), "SM01"),
        (10000, (4, 5, 6), "SM01"),
        (-1, (7, 8, 9), "SM01"),
    ] {
        let t = chrono::NaiveDate::from_ymd_opt(year, 6, 1)
            .unwrap()
            .and_hms_opt(hms.0, hms.1, hms.2)
            .unwrap()
            .and_utc();
        let mut sort_key = iso(t);
        sort_key.push('|');
        sort_key.push_str(sid);
        let r = Record {
            key: sid.to_string(),
            day: Day::from_date(t.date_naive()),
            sort_key,
            line: String::new(),
        };
        assert_eq!(r.second(), t.timestamp(), "{}", r.sort_key);
        if year == 2024 {
            day.push(r);
        }
    }
    let mut by_key = day.clone();
    by_key.sort_by(|a, b| a.sort_key.cmp(&b.sort_key));
    day.sort_by(|a, b| (a.second(), &a.sort_key).cmp(&(b.second(), &b.sort_key)));
    assert_eq!(day, by_key);
    // A key without the time counts as the day's first second.
    let odd = Record {
        sort_key: "CA01".into(),
        ..day[0].clone()
    };
    assert_eq!(odd.second(), day[0].day.first_second());
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

#[test]
fn common_mistakes_get_a_hint() {
    let page = json!({"messages": [{"sid": "SM0123456789abcdef0123456789abcdef"}], "page": 0});
    let e = normalize(ResourceType::Messages, AC, page)
        .unwrap_err()
        .to_string();
    assert!(e.contains("jq -c '.messages[]'"), "{e}");
    let cli = json!({"accountSid": AC, "sid": null, "dateCreated": "2024-06-01T00:00:00.000Z"});
    let e = normalize(ResourceType::Messages, AC, cli)
        .unwrap_err()
        .to_string();
    assert!(e.contains("camelCase"), "{e}");
    let upper = json!({"sid": "SM0123456789ABCDEF0123456789ABCDEF", "date_created": "2024-06-01T00:00:00Z"});
    let e = normalize(ResourceType::Messages, AC, upper)
        .unwrap_err()
        .to_string();
    assert!(e.contains("lower-case"), "{e}");
}
