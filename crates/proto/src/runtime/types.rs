//! Value types of the wire: blobs (base64 on the wire), sensitive values, timestamps.
//!
//! Members the models mark `sensitive` (plaintexts, secret strings, passwords) are decoded
//! into [`SensitiveBlob`] / [`SensitiveString`]: they zeroize on drop, are not `Clone`, and
//! print as `[redacted]`, so a request that carries a secret cannot leak it through a log
//! line or a stray copy.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

/// A non-secret binary value (for example a ciphertext blob), base64 on the wire.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Blob(Vec<u8>);

impl Blob {
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn into_inner(self) -> Vec<u8> {
        self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }
}

impl From<Vec<u8>> for Blob {
    fn from(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}

/// A secret binary value (a plaintext, a data key): zeroized on drop, never printed.
#[derive(Default)]
pub struct SensitiveBlob(Zeroizing<Vec<u8>>);

impl SensitiveBlob {
    /// Takes ownership of `bytes`; copies the caller made before are the caller's to wipe.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(&*self.0))
    }
}

impl fmt::Debug for SensitiveBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SensitiveBlob([redacted])")
    }
}

/// A secret string (a secret value, a password): zeroized on drop, never printed.
#[derive(Default)]
pub struct SensitiveString(Zeroizing<String>);

impl SensitiveString {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for SensitiveString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SensitiveString([redacted])")
    }
}

/// A point in time with millisecond precision. JSON 1.1 carries it as fractional epoch
/// seconds; awsQuery/XML as ISO 8601 (`2024-01-02T03:04:05.678Z`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    millis: i64,
}

impl Timestamp {
    pub fn now() -> Self {
        Self::from(SystemTime::now())
    }
    pub fn from_millis(millis: i64) -> Self {
        Self { millis }
    }
    pub fn from_secs(secs: i64) -> Self {
        Self {
            millis: secs.saturating_mul(1000),
        }
    }
    pub fn as_millis(self) -> i64 {
        self.millis
    }
    pub fn as_secs(self) -> i64 {
        self.millis.div_euclid(1000)
    }
    pub fn as_epoch_seconds_f64(self) -> f64 {
        self.millis as f64 / 1000.0
    }
    /// Adds a number of whole days (saturating).
    pub fn plus_days(self, days: i64) -> Self {
        Self {
            millis: self.millis.saturating_add(days.saturating_mul(86_400_000)),
        }
    }
    pub fn plus_millis(self, millis: i64) -> Self {
        Self {
            millis: self.millis.saturating_add(millis),
        }
    }
    /// `2024-01-02T03:04:05.678Z`, as awsQuery responses and CloudTrail records write times.
    pub fn to_iso8601(self) -> String {
        self.iso8601(true)
    }
    /// `2024-01-02T03:04:05Z`: ISO 8601 without fractional seconds (CloudTrail's eventTime).
    pub fn to_iso8601_seconds(self) -> String {
        self.iso8601(false)
    }
    /// Written digit by digit (every audit record has one; `format!` cost more than the
    /// calendar arithmetic). Years outside 0–9999 take the general path.
    fn iso8601(self, millis: bool) -> String {
        let nanos = i128::from(self.millis) * 1_000_000;
        let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(nanos) else {
            return if millis {
                "1970-01-01T00:00:00.000Z"
            } else {
                "1970-01-01T00:00:00Z"
            }
            .to_owned();
        };
        let (year, month, day) = t.to_calendar_date();
        let (hour, minute, second, milli) = t.to_hms_milli();
        let Ok(year) = u16::try_from(year) else {
            return general_iso8601(t, millis);
        };
        if year > 9999 {
            return general_iso8601(t, millis);
        }
        let mut text = *b"0000-00-00T00:00:00.000Z";
        put_digits(&mut text[0..4], year);
        put_digits(&mut text[5..7], u16::from(u8::from(month)));
        put_digits(&mut text[8..10], u16::from(day));
        put_digits(&mut text[11..13], u16::from(hour));
        put_digits(&mut text[14..16], u16::from(minute));
        put_digits(&mut text[17..19], u16::from(second));
        put_digits(&mut text[20..23], milli);
        let text = if millis {
            &text[..]
        } else {
            text[19] = b'Z';
            &text[..20]
        };
        text.iter().map(|&b| char::from(b)).collect()
    }
    /// Parses ISO 8601 / RFC 3339 (`2024-01-02T03:04:05Z`, with optional fraction/offset).
    pub fn parse_iso8601(value: &str) -> Option<Self> {
        let t = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
            .ok()?;
        let millis = t.unix_timestamp_nanos() / 1_000_000;
        i64::try_from(millis).ok().map(Self::from_millis)
    }
}

/// Writes `value` in decimal into `out`, zero-padded to its length.
fn put_digits(out: &mut [u8], mut value: u16) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn general_iso8601(t: time::OffsetDateTime, millis: bool) -> String {
    let seconds = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
    );
    if millis {
        format!("{seconds}.{:03}Z", t.millisecond())
    } else {
        format!("{seconds}Z")
    }
}

impl From<SystemTime> for Timestamp {
    fn from(t: SystemTime) -> Self {
        let millis = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        Self { millis }
    }
}

impl From<Timestamp> for SystemTime {
    fn from(t: Timestamp) -> Self {
        if t.millis >= 0 {
            UNIX_EPOCH + Duration::from_millis(t.millis.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_millis(t.millis.unsigned_abs())
        }
    }
}

// ---- serde: JSON 1.1 encodings -------------------------------------------------------------

impl Serialize for Blob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl Serialize for SensitiveBlob {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_base64())
    }
}

impl Serialize for SensitiveString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.millis % 1000 == 0 {
            s.serialize_i64(self.millis / 1000)
        } else {
            s.serialize_f64(self.as_epoch_seconds_f64())
        }
    }
}

struct Base64Visitor;

impl Visitor<'_> for Base64Visitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a base64-encoded string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Vec<u8>, E> {
        decode_base64(v).ok_or_else(|| E::custom("invalid base64"))
    }
}

/// Decodes standard base64, tolerating missing padding as the AWS front ends do.
pub fn decode_base64(value: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(value.trim()).ok()
}

impl<'de> Deserialize<'de> for Blob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Base64Visitor).map(Blob)
    }
}

impl<'de> Deserialize<'de> for SensitiveBlob {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Base64Visitor).map(SensitiveBlob::new)
    }
}

impl<'de> Deserialize<'de> for SensitiveString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(SensitiveString::new)
    }
}

struct TimestampVisitor;

impl Visitor<'_> for TimestampVisitor {
    type Value = Timestamp;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("epoch seconds")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
        Ok(Timestamp::from_secs(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
        i64::try_from(v)
            .map(Timestamp::from_secs)
            .map_err(|_| E::custom("timestamp out of range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Timestamp, E> {
        let millis = (v * 1000.0).round();
        if millis.is_finite() && millis.abs() < 9.0e15 {
            Ok(Timestamp::from_millis(millis as i64))
        } else {
            Err(E::custom("timestamp out of range"))
        }
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
        if let Ok(f) = v.parse::<f64>() {
            return self.visit_f64(f);
        }
        Timestamp::parse_iso8601(v).ok_or_else(|| E::custom("invalid timestamp"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(TimestampVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_iso8601() {
        let t = Timestamp::from_millis(1_700_000_000_123);
        assert_eq!(t.to_iso8601(), "2023-11-14T22:13:20.123Z");
        assert_eq!(t.to_iso8601_seconds(), "2023-11-14T22:13:20Z");
        let epoch = Timestamp::from_millis(7);
        assert_eq!(epoch.to_iso8601(), "1970-01-01T00:00:00.007Z");
        assert_eq!(epoch.to_iso8601_seconds(), "1970-01-01T00:00:00Z");
        // Before year 0 the years are written as `format!` writes them.
        let before = Timestamp::from_secs(-62_198_755_200); // -0001-01-01 (proleptic)
        assert_eq!(before.to_iso8601_seconds(), "-001-01-01T00:00:00Z");
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_iso8601(),
            "1970-01-01T00:00:00.000Z"
        );
        assert_eq!(
            Timestamp::parse_iso8601("2023-11-14T22:13:20.123Z"),
            Some(t)
        );
    }

    #[test]
    fn timestamp_json() {
        assert_eq!(
            serde_json::to_string(&Timestamp::from_secs(5)).unwrap(),
            "5"
        );
        assert_eq!(
            serde_json::to_string(&Timestamp::from_millis(5500)).unwrap(),
            "5.5"
        );
        let t: Timestamp = serde_json::from_str("1.5").unwrap();
        assert_eq!(t.as_millis(), 1500);
    }

    #[test]
    fn sensitive_values_do_not_print() {
        let b = SensitiveBlob::new(b"hunter2".to_vec());
        let s = SensitiveString::new("hunter2".into());
        assert!(!format!("{b:?}{s:?}").contains("hunter2"));
    }

    #[test]
    fn blob_base64() {
        let b: Blob = serde_json::from_str("\"aGk=\"").unwrap();
        assert_eq!(b.as_bytes(), b"hi");
        let b: Blob = serde_json::from_str("\"aGk\"").unwrap();
        assert_eq!(b.as_bytes(), b"hi");
        assert!(serde_json::from_str::<Blob>("\"!!\"").is_err());
    }
}
