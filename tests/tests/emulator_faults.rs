//! The AWS adapters under the emulator's switchable faults (patch 10): lost
//! answers, EC2's delayed visibility, pending snapshots and service quotas.
//! The whole state machine under throttling is in `state_machine.rs`.

use std::time::{Duration, Instant};

use serde_json::json;
use strongroom_aws::{AwsCloud, Clients};
use strongroom_core::backup::discover::{discover, DiscoverRequest};
use strongroom_core::backup::snapshot::{snapshot_batch, BatchResult, Outcome};
use strongroom_core::backup::status::refresh_batch;
use strongroom_core::fake::fixtures::{self, discover_request};
use strongroom_core::model::{RecoveryPointKind, ResourceType};
use strongroom_core::ErrorKind;
use strongroom_tests::{Emulator, FoundKind, Manifest};

async fn snapshot_all(cloud: &AwsCloud, req: DiscoverRequest) -> Vec<BatchResult> {
    let out = discover(req, cloud).await.expect("discover");
    let mut results = Vec::new();
    for b in out.batches {
        results.push(
            snapshot_batch(b, cloud, time::OffsetDateTime::now_utc(), None)
                .await
                .expect("snapshot batch"),
        );
    }
    results
}

/// Runs the completion checks the way the state machine does until nothing
/// is pending (at most 60 s).
async fn settle(cloud: &AwsCloud, batches: Vec<BatchResult>) -> Vec<BatchResult> {
    let started = Instant::now();
    let mut out = Vec::new();
    for mut b in batches {
        while b.pending > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "still pending after 60 s: {b:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
            b = refresh_batch(b, cloud, time::OffsetDateTime::now_utc())
                .await
                .expect("completion check");
        }
        out.push(b);
    }
    out
}

fn selected(manifest: &Manifest, t: ResourceType) -> Vec<&strongroom_tests::SeededResource> {
    manifest
        .resources
        .iter()
        .filter(|r| r.resource_type == t && fixtures::REGIONS.contains(&r.region.as_str()))
        .filter(|r| r.tags.get("backup").map(String::as_str) == Some("daily"))
        .filter(|r| r.tags.get("backup-skip").map(String::as_str) != Some("true"))
        .collect()
}

/// EBS snapshots have no idempotency token: a create whose answer is lost is
/// never sent again; the completion checks find what it made once EC2's
/// describes show it, and count it as this run's.
#[tokio::test]
async fn lost_ebs_answers_are_found_by_the_completion_check_never_sent_twice() {
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    emu.set_faults(&json!({
        "lost_response_fraction": 1.0,
        "lost_response_actions": ["CreateSnapshot", "CreateSnapshots"],
        "visibility_seconds": 2,
        "pending_describes": 1
    }));
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let types = ["ebs-volume", "ec2-instance"];
    let made = snapshot_all(&cloud, discover_request("exec-lost", &types, json!({}))).await;
    let targets = selected(&manifest, ResourceType::EbsVolume).len()
        + selected(&manifest, ResourceType::Ec2Instance).len();
    let results: Vec<_> = made.iter().flat_map(|b| &b.results).collect();
    assert_eq!(results.len(), targets);
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Unconfirmed
            && r.error.as_ref().unwrap().message.contains("InternalError")),
        "{results:?}"
    );
    let done = settle(&cloud, made).await;
    for r in done.iter().flat_map(|b| &b.results) {
        assert_eq!(r.outcome, Outcome::Created, "{r:?}");
        assert!(r.error.is_none(), "{r:?}");
    }
    let creates = emu
        .calls()
        .iter()
        .filter(|c| c.client == "strongroom" && c.action.starts_with("CreateSnapshot"))
        .count();
    assert_eq!(creates, targets, "one create per target, never again");
    // Exactly one recovery point per source.
    let points = emu.recovery_points().await;
    for t in [ResourceType::EbsVolume, ResourceType::Ec2Instance] {
        for r in selected(&manifest, t) {
            let n = points
                .iter()
                .filter(|p| p.tags.get("strongroom:source") == Some(&r.id))
                .count();
            let want = if t == ResourceType::Ec2Instance {
                r.volumes.len()
            } else {
                1
            };
            assert_eq!(n, want, "{}", r.id);
        }
    }
}

/// CreateImage is retried by the SDK after a lost answer; the name is then
/// taken by the first attempt's AMI, which describes do not show yet. The
/// target is unconfirmed (nothing waits inside the function); the
/// completion checks find the AMI by its tags once it shows, and it counts
/// as this run's.
#[tokio::test]
async fn an_ami_whose_answer_was_lost_is_found_once_visible() {
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    emu.set_faults(&json!({
        "lost_response_fraction": 1.0,
        "lost_response_actions": ["CreateImage"],
        "visibility_seconds": 2
    }));
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let made = snapshot_all(
        &cloud,
        discover_request("exec-ami", &["ec2-instance"], json!({"mode": "ami"})),
    )
    .await;
    let instances = selected(&manifest, ResourceType::Ec2Instance);
    assert!(
        made.iter()
            .flat_map(|b| &b.results)
            .all(|r| r.outcome == Outcome::Unconfirmed),
        "{made:?}"
    );
    let done = settle(&cloud, made).await;
    let results: Vec<_> = done.iter().flat_map(|b| &b.results).collect();
    assert_eq!(results.len(), instances.len());
    for r in &results {
        assert_eq!(r.outcome, Outcome::Created, "{r:?}");
        assert_eq!(
            r.recovery_point.as_ref().unwrap().kind,
            RecoveryPointKind::Ami
        );
    }
    let amis = emu
        .recovery_points()
        .await
        .into_iter()
        .filter(|f| f.kind == FoundKind::Ami)
        .count();
    assert_eq!(amis, instances.len(), "one AMI per instance");
}

/// A create refused for a quota fails alone, and says which quota and what
/// to do; the other sources are protected.
#[tokio::test]
async fn a_quota_failure_names_the_quota_and_the_others_are_protected() {
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    // Room for one more manual DB snapshot in each region.
    let used = emu.rds_manual_snapshots_used().await;
    emu.set_faults(&json!({"quotas": {"rds_manual_snapshots": used + 1}}));
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let made = snapshot_all(
        &cloud,
        discover_request("exec-q", &["rds-instance"], json!({})),
    )
    .await;
    let us_east: Vec<_> = made
        .iter()
        .filter(|b| b.location.region == "us-east-1")
        .flat_map(|b| &b.results)
        .collect();
    let in_region = selected(&manifest, ResourceType::RdsInstance)
        .into_iter()
        .filter(|r| r.region == "us-east-1")
        .count();
    assert!(in_region >= 2, "the estate has two RDS instances there");
    assert_eq!(
        us_east
            .iter()
            .filter(|r| r.outcome == Outcome::Created)
            .count(),
        1,
        "{us_east:?}"
    );
    let failed: Vec<_> = us_east
        .iter()
        .filter(|r| r.outcome == Outcome::Failed)
        .collect();
    assert_eq!(failed.len(), in_region - 1);
    for r in failed {
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.error_type, ErrorKind::QuotaExceeded);
        assert!(
            e.message.contains("SnapshotQuotaExceeded")
                && e.message.contains("ManualSnapshots")
                && e.message.contains("higher quota"),
            "{}",
            e.message
        );
    }
}

/// Issue 7, item 8: Discover's quota preflight reads RDS's own quota
/// (`DescribeAccountAttributes`) and counts EBS and Redshift snapshots; a
/// run or a retention that will not fit is a warning in the output.
#[tokio::test]
async fn the_preflight_warns_before_a_quota_is_hit() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let used = emu.rds_manual_snapshots_used().await;
    // No room left for manual DB snapshots.
    emu.set_faults(&json!({"quotas": {"rds_manual_snapshots": used}}));
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let mut req = discover_request("exec-pre", &["rds-instance", "redshift-cluster"], json!({}));
    req.input["policy"]["retention"] =
        json!({"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 12});
    req.input["policy"]["quotas"] = json!({"redshift_manual_snapshots": 20});
    emu.reset_calls();
    let out = discover(req, &cloud).await.expect("discover");
    let w = |region: &str, needle: &str| {
        out.quota_warnings
            .iter()
            .any(|w| w.region == region && w.message.contains(needle))
    };
    assert!(
        w("us-east-1", "RDS manual DB snapshots (ManualSnapshots) in us-east-1: this run makes 2 but only 0 are left"),
        "{:#?}",
        out.quota_warnings
    );
    assert!(
        w("us-east-1", "1 sources × 23 kept points = 23 > quota 20"),
        "{:#?}",
        out.quota_warnings
    );
    // One DescribeAccountAttributes and one count of Redshift snapshots per region.
    let calls = emu.strongroom_calls();
    assert_eq!(
        calls.get("rds:DescribeAccountAttributes"),
        Some(&2),
        "{calls:?}"
    );
    assert_eq!(
        calls.get("redshift:DescribeClusterSnapshots"),
        Some(&2),
        "{calls:?}"
    );
    assert_eq!(
        calls.get("ec2:DescribeSnapshots"),
        None,
        "no EBS target: {calls:?}"
    );
}
