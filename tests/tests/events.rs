//! Every ready input in `events/` parses as the input of its function or state
//! machine; every `invalid-*` one fails with `Strongroom.InvalidInput` naming a field.

use std::path::Path;

use strongroom_core::backup::discover::{discover, Batch, DiscoverRequest};
use strongroom_core::backup::snapshot::BatchResult;
use strongroom_core::fake::MemoryCloud;
use strongroom_core::policy::RunInput;
use strongroom_core::report::ReportRun;
use strongroom_core::Error;
use strongroom_lambda::parse;
use strongroom_tests::workspace;

async fn check(dir: &str, value: serde_json::Value) -> Result<(), Error> {
    match dir {
        "backup" => RunInput::parse(value).map(|_| ()),
        "discover" => {
            let req: DiscoverRequest = parse(value).map_err(|e| e.0)?;
            discover(req, &MemoryCloud::new()).await.map(|_| ())
        }
        "snapshot" => parse::<Batch>(value)
            .map_err(|e| e.0)?
            .validate(time::OffsetDateTime::now_utc()),
        "status" => parse::<BatchResult>(value)
            .map_err(|e| e.0)?
            .validate(time::OffsetDateTime::now_utc()),
        "prune" => strongroom_core::prune::parse_request(value, time::OffsetDateTime::now_utc())
            .map(|_| ()),
        "report" => {
            let req: ReportRun = parse(value).map_err(|e| e.0)?;
            req.files.validate(&req.run, "files")
        }
        "restore" => {
            strongroom_core::restore::RestoreRequest::parse(value, time::OffsetDateTime::now_utc())
                .map(|_| ())
        }
        // The restore function's step inputs (the state machine writes them).
        "restore-step" => {
            use strongroom_core::restore::run::StepInput;
            match parse::<StepInput>(value).map_err(|e| e.0)? {
                StepInput::Validate { request, .. } => {
                    strongroom_core::restore::RestoreRequest::parse(
                        request,
                        time::OffsetDateTime::now_utc(),
                    )
                    .map(|_| ())
                }
                StepInput::Start { state }
                | StepInput::Check { state }
                | StepInput::CopyFiles { state }
                | StepInput::Finalize { state }
                | StepInput::CleanUp { state, .. } => {
                    state.validate(time::OffsetDateTime::now_utc())
                }
            }
        }
        "copy" => parse::<strongroom_core::copy::CopyRequest>(value)
            .map_err(|e| e.0)?
            .validate(time::OffsetDateTime::now_utc()),
        other => panic!("events/{other}/ has no known input type: add it to this test"),
    }
}

#[tokio::test]
async fn every_event_parses_and_every_invalid_one_names_its_field() {
    let root = workspace().join("events");
    let mut seen = 0;
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .expect("events/")
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let value: serde_json::Value =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let invalid = file
                .file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("invalid-");
            let res = check(&name, value).await;
            match (invalid, res) {
                (false, Ok(())) => {}
                (false, Err(e)) => panic!("{} should parse: {e}", rel(&file)),
                (true, Ok(())) => panic!("{} should be rejected", rel(&file)),
                (true, Err(Error::InvalidInput { field, message })) => {
                    assert!(!field.is_empty() && !message.is_empty(), "{}", rel(&file));
                }
                (true, Err(e)) => panic!(
                    "{} failed with {} instead of InvalidInput",
                    rel(&file),
                    e.error_type()
                ),
            }
            seen += 1;
        }
    }
    assert!(seen >= 17, "only {seen} event files found");
}

fn rel(p: &Path) -> String {
    p.strip_prefix(workspace())
        .unwrap_or(p)
        .display()
        .to_string()
}
