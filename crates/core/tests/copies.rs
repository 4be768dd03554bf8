//! Issue 10 over the in-memory cloud: the copy stage copies every completed
//! recovery point to each destination, never more in flight than AWS
//! allows, finds what an earlier run copied, shares with a vault account
//! only for as long as the copy needs, refuses AWS managed keys before
//! sharing anything, and prunes each destination under its own retention
//! without touching a locked copy.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use serde_json::json;
use strongroom_core::backup::discover::{discover_run, Batch, DiscoverOutput, DiscoverRequest};
use strongroom_core::backup::snapshot::snapshot_batch;
use strongroom_core::copy::{copy_pass, plan, CopyJob, CopyLimit, CopyRequest, CopyState};
use strongroom_core::fake::fixtures::tags;
use strongroom_core::fake::{MemoryCloud, FAKE_ACCOUNT as ACCOUNT};
use strongroom_core::model::{
    Location, RecoveryPointKind, RecoveryPointState, ResourceType, Target,
};
use strongroom_core::policy::Policy;
use strongroom_core::ports::FoundSource;
use strongroom_core::report::{MapRunOutput, ResultWriterDetails, SnapshotsOutcome};
use strongroom_core::runs::S3Object;
use strongroom_core::tags as contract;
use strongroom_core::{Error, ErrorKind, Reason};

const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-29 04:00 UTC);
const BUCKET: &str = "strongroom-runs-123456789012";
const VAULT: &str = "210987654321";
const SOURCE_REGION: &str = "us-east-1";
const DEST_REGION: &str = "us-west-2";
const KEY: &str = "arn:aws:kms:us-west-2:123456789012:key/11111111-2222-3333-4444-555555555555";
const VAULT_KEY: &str =
    "arn:aws:kms:us-west-2:210987654321:key/66666666-7777-8888-9999-000000000000";
const SOURCE_KEY: &str =
    "arn:aws:kms:us-east-1:123456789012:key/aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn source_location() -> Location {
    Location {
        account: ACCOUNT.into(),
        region: SOURCE_REGION.into(),
    }
}

/// `volumes` EBS volumes, one instance and one RDS instance in us-east-1.
fn estate(volumes: usize, instance_and_db: bool) -> MemoryCloud {
    let cloud = MemoryCloud::new();
    let add = |resource_type, id: String, arn: String| {
        cloud.add_source(FoundSource {
            location: source_location(),
            target: Target {
                resource_type,
                id,
                arn,
                tags: tags(&[("backup", "daily"), ("team", "payments")]),
            },
        })
    };
    for i in 0..volumes {
        let id = format!("vol-{i:04}");
        add(
            ResourceType::EbsVolume,
            id.clone(),
            format!("arn:aws:ec2:us-east-1:{ACCOUNT}:volume/{id}"),
        );
    }
    if instance_and_db {
        add(
            ResourceType::Ec2Instance,
            "i-0001".into(),
            format!("arn:aws:ec2:us-east-1:{ACCOUNT}:instance/i-0001"),
        );
        add(
            ResourceType::RdsInstance,
            "orders".into(),
            format!("arn:aws:rds:us-east-1:{ACCOUNT}:db:orders"),
        );
    }
    cloud
}

fn policy(destination: serde_json::Value) -> serde_json::Value {
    json!({
        "name": "daily",
        "selector": {
            "resource_types": ["ebs-volume", "ec2-instance", "rds-instance"],
            "regions": [SOURCE_REGION],
            "tags": {"backup": "daily"}
        },
        "retention": {"keep_last": 1},
        "copies": [destination]
    })
}

fn same_account() -> serde_json::Value {
    json!({"region": DEST_REGION, "kms_key": KEY})
}

fn vault() -> serde_json::Value {
    json!({
        "region": DEST_REGION,
        "account": VAULT,
        "role_arn": format!("arn:aws:iam::{VAULT}:role/strongroom-vault-copy"),
        "kms_key": VAULT_KEY,
    })
}

fn object(key: &str) -> S3Object {
    S3Object {
        bucket: BUCKET.into(),
        key: key.into(),
    }
}

/// Discover, snapshot every batch (completed at once), and write the Map
/// Run's result files as the Distributed Map would.
async fn backup(
    cloud: &MemoryCloud,
    policy: &serde_json::Value,
    execution: &str,
) -> (DiscoverOutput, SnapshotsOutcome) {
    let req = DiscoverRequest {
        input: json!({"policy": policy, "scheduled_time": "2026-11-29T03:00:00Z", "poll_seconds": 0}),
        execution: execution.into(),
        started_at: "2026-11-29T03:00:02Z".into(),
    };
    let out = discover_run(req, cloud, Some(BUCKET)).await.unwrap();
    let body = cloud.objects.read().unwrap()[&object(&out.files.batches)].clone();
    let batches: Vec<Batch> = String::from_utf8(body)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    *cloud.initial_state.write().unwrap() = Some(RecoveryPointState::Completed);
    let mut rows = Vec::new();
    for b in batches {
        let result = snapshot_batch(b.clone(), cloud, NOW, None).await.unwrap();
        rows.push(json!({
            "Input": serde_json::to_string(&b).unwrap(),
            "Output": serde_json::to_string(&result).unwrap(),
            "Status": "SUCCEEDED",
        }));
    }
    // Copies start pending, as AWS's do.
    *cloud.initial_state.write().unwrap() = None;
    let results = format!("{}/run-1/", out.files.results);
    let file = format!("{results}SUCCEEDED_0.json");
    let manifest = format!("{results}manifest.json");
    let mut objects = cloud.objects.write().unwrap();
    objects.insert(object(&file), serde_json::to_vec(&rows).unwrap());
    objects.insert(
        object(&manifest),
        serde_json::to_vec(&json!({"ResultFiles": {"SUCCEEDED": [{"Key": file, "Size": 1}]}}))
            .unwrap(),
    );
    let snapshots = SnapshotsOutcome::Written(MapRunOutput {
        map_run_arn: "arn:aws:states:us-east-1:123456789012:mapRun:backup/Snapshots:run-1".into(),
        result_writer_details: ResultWriterDetails {
            bucket: BUCKET.into(),
            key: manifest,
        },
    });
    (out, snapshots)
}

fn request(out: &DiscoverOutput, snapshots: &SnapshotsOutcome) -> CopyRequest {
    CopyRequest {
        run: out.run.clone(),
        policy: out.policy.clone(),
        files: out.files.clone(),
        destination: 0,
        snapshots: snapshots.clone(),
        poll_seconds: 0,
        wait_seconds: 0,
    }
}

/// Passes until nothing remains, every copy in flight completing between
/// two passes; returns the destination's final state.
async fn copy_all(cloud: &MemoryCloud, req: &CopyRequest) -> CopyState {
    for _ in 0..20 {
        let out = copy_pass(req.clone(), cloud, NOW).await.unwrap();
        if out.remaining == 0 {
            let body = cloud.objects.read().unwrap()[&out.state].clone();
            return serde_json::from_slice(&body).unwrap();
        }
        cloud.settle(RecoveryPointState::Completed);
    }
    panic!("the copy loop did not end in 20 passes");
}

fn at(cloud: &MemoryCloud, location: &Location) -> Vec<strongroom_core::fake::StoredPoint> {
    cloud
        .stored()
        .into_iter()
        .filter(|p| p.point.location == *location)
        .collect()
}

fn dest(account: &str) -> Location {
    Location {
        account: account.into(),
        region: DEST_REGION.into(),
    }
}

#[tokio::test]
async fn every_completed_point_is_copied_with_the_key_region_and_tags() {
    let cloud = estate(3, true);
    let (out, snapshots) = backup(&cloud, &policy(same_account()), "exec-1").await;
    let state = copy_all(&cloud, &request(&out, &snapshots)).await;
    // Three volumes, one instance set (two volumes), one database.
    assert_eq!(state.jobs.len(), 5);
    let copies = at(&cloud, &dest(ACCOUNT));
    assert_eq!(
        copies.len(),
        6,
        "one copy per EBS snapshot and per DB snapshot"
    );
    for c in &copies {
        assert_eq!(c.point.state, RecoveryPointState::Completed);
        assert_eq!(c.tags[contract::MANAGED], "true");
        assert_eq!(c.tags[contract::POLICY], "daily");
        assert_eq!(c.tags[contract::SOURCE_REGION], SOURCE_REGION);
        assert_eq!(c.tags[contract::SOURCE_ACCOUNT], ACCOUNT);
        assert_eq!(c.tags[contract::CREATED_AT], "2026-11-29T03:00:00Z");
        assert_eq!(c.tags[contract::RUN], "exec-1");
        assert_eq!(c.tags["team"], "payments", "the source's own tags travel");
        assert!(c.tags.contains_key(contract::COPY_OF));
    }
    // The instance set's members are copied as members of one set.
    let set = state
        .jobs
        .iter()
        .find(|j| j.point.kind == RecoveryPointKind::Ec2SnapshotSet)
        .unwrap();
    assert_eq!(set.units.len(), 2);
    for (u, member) in set.units.iter().zip(&set.point.members) {
        let copy = copies
            .iter()
            .find(|c| Some(&c.point.id) == u.copy.as_ref())
            .unwrap();
        assert_eq!(&copy.tags[contract::COPY_OF], member);
        assert_eq!(copy.tags[contract::KIND], "ec2-snapshot-set");
        assert_eq!(copy.tags[contract::SOURCE], "i-0001");
    }
    // The database copy keeps its deterministic name and names its source by ARN.
    let db = copies
        .iter()
        .find(|c| c.point.kind == RecoveryPointKind::RdsSnapshot)
        .unwrap();
    assert!(
        db.point.id.starts_with("strongroom-daily-"),
        "{}",
        db.point.id
    );
    assert!(db.tags[contract::COPY_OF].starts_with("arn:aws:rds:us-east-1:123456789012:snapshot:"));
    // Nothing was shared within one account.
    assert!(cloud.ever_shared.read().unwrap().is_empty());
}

#[tokio::test]
async fn never_more_copies_in_flight_than_the_limit() {
    let cloud = estate(50, false);
    let (out, snapshots) = backup(&cloud, &policy(same_account()), "exec-1").await;
    let req = request(&out, &snapshots);
    let first = copy_pass(req.clone(), &cloud, NOW).await.unwrap();
    assert_eq!(first.counts.started, 20, "the first pass fills the limit");
    assert_eq!(first.counts.waiting, 30);
    assert!(first.remaining > 0);
    // The twenty sources it started were described in one call.
    assert_eq!(cloud.source_describes.load(Ordering::SeqCst), 1);
    // Nothing completed: a second pass starts nothing more.
    let second = copy_pass(req.clone(), &cloud, NOW).await.unwrap();
    assert_eq!(second.counts.started, 20);
    let state = copy_all(&cloud, &req).await;
    assert!(state
        .jobs
        .iter()
        .all(|j| j.state() == strongroom_core::copy::UnitState::Completed));
    assert_eq!(cloud.peak_copies.read().unwrap()[&dest(ACCOUNT)], 20);
    for pass in &state.passes {
        let r = pass[&CopyLimit::EbsSnapshots];
        assert!(r.in_flight <= 20, "{pass:?}");
        if r.waiting > 0 {
            assert_eq!(
                r.in_flight, 20,
                "while work waits, the limit is used: {pass:?}"
            );
        }
    }
    assert_eq!(cloud.copy_starts.load(Ordering::SeqCst), 50);
}

#[tokio::test]
async fn other_copies_in_flight_at_the_destination_leave_less_room() {
    let cloud = estate(30, false);
    // Another policy's 25 copies are in flight there: the limit is full.
    let (out, snapshots) = backup(&cloud, &policy(same_account()), "exec-1").await;
    {
        let stored = cloud.stored();
        let template = stored[0].clone();
        let mut points = cloud.points.write().unwrap();
        for i in 0..25 {
            let mut p = template.clone();
            p.point.id = format!("snap-other{i:03}");
            p.point.location = dest(ACCOUNT);
            p.point.state = RecoveryPointState::Pending;
            p.tags.insert(contract::POLICY.into(), "weekly".into());
            p.tags
                .insert(contract::COPY_OF.into(), format!("snap-x{i}"));
            points.push(p);
        }
    }
    let first = copy_pass(request(&out, &snapshots), &cloud, NOW)
        .await
        .unwrap();
    assert_eq!(first.counts.started, 0, "no room while 25 are in flight");
    assert_eq!(first.counts.waiting, 30);
    cloud.settle(RecoveryPointState::Completed);
    let second = copy_pass(request(&out, &snapshots), &cloud, NOW)
        .await
        .unwrap();
    assert_eq!(second.counts.started, 20);
}

#[tokio::test]
async fn a_rerun_finds_the_copies_instead_of_making_more() {
    let cloud = estate(3, true);
    let (out, snapshots) = backup(&cloud, &policy(same_account()), "exec-1").await;
    copy_all(&cloud, &request(&out, &snapshots)).await;
    let made = cloud.copy_starts.load(Ordering::SeqCst);
    assert_eq!(made, 6);
    // The same scheduled run, started again by hand.
    let (again, snapshots) = backup(&cloud, &policy(same_account()), "exec-2").await;
    let state = copy_all(&cloud, &request(&again, &snapshots)).await;
    assert_eq!(
        cloud.copy_starts.load(Ordering::SeqCst),
        made,
        "no copy twice"
    );
    assert_eq!(at(&cloud, &dest(ACCOUNT)).len(), 6);
    assert!(state.jobs.iter().all(|j| j.units.iter().all(|u| u.reused)));
    let out = copy_pass(request(&again, &snapshots), &cloud, NOW)
        .await
        .unwrap();
    assert_eq!(out.counts.reused, 5);
    assert_eq!(out.counts.started, 0);
}

#[tokio::test]
async fn a_vault_copy_shares_for_the_copy_only_and_uses_the_vault_key() {
    let cloud = estate(2, true);
    let (out, snapshots) = backup(&cloud, &policy(vault()), "exec-1").await;
    // Every source is encrypted with a customer-managed key.
    for p in cloud.stored() {
        cloud
            .keys
            .write()
            .unwrap()
            .insert(p.point.id.clone(), (SOURCE_KEY.into(), false));
    }
    let req = request(&out, &snapshots);
    let first = copy_pass(req.clone(), &cloud, NOW).await.unwrap();
    assert_eq!(first.counts.started, 4);
    // While the copies run, the sources are shared with the vault and its
    // copy role may use the source key.
    let shared: Vec<_> = at(&cloud, &source_location())
        .into_iter()
        .filter(|p| p.shared_with == vec![VAULT.to_string()])
        .collect();
    assert_eq!(shared.len(), 4);
    assert!(cloud
        .grants
        .read()
        .unwrap()
        .iter()
        .all(|(k, _, g)| k == SOURCE_KEY && g.ends_with(":role/strongroom-vault-copy")));
    // One grant for the one source key, whatever the number of snapshots.
    assert_eq!(cloud.grants_made.load(Ordering::SeqCst), 1);
    cloud.settle(RecoveryPointState::Completed);
    let state = copy_all(&cloud, &req).await;
    assert_eq!(cloud.grants_made.load(Ordering::SeqCst), 1);
    assert!(state.grants.iter().all(|g| g.revoked));
    // Copies belong to the vault, in its region; sharing and grants are undone.
    let copies = at(&cloud, &dest(VAULT));
    assert_eq!(copies.len(), 5);
    assert!(copies.iter().all(|c| c.owner == VAULT));
    assert!(at(&cloud, &source_location())
        .iter()
        .all(|p| p.shared_with.is_empty()));
    assert!(cloud.grants.read().unwrap().is_empty());
    assert!(state.jobs.iter().all(|j| j.shared && j.unshared));
    assert!(cloud
        .roles_used
        .read()
        .unwrap()
        .iter()
        .any(|r| r.account == VAULT));
}

#[tokio::test]
async fn an_aws_managed_key_fails_clearly_before_anything_is_shared() {
    let cloud = estate(2, false);
    let (discovered, snapshots) = backup(&cloud, &policy(vault()), "exec-1").await;
    for p in cloud.stored() {
        cloud.keys.write().unwrap().insert(
            p.point.id.clone(),
            (
                "arn:aws:kms:us-east-1:123456789012:key/aws-ebs".into(),
                true,
            ),
        );
    }
    let out = copy_pass(request(&discovered, &snapshots), &cloud, NOW)
        .await
        .unwrap();
    assert_eq!(out.counts.failed, 2);
    assert_eq!(out.remaining, 0);
    assert!(
        cloud.ever_shared.read().unwrap().is_empty(),
        "nothing shared"
    );
    assert_eq!(
        cloud.copy_starts.load(Ordering::SeqCst),
        0,
        "nothing copied"
    );
    let body = cloud.objects.read().unwrap()[&out.state].clone();
    let state: CopyState = serde_json::from_slice(&body).unwrap();
    let e = state.jobs[0].error.as_ref().unwrap();
    assert_eq!(e.error_type, ErrorKind::InvalidInput);
    assert!(e.message.contains("customer-managed key"), "{}", e.message);
    assert!(e.message.contains("policy.copies[0]"), "{}", e.message);
    // The run report lists the destination's copies and each failure.
    let summary = strongroom_core::report::report_run(
        strongroom_core::report::ReportRun {
            run: state.run.clone(),
            files: request(&discovered, &snapshots).files,
            snapshots: snapshots.clone(),
            copies: vec![strongroom_core::report::CopyOutcome::Done(out.clone())],
            prune: None,
        },
        &cloud,
    )
    .await
    .unwrap();
    assert_eq!(summary.copies[0].counts.failed, 2);
    assert_eq!(summary.copies[0].location.as_ref(), Some(&dest(VAULT)));
    let full: strongroom_core::report::RunReport =
        serde_json::from_slice(&cloud.objects.read().unwrap()[&summary.report]).unwrap();
    assert_eq!(full.copies[0].failures.len(), 2);
    assert!(
        full.failures
            .iter()
            .any(|f| f.error_type == "Strongroom.InvalidInput"
                && f.message.starts_with("copy failed"))
    );
    assert_eq!(full.outcome, strongroom_core::report::RunOutcome::Partial);
}

#[tokio::test]
async fn a_locked_vault_copy_survives_a_prune_that_would_delete_it() {
    let mut destination = vault();
    destination["lock"] = json!({"mode": "compliance", "duration_days": 30, "cool_off_hours": 1});
    destination["prune_role_arn"] =
        json!(format!("arn:aws:iam::{VAULT}:role/strongroom-vault-prune"));
    destination["retention"] = json!({"keep_last": 1});
    let cloud = estate(1, false);
    let p = policy(destination);
    let (out, snapshots) = backup(&cloud, &p, "exec-1").await;
    let state = copy_all(&cloud, &request(&out, &snapshots)).await;
    assert!(state.jobs[0].units[0].locked);
    let copy_id = state.jobs[0].units[0].copy.clone().unwrap();
    // A newer copy of the same volume makes the first one prunable by
    // `keep_last: 1`, if it were not locked.
    {
        let mut points = cloud.points.write().unwrap();
        let mut newer = points
            .iter()
            .find(|p| p.point.id == copy_id)
            .unwrap()
            .clone();
        newer.point.id = "snap-newer".into();
        newer.point.created_at = NOW;
        newer.locked = false;
        newer
            .tags
            .insert(contract::CREATED_AT.into(), "2026-11-29T04:00:00Z".into());
        points.push(newer);
    }
    let req = strongroom_core::prune::parse_request(
        json!({"policy": out.policy, "now": "2026-11-29T04:00:00Z"}),
        NOW,
    )
    .unwrap();
    let report = strongroom_core::prune::prune(req.0, req.1, req.2, &cloud)
        .await
        .unwrap();
    let vault_report = report
        .locations
        .iter()
        .find(|l| l.location.as_ref() == Some(&dest(VAULT)))
        .expect("the vault is pruned through its prune role");
    assert!(vault_report.deleted.is_empty());
    let kept = vault_report
        .kept
        .iter()
        .find(|d| d.id == copy_id)
        .unwrap_or_else(|| panic!("{vault_report:#?}"));
    assert_eq!(kept.reasons, vec![Reason::Locked]);
    // Unlocked, the same prune (dry run) would delete it.
    for p in cloud.points.write().unwrap().iter_mut() {
        p.locked = false;
    }
    let dry = strongroom_core::prune::parse_request(
        json!({"policy": out.policy, "now": "2026-11-29T04:00:00Z", "dry_run": true}),
        NOW,
    )
    .unwrap();
    let would = strongroom_core::prune::prune(dry.0, dry.1, dry.2, &cloud)
        .await
        .unwrap();
    assert!(would
        .locations
        .iter()
        .flat_map(|l| &l.deleted)
        .any(|d| d.id == copy_id));
    assert!(!cloud.deleted.read().unwrap().contains(&copy_id));
    assert!(cloud
        .roles_used
        .read()
        .unwrap()
        .iter()
        .any(|r| r.role_arn.as_deref()
            == Some("arn:aws:iam::210987654321:role/strongroom-vault-prune")));
}

#[tokio::test]
async fn a_vault_without_a_prune_role_is_not_pruned_from_the_source() {
    let cloud = estate(1, false);
    let (out, _) = backup(&cloud, &policy(vault()), "exec-1").await;
    let req = strongroom_core::prune::parse_request(json!({"policy": out.policy}), NOW).unwrap();
    let report = strongroom_core::prune::prune(req.0, req.1, req.2, &cloud)
        .await
        .unwrap();
    assert!(report
        .locations
        .iter()
        .all(|l| l.location.as_ref().unwrap().account == ACCOUNT));
    assert!(
        report.notes.iter().any(|n| n.contains("no prune_role_arn")),
        "{:?}",
        report.notes
    );
}

#[tokio::test]
async fn an_ami_is_copied_whole_and_its_copy_s_snapshots_are_locked() {
    let cloud = estate(0, true);
    let mut destination = vault();
    destination["lock"] = json!({"mode": "governance", "duration_days": 7});
    let mut p = policy(destination);
    p["selector"]["resource_types"] = json!(["ec2-instance"]);
    p["ec2"] = json!({"mode": "ami"});
    let (out, snapshots) = backup(&cloud, &p, "exec-1").await;
    let state = copy_all(&cloud, &request(&out, &snapshots)).await;
    assert_eq!(state.jobs.len(), 1);
    let job = &state.jobs[0];
    assert_eq!(job.point.kind, RecoveryPointKind::Ami);
    assert_eq!(job.units.len(), 1, "one CopyImage for the whole AMI");
    let unit = &job.units[0];
    assert!(unit.copy.as_ref().unwrap().starts_with("ami-"));
    assert!(
        !unit.copy_snapshots.is_empty(),
        "the copy's snapshots are known"
    );
    assert!(unit.locked);
    let copy = at(&cloud, &dest(VAULT))
        .into_iter()
        .find(|c| Some(&c.point.id) == unit.copy.as_ref())
        .unwrap();
    assert_eq!(copy.point.kind, RecoveryPointKind::Ami);
    let source = at(&cloud, &source_location())
        .into_iter()
        .find(|p| p.point.id == job.point.id)
        .unwrap();
    assert!(
        source.name.starts_with("strongroom-daily-"),
        "{}",
        source.name
    );
    assert_eq!(copy.name, source.name, "the copy keeps the AMI's name");
    assert_eq!(copy.tags[contract::COPY_OF], job.point.id);
    assert_eq!(copy.tags[contract::KIND], "ami");
    assert!(
        job.shared && job.unshared,
        "shared with the vault for the copy only"
    );
}

#[tokio::test]
async fn a_vault_pass_whose_state_was_lost_still_unshares_and_revokes() {
    let cloud = estate(3, false);
    let (out, snapshots) = backup(&cloud, &policy(vault()), "exec-1").await;
    for p in cloud.stored() {
        cloud
            .keys
            .write()
            .unwrap()
            .insert(p.point.id.clone(), (SOURCE_KEY.into(), false));
    }
    let req = request(&out, &snapshots);
    let first = copy_pass(req.clone(), &cloud, NOW).await.unwrap();
    assert_eq!(first.counts.started, 3);
    // The pass's state file is lost (its write failed after the copies
    // started, say): the next pass starts from the snapshot stage again.
    cloud.objects.write().unwrap().remove(&first.state);
    cloud.settle(RecoveryPointState::Completed);
    let state = copy_all(&cloud, &req).await;
    assert_eq!(
        cloud.copy_starts.load(Ordering::SeqCst),
        3,
        "found, not copied again"
    );
    assert!(state.jobs.iter().all(|j| j.shared && j.unshared));
    assert!(at(&cloud, &source_location())
        .iter()
        .all(|p| p.shared_with.is_empty()));
    assert!(
        cloud.grants.read().unwrap().is_empty(),
        "the lost grant is revoked"
    );
}

#[tokio::test]
async fn a_destination_without_account_refuses_a_policy_over_other_accounts() {
    let cloud = estate(1, false);
    let mut p = policy(same_account());
    p["accounts"] = json!([
        {"account": ACCOUNT},
        {"account": "333333333333", "role_arn": "arn:aws:iam::333333333333:role/strongroom"}
    ]);
    let req = DiscoverRequest {
        input: json!({"policy": p, "scheduled_time": "2026-11-29T03:00:00Z"}),
        execution: "exec-1".into(),
        started_at: "2026-11-29T03:00:02Z".into(),
    };
    match discover_run(req, &cloud, Some(BUCKET)).await {
        Err(Error::InvalidInput { field, message }) => {
            assert_eq!(field, "policy.copies[0].account");
            assert!(message.contains("other than"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn copy_names_are_stable_short_enough_and_differ_by_source() {
    use strongroom_core::copy::copy_name;
    let name = "strongroom-daily-20261129t030000z-orders";
    let a = copy_name(name, "arn:aws:rds:us-east-1:123456789012:snapshot:x", 63);
    let b = copy_name(name, "arn:aws:rds:us-west-2:123456789012:snapshot:x", 63);
    assert_ne!(a, b, "same name, another region: another copy name");
    assert_eq!(
        a,
        copy_name(name, "arn:aws:rds:us-east-1:123456789012:snapshot:x", 63)
    );
    assert!(a.starts_with(name) && a.len() == name.len() + 11, "{a}");
    let long = "strongroom-daily-20261129t030000z-".to_owned() + &"a".repeat(60);
    let c = copy_name(&long, "k", 63);
    assert_eq!(c.chars().count(), 63, "{c}");
    assert!(!c.contains("--"));
}

#[tokio::test]
async fn a_redshift_snapshot_reaches_a_vault_as_a_share_that_prune_takes_back() {
    let cloud = MemoryCloud::new();
    cloud.add_source(FoundSource {
        location: source_location(),
        target: Target {
            resource_type: ResourceType::RedshiftCluster,
            id: "warehouse".into(),
            arn: format!("arn:aws:redshift:us-east-1:{ACCOUNT}:cluster:warehouse"),
            tags: tags(&[("backup", "daily")]),
        },
    });
    let mut p = policy(vault());
    p["selector"]["resource_types"] = json!(["redshift-cluster"]);
    let (out, snapshots) = backup(&cloud, &p, "exec-1").await;
    let state = copy_all(&cloud, &request(&out, &snapshots)).await;
    let last = copy_pass(request(&out, &snapshots), &cloud, NOW)
        .await
        .unwrap();
    assert_eq!(last.counts.shared, 1);
    assert_eq!(last.counts.completed, 1);
    assert_eq!(last.counts.started, 0, "nothing is copied");
    assert_eq!(cloud.copy_starts.load(Ordering::SeqCst), 0);
    assert!(
        state.jobs[0].shared && !state.jobs[0].unshared,
        "the share stays"
    );
    let first = state.jobs[0].point.id.clone();
    let source = || {
        at(&cloud, &source_location())
            .into_iter()
            .find(|p| p.point.id == first)
            .unwrap()
    };
    assert_eq!(source().shared_with, vec![VAULT.to_string()]);
    // Two newer snapshots: `keep_last: 1` no longer keeps the first, which
    // only the policy's vault may restore (prune takes that back and deletes
    // it), nor the second, which another account may restore (kept).
    {
        let mut points = cloud.points.write().unwrap();
        let template = points.iter().find(|p| p.point.id == first).unwrap().clone();
        for (id, hours, shared) in [
            ("strongroom-second", 1, "444455556666"),
            ("strongroom-third", 2, ""),
        ] {
            let mut q = template.clone();
            q.point.id = id.into();
            q.name = id.into();
            q.point.created_at =
                time::macros::datetime!(2026-11-29 03:00 UTC) + time::Duration::minutes(hours * 20);
            q.tags.insert(
                contract::CREATED_AT.into(),
                strongroom_core::model::format_time(q.point.created_at),
            );
            q.shared_with = if shared.is_empty() {
                vec![]
            } else {
                vec![shared.to_string()]
            };
            points.push(q);
        }
    }
    let req = strongroom_core::prune::parse_request(
        json!({"policy": out.policy, "now": "2026-11-29T04:00:00Z"}),
        NOW,
    )
    .unwrap();
    let report = strongroom_core::prune::prune(req.0, req.1, req.2, &cloud)
        .await
        .unwrap();
    let deleted: Vec<String> = report
        .locations
        .iter()
        .flat_map(|l| &l.deleted)
        .map(|d| d.id.clone())
        .collect();
    assert_eq!(deleted, vec![first.clone()], "{report:#?}");
    let refused = report
        .locations
        .iter()
        .flat_map(|l| &l.refused)
        .find(|d| d.id == "strongroom-second")
        .unwrap();
    assert!(
        refused
            .reasons
            .contains(&Reason::SharedWith(vec!["444455556666".into()])),
        "{:?}",
        refused.reasons
    );
}

#[tokio::test]
async fn a_pass_refuses_another_runs_files_and_a_missing_destination() {
    let cloud = estate(1, false);
    let (out, snapshots) = backup(&cloud, &policy(same_account()), "exec-1").await;
    let mut req = request(&out, &snapshots);
    req.destination = 3;
    match copy_pass(req, &cloud, NOW).await {
        Err(Error::InvalidInput { field, message }) => {
            assert_eq!(field, "destination");
            assert!(message.contains("1 copy destinations"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let mut req = request(&out, &snapshots);
    req.poll_seconds = 60;
    req.wait_seconds = 86_400;
    assert!(matches!(
        copy_pass(req, &cloud, NOW).await,
        Err(Error::InvalidInput { field, .. }) if field == "wait_seconds"
    ));
    let mut req = request(&out, &snapshots);
    req.poll_seconds = 4000;
    assert!(matches!(
        copy_pass(req, &cloud, NOW).await,
        Err(Error::InvalidInput { field, .. }) if field == "poll_seconds"
    ));
    let mut req = request(&out, &snapshots);
    req.files.report = "runs/daily/other/report.json".into();
    assert!(matches!(
        copy_pass(req, &cloud, NOW).await,
        Err(Error::InvalidInput { field, .. }) if field == "files"
    ));
    assert_eq!(cloud.copy_starts.load(Ordering::SeqCst), 0);
}

fn bad(destination: serde_json::Value, regions: &[&str]) -> (String, String) {
    let mut p = policy(destination);
    p["selector"]["regions"] = json!(regions);
    let v = json!({"policy": p});
    match strongroom_core::policy::RunInput::parse(v) {
        Err(Error::InvalidInput { field, message }) => (field, message),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn bad_destinations_are_named_with_their_fix() {
    let with = |patch: serde_json::Value| {
        let mut d = vault();
        for (k, v) in patch.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    };
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (
            with(json!({"region": "us-wast-2"})),
            "policy.copies[0].region",
            "not a region",
        ),
        (
            with(json!({"account": "2109"})),
            "policy.copies[0].account",
            "12 digits",
        ),
        (
            with(json!({"role_arn": "arn:aws:iam::999999999999:role/x"})),
            "policy.copies[0].role_arn",
            "account 999999999999",
        ),
        (
            with(json!({"role_arn": null})),
            "policy.copies[0].role_arn",
            "goes through a role",
        ),
        (
            with(json!({"kms_key": "my-key"})),
            "policy.copies[0].kms_key",
            "not a KMS key ARN",
        ),
        (
            with(
                json!({"kms_key": "arn:aws:kms:eu-west-1:210987654321:key/66666666-7777-8888-9999-000000000000"}),
            ),
            "policy.copies[0].kms_key",
            "is in eu-west-1",
        ),
        (
            with(json!({"kms_key": KEY})),
            "policy.copies[0].kms_key",
            "not the vault account",
        ),
        (
            with(json!({"kms_key": "arn:aws:kms:us-west-2:210987654321:alias/aws/ebs"})),
            "policy.copies[0].kms_key",
            "AWS managed",
        ),
        (
            with(json!({"lock": {"mode": "compliance", "duration_days": 40000}})),
            "policy.copies[0].lock.duration_days",
            "1-36500",
        ),
        (
            with(json!({"lock": {"mode": "governance", "duration_days": 7, "cool_off_hours": 2}})),
            "policy.copies[0].lock.cool_off_hours",
            "compliance mode only",
        ),
        (
            with(json!({"lock": {"mode": "compliance", "duration_days": 7, "cool_off_hours": 73}})),
            "policy.copies[0].lock.cool_off_hours",
            "1-72",
        ),
        (
            with(
                json!({"prune_role_arn": format!("arn:aws:iam::{VAULT}:role/strongroom-vault-copy")}),
            ),
            "policy.copies[0].prune_role_arn",
            "copy role",
        ),
        (
            json!({"region": DEST_REGION, "kms_key": KEY, "role_arn": "arn:aws:iam::123456789012:role/x"}),
            "policy.copies[0].role_arn",
            "without an account",
        ),
        (
            with(json!({"retention": {"keep_daily": 0}})),
            "policy.copies[0].retention",
            "",
        ),
    ];
    for (d, field, needle) in cases {
        let (f, m) = bad(d.clone(), &[SOURCE_REGION]);
        assert_eq!(f, field, "{d}: {m}");
        assert!(m.contains(needle), "{d}: {m}");
    }
    // A destination that is a protected location.
    let (f, m) = bad(same_account(), &[SOURCE_REGION, DEST_REGION]);
    assert_eq!(f, "policy.copies[0].region");
    assert!(m.contains("another region or account"), "{m}");
    // The same destination twice.
    let mut p = policy(same_account());
    p["copies"] = json!([same_account(), same_account()]);
    match strongroom_core::policy::RunInput::parse(json!({"policy": p})) {
        Err(Error::InvalidInput { field, message }) => {
            assert_eq!(field, "policy.copies[1]");
            assert!(message.contains("twice"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    // Redshift: AWS copies a cluster's snapshots to one region of its
    // account only (a second region is refused); a vault gets a share.
    let mut p = policy(vault());
    p["selector"]["resource_types"] = json!(["ebs-volume", "redshift-cluster"]);
    strongroom_core::policy::RunInput::parse(json!({"policy": p})).unwrap();
    let mut p = policy(same_account());
    p["selector"]["resource_types"] = json!(["redshift-cluster"]);
    let mut second = same_account();
    second["region"] = json!("eu-west-1");
    second["kms_key"] =
        json!("arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555");
    p["copies"] = json!([same_account(), second]);
    match strongroom_core::policy::RunInput::parse(json!({"policy": p})) {
        Err(Error::InvalidInput { field, message }) => {
            assert_eq!(field, "policy.copies[1]");
            assert!(message.contains("one other region"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let mut p = policy(same_account());
    p["selector"]["resource_types"] = json!(["redshift-cluster"]);
    let parsed = strongroom_core::policy::RunInput::parse(json!({"policy": p})).unwrap();
    let copy = strongroom_core::copy::ClusterCopy::for_kind(
        &parsed.policy,
        RecoveryPointKind::RedshiftSnapshot,
    )
    .unwrap();
    assert_eq!(copy.region, DEST_REGION);
    assert_eq!(copy.kms_key, KEY);
    assert!(strongroom_core::copy::ClusterCopy::for_kind(
        &parsed.policy,
        RecoveryPointKind::EbsSnapshot
    )
    .is_none());
    // And a good one parses.
    let p: Policy = serde_json::from_value(policy(vault())).unwrap();
    p.validate("policy").unwrap();
}

mod planner {
    use super::*;
    use proptest::prelude::*;
    use strongroom_core::copy::{CopyUnit, UnitState};
    use strongroom_core::model::RecoveryPoint;

    fn job(kind: RecoveryPointKind, states: &[UnitState], n: usize) -> CopyJob {
        let point = RecoveryPoint {
            id: format!("p{n}"),
            kind,
            members: vec![],
            resource_type: kind.facts().resource_type,
            source: format!("s{n}"),
            location: source_location(),
            created_at: NOW,
            state: RecoveryPointState::Completed,
        };
        CopyJob {
            point,
            units: states
                .iter()
                .enumerate()
                .map(|(i, s)| CopyUnit {
                    source: format!("snap-{n}-{i}"),
                    copy: None,
                    state: *s,
                    reused: false,
                    locked: false,
                    copy_snapshots: vec![],
                    error: None,
                })
                .collect(),
            shared: false,
            unshared: false,
            keys: None,
            error: None,
            recorded: false,
        }
    }

    fn state() -> impl Strategy<Value = UnitState> {
        prop_oneof![
            Just(UnitState::Waiting),
            Just(UnitState::InFlight),
            Just(UnitState::Completed),
            Just(UnitState::Failed),
        ]
    }

    fn kind() -> impl Strategy<Value = RecoveryPointKind> {
        prop_oneof![
            Just(RecoveryPointKind::EbsSnapshot),
            Just(RecoveryPointKind::Ec2SnapshotSet),
            Just(RecoveryPointKind::RdsSnapshot),
            Just(RecoveryPointKind::AuroraSnapshot),
            Just(RecoveryPointKind::Ami),
        ]
    }

    proptest! {
        /// Whatever the jobs and the copies already in flight: only waiting
        /// units start, each once, never past a limit, and while units of a
        /// limit wait, its room is used up.
        #[test]
        fn the_plan_fills_the_limit_and_never_passes_it(
            jobs in prop::collection::vec((kind(), prop::collection::vec(state(), 1..6)), 0..40),
            ebs in 0usize..30,
            db in 0usize..30,
        ) {
            let jobs: Vec<CopyJob> = jobs.iter().enumerate().map(|(n, (k, s))| job(*k, s, n)).collect();
            let in_flight = BTreeMap::from([(CopyLimit::EbsSnapshots, ebs), (CopyLimit::DbSnapshots, db), (CopyLimit::Images, ebs + db)]);
            let planned = plan(&jobs, &in_flight);
            let mut seen = std::collections::BTreeSet::new();
            let mut per: BTreeMap<CopyLimit, usize> = BTreeMap::new();
            for (j, u) in &planned {
                prop_assert!(seen.insert((*j, *u)), "planned twice");
                prop_assert_eq!(jobs[*j].units[*u].state, UnitState::Waiting);
                *per.entry(CopyLimit::of(jobs[*j].point.kind).unwrap()).or_default() += 1;
            }
            for limit in [CopyLimit::EbsSnapshots, CopyLimit::DbSnapshots, CopyLimit::Images] {
                let started = per.get(&limit).copied().unwrap_or(0);
                let busy = in_flight[&limit];
                prop_assert!(busy.max(limit.max_in_flight()) >= busy + started || started == 0);
                prop_assert!(busy + started <= limit.max_in_flight().max(busy));
                let waiting = jobs.iter()
                    .filter(|j| CopyLimit::of(j.point.kind) == Some(limit))
                    .flat_map(|j| &j.units)
                    .filter(|u| u.state == UnitState::Waiting)
                    .count();
                let room = limit.max_in_flight().saturating_sub(busy);
                prop_assert_eq!(started, waiting.min(room), "work-conserving");
            }
        }
    }

    #[test]
    fn a_started_set_is_finished_before_another_begins() {
        use UnitState::*;
        let jobs = vec![
            job(RecoveryPointKind::Ec2SnapshotSet, &[Waiting, Waiting], 0),
            job(
                RecoveryPointKind::Ec2SnapshotSet,
                &[InFlight, Waiting, Waiting],
                1,
            ),
        ];
        let in_flight = BTreeMap::from([(CopyLimit::EbsSnapshots, 18)]);
        assert_eq!(plan(&jobs, &in_flight), vec![(1, 1), (1, 2)]);
    }
}
