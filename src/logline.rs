//! The service log's one line per event: control characters in a formatted
//! event (a newline in a token's field name, in a crew user name) are written
//! escaped, so that nothing a stranger sends can start a line of its own.
//! The line's time and fields are written here too, as tracing-subscriber
//! writes them, with less work on the license path (`LineTime`, `LineFields`).
//!
//! Architecture Invariant: this is the only place that makes log lines safe;
//! callers log outside values as they are, and every line passes through here.

use std::io::Write;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{MakeVisitor, VisitFmt, VisitOutput};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};

use crate::ids::Decimal;

/// The time at the start of a line, as tracing-subscriber's default writes it
/// (`YYYY-MM-DDTHH:MM:SS.ffffffZ`, UTC), with the date and time to the second
/// formatted once a second per thread: formatting them on every line was
/// 2,400 instructions a license (issue 37).
pub struct LineTime;

impl tracing_subscriber::fmt::time::FormatTime for LineTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        use crate::clock::Clock as _;
        use std::fmt::Write as _;
        thread_local! {
            static SECOND: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
        }
        let now = crate::clock::SystemClock.now();
        SECOND.with_borrow_mut(|(second, text)| {
            if *second != now.unix_timestamp() {
                *second = now.unix_timestamp();
                text.clear();
                write!(
                    text,
                    "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                    now.year(),
                    u8::from(now.month()),
                    now.day(),
                    now.hour(),
                    now.minute(),
                    now.second()
                )?;
            }
            w.write_str(text)?;
            let mut micros = *b"000000Z";
            let mut n = now.microsecond();
            for digit in micros[..6].iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
            w.write_str(std::str::from_utf8(&micros).map_err(|_| std::fmt::Error)?)
        })
    }
}

/// A line's fields exactly as tracing-subscriber's `DefaultFields` writes
/// them (`name="text" n=42`), with the fields a license line carries (plain
/// text, integers, booleans) written directly instead of through `Debug` and
/// `core::fmt`: 2,100 instructions a license instead of 3,300 (issue 37).
/// Anything else (the message, escaped text, other types) goes to
/// `DefaultVisitor`. (berth builds tracing-subscriber without `tracing-log`,
/// with which `DefaultVisitor` would also skip fields named `log.*`.)
pub struct LineFields;

impl<'a> MakeVisitor<Writer<'a>> for LineFields {
    type Visitor = LineVisitor<'a>;

    fn make_visitor(&self, writer: Writer<'a>) -> LineVisitor<'a> {
        LineVisitor {
            writer,
            is_empty: true,
            result: Ok(()),
        }
    }
}

pub struct LineVisitor<'a> {
    writer: Writer<'a>,
    is_empty: bool,
    result: std::fmt::Result,
}

impl LineVisitor<'_> {
    /// Writes ` name=` (no space before the first field), then `value`.
    fn write(&mut self, name: &str, value: &[&str]) {
        if self.result.is_err() {
            return;
        }
        let pad = if std::mem::replace(&mut self.is_empty, false) {
            ""
        } else {
            " "
        };
        self.result = [pad, name, "="]
            .iter()
            .chain(value)
            .try_for_each(|part| self.writer.write_str(part));
    }

    fn write_integer(&mut self, name: &str, digits: &[u8]) {
        let text = std::str::from_utf8(digits).unwrap_or_default();
        self.write(name, &[text]);
    }

    /// One field as `DefaultVisitor` writes it, continuing this line.
    fn by_default(&mut self, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let is_empty = std::mem::replace(&mut self.is_empty, false);
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
    }
}

/// What `DefaultVisitor` writes as `name=value` itself: not the message, and
/// not a raw identifier (`r#type`, written as `type`).
fn plain_name(name: &str) -> bool {
    name != "message" && !name.starts_with("r#")
}

/// Text whose `Debug` form is itself in quotes: printable ASCII without `"`
/// or `\`.
fn needs_no_escape(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if plain_name(field.name()) && needs_no_escape(value) {
            self.write(field.name(), &["\"", value, "\""]);
        } else {
            self.by_default(|v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if plain_name(field.name()) {
            self.write_integer(field.name(), Decimal::default().unsigned(value));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if plain_name(field.name()) {
            self.write_integer(field.name(), Decimal::default().signed(value));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if plain_name(field.name()) {
            self.write(field.name(), &[if value { "true" } else { "false" }]);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_default(|v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.by_default(|v| v.record_debug(field, value));
    }
}

impl VisitOutput<std::fmt::Result> for LineVisitor<'_> {
    fn finish(self) -> std::fmt::Result {
        self.result
    }
}

impl VisitFmt for LineVisitor<'_> {
    fn writer(&mut self) -> &mut dyn std::fmt::Write {
        &mut self.writer
    }
}

/// Wraps the log's writer: each write is one formatted event, ending in `\n`.
pub struct OneLinePerEvent<M>(pub M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for OneLinePerEvent<M> {
    type Writer = Escaping<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        Escaping(self.0.make_writer())
    }
}

pub struct Escaping<W>(W);

impl<W: Write> Write for Escaping<W> {
    fn write(&mut self, event: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&escape_event(event))?;
        Ok(event.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// The event with every ASCII control character but the final newline written
/// as `\n`, `\r`, `\t` or `\xHH` (and a backslash-free text otherwise unchanged).
/// Borrows the event when there is nothing to escape, as for nearly every line.
pub fn escape_event(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    // Sixteen bytes at a time without an early exit, which the compiler
    // turns into vector compares: this runs for every line, one per license
    // (issue 37: 1,000 instructions a line byte by byte, 300 this way).
    let control = |b: u8| b < 0x20 || b == 0x7f;
    let has_control = body
        .chunks(16)
        .any(|chunk| chunk.iter().fold(false, |seen, &b| seen | control(b)));
    if !has_control {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut out = Vec::with_capacity(event.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b.is_ascii_control() => out.extend_from_slice(format!("\\x{b:02x}").as_bytes()),
            b => out.push(b),
        }
    }
    if body.len() < event.len() {
        out.push(b'\n');
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::{Arc, Mutex};

    /// A log's output in memory, for a subscriber's writer and the test.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Sink {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn only_the_final_newline_stays_a_newline() {
        assert_eq!(escape_event(b"INFO ok\n").as_ref(), b"INFO ok\n");
        assert_eq!(
            escape_event(b"WARN field `x\nINFO berth::license: outcome=\"ok\"`\r\t\x1b[31m\x00\n").as_ref(),
            b"WARN field `x\\nINFO berth::license: outcome=\"ok\"`\\r\\t\\x1b[31m\\x00\n"
        );
        assert_eq!(escape_event(b"no newline\n\n").as_ref(), b"no newline\\n\n");
        assert_eq!(escape_event(b"").as_ref(), b"");
    }

    #[test]
    fn a_subscriber_writes_one_line_per_event() {
        let sink = Sink::default();
        let for_writer = sink.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(OneLinePerEvent(move || for_writer.clone()))
            .with_ansi(false)
            .without_time()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(
                user = "crew\nINFO berth::admin: signed in user=admin",
                "sign-in refused"
            );
            tracing::info!(reason = %"a\r\nb", "second");
        });
        let text = sink.text();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("crew\\nINFO berth::admin"), "{text}");
    }

    /// Every kind of field, and text that must be escaped, written by
    /// `LineFields` exactly as tracing-subscriber's `DefaultFields` writes it.
    #[test]
    fn line_fields_are_the_default_fields_byte_for_byte() {
        use tracing_subscriber::fmt::format::DefaultFields;
        fn events() {
            // Its message ends in a newline, which makes this test's 14th line.
            let error = std::io::Error::other("disk \"full\"\n");
            tracing::info!(target: "berth::license", outcome = "ok", key_system = "clearkey", kids = 1u64, seq = 42i64, latency_us = 961u64);
            tracing::info!(outcome = "bad_request", kids = 0u64, reason = ?"a \"quoted\" \\ reason\n", "message {}", 7);
            tracing::info!(
                text = "tab\there",
                quote = "say \"hi\"",
                slash = "a\\b",
                del = "\x7f",
                esc = "\x1b[31m"
            );
            tracing::info!(unicode = "Zürich ✈", empty = "", space = " ", tilde = "~");
            tracing::info!(
                min = i64::MIN,
                max = i64::MAX,
                umax = u64::MAX,
                zero = 0u64,
                neg = -1i64
            );
            tracing::info!(
                yes = true,
                no = false,
                float = 1.5f64,
                big = u128::MAX,
                small = i128::MIN
            );
            tracing::info!(
                r#type = "raw",
                r#loop = 3u64,
                r#if = true,
                "{}",
                "only \"message\""
            );
            tracing::info!(message = "a message field", after = "x");
            tracing::info!(shown = %"display\tvalue", debug = ?vec![1, 2], bytes = &b"\x00\xff"[..]);
            tracing::info!(error = &error as &(dyn std::error::Error + 'static), then = 5u64);
            tracing::info!("no fields at all");
            tracing::info!(only = 1u64);
            let long = "x".repeat(200);
            tracing::info!(before = 1u64, long = long.as_str(), after = i64::MIN);
        }
        fn record(
            fields: impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + Send + Sync + 'static,
        ) -> String {
            let sink = Sink::default();
            let for_writer = sink.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_writer(move || for_writer.clone())
                .fmt_fields(fields)
                .with_ansi(false)
                .without_time()
                .finish();
            tracing::subscriber::with_default(subscriber, events);
            sink.text()
        }
        let ours = record(LineFields);
        let theirs = record(DefaultFields::new());
        assert_eq!(ours.lines().count(), 14, "{ours}");
        assert_eq!(ours, theirs);
        assert!(
            ours.contains(r#"outcome="ok" key_system="clearkey" kids=1 seq=42 latency_us=961"#),
            "{ours}"
        );
    }

    /// berth's line time is tracing-subscriber's own format, to the character
    /// class, and a moment: read back, it lies between the reads around it.
    #[test]
    fn the_line_time_is_the_default_format_and_now() {
        use tracing_subscriber::fmt::time::SystemTime;
        let stamp = |timer: &dyn tracing_subscriber::fmt::time::FormatTime| {
            let mut text = String::new();
            timer
                .format_time(&mut tracing_subscriber::fmt::format::Writer::new(&mut text))
                .unwrap();
            text
        };
        let shape = |text: &str| -> String {
            text.chars()
                .map(|c| if c.is_ascii_digit() { '9' } else { c })
                .collect()
        };
        use crate::clock::Clock as _;
        let before = crate::clock::SystemClock.now();
        let ours = stamp(&LineTime);
        let again = stamp(&LineTime);
        let after = crate::clock::SystemClock.now();
        assert_eq!(shape(&ours), shape(&stamp(&SystemTime)), "{ours}");
        for text in [&ours, &again] {
            let at =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).unwrap();
            assert!(
                before <= at + time::Duration::microseconds(1) && at <= after,
                "{text}"
            );
        }
    }
}
