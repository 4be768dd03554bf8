//! What every Strongroom Lambda shares: logging setup, typed input parsing
//! that names the failing field, and the mapping of errors to a
//! [`Diagnostic`] whose `error_type` is a stable `Strongroom.*` name.

use std::fmt;

use lambda_runtime::Diagnostic;
use serde::de::DeserializeOwned;
use strongroom_core::policy::parse_with_path;

/// Sets up logging once per process: JSON lines when Lambda's
/// `AWS_LAMBDA_LOG_FORMAT` is `JSON` (or `STRONGROOM_LOG_FORMAT=json`), plain text
/// otherwise; the level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let json = ["AWS_LAMBDA_LOG_FORMAT", "STRONGROOM_LOG_FORMAT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|f| f.eq_ignore_ascii_case("json")));
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned())
        .to_ascii_lowercase();
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .without_time()
        .with_target(false);
    if json {
        builder.json().with_current_span(false).init();
    } else {
        builder.init();
    }
}

/// A handler's error: a core error that leaves the process as a [`Diagnostic`].
#[derive(Debug)]
pub struct FunctionError(pub strongroom_core::Error);

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<strongroom_core::Error> for FunctionError {
    fn from(e: strongroom_core::Error) -> Self {
        Self(e)
    }
}

impl From<FunctionError> for Diagnostic {
    fn from(e: FunctionError) -> Self {
        tracing::error!(error_type = e.0.error_type(), error = %e.0, "invocation failed");
        Diagnostic {
            error_type: e.0.error_type().to_owned(),
            error_message: e.0.to_string(),
        }
    }
}

/// Parses an event into the handler's input type, naming the failing field.
pub fn parse<T: DeserializeOwned>(payload: serde_json::Value) -> Result<T, FunctionError> {
    Ok(parse_with_path(payload, "")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct In {
        a: u32,
    }

    #[test]
    fn bad_input_becomes_invalid_input_naming_the_field() {
        let e = parse::<In>(serde_json::json!({"a": "x"})).unwrap_err();
        let d: Diagnostic = e.into();
        assert_eq!(d.error_type, "Strongroom.InvalidInput");
        assert!(d.error_message.contains("`a`"), "{}", d.error_message);
    }

    #[test]
    fn cloud_errors_keep_their_stable_name() {
        let e = strongroom_core::CloudError::new(
            strongroom_core::ErrorKind::Throttled,
            "GetResources",
            "-",
            "us-east-1",
            "Rate exceeded",
        );
        let d: Diagnostic = FunctionError(e.into()).into();
        assert_eq!(d.error_type, "Strongroom.Throttled");
        assert!(!d.error_message.contains("strongroom_core"));
    }
}
