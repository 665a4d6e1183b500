//! Reading the bytes a decoder pointed at: an archive entry, bytes it made,
//! or a stream pulled from it.

use super::LoadError;
use crate::input::Archive;
use crate::plugin::Session;
use crate::plugin::model::Source;
use std::io::{self, Read};

/// Largest chunk pulled from a plugin stream at once.
const STREAM_CHUNK: u32 = 1 << 20;

/// How messages name `source`.
pub(crate) fn describe(source: &Source) -> String {
    match source {
        Source::Entry(path) => path.clone(),
        Source::Bytes(_) => "bytes made by the decoder".to_string(),
        Source::Stream(id) => format!("stream {id} of the decoder"),
        Source::Input => "the archive itself".to_string(),
    }
}

/// The whole of `source`, refusing more than `max` bytes.
pub(crate) fn read_small(
    archive: &dyn Archive,
    session: Option<&mut Session>,
    source: &Source,
    max: u64,
) -> Result<Vec<u8>, LoadError> {
    let mut reader = open(archive, session, source)?;
    let mut bytes = Vec::new();
    (&mut reader).take(max + 1).read_to_end(&mut bytes).map_err(|e| unwrap_plugin_error(e, source))?;
    if bytes.len() as u64 > max {
        return Err(LoadError::invalid(describe(source), format!("larger than the {max}-byte limit for metadata")));
    }
    Ok(bytes)
}

/// A reader over `source`. Streams need the plugin's `session`.
pub(crate) fn open<'a>(
    archive: &'a dyn Archive,
    session: Option<&'a mut Session>,
    source: &'a Source,
) -> Result<Box<dyn Read + 'a>, LoadError> {
    Ok(match source {
        Source::Entry(path) => archive.open(path)?,
        Source::Bytes(bytes) => Box::new(&bytes[..]),
        Source::Input => match archive.input_range() {
            Some(range) => Box::new(io::BufReader::with_capacity(1 << 18, range.reader(0))),
            None => {
                return Err(LoadError::invalid(describe(source), "a directory has no bytes of its own to be a blob"));
            }
        },
        Source::Stream(id) => {
            let session =
                session.ok_or_else(|| LoadError::invalid(describe(source), "a stream cannot be read here"))?;
            Box::new(StreamReader { session, id: *id, chunk: Vec::new(), pos: 0, done: false })
        }
    })
}

/// Turns an I/O error that carries a plugin failure back into it.
pub(crate) fn unwrap_plugin_error(error: io::Error, source: &Source) -> LoadError {
    match error.downcast::<LoadError>() {
        Ok(load_error) => load_error,
        Err(error) => LoadError::Io { what: describe(source), error },
    }
}

/// Pulls a [`Source::Stream`] from the plugin chunk by chunk.
struct StreamReader<'a> {
    session: &'a mut Session,
    id: u32,
    chunk: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for StreamReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.chunk.len() && !self.done {
            let result =
                self.session.read_stream(self.id, STREAM_CHUNK).map_err(|e| io::Error::other(LoadError::from(e)))?;
            let chunk = result.map_err(|error| {
                io::Error::other(LoadError::Decode { plugin: self.session.name().to_string(), error })
            })?;
            if chunk.len() > STREAM_CHUNK as usize {
                return Err(io::Error::other(LoadError::invalid(
                    format!("stream {}", self.id),
                    "the decoder returned more bytes than asked for",
                )));
            }
            self.done = chunk.is_empty();
            self.chunk = chunk;
            self.pos = 0;
        }
        let n = buf.len().min(self.chunk.len() - self.pos);
        buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
