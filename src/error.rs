//! The one error type of seqtail, and the exit code each kind of failure maps to.

use std::fmt;

/// Everything that can go wrong, grouped by what the operator has to do about it.
///
/// Each variant maps to one exit code of DESIGN.md §5 via [`Error::exit_code`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Unknown flag, missing value, unknown command (exit 64).
    Usage(String),
    /// A value that parsed but makes no sense, an unreadable secret, bad TLS material (exit 78).
    Config(String),
    /// OpenSearch could not be reached or kept failing with a retryable status (exit 69).
    Unavailable { what: String, detail: String },
    /// OpenSearch answered with an error status that retrying will not fix (exit 70).
    OpenSearch {
        what: String,
        status: u16,
        error_type: String,
        reason: String,
    },
    /// The stored offsets describe another stream or are unreadable (exit 65).
    Offsets(String),
    /// Another run owns the shards, or ownership was lost at commit (exit 75).
    Conflict(String),
    /// The sink did not accept a batch; that batch is not committed (exit 1).
    Sink(String),
    /// `produce` could not write some input: a malformed line or rejected documents (exit 1).
    Input(String),
    /// `health` found the group outside its limits (exit 1).
    Unhealthy(String),
    /// A bug or an impossible answer (exit 70).
    Internal(String),
}

impl Error {
    /// The process exit code documented for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 64,
            Error::Config(_) => 78,
            Error::Unavailable { .. } => 69,
            Error::OpenSearch { .. } => 70,
            Error::Offsets(_) => 65,
            Error::Conflict(_) => 75,
            Error::Sink(_) => 1,
            Error::Input(_) => 1,
            Error::Unhealthy(_) => 1,
            Error::Internal(_) => 70,
        }
    }

    /// The OpenSearch status code, when the error came from an HTTP answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::OpenSearch { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The OpenSearch error `type`, when there is one.
    pub fn error_type(&self) -> Option<&str> {
        match self {
            Error::OpenSearch { error_type, .. } => Some(error_type),
            _ => None,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "usage: {m} (see `seqtail --help`)"),
            Error::Config(m) => write!(f, "configuration: {m}"),
            Error::Unavailable { what, detail } => write!(
                f,
                "OpenSearch unavailable while trying to {what}: {detail}; check --url, the network \
                 and the cluster health, or raise --retry-timeout"
            ),
            Error::OpenSearch {
                what,
                status,
                error_type,
                reason,
            } => write!(
                f,
                "OpenSearch refused to {what}: HTTP {status} {error_type}: {reason}"
            ),
            Error::Offsets(m) => write!(f, "stored offsets unusable: {m}"),
            Error::Conflict(m) => write!(f, "ownership conflict: {m}"),
            Error::Sink(m) => write!(f, "sink failed: {m}; the batch was not committed"),
            Error::Unhealthy(m) => write!(f, "unhealthy: {m}"),
            Error::Input(m) => write!(f, "not all input was written: {m}"),
            Error::Internal(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Shorthand used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
