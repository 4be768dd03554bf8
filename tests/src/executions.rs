//! Running the backup state machine in the emulator: create it, start an
//! execution, wait for its end, read its run report.

use std::time::{Duration, Instant};

use serde_json::Value;
use strongroom_core::report::{RunReport, RunSummary, SUMMARY_FAILURES};

use crate::{backup_definition, deployed_restore_definition, Emulator, ACCOUNT};

pub struct Execution {
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
}

pub async fn sfn(emu: &Emulator) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&emu.harness_config().await)
}

pub async fn backup_machine(sfn: &aws_sdk_sfn::Client) -> String {
    machine_of(sfn, "strongroom-backup", backup_definition()).await
}

/// The restore state machine as the stack deploys it.
pub async fn restore_machine(sfn: &aws_sdk_sfn::Client) -> String {
    machine_of(sfn, "strongroom-restore", deployed_restore_definition()).await
}

pub async fn machine_of(sfn: &aws_sdk_sfn::Client, name: &str, definition: String) -> String {
    sfn.create_state_machine()
        .name(name)
        .definition(definition)
        .role_arn(format!("arn:aws:iam::{ACCOUNT}:role/strongroom-backup"))
        .send()
        .await
        .expect("create the state machine")
        .state_machine_arn()
        .to_owned()
}

pub async fn execute(
    emu: &Emulator,
    sfn: &aws_sdk_sfn::Client,
    machine: &str,
    name: &str,
    input: &Value,
) -> Execution {
    let arn = sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .expect("start the execution")
        .execution_arn()
        .to_owned();
    let started = Instant::now();
    loop {
        let d = sfn
            .describe_execution()
            .execution_arn(&arn)
            .send()
            .await
            .expect("describe the execution");
        let status = d.status().as_str().to_owned();
        if status != "RUNNING" {
            return Execution {
                status,
                output: d
                    .output()
                    .map(|o| serde_json::from_str(o).expect("output is JSON")),
                error: d.error().map(str::to_owned),
                cause: d.cause().map(str::to_owned),
            };
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "execution {name} still running after 180 s; snapshot log:\n{}\nrestore log:\n{}",
            emu.function_log("snapshot"),
            emu.function_log("restore")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The run report of a succeeded execution: its output is the summary, the
/// whole report is in the stack's bucket, and the two agree.
pub async fn report(e: &Execution, emu: &Emulator) -> RunReport {
    assert_eq!(
        e.status,
        "SUCCEEDED",
        "error {:?} cause {:?}\ndiscover log:\n{}",
        e.error,
        e.cause,
        emu.function_log("discover")
    );
    let summary: RunSummary = serde_json::from_value(e.output.clone().expect("an output"))
        .expect("the output is a run summary");
    let r = emu.run_report(&summary).await;
    assert_eq!(summary, RunSummary::new(&r, summary.report.clone()));
    assert!(summary.first_failures.len() <= SUMMARY_FAILURES);
    assert_eq!(
        summary.report.key,
        format!("runs/{}/{}/report.json", r.run.policy, r.run.execution)
    );
    r
}
