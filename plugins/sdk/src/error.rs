//! Constructors for [`DecodeError`], one per [`ErrorKind`].

use crate::{DecodeError, ErrorKind};

impl DecodeError {
    fn new(kind: ErrorKind, entry: Option<&str>, message: impl Into<String>) -> Self {
        DecodeError { kind, message: message.into(), entry: entry.map(str::to_string) }
    }

    /// The archive is not in this decoder's format.
    pub fn not_this_format(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotThisFormat, None, message)
    }

    /// `entry` is required by the format but absent.
    pub fn missing(entry: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Missing, Some(entry), message)
    }

    /// `entry` is present but malformed.
    pub fn malformed(entry: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, Some(entry), message)
    }

    /// The archive uses something this decoder does not support.
    pub fn unsupported(entry: Option<&str>, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, entry, message)
    }

    /// The host refused a read of `entry`.
    pub fn host(entry: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Host, Some(entry), message)
    }
}
