//! The request time: `X-Amz-Date` (ISO 8601 basic, `20150830T123600Z`) or, failing that,
//! the HTTP `Date` header (IMF-fixdate, `Sun, 30 Aug 2015 12:36:00 GMT`).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::{Duration, OffsetDateTime, PrimitiveDateTime};

const BASIC: &[BorrowedFormatItem<'static>] =
    format_description!("[year][month][day]T[hour][minute][second]Z");
const IMF_FIXDATE: &[BorrowedFormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// A UTC instant with whole seconds, shown in ISO 8601 basic format (`20150830T123600Z`),
/// the way SigV4 writes times in the string to sign and in its error messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AmzDate(OffsetDateTime);

impl AmzDate {
    /// Parses `X-Amz-Date`'s format, exactly 16 characters.
    pub fn parse_basic(text: &str) -> Option<Self> {
        if text.len() != 16 {
            return None;
        }
        PrimitiveDateTime::parse(text, BASIC)
            .ok()
            .map(|t| Self(t.assume_utc()))
    }

    /// Parses the HTTP `Date` header's IMF-fixdate format.
    pub fn parse_http_date(text: &str) -> Option<Self> {
        PrimitiveDateTime::parse(text, IMF_FIXDATE)
            .ok()
            .map(|t| Self(t.assume_utc()))
    }

    /// `now`, truncated to the second; `None` for a clock outside the representable years.
    pub fn from_system_time(now: SystemTime) -> Option<Self> {
        let seconds = match now.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_secs()).ok()?,
            // A clock before 1970 is broken, but must not panic.
            Err(before) => -i64::try_from(before.duration().as_secs()).ok()?,
        };
        OffsetDateTime::from_unix_timestamp(seconds).ok().map(Self)
    }

    /// `YYYYMMDD`, the credential scope's date.
    pub fn date_stamp(&self) -> String {
        let t = self.0;
        format!("{:04}{:02}{:02}", t.year(), u8::from(t.month()), t.day())
    }

    pub(super) fn checked_add(self, seconds: i64) -> Option<Self> {
        self.0.checked_add(Duration::seconds(seconds)).map(Self)
    }

    pub(super) fn checked_sub(self, seconds: i64) -> Option<Self> {
        self.0.checked_sub(Duration::seconds(seconds)).map(Self)
    }

    /// The instant as a [`SystemTime`].
    pub fn to_system_time(self) -> SystemTime {
        SystemTime::from(self.0)
    }
}

impl fmt::Display for AmzDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.0;
        write!(
            f,
            "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_format_round_trips() {
        let date = AmzDate::parse_basic("20150830T123600Z");
        assert_eq!(
            date.map(|d| d.to_string()).as_deref(),
            Some("20150830T123600Z")
        );
        assert_eq!(date.map(|d| d.date_stamp()).as_deref(), Some("20150830"));
    }

    #[test]
    fn basic_format_rejects_near_misses() {
        for bad in [
            "",
            "201",
            "20150830T123600",
            "20150830T123600z",
            "2015-08-30T12:36:00Z",
            "20151330T123600Z",
            "20150830T253600Z",
            "+20150830T123600Z",
            "20150830T123600Z ",
        ] {
            assert_eq!(AmzDate::parse_basic(bad), None, "{bad}");
        }
    }

    #[test]
    fn http_date_is_read_as_utc() {
        let date = AmzDate::parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT");
        assert_eq!(
            date.map(|d| d.to_string()).as_deref(),
            Some("20150830T123600Z")
        );
        assert_eq!(
            AmzDate::parse_http_date("Sun, 30 Aug 2015 12:36:00 PST"),
            None
        );
    }

    #[test]
    fn system_time_is_truncated_to_the_second() {
        let now = UNIX_EPOCH + std::time::Duration::from_millis(1_440_938_160_999);
        let date = AmzDate::from_system_time(now);
        assert_eq!(
            date.map(|d| d.to_string()).as_deref(),
            Some("20150830T123600Z")
        );
    }
}
