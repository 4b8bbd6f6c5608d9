//! Reading a line into its members, values left as JSON text.

use super::*;

/// One input line's members in order, values left as their JSON text. A key
/// given twice keeps its first place and its last value, as a parsed
/// `serde_json` object would.
///
/// Held inline up to [`INLINE_MEMBERS`]: a heap vector of that size is a
/// request glibc's allocator serves from its large bins, and each such request
/// first consolidates its free lists, which cost about a tenth of parsing.
pub(super) struct Members<'a>(pub(super) SmallVec<[(Key<'a>, &'a RawValue); INLINE_MEMBERS]>);

/// Members of a line held without allocating: a day-file Call, the widest
/// record, has 24; a REST-shaped line has a few more.
pub(super) const INLINE_MEMBERS: usize = 40;

/// An object key: borrowed from the line unless it had escapes.
#[derive(serde::Deserialize)]
pub(super) struct Key<'a>(#[serde(borrow)] pub(super) Cow<'a, str>);

/// `a == b` for object keys, inline: keys are short, and a call to `memcmp`
/// for each of the comparisons a line needs (finding each field, spotting
/// repeated keys) was a tenth of parsing it. Two overlapping 8-byte words cover keys
/// of 8 to 16 bytes, which are most of them.
pub(super) fn key_eq(a: &str, b: &str) -> bool {
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
    pub(super) fn get(&self, field: &str) -> Option<&'a RawValue> {
        self.position(field, 0).map(|i| self.0[i].1)
    }

    /// Where `field` is, looking first at `hint` (input in the day file's
    /// order finds every field there), then everywhere.
    pub(super) fn position(&self, field: &str, hint: usize) -> Option<usize> {
        match self.0.get(hint) {
            Some((k, _)) if key_eq(&k.0, field) => Some(hint),
            _ => self.0.iter().position(|(k, _)| key_eq(&k.0, field)),
        }
    }

    /// The field's value unless it is missing or null.
    pub(super) fn given(&self, field: &str) -> Option<&'a RawValue> {
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
pub(super) fn text_of(v: &RawValue) -> Option<Cow<'_, str>> {
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
pub(super) fn shown(v: &RawValue) -> String {
    match text_of(v) {
        Some(s) => s.into_owned(),
        None => serde_json::from_str::<Value>(v.get())
            .map(|v| v.to_string())
            .unwrap_or_else(|_| v.get().to_string()),
    }
}
