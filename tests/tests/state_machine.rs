//! The backup state machine, run by the emulator's Step Functions interpreter
//! with the real function binaries behind its Lambda tasks.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use strongroom_core::model::ResourceType;
use strongroom_core::report::RunOutcome;
use strongroom_tests::executions::{backup_machine, execute, machine_of, report, sfn};
use strongroom_tests::{
    backup_definition, deployed_backup_definition, workspace, Emulator, Manifest, ACCOUNT,
    RUNS_BUCKET,
};

/// The shipped scheduled input, with completion checks every 0 s.
fn scheduled_input() -> Value {
    let text = std::fs::read_to_string(workspace().join("events/backup/scheduled.json")).unwrap();
    let mut v: Value = serde_json::from_str(&text).unwrap();
    v["poll_seconds"] = json!(0);
    v
}

fn sum(m: &std::collections::BTreeMap<ResourceType, usize>) -> usize {
    m.values().sum()
}

#[tokio::test]
async fn a_scheduled_run_protects_every_selected_source_once() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;

    let first = execute(&emu, &sfn, &machine, "daily-1", &scheduled_input()).await;
    let r = report(&first, &emu).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{r:?}");
    assert_eq!(r.run.execution, "daily-1");
    assert_eq!(
        strongroom_core::model::format_time(r.run.scheduled_time),
        "2026-11-29T03:00:00Z"
    );
    let per_type = |n| {
        ResourceType::ALL
            .iter()
            .map(|t| (*t, n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // Two regions, each: 1 instance, 1 volume, 2 RDS, 1 Aurora, 1 Redshift.
    let mut found = per_type(2);
    found.insert(ResourceType::RdsInstance, 4);
    assert_eq!(r.resources_found, found);
    assert_eq!(r.recovery_points.created, found);
    assert_eq!(r.recovery_points.completed, found);
    assert!(r.failures.is_empty(), "{:?}", r.failures);
    assert_eq!(r.skipped, 2);
    assert_eq!(r.recovery_point_ids.len(), 12);
    // Discover and Prune learn their account from the invoked function's ARN, not from STS.
    let calls = emu.strongroom_calls();
    assert!(!calls.contains_key("sts:GetCallerIdentity"), "{calls:?}");
    // The Prune stage ran after the snapshots: one recovery point per source, all kept.
    let prune = r.prune.as_ref().expect("a prune summary");
    assert!(!prune.dry_run);
    assert_eq!(
        (prune.deleted, prune.kept, prune.failed),
        (0, 12, 0),
        "{prune:?}"
    );

    let points = emu.recovery_points().await;
    let ours = points
        .iter()
        .filter(|p| p.tags.get("strongroom:run").map(String::as_str) == Some("daily-1"))
        .count();
    // 2 instances x 3 volumes + 2 volumes + 4 RDS + 2 Aurora + 2 Redshift.
    assert_eq!(ours, 16, "{points:?}");

    // The same scheduled time again under another execution name: nothing new.
    let second = execute(&emu, &sfn, &machine, "daily-1-rerun", &scheduled_input()).await;
    let r2 = report(&second, &emu).await;
    assert_eq!(r2.outcome, RunOutcome::Succeeded);
    assert_eq!(sum(&r2.recovery_points.created), 0, "{r2:?}");
    assert_eq!(r2.recovery_points.existing, found);
    assert_eq!(r2.recovery_point_ids, r.recovery_point_ids);
    assert_eq!(
        emu.recovery_points().await,
        points,
        "a re-run changes nothing"
    );
}

#[tokio::test]
async fn bad_input_fails_fast_and_changes_nothing() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;
    let before = emu.recovery_points().await;
    emu.reset_calls();
    for (file, field) in [
        ("invalid-empty-selector.json", "policy.selector.tags"),
        (
            "invalid-unknown-type.json",
            "policy.selector.resource_types[1]",
        ),
    ] {
        let text = std::fs::read_to_string(workspace().join("events/backup").join(file)).unwrap();
        let input: Value = serde_json::from_str(&text).unwrap();
        let e = execute(&emu, &sfn, &machine, &format!("bad-{}", file.len()), &input).await;
        assert_eq!(e.status, "FAILED", "{file}");
        assert_eq!(
            e.error.as_deref(),
            Some("Strongroom.InvalidInput"),
            "{file}: {:?}",
            e.cause
        );
        let cause = e.cause.unwrap_or_default();
        assert!(
            cause.contains(field),
            "{file}: the cause names {field}: {cause}"
        );
    }
    let calls: Vec<_> = emu
        .calls()
        .into_iter()
        .filter(|c| c.client == "strongroom")
        .collect();
    assert!(calls.is_empty(), "no AWS call on bad input: {calls:?}");
    assert_eq!(emu.recovery_points().await, before);
}

#[tokio::test]
async fn one_failing_resource_is_reported_and_the_run_goes_on() {
    // moto refuses new DB snapshots once a region holds MOTO_RDS_SNAPSHOT_LIMIT
    // of them (AWS: SnapshotQuotaExceeded). Each test region holds 3 automated
    // snapshots after seeding, so the limit of 4 lets exactly one of the two
    // selected RDS instances per region be snapshotted.
    let emu = Emulator::start_with_env(&[("MOTO_RDS_SNAPSHOT_LIMIT", "4")]);
    let _ = emu.seed("test");
    let conf = emu.harness_config().await;
    let rds = aws_sdk_rds::Client::new(&conf);
    assert_eq!(
        rds.describe_db_snapshots()
            .send()
            .await
            .unwrap()
            .db_snapshots()
            .len(),
        3,
        "seeded automated snapshots"
    );
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;
    let e = execute(&emu, &sfn, &machine, "daily-quota", &scheduled_input()).await;
    let r = report(&e, &emu).await;
    assert_eq!(r.outcome, RunOutcome::Partial, "{r:?}");
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    for f in &r.failures {
        assert_eq!(f.resource_type, Some(ResourceType::RdsInstance));
        assert_eq!(f.error_type, "Strongroom.QuotaExceeded", "{f:?}");
        assert!(
            f.message.contains("SnapshotQuotaExceeded"),
            "the AWS code is kept: {}",
            f.message
        );
    }
    assert_eq!(sum(&r.recovery_points.completed), 10);
    assert_eq!(
        r.recovery_points.failed.get(&ResourceType::RdsInstance),
        Some(&2)
    );
}

#[tokio::test]
async fn the_prune_stage_applies_the_retention_after_each_run() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;
    let mut input = scheduled_input();
    input["policy"]["retention"] = json!({"keep_last": 1});
    input["scheduled_time"] = json!("2026-11-28T03:00:00Z");
    let first = report(
        &execute(&emu, &sfn, &machine, "daily-28", &input).await,
        &emu,
    )
    .await;
    assert_eq!(first.prune.as_ref().unwrap().deleted, 0);

    // Dry run of the next day: reports the 12 older points, deletes none.
    input["scheduled_time"] = json!("2026-11-29T03:00:00Z");
    input["prune_dry_run"] = json!(true);
    let dry = report(
        &execute(&emu, &sfn, &machine, "daily-29-dry", &input).await,
        &emu,
    )
    .await;
    let p = dry.prune.as_ref().unwrap();
    assert!(p.dry_run);
    assert_eq!(p.deleted, 12, "{p:?}");
    let points = emu.recovery_points().await;
    assert_eq!(
        points
            .iter()
            .filter(|f| f.tags.get("strongroom:created-at").map(String::as_str)
                == Some("2026-11-28T03:00:00Z"))
            .count(),
        16
    );

    // For real (the same scheduled time: its snapshots exist already, the old ones go).
    input["prune_dry_run"] = json!(false);
    let real = report(
        &execute(&emu, &sfn, &machine, "daily-29", &input).await,
        &emu,
    )
    .await;
    assert_eq!(sum(&real.recovery_points.created), 0);
    let p = real.prune.as_ref().unwrap();
    assert_eq!((p.deleted, p.kept), (12, 12), "{p:?}");
    let mut deleted = p.deleted_ids.clone();
    deleted.sort();
    let mut planned = dry.prune.as_ref().unwrap().deleted_ids.clone();
    planned.sort();
    assert_eq!(
        deleted, planned,
        "the dry run planned exactly what was deleted"
    );
    let left = emu.recovery_points().await;
    assert!(left
        .iter()
        .all(|f| f.tags.get("strongroom:created-at").map(String::as_str)
            != Some("2026-11-28T03:00:00Z")));
    assert_eq!(left.len(), 16);
}

/// Every task that retries Lambda's transient errors retries all of them,
/// including a client-side execution timeout (AWS Step Functions' list of
/// Lambda errors to retry).
#[test]
fn lambda_tasks_retry_every_transient_lambda_error() {
    fn walk(v: &Value, found: &mut Vec<Vec<String>>) {
        match v {
            Value::Object(m) => {
                // One list per task: the errors all of its retriers cover.
                if let Some(Value::Array(retries)) = m.get("Retry") {
                    let names = retries
                        .iter()
                        .flat_map(|r| r["ErrorEquals"].as_array().unwrap().iter())
                        .map(|e| e.as_str().unwrap().to_owned())
                        .collect();
                    found.push(names);
                }
                m.values().for_each(|v| walk(v, found));
            }
            Value::Array(a) => a.iter().for_each(|v| walk(v, found)),
            _ => {}
        }
    }
    let asl: Value = serde_json::from_str(&backup_definition()).unwrap();
    let mut retries = Vec::new();
    walk(&asl, &mut retries);
    let lambda: Vec<_> = retries
        .iter()
        .filter(|r| r.iter().any(|e| e.starts_with("Lambda.")))
        .collect();
    // Discover, Snapshot, Status, Copy, Prune, Report.
    assert_eq!(lambda.len(), 6, "{retries:?}");
    for r in lambda {
        for e in [
            "Lambda.ServiceException",
            "Lambda.AWSLambdaException",
            "Lambda.SdkClientException",
            "Lambda.TooManyRequestsException",
            "Lambda.ClientExecutionTimeoutException",
        ] {
            assert!(r.iter().any(|x| x == e), "{e} missing from {r:?}");
        }
    }
    // Snapshot's retry after a Lambda error waits for EC2 describes to show
    // what the failed attempt may have created (its lookup must see it).
    let snapshot = &asl["States"]["SnapshotBatches"]["ItemProcessor"]["States"]["Snapshot"];
    let after_lambda_error = snapshot["Retry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["ErrorEquals"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e == "Lambda.ServiceException")
        })
        .expect("a retrier for Lambda.ServiceException");
    // The function's timeout (at most 5 minutes) plus EC2's visibility grace.
    let wait = 300 + strongroom_core::backup::status::VISIBILITY_GRACE_SECONDS as u64;
    assert!(
        after_lambda_error["IntervalSeconds"].as_u64().unwrap() >= wait,
        "{after_lambda_error}"
    );
}

/// This run's recovery points of each selected source of `manifest`: the
/// number of EBS snapshots, AMIs and DB / cluster snapshots tagged with it.
async fn points_per_source(emu: &Emulator, manifest: &Manifest) -> Vec<(String, usize, usize)> {
    let points = emu.recovery_points().await;
    manifest
        .resources
        .iter()
        .filter(|r| {
            r.tags.get("backup").map(String::as_str) == Some("daily")
                && r.tags.get("backup-skip").map(String::as_str) != Some("true")
                && ["us-east-1", "eu-west-1"].contains(&r.region.as_str())
        })
        .map(|r| {
            let source = match r.resource_type {
                ResourceType::EbsVolume | ResourceType::Ec2Instance => r.id.clone(),
                _ => r.arn.clone(),
            };
            let n = points
                .iter()
                .filter(|p| {
                    p.tags.get("strongroom:source") == Some(&source)
                        && p.tags.get("strongroom:created-at").map(String::as_str)
                            == Some("2026-11-29T03:00:00Z")
                })
                .count();
            // An instance's set has one snapshot per volume; the rest are one resource.
            let want = match r.resource_type {
                ResourceType::Ec2Instance => r.volumes.len(),
                _ => 1,
            };
            (r.id.clone(), n, want)
        })
        .collect()
}

/// Issue 7's run under faults: a fifth of Strongroom's calls throttled, a
/// fifth of its creates answered with a server error after they were done,
/// new EC2 snapshots invisible to describes for 3 s and every new recovery
/// point pending for 2 describes. Every selected source ends with exactly one
/// recovery point or in the failures with the AWS code; nothing is made
/// twice; a re-run of the same scheduled time converges.
#[tokio::test]
async fn a_run_under_throttling_lost_answers_and_delayed_visibility_makes_no_duplicates() {
    let faults = json!({
        "seed": 7,
        "throttle_fraction": 0.2,
        "lost_response_fraction": 0.2,
        "visibility_seconds": 3,
        "pending_describes": 2
    });
    let emu = Emulator::start_with_env(&[("STRONGROOM_EMULATOR_FAULTS", &faults.to_string())]);
    let manifest = emu.seed("test");
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;

    let first = execute(&emu, &sfn, &machine, "faults-1", &scheduled_input()).await;
    let r = report(&first, &emu).await;
    let calls = emu.calls();
    let faulted = |f: &str| {
        calls
            .iter()
            .filter(|c| c.fault.as_deref() == Some(f))
            .count()
    };
    assert!(
        faulted("throttled") > 0 && faulted("lost-response") > 0,
        "the faults were on: {} throttled, {} lost",
        faulted("throttled"),
        faulted("lost-response")
    );
    let per_source = points_per_source(&emu, &manifest).await;
    assert_eq!(per_source.len(), 12);
    for (id, n, want) in &per_source {
        let failed = r
            .failures
            .iter()
            .find(|f| f.id.as_deref() == Some(id.as_str()));
        match failed {
            None => assert_eq!(n, want, "{id}: one recovery point, no duplicate ({r:?})"),
            Some(f) => {
                assert!(n == &0 || n == want, "{id}: failed yet {n} snapshots");
                assert!(
                    f.message.contains("AWS code"),
                    "{id}: the AWS code is named: {f:?}"
                );
            }
        }
    }
    assert_eq!(
        r.recovery_point_ids.len() + r.failures.len(),
        12,
        "every source accounted for: {r:?}"
    );

    let second = execute(&emu, &sfn, &machine, "faults-2", &scheduled_input()).await;
    let r2 = report(&second, &emu).await;
    assert!(
        r2.failures.is_empty(),
        "the re-run converges: {:?}",
        r2.failures
    );
    assert_eq!(r2.recovery_point_ids.len(), 12);
    for (id, n, want) in points_per_source(&emu, &manifest).await {
        assert_eq!(n, want, "{id}: exactly one recovery point after the re-run");
    }
}

/// Issue 8, item 2: the wait between completion checks is the one Status
/// computes (doubling to 15 minutes), not a fixed `poll_seconds`.
#[test]
fn the_wait_between_checks_is_the_growing_one() {
    let asl: Value = serde_json::from_str(&backup_definition()).unwrap();
    let wait = &asl["States"]["SnapshotBatches"]["ItemProcessor"]["States"]["WaitForCompletion"];
    assert_eq!(wait["Type"], "Wait");
    assert_eq!(wait["SecondsPath"], "$.wait_seconds", "{wait}");
}

/// Issue 8, item 4: one policy over two accounts × two regions, the other
/// account reached through its role; a third account whose role does not
/// exist is reported (`Strongroom.AccessDenied` naming the role) while the
/// others are protected; a re-run makes nothing new.
#[tokio::test]
async fn a_policy_over_several_accounts_protects_each_and_reports_the_unreachable() {
    const OTHER: &str = "210987654321";
    const GONE: &str = "333333333333";
    let emu = Emulator::start();
    let home = emu.seed("test");
    let other = emu.seed_in("test", OTHER, Some("strongroom"));
    let role = other.role_arn.clone().expect("the other account's role");
    let gone_role = format!("arn:aws:iam::{GONE}:role/strongroom");
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;
    let mut input = scheduled_input();
    input["policy"]["accounts"] = json!([
        {"account": ACCOUNT},
        {"account": OTHER, "role_arn": role},
        {"account": GONE, "role_arn": gone_role}
    ]);

    let first = execute(&emu, &sfn, &machine, "accounts-1", &input).await;
    let r = report(&first, &emu).await;
    assert_eq!(r.outcome, RunOutcome::Partial, "{r:?}");
    let gone: Vec<_> = r
        .failures
        .iter()
        .filter(|f| f.account.as_deref() == Some(GONE))
        .collect();
    // Discover and Prune, each once per region of the unreachable account.
    assert_eq!(gone.len(), 4, "{:?}", r.failures);
    for f in &gone {
        assert_eq!(f.error_type, "Strongroom.AccessDenied");
        assert!(
            f.message.contains(&gone_role) && f.message.contains("not authorized"),
            "{}",
            f.message
        );
    }
    assert_eq!(r.failures.len(), 4, "nothing else failed: {:?}", r.failures);
    // Both reachable accounts: every selected source, once.
    assert_eq!(r.recovery_point_ids.len(), 24, "12 sources in each account");
    for (manifest, points) in [
        (&home, emu.recovery_points().await),
        (&other, emu.recovery_points_in(&role).await),
    ] {
        for res in manifest.resources.iter().filter(|r| {
            r.tags.get("backup").map(String::as_str) == Some("daily")
                && !r.tags.contains_key("backup-skip")
                && r.region != "ap-southeast-2"
        }) {
            let source = match res.resource_type {
                ResourceType::EbsVolume | ResourceType::Ec2Instance => res.id.clone(),
                _ => res.arn.clone(),
            };
            let n = points
                .iter()
                .filter(|p| p.tags.get("strongroom:source") == Some(&source))
                .count();
            let want = if res.resource_type == ResourceType::Ec2Instance {
                res.volumes.len()
            } else {
                1
            };
            assert_eq!(n, want, "{} in {}", res.id, manifest.account);
        }
    }
    let before = emu.recovery_points_in(&role).await;
    let again = execute(&emu, &sfn, &machine, "accounts-2", &input).await;
    let r2 = report(&again, &emu).await;
    assert_eq!(sum(&r2.recovery_points.created), 0, "{r2:?}");
    assert_eq!(
        emu.recovery_points_in(&role).await,
        before,
        "a re-run changes nothing"
    );
}

/// The events of an execution's history.
async fn history_events(sfn: &aws_sdk_sfn::Client, execution: &str) -> usize {
    let mut n = 0;
    let mut token = None;
    loop {
        let page = sfn
            .get_execution_history()
            .execution_arn(execution)
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .expect("the execution's history");
        n += page.events().len();
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return n;
        }
    }
}

async fn execution_arn(sfn: &aws_sdk_sfn::Client, machine: &str, name: &str) -> String {
    sfn.list_executions()
        .state_machine_arn(machine)
        .send()
        .await
        .expect("the executions")
        .executions()
        .iter()
        .find(|e| e.name() == name)
        .expect("the execution")
        .execution_arn()
        .to_owned()
}

/// Issue 8, items 1, 3 and 6: Discover writes the batches to the stack's
/// bucket and returns only where they are; the snapshot stage is a
/// Distributed Map reading them, one child execution per batch, writing
/// every result to the bucket; Report reads them all and writes the run
/// report there. The parent's history does not grow with the time the
/// snapshots take: the completion checks run in the children.
#[tokio::test]
async fn the_snapshot_stage_runs_each_batch_as_a_child_and_keeps_the_parent_small() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;

    let quick = execute(&emu, &sfn, &machine, "daily-quick", &scheduled_input()).await;
    let r = report(&quick, &emu).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{r:?}");
    let quick_arn = execution_arn(&sfn, &machine, "daily-quick").await;

    // The run's files, under runs/<policy>/<execution>/.
    let prefix = "runs/daily/daily-quick/";
    let object = |key: &str| strongroom_core::runs::S3Object {
        bucket: RUNS_BUCKET.into(),
        key: format!("{prefix}{key}"),
    };
    let findings: Value = emu.object_json(&object("discovery.json")).await;
    assert_eq!(findings["skipped"].as_array().map(Vec::len), Some(2));
    let store = strongroom_aws::AwsCloud::new(strongroom_aws::Clients::from_config(
        emu.harness_config().await,
    ));
    let lines = strongroom_core::ports::ObjectStore::get_object(&store, &object("batches.jsonl"))
        .await
        .expect("the batches");
    let batches: Vec<strongroom_core::backup::discover::Batch> = String::from_utf8(lines)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a batch per line"))
        .collect();
    assert_eq!(batches.len(), 2, "one batch per region");
    assert_eq!(
        batches.iter().map(|b| b.targets.len()).sum::<usize>(),
        12,
        "every selected source in one batch"
    );

    // One Map Run, one child execution per batch, every result in the bucket.
    let runs = sfn
        .list_map_runs()
        .execution_arn(&quick_arn)
        .send()
        .await
        .expect("the Map Runs");
    assert_eq!(runs.map_runs().len(), 1);
    let children = sfn
        .list_executions()
        .map_run_arn(runs.map_runs()[0].map_run_arn())
        .send()
        .await
        .expect("the child executions");
    assert_eq!(children.executions().len(), batches.len());
    assert!(children
        .executions()
        .iter()
        .all(|c| c.status().as_str() == "SUCCEEDED"));
    let map_run_id = runs.map_runs()[0].map_run_arn().rsplit(':').next().unwrap();
    let manifest: Value = emu
        .object_json(&object(&format!("snapshots/{map_run_id}/manifest.json")))
        .await;
    assert_eq!(
        manifest["ResultFiles"]["SUCCEEDED"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let prune: Value = emu.object_json(&object("prune.json")).await;
    assert_eq!(
        prune["policy"], "daily",
        "Prune's full report is in the bucket"
    );

    // The same run where every snapshot stays pending for 12 describes: many
    // more completion checks, not one event more in the parent's history.
    emu.set_faults(&json!({"pending_describes": 12}));
    let mut input = scheduled_input();
    input["scheduled_time"] = json!("2026-11-28T03:00:00Z");
    let slow = execute(&emu, &sfn, &machine, "daily-slow", &input).await;
    emu.set_faults(&json!({}));
    let r = report(&slow, &emu).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{r:?}");
    let slow_arn = execution_arn(&sfn, &machine, "daily-slow").await;
    let status_calls = emu.function_log("status").matches("status checked").count();
    assert!(
        status_calls >= 2 * 12,
        "the children polled: {status_calls} checks"
    );
    assert_eq!(
        history_events(&sfn, &slow_arn).await,
        history_events(&sfn, &quick_arn).await,
        "the parent's history does not grow with the polls"
    );
    // The polls are in the children's own histories.
    let largest_child = |arn: String| {
        let sfn = sfn.clone();
        async move {
            let runs = sfn
                .list_map_runs()
                .execution_arn(&arn)
                .send()
                .await
                .unwrap();
            let children = sfn
                .list_executions()
                .map_run_arn(runs.map_runs()[0].map_run_arn())
                .send()
                .await
                .unwrap();
            let mut largest = 0;
            for c in children.executions() {
                largest = largest.max(history_events(&sfn, c.execution_arn()).await);
            }
            largest
        }
    };
    let (quick_child, slow_child) = (
        largest_child(quick_arn).await,
        largest_child(slow_arn).await,
    );
    assert!(
        quick_child > 2,
        "a child's history has its states: {quick_child}"
    );
    assert!(
        slow_child >= quick_child + 12 * 5,
        "twelve more checks, each a Wait, a Status task and a Choice: {quick_child} -> {slow_child}"
    );
}

/// Issue 8, item 4: a policy naming an AWS Organizations unit protects every
/// account under it (its nested units too) through the unit's role, and no
/// account outside it; where Organizations cannot be listed, the unit is
/// reported as `Strongroom.AccessDenied` and nothing else is assumed.
#[tokio::test]
async fn an_organizational_unit_is_resolved_to_its_accounts() {
    let emu = Emulator::start();
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;
    let mut input = scheduled_input();
    input["policy"]["organizational_units"] =
        json!([{"id": "ou-ab12-cd34ef56", "role_name": "strongroom"}]);

    // No organization yet: the unit is reported, nothing else is protected.
    let _ = emu.seed("test");
    let r = report(
        &execute(&emu, &sfn, &machine, "no-organization", &input).await,
        &emu,
    )
    .await;
    assert_eq!(r.outcome, RunOutcome::Failed, "{r:?}");
    assert!(
        r.recovery_point_ids.is_empty(),
        "the home account alone is never assumed"
    );
    assert!(
        r.failures
            .iter()
            .all(|f| f.account.as_deref() == Some("ou-ab12-cd34ef56")
                && f.error_type == "Strongroom.AccessDenied"),
        "{:?}",
        r.failures
    );

    let org = emu.organization();
    let mut seeded = BTreeMap::new();
    for name in ["prod-a", "prod-eu", "sandbox"] {
        let m = emu.seed_in("test", &org.accounts[name], Some("strongroom"));
        seeded.insert(name, m);
    }
    input["policy"]["organizational_units"] =
        json!([{"id": org.units["prod"], "role_name": "strongroom"}]);
    let r = report(
        &execute(&emu, &sfn, &machine, "prod-unit", &input).await,
        &emu,
    )
    .await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{r:?}");
    // 12 selected sources in each of prod-a and prod-eu (nested), none elsewhere.
    assert_eq!(r.recovery_point_ids.len(), 24, "{:?}", r.recovery_point_ids);
    for (name, covered) in [("prod-a", true), ("prod-eu", true), ("sandbox", false)] {
        let m = &seeded[name];
        let points = emu.recovery_points_in(m.role_arn.as_ref().unwrap()).await;
        assert_eq!(!points.is_empty(), covered, "{name}: {points:?}");
    }
    assert!(
        emu.recovery_points().await.is_empty(),
        "the home account is not in the unit"
    );
}

/// Issue 8, bad input: the Map items gone from S3 between Discover and the
/// Distributed Map. The run reports the snapshot stage's error, creates
/// nothing and prunes nothing; the next execution of the same scheduled
/// time protects every source once.
#[tokio::test]
async fn items_gone_from_the_bucket_fail_the_run_clearly_and_a_rerun_creates_each_once() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let sfn = sfn(&emu).await;
    let machine = backup_machine(&sfn).await;
    let mut input = scheduled_input();
    input["policy"]["retention"] = json!({"keep_last": 1});
    emu.set_faults(&json!({"vanishing_keys": ["batches.jsonl"]}));
    let r = report(
        &execute(&emu, &sfn, &machine, "items-gone", &input).await,
        &emu,
    )
    .await;
    emu.set_faults(&json!({}));
    assert_eq!(r.outcome, RunOutcome::Failed, "{r:?}");
    assert_eq!(r.failures.len(), 1, "{:?}", r.failures);
    let f = &r.failures[0];
    assert!(f.error_type.starts_with("States."), "{f:?}");
    assert!(f.message.starts_with("the snapshot stage failed"), "{f:?}");
    assert!(
        f.message.contains("batches.jsonl") || f.message.contains("key"),
        "{f:?}"
    );
    assert_eq!(
        r.prune, None,
        "no retention applied when the backups did not run"
    );
    assert!(emu.recovery_points().await.is_empty(), "nothing created");

    let again = report(
        &execute(&emu, &sfn, &machine, "items-again", &input).await,
        &emu,
    )
    .await;
    assert_eq!(again.outcome, RunOutcome::Succeeded, "{again:?}");
    assert_eq!(sum(&again.recovery_points.created), 12);
    assert_eq!(again.recovery_point_ids.len(), 12);
}

/// Issue 9, item 5: the backup definition exactly as the SAM stack deploys it
/// (converted by the SAM translator, substitutions resolved) runs green, and
/// red: a source whose snapshot fails is caught and reported.
#[tokio::test]
async fn the_definition_the_stack_deploys_runs_green_and_red() {
    let deployed = deployed_backup_definition();
    let asl: Value = serde_json::from_str(&deployed).expect("the deployed definition is JSON");
    assert_eq!(
        asl,
        serde_json::from_str::<Value>(&backup_definition()).unwrap(),
        "the stack deploys the ASL file, substituted"
    );
    let emu = Emulator::start_with_env(&[("MOTO_RDS_SNAPSHOT_LIMIT", "4")]);
    let _ = emu.seed("test");
    let sfn = sfn(&emu).await;
    let machine = machine_of(&sfn, "strongroom-backup", deployed).await;
    // Red: 3 automated snapshots per region and a limit of 4 leave room for
    // one of the two selected RDS instances per region.
    let r = report(
        &execute(&emu, &sfn, &machine, "deployed-red", &scheduled_input()).await,
        &emu,
    )
    .await;
    assert_eq!(r.outcome, RunOutcome::Partial, "{r:?}");
    assert_eq!(r.failures.len(), 2, "{:?}", r.failures);
    assert!(r
        .failures
        .iter()
        .all(|f| f.error_type == "Strongroom.QuotaExceeded"));
    // Green: the next day, without the RDS instances.
    let mut input = scheduled_input();
    input["scheduled_time"] = json!("2026-11-28T03:00:00Z");
    input["policy"]["selector"]["resource_types"] = json!([
        "ebs-volume",
        "ec2-instance",
        "aurora-cluster",
        "redshift-cluster"
    ]);
    let r = report(
        &execute(&emu, &sfn, &machine, "deployed-green", &input).await,
        &emu,
    )
    .await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{r:?}");
    assert_eq!(sum(&r.recovery_points.completed), 8);
}
