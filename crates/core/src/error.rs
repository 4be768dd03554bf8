//! The domain's errors and their stable names.
//!
//! Every failure that leaves a function is one of [`ErrorKind`]; its
//! [`ErrorKind::error_type`] is the `Strongroom.*` name that the state machines
//! match in `Retry` and `Catch`. Rust type names never leave the process.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What went wrong, as the state machines see it. In JSON it is its stable
/// name, e.g. `"Strongroom.Throttled"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorKind {
    /// Rate-limited or a transient network fault: retry with backoff.
    #[serde(rename = "Strongroom.Throttled")]
    Throttled,
    /// The resource is not in a state that allows the operation yet.
    #[serde(rename = "Strongroom.NotReady")]
    NotReady,
    /// The request is wrong; the message names the field and the fix.
    #[serde(rename = "Strongroom.InvalidInput")]
    InvalidInput,
    /// The resource does not exist (any more).
    #[serde(rename = "Strongroom.NotFound")]
    NotFound,
    /// An account or service quota is exhausted.
    #[serde(rename = "Strongroom.QuotaExceeded")]
    QuotaExceeded,
    /// The credentials in use are not allowed to do this.
    #[serde(rename = "Strongroom.AccessDenied")]
    AccessDenied,
    /// Anything else: a bug or an AWS error we do not classify.
    #[serde(rename = "Strongroom.Internal")]
    Internal,
}

impl ErrorKind {
    /// The stable error name used by Step Functions `Retry`/`Catch`.
    pub const fn error_type(self) -> &'static str {
        match self {
            Self::Throttled => "Strongroom.Throttled",
            Self::NotReady => "Strongroom.NotReady",
            Self::InvalidInput => "Strongroom.InvalidInput",
            Self::NotFound => "Strongroom.NotFound",
            Self::QuotaExceeded => "Strongroom.QuotaExceeded",
            Self::AccessDenied => "Strongroom.AccessDenied",
            Self::Internal => "Strongroom.Internal",
        }
    }

    /// Whether running the same step again may succeed.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Throttled)
    }

    pub const ALL: [ErrorKind; 7] = [
        Self::Throttled,
        Self::NotReady,
        Self::InvalidInput,
        Self::NotFound,
        Self::QuotaExceeded,
        Self::AccessDenied,
        Self::Internal,
    ];
}

/// Compares with a stable name, as reports and tests write them.
impl PartialEq<&str> for ErrorKind {
    fn eq(&self, other: &&str) -> bool {
        self.error_type() == *other
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.error_type())
    }
}

/// A failed cloud call, classified, with its context and the AWS error code kept.
#[derive(Debug, thiserror::Error)]
#[error("{operation} on {resource} in {region} failed ({kind}{}): {message}", code.as_deref().map(|c| format!(", AWS code {c}")).unwrap_or_default())]
pub struct CloudError {
    pub kind: ErrorKind,
    /// The AWS API operation, e.g. `CreateSnapshot`.
    pub operation: &'static str,
    /// The resource the call was about (id or ARN), or `-` for listings.
    pub resource: Box<str>,
    pub region: Box<str>,
    /// The AWS error code, e.g. `InvalidDBInstanceState`.
    pub code: Option<Box<str>>,
    pub message: String,
    /// The call may have taken effect although it reported a failure: its
    /// answer was lost (a timeout, a dropped connection, a server error). A
    /// create failing this way is never issued again; its result is looked
    /// for instead (see [`crate::backup::snapshot::Outcome::Unconfirmed`]).
    pub unconfirmed: bool,
    #[source]
    pub source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl CloudError {
    pub fn new(
        kind: ErrorKind,
        operation: &'static str,
        resource: impl AsRef<str>,
        region: impl AsRef<str>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            operation,
            resource: resource.as_ref().into(),
            region: region.as_ref().into(),
            code: None,
            message: message.into(),
            unconfirmed: false,
            source: None,
        }
    }

    /// Marks the error as one whose call may have taken effect.
    pub fn unconfirmed(mut self) -> Self {
        self.unconfirmed = true;
        self
    }

    pub fn with_code(mut self, code: impl Into<Box<str>>) -> Self {
        self.code = Some(code.into());
        self
    }
}

/// Errors of the use cases.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input, found before any AWS call. `field` is a dotted path into the input.
    #[error("invalid input at `{field}`: {message}")]
    InvalidInput { field: String, message: String },
    /// A cloud call failed (boxed: it carries its source and context).
    #[error(transparent)]
    Cloud(Box<CloudError>),
    /// A broken promise inside Strongroom itself.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<CloudError> for Error {
    fn from(e: CloudError) -> Self {
        Self::Cloud(Box::new(e))
    }
}

impl Error {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.into(),
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::InvalidInput { .. } => ErrorKind::InvalidInput,
            Self::Cloud(e) => e.kind,
            Self::Internal(_) => ErrorKind::Internal,
        }
    }

    pub fn error_type(&self) -> &'static str {
        self.kind().error_type()
    }
}

/// An error as reported in a run's output: stable type plus a readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorReport {
    pub error_type: ErrorKind,
    pub message: String,
}

impl ErrorReport {
    pub fn new(error_type: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            error_type,
            message: message.into(),
        }
    }
}

impl From<&CloudError> for ErrorReport {
    fn from(e: &CloudError) -> Self {
        Self::new(e.kind, e.to_string())
    }
}

impl From<&Error> for ErrorReport {
    fn from(e: &Error) -> Self {
        Self::new(e.kind(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_stable_and_distinct() {
        let names: Vec<_> = ErrorKind::ALL.iter().map(|k| k.error_type()).collect();
        assert_eq!(
            names,
            [
                "Strongroom.Throttled",
                "Strongroom.NotReady",
                "Strongroom.InvalidInput",
                "Strongroom.NotFound",
                "Strongroom.QuotaExceeded",
                "Strongroom.AccessDenied",
                "Strongroom.Internal"
            ]
        );
        assert!(ErrorKind::Throttled.is_retryable());
        // In JSON an error kind is its stable name.
        for k in ErrorKind::ALL {
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json, serde_json::json!(k.error_type()));
            assert_eq!(serde_json::from_value::<ErrorKind>(json).unwrap(), k);
        }
        assert!(!ErrorKind::InvalidInput.is_retryable());
    }

    #[test]
    fn cloud_error_message_keeps_code_and_context() {
        let e = CloudError::new(
            ErrorKind::NotReady,
            "CreateDBSnapshot",
            "db-1",
            "us-east-1",
            "instance is stopped",
        )
        .with_code("InvalidDBInstanceState");
        let s = e.to_string();
        assert!(s.contains("CreateDBSnapshot on db-1 in us-east-1"), "{s}");
        assert!(s.contains("AWS code InvalidDBInstanceState"), "{s}");
        assert_eq!(ErrorReport::from(&e).error_type, ErrorKind::NotReady);
    }
}
