//! The service's one source of time. Everything time-driven asks this clock,
//! so that tests and the emulator can set the date.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

#[derive(Debug, thiserror::Error)]
#[error("the clock cannot move backward from {now} to {to}")]
pub struct BackwardClock {
    pub now: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Wall-clock time shifted by an offset that can be moved forward.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    /// The real time.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `start` now and then runs forward in real time.
    pub fn starting_at(start: DateTime<Utc>) -> Clock {
        let clock = Clock::default();
        clock
            .offset_ms
            .store((start - Utc::now()).num_milliseconds(), Ordering::SeqCst);
        clock
    }

    /// Moves the clock to `to`; refuses to move it backward.
    pub fn set(&self, to: DateTime<Utc>) -> Result<(), BackwardClock> {
        let now = self.now();
        if to < now {
            return Err(BackwardClock { now, to });
        }
        // Rounded up, so that the clock reads `to` or just after it, never before.
        let step = to - now;
        let ms = step.num_milliseconds() + i64::from(step.subsec_nanos() % 1_000_000 != 0);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        Ok(())
    }

    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + chrono::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Milliseconds since the Unix epoch, the form stored in the database.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    pub fn today(&self) -> crate::domain::Day {
        crate::domain::Day::from_date(self.now().date_naive())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_reaches_the_instant_and_refuses_to_go_back() {
        let clock = Clock::starting_at("2024-06-10T12:00:00Z".parse().expect("instant"));
        let to: DateTime<Utc> = "2024-06-12T00:00:00Z".parse().expect("instant");
        clock.set(to).expect("forward");
        assert!(clock.now() >= to, "{}", clock.now());
        assert!(clock.now() < to + chrono::Duration::seconds(1));
        assert!(clock.set(to - chrono::Duration::hours(1)).is_err());
    }
}
