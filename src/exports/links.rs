//! What the service signs: download links and page tokens. Both carry an
//! HMAC-SHA256 under a key shared by every node through the database, so any
//! node can check what another issued and nobody can forge either.

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

#[derive(Clone)]
pub(crate) struct Signer {
    key: Vec<u8>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(***)")
    }
}

impl Signer {
    pub fn new_key() -> String {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        hex::encode(key)
    }

    pub fn from_hex(key: &str) -> Signer {
        Signer {
            key: hex::decode(key).unwrap_or_else(|_| key.as_bytes().to_vec()),
        }
    }

    fn mac(&self, data: &str) -> HmacSha256 {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data.as_bytes());
        mac
    }

    pub fn sign(&self, data: &str) -> String {
        hex::encode(self.mac(data).finalize().into_bytes())
    }

    /// Constant-time check of the first characters of a `sign` signature.
    pub fn verify_prefix(&self, data: &str, prefix_hex: &str) -> bool {
        let full = self.sign(data);
        prefix_hex.len() >= 16
            && prefix_hex.len() <= full.len()
            && constant_eq(prefix_hex.as_bytes(), &full.as_bytes()[..prefix_hex.len()])
    }

    /// Constant-time check of a hex signature made by `sign`.
    pub fn verify(&self, data: &str, signature_hex: &str) -> bool {
        match hex::decode(signature_hex) {
            Ok(sig) => self.mac(data).verify_slice(&sig).is_ok(),
            Err(_) => false,
        }
    }
}

/// Where a list page starts: after an item (`PA`) or before one (`PB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cursor {
    After(i64),
    Before(i64),
}

/// A validated list request.
#[derive(Debug, Clone, Copy)]
pub struct PageRequest {
    pub page_size: i64,
    pub page: i64,
    pub cursor: Option<Cursor>,
}

/// One page of rows with the cursors of the pages around it.
#[derive(Debug)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
    pub prev: Option<Cursor>,
}

/// The highest `Page` accepted: far beyond any list, and small enough that
/// the next page's number and its first item's offset never overflow.
pub const MAX_PAGE: i64 = 1_000_000_000;

impl PageRequest {
    /// The (after, before) positions to read from, and how many rows to read:
    /// one more than a page, to learn whether more lie beyond it.
    pub(crate) fn bounds(&self) -> (Option<i64>, Option<i64>, i64) {
        let limit = self.page_size + 1;
        match self.cursor {
            None => (None, None, limit),
            Some(Cursor::After(p)) => (Some(p), None, limit),
            Some(Cursor::Before(p)) => (None, Some(p), limit),
        }
    }

    /// Cuts rows read with `bounds` (in list order) to a page, with the cursors
    /// of the next and previous pages; `pos` is a row's position in the list.
    pub(crate) fn paginate<T>(&self, mut rows: Vec<T>, pos: impl Fn(&T) -> i64) -> Page<T> {
        let backward = matches!(self.cursor, Some(Cursor::Before(_)));
        let more = rows.len() as i64 > self.page_size;
        if more {
            if backward {
                rows.remove(0);
            } else {
                rows.truncate(self.page_size as usize);
            }
        }
        let (Some(first), Some(last)) = (rows.first().map(&pos), rows.last().map(&pos)) else {
            return Page {
                items: rows,
                next: None,
                prev: None,
            };
        };
        let (next, prev) = match self.cursor {
            None => (more.then_some(Cursor::After(last)), None),
            Some(Cursor::After(_)) => (
                more.then_some(Cursor::After(last)),
                Some(Cursor::Before(first)),
            ),
            Some(Cursor::Before(_)) => (
                Some(Cursor::After(last)),
                more.then_some(Cursor::Before(first)),
            ),
        };
        Page {
            items: rows,
            next,
            prev,
        }
    }
}

const MAC_HEX: usize = 16;

impl Signer {
    /// An opaque page token for `cursor` in the list named by `scope`.
    pub fn page_token(&self, scope: &str, cursor: Cursor) -> String {
        let (tag, pos) = match cursor {
            Cursor::After(p) => ("PA", p),
            Cursor::Before(p) => ("PB", p),
        };
        let body = format!("{tag}{pos}");
        let mac = self.sign(&format!("page:{scope}:{body}"));
        format!("{body}-{}", &mac[..MAC_HEX])
    }

    /// Reads a token issued by `page_token` for the same list.
    pub fn read_page_token(&self, scope: &str, token: &str) -> Result<Cursor> {
        let bad = || {
            Error::Invalid(format!(
                "PageToken {token:?} is not a page token issued by this server for this list"
            ))
        };
        let (body, mac) = token.rsplit_once('-').ok_or_else(bad)?;
        let expected = self.sign(&format!("page:{scope}:{body}"));
        if mac.len() != MAC_HEX || !constant_eq(mac.as_bytes(), &expected.as_bytes()[..MAC_HEX]) {
            return Err(bad());
        }
        let pos = |s: &str| s.parse::<i64>().map_err(|_| bad());
        if let Some(p) = body.strip_prefix("PA") {
            Ok(Cursor::After(pos(p)?))
        } else if let Some(p) = body.strip_prefix("PB") {
            Ok(Cursor::Before(pos(p)?))
        } else {
            Err(bad())
        }
    }
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

impl PageRequest {
    /// Validates PageSize (1..=max, default 50), Page and PageToken.
    pub(crate) fn parse(
        signer: &Signer,
        scope: &str,
        page_size: Option<&str>,
        page: Option<&str>,
        token: Option<&str>,
        max: i64,
    ) -> Result<PageRequest> {
        let page_size = match page_size {
            None => 50,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (1..=max).contains(&n) => n,
                Ok(n) if n > max => {
                    return Err(Error::PageSizeTooLarge(format!(
                        "Page size too large: PageSize must be at most {max}, got {n}"
                    )))
                }
                _ => {
                    return Err(Error::Invalid(format!(
                        "PageSize must be an integer from 1 to {max}, got {s:?}"
                    )))
                }
            },
        };
        let page = match page {
            None => 0,
            Some(s) => match s.parse::<i64>() {
                Ok(n) if (0..=MAX_PAGE).contains(&n) => n,
                _ => {
                    return Err(Error::Invalid(format!(
                        "Page must be an integer from 0 to {MAX_PAGE}, got {s:?}"
                    )))
                }
            },
        };
        let cursor = match token {
            None | Some("") => None,
            Some(t) => Some(signer.read_page_token(scope, t)?),
        };
        Ok(PageRequest {
            page_size,
            page,
            cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_resist_forgery() {
        let s = Signer::from_hex(&Signer::new_key());
        let t = s.page_token("AC1:Messages:jobs", Cursor::After(42));
        assert_eq!(
            s.read_page_token("AC1:Messages:jobs", &t).unwrap(),
            Cursor::After(42)
        );
        assert!(s.read_page_token("AC2:Messages:jobs", &t).is_err());
        assert!(s
            .read_page_token("AC1:Messages:jobs", "PA42-0000000000000000")
            .is_err());
        assert!(s.read_page_token("AC1:Messages:jobs", "PASM123").is_err());
        let other = Signer::from_hex(&Signer::new_key());
        assert!(other.read_page_token("AC1:Messages:jobs", &t).is_err());
    }

    #[test]
    fn signatures_verify() {
        let s = Signer::from_hex(&Signer::new_key());
        let sig = s.sign("x");
        assert!(s.verify("x", &sig));
        assert!(!s.verify("y", &sig));
        assert!(!s.verify("x", "zz"));
    }
}
