//! The service log's one line per event: control characters in a formatted
//! event (a newline in a token's field name, in a crew user name) are written
//! escaped, so that nothing a stranger sends can start a line of its own.
//! The line's time and fields are written here too, as tracing-subscriber
//! writes them, with less work on the license path (`LineTime`, `LineFields`),
//! and the lines reach stderr from a thread of their own (`Lines`).
//!
//! Architecture Invariant: this is the only place that makes log lines safe;
//! callers log outside values as they are, and every line passes through here.

use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

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

/// How long the service log's thread lets lines gather after a write before
/// it takes the next batch, so that a busy box writes a batch every few
/// milliseconds instead of waking the thread for every line.
const GATHER: std::time::Duration = std::time::Duration::from_millis(5);

/// Writers wait (the log is never lossy) while this much is waiting to be written,
/// as when journald stalls: about 80,000 license lines, over a second of a
/// boarding rush at full speed (tracing-appender held 128,000 lines of any length).
const WAITING_LIMIT: usize = 16 << 20;

/// The service log's writer: each line is appended to one buffer, and a thread
/// of its own writes what has gathered to `out` in one `write(2)`, so that
/// request handlers never wait on a write to stderr and nothing is dropped.
///
/// It replaces tracing-appender's `non_blocking` (issue 37): that handed each
/// line over as a vector of its own through a channel whose receiving thread
/// spun and yielded between lines. Its thread took 13-17 us of CPU a license
/// at one connection (every license its own commit, as at a vessel's real
/// rates) and 0.7-0.8 us at 256; this one takes 1.2-1.7 and 0.1-0.2
/// (`tests/bench/run`'s `lines_cpu_us`).
#[derive(Clone)]
pub struct Lines(Arc<Queue>);

struct Queue {
    waiting: Mutex<Waiting>,
    /// The thread waits here for a line, or for the end.
    arrived: Condvar,
    /// Writers wait here while `WAITING_LIMIT` is reached.
    room: Condvar,
}

#[derive(Default)]
struct Waiting {
    text: Vec<u8>,
    /// The thread is waiting on `arrived` for the first line of a batch.
    idle: bool,
    closing: bool,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Writes what is still waiting and ends the thread when it is dropped (at
/// the end of `main`).
pub struct FlushOnDrop {
    queue: Arc<Queue>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Lines {
    /// Starts the thread that writes to `out`.
    pub fn start(out: impl Write + Send + 'static) -> std::io::Result<(Lines, FlushOnDrop)> {
        let queue = Arc::new(Queue {
            waiting: Mutex::new(Waiting::default()),
            arrived: Condvar::new(),
            room: Condvar::new(),
        });
        let for_thread = queue.clone();
        let thread = std::thread::Builder::new()
            .name("berth-log-lines".into())
            .spawn(move || write_batches(&for_thread, out))?;
        Ok((
            Lines(queue.clone()),
            FlushOnDrop {
                queue,
                thread: Some(thread),
            },
        ))
    }
}

fn write_batches(queue: &Queue, mut out: impl Write) {
    let mut batch = Vec::new();
    loop {
        let mut waiting = queue.lock();
        while waiting.text.is_empty() {
            if waiting.closing {
                return;
            }
            waiting.idle = true;
            waiting = queue
                .arrived
                .wait(waiting)
                .unwrap_or_else(PoisonError::into_inner);
        }
        std::mem::swap(&mut waiting.text, &mut batch);
        let closing = waiting.closing;
        drop(waiting);
        queue.room.notify_all();
        // Nowhere to report a failed write to stderr: the batch is dropped,
        // as a line written straight to a closed stderr would be.
        let _ = out.write_all(&batch).and_then(|()| out.flush());
        batch.clear();
        // What a stall gathered is not kept: the two buffers take turns here.
        if batch.capacity() > 256 << 10 {
            batch = Vec::new();
        }
        if !closing {
            let waiting = queue.lock();
            drop(queue.arrived.wait_timeout_while(waiting, GATHER, |w| !w.closing));
        }
    }
}

impl Drop for FlushOnDrop {
    fn drop(&mut self) {
        self.queue.lock().closing = true;
        self.queue.arrived.notify_all();
        self.queue.room.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Write for &Lines {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        let queue = &self.0;
        let mut waiting = queue.lock();
        while waiting.text.len() >= WAITING_LIMIT && !waiting.closing {
            waiting = queue.room.wait(waiting).unwrap_or_else(PoisonError::into_inner);
        }
        waiting.text.extend_from_slice(line);
        let wake = std::mem::take(&mut waiting.idle);
        drop(waiting);
        if wake {
            queue.arrived.notify_one();
        }
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Lines {
    type Writer = &'a Lines;

    fn make_writer(&'a self) -> &'a Lines {
        self
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

    /// Waits up to five seconds for `sink` to hold `want`.
    fn eventually_holds(sink: &Sink, want: &str) {
        let start = std::time::Instant::now();
        while sink.text() != want {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(5),
                "waiting for {want:?}, have {:?}",
                sink.text()
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    #[test]
    fn a_line_is_written_while_the_box_is_quiet_and_every_line_by_the_end() {
        let sink = Sink::default();
        let (lines, flush) = Lines::start(sink.clone()).unwrap();
        // Each line comes after the thread has gone idle, and must wake it.
        let quiet = || std::thread::sleep(GATHER * 10);
        quiet();
        (&lines).write_all(b"first\n").unwrap();
        eventually_holds(&sink, "first\n");
        quiet();
        (&lines).write_all(b"second\n").unwrap();
        eventually_holds(&sink, "first\nsecond\n");

        // Four threads at once: every line whole, each thread's in its order.
        std::thread::scope(|scope| {
            for t in 0..4 {
                let lines = lines.clone();
                scope.spawn(move || {
                    for i in 0..5_000 {
                        (&lines)
                            .write_all(format!("thread {t} line {i}\n").as_bytes())
                            .unwrap();
                    }
                });
            }
        });
        drop(flush);
        let text = sink.text();
        let mut next = [0; 4];
        for line in text.lines().skip(2) {
            let (t, i) = line
                .strip_prefix("thread ")
                .unwrap()
                .split_once(" line ")
                .unwrap();
            let t: usize = t.parse().unwrap();
            assert_eq!(i.parse::<usize>().unwrap(), next[t], "{line}");
            next[t] += 1;
        }
        assert_eq!(next, [5_000; 4]);
    }

    /// A writer that takes nothing until the test opens it, as a stalled journald.
    struct Stalled(Sink, Arc<(Mutex<bool>, std::sync::Condvar)>);

    impl Write for Stalled {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let (open, opened) = &*self.1;
            drop(opened.wait_while(open.lock().unwrap(), |open| !*open).unwrap());
            self.0.write(b)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_output_holds_its_writers_back_and_loses_nothing() {
        let sink = Sink::default();
        let gate = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let (lines, flush) = Lines::start(Stalled(sink.clone(), gate.clone())).unwrap();
        let line = [b'x'; 1023].iter().chain(b"\n").copied().collect::<Vec<u8>>();
        let count = WAITING_LIMIT / line.len() * 3 / 2;
        let writer = std::thread::spawn({
            let (lines, line) = (lines.clone(), line.clone());
            move || (0..count).for_each(|_| (&lines).write_all(&line).unwrap())
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        let held_back = !writer.is_finished();
        *gate.0.lock().unwrap() = true;
        gate.1.notify_all();
        writer.join().unwrap();
        drop(flush);
        assert!(
            held_back,
            "half as much again as the limit went in while nothing could be written"
        );
        assert_eq!(sink.0.lock().unwrap().len(), count * line.len());
    }
}
