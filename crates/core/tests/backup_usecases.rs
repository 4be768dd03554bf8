//! The backup use cases over the in-memory cloud.

use std::sync::atomic::Ordering;

use serde_json::json;
use strongroom_core::backup::discover::{discover, DiscoverRequest, BATCH_SIZE};
use strongroom_core::backup::snapshot::{snapshot_batch, BatchResult, Outcome};
use strongroom_core::backup::status::{refresh_batch, VISIBILITY_GRACE_SECONDS};
use strongroom_core::fake::MemoryCloud;
use strongroom_core::model::{
    Location, RecoveryPointKind, RecoveryPointState, ResourceType, Target,
};
use strongroom_core::ports::FoundSource;
use strongroom_core::quota::Quota;
use strongroom_core::report::{
    report, BatchOutcome, FailedBatch, ReportRequest, RunOutcome, TargetRef,
};
use strongroom_core::sfn::StatesError;
use strongroom_core::{tags, Error, ErrorKind};

use strongroom_core::fake::fixtures::{self, tags as tagset};
use strongroom_core::fake::FAKE_ACCOUNT as ACCOUNT;

/// The clock of every use case here: an hour after the runs' scheduled time.
const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-29 04:00 UTC);

fn source(cloud: &MemoryCloud, region: &str, t: ResourceType, id: &str, pairs: &[(&str, &str)]) {
    let arn = match t {
        ResourceType::EbsVolume => format!("arn:aws:ec2:{region}:{ACCOUNT}:volume/{id}"),
        ResourceType::Ec2Instance => format!("arn:aws:ec2:{region}:{ACCOUNT}:instance/{id}"),
        ResourceType::RdsInstance => format!("arn:aws:rds:{region}:{ACCOUNT}:db:{id}"),
        ResourceType::AuroraCluster => format!("arn:aws:rds:{region}:{ACCOUNT}:cluster:{id}"),
        ResourceType::RedshiftCluster => {
            format!("arn:aws:redshift:{region}:{ACCOUNT}:cluster:{id}")
        }
    };
    cloud.add_source(FoundSource {
        location: Location {
            account: ACCOUNT.into(),
            region: region.into(),
        },
        target: Target {
            resource_type: t,
            id: id.into(),
            arn,
            tags: tagset(pairs),
        },
    });
}

fn estate() -> MemoryCloud {
    let c = MemoryCloud::new();
    let daily = [("backup", "daily"), ("team", "core")];
    source(&c, "us-east-1", ResourceType::EbsVolume, "vol-1", &daily);
    source(
        &c,
        "us-east-1",
        ResourceType::EbsVolume,
        "vol-2",
        &[("backup", "weekly")],
    );
    source(
        &c,
        "us-east-1",
        ResourceType::EbsVolume,
        "vol-3",
        &[("backup", "daily"), ("backup-skip", "true")],
    );
    source(&c, "us-east-1", ResourceType::Ec2Instance, "i-1", &daily);
    source(&c, "us-east-1", ResourceType::RdsInstance, "orders", &daily);
    source(
        &c,
        "eu-west-1",
        ResourceType::AuroraCluster,
        "ledger",
        &daily,
    );
    source(
        &c,
        "eu-west-1",
        ResourceType::RedshiftCluster,
        "dwh",
        &daily,
    );
    source(&c, "ap-south-1", ResourceType::EbsVolume, "vol-9", &daily);
    c
}

fn request(policy: serde_json::Value) -> DiscoverRequest {
    DiscoverRequest {
        input: json!({"policy": policy, "scheduled_time": "2026-11-29T03:00:00Z", "poll_seconds": 0}),
        execution: "exec-1".into(),
        started_at: "2026-11-29T03:00:04.512Z".into(),
    }
}

fn daily_policy() -> serde_json::Value {
    fixtures::policy("daily")
}

#[tokio::test]
async fn discover_selects_by_type_region_and_tags() {
    let cloud = estate();
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    assert_eq!(
        out.run.scheduled_time,
        time::macros::datetime!(2026-11-29 03:00 UTC)
    );
    assert_eq!(out.run.execution, "exec-1");
    let found: Vec<(ResourceType, usize)> = out.found.clone().into_iter().collect();
    assert_eq!(
        found,
        vec![
            (ResourceType::EbsVolume, 1),
            (ResourceType::Ec2Instance, 1),
            (ResourceType::RdsInstance, 1),
            (ResourceType::AuroraCluster, 1),
            (ResourceType::RedshiftCluster, 1)
        ]
    );
    assert_eq!(out.skipped.len(), 1);
    assert_eq!(out.skipped[0].id, "vol-3");
    assert_eq!(out.skipped[0].reason, "excluded by tag backup-skip=true");
    // One batch per location, ap-south-1 is not in the policy.
    let regions: Vec<&str> = out
        .batches
        .iter()
        .map(|b| b.location.region.as_str())
        .collect();
    assert_eq!(regions, vec!["eu-west-1", "us-east-1"]);
    let ids: Vec<&str> = out.batches[1]
        .targets
        .iter()
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(ids, vec!["vol-1", "i-1", "orders"]);
}

#[tokio::test]
async fn discover_only_listed_types() {
    let cloud = estate();
    let mut p = daily_policy();
    p["selector"]["resource_types"] = json!(["rds-instance"]);
    let out = discover(request(p), &cloud).await.unwrap();
    assert_eq!(out.found.values().sum::<usize>(), 1);
    assert_eq!(out.batches.len(), 1);
    assert_eq!(out.batches[0].targets[0].id, "orders");
}

#[tokio::test]
async fn bad_input_fails_before_any_call() {
    let cloud = estate();
    cloud
        .fail_region
        .write()
        .unwrap()
        .insert("us-east-1".into(), ErrorKind::Internal);
    let mut p = daily_policy();
    p["selector"]["tags"] = json!({});
    let err = discover(request(p), &cloud).await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput { field, .. } if field == "policy.selector.tags"),
        "{err}"
    );
    assert_eq!(err.error_type(), "Strongroom.InvalidInput");
}

#[tokio::test]
async fn region_failures_are_reported_and_throttling_retried() {
    let cloud = estate();
    cloud
        .fail_region
        .write()
        .unwrap()
        .insert("eu-west-1".into(), ErrorKind::AccessDenied);
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    assert_eq!(out.region_errors.len(), 1);
    assert_eq!(
        out.region_errors[0].error.error_type,
        "Strongroom.AccessDenied"
    );
    assert_eq!(out.batches.len(), 1);

    cloud
        .fail_region
        .write()
        .unwrap()
        .insert("eu-west-1".into(), ErrorKind::Throttled);
    let err = discover(request(daily_policy()), &cloud).await.unwrap_err();
    assert_eq!(err.error_type(), "Strongroom.Throttled");
}

#[tokio::test]
async fn batches_are_bounded() {
    let cloud = MemoryCloud::new();
    for i in 0..(BATCH_SIZE * 2 + 3) {
        source(
            &cloud,
            "us-east-1",
            ResourceType::EbsVolume,
            &format!("vol-{i:04}"),
            &[("backup", "daily")],
        );
    }
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let sizes: Vec<usize> = out.batches.iter().map(|b| b.targets.len()).collect();
    assert_eq!(sizes, vec![BATCH_SIZE, BATCH_SIZE, 3]);
}

#[tokio::test]
async fn snapshot_tags_at_creation_and_is_idempotent() {
    let cloud = estate();
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let mut first = Vec::new();
    for b in out.batches.clone() {
        first.push(snapshot_batch(b, &cloud, NOW, None).await.unwrap());
    }
    let created: usize = first
        .iter()
        .flat_map(|b| &b.results)
        .filter(|r| r.outcome == Outcome::Created)
        .count();
    assert_eq!(created, 5);
    assert_eq!(cloud.stored().len(), 5);
    for p in cloud.stored() {
        assert_eq!(p.tags[tags::MANAGED], "true");
        assert_eq!(p.tags[tags::POLICY], "daily");
        assert_eq!(p.tags[tags::CREATED_AT], "2026-11-29T03:00:00Z");
        assert_eq!(p.tags[tags::RUN], "exec-1");
        assert_eq!(p.tags["team"], "core");
    }
    // The same run again, even under another execution name: nothing new.
    let mut again = out.batches.clone();
    for b in again.iter_mut() {
        b.run.execution = "exec-1-redrive".into();
    }
    for b in again {
        let r = snapshot_batch(b, &cloud, NOW, None).await.unwrap();
        assert!(
            r.results.iter().all(|r| r.outcome == Outcome::Existing),
            "{r:?}"
        );
    }
    assert_eq!(cloud.stored().len(), 5);
    // One lookup per location that has EBS/EC2 targets, per run.
    assert_eq!(cloud.lookups.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn ami_mode_makes_amis() {
    let cloud = estate();
    let mut p = daily_policy();
    p["selector"]["resource_types"] = json!(["ec2-instance"]);
    p["ec2"] = json!({"mode": "ami"});
    let out = discover(request(p), &cloud).await.unwrap();
    let r = snapshot_batch(out.batches[0].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    assert_eq!(
        r.results[0].recovery_point.as_ref().unwrap().kind,
        RecoveryPointKind::Ami
    );
    assert_eq!(
        cloud.lookups.load(Ordering::SeqCst),
        0,
        "AMI names are deterministic, no lookup"
    );
    assert_eq!(
        cloud.stored()[0].name,
        "strongroom-daily-20261129t030000z-i-1"
    );
}

#[tokio::test]
async fn one_failure_does_not_stop_the_others_and_is_reported() {
    let cloud = estate();
    cloud
        .fail_create
        .write()
        .unwrap()
        .insert("orders".into(), ErrorKind::NotReady);
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let mut done = Vec::new();
    for b in out.batches.clone() {
        done.push(snapshot_batch(b, &cloud, NOW, None).await.unwrap());
    }
    let failed: Vec<_> = done
        .iter()
        .flat_map(|b| &b.results)
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, "orders");
    assert_eq!(
        failed[0].error.as_ref().unwrap().error_type,
        "Strongroom.NotReady"
    );
    assert_eq!(cloud.stored().len(), 4);

    cloud.settle(RecoveryPointState::Completed);
    let mut refreshed = Vec::new();
    for b in done {
        refreshed.push(BatchOutcome::Done(
            refresh_batch(b, &cloud, NOW).await.unwrap(),
        ));
    }
    let rep = report(ReportRequest {
        copies: vec![],
        run: out.run.clone(),
        found: out.found.clone(),
        skipped: out.skipped.clone(),
        region_errors: vec![],
        batches: refreshed,
        prune: None,
        quota_warnings: vec![],
        snapshots_error: None,
    });
    assert_eq!(rep.outcome, RunOutcome::Partial);
    assert_eq!(rep.failures.len(), 1);
    assert_eq!(rep.failures[0].id.as_deref(), Some("orders"));
    assert_eq!(rep.recovery_points.completed.values().sum::<usize>(), 4);
}

#[tokio::test]
async fn a_source_gone_since_discovery_is_skipped_not_failed() {
    let cloud = estate();
    cloud
        .fail_create
        .write()
        .unwrap()
        .insert("orders".into(), ErrorKind::NotFound);
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let mut done = Vec::new();
    for b in out.batches.clone() {
        let mut b = snapshot_batch(b, &cloud, NOW, None).await.unwrap();
        cloud.settle(RecoveryPointState::Completed);
        b = refresh_batch(b, &cloud, NOW).await.unwrap();
        done.push(BatchOutcome::Done(b));
    }
    let skipped: Vec<_> = done
        .iter()
        .flat_map(|b| match b {
            BatchOutcome::Done(r) => r.results.iter(),
            BatchOutcome::Failed(_) => [].iter(),
        })
        .filter(|r| r.outcome == Outcome::Skipped)
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].id, "orders");
    assert_eq!(
        skipped[0].error.as_ref().unwrap().error_type,
        ErrorKind::NotFound
    );
    let rep = report(ReportRequest {
        copies: vec![],
        run: out.run.clone(),
        found: out.found.clone(),
        skipped: out.skipped.clone(),
        region_errors: vec![],
        batches: done,
        prune: None,
        quota_warnings: vec![],
        snapshots_error: None,
    });
    assert_eq!(rep.outcome, RunOutcome::Succeeded, "{rep:?}");
    assert!(rep.failures.is_empty(), "{:?}", rep.failures);
    assert_eq!(rep.skipped, out.skipped.len() + 1);
}

#[tokio::test]
async fn a_recovery_point_vanishing_under_its_name_is_a_failure_not_a_skip() {
    // NotFound about something other than the source (here: the injected
    // error names the recovery point, as a name lookup's would) is a failure.
    let cloud = estate();
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let batch = out.batches[0].clone();
    let target = batch.targets[0].id.clone();
    let run = batch.run.clone();
    let name = run.recovery_point_name(
        &batch.targets[0],
        strongroom_core::model::RecoveryPointKind::for_source(
            batch.targets[0].resource_type,
            batch.policy.ec2.mode,
        ),
    );
    cloud
        .fail_create_as
        .write()
        .unwrap()
        .insert(target.clone(), (ErrorKind::NotFound, name));
    let done = snapshot_batch(batch, &cloud, NOW, None).await.unwrap();
    let r = done.results.iter().find(|r| r.id == target).unwrap();
    assert_eq!(r.outcome, Outcome::Failed, "{r:?}");
}

#[tokio::test]
async fn completion_check_waits_then_completes() {
    let cloud = estate();
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let b = snapshot_batch(out.batches[1].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    assert_eq!(b.pending, 3);
    let now = time::macros::datetime!(2026-11-29 03:05 UTC);
    let b = refresh_batch(b, &cloud, now).await.unwrap();
    assert_eq!((b.pending, b.polls), (3, 1));
    cloud.settle(RecoveryPointState::Completed);
    let b = refresh_batch(b, &cloud, now).await.unwrap();
    assert_eq!((b.pending, b.polls), (0, 2));
    assert_eq!(cloud.refreshes.load(Ordering::SeqCst), 2);
    // Nothing pending: no call at all.
    let b = refresh_batch(b, &cloud, now).await.unwrap();
    assert_eq!(cloud.refreshes.load(Ordering::SeqCst), 2);
    assert_eq!(b.polls, 3);
}

#[tokio::test]
async fn overdue_and_vanished_points_fail() {
    let cloud = estate();
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let b = snapshot_batch(out.batches[1].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    cloud
        .points
        .write()
        .unwrap()
        .retain(|p| p.point.resource_type != ResourceType::RdsInstance);
    // The first check starts the clock; a late re-run is not overdue at once.
    let first = time::macros::datetime!(2026-12-05 04:00 UTC);
    let b = refresh_batch(b, &cloud, first).await.unwrap();
    assert_eq!(b.waiting_since, Some(first));
    assert_eq!(b.pending, 3, "a missing point may just not be visible yet");
    let after_grace = first + time::Duration::seconds(VISIBILITY_GRACE_SECONDS + 1);
    let b = refresh_batch(b, &cloud, after_grace).await.unwrap();
    assert_eq!(
        b.pending, 2,
        "the vanished one failed, the others still wait"
    );
    let late = first + time::Duration::hours(25);
    let b = refresh_batch(b, &cloud, late).await.unwrap();
    assert_eq!(b.pending, 0);
    let errs: Vec<&str> = b
        .results
        .iter()
        .map(|r| r.error.as_ref().unwrap().error_type.error_type())
        .collect();
    assert_eq!(
        errs,
        vec![
            "Strongroom.NotReady",
            "Strongroom.NotReady",
            "Strongroom.NotFound"
        ]
    );
}

#[test]
fn failed_batches_and_region_errors_make_a_failed_run() {
    let run = strongroom_core::tags::RunKey {
        policy: "daily".into(),
        scheduled_time: time::macros::datetime!(2026-11-29 03:00 UTC),
        execution: "e".into(),
    };
    let rep = report(ReportRequest {
        copies: vec![],
        run,
        found: [(ResourceType::EbsVolume, 2)].into(),
        skipped: vec![],
        region_errors: vec![],
        batches: vec![BatchOutcome::Failed(FailedBatch {
            location: Location {
                account: ACCOUNT.into(),
                region: "us-east-1".into(),
            },
            targets: vec![
                TargetRef {
                    resource_type: ResourceType::EbsVolume,
                    id: "vol-1".into(),
                },
                TargetRef {
                    resource_type: ResourceType::EbsVolume,
                    id: "vol-2".into(),
                },
            ],
            error: StatesError {
                error: "Strongroom.Throttled".into(),
                cause: "slow down".into(),
            },
        })],
        prune: None,
        quota_warnings: vec![],
        snapshots_error: None,
    });
    assert_eq!(rep.outcome, RunOutcome::Failed);
    assert_eq!(rep.failures.len(), 2);
    assert_eq!(rep.recovery_points.failed[&ResourceType::EbsVolume], 2);
}

#[tokio::test]
async fn a_throttled_create_fails_alone_and_the_batch_goes_on() {
    // The adapter retries a rate-limited create in place; when AWS still
    // refuses it, only that target fails: the batch is not failed (a retried
    // batch would send every other create again).
    let cloud = estate();
    cloud
        .fail_create
        .write()
        .unwrap()
        .insert("vol-1".into(), ErrorKind::Throttled);
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let us = out.batches[1].clone();
    let r = snapshot_batch(us.clone(), &cloud, NOW, None).await.unwrap();
    let outcomes: Vec<(&str, Outcome)> = r
        .results
        .iter()
        .map(|t| (t.id.as_str(), t.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("vol-1", Outcome::Failed),
            ("i-1", Outcome::Created),
            ("orders", Outcome::Created)
        ]
    );
    assert_eq!(
        r.results[0].error.as_ref().unwrap().error_type,
        ErrorKind::Throttled
    );
    assert_eq!(r.pending, 2, "the failed target is not waited for");
    assert_eq!(
        cloud.creates.load(Ordering::SeqCst),
        3,
        "one create per target"
    );
    // A re-run of the scheduled time makes only what is missing.
    cloud.fail_create.write().unwrap().clear();
    let made = cloud.stored().len();
    let mut rerun = us;
    rerun.run.execution = "exec-2".into();
    let r = snapshot_batch(rerun, &cloud, NOW, None).await.unwrap();
    assert_eq!(cloud.stored().len(), made + 1, "only the volume is new");
    assert_eq!(
        r.results.iter().map(|t| t.outcome).collect::<Vec<_>>(),
        vec![Outcome::Created, Outcome::Existing, Outcome::Existing]
    );
}

#[tokio::test]
async fn a_retried_batch_counts_what_its_first_attempt_made_as_created() {
    let cloud = estate();
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let us = out.batches[1].clone();
    snapshot_batch(us.clone(), &cloud, NOW, None).await.unwrap();
    let made = cloud.stored().len();
    // The same execution again (Step Functions retried the batch).
    let r = snapshot_batch(us, &cloud, NOW, None).await.unwrap();
    assert_eq!(cloud.stored().len(), made, "nothing made twice");
    assert!(
        r.results.iter().all(|t| t.outcome == Outcome::Created),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_lost_answer_is_looked_for_not_sent_again() {
    let cloud = estate();
    cloud.lose_answer.write().unwrap().insert("vol-1".into());
    cloud.hide_new.store(true, Ordering::SeqCst);
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let b = snapshot_batch(out.batches[1].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    assert_eq!(b.results[0].outcome, Outcome::Unconfirmed);
    assert!(b.results[0].recovery_point.is_none());
    assert_eq!(b.pending, 3, "the unconfirmed create is waited for");
    let creates = cloud.creates.load(Ordering::SeqCst);
    assert_eq!(creates, 3);

    // Not visible yet: nothing is failed, nothing is created again.
    let first = time::macros::datetime!(2026-11-29 03:01 UTC);
    let b = refresh_batch(b, &cloud, first).await.unwrap();
    assert_eq!(b.pending, 3, "{b:?}");
    assert!(
        b.results.iter().all(|r| r.outcome != Outcome::Failed),
        "{b:?}"
    );
    assert_eq!(b.results[0].outcome, Outcome::Unconfirmed);

    // Visible: the point the lost answer made is this run's.
    cloud.reveal();
    let b = refresh_batch(b, &cloud, first + time::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(b.results[0].outcome, Outcome::Created);
    assert!(b.results[0].error.is_none());
    let point = b.results[0].recovery_point.as_ref().unwrap();
    assert_eq!(point.source, "vol-1");
    assert_eq!(
        cloud.creates.load(Ordering::SeqCst),
        creates,
        "never sent again"
    );
    let of_vol1 = cloud
        .stored()
        .iter()
        .filter(|p| p.point.source == "vol-1")
        .count();
    assert_eq!(of_vol1, 1, "exactly one recovery point");
    cloud.settle(RecoveryPointState::Completed);
    let b = refresh_batch(b, &cloud, first + time::Duration::minutes(2))
        .await
        .unwrap();
    assert_eq!(b.pending, 0);
}

#[tokio::test]
async fn an_unconfirmed_create_that_made_nothing_fails_after_the_grace() {
    let cloud = estate();
    cloud.lose_answer.write().unwrap().insert("vol-1".into());
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let b = snapshot_batch(out.batches[1].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    // The create was not processed after all.
    cloud
        .points
        .write()
        .unwrap()
        .retain(|p| p.point.source != "vol-1");
    let first = time::macros::datetime!(2026-11-29 03:01 UTC);
    let b = refresh_batch(b, &cloud, first).await.unwrap();
    assert_eq!(b.results[0].outcome, Outcome::Unconfirmed);
    let later = first + time::Duration::seconds(VISIBILITY_GRACE_SECONDS + 1);
    let b = refresh_batch(b, &cloud, later).await.unwrap();
    let r = &b.results[0];
    assert_eq!(r.outcome, Outcome::Failed);
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.error_type, ErrorKind::Throttled);
    assert!(
        e.message.contains("InternalError") && e.message.contains("none was made"),
        "{}",
        e.message
    );
    assert_eq!(cloud.creates.load(Ordering::SeqCst), 3, "never sent again");
}

/// An edit that breaks an input, and the field the error must name.
type Edit<T> = (&'static str, Box<dyn Fn(&mut T)>);

/// The field an input error names.
fn invalid_field(e: Error) -> String {
    match e {
        Error::InvalidInput { field, .. } => field,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[tokio::test]
async fn snapshot_and_status_check_their_whole_input_and_call_nothing_on_bad_input() {
    let cloud = estate();
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let good = out.batches[0].clone();
    let now = NOW;
    let edits: Vec<Edit<strongroom_core::backup::discover::Batch>> = vec![
        ("run.policy", Box::new(|b| b.run.policy = "weekly".into())),
        (
            "policy.name",
            Box::new(|b| {
                b.policy.name = "Not A Name".into();
                b.run.policy = "Not A Name".into();
            }),
        ),
        (
            "run.scheduled_time",
            Box::new(|b| b.run.scheduled_time += time::Duration::days(2)),
        ),
        ("run.execution", Box::new(|b| b.run.execution.clear())),
        ("poll_seconds", Box::new(|b| b.poll_seconds = 86_400)),
        (
            "location.account",
            Box::new(|b| b.location.account = "abc".into()),
        ),
        (
            "targets[0].arn",
            Box::new(|b| {
                b.targets[0].arn = b.targets[0].arn.replace(&b.location.region, "ap-south-1")
            }),
        ),
        (
            "targets[0].resource_type",
            Box::new(|b| {
                b.policy
                    .selector
                    .resource_types
                    .retain(|t| *t != b.targets[0].resource_type)
            }),
        ),
    ];
    for (field, edit) in &edits {
        let mut bad = good.clone();
        edit(&mut bad);
        let e = snapshot_batch(bad, &cloud, now, None).await.unwrap_err();
        assert_eq!(invalid_field(e), *field);
    }
    assert_eq!(
        (
            cloud.lookups.load(Ordering::SeqCst),
            cloud.creates.load(Ordering::SeqCst)
        ),
        (0, 0),
        "bad input must call nothing"
    );
    assert!(cloud.stored().is_empty());

    // The completion check likewise.
    let made = snapshot_batch(good, &cloud, now, None).await.unwrap();
    let status_edits: Vec<Edit<BatchResult>> = vec![
        (
            "run.scheduled_time",
            Box::new(|b| b.run.scheduled_time += time::Duration::days(2)),
        ),
        (
            "waiting_since",
            Box::new(move |b| b.waiting_since = Some(now + time::Duration::days(3))),
        ),
        (
            "results[0].recovery_point.location",
            Box::new(|b| {
                b.results[0]
                    .recovery_point
                    .as_mut()
                    .unwrap()
                    .location
                    .region = "eu-central-1".into()
            }),
        ),
        (
            "results[0].recovery_point.created_at",
            Box::new(|b| {
                b.results[0].recovery_point.as_mut().unwrap().created_at -= time::Duration::days(1)
            }),
        ),
    ];
    let before = cloud.refreshes.load(Ordering::SeqCst);
    for (field, edit) in &status_edits {
        let mut bad = made.clone();
        edit(&mut bad);
        let e = refresh_batch(bad, &cloud, now).await.unwrap_err();
        assert_eq!(invalid_field(e), *field);
    }
    assert_eq!(
        cloud.refreshes.load(Ordering::SeqCst),
        before,
        "bad input must call nothing"
    );
}

#[test]
fn prune_refuses_a_now_ahead_of_the_clock() {
    // With max_age, a `now` far ahead would delete almost everything.
    let clock = NOW;
    let mut policy = daily_policy();
    policy["retention"] = json!({"keep_daily": 7, "max_age": "30d"});
    let e = strongroom_core::prune::parse_request(
        json!({"policy": policy, "now": "2027-06-01T00:00:00Z"}),
        clock,
    )
    .unwrap_err();
    assert_eq!(invalid_field(e), "now");
    let (_, _, now) =
        strongroom_core::prune::parse_request(json!({"policy": policy}), clock).unwrap();
    assert_eq!(now, clock);
}

#[tokio::test]
async fn discover_warns_when_a_quota_will_not_hold_the_run_or_the_retention() {
    let cloud = estate();
    // us-east-1 has one RDS instance to snapshot and no room left for it.
    cloud
        .quota_usage
        .write()
        .unwrap()
        .insert(Quota::RdsManualSnapshots, (100, 100));
    let mut policy = daily_policy();
    policy["retention"] = json!({"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12});
    policy["quotas"] = json!({"redshift_manual_snapshots": 20});
    let out = discover(request(policy), &cloud).await.unwrap();
    let rds: Vec<_> = out
        .quota_warnings
        .iter()
        .filter(|w| w.quota == Some(Quota::RdsManualSnapshots) && w.region == "us-east-1")
        .collect();
    assert_eq!(rds.len(), 1, "{:?}", out.quota_warnings);
    assert!(
        rds[0]
            .message
            .contains("this run makes 1 but only 0 are left"),
        "{}",
        rds[0].message
    );
    // One Redshift cluster × 23 kept points > 20.
    let rs: Vec<_> = out
        .quota_warnings
        .iter()
        .filter(|w| w.quota == Some(Quota::RedshiftManualSnapshots))
        .collect();
    assert_eq!(rs.len(), 1, "{:?}", out.quota_warnings);
    assert!(
        rs[0]
            .message
            .contains("1 sources × 23 kept points = 23 > quota 20"),
        "{}",
        rs[0].message
    );
    // Warnings only: every source is still in a batch, and the run report shows them.
    let targets: usize = out.batches.iter().map(|b| b.targets.len()).sum();
    assert_eq!(targets, out.found.values().sum::<usize>());
    let json = serde_json::to_value(&out).unwrap();
    let req: ReportRequest = serde_json::from_value(json!({
        "run": json["run"], "found": json["found"], "skipped": json["skipped"],
        "region_errors": json["region_errors"], "quota_warnings": json["quota_warnings"],
        "batches": []
    }))
    .unwrap();
    assert_eq!(report(req).quota_warnings, out.quota_warnings);
}

#[tokio::test]
async fn a_failing_lookup_leaves_unconfirmed_creates_waiting_and_the_others_alone() {
    let cloud = estate();
    cloud.lose_answer.write().unwrap().insert("vol-1".into());
    let out = discover(request(daily_policy()), &cloud).await.unwrap();
    let b = snapshot_batch(out.batches[1].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    cloud.fail_lookup.store(true, Ordering::SeqCst);
    cloud.settle(RecoveryPointState::Completed);
    let first = time::macros::datetime!(2026-11-29 03:01 UTC);
    let b = refresh_batch(b, &cloud, first).await.unwrap();
    assert_eq!(b.results[0].outcome, Outcome::Unconfirmed);
    assert_eq!(b.pending, 1, "the others completed: {b:?}");
    let later = first + time::Duration::seconds(VISIBILITY_GRACE_SECONDS + 1);
    let b = refresh_batch(b, &cloud, later).await.unwrap();
    assert_eq!(b.results[0].outcome, Outcome::Failed);
    let msg = &b.results[0].error.as_ref().unwrap().message;
    assert!(msg.contains("the lookup for it kept failing"), "{msg}");
    assert!(b.results[1..]
        .iter()
        .all(|r| r.outcome == Outcome::Created && r.error.is_none()));
}

#[tokio::test]
async fn the_wait_between_checks_doubles_to_a_cap_so_a_day_costs_few_checks() {
    let cloud = estate();
    let mut input = daily_policy();
    input = json!({"policy": input, "scheduled_time": "2026-11-29T03:00:00Z", "poll_seconds": 60});
    let out = discover(
        DiscoverRequest {
            input,
            execution: "exec-1".into(),
            started_at: "2026-11-29T03:00:02Z".into(),
        },
        &cloud,
    )
    .await
    .unwrap();
    let mut b = snapshot_batch(out.batches[1].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    assert_eq!(b.wait_seconds, 60, "the first wait is poll_seconds");
    // Nothing ever completes: checks until the 24-hour deadline fails it all.
    let mut now = NOW;
    let mut waits = Vec::new();
    while b.pending > 0 {
        now += time::Duration::seconds(i64::from(b.wait_seconds));
        b = refresh_batch(b, &cloud, now).await.unwrap();
        waits.push(b.wait_seconds);
        assert!(b.polls < 1000, "never ends");
    }
    assert_eq!(&waits[..6], &[120, 240, 480, 900, 900, 900]);
    assert!(
        b.polls <= 100,
        "a day of waiting took {} checks (at 60 s each it would take 1,440)",
        b.polls
    );
    assert!(b
        .results
        .iter()
        .all(|r| r.error.as_ref().unwrap().error_type == ErrorKind::NotReady));
}

#[test]
fn a_long_poll_seconds_is_its_own_cap() {
    let mut b: BatchResult = serde_json::from_value(json!({
        "run": {"policy": "daily", "scheduled_time": "2026-11-29T03:00:00Z", "execution": "e"},
        "location": {"account": ACCOUNT, "region": "us-east-1"},
        "poll_seconds": 1800, "wait_seconds": 1800, "results": [], "pending": 0, "polls": 0
    }))
    .unwrap();
    assert_eq!(b.next_wait(), 1800);
    b.poll_seconds = 0;
    b.wait_seconds = 0;
    assert_eq!(b.next_wait(), 0, "tests poll without waiting");
}

const OTHER: &str = "210987654321";
const GONE: &str = "333333333333";

fn accounts_policy() -> serde_json::Value {
    let mut p = daily_policy();
    p["accounts"] = json!([
        {"account": ACCOUNT},
        {"account": OTHER, "role_arn": format!("arn:aws:iam::{OTHER}:role/strongroom"), "external_id": "sr-ext-1"},
        {"account": GONE, "role_arn": format!("arn:aws:iam::{GONE}:role/strongroom")}
    ]);
    p
}

/// Issue 8, item 4: every account × region of the policy, through the role
/// named for it; an account that cannot be reached is reported, the others
/// are protected.
#[tokio::test]
async fn a_policy_covers_every_account_it_names_and_reports_the_unreachable_one() {
    let cloud = estate();
    source(
        &cloud,
        "us-east-1",
        ResourceType::EbsVolume,
        "vol-other",
        &[("backup", "daily")],
    );
    // The volume lives in the other account.
    {
        let mut sources = cloud.sources.write().unwrap();
        let s = sources.last_mut().unwrap();
        s.location.account = OTHER.into();
        s.target.arn = s.target.arn.replace(ACCOUNT, OTHER);
    }
    cloud
        .fail_account
        .write()
        .unwrap()
        .insert(GONE.into(), ErrorKind::AccessDenied);
    let out = discover(request(accounts_policy()), &cloud).await.unwrap();
    let roles = cloud.roles_used.read().unwrap().clone();
    assert_eq!(roles.len(), 3, "{roles:?}");
    let other: Vec<_> = out
        .batches
        .iter()
        .filter(|b| b.location.account == OTHER)
        .collect();
    assert_eq!(other.len(), 1);
    assert_eq!(other[0].targets[0].id, "vol-other");
    // A batch carries only its own account's role.
    assert_eq!(other[0].policy.accounts.len(), 1);
    assert_eq!(other[0].policy.accounts[0].account, OTHER);
    assert!(out.batches.iter().any(|b| b.location.account == ACCOUNT));
    // The unreachable account: one error per region, naming the account.
    let gone: Vec<_> = out
        .region_errors
        .iter()
        .filter(|e| e.account.as_deref() == Some(GONE))
        .collect();
    assert_eq!(
        gone.len(),
        fixtures::REGIONS.len(),
        "{:?}",
        out.region_errors
    );
    assert!(gone
        .iter()
        .all(|e| e.error.error_type == ErrorKind::AccessDenied));
    // The batch of the other account carries its role to Status.
    let b = snapshot_batch(other[0].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    let role = b.role.as_ref().expect("the other account's role");
    assert_eq!(role.external_id.as_deref(), Some("sr-ext-1"));
    assert_eq!(b.results[0].outcome, Outcome::Created);
}

#[tokio::test]
async fn account_mistakes_name_the_field_and_call_nothing() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (json!([{"account": "12345"}]), "policy.accounts[0].account"),
        (json!([{"account": OTHER}]), "policy.accounts[0].role_arn"),
        (
            json!([{"account": OTHER, "role_arn": "arn:aws:iam::210987654321:user/bob"}]),
            "policy.accounts[0].role_arn",
        ),
        (
            json!([{"account": OTHER, "role_arn": format!("arn:aws:iam::{ACCOUNT}:role/strongroom")}]),
            "policy.accounts[0].role_arn",
        ),
        (
            json!([{"account": OTHER, "role_arn": format!("arn:aws:iam::{OTHER}:role/sr"), "external_id": "x"}]),
            "policy.accounts[0].external_id",
        ),
        (
            json!([{"account": ACCOUNT}, {"account": ACCOUNT}]),
            "policy.accounts[1].account",
        ),
        (
            json!([{"account": OTHER, "role_arn": format!("arn:awsfoo:iam::{OTHER}:role/sr")}]),
            "policy.accounts[0].role_arn",
        ),
        (
            json!([{"account": OTHER, "role_arn": format!("arn:aws:iam::{OTHER}:role/team//sr")}]),
            "policy.accounts[0].role_arn",
        ),
        (
            json!([{"account": OTHER, "role_arn": format!("arn:aws:iam::{OTHER}:role/{}", "r".repeat(65))}]),
            "policy.accounts[0].role_arn",
        ),
    ];
    for (accounts, field) in cases {
        let cloud = estate();
        let mut p = daily_policy();
        p["accounts"] = accounts.clone();
        let e = discover(request(p), &cloud).await.unwrap_err();
        assert_eq!(invalid_field(e), field, "{accounts}");
        assert!(cloud.roles_used.read().unwrap().len() <= 1);
        assert_eq!(cloud.creates.load(Ordering::SeqCst), 0);
    }
}

#[test]
fn role_arns_of_every_partition_and_with_paths_are_accepted() {
    for arn in [
        format!("arn:aws:iam::{OTHER}:role/strongroom"),
        format!("arn:aws-cn:iam::{OTHER}:role/strongroom"),
        format!("arn:aws-us-gov:iam::{OTHER}:role/backup/team~a/strongroom"),
        format!("arn:aws:iam::{OTHER}:role/{}", "r".repeat(64)),
    ] {
        let mut p = daily_policy();
        p["accounts"] = json!([{"account": OTHER, "role_arn": arn}]);
        let input = json!({"policy": p});
        assert!(
            strongroom_core::policy::RunInput::parse(input).is_ok(),
            "{arn}"
        );
    }
}

#[tokio::test]
async fn a_lost_ami_answer_is_found_by_the_completion_check() {
    let cloud = estate();
    cloud.lose_answer.write().unwrap().insert("i-1".into());
    cloud.hide_new.store(true, Ordering::SeqCst);
    let mut p = daily_policy();
    p["ec2"] = json!({"mode": "ami"});
    let out = discover(request(p), &cloud).await.unwrap();
    let b = snapshot_batch(out.batches[1].clone(), &cloud, NOW, None)
        .await
        .unwrap();
    let i1 = b.results.iter().position(|r| r.id == "i-1").unwrap();
    assert_eq!(b.results[i1].outcome, Outcome::Unconfirmed);
    let first = time::macros::datetime!(2026-11-29 03:01 UTC);
    let b = refresh_batch(b, &cloud, first).await.unwrap();
    assert_eq!(
        b.results[i1].outcome,
        Outcome::Unconfirmed,
        "not visible yet"
    );
    cloud.reveal();
    let b = refresh_batch(b, &cloud, first + time::Duration::minutes(1))
        .await
        .unwrap();
    assert_eq!(b.results[i1].outcome, Outcome::Created);
    let p = b.results[i1].recovery_point.as_ref().unwrap();
    assert_eq!(p.kind, RecoveryPointKind::Ami);
    assert_eq!(
        cloud
            .stored()
            .iter()
            .filter(|s| s.point.source == "i-1")
            .count(),
        1,
        "one AMI, never created again"
    );
}

const UNIT: &str = "ou-ab12-cd34ef56";
const NESTED_ACCOUNT: &str = "444444444444";

/// Issue 8, item 4: a policy naming an AWS Organizations unit covers every
/// active account under it, through the unit's role; the home account with
/// its own credentials; an account the policy names keeps its own role; an
/// excluded one is left out.
#[tokio::test]
async fn an_organizational_unit_covers_its_accounts_through_its_role() {
    let cloud = estate();
    cloud.organization.write().unwrap().insert(
        UNIT.into(),
        vec![
            ACCOUNT.into(),
            OTHER.into(),
            NESTED_ACCOUNT.into(),
            GONE.into(),
        ],
    );
    let mut p = daily_policy();
    p["accounts"] =
        json!([{"account": OTHER, "role_arn": format!("arn:aws:iam::{OTHER}:role/own")}]);
    p["organizational_units"] = json!([{
        "id": UNIT, "role_name": "backup/strongroom", "external_id": "sr-ext-2",
        "exclude_accounts": [GONE]
    }]);
    let out = discover(request(p), &cloud).await.unwrap();
    let accounts: Vec<_> = out
        .policy
        .accounts
        .iter()
        .map(|a| {
            (
                a.account.as_str(),
                a.role_arn.as_deref(),
                a.external_id.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        accounts,
        vec![
            (OTHER, Some("arn:aws:iam::210987654321:role/own"), None),
            (ACCOUNT, None, None),
            (
                NESTED_ACCOUNT,
                Some("arn:aws:iam::444444444444:role/backup/strongroom"),
                Some("sr-ext-2")
            ),
        ]
    );
    assert!(
        out.policy.organizational_units.is_empty(),
        "resolved: Prune need not list it again"
    );
    assert!(out.region_errors.is_empty(), "{:?}", out.region_errors);
    // Every account × region was listed, the excluded one never.
    let used = cloud.roles_used.read().unwrap().clone();
    assert!(used.iter().all(|r| r.account != GONE), "{used:?}");
    assert!(out
        .batches
        .iter()
        .all(|b| b.policy.organizational_units.is_empty()));
}

/// A unit that cannot be listed (not the management account, say) is
/// reported per region and stays in the policy: Prune tries it again and
/// never falls back to the home account.
#[tokio::test]
async fn a_unit_that_cannot_be_listed_is_reported_and_nothing_else_is_assumed() {
    let cloud = estate();
    let mut p = daily_policy();
    p["retention"] = json!({"keep_last": 1});
    p["organizational_units"] = json!([{"id": UNIT, "role_name": "strongroom"}]);
    let out = discover(request(p), &cloud).await.unwrap();
    assert!(
        out.batches.is_empty(),
        "no account was resolved: nothing is protected"
    );
    assert_eq!(out.region_errors.len(), fixtures::REGIONS.len());
    assert!(out
        .region_errors
        .iter()
        .all(|e| e.account.as_deref() == Some(UNIT) && e.error.error_type == ErrorKind::NotFound));
    assert_eq!(out.policy.organizational_units.len(), 1, "kept for Prune");
    assert_eq!(cloud.creates.load(Ordering::SeqCst), 0);

    let (req, rules, now) = strongroom_core::prune::parse_request(
        json!({"policy": out.policy, "now": "2026-11-29T03:00:00Z"}),
        NOW,
    )
    .unwrap();
    let pruned = strongroom_core::prune::prune(req, rules, now, &cloud)
        .await
        .unwrap();
    assert_eq!(pruned.locations.len(), fixtures::REGIONS.len());
    assert!(pruned
        .locations
        .iter()
        .all(|l| l.aborted.is_some() && l.location.as_ref().unwrap().account == UNIT));
}

#[tokio::test]
async fn unit_mistakes_name_the_field_and_call_nothing() {
    let cases: Vec<(serde_json::Value, &str)> = vec![
        (
            json!([{"id": "ou-AB12-cd34ef56", "role_name": "sr"}]),
            "policy.organizational_units[0].id",
        ),
        (
            json!([{"id": "ou-ab12-cd34", "role_name": "sr"}]),
            "policy.organizational_units[0].id",
        ),
        (
            json!([{"id": "123456789012", "role_name": "sr"}]),
            "policy.organizational_units[0].id",
        ),
        (
            json!([{"id": UNIT, "role_name": "a b"}]),
            "policy.organizational_units[0].role_name",
        ),
        (
            json!([{"id": UNIT, "role_name": "sr", "external_id": "x"}]),
            "policy.organizational_units[0].external_id",
        ),
        (
            json!([{"id": UNIT, "role_name": "sr", "exclude_accounts": ["1"]}]),
            "policy.organizational_units[0].exclude_accounts[0]",
        ),
        (
            json!([{"id": "r-ab12", "role_name": "sr"}, {"id": "r-ab12", "role_name": "x"}]),
            "policy.organizational_units[1].id",
        ),
    ];
    for (units, field) in cases {
        let cloud = estate();
        cloud
            .organization
            .write()
            .unwrap()
            .insert(UNIT.into(), vec![OTHER.into()]);
        let mut p = daily_policy();
        p["organizational_units"] = units.clone();
        let e = discover(request(p), &cloud).await.unwrap_err();
        assert_eq!(invalid_field(e), field, "{units}");
        assert!(cloud.roles_used.read().unwrap().is_empty());
    }
}
