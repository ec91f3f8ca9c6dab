//! The service log's one line per event: control characters in a formatted
//! event (a newline in a token's field name, in a crew user name) are written
//! escaped, so that nothing a stranger sends can start a line of its own.
//!
//! Architecture Invariant: this is the only place that makes log lines safe;
//! callers log outside values as they are, and every line passes through here.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

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
}
