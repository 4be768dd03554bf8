//! What every Strongroom Lambda shares: the runtime loop with logging set up
//! ([`run`], [`run_with`]), typed input parsing that names the failing field,
//! and the mapping of errors to a [`Diagnostic`] whose `error_type` is a
//! stable `Strongroom.*` name.
//!
//! A function's `main` is one line of wiring:
//!
//! ```text
//! #[tokio::main]
//! async fn main() -> Result<(), strongroom_lambda::Error> {
//!     strongroom_lambda::run_with(strongroom_aws::AwsCloud::from_env(), handler::handle).await
//! }
//! ```

use std::fmt;
use std::future::Future;
use std::sync::Once;

use lambda_runtime::{service_fn, Diagnostic, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use strongroom_core::policy::parse_with_path;
use strongroom_core::ports::Identity;

/// The runtime's error: what [`run`] returns when the Lambda Runtime API fails.
pub use lambda_runtime::Error;

/// Installs the runtime's own subscriber once per process: JSON lines when
/// Lambda's `AWS_LAMBDA_LOG_FORMAT` is `JSON`, plain text otherwise; the level
/// from `AWS_LAMBDA_LOG_LEVEL`, else `RUST_LOG`, else `INFO`.
fn init_tracing() {
    static INIT: Once = Once::new();
    INIT.call_once(lambda_runtime::tracing::init_default_subscriber);
}

/// Serves `handler` on the Lambda Runtime API until the runtime fails, and
/// returns that failure. Logging is set up first. The handler gets each
/// event's payload; its error goes back to Lambda as a [`Diagnostic`].
pub async fn run<F, Fut, O>(handler: F) -> Result<(), Error>
where
    F: Fn(Value) -> Fut,
    Fut: Future<Output = Result<O, FunctionError>>,
    O: Serialize,
{
    init_tracing();
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        handler(event.payload)
    }))
    .await
}

/// [`run`] for a handler that needs the cloud: sets up logging, then awaits
/// `state` (so whatever it logs is kept), then serves `handler(payload,
/// &state)`. Each event's invoked function ARN tells the state its home
/// account ([`Identity::learn_home_account`]), sparing an STS call. The state
/// lives as long as the process, so it is leaked to `'static` rather than borrowed.
pub async fn run_with<S, StateFut, F, Fut, O>(state: StateFut, handler: F) -> Result<(), Error>
where
    StateFut: Future<Output = S>,
    S: Identity + 'static,
    F: Fn(Value, &'static S) -> Fut,
    Fut: Future<Output = Result<O, FunctionError>>,
    O: Serialize,
{
    init_tracing();
    let state: &'static S = Box::leak(Box::new(state.await));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        if let Some(account) = arn_account(&event.context.invoked_function_arn) {
            state.learn_home_account(account);
        }
        handler(event.payload, state)
    }))
    .await
}

/// The account of an ARN (`arn:aws:lambda:REGION:ACCOUNT:function:NAME`):
/// twelve digits, or nothing.
fn arn_account(arn: &str) -> Option<&str> {
    let account = arn.split(':').nth(4)?;
    (account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())).then_some(account)
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
    fn accounts_come_from_function_arns_only_when_well_formed() {
        assert_eq!(
            arn_account("arn:aws:lambda:eu-west-1:210987654321:function:discover"),
            Some("210987654321")
        );
        for bad in [
            "",
            "arn:aws:lambda:eu-west-1::function:x",
            "arn:aws:lambda:r:12345:function:x",
            "nope",
        ] {
            assert_eq!(arn_account(bad), None, "{bad}");
        }
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

    /// A Lambda Runtime API on loopback that hands out `events` in order, records
    /// what the function posts back, then drops the connection of the next poll.
    struct FakeRuntimeApi {
        addr: String,
        posts: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
    }

    impl FakeRuntimeApi {
        fn start(events: Vec<serde_json::Value>) -> Self {
            use std::io::{BufRead, BufReader, Read, Write};
            use std::sync::{Arc, Mutex};

            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap().to_string();
            let posts = Arc::new(Mutex::new(Vec::new()));
            let events = Arc::new(Mutex::new(events.into_iter().enumerate()));
            let recorded = Arc::clone(&posts);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let (events, posts) = (Arc::clone(&events), Arc::clone(&recorded));
                    std::thread::spawn(move || {
                        let mut stream = stream.unwrap();
                        let mut reader = BufReader::new(stream.try_clone().unwrap());
                        loop {
                            let mut request_line = String::new();
                            if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                                return;
                            }
                            let mut length = 0;
                            loop {
                                let mut header = String::new();
                                reader.read_line(&mut header).unwrap();
                                if header.trim().is_empty() {
                                    break;
                                }
                                if let Some((name, value)) = header.split_once(':') {
                                    if name.eq_ignore_ascii_case("content-length") {
                                        length = value.trim().parse().unwrap();
                                    }
                                }
                            }
                            let mut body = vec![0; length];
                            reader.read_exact(&mut body).unwrap();
                            let path = request_line.split(' ').nth(1).unwrap().to_owned();
                            let response = if path.ends_with("/invocation/next") {
                                let Some((i, event)) = events.lock().unwrap().next() else {
                                    return; // no more events: the poll fails
                                };
                                let body = event.to_string();
                                format!(
                                    "HTTP/1.1 200 OK\r\nLambda-Runtime-Aws-Request-Id: req-{i}\r\n\
                                     Lambda-Runtime-Invoked-Function-Arn: \
                                     arn:aws:lambda:eu-west-1:210987654321:function:test\r\n\
                                     Lambda-Runtime-Deadline-Ms: 9999999999999\r\n\
                                     Content-Length: {}\r\n\r\n{body}",
                                    body.len()
                                )
                            } else {
                                let body = serde_json::from_slice(&body).unwrap();
                                posts.lock().unwrap().push((path, body));
                                "HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n".to_owned()
                            };
                            stream.write_all(response.as_bytes()).unwrap();
                        }
                    });
                }
            });
            Self { addr, posts }
        }
    }

    #[tokio::test]
    async fn run_with_answers_every_event_then_returns_the_runtime_error() {
        let api = FakeRuntimeApi::start(vec![
            serde_json::json!({"a": 1}),
            serde_json::json!({"a": "x"}),
        ]);
        for (name, value) in [
            ("AWS_LAMBDA_RUNTIME_API", api.addr.as_str()),
            ("AWS_LAMBDA_FUNCTION_NAME", "test"),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            ("AWS_LAMBDA_LOG_LEVEL", "off"),
        ] {
            std::env::set_var(name, value);
        }

        /// A state that records the account it is told.
        struct State(std::sync::Mutex<Option<String>>);
        impl Identity for State {
            async fn home_account(&self) -> Result<String, strongroom_core::CloudError> {
                Ok(self.0.lock().unwrap().clone().unwrap_or_default())
            }
            fn learn_home_account(&self, account: &str) {
                *self.0.lock().unwrap() = Some(account.to_owned());
            }
        }
        // Shaped like the functions' handlers: generic over the state, by reference.
        async fn add<I: Identity>(
            payload: serde_json::Value,
            s: &I,
        ) -> Result<serde_json::Value, FunctionError> {
            let input: In = parse(payload)?;
            let account = s
                .home_account()
                .await
                .map_err(|e| FunctionError(e.into()))?;
            Ok(serde_json::json!({"sum": input.a + 10, "account": account}))
        }
        let result = run_with(async { State(Default::default()) }, add).await;

        assert!(
            result.is_err(),
            "the failed poll must come back as an error"
        );
        let posts = api.posts.lock().unwrap().clone();
        assert_eq!(posts.len(), 2, "{posts:?}");
        assert_eq!(posts[0].0, "/2018-06-01/runtime/invocation/req-0/response");
        // The handler saw the account of the invoked function's ARN.
        assert_eq!(
            posts[0].1,
            serde_json::json!({"sum": 11, "account": "210987654321"})
        );
        assert_eq!(posts[1].0, "/2018-06-01/runtime/invocation/req-1/error");
        assert_eq!(posts[1].1["errorType"], "Strongroom.InvalidInput");
    }
}
