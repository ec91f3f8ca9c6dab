//! Domain types parsed at the edge: KIDs, communication-key ids, months, license
//! types, key systems, and the secret byte arrays that must never be printed.
//!
//! Architecture Invariant: nothing here does I/O or knows HTTP, SQL or openssl.
//! Functions past the edge take these types, never raw strings.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::GeneralPurpose;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use time::{Date, OffsetDateTime, UtcOffset};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct ParseError(pub String);

fn parse_error(what: &str, input: &str) -> ParseError {
    // Inputs can be hostile and long; quote only a short prefix.
    let shown: String = input.chars().take(48).collect();
    ParseError(format!("{what}: {shown:?}"))
}

/// A content key id: 16 bytes, written as a UUID (RFC 4122 byte order).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(pub [u8; 16]);

impl Kid {
    /// Parses the base64 forms players use: base64url or standard, padded or not.
    pub fn from_b64(text: &str) -> Result<Kid, ParseError> {
        let bytes = decode_b64_any(text).ok_or_else(|| parse_error("not base64", text))?;
        let array: [u8; 16] = bytes
            .try_into()
            .map_err(|_| parse_error("a KID must be 16 bytes", text))?;
        Ok(Kid(array))
    }

    pub fn to_b64url(&self) -> String {
        b64_encode(&URL_SAFE_NO_PAD, &self.0)
    }

    pub fn to_uuid_string(&self) -> String {
        uuid::Uuid::from_bytes(self.0).hyphenated().to_string()
    }
}

impl FromStr for Kid {
    type Err = ParseError;

    /// Accepts a UUID (`9eb4050d-e44b-4802-932e-27d75083e266`) or 32 hex digits.
    fn from_str(text: &str) -> Result<Kid, ParseError> {
        let is_uuid_shape = text.len() == 36 || text.len() == 32;
        if !is_uuid_shape || !text.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
            return Err(parse_error("not a KID (UUID or 32 hex digits)", text));
        }
        uuid::Uuid::try_parse(text)
            .map(|u| Kid(*u.as_bytes()))
            .map_err(|_| parse_error("not a KID (UUID or 32 hex digits)", text))
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_uuid_string())
    }
}

impl fmt::Debug for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Kid({self})")
    }
}

/// `engine.decode(text)` into a buffer from `malloc`: base64's own `decode`
/// (and `encode`) start from a zeroed `calloc`, which glibc serves outside its
/// per-thread cache, and a license decodes four (the token's parts, the KID)
/// and encodes two.
pub fn b64_decode(engine: &GeneralPurpose, text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let mut out = Vec::with_capacity(base64::decoded_len_estimate(text.len()));
    engine.decode_vec(text, &mut out)?;
    Ok(out)
}

/// `engine.encode(bytes)` without a `calloc` (see [`b64_decode`]).
pub fn b64_encode(engine: &GeneralPurpose, bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    engine.encode_string(bytes, &mut out);
    out
}

/// Decodes base64 in any of the four common alphabets/padding variants.
pub fn decode_b64_any(text: &str) -> Option<Vec<u8>> {
    let text = text.trim();
    [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD]
        .into_iter()
        .find_map(|engine| b64_decode(engine, text).ok())
}

/// The id of a communication key (a UUID), kept in its canonical lowercase form.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ComKeyId(pub uuid::Uuid);

impl FromStr for ComKeyId {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<ComKeyId, ParseError> {
        uuid::Uuid::try_parse(text.trim())
            .map(ComKeyId)
            .map_err(|_| parse_error("not a communication key id (UUID)", text))
    }
}

impl fmt::Display for ComKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.hyphenated())
    }
}

impl fmt::Debug for ComKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ComKeyId({self})")
    }
}

macro_rules! secret_bytes {
    ($name:ident, $len:expr, $what:literal) => {
        #[doc = concat!("A ", $what, "; its bytes never appear in `Debug` output.")]
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(pub [u8; $len]);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_bytes!(ContentKey, 16, "16-byte AES content key");
secret_bytes!(
    Secret32,
    32,
    "32-byte secret (communication key, pepper, master key)"
);

impl ContentKey {
    /// Parses a key given as 32 hex digits or base64 of 16 bytes.
    pub fn parse(text: &str) -> Result<ContentKey, ParseError> {
        let text = text.trim();
        let bytes = if text.len() == 32 && text.chars().all(|c| c.is_ascii_hexdigit()) {
            hex_decode(text)
        } else {
            decode_b64_any(text)
        };
        let bytes = bytes.ok_or_else(|| ParseError("a key must be 32 hex digits or base64".into()))?;
        let array: [u8; 16] = bytes
            .try_into()
            .map_err(|_| ParseError("a content key must be 16 bytes".into()))?;
        Ok(ContentKey(array))
    }
}

pub fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    // Written in place as bytes and checked once: pushing chars encoded each
    // digit as UTF-8, about 17 instructions a byte (issue 37).
    #[allow(
        clippy::slow_vector_initialization,
        reason = "vec![0; n] asks glibc for zeroed memory: calloc cost 212 instructions a call, malloc and this short memset about 60"
    )]
    let mut out = Vec::with_capacity(bytes.len() * 2);
    out.resize(bytes.len() * 2, 0);
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0xf)];
    }
    String::from_utf8(out).expect("hex digits are ASCII")
}

/// An integer in decimal as `to_string` writes it, without allocating: the
/// chain hash's lengths and row number, the service log's integer fields.
#[derive(Default)]
pub struct Decimal([u8; 20]);

impl Decimal {
    pub fn unsigned(&mut self, mut n: u64) -> &[u8] {
        let mut at = self.0.len();
        loop {
            at -= 1;
            self.0[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                return &self.0[at..];
            }
        }
    }

    /// With a `-` before a negative number.
    pub fn signed(&mut self, n: i64) -> &[u8] {
        let digits = self.unsigned(n.unsigned_abs()).len();
        let at = self.0.len() - digits;
        if n >= 0 {
            return &self.0[at..];
        }
        self.0[at - 1] = b'-';
        &self.0[at - 1..]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LicenseType {
    Temporary,
    PersistentLicense,
}

impl LicenseType {
    pub fn as_str(self) -> &'static str {
        match self {
            LicenseType::Temporary => "temporary",
            LicenseType::PersistentLicense => "persistent-license",
        }
    }
}

impl FromStr for LicenseType {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<LicenseType, ParseError> {
        match text {
            "temporary" => Ok(LicenseType::Temporary),
            "persistent-license" => Ok(LicenseType::PersistentLicense),
            _ => Err(parse_error("not a license type", text)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeySystem {
    ClearKey,
    Hls,
    FairPlay,
}

impl KeySystem {
    pub const ALL: [KeySystem; 3] = [KeySystem::ClearKey, KeySystem::Hls, KeySystem::FairPlay];

    pub fn as_str(self) -> &'static str {
        match self {
            KeySystem::ClearKey => "clearkey",
            KeySystem::Hls => "hls",
            KeySystem::FairPlay => "fairplay",
        }
    }
}

/// The key systems berth does not serve, recognised by their license
/// requests, so that a refusal can name them: a Widevine request is a
/// protobuf `SignedMessage` (its first byte the tag of field 1, `0x08`), a
/// PlayReady request a SOAP `AcquireLicense` challenge.
pub fn foreign_key_system(body: &[u8]) -> Option<&'static str> {
    let head = &body[..body.len().min(4096)];
    let has = |needle: &[u8]| head.windows(needle.len()).any(|w| w.eq_ignore_ascii_case(needle));
    if head.first() == Some(&0x08) {
        Some("Widevine")
    } else if head.trim_ascii_start().starts_with(b"<")
        && (has(b"AcquireLicense") || has(b"PlayReady") || has(b"<soap"))
    {
        Some("PlayReady")
    } else {
        None
    }
}

impl FromStr for KeySystem {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<KeySystem, ParseError> {
        match text {
            "clearkey" => Ok(KeySystem::ClearKey),
            "hls" => Ok(KeySystem::Hls),
            "fairplay" => Ok(KeySystem::FairPlay),
            _ => Err(parse_error("not a key system", text)),
        }
    }
}

/// "1 license", "2 licenses": a count and its noun for people to read (every
/// noun berth counts takes an "s").
pub fn counted<N: std::fmt::Display + PartialEq + From<u8>>(n: N, noun: &str) -> String {
    if n == N::from(1) {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A calendar month in UTC, `YYYY-MM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    year: i32,
    month: time::Month,
}

/// Written as its text, `YYYY-MM`.
impl serde::Serialize for Month {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl Month {
    pub fn of(at: OffsetDateTime) -> Month {
        let at = at.to_offset(UtcOffset::UTC);
        Month {
            year: at.year(),
            month: at.month(),
        }
    }

    pub fn start(self) -> OffsetDateTime {
        Date::from_calendar_date(self.year, self.month, 1)
            .expect("a parsed month has a first day")
            .midnight()
            .assume_utc()
    }

    pub fn next(self) -> Month {
        if self.month == time::Month::December {
            Month {
                year: self.year + 1,
                month: time::Month::January,
            }
        } else {
            Month {
                year: self.year,
                month: self.month.next(),
            }
        }
    }

    pub fn previous(self) -> Month {
        if self.month == time::Month::January {
            Month {
                year: self.year - 1,
                month: time::Month::December,
            }
        } else {
            Month {
                year: self.year,
                month: self.month.previous(),
            }
        }
    }

    /// The first instant after the month.
    pub fn end(self) -> OffsetDateTime {
        self.next().start()
    }

    /// Every day of the month as `YYYY-MM-DD`.
    pub fn days(self) -> Vec<String> {
        let mut day = self.start().date();
        let end = self.end().date();
        let mut out = Vec::with_capacity(31);
        while day < end {
            out.push(day.to_string());
            day = day.next_day().expect("days within a parsed month exist");
        }
        out
    }
}

impl FromStr for Month {
    type Err = ParseError;

    fn from_str(text: &str) -> Result<Month, ParseError> {
        let bad = || parse_error("not a month (YYYY-MM)", text);
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u8 = m.parse().map_err(|_| bad())?;
        let month = time::Month::try_from(month).map_err(|_| bad())?;
        // Up to 9998: a month's end is the next month's start, and the date
        // type stops at 9999-12-31 (9999-12 made `stats` and `report verify` panic).
        if !(1970..=9998).contains(&year) {
            return Err(bad());
        }
        Ok(Month { year, month })
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, u8::from(self.month))
    }
}

/// What a crew account may do: an admin everything, a viewer look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Viewer,
}

impl Role {
    pub const ALL: [Role; 2] = [Role::Admin, Role::Viewer];

    /// As the store keeps it and people read it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A role berth does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a role is admin or viewer")]
pub struct UnknownRole;

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(text: &str) -> Result<Role, UnknownRole> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or(UnknownRole)
    }
}

/// A moment in UTC to the millisecond, as berth stamps licenses: written
/// `YYYY-MM-DDTHH:MM:SS.mmmZ` ([`format_instant`]), compared as a moment.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(OffsetDateTime);

impl Timestamp {
    /// `at` in UTC, cut to the millisecond (what its text form holds).
    pub fn new(at: OffsetDateTime) -> Timestamp {
        let at = at.to_offset(UtcOffset::UTC);
        Timestamp(
            at.replace_nanosecond(at.millisecond() as u32 * 1_000_000)
                .unwrap_or(at),
        )
    }

    pub fn at(self) -> OffsetDateTime {
        self.0
    }

    /// A stamp exactly as berth writes it (`YYYY-MM-DDTHH:MM:SS.mmmZ`), and
    /// nothing else: the form a license log row and a report's `licenses.csv`
    /// hold. Its first ten bytes are then its day, its first seven its month.
    pub fn from_stamp(text: &str) -> Result<Timestamp, ParseError> {
        let b = text.as_bytes();
        let shaped = b.len() == 24
            && b.iter().enumerate().all(|(i, c)| match i {
                4 | 7 => *c == b'-',
                10 => *c == b'T',
                13 | 16 => *c == b':',
                19 => *c == b'.',
                23 => *c == b'Z',
                _ => c.is_ascii_digit(),
            });
        let bad = || parse_error("not a stamp as berth writes it (YYYY-MM-DDTHH:MM:SS.mmmZ)", text);
        if !shaped {
            return Err(bad());
        }
        // Read from its digits: a report's verification reads millions of
        // stamps, and the shape above already says where each field is.
        let n = |at: std::ops::Range<usize>| b[at].iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        let month = time::Month::try_from(n(5..7) as u8).map_err(|_| bad())?;
        let date = Date::from_calendar_date(i32::from(n(0..4)), month, n(8..10) as u8).map_err(|_| bad())?;
        let time = time::Time::from_hms_milli(n(11..13) as u8, n(14..16) as u8, n(17..19) as u8, n(20..23))
            .map_err(|_| bad())?;
        Ok(Timestamp(date.with_time(time).assume_utc()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&format_instant(self.0))
    }
}

/// As its text: `YYYY-MM-DDTHH:MM:SS.mmmZ`.
impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl FromStr for Timestamp {
    type Err = ParseError;

    /// Any RFC 3339 date-time the date type holds in UTC.
    fn from_str(text: &str) -> Result<Timestamp, ParseError> {
        parse_instant(text).map(Timestamp::new)
    }
}

/// Formats an instant as the log does: UTC, RFC 3339, milliseconds, `Z`.
///
/// Written digit by digit into a fixed pattern: through `format!` it cost
/// about 3,000 instructions, once for every log commit, and at a vessel's
/// rates every license is its own commit (issue 37).
pub fn format_instant(at: OffsetDateTime) -> String {
    let at = at.to_offset(UtcOffset::UTC);
    let (year, month, day) = at.to_calendar_date();
    let (hour, minute, second, milli) = at.to_hms_milli();
    let Ok(year @ 0..=9999) = u16::try_from(year) else {
        // Years the pattern has no room for (before year 0 they take a sign).
        return format!(
            "{year:04}-{:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z",
            u8::from(month)
        );
    };
    let mut text = *b"0000-00-00T00:00:00.000Z";
    for (at, width, value) in [
        (0, 4, year),
        (5, 2, u16::from(u8::from(month))),
        (8, 2, u16::from(day)),
        (11, 2, u16::from(hour)),
        (14, 2, u16::from(minute)),
        (17, 2, u16::from(second)),
        (20, 3, milli),
    ] {
        let mut value = value;
        for digit in text[at..at + width].iter_mut().rev() {
            *digit = b'0' + (value % 10) as u8;
            value /= 10;
        }
    }
    String::from_utf8(text.to_vec()).expect("digits and the pattern are ASCII")
}

/// Parses an RFC 3339 date-time (any offset) into UTC. An instant past the last one the
/// date type holds in UTC (`9999-12-31T23:59:59-01:00`) is refused here:
/// converting it later (to log it) would panic.
pub fn parse_instant(text: &str) -> Result<OffsetDateTime, ParseError> {
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .and_then(|at| at.checked_to_offset(UtcOffset::UTC))
        .ok_or_else(|| parse_error("not an RFC 3339 date-time up to 9999-12-31T23:59:59Z", text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_compare_as_moments_and_print_to_the_millisecond() {
        let a: Timestamp = "2026-11-23T12:00:00.000Z".parse().unwrap();
        let b: Timestamp = "2026-11-23T13:00:00.5+02:00".parse().unwrap();
        assert!(
            b < a,
            "11:00:00.5 UTC is before 12:00 UTC, whatever the text says"
        );
        assert_eq!(b.to_string(), "2026-11-23T11:00:00.500Z");
        assert_eq!(Timestamp::new(b.at() + time::Duration::microseconds(999)), b);
        assert!("2026-11-23".parse::<Timestamp>().is_err());
    }

    #[test]
    fn hex_is_lower_case_two_digits_a_byte() {
        let every: Vec<u8> = (0..=255).collect();
        let expected: String = every.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex(&every), expected);
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn roles_and_stamps_fill_the_columns_they_are_given() {
        assert_eq!(format!("{:<8}|", Role::Viewer), "viewer  |");
        let stamp = Timestamp::from_stamp("2026-11-23T23:59:59.999Z").unwrap();
        assert_eq!(format!("{stamp:<26}|"), "2026-11-23T23:59:59.999Z  |");
    }

    #[test]
    fn a_stamp_is_exactly_the_form_berth_writes() {
        let stamp = Timestamp::from_stamp("2026-11-23T23:59:59.999Z").unwrap();
        assert_eq!(stamp.to_string(), "2026-11-23T23:59:59.999Z");
        // The same moment RFC 3339's general reading gives.
        for text in [
            "2026-11-23T23:59:59.999Z",
            "2028-02-29T00:00:00.000Z",
            "1970-01-01T00:00:00.001Z",
        ] {
            assert_eq!(Timestamp::from_stamp(text), text.parse::<Timestamp>(), "{text}");
        }
        for other in [
            "2026-11-23T24:00:00.000Z",
            "2026-11-23T23:60:00.000Z",
            "2027-02-29T00:00:00.000Z",
            "2026-11-24T00:59:59.999+01:00",
            "2026-11-23T23:59:59Z",
            "2026-11-23T23:59:59.9990Z",
            "2026-11-23 23:59:59.999Z",
            "2026-11-23T23:59:59.999z",
            "2026-13-23T23:59:59.999Z",
            "2026-02-30T23:59:59.999Z",
            "+026-11-23T23:59:59.999Z",
            "",
        ] {
            assert!(Timestamp::from_stamp(other).is_err(), "{other:?}");
        }
    }

    #[test]
    fn counts_read_as_words() {
        assert_eq!(counted(1u64, "license"), "1 license");
        assert_eq!(counted(0i64, "license"), "0 licenses");
        assert_eq!(counted(2usize, "new key"), "2 new keys");
    }

    #[test]
    fn b64_helpers_agree_with_the_engines() {
        let inputs: [&[u8]; 5] = [
            b"",
            b"f",
            b"fo",
            b"foo",
            &[0xfb, 0xff, 0x00, 0x10, 0x83, 0x7e, 0xbf],
        ];
        for bytes in inputs {
            for engine in [&URL_SAFE_NO_PAD, &URL_SAFE, &STANDARD, &STANDARD_NO_PAD] {
                let text = engine.encode(bytes);
                assert_eq!(b64_encode(engine, bytes), text);
                assert_eq!(b64_decode(engine, &text).unwrap(), bytes);
            }
        }
        for bad in ["a", "ab=c", "a b", "é", "AAAA=", "-_==", "+/"] {
            assert_eq!(
                b64_decode(&URL_SAFE_NO_PAD, bad),
                URL_SAFE_NO_PAD.decode(bad),
                "{bad}"
            );
            assert_eq!(b64_decode(&STANDARD, bad), STANDARD.decode(bad), "{bad}");
        }
    }

    #[test]
    fn kid_forms_agree() {
        let a: Kid = "9eb4050d-e44b-4802-932e-27d75083e266".parse().unwrap();
        let b: Kid = "9EB4050DE44B4802932E27D75083E266".parse().unwrap();
        assert_eq!(a, b);
        assert_eq!(a.0[0], 0x9e);
        let c = Kid::from_b64(&a.to_b64url()).unwrap();
        assert_eq!(a, c);
        let padded = STANDARD.encode(a.0);
        assert_eq!(Kid::from_b64(&padded).unwrap(), a);
        assert!(Kid::from_b64("AAAA").is_err());
        assert!("not-a-kid".parse::<Kid>().is_err());
        assert!("{9eb4050d-e44b-4802-932e-27d75083e266}".parse::<Kid>().is_err());
    }

    #[test]
    fn instants_format_as_time_formats_them() {
        let pattern = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        let mut at = OffsetDateTime::UNIX_EPOCH;
        let mut instants = vec![
            time::macros::datetime!(0000-01-01 00:00:00 UTC),
            time::macros::datetime!(0999-02-03 04:05:06.007 UTC),
            time::macros::datetime!(9999-12-31 23:59:59.999999999 UTC),
            time::macros::datetime!(2026-12-06 10:11:12.5 +05:30),
            time::macros::datetime!(2026-12-06 00:00:00 -01:00),
        ];
        // Over six thousand years in uneven steps, through every field's carries.
        for _ in 0..20_000 {
            at += time::Duration::new(10_000_019, 123_456_789);
            instants.push(at);
        }
        for at in instants {
            let utc = at.to_offset(UtcOffset::UTC);
            assert_eq!(format_instant(at), utc.format(&pattern).unwrap(), "{at}");
        }
        // Before year 0 the year takes a sign, as `format!` gives it.
        let early = time::macros::datetime!(-0001-12-31 23:59:59.5 UTC);
        assert_eq!(format_instant(early), "-001-12-31T23:59:59.500Z");
    }

    #[test]
    fn months_have_right_bounds() {
        let m: Month = "2026-12".parse().unwrap();
        assert_eq!(format_instant(m.start()), "2026-12-01T00:00:00.000Z");
        assert_eq!(format_instant(m.end()), "2027-01-01T00:00:00.000Z");
        assert_eq!(m.days().len(), 31);
        assert_eq!("2024-02".parse::<Month>().unwrap().days().len(), 29);
        assert!("2026-13".parse::<Month>().is_err());
        assert!("26-01".parse::<Month>().is_err());
        // Every month that parses has an end and days: the last is 9998-12.
        let last: Month = "9998-12".parse().unwrap();
        assert_eq!(format_instant(last.end()), "9999-01-01T00:00:00.000Z");
        assert_eq!(last.days().len(), 31);
        for bad in [
            "9999-12", "9999-01", "1969-12", "0000-01", "+999-01", "2026-00", "2026-1 ",
        ] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let k = ContentKey([7; 16]);
        assert_eq!(format!("{k:?}"), "ContentKey(<redacted>)");
    }
}

/// One content key of an import (a key file's, a CPIX document's), parsed
/// and checked, before the store keeps it.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub kid: Kid,
    pub key: ContentKey,
    pub label: String,
    /// The key rotation period a CPIX document gave it, for people.
    pub period: Option<String>,
}
