//! A `std::io::Write` that hands what is written to it to another thread in
//! chunks of a fixed size: report export (CSV to the deflate thread) and the
//! admin UI's streamed downloads (CSV to the HTTP client).

use std::io::{Error, ErrorKind, Write};

/// Collects writes and passes each full chunk to `send`, which answers `false`
/// once the other side has gone; writing then fails with `BrokenPipe`.
pub struct ChunkWriter<F: FnMut(Vec<u8>) -> bool> {
    send: F,
    buf: Vec<u8>,
    size: usize,
}

impl<F: FnMut(Vec<u8>) -> bool> ChunkWriter<F> {
    pub fn new(size: usize, send: F) -> ChunkWriter<F> {
        ChunkWriter {
            send,
            buf: Vec::with_capacity(size),
            size,
        }
    }
}

impl<F: FnMut(Vec<u8>) -> bool> Write for ChunkWriter<F> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= self.size {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(self.size));
        if (self.send)(chunk) {
            Ok(())
        } else {
            Err(Error::new(ErrorKind::BrokenPipe, "the reading side went away"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_full_chunks_then_the_rest_on_flush() {
        let mut sent = Vec::new();
        let mut w = ChunkWriter::new(4, |c| {
            sent.push(c);
            true
        });
        w.write_all(b"abc").unwrap();
        w.write_all(b"defgh").unwrap();
        w.write_all(b"ij").unwrap();
        w.flush().unwrap();
        w.flush().unwrap();
        drop(w);
        assert_eq!(sent, [b"abcdefgh".to_vec(), b"ij".to_vec()]);
    }

    #[test]
    fn a_gone_reader_is_a_broken_pipe() {
        let mut w = ChunkWriter::new(2, |_| false);
        assert_eq!(w.write_all(b"abc").unwrap_err().kind(), ErrorKind::BrokenPipe);
    }
}
