//! Pure domain types: resource types, SIDs, days, job statuses. No I/O here.

pub mod operations;
pub mod record;
pub mod seed;

use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use rand::Rng;

/// The four kinds of activity record that BulkExport exports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Messages,
    Calls,
    Conferences,
    Participants,
}

impl ResourceType {
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Messages,
        ResourceType::Calls,
        ResourceType::Conferences,
        ResourceType::Participants,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ResourceType::Messages => "Messages",
            ResourceType::Calls => "Calls",
            ResourceType::Conferences => "Conferences",
            ResourceType::Participants => "Participants",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown resource type {0:?}: expected Messages, Calls, Conferences or Participants")]
pub struct UnknownResourceType(pub String);

impl FromStr for ResourceType {
    type Err = UnknownResourceType;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ResourceType::ALL
            .into_iter()
            .find(|rt| rt.as_str() == s)
            .ok_or_else(|| UnknownResourceType(s.to_string()))
    }
}

/// The two-letter prefixes of the SIDs this service knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidKind {
    Account,
    ApiKey,
    Job,
    Message,
    MediaMessage,
    Call,
    Conference,
    /// A fault rule of the control plane (not a Twilio resource).
    Fault,
    /// A stored notification, as the delivery journal names it.
    Notification,
}

impl SidKind {
    pub fn prefix(self) -> &'static str {
        match self {
            SidKind::Account => "AC",
            SidKind::ApiKey => "SK",
            SidKind::Job => "JS",
            SidKind::Message => "SM",
            SidKind::MediaMessage => "MM",
            SidKind::Call => "CA",
            SidKind::Conference => "CF",
            SidKind::Fault => "FT",
            SidKind::Notification => "NO",
        }
    }

    /// A fresh random SID of this kind.
    pub fn generate(self) -> String {
        self.generate_with(&mut rand::thread_rng())
    }

    pub fn generate_with<R: Rng + ?Sized>(self, rng: &mut R) -> String {
        let bytes: [u8; 16] = rng.gen();
        format!("{}{}", self.prefix(), hex::encode(bytes))
    }

    /// A fresh SID of this kind that sorts after the ones made before
    /// `now_ms` (milliseconds since the epoch): 12 hex digits of it, then
    /// 20 random ones (80 bits), as a UUIDv7 orders itself. Jobs and their
    /// days are indexed by the job's SID; with random SIDs every new job
    /// changed a page at a random place in each of those indexes, and on
    /// SQLite each such page is written whole to the WAL and again by the
    /// checkpoint.
    pub fn generate_ordered(self, now_ms: i64) -> String {
        let random: [u8; 10] = rand::thread_rng().gen();
        let ms = now_ms.clamp(0, 0xffff_ffff_ffff);
        format!("{}{ms:012x}{}", self.prefix(), hex::encode(random))
    }

    /// True when `s` is this prefix followed by 32 lower-case hex digits, as
    /// Twilio writes every SID (upper-case digits are refused, not
    /// normalised: a SID is an opaque name). All 32 are checked without
    /// stopping early, a loop without branches: a bulk load checks a SID per
    /// record.
    pub fn matches(self, s: &str) -> bool {
        s.len() == 34
            && s.starts_with(self.prefix())
            && s.as_bytes()[2..].iter().fold(true, |ok, &b| {
                ok & (b.is_ascii_digit() | (b'a'..=b'f').contains(&b))
            })
    }
}

/// A UTC calendar day, written `yyyy-mm-dd`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(NaiveDate);

#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a real date in the format yyyy-mm-dd")]
pub struct BadDay(pub String);

impl Day {
    pub fn parse(s: &str) -> Result<Day, BadDay> {
        let ok_shape = s.len() == 10
            && s.bytes().enumerate().all(|(i, b)| {
                if i == 4 || i == 7 {
                    b == b'-'
                } else {
                    b.is_ascii_digit()
                }
            });
        if !ok_shape {
            return Err(BadDay(s.to_string()));
        }
        // The digits read directly: `parse_from_str` re-reads its pattern on
        // every call (once per job day of every listed job).
        let number = |range: std::ops::Range<usize>| {
            s.as_bytes()[range]
                .iter()
                .fold(0_u32, |n, b| n * 10 + u32::from(b - b'0'))
        };
        NaiveDate::from_ymd_opt(number(0..4) as i32, number(5..7), number(8..10))
            .map(Day)
            .ok_or_else(|| BadDay(s.to_string()))
    }

    pub fn from_date(d: NaiveDate) -> Day {
        Day(d)
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }

    /// Its first second, counted from the Unix epoch.
    pub fn first_second(self) -> i64 {
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a real date");
        (self.0 - epoch).num_days() * 86_400
    }

    pub fn succ(self) -> Day {
        Day(self.0 + chrono::Days::new(1))
    }

    pub fn minus_days(self, n: u64) -> Day {
        Day(self.0 - chrono::Days::new(n))
    }

    /// Every day from `self` to `end`, both included.
    pub fn through(self, end: Day) -> impl Iterator<Item = Day> {
        let mut next = Some(self);
        std::iter::from_fn(move || {
            let d = next?;
            next = (d < end).then(|| d.succ());
            Some(d)
        })
    }
}

impl FromStr for Day {
    type Err = BadDay;
    fn from_str(s: &str) -> Result<Day, BadDay> {
        Day::parse(s)
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `yyyy-mm-dd` from the numbers in one write: NaiveDate's own Display
        // writes a character at a time, and `format` would re-parse its
        // pattern on every call (once per stored record, and per day of
        // every job on a page).
        use chrono::Datelike;
        let (year, month, day) = (self.0.year(), self.0.month(), self.0.day());
        let Ok(year @ 0..=9999) = u32::try_from(year) else {
            return write!(f, "{}", self.0);
        };
        let digits = [
            year / 1000,
            year / 100 % 10,
            year / 10 % 10,
            year % 10,
            month / 10,
            month % 10,
            day / 10,
            day % 10,
        ];
        let mut text = *b"0000-00-00";
        for (at, digit) in [0, 1, 2, 3, 5, 6, 8, 9].into_iter().zip(digits) {
            text[at] += digit as u8;
        }
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// A day serializes as its text, `yyyy-mm-dd`, written straight into the output.
impl serde::Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// The status of one day of an export job, as the spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DayStatus {
    Submitted,
    Running,
    Completed,
    CompletedEmptyRecords,
    ErrorDuringRun,
    Failed,
    RunningToBeDeleted,
    DeletedByUserRequest,
}

impl DayStatus {
    pub const ALL: [DayStatus; 8] = [
        DayStatus::Submitted,
        DayStatus::Running,
        DayStatus::Completed,
        DayStatus::CompletedEmptyRecords,
        DayStatus::ErrorDuringRun,
        DayStatus::Failed,
        DayStatus::RunningToBeDeleted,
        DayStatus::DeletedByUserRequest,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DayStatus::Submitted => "Submitted",
            DayStatus::Running => "Running",
            DayStatus::Completed => "Completed",
            DayStatus::CompletedEmptyRecords => "CompletedEmptyRecords",
            DayStatus::ErrorDuringRun => "ErrorDuringRun",
            DayStatus::Failed => "Failed",
            DayStatus::RunningToBeDeleted => "RunningToBeDeleted",
            DayStatus::DeletedByUserRequest => "DeletedByUserRequest",
        }
    }

    /// A day in a final status is never worked on again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DayStatus::Completed
                | DayStatus::CompletedEmptyRecords
                | DayStatus::Failed
                | DayStatus::DeletedByUserRequest
        )
    }
}

impl fmt::Display for DayStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown day status {0:?}")]
pub struct UnknownDayStatus(pub String);

/// Rows hold closed sets as text; `db` decodes them with these
/// (`#[sqlx(try_from = "String")]`), so the rest of the code sees enums.
impl TryFrom<String> for DayStatus {
    type Error = UnknownDayStatus;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for ResourceType {
    type Error = UnknownResourceType;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl TryFrom<String> for Day {
    type Error = BadDay;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Day::parse(&s)
    }
}

/// How a stored notification goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Webhook,
    Email,
}

/// Where a stored notification stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Not yet delivered; attempted again at its next attempt time.
    Pending,
    Delivered,
    /// Given up: refused, or retried until its time ran out.
    Failed,
}

/// The text of a closed set that rows hold: `as_str`, `FromStr`,
/// `TryFrom<String>` and `Display`, one name per variant.
macro_rules! stored_names {
    ($ty:ident, $err:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok($ty::$variant),)+
                    other => Err(format!(concat!("unknown ", $err, " {:?}"), other)),
                }
            }
        }

        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// What one attempt at a notification came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Delivered,
    /// Failed, and will be tried again.
    Retry,
    /// Failed, and given up.
    Failed,
}

stored_names!(Channel, "notification channel", { Webhook => "webhook", Email => "email" });
stored_names!(AttemptOutcome, "attempt outcome", {
    Delivered => "delivered",
    Retry => "retry",
    Failed => "failed",
});
stored_names!(DeliveryStatus, "delivery status", {
    Pending => "pending",
    Delivered => "delivered",
    Failed => "failed",
});

impl FromStr for DayStatus {
    type Err = UnknownDayStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DayStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownDayStatus(s.to_string()))
    }
}

/// HTTP method of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookMethod {
    Get,
    Post,
}

impl WebhookMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookMethod::Get => "GET",
            WebhookMethod::Post => "POST",
        }
    }

    pub fn parse(s: &str) -> Option<WebhookMethod> {
        match s.to_ascii_uppercase().as_str() {
            "GET" => Some(WebhookMethod::Get),
            "POST" => Some(WebhookMethod::Post),
            _ => None,
        }
    }
}

/// An absolute http(s) URL to call back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl(String);

impl WebhookUrl {
    /// An http(s) URL with a host; whitespace and control characters are
    /// refused (a URL parser drops CR/LF and tabs, so the URL delivered to
    /// would differ from the one stored).
    pub fn parse(s: &str) -> Option<WebhookUrl> {
        if s.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return None;
        }
        let url = url::Url::parse(s).ok()?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some_and(|h| !h.is_empty());
        ok.then(|| WebhookUrl(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address of the plain `local@domain.tld` form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    pub fn parse(s: &str) -> Option<EmailAddress> {
        let (local, domain) = s.rsplit_once('@')?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c))
            && !local.starts_with('.')
            && !local.ends_with('.');
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            });
        (local_ok && domain_ok && s.len() <= 254).then(|| EmailAddress(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_parsing_requires_real_dates() {
        assert!(Day::parse("2024-02-29").is_ok());
        assert!(Day::parse("2023-02-29").is_err());
        assert!(Day::parse("2023-13-01").is_err());
        assert!(Day::parse("2023-00-10").is_err());
        assert_eq!(Day::parse("1999-12-31").unwrap().to_string(), "1999-12-31");
        assert!(Day::parse("2023-2-01").is_err());
        assert!(Day::parse("20230201").is_err());
        assert!(Day::parse("2023-02-01T00").is_err());
    }

    #[test]
    fn days_read_as_chrono_writes_them() {
        let first = Day(NaiveDate::from_ymd_opt(0, 1, 1).unwrap());
        let last = Day(NaiveDate::from_ymd_opt(9999, 12, 31).unwrap());
        let mut seen = 0;
        for day in first.through(last).step_by(97).chain([first, last]) {
            assert_eq!(day.to_string(), day.0.format("%Y-%m-%d").to_string());
            assert_eq!(serde_json::to_string(&day).unwrap(), format!("\"{day}\""));
            seen += 1;
        }
        assert!(seen > 37_000);
        // Outside four digits, chrono's own text.
        let far = Day(NaiveDate::from_ymd_opt(10_000, 1, 1).unwrap());
        assert_eq!(far.to_string(), "+10000-01-01");
    }

    #[test]
    fn day_ranges_include_both_ends() {
        let a = Day::parse("2023-12-30").unwrap();
        let b = Day::parse("2024-01-02").unwrap();
        let days: Vec<String> = a.through(b).map(|d| d.to_string()).collect();
        assert_eq!(
            days,
            ["2023-12-30", "2023-12-31", "2024-01-01", "2024-01-02"]
        );
        assert_eq!(a.through(a).count(), 1);
    }

    #[test]
    fn ordered_sids_sort_by_their_time_and_stay_sids() {
        let earlier = SidKind::Job.generate_ordered(1_733_500_000_000);
        let later = SidKind::Job.generate_ordered(1_733_500_000_001);
        assert!(SidKind::Job.matches(&earlier), "{earlier}");
        assert!(SidKind::Job.matches(&later), "{later}");
        assert!(earlier < later);
        assert_ne!(
            SidKind::Job.generate_ordered(5),
            SidKind::Job.generate_ordered(5)
        );
        assert!(SidKind::Job.matches(&SidKind::Job.generate_ordered(-1)));
        assert!(SidKind::Job.matches(&SidKind::Job.generate_ordered(i64::MAX)));
    }

    #[test]
    fn sids_have_prefix_and_32_hex() {
        let sid = SidKind::Job.generate();
        assert!(SidKind::Job.matches(&sid));
        assert!(!SidKind::Call.matches(&sid));
        assert!(!SidKind::Job.matches("JS123"));
        let digits = &sid[2..];
        assert!(!SidKind::Job.matches(&format!("JS{}", digits.to_uppercase())));
        for bad in ['g', 'G', 'A', 'F', ' ', '/', ':', '@', '`', 'é'] {
            for at in [2, 17, 33] {
                let mut s = sid.clone();
                s.replace_range(at..=at, &bad.to_string());
                assert!(!SidKind::Job.matches(&s), "{s}");
            }
        }
    }

    #[test]
    fn emails_and_urls() {
        assert!(EmailAddress::parse("ops@example.com").is_some());
        assert!(EmailAddress::parse("ops@example").is_none());
        assert!(EmailAddress::parse("not an email").is_none());
        assert!(WebhookUrl::parse("https://example.com/hook?a=1").is_some());
        assert!(WebhookUrl::parse("ftp://example.com/").is_none());
        assert!(WebhookUrl::parse("/relative").is_none());
        assert_eq!(WebhookMethod::parse("post"), Some(WebhookMethod::Post));
        assert_eq!(WebhookMethod::parse("PUT"), None);
    }
}
