//! AWS SDK errors -> [`CloudError`], keeping the AWS error code and the source.

use std::fmt::Debug;

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use strongroom_core::{CloudError, ErrorKind};

/// Codes with which AWS refuses a request because of a rate limit: the
/// request was not processed, so it is safe to send again, even a create
/// that has no idempotency token.
const RATE_LIMITED: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "SnapshotCreationPerVolumeRateExceeded",
    "EC2ThrottledException",
    // S3: "Reduce your request rate" (HTTP 503).
    "SlowDown",
];

/// Whether AWS refused the request for its rate, without processing it.
pub fn is_rate_limited(err: &CloudError) -> bool {
    err.code
        .as_deref()
        .is_some_and(|c| RATE_LIMITED.contains(&c))
}

/// Classifies an AWS error code. Codes differ per service; the lists cover
/// EC2, RDS, Redshift, STS and the Resource Groups Tagging API.
pub fn classify(code: &str) -> ErrorKind {
    const TRANSIENT: &[&str] = &[
        "PriorRequestNotComplete",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "Unavailable",
        "InternalError",
        "InternalFailure",
        "InternalServiceException",
    ];
    const ACCESS: &[&str] = &[
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "AuthFailure",
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "ExpiredToken",
        "ExpiredTokenException",
        "OptInRequired",
        "SignatureDoesNotMatch",
        "KMSKeyNotAccessibleFault",
        // Organizations: the account is not in an organization, or not its
        // management account nor a delegated administrator.
        "AWSOrganizationsNotInUseException",
    ];
    if RATE_LIMITED.contains(&code) || TRANSIENT.contains(&code) {
        ErrorKind::Throttled
    } else if ACCESS.contains(&code) {
        ErrorKind::AccessDenied
    } else if code.contains("NotFound")
        || code == "NoSuchKey"
        || code == "NoSuchBucket"
        || code == "NoSuchUpload"
    {
        ErrorKind::NotFound
    } else if code.contains("QuotaExceeded")
        || code.contains("LimitExceeded")
        || code == "ResourceLimitExceeded"
    {
        ErrorKind::QuotaExceeded
    } else if code.contains("State") {
        ErrorKind::NotReady
    } else if code.starts_with("Invalid")
        || code.starts_with("Validation")
        || code.starts_with("Missing")
    {
        ErrorKind::InvalidInput
    } else {
        ErrorKind::Internal
    }
}

/// Converts an SDK error of `operation` on `resource` in `region`.
pub fn from_sdk<E, R>(
    err: SdkError<E, R>,
    operation: &'static str,
    resource: &str,
    region: &str,
) -> CloudError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: Debug + Send + Sync + 'static,
{
    let (kind, code, message) = match &err {
        SdkError::ServiceError(se) => {
            let e = se.err();
            let code: Option<Box<str>> = e.code().map(Into::into);
            let kind = code.as_deref().map(classify).unwrap_or(ErrorKind::Internal);
            (kind, code, e.message().unwrap_or("no message").to_owned())
        }
        // No answer, or none that can be read: the call may have been processed.
        SdkError::TimeoutError(_) => (
            ErrorKind::Throttled,
            None,
            "timed out (transient)".to_owned(),
        ),
        // Credentials that could not be refreshed (an assumed role refused
        // after its first hour, say): the account cannot be reached.
        SdkError::DispatchFailure(_) if credentials_refused(&err) => (
            ErrorKind::AccessDenied,
            None,
            format!(
                "the credentials for this account could not be loaded: {}",
                crate::clients::causes(&err)
            ),
        ),
        SdkError::DispatchFailure(d) => (
            ErrorKind::Throttled,
            None,
            format!("could not reach the service (transient): {d:?}"),
        ),
        SdkError::ResponseError(_) => (
            ErrorKind::Throttled,
            None,
            "unreadable response (transient)".to_owned(),
        ),
        other => (ErrorKind::Internal, None, format!("{other}")),
    };
    let message = match quota_hint(operation, code.as_deref()) {
        Some(hint) if kind == ErrorKind::QuotaExceeded => format!("{message}. {hint}"),
        _ => message,
    };
    // A transient failure that is not a rate limit (a timeout, a lost
    // connection, a server error) leaves the outcome unknown.
    let unconfirmed =
        kind == ErrorKind::Throttled && !code.as_deref().is_some_and(|c| RATE_LIMITED.contains(&c));
    CloudError {
        kind,
        operation,
        resource: resource.into(),
        region: region.into(),
        code,
        message,
        unconfirmed,
        source: Some(Box::new(err)),
    }
}

/// Which quota a create ran into, and what to do about it.
fn quota_hint(operation: &str, code: Option<&str>) -> Option<String> {
    let quota = match (operation, code?) {
        ("CreateDBSnapshot", "SnapshotQuotaExceeded") => {
            "the RDS quota of manual DB snapshots per region (ManualSnapshots, 100 by default)"
        }
        ("CreateDBClusterSnapshot", "SnapshotQuotaExceeded") => {
            "the RDS quota of manual DB cluster snapshots per region (ManualClusterSnapshots, 100 by default)"
        }
        (_, "ClusterSnapshotQuotaExceeded") => {
            "the Redshift quota of manual snapshots per region (20 by default)"
        }
        (_, "SnapshotLimitExceeded") => {
            "the EBS quota of snapshots per region (Service Quotas L-309BACF6, 100,000 by default)"
        }
        _ => return None,
    };
    Some(format!(
        "This is {quota}: delete manual snapshots that no policy keeps, keep fewer recovery \
         points (a shorter retention), or ask AWS for a higher quota (Service Quotas, or the \
         service's limit increase form)"
    ))
}

/// Whether an error comes from credentials that were refused (not from a
/// timeout of the credentials provider, which is transient).
fn credentials_refused(err: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return !matches!(c, CredentialsError::ProviderTimedOut(_));
        }
        next = e.source();
    }
    false
}

/// The AWS error code of an SDK error, if the service sent one.
pub fn code_of<E: ProvideErrorMetadata, R>(err: &SdkError<E, R>) -> Option<&str> {
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ec2::operation::create_snapshot::CreateSnapshotError;
    use aws_smithy_runtime_api::http::{Response, StatusCode};
    use aws_smithy_types::body::SdkBody;
    use aws_smithy_types::error::ErrorMetadata;

    fn service_error(code: &str, status: u16) -> SdkError<CreateSnapshotError, Response> {
        let err = CreateSnapshotError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("from the test")
                .build(),
        );
        SdkError::service_error(
            err,
            Response::new(StatusCode::try_from(status).unwrap(), SdkBody::empty()),
        )
    }

    #[test]
    fn sdk_errors_keep_code_context_and_source() {
        let e = from_sdk(
            service_error("RequestLimitExceeded", 503),
            "CreateSnapshot",
            "vol-1",
            "eu-west-1",
        );
        assert_eq!(e.kind, ErrorKind::Throttled);
        assert_eq!(e.code.as_deref(), Some("RequestLimitExceeded"));
        assert!(
            is_rate_limited(&e) && !e.unconfirmed,
            "a rate limit: not processed"
        );
        let lost = from_sdk(
            service_error("InternalError", 500),
            "CreateSnapshot",
            "vol-1",
            "eu-west-1",
        );
        assert_eq!(lost.kind, ErrorKind::Throttled);
        assert!(
            lost.unconfirmed && !is_rate_limited(&lost),
            "a server error: outcome unknown"
        );
        assert_eq!(e.message, "from the test");
        assert!(
            std::error::Error::source(&e).is_some(),
            "the SDK error is kept as the source"
        );
        let text = e.to_string();
        assert!(
            text.contains("CreateSnapshot on vol-1 in eu-west-1")
                && text.contains("RequestLimitExceeded"),
            "{text}"
        );

        let e = from_sdk(
            service_error("IncorrectState", 400),
            "CreateSnapshot",
            "vol-1",
            "eu-west-1",
        );
        assert_eq!(e.kind.error_type(), "Strongroom.NotReady");
        assert_eq!(
            code_of(&service_error("X.NotFound", 400)),
            Some("X.NotFound")
        );
    }

    #[test]
    fn a_quota_failure_names_the_quota_and_the_fix() {
        let e = from_sdk(
            service_error("SnapshotQuotaExceeded", 400),
            "CreateDBClusterSnapshot",
            "ledger",
            "eu-west-1",
        );
        assert_eq!(e.kind, ErrorKind::QuotaExceeded);
        assert!(
            e.message.contains("ManualClusterSnapshots") && e.message.contains("higher quota"),
            "{}",
            e.message
        );
        let e = from_sdk(
            service_error("SnapshotLimitExceeded", 400),
            "CreateSnapshots",
            "i-1",
            "eu-west-1",
        );
        assert!(e.message.contains("L-309BACF6"), "{}", e.message);
    }

    #[test]
    fn codes_map_to_stable_kinds() {
        let cases = [
            ("Throttling", ErrorKind::Throttled),
            ("RequestLimitExceeded", ErrorKind::Throttled),
            (
                "SnapshotCreationPerVolumeRateExceeded",
                ErrorKind::Throttled,
            ),
            ("SnapshotQuotaExceeded", ErrorKind::QuotaExceeded),
            ("ClusterSnapshotQuotaExceeded", ErrorKind::QuotaExceeded),
            ("ResourceLimitExceeded", ErrorKind::QuotaExceeded),
            ("SnapshotLimitExceeded", ErrorKind::QuotaExceeded),
            ("UnauthorizedOperation", ErrorKind::AccessDenied),
            ("AccessDenied", ErrorKind::AccessDenied),
            ("InvalidVolume.NotFound", ErrorKind::NotFound),
            ("DBInstanceNotFound", ErrorKind::NotFound),
            ("ClusterNotFound", ErrorKind::NotFound),
            ("InvalidDBInstanceState", ErrorKind::NotReady),
            ("InvalidClusterState", ErrorKind::NotReady),
            ("IncorrectState", ErrorKind::NotReady),
            ("InvalidParameterValue", ErrorKind::InvalidInput),
            ("InvalidParameterCombination", ErrorKind::InvalidInput),
            ("SomethingNew", ErrorKind::Internal),
        ];
        for (code, kind) in cases {
            assert_eq!(classify(code), kind, "{code}");
        }
    }
}
