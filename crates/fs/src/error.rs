//! What can go wrong reading a disk, with the path it happened at.

use std::fmt;

/// A failure of the block source itself (the disk, not the filesystem on it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceError {
    /// A read past the end of the disk: a filesystem that points outside its
    /// device is damaged.
    OutOfRange { offset: u64, len: u64, size: u64 },
    /// The source refused access (for a snapshot: not readable by the caller).
    AccessDenied(String),
    /// The source does not exist (for a snapshot: no such snapshot here).
    NotFound(String),
    /// A block's content does not match its checksum.
    Checksum { block: u64, detail: String },
    /// More blocks would be fetched than the read's budget allows.
    Budget { limit: u64 },
    /// The source kept throttling after every retry.
    Throttled(String),
    /// Anything else (I/O, network).
    Other(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { offset, len, size } => write!(
                f,
                "a read of {len} bytes at {offset} goes past the end of the disk ({size} bytes)"
            ),
            Self::AccessDenied(m) => write!(f, "access denied: {m}"),
            Self::NotFound(m) => write!(f, "not found: {m}"),
            Self::Checksum { block, detail } => {
                write!(f, "block {block} does not match its checksum: {detail}")
            }
            Self::Budget { limit } => write!(
                f,
                "the read needs more than {limit} blocks, the most one read may fetch"
            ),
            Self::Throttled(m) => write!(f, "throttled: {m}"),
            Self::Other(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SourceError {}

/// An error of a filesystem operation. Each names the path it concerns.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path does not exist (or a glob matched nothing).
    #[error("{path}: no such file or directory")]
    NotFound { path: String },
    /// A directory was needed.
    #[error("{path}: not a directory")]
    NotADirectory { path: String },
    /// A regular file was needed.
    #[error("{path}: not a regular file (it is {kind})")]
    NotAFile { path: String, kind: &'static str },
    /// The disk holds something Strongroom cannot read (LVM, LUKS, btrfs, an
    /// unformatted volume...), or a filesystem feature no reader supports.
    #[error("{0}")]
    Unsupported(String),
    /// The request itself is wrong (a malformed path, a partition that does
    /// not exist).
    #[error("{0}")]
    InvalidInput(String),
    /// The filesystem is damaged where the path led.
    #[error("{path}: the filesystem is damaged: {detail}")]
    Corrupt { path: String, detail: String },
    /// A bound on the work one request may do was reached (entries listed,
    /// depth, symlinks followed).
    #[error("{path}: {what}")]
    Limit { path: String, what: String },
    /// The disk could not be read.
    #[error("{path}: reading the disk failed: {source}")]
    Source { path: String, source: SourceError },
    /// The restored copy could not be written.
    #[error("{path}: {detail}")]
    Output { path: String, detail: String },
}

impl FsError {
    /// The Strongroom error name for this error: what a retry can change
    /// (`Throttled`, `Internal`) apart from what it cannot (a damaged or
    /// unsupported disk is the input's, so `InvalidInput`).
    pub fn error_name(&self) -> &'static str {
        match self {
            Self::NotFound { .. } => "Strongroom.NotFound",
            Self::Source { source, .. } => match source {
                SourceError::NotFound(_) => "Strongroom.NotFound",
                SourceError::AccessDenied(_) => "Strongroom.AccessDenied",
                SourceError::Throttled(_) => "Strongroom.Throttled",
                SourceError::OutOfRange { .. } | SourceError::Budget { .. } => {
                    "Strongroom.InvalidInput"
                }
                SourceError::Checksum { .. } | SourceError::Other(_) => "Strongroom.Internal",
            },
            Self::Output { .. } => "Strongroom.Internal",
            Self::NotADirectory { .. }
            | Self::NotAFile { .. }
            | Self::Unsupported(_)
            | Self::InvalidInput(_)
            | Self::Corrupt { .. }
            | Self::Limit { .. } => "Strongroom.InvalidInput",
        }
    }
}

pub type Result<T, E = FsError> = std::result::Result<T, E>;
