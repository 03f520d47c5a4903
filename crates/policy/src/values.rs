//! Typed condition values: numbers, dates, IP ranges, base64 binaries and booleans.
//!
//! Each parser accepts the same text whether it comes from a policy (where a failure refuses
//! the document) or from the request context (where a value the operator cannot read simply
//! does not match).

use std::cmp::Ordering;
use std::net::IpAddr;

/// An exact decimal number (`-12`, `3.50`), compared without floating-point rounding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decimal {
    negative: bool,
    /// Integer digits without leading zeros (empty for zero).
    int: Box<str>,
    /// Fraction digits without trailing zeros.
    frac: Box<str>,
}

impl Decimal {
    /// Reads `[+-]digits[.digits]` (also `.5` and `5.`); no exponent.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let (negative, digits) = match (text.strip_prefix('-'), text.strip_prefix('+')) {
            (Some(digits), _) => (true, digits),
            (None, Some(digits)) => (false, digits),
            (None, None) => (false, text),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        if int.is_empty() && frac.is_empty() {
            return None;
        }
        if !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let int = int.trim_start_matches('0');
        let frac = frac.trim_end_matches('0');
        let is_zero = int.is_empty() && frac.is_empty();
        Some(Decimal {
            negative: negative && !is_zero,
            int: int.into(),
            frac: frac.into(),
        })
    }

    fn cmp_magnitude(&self, other: &Decimal) -> Ordering {
        self.int
            .len()
            .cmp(&other.int.len())
            .then_with(|| self.int.cmp(&other.int))
            .then_with(|| self.frac.cmp(&other.frac))
    }
}

impl Ord for Decimal {
    fn cmp(&self, other: &Decimal) -> Ordering {
        match (self.negative, other.negative) {
            (false, true) => Ordering::Greater,
            (true, false) => Ordering::Less,
            (false, false) => self.cmp_magnitude(other),
            (true, true) => other.cmp_magnitude(self),
        }
    }
}

impl PartialOrd for Decimal {
    fn partial_cmp(&self, other: &Decimal) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// An instant, in nanoseconds since 1970-01-01T00:00:00Z.
pub(crate) type Instant = i128;

const NANOS: i128 = 1_000_000_000;

/// Reads a date as the IAM date operators accept it: epoch seconds (`1563278400`, optionally
/// with a fraction), or one of the W3C profiles of ISO 8601 (`2019`, `2019-07`, `2019-07-16`,
/// `2019-07-16T12:00Z`, `2019-07-16T12:00:00Z`, `2019-07-16T12:00:00.123+02:00`). A bare
/// four-digit number is read as epoch seconds, not as a year. A time without a zone is read
/// as UTC.
pub(crate) fn parse_date(text: &str) -> Option<Instant> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    if !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return parse_epoch(text);
    }
    parse_iso8601(text)
}

fn parse_epoch(text: &str) -> Option<Instant> {
    let number = Decimal::parse(text)?;
    if number.int.len() > 18 {
        return None;
    }
    let seconds: i128 = if number.int.is_empty() {
        0
    } else {
        number.int.parse().ok()?
    };
    let frac_digits: String = number
        .frac
        .chars()
        .chain("000000000".chars())
        .take(9)
        .collect();
    let nanos: i128 = frac_digits.parse().ok()?;
    let magnitude = seconds * NANOS + nanos;
    Some(if number.negative {
        -magnitude
    } else {
        magnitude
    })
}

fn parse_iso8601(text: &str) -> Option<Instant> {
    let (date, time) = match text.split_once(['T', 't']) {
        Some((date, time)) => (date, Some(time)),
        None => (text, None),
    };
    let mut fields = date.split('-');
    let year = fixed_digits(fields.next()?, 4)?;
    let month = fields
        .next()
        .map(|m| fixed_digits(m, 2))
        .unwrap_or(Some(1))?;
    let day = fields
        .next()
        .map(|d| fixed_digits(d, 2))
        .unwrap_or(Some(1))?;
    if fields.next().is_some() || !(1..=12).contains(&month) {
        return None;
    }
    if day < 1 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let (seconds_of_day, nanos, offset) = match time {
        Some(time) => parse_time(time)?,
        None => (0, 0, 0),
    };
    Some((days * 86_400 + seconds_of_day - offset) * NANOS + nanos)
}

/// `hh:mm[:ss[.fraction]][Z|±hh:mm]` → (seconds of day, nanoseconds, zone offset in seconds).
fn parse_time(text: &str) -> Option<(i128, i128, i128)> {
    let (clock, offset) = if let Some(clock) = text.strip_suffix(['Z', 'z']) {
        (clock, 0)
    } else if let Some(i) = text.rfind(['+', '-']) {
        let (clock, zone) = text.split_at(i);
        let sign = if zone.starts_with('-') { -1 } else { 1 };
        let (h, m) = zone.get(1..)?.split_once(':')?;
        let (h, m) = (fixed_digits(h, 2)?, fixed_digits(m, 2)?);
        if h > 23 || m > 59 {
            return None;
        }
        (clock, sign * (h * 3600 + m * 60))
    } else {
        (text, 0)
    };
    let mut fields = clock.split(':');
    let hour = fixed_digits(fields.next()?, 2)?;
    let minute = fixed_digits(fields.next()?, 2)?;
    let (second, nanos) = match fields.next() {
        Some(seconds) => {
            let (whole, frac) = seconds.split_once('.').unwrap_or((seconds, ""));
            let whole = fixed_digits(whole, 2)?;
            if !frac.bytes().all(|b| b.is_ascii_digit())
                || (seconds.contains('.') && frac.is_empty())
            {
                return None;
            }
            let padded: String = frac.chars().chain("000000000".chars()).take(9).collect();
            (whole, padded.parse().ok()?)
        }
        None => (0, 0),
    };
    if fields.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some((hour * 3600 + minute * 60 + second, nanos, offset))
}

fn fixed_digits(text: &str, len: usize) -> Option<i128> {
    if text.len() != len || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An IPv4 or IPv6 network in CIDR form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Reads `203.0.113.0/24`, `2001:DB8::/32` or a bare address (a /32 or /128).
    pub(crate) fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => {
                if prefix.is_empty()
                    || prefix.len() > 3
                    || !prefix.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                (address, Some(prefix.parse::<u8>().ok()?))
            }
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    /// Whether `address` lies in this network (an IPv4 address never lies in an IPv6 one).
    pub(crate) fn contains(&self, address: IpAddr) -> bool {
        match (self.network, address) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => same_prefix(
                u128::from(net.to_bits()),
                u128::from(addr.to_bits()),
                32,
                self.prefix,
            ),
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                same_prefix(net.to_bits(), addr.to_bits(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, width: u32, prefix: u8) -> bool {
    let host_bits = width.saturating_sub(u32::from(prefix));
    if host_bits >= width {
        return true;
    }
    (a >> host_bits) == (b >> host_bits)
}

/// Reads a request's IP address; a trailing `/prefix` is ignored.
pub(crate) fn parse_ip(text: &str) -> Option<IpAddr> {
    let address = text.split_once('/').map_or(text, |(address, _)| address);
    address.parse().ok()
}

/// Decodes standard base64 (padding optional, no whitespace).
pub(crate) fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 || trimmed.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0u32;
    for byte in trimmed.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Reads `true` or `false`, ignoring case.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_compare_exactly() {
        let d = |s| Decimal::parse(s).unwrap();
        assert_eq!(d("10"), d("10.000"));
        assert_eq!(d("-0"), d("0"));
        assert!(d("9") < d("10"));
        assert!(d("-10") < d("-9"));
        assert!(d("0.5") < d("0.51"));
        assert!(d("99999999999999999999") < d("100000000000000000000"));
        assert!(Decimal::parse("1e3").is_none());
        assert!(Decimal::parse("").is_none());
        assert!(Decimal::parse("-").is_none());
        assert!(Decimal::parse(".").is_none());
    }

    #[test]
    fn dates_in_every_documented_form() {
        let epoch = parse_date("1563278400").unwrap();
        assert_eq!(parse_date("2019-07-16T12:00:00Z"), Some(epoch));
        assert_eq!(parse_date("2019-07-16T14:00:00+02:00"), Some(epoch));
        assert_eq!(parse_date("2019-07-16T12:00Z"), Some(epoch));
        assert_eq!(parse_date("2019-07-16T12:00:00.000Z"), Some(epoch));
        assert_eq!(parse_date("2019-07-16"), Some(epoch - 12 * 3600 * NANOS));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2019-07"), parse_date("2019-07-01"));
        assert_eq!(parse_date("1.5"), Some(1_500_000_000));
        assert_eq!(parse_date("2000-02-29"), Some(951_782_400 * NANOS));
        assert_eq!(parse_date("2019-02-29"), None);
        assert_eq!(parse_date("2019-13-01"), None);
        assert_eq!(parse_date("2019-07-16T24:00:00Z"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date(""), None);
    }

    #[test]
    fn cidrs() {
        let net = Cidr::parse("203.0.113.0/24").unwrap();
        assert!(net.contains("203.0.113.7".parse().unwrap()));
        assert!(!net.contains("203.0.114.7".parse().unwrap()));
        assert!(!net.contains("2001:db8::1".parse().unwrap()));
        let host = Cidr::parse("203.0.113.7").unwrap();
        assert!(host.contains("203.0.113.7".parse().unwrap()));
        assert!(!host.contains("203.0.113.8".parse().unwrap()));
        let v6 = Cidr::parse("2001:DB8:1234:5678::/64").unwrap();
        assert!(v6.contains("2001:db8:1234:5678:ffff::1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0.0/").is_none());
        assert!(Cidr::parse("10.0.0/8").is_none());
    }

    #[test]
    fn base64() {
        assert_eq!(
            decode_base64("QmluYXJ5VmFsdWVJbkJhc2U2NA==").as_deref(),
            Some(&b"BinaryValueInBase64"[..])
        );
        assert_eq!(decode_base64("QQ").as_deref(), Some(&b"A"[..]));
        assert_eq!(decode_base64(""), Some(vec![]));
        assert_eq!(decode_base64("Q"), None);
        assert_eq!(decode_base64("Q$=="), None);
    }
}
