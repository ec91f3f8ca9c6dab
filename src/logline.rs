//! The service log's one line per event: control characters in a formatted
//! event (a newline in a token's field name, in a crew user name) are written
//! escaped, so that nothing a stranger sends can start a line of its own.
//!
//! Architecture Invariant: this is the only place that makes log lines safe;
//! callers log outside values as they are, and every line passes through here.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

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
        use std::sync::{Arc, Mutex};
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
        let text = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 2, "{text}");
        assert!(text.contains("crew\\nINFO berth::admin"), "{text}");
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
