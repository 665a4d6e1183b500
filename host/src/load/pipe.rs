//! A bounded pipe of byte chunks between the two threads that import one
//! layer: the reading side (source, blob digest, blob copy, decompression)
//! and the writing side (diff_id digest, tar parsing, EROFS image), so that
//! one layer keeps both cores busy. At most [`DEPTH`] chunks of [`CHUNK`]
//! bytes are in flight; buffers go back to the writer for reuse.

use crate::input::read_full;
use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

/// Bytes in one chunk.
const CHUNK: usize = 256 << 10;
/// Chunks in flight.
const DEPTH: usize = 4;

/// A connected writer and reader.
pub(crate) fn pipe() -> (PipeWriter, PipeReader) {
    let (full_tx, full_rx) = sync_channel(DEPTH);
    let (empty_tx, empty_rx) = sync_channel(DEPTH + 1);
    (
        PipeWriter { full: full_tx, empty: empty_rx },
        PipeReader { full: full_rx, empty: empty_tx, current: Vec::new(), pos: 0 },
    )
}

/// The sending end.
pub(crate) struct PipeWriter {
    full: SyncSender<io::Result<Vec<u8>>>,
    empty: Receiver<Vec<u8>>,
}

impl PipeWriter {
    /// Sends everything `reader` gives until its end. Returns `Ok(false)`
    /// when the reader hung up first (it failed: its own error says why). A
    /// read error is passed on to the reader, as an error of the same kind,
    /// and returned.
    pub(crate) fn fill(&self, reader: &mut impl Read) -> io::Result<bool> {
        loop {
            let mut buf = self.empty.try_recv().unwrap_or_default();
            buf.resize(CHUNK, 0);
            let n = match read_full(reader, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = self.full.send(Err(io::Error::new(e.kind(), e.to_string())));
                    return Err(e);
                }
            };
            if n == 0 {
                return Ok(true);
            }
            buf.truncate(n);
            if self.full.send(Ok(buf)).is_err() {
                return Ok(false);
            }
        }
    }
}

/// The receiving end: the bytes sent, then end of file once the writer is
/// dropped.
pub(crate) struct PipeReader {
    full: Receiver<io::Result<Vec<u8>>>,
    empty: SyncSender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for PipeReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            let done = std::mem::take(&mut self.current);
            if done.capacity() > 0 {
                let _ = self.empty.try_send(done);
            }
            self.pos = 0;
            match self.full.recv() {
                Ok(chunk) => self.current = chunk?,
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_arrive_in_order_and_errors_pass_through() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let (tx, mut rx) = pipe();
        let got = std::thread::scope(|s| {
            let reader = s.spawn(move || {
                let mut got = Vec::new();
                rx.read_to_end(&mut got).map(|_| got)
            });
            assert!(tx.fill(&mut &data[..]).unwrap());
            drop(tx);
            reader.join().unwrap().unwrap()
        });
        assert_eq!(got, data);

        struct Failing;
        impl Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::InvalidData, "corrupt deflate stream"))
            }
        }
        let (tx, mut rx) = pipe();
        assert!(tx.fill(&mut Failing).is_err());
        let err = rx.read(&mut [0; 8]).unwrap_err();
        assert_eq!((err.kind(), err.to_string()), (io::ErrorKind::InvalidData, "corrupt deflate stream".into()));
    }

    #[test]
    fn a_reader_that_hangs_up_stops_the_writer() {
        let (tx, rx) = pipe();
        drop(rx);
        assert!(!tx.fill(&mut io::repeat(1).take(10 * CHUNK as u64)).unwrap());
    }
}
