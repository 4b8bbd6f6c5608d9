//! Throttling of failed authentications: after `limit` failures within a
//! minute of the service clock for one account SID, from one client address,
//! or for the admin token, further attempts there are refused until the
//! minute has passed. Counts are per process and bounded in memory.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// The window the limit counts over.
const WINDOW_MS: i64 = 60_000;
/// Most keys tracked at once; past this, expired windows are dropped, and
/// new keys are not tracked until some expire.
const MAX_KEYS: usize = 100_000;
/// Longest account SID kept as a key (real SIDs are 34 characters).
const MAX_SID_CHARS: usize = 64;

/// What a failure is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Account(String),
    Address(IpAddr),
    AdminToken,
}

impl Subject {
    /// An account SID as given by a client (bounded in length).
    pub fn account(sid: &str) -> Subject {
        Subject::Account(sid.chars().take(MAX_SID_CHARS).collect())
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    failures: u32,
}

#[derive(Debug)]
pub struct AuthThrottle {
    limit: u32,
    windows: Mutex<HashMap<Subject, Window>>,
}

impl AuthThrottle {
    /// `limit` failures a minute per subject; 0 turns throttling off.
    pub fn new(limit: u32) -> AuthThrottle {
        AuthThrottle {
            limit,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(seconds to wait)` when any of `subjects` has used up its failures.
    pub fn check(&self, subjects: &[Subject], now_ms: i64) -> Result<(), u64> {
        if self.limit == 0 {
            return Ok(());
        }
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let wait = subjects
            .iter()
            .filter_map(|s| windows.get(s))
            .filter(|w| now_ms - w.start_ms < WINDOW_MS && w.failures >= self.limit)
            .map(|w| w.start_ms + WINDOW_MS - now_ms)
            .max();
        match wait {
            Some(ms) => Err(u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1)),
            None => Ok(()),
        }
    }

    /// Counts one failed attempt against each of `subjects`.
    pub fn fail(&self, subjects: &[Subject], now_ms: i64) {
        if self.limit == 0 {
            return;
        }
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| now_ms - w.start_ms < WINDOW_MS);
        }
        for subject in subjects {
            let fresh = Window {
                start_ms: now_ms,
                failures: 0,
            };
            if windows.len() >= MAX_KEYS && !windows.contains_key(subject) {
                continue;
            }
            let window = windows.entry(subject.clone()).or_insert(fresh);
            if now_ms - window.start_ms >= WINDOW_MS {
                *window = fresh;
            }
            window.failures = window.failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_lock_out_their_subject_for_the_rest_of_the_minute() {
        let t = AuthThrottle::new(3);
        let a = [
            Subject::account("AC1"),
            Subject::Address([10, 0, 0, 1].into()),
        ];
        for _ in 0..3 {
            assert_eq!(t.check(&a, 1_000), Ok(()));
            t.fail(&a, 1_000);
        }
        assert_eq!(t.check(&a, 1_000), Err(60));
        assert_eq!(t.check(&[Subject::account("AC1")], 30_500), Err(31));
        assert_eq!(t.check(&[Subject::account("AC2")], 30_500), Ok(()));
        assert_eq!(
            t.check(&[Subject::Address([10, 0, 0, 1].into())], 30_500),
            Err(31)
        );
        assert_eq!(t.check(&a, 61_000), Ok(()));
    }

    #[test]
    fn a_limit_of_zero_never_throttles() {
        let t = AuthThrottle::new(0);
        for _ in 0..100 {
            t.fail(&[Subject::AdminToken], 0);
        }
        assert_eq!(t.check(&[Subject::AdminToken], 0), Ok(()));
    }
}
