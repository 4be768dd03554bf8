//! Issue 8, items 1 and 3, over the in-memory cloud: Discover writes the Map
//! items and its findings to the bucket and returns only where they are;
//! Report reads every result file a Map Run wrote (successes, failed and
//! unfinished children) and Prune's full report, writes the run report and
//! returns a summary whose size does not grow with the estate.

use serde_json::json;
use strongroom_core::backup::discover::{discover_run, Batch, DiscoverOutput, DiscoverRequest};
use strongroom_core::backup::snapshot::snapshot_batch;
use strongroom_core::fake::fixtures::{self, tags};
use strongroom_core::fake::{MemoryCloud, FAKE_ACCOUNT as ACCOUNT};
use strongroom_core::model::{Location, RecoveryPointState, ResourceType, Target};
use strongroom_core::ports::FoundSource;
use strongroom_core::prune::{parse_request, prune, store_report};
use strongroom_core::report::{
    report_run, MapRunOutput, PruneOutcome, ReportRun, ResultWriterDetails, RunOutcome, RunReport,
    SnapshotsOutcome, SUMMARY_FAILURES,
};
use strongroom_core::runs::S3Object;
use strongroom_core::sfn::StatesError;
use strongroom_core::{Error, ErrorKind};

const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-29 04:00 UTC);
const BUCKET: &str = "strongroom-runs-123456789012";

/// `n` volumes tagged for the daily policy in each of the fixture regions.
fn estate(n: usize) -> MemoryCloud {
    let cloud = MemoryCloud::new();
    for region in fixtures::REGIONS {
        for i in 0..n {
            let id = format!("vol-{region}-{i:04}");
            cloud.add_source(FoundSource {
                location: Location {
                    account: ACCOUNT.into(),
                    region: region.into(),
                },
                target: Target {
                    resource_type: ResourceType::EbsVolume,
                    arn: format!("arn:aws:ec2:{region}:{ACCOUNT}:volume/{id}"),
                    id,
                    tags: tags(&[("backup", "daily")]),
                },
            });
        }
    }
    cloud
}

fn request() -> DiscoverRequest {
    let mut policy = fixtures::policy("daily");
    policy["retention"] = json!({"keep_last": 3});
    DiscoverRequest {
        input: json!({"policy": policy, "scheduled_time": "2026-11-29T03:00:00Z", "poll_seconds": 0}),
        execution: "exec-1".into(),
        started_at: "2026-11-29T03:00:02Z".into(),
    }
}

fn object(key: &str) -> S3Object {
    S3Object {
        bucket: BUCKET.into(),
        key: key.into(),
    }
}

fn read_batches(cloud: &MemoryCloud, out: &DiscoverOutput) -> Vec<Batch> {
    let objects = cloud.objects.read().unwrap();
    let body = objects
        .get(&object(&out.files.batches))
        .expect("the batches file");
    String::from_utf8(body.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one batch per line"))
        .collect()
}

/// What a Map Run's ResultWriter leaves: every batch but the last
/// succeeded; the last one's child failed as a whole; one more never ran.
async fn map_run(
    cloud: &MemoryCloud,
    out: &DiscoverOutput,
    batches: Vec<Batch>,
) -> SnapshotsOutcome {
    let results = format!("{}/run-1/", out.files.results);
    let row = |batch: &Batch, status: &str| {
        json!({
            "ExecutionArn": format!("arn:aws:states:us-east-1:{ACCOUNT}:execution:backup/Snapshots:{}", batch.location),
            "Input": serde_json::to_string(batch).unwrap(),
            "InputDetails": {"Included": true},
            "Status": status,
        })
    };
    let (last, done) = batches.split_last().unwrap();
    let mut succeeded = Vec::new();
    for b in done {
        let mut r = row(b, "SUCCEEDED");
        let result = snapshot_batch(b.clone(), cloud, NOW, None).await.unwrap();
        r["Output"] = json!(serde_json::to_string(&result).unwrap());
        succeeded.push(r);
    }
    let mut failed = row(last, "FAILED");
    failed["Error"] = json!("States.Timeout");
    failed["Cause"] = json!("the child execution timed out");
    let pending = row(last, "PENDING");
    let mut files = json!({"SUCCEEDED": [], "FAILED": [], "PENDING": []});
    for (status, rows) in [
        ("SUCCEEDED", json!(succeeded)),
        ("FAILED", json!([failed])),
        ("PENDING", json!([pending])),
    ] {
        let key = format!("{results}{status}_0.json");
        cloud
            .objects
            .write()
            .unwrap()
            .insert(object(&key), serde_json::to_vec(&rows).unwrap());
        files[status] = json!([{"Key": key, "Size": 1}]);
    }
    let manifest = format!("{results}manifest.json");
    cloud.objects.write().unwrap().insert(
        object(&manifest),
        serde_json::to_vec(&json!({"DestinationBucket": BUCKET, "ResultFiles": files})).unwrap(),
    );
    SnapshotsOutcome::Written(MapRunOutput {
        map_run_arn: "arn:aws:states:us-east-1:123456789012:mapRun:backup/Snapshots:run-1".into(),
        result_writer_details: ResultWriterDetails {
            bucket: BUCKET.into(),
            key: manifest,
        },
    })
}

#[tokio::test]
async fn a_run_keeps_its_batches_results_and_reports_in_the_bucket() {
    let cloud = estate(120);
    let out = discover_run(request(), &cloud, Some(BUCKET)).await.unwrap();
    // The state holds counts and locations, not the 240 targets.
    assert_eq!(out.found[&ResourceType::EbsVolume], 240);
    assert_eq!(out.batches, 4, "120 per region, at most 100 per batch");
    assert!(serde_json::to_vec(&out).unwrap().len() < 4096);
    assert_eq!(out.files.batches, "runs/daily/exec-1/batches.jsonl");
    let findings = cloud
        .object_json(BUCKET, &out.files.discovery)
        .expect("the findings");
    assert_eq!(findings["found"]["ebs-volume"], 240);

    let batches = read_batches(&cloud, &out);
    assert_eq!(batches.len(), out.batches);
    let last_targets = batches.last().unwrap().targets.len();
    // Snapshots complete at once: each child's output is its final result.
    *cloud.initial_state.write().unwrap() = Some(RecoveryPointState::Completed);
    let snapshots = map_run(&cloud, &out, batches).await;

    let prune_req = json!({
        "policy": out.policy, "dry_run": false, "now": "2026-11-29T03:00:00Z",
        "report_to": {"bucket": BUCKET, "key": out.files.prune},
    });
    let (mut req, rules, now) = parse_request(prune_req, NOW).unwrap();
    let to = req.report_to.take().unwrap();
    let pruned = store_report(prune(req, rules, now, &cloud).await.unwrap(), &cloud, &to).await;
    assert!(
        pruned.locations.is_empty(),
        "the decisions are in the bucket"
    );
    assert_eq!(pruned.full_report, Some(to.clone()));
    assert_eq!(pruned.kept, 240 - last_targets);

    let summary = report_run(
        ReportRun {
            copies: vec![],
            run: out.run.clone(),
            files: out.files.clone(),
            snapshots,
            prune: Some(PruneOutcome::Done(pruned)),
        },
        &cloud,
    )
    .await
    .unwrap();
    assert_eq!(summary.outcome, RunOutcome::Partial);
    assert_eq!(summary.report, object("runs/daily/exec-1/report.json"));
    let full: RunReport =
        serde_json::from_value(cloud.object_json(BUCKET, &summary.report.key).unwrap()).unwrap();
    let done = 240 - last_targets;
    assert_eq!(
        full.recovery_points.completed[&ResourceType::EbsVolume],
        done
    );
    // The failed child and the one that never ran: every target of each.
    assert_eq!(full.failures.len(), 2 * last_targets);
    assert!(full
        .failures
        .iter()
        .any(|f| f.error_type == "States.Timeout"));
    assert!(full
        .failures
        .iter()
        .any(|f| f.error_type == "Strongroom.Internal" && f.message.contains("PENDING")));
    assert_eq!(full.recovery_point_ids.len(), done);
    // Prune's decisions came back from its full report.
    assert_eq!(full.prune.as_ref().unwrap().kept, done);
    assert_eq!(summary.failures, full.failures.len());
    assert_eq!(summary.first_failures.len(), SUMMARY_FAILURES);
    assert!(serde_json::to_vec(&summary).unwrap().len() < 16 * 1024);
}

#[tokio::test]
async fn without_a_bucket_discover_fails_before_any_call() {
    let cloud = estate(1);
    for (bucket, named) in [
        (None, "is not set"),
        (Some("Bad_Bucket"), "not an S3 bucket"),
    ] {
        let e = discover_run(request(), &cloud, bucket).await.unwrap_err();
        match e {
            Error::InvalidInput { field, message } => {
                assert_eq!(field, "STRONGROOM_BUCKET");
                assert!(message.contains(named), "{message}");
            }
            other => panic!("{other}"),
        }
    }
    assert!(cloud.objects.read().unwrap().is_empty());
}

#[tokio::test]
async fn a_failed_snapshot_stage_is_reported_and_nothing_is_read_from_elsewhere() {
    let cloud = estate(2);
    let out = discover_run(request(), &cloud, Some(BUCKET)).await.unwrap();
    let failed = ReportRun {
        copies: vec![],
        run: out.run.clone(),
        files: out.files.clone(),
        snapshots: SnapshotsOutcome::Failed(StatesError {
            error: "States.ItemReaderFailed".into(),
            cause: "x".repeat(5000),
        }),
        prune: Some(PruneOutcome::Skipped {
            skipped: "the snapshot stage failed, so nothing was pruned".into(),
        }),
    };
    let summary = report_run(failed.clone(), &cloud).await.unwrap();
    assert_eq!(summary.outcome, RunOutcome::Failed);
    assert_eq!(summary.prune, None);
    assert_eq!(
        summary.first_failures[0].error_type,
        "States.ItemReaderFailed"
    );
    assert!(
        summary.first_failures[0].message.len() < 1200,
        "causes are cut"
    );

    // Result files outside the run's own prefix are refused before any read.
    let mut elsewhere = failed.clone();
    elsewhere.snapshots = SnapshotsOutcome::Written(MapRunOutput {
        map_run_arn: "arn".into(),
        result_writer_details: ResultWriterDetails {
            bucket: BUCKET.into(),
            key: "runs/weekly/exec-9/snapshots/x/manifest.json".into(),
        },
    });
    let e = report_run(elsewhere, &cloud).await.unwrap_err();
    assert!(
        e.to_string().contains("snapshots.ResultWriterDetails"),
        "{e}"
    );
    let mut other = failed;
    other.run.execution = "exec-2".into();
    let e = report_run(other, &cloud).await.unwrap_err();
    assert!(e.to_string().contains("`files`"), "{e}");
}

#[tokio::test]
async fn a_prune_report_that_cannot_be_written_keeps_what_the_run_must_report() {
    let cloud = estate(1);
    cloud
        .fail_list
        .write()
        .unwrap()
        .insert("eu-west-1".into(), ErrorKind::AccessDenied);
    *cloud.fail_put.write().unwrap() = Some(ErrorKind::AccessDenied);
    let mut policy = fixtures::policy("daily");
    policy["retention"] = json!({"keep_last": 3});
    let (req, rules, now) = parse_request(
        json!({"policy": policy, "now": "2026-11-29T03:00:00Z"}),
        NOW,
    )
    .unwrap();
    let pruned = store_report(
        prune(req, rules, now, &cloud).await.unwrap(),
        &cloud,
        &object("runs/daily/exec-1/prune.json"),
    )
    .await;
    assert_eq!(pruned.full_report, None);
    assert_eq!(
        pruned.locations.len(),
        1,
        "only the aborted location is kept"
    );
    assert!(pruned.locations[0].aborted.is_some());
    assert!(pruned
        .notes
        .iter()
        .any(|n| n.contains("could not be written")));
}
