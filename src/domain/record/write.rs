//! Writing a day-file line, and telling a line that already is one.

use super::*;

/// Writes `v` as `serde_json` writes the value it parses to: compact, strings
/// escaped minimally, numbers in their shortest form. A string without
/// escapes, `null`, `true` and `false` already are; the rest go through a
/// `Value`, which also refuses what reading the line only skipped over (a
/// number out of range, nesting past serde_json's limit).
pub(super) fn write_value(line: &mut String, v: &RawValue) -> serde_json::Result<()> {
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
pub(super) fn write_key(line: &mut String, key: &str) {
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
pub(super) const LINE_ROOM: usize = 256;

/// True when `text`, whose members are `obj`, is byte for byte what
/// [`write_line`] would write: exactly the day-file fields in their order,
/// no whitespace between tokens, no escapes, each checked field verbatim and
/// every other value a string, `null`, `true` or `false` (which
/// [`write_value`] copies). Copying such a line saves about a sixth of
/// parsing a day file loaded back (`examples/parse_lines.rs`); the property
/// tests hold the two paths to the same bytes.
pub(super) fn is_day_file_line(
    known: &[&str],
    obj: &Members<'_>,
    changed: &[Checked],
    text: &str,
) -> bool {
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
pub(super) fn write_line(
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
