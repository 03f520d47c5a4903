//! Rotation schedules: `rate(N hours|days)` and six-field `cron(...)` expressions, as
//! Secrets Manager accepts them (UTC; at most one rotation every four hours; minutes `0` and
//! year `*`; exactly one of day-of-month and day-of-week is `?`), and the windows they open.
//!
//! Windows: a `rate()` in days opens at midnight; a `cron()` at its time. Without a
//! `Duration`, a window in hours closes after one hour and a window in days at the end of the
//! UTC day. Keyhold computes `NextRotationDate` (the window's close, "on or before" which
//! rotation happens) from this, and the sweep rotates when the window opens.

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// How far ahead a cron expression is searched for its next time.
const SEARCH_DAYS: i64 = 5 * 366;

/// A parsed `ScheduleExpression`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Schedule {
    Hours(i64),
    Days(i64),
    Cron(Cron),
}

/// A cron expression: minute, hour, day of month, month, day of week, year.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cron {
    minutes: Vec<u32>,
    hours: Vec<u32>,
    day_of_month: Day,
    months: Vec<u32>,
    day_of_week: Day,
    years: Option<Vec<u32>>,
}

/// A day-of-month or day-of-week field.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Day {
    /// `?`: the other field decides.
    Any,
    Set(Vec<u32>),
    /// `L` (last day of the month) or `nL` (last weekday `n` of the month).
    Last(Option<u32>),
    /// `n#k`: the `k`-th weekday `n` of the month.
    Nth(u32, u32),
    /// `nW` / `LW`: the weekday nearest to day `n` (`None`: the last day).
    Weekday(Option<u32>),
}

impl Schedule {
    pub fn parse(expression: &str) -> Option<Schedule> {
        let expression = expression.trim();
        if let Some(inner) = expression
            .strip_prefix("rate(")
            .and_then(|s| s.strip_suffix(')'))
        {
            let (n, unit) = inner.trim().split_once(' ')?;
            let n: i64 = n.parse().ok()?;
            return match unit.trim() {
                "hour" | "hours" if (4..=24 * 1000).contains(&n) => Some(Schedule::Hours(n)),
                "day" | "days" if (1..=1000).contains(&n) => Some(Schedule::Days(n)),
                _ => None,
            };
        }
        let inner = expression
            .strip_prefix("cron(")
            .and_then(|s| s.strip_suffix(')'))?;
        Cron::parse(inner).map(Schedule::Cron)
    }

    /// Whether windows are counted in hours (they close after one hour by default).
    pub fn is_hourly(&self) -> bool {
        match self {
            Schedule::Hours(_) => true,
            Schedule::Days(_) => false,
            Schedule::Cron(c) => c.hours.len() > 1,
        }
    }

    /// The longest a window may last: the interval for hourly schedules, one day otherwise.
    pub fn max_window_hours(&self) -> i64 {
        match self {
            Schedule::Hours(n) => (*n).min(24),
            Schedule::Days(_) => 24,
            Schedule::Cron(c) => {
                let start = c.hours.first().copied().map_or(0, i64::from);
                let gap = c
                    .hours
                    .windows(2)
                    .filter_map(|w| match w {
                        [a, b] => Some(i64::from(b - a)),
                        _ => None,
                    })
                    .min()
                    .unwrap_or(24);
                gap.min(24 - start.min(23))
            }
        }
    }

    /// The whole days between rotations, as `AutomaticallyAfterDays` reports them.
    pub fn interval_days(&self) -> Option<i64> {
        match self {
            Schedule::Days(n) => Some(*n),
            Schedule::Hours(n) if n % 24 == 0 => Some(n / 24),
            Schedule::Hours(_) => None,
            Schedule::Cron(c) => {
                let mut t = 0;
                let mut starts = Vec::new();
                for _ in 0..40 {
                    t = c.next_after(t)?;
                    starts.push(t);
                }
                starts
                    .windows(2)
                    .filter_map(|w| match w {
                        [a, b] => Some((b - a) / DAY_MS),
                        _ => None,
                    })
                    .min()
                    .filter(|d| *d >= 1)
            }
        }
    }

    /// The start of the next window after `after_ms`, counting from the last rotation (or
    /// the configuration) at `base_ms` for rates.
    pub fn next_start(&self, base_ms: i64, after_ms: i64) -> Option<i64> {
        match self {
            Schedule::Hours(n) => {
                let step = n * HOUR_MS;
                let mut t = base_ms - base_ms.rem_euclid(HOUR_MS) + step;
                while t <= after_ms {
                    t += step;
                }
                Some(t)
            }
            Schedule::Days(n) => {
                let step = n * DAY_MS;
                let mut t = base_ms - base_ms.rem_euclid(DAY_MS) + step;
                while t <= after_ms {
                    t += step;
                }
                Some(t)
            }
            Schedule::Cron(c) => c.next_after(after_ms),
        }
    }
}

impl Cron {
    fn parse(text: &str) -> Option<Cron> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, dom, month, dow, year] = fields.as_slice() else {
            return None;
        };
        // Rotation windows open on the hour, and schedules repeat within a year: the
        // minutes are 0 and the year is `*`.
        if *minute != "0" || *year != "*" {
            return None;
        }
        let minutes = vec![0];
        let hours = values(hour, 0, 23, &[])?;
        let months = values(month, 1, 12, &MONTHS)?;
        let day_of_month = day_field(dom, 1, 31, &[], false)?;
        let day_of_week = day_field(dow, 1, 7, &WEEKDAYS, true)?;
        let years = None;
        // Exactly one of the day fields is '?', and rotations are at least four hours apart.
        if (day_of_month == Day::Any) == (day_of_week == Day::Any) {
            return None;
        }
        if hours.windows(2).any(|w| matches!(w, [a, b] if b - a < 4)) {
            return None;
        }
        Some(Cron {
            minutes,
            hours,
            day_of_month,
            months,
            day_of_week,
            years,
        })
    }

    /// The first time after `after_ms` the expression names.
    fn next_after(&self, after_ms: i64) -> Option<i64> {
        let first_day = after_ms.div_euclid(DAY_MS);
        for day in first_day..first_day + SEARCH_DAYS {
            let date = time::OffsetDateTime::from_unix_timestamp(day * 86_400).ok()?;
            if !self.on(date) {
                continue;
            }
            for hour in &self.hours {
                for minute in &self.minutes {
                    let t = day * DAY_MS + i64::from(*hour) * HOUR_MS + i64::from(*minute) * 60_000;
                    if t > after_ms {
                        return Some(t);
                    }
                }
            }
        }
        None
    }

    fn on(&self, date: time::OffsetDateTime) -> bool {
        let month = u32::from(u8::from(date.month()));
        let year = u32::try_from(date.year()).unwrap_or(0);
        if !self.months.contains(&month) || self.years.as_ref().is_some_and(|y| !y.contains(&year))
        {
            return false;
        }
        let dom = u32::from(date.day());
        let last = u32::from(date.month().length(date.year()));
        // Cron weekdays: 1 = Sunday.
        let dow = u32::from(date.weekday().number_days_from_sunday()) + 1;
        let dom_ok = match &self.day_of_month {
            Day::Any => true,
            Day::Set(days) => days.contains(&dom),
            Day::Last(_) => dom == last,
            Day::Weekday(target) => {
                let target = target.unwrap_or(last).min(last);
                nearest_weekday(target, last, dow, dom)
            }
            Day::Nth(..) => false,
        };
        let dow_ok = match &self.day_of_week {
            Day::Any => true,
            Day::Set(days) => days.contains(&dow),
            Day::Last(Some(d)) => dow == *d && dom + 7 > last,
            Day::Last(None) => dow == 7,
            Day::Nth(d, k) => dow == *d && (dom - 1) / 7 + 1 == *k,
            Day::Weekday(_) => false,
        };
        dom_ok && dow_ok
    }
}

/// Whether day `dom` (weekday `dow`, 1 = Sunday) is the weekday nearest to day `target`:
/// a Saturday moves to the Friday before (the Monday after, on the 1st), a Sunday to the
/// Monday after (the Friday before, on the month's last day).
fn nearest_weekday(target: u32, last: u32, dow: u32, dom: u32) -> bool {
    let day = match weekday_of(target, dom, dow) {
        7 if target == 1 => target + 2,
        7 => target - 1,
        1 if target == last => target - 2,
        1 => target + 1,
        _ => target,
    };
    dom == day
}

fn weekday_of(target: u32, dom: u32, dow: u32) -> u32 {
    let shift = i64::from(target) - i64::from(dom);
    let w = (i64::from(dow) - 1 + shift).rem_euclid(7) + 1;
    u32::try_from(w).unwrap_or(0)
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

fn day_field(field: &str, min: u32, max: u32, names: &[&str], weekday: bool) -> Option<Day> {
    if field == "?" {
        return Some(Day::Any);
    }
    if field == "L" {
        return Some(Day::Last(None));
    }
    if !weekday {
        if field == "LW" {
            return Some(Day::Weekday(None));
        }
        if let Some(n) = field.strip_suffix('W') {
            let n = number(n, min, max, names)?;
            return Some(Day::Weekday(Some(n)));
        }
    } else {
        if let Some(n) = field.strip_suffix('L') {
            return Some(Day::Last(Some(number(n, min, max, names)?)));
        }
        if let Some((d, k)) = field.split_once('#') {
            let k: u32 = k.parse().ok().filter(|k| (1..=5).contains(k))?;
            return Some(Day::Nth(number(d, min, max, names)?, k));
        }
    }
    values(field, min, max, names).map(Day::Set)
}

/// The values a field names: `*`, `a`, `a-b`, `*/n`, `a/n`, `a-b/n`, and lists of them.
fn values(field: &str, min: u32, max: u32, names: &[&str]) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s >= 1)?),
            None => (item, 1),
        };
        let (start, end) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (number(a, min, max, names)?, number(b, min, max, names)?),
                None => {
                    let a = number(range, min, max, names)?;
                    (a, if item.contains('/') { max } else { a })
                }
            },
        };
        if start > end {
            return None;
        }
        out.extend((start..=end).step_by(usize::try_from(step).ok()?));
    }
    out.sort_unstable();
    out.dedup();
    (!out.is_empty()).then_some(out)
}

fn number(text: &str, min: u32, max: u32, names: &[&str]) -> Option<u32> {
    let n = match names.iter().position(|n| n.eq_ignore_ascii_case(text)) {
        Some(i) => u32::try_from(i).ok()? + min,
        None => text.parse().ok()?,
    };
    (min..=max).contains(&n).then_some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i32, m: u8, d: u8, h: u8) -> i64 {
        let date = time::Date::from_calendar_date(y, time::Month::try_from(m).unwrap(), d).unwrap();
        let t = date.with_hms(h, 0, 0).unwrap().assume_utc();
        t.unix_timestamp() * 1000
    }

    #[test]
    fn rates() {
        assert_eq!(Schedule::parse("rate(10 days)"), Some(Schedule::Days(10)));
        assert_eq!(Schedule::parse("rate(12 hours)"), Some(Schedule::Hours(12)));
        assert_eq!(Schedule::parse("rate(2 hours)"), None);
        assert_eq!(Schedule::parse("rate(0 days)"), None);
        assert_eq!(Schedule::parse("rate(3 weeks)"), None);
        let start = at(2024, 1, 1, 15);
        assert_eq!(
            Schedule::Days(10).next_start(start, start),
            Some(at(2024, 1, 11, 0))
        );
        assert_eq!(Schedule::Days(10).interval_days(), Some(10));
    }

    #[test]
    fn awss_example_cron() {
        // The AWS example: 16:00 UTC on the 1st and 15th of every month, AutomaticallyAfterDays 14.
        let s = Schedule::parse("cron(0 16 1,15 * ? *)").unwrap();
        assert_eq!(
            s.next_start(0, at(2024, 1, 2, 0)),
            Some(at(2024, 1, 15, 16))
        );
        assert_eq!(s.interval_days(), Some(14));
        assert!(!s.is_hourly());
    }

    #[test]
    fn cron_rules() {
        assert!(Schedule::parse("cron(0 16 1,15 * * *)").is_none()); // no '?'
        assert!(Schedule::parse("cron(0 */2 * * ? *)").is_none()); // every 2 hours
        assert!(Schedule::parse("cron(0 */4 * * ? *)").is_some());
        assert!(Schedule::parse("cron(0 8 ? * MON-FRI *)").is_some());
        assert!(Schedule::parse("cron(0 8 ? * 2#1 *)").is_some());
        assert!(Schedule::parse("cron(0 8 L * ? *)").is_some());
        assert!(Schedule::parse("cron(0 25 * * ? *)").is_none());
        assert!(Schedule::parse("cron(0 8 * *)").is_none());
        // Windows open on the hour; schedules repeat within a year.
        assert!(Schedule::parse("cron(30 8 ? * MON *)").is_none());
        assert!(Schedule::parse("cron(0 8 ? * MON 2030)").is_none());
        assert!(Schedule::parse("cron(0 4/12 * * ? *)").is_some());
        // First Monday of February 2024 is the 5th.
        let s = Schedule::parse("cron(0 8 ? * 2#1 *)").unwrap();
        assert_eq!(s.next_start(0, at(2024, 2, 1, 0)), Some(at(2024, 2, 5, 8)));
        // Last day of February 2024 is the 29th.
        let s = Schedule::parse("cron(0 8 L * ? *)").unwrap();
        assert_eq!(s.next_start(0, at(2024, 2, 1, 0)), Some(at(2024, 2, 29, 8)));
    }
}
