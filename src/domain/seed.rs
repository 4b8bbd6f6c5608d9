//! Deterministic synthetic activity records for demos, tests and benchmarks.
//!
//! Each (seed, resource type, day) has its own random stream, so a day's
//! records do not depend on which other days are generated with it.

use chrono::{Datelike, Duration, NaiveTime, TimeZone, Utc};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};

use super::record::{self, iso, Record};
use super::{Day, ResourceType, SidKind};

const WORDS: &[&str] = &[
    "your",
    "code",
    "is",
    "order",
    "shipped",
    "today",
    "meeting",
    "at",
    "noon",
    "thanks",
    "reminder",
    "appointment",
    "tomorrow",
    "please",
    "reply",
    "STOP",
    "to",
    "unsubscribe",
    "delivery",
    "window",
    "confirmed",
    "hello",
    "balance",
    "payment",
    "received",
    "verification",
    "ready",
    "pickup",
    "table",
    "for",
    "two",
    "ticket",
    "update",
    "see",
    "you",
    "soon",
    "café",
    "ñandú",
    "👍",
];
const REGIONS: &[&str] = &["us1", "us2", "ie1", "de1", "sg1", "br1", "au1", "jp1"];

/// Generates `per_day` records for `day`; the same arguments give the same records.
pub fn day_records(
    account_sid: &str,
    rt: ResourceType,
    day: Day,
    per_day: u32,
    seed: u64,
) -> Vec<Record> {
    DaySeeder::new(account_sid, rt, day, per_day, seed).take(usize::MAX)
}

/// The records of one seeded day, produced a chunk at a time so that memory
/// stays bounded however many records a day has. Chunking does not change them.
pub struct DaySeeder {
    rng: ChaCha8Rng,
    account_sid: String,
    rt: ResourceType,
    midnight: chrono::DateTime<Utc>,
    offsets_ms: Vec<u32>,
    next: usize,
}

impl DaySeeder {
    pub fn new(
        account_sid: &str,
        rt: ResourceType,
        day: Day,
        per_day: u32,
        seed: u64,
    ) -> DaySeeder {
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, rt, day));
        let mut offsets_ms: Vec<u32> = (0..per_day).map(|_| rng.gen_range(0..86_400_000)).collect();
        offsets_ms.sort_unstable();
        DaySeeder {
            rng,
            account_sid: account_sid.to_string(),
            rt,
            midnight: Utc.from_utc_datetime(&day.date().and_time(NaiveTime::MIN)),
            offsets_ms,
            next: 0,
        }
    }

    pub fn is_done(&self) -> bool {
        self.next >= self.offsets_ms.len()
    }

    /// The next `n` records (fewer at the end), in day-file order: records
    /// are generated in time order, and a day file orders those of one
    /// second by SID. A store then lays their lines down as an export reads
    /// them.
    pub fn take(&mut self, n: usize) -> Vec<Record> {
        let end = self.offsets_ms.len().min(self.next.saturating_add(n));
        let mut out = Vec::with_capacity(end - self.next);
        for i in self.next..end {
            let created = self.midnight + Duration::milliseconds(i64::from(self.offsets_ms[i]));
            let rng = &mut self.rng;
            let account = self.account_sid.as_str();
            let value = match self.rt {
                ResourceType::Messages => message(rng, account, created),
                ResourceType::Calls => call(rng, account, created),
                ResourceType::Conferences => conference(rng, account, created),
                ResourceType::Participants => participant(rng, account, created),
            };
            // Generated values are always valid, so this cannot fail.
            let record = record::normalize_line(self.rt, account, &value.to_string())
                .unwrap_or_else(|e| panic!("seed produced a bad record: {e}"));
            out.push(record);
        }
        self.next = end;
        out.sort_unstable_by(|a, b| a.sort_key.cmp(&b.sort_key));
        out
    }
}

fn stream_seed(seed: u64, rt: ResourceType, day: Day) -> u64 {
    let rt_index = ResourceType::ALL.iter().position(|r| *r == rt).unwrap_or(0) as u64;
    let ordinal = day.date().num_days_from_ce() as u64;
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ ordinal.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (rt_index << 56)
}

fn phone<R: Rng>(rng: &mut R) -> String {
    format!(
        "+1{}{:02}{:07}",
        rng.gen_range(2..10),
        rng.gen_range(0..100),
        rng.gen_range(0..10_000_000)
    )
}

fn pick<'a, R: Rng>(rng: &mut R, items: &[&'a str]) -> &'a str {
    items.choose(rng).copied().unwrap_or_default()
}

fn body<R: Rng>(rng: &mut R) -> String {
    let words = match rng.gen_range(0..10) {
        0..=5 => rng.gen_range(1..12),
        6..=8 => rng.gen_range(12..40),
        _ => rng.gen_range(40..120),
    };
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(pick(rng, WORDS));
    }
    s
}

fn price<R: Rng>(rng: &mut R, max_millicents: u32) -> String {
    format!(
        "-{:.5}",
        f64::from(rng.gen_range(0..max_millicents)) / 100_000.0
    )
}

fn message<R: Rng>(rng: &mut R, account: &str, created: chrono::DateTime<Utc>) -> Value {
    let text = body(rng);
    let media = if rng.gen_ratio(1, 10) {
        rng.gen_range(1..4)
    } else {
        0
    };
    let kind = if media > 0 {
        SidKind::MediaMessage
    } else {
        SidKind::Message
    };
    let status = pick(rng, record::statuses(ResourceType::Messages));
    let error_code = if matches!(status, "failed" | "undelivered") {
        30003 + rng.gen_range(0..6)
    } else {
        0
    };
    let sent = created + Duration::seconds(rng.gen_range(0..5));
    json!({
        "body": text,
        "num_segments": text.len().div_ceil(153).max(1),
        "direction": pick(rng, record::directions(ResourceType::Messages)),
        "from": phone(rng),
        "to": phone(rng),
        "date_updated": iso(sent + Duration::seconds(rng.gen_range(0..30))),
        "price": price(rng, 2_000),
        "account_sid": account,
        "num_media": media,
        "status": status,
        "messaging_service_sid": if rng.gen_bool(0.5) { Value::from(format!("MG{}", &SidKind::Message.generate_with(rng)[2..])) } else { Value::Null },
        "sid": kind.generate_with(rng),
        "date_sent": iso(sent),
        "date_created": iso(created),
        "error_code": error_code,
    })
}

fn call<R: Rng>(rng: &mut R, account: &str, created: chrono::DateTime<Utc>) -> Value {
    let status = pick(rng, record::statuses(ResourceType::Calls));
    let duration = if status == "completed" {
        rng.gen_range(1..3600)
    } else {
        0
    };
    let start = created + Duration::seconds(rng.gen_range(0..20));
    let end = start + Duration::seconds(duration);
    let (from, to) = (phone(rng), phone(rng));
    json!({
        "sid": SidKind::Call.generate_with(rng),
        "date_created": iso(created),
        "date_updated": iso(end),
        "parent_call_sid": if rng.gen_ratio(1, 5) { Value::from(SidKind::Call.generate_with(rng)) } else { Value::Null },
        "account_sid": account,
        "to": to,
        "to_formatted": to,
        "from": from,
        "from_formatted": from,
        "phone_number_sid": format!("PN{}", &SidKind::Call.generate_with(rng)[2..]),
        "status": status,
        "start_time": iso(start),
        "end_time": iso(end),
        "duration": duration,
        "price": price(rng, 50_000),
        "price_unit": "USD",
        "direction": pick(rng, record::directions(ResourceType::Calls)),
        "answered_by": if rng.gen_ratio(1, 4) { Value::from("human") } else { Value::Null },
        "api_version": "2010-04-01",
        "forwarded_from": Value::Null,
        "group_sid": Value::Null,
        "caller_name": Value::Null,
        "queue_time": rng.gen_range(0..2000),
        "trunk_sid": Value::Null,
    })
}

fn conference<R: Rng>(rng: &mut R, account: &str, created: chrono::DateTime<Utc>) -> Value {
    let status = pick(rng, record::statuses(ResourceType::Conferences));
    let ended = status == "completed";
    json!({
        "account_sid": account,
        "date_created": iso(created),
        "date_updated": iso(created + Duration::seconds(rng.gen_range(0..7200))),
        "friendly_name": format!("room-{}", rng.gen_range(1000..99999)),
        "region": pick(rng, REGIONS),
        "sid": SidKind::Conference.generate_with(rng),
        "status": status,
        "reason_conference_ended": if ended { Value::from(pick(rng, record::CONFERENCE_END_REASONS)) } else { Value::Null },
        "call_sid_ending_conference": if ended { Value::from(SidKind::Call.generate_with(rng)) } else { Value::Null },
    })
}

fn participant<R: Rng>(rng: &mut R, account: &str, created: chrono::DateTime<Utc>) -> Value {
    let coaching = rng.gen_ratio(1, 10);
    json!({
        "account_sid": account,
        "call_sid": SidKind::Call.generate_with(rng),
        "call_sid_to_coach": if coaching { Value::from(SidKind::Call.generate_with(rng)) } else { Value::Null },
        "coaching": coaching,
        "conference_sid": SidKind::Conference.generate_with(rng),
        "date_created": iso(created),
        "date_updated": iso(created + Duration::seconds(rng.gen_range(0..3600))),
        "end_conference_on_exit": rng.gen_bool(0.2),
        "muted": rng.gen_bool(0.1),
        "hold": rng.gen_bool(0.05),
        "start_conference_on_enter": rng.gen_bool(0.8),
        "status": pick(rng, record::statuses(ResourceType::Participants)),
        "queue_time": rng.gen_range(0..500),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records_and_all_in_the_day() {
        let day = Day::parse("2024-03-01").unwrap();
        let ac = "AC0123456789abcdef0123456789abcdef";
        for rt in ResourceType::ALL {
            let a = day_records(ac, rt, day, 50, 7);
            assert_eq!(a, day_records(ac, rt, day, 50, 7));
            assert_ne!(a, day_records(ac, rt, day, 50, 8));
            assert!(a.iter().all(|r| r.day == day));
            let mut chunked = DaySeeder::new(ac, rt, day, 50, 7);
            let mut pieces = Vec::new();
            while !chunked.is_done() {
                pieces.extend(chunked.take(7));
            }
            assert_eq!(pieces, a, "chunking does not change the records");
        }
    }
}
