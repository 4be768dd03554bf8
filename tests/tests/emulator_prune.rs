//! Pruning against the emulator: months of back-dated history made by the
//! real snapshot code, plus everything prune must leave alone.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::Region;
use serde_json::json;
use strongroom_aws::{AwsCloud, Clients};
use strongroom_core::backup::discover::{discover, DiscoverRequest};
use strongroom_core::backup::snapshot::snapshot_batch;
use strongroom_core::fake::fixtures;
use strongroom_core::model::{format_time, ResourceType};
use strongroom_core::prune::{prune, PruneReport, PruneRequest};
use strongroom_core::tags;
use strongroom_tests::{Emulator, Found, FoundKind};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NEWEST: OffsetDateTime = datetime!(2026-11-29 03:00 UTC); // a Sunday

fn policy(name: &str, retention: serde_json::Value) -> serde_json::Value {
    let mut p = fixtures::policy(name);
    p["retention"] = retention;
    p
}

async fn backup(cloud: &AwsCloud, policy: &serde_json::Value, at: OffsetDateTime) {
    let mut p = policy.clone();
    p["selector"]["regions"] = json!(["us-east-1"]);
    let d = discover(
        DiscoverRequest {
            input: json!({"policy": p, "scheduled_time": format_time(at)}),
            execution: format!(
                "{}-{}",
                policy["name"].as_str().unwrap(),
                at.unix_timestamp()
            ),
            started_at: format_time(at),
        },
        cloud,
    )
    .await
    .unwrap();
    for b in d.batches {
        let r = snapshot_batch(b, cloud, time::OffsetDateTime::now_utc(), None)
            .await
            .unwrap();
        assert!(r.results.iter().all(|r| r.error.is_none()), "{r:?}");
    }
}

async fn run_prune(cloud: &AwsCloud, policy: &serde_json::Value, dry_run: bool) -> PruneReport {
    let (req, rules, now) = strongroom_core::prune::parse_request(
        json!({
            "policy": policy, "dry_run": dry_run, "now": "2026-11-29T04:00:00Z"
        }),
        time::OffsetDateTime::now_utc(),
    )
    .unwrap();
    let _: &PruneRequest = &req;
    prune(req, rules, now, cloud).await.unwrap()
}

fn day(f: &Found) -> String {
    f.tags
        .get(tags::CREATED_AT)
        .map(|t| t[..10].to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn prune_keeps_exactly_what_retention_and_the_invariants_say() {
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let daily = policy(
        "daily",
        json!({"keep_daily": 7, "keep_weekly": 2, "keep_monthly": 2}),
    );
    let weekly = policy("weekly", json!({"keep_weekly": 52}));
    // 35 days of daily runs, 5 weekly runs of a second policy on the same sources.
    // Ten weeks of daily runs (back to 2026-09-21), a second policy weekly.
    for i in 0..70 {
        backup(&cloud, &daily, NEWEST - Duration::days(i)).await;
    }
    for i in 0..10 {
        backup(
            &cloud,
            &weekly,
            NEWEST - Duration::days(7 * i) - Duration::hours(1),
        )
        .await;
    }

    let conf = emu.harness_config().await;
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&conf)
            .region(Region::new("us-east-1"))
            .build(),
    );
    let rds = aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&conf)
            .region(Region::new("us-east-1"))
            .build(),
    );
    let volume = manifest
        .resources
        .iter()
        .find(|r| {
            r.region == "us-east-1"
                && r.resource_type == ResourceType::EbsVolume
                && r.tags.contains_key("team")
        })
        .unwrap();
    let points = emu.recovery_points().await;
    let ebs_on = |date: &str| -> String {
        points
            .iter()
            .find(|f| {
                f.kind == FoundKind::Ebs
                    && f.volume.as_deref() == Some(volume.id.as_str())
                    && day(f) == date
                    && f.tags[tags::POLICY] == "daily"
            })
            .unwrap()
            .id
            .clone()
    };
    // A hold, a lock and an AMI on three old EBS recovery points; a hold on an old RDS one.
    let held = ebs_on("2026-11-09");
    ec2.create_tags()
        .resources(&held)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(tags::HOLD)
                .value("audit-2026")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let locked = ebs_on("2026-11-08");
    ec2.lock_snapshot()
        .snapshot_id(&locked)
        .lock_mode(aws_sdk_ec2::types::LockMode::Governance)
        .lock_duration(30)
        .send()
        .await
        .unwrap();
    let in_ami = ebs_on("2026-11-07");
    let ami = ec2
        .register_image()
        .name("restored-from-strongroom")
        .root_device_name("/dev/xvda")
        .block_device_mappings(
            aws_sdk_ec2::types::BlockDeviceMapping::builder()
                .device_name("/dev/xvda")
                .ebs(
                    aws_sdk_ec2::types::EbsBlockDevice::builder()
                        .snapshot_id(&in_ami)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .image_id()
        .unwrap()
        .to_owned();
    let rds_held = points
        .iter()
        .find(|f| {
            f.kind == FoundKind::Rds && day(f) == "2026-11-01" && f.tags[tags::POLICY] == "daily"
        })
        .unwrap()
        .id
        .clone();
    let rds_arn = format!(
        "arn:aws:rds:us-east-1:{}:snapshot:{rds_held}",
        strongroom_tests::ACCOUNT
    );
    rds.add_tags_to_resource()
        .resource_name(&rds_arn)
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key(tags::HOLD)
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // Not ours: tagged like a daily recovery point, but not managed.
    let stray = ec2
        .create_snapshot()
        .volume_id(&volume.id)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Snapshot)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(tags::POLICY)
                        .value("daily")
                        .build(),
                )
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(tags::SOURCE)
                        .value(&volume.id)
                        .build(),
                )
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key(tags::CREATED_AT)
                        .value("2026-01-01T00:00:00Z")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap()
        .snapshot_id()
        .unwrap()
        .to_owned();
    // An instance snapshot set with a hold on one member only (and `false` on
    // another): the whole set is held.
    let set_members: Vec<String> = points
        .iter()
        .filter(|f| {
            f.kind == FoundKind::Ebs
                && f.tags[tags::SOURCE].starts_with("i-")
                && day(f) == "2026-11-10"
                && f.tags[tags::POLICY] == "daily"
        })
        .map(|f| f.id.clone())
        .collect();
    assert_eq!(set_members.len(), 3);
    for (id, value) in [(&set_members[0], "false"), (&set_members[2], "case-17")] {
        ec2.create_tags()
            .resources(id)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(tags::HOLD)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let before = emu.recovery_points().await;

    // Dry run: the plan, nothing deleted.
    emu.reset_calls();
    let dry = run_prune(&cloud, &daily, true).await;
    assert!(dry.dry_run);
    assert_eq!(
        emu.recovery_points().await,
        before,
        "a dry run changes nothing"
    );
    let calls = emu.strongroom_calls();
    assert!(
        calls
            .keys()
            .all(|k| k.contains(":Describe") || k == "sts:GetCallerIdentity"),
        "dry run calls: {calls:?}"
    );

    // The real prune.
    emu.reset_calls();
    let report = run_prune(&cloud, &daily, false).await;
    let ids = |r: &PruneReport| -> BTreeSet<String> {
        r.locations
            .iter()
            .flat_map(|l| l.deleted.iter().map(|d| d.id.clone()))
            .collect()
    };
    assert_eq!(ids(&report), ids(&dry), "the dry run planned exactly this");
    let after = emu.recovery_points().await;

    // Exactly these survive of policy daily: Nov 22..29 (7 days + the previous ISO week's newest) and Oct 31 (the
    // newest of the previous month), plus the protected points.
    let mut kept_days: BTreeSet<String> = (0..8)
        .map(|i| (NEWEST - Duration::days(i)).date().to_string())
        .collect();
    kept_days.insert("2026-10-31".into());
    let mut survivors_by_kind: BTreeMap<(FoundKind, String), BTreeSet<String>> = BTreeMap::new();
    for f in after.iter().filter(|f| {
        f.tags.get(tags::POLICY).map(String::as_str) == Some("daily")
            && f.tags.contains_key(tags::MANAGED)
    }) {
        survivors_by_kind
            .entry((f.kind, f.tags[tags::SOURCE].clone()))
            .or_default()
            .insert(day(f));
    }
    for ((kind, source), days) in &survivors_by_kind {
        let mut want = kept_days.clone();
        if source == &volume.id {
            want.extend(["2026-11-09", "2026-11-08", "2026-11-07"].map(String::from));
        }
        if source.starts_with("i-") {
            want.insert("2026-11-10".into());
        }
        if *kind == FoundKind::Rds && rds_held.contains(source.rsplit(':').next().unwrap()) {
            want.insert("2026-11-01".into());
        }
        assert_eq!(days, &want, "{kind:?} {source}");
    }
    // Instance snapshot sets keep all their volumes' snapshots.
    let instance_snaps = after
        .iter()
        .filter(|f| {
            f.kind == FoundKind::Ebs
                && f.tags[tags::SOURCE].starts_with("i-")
                && f.tags[tags::POLICY] == "daily"
        })
        .count();
    assert_eq!(instance_snaps, 10 * 3, "9 days + the held set, x 3 volumes");
    // Everything else is untouched: the other policy, the stray, the AMI.
    let others = |v: &[Found]| -> Vec<Found> {
        v.iter()
            .filter(|f| {
                f.tags.get(tags::POLICY).map(String::as_str) != Some("daily")
                    || !f.tags.contains_key(tags::MANAGED)
            })
            .cloned()
            .collect()
    };
    assert_eq!(others(&after), others(&before));
    assert!(after.iter().any(|f| f.id == stray));
    assert!(after.iter().any(|f| f.id == ami));
    // Reasons are explained.
    let loc = report
        .locations
        .iter()
        .find(|l| l.location.as_ref().unwrap().region == "us-east-1")
        .unwrap();
    let kept_reason = |id: &str| {
        loc.kept
            .iter()
            .find(|k| k.id == id)
            .map(|k| k.reasons.clone())
            .unwrap_or_default()
    };
    assert_eq!(kept_reason(&held), ["hold"]);
    assert_eq!(kept_reason(&locked), ["locked"]);
    assert_eq!(kept_reason(&in_ami), [format!("in use by {ami}")]);
    assert!(loc
        .deleted
        .iter()
        .all(|d| d.reasons == ["matches no keep rule"]));
    assert!(
        report.notes.iter().any(|n| n.contains("eu-west-1")),
        "{:?}",
        report.notes
    );

    // Only listings, a sharing check and one delete per deleted snapshot,
    // and one mark per deleted set.
    let calls = emu.strongroom_calls();
    use strongroom_core::model::RecoveryPointKind as K;
    let deleted_snapshots: usize = loc
        .deleted
        .iter()
        .map(|d| match d.kind {
            K::EbsSnapshot => 1,
            K::Ec2SnapshotSet => 3, // the test instance has three volumes
            _ => 0,
        })
        .sum();
    assert_eq!(
        calls.get("ec2:DeleteSnapshot").copied().unwrap_or(0),
        deleted_snapshots,
        "{calls:?}"
    );
    assert_eq!(
        calls
            .get("ec2:DescribeSnapshotAttribute")
            .copied()
            .unwrap_or(0),
        deleted_snapshots,
        "{calls:?}"
    );
    let deleted_sets = loc
        .deleted
        .iter()
        .filter(|d| d.kind == K::Ec2SnapshotSet)
        .count();
    assert_eq!(
        calls.get("ec2:CreateTags").copied().unwrap_or(0),
        deleted_sets,
        "{calls:?}"
    );
    for k in calls.keys() {
        assert!(
            k.contains(":Describe")
                || k.contains(":Delete")
                || k == "ec2:CreateTags"
                || k == "sts:GetCallerIdentity",
            "unexpected call {k}"
        );
    }
    assert!(
        !calls.keys().any(|k| k.contains("Deregister")),
        "no AMI of this policy to deregister"
    );

    // Again: nothing more.
    let again = run_prune(&cloud, &daily, false).await;
    assert_eq!(again.deleted, 0, "{again:?}");
}

#[tokio::test]
async fn ami_recovery_points_are_deregistered_then_their_snapshots_deleted() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let mut amis = policy("amis", json!({"keep_last": 1}));
    amis["selector"]["resource_types"] = json!(["ec2-instance"]);
    amis["ec2"] = json!({"mode": "ami"});
    for i in 0..3 {
        backup(&cloud, &amis, NEWEST - Duration::days(i)).await;
    }
    assert_eq!(
        emu.recovery_points()
            .await
            .iter()
            .filter(|f| f.kind == FoundKind::Ami)
            .count(),
        3
    );
    // A hold put on the snapshot of the oldest AMI holds the AMI.
    let conf = emu.harness_config().await;
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&conf)
            .region(Region::new("us-east-1"))
            .build(),
    );
    let held_snapshot = emu
        .recovery_points()
        .await
        .into_iter()
        .find(|f| {
            f.kind == FoundKind::Ebs
                && f.tags.get(tags::POLICY).map(String::as_str) == Some("amis")
                && day(f) == "2026-11-27"
        })
        .unwrap();
    ec2.create_tags()
        .resources(&held_snapshot.id)
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(tags::HOLD)
                .value("true")
                .build(),
        )
        .send()
        .await
        .unwrap();
    emu.reset_calls();
    let report = run_prune(&cloud, &amis, false).await;
    assert_eq!(report.deleted, 1, "{report:?}");
    let left: Vec<Found> = emu.recovery_points().await;
    let mut left_days: Vec<String> = left
        .iter()
        .filter(|f| f.kind == FoundKind::Ami)
        .map(day)
        .collect();
    left_days.sort();
    assert_eq!(left_days, ["2026-11-27", "2026-11-29"]);
    // The deleted AMI's snapshot is gone too; the kept AMIs' snapshots stay.
    let ami_snaps = left
        .iter()
        .filter(|f| {
            f.kind == FoundKind::Ebs && f.tags.get(tags::POLICY).map(String::as_str) == Some("amis")
        })
        .count();
    assert_eq!(ami_snaps, 2);
    // One call deregisters the AMI and deletes its snapshots.
    let calls = emu.strongroom_calls();
    assert_eq!(calls.get("ec2:DeregisterImage"), Some(&1));
    assert_eq!(calls.get("ec2:DeleteSnapshot"), None, "{calls:?}");
    assert_eq!(calls.get("ec2:DescribeImageAttribute"), Some(&1));
}

fn reasons_of(report: &PruneReport, list: &str, id: &str) -> Vec<String> {
    let l = &report.locations[0];
    let decisions = match list {
        "kept" => &l.kept,
        "deleted" => &l.deleted,
        _ => &l.refused,
    };
    decisions
        .iter()
        .find(|d| d.id == id)
        .unwrap_or_else(|| panic!("{id} not {list}: {l:?}"))
        .reasons
        .iter()
        .map(|r| r.to_string())
        .collect()
}

/// Issue 7, item 7: a recovery point other accounts may restore is refused
/// with who they are, for every kind that can be shared.
#[tokio::test]
async fn shared_recovery_points_are_refused_with_who_may_restore_them() {
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let mut daily = policy("daily", json!({"keep_last": 1}));
    daily["selector"]["resource_types"] = json!(["ebs-volume", "rds-instance", "redshift-cluster"]);
    for i in 0..2 {
        backup(&cloud, &daily, NEWEST - Duration::days(i)).await;
    }
    let conf = emu.harness_config().await;
    let region = Region::new("us-east-1");
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&conf)
            .region(region.clone())
            .build(),
    );
    let rds = aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&conf)
            .region(region.clone())
            .build(),
    );
    let redshift = aws_sdk_redshift::Client::from_conf(
        aws_sdk_redshift::config::Builder::from(&conf)
            .region(region)
            .build(),
    );
    const OTHER: &str = "210987654321";
    let older: Vec<Found> = emu
        .recovery_points()
        .await
        .into_iter()
        .filter(|f| day(f) == "2026-11-28")
        .collect();
    let first = |k: FoundKind| older.iter().find(|f| f.kind == k).unwrap().id.clone();
    let (snap, db, rs) = (
        first(FoundKind::Ebs),
        first(FoundKind::Rds),
        first(FoundKind::Redshift),
    );
    ec2.modify_snapshot_attribute()
        .snapshot_id(&snap)
        .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
        .operation_type(aws_sdk_ec2::types::OperationType::Add)
        .user_ids(OTHER)
        .send()
        .await
        .unwrap();
    rds.modify_db_snapshot_attribute()
        .db_snapshot_identifier(&db)
        .attribute_name("restore")
        .values_to_add(OTHER)
        .send()
        .await
        .unwrap();
    redshift
        .authorize_snapshot_access()
        .snapshot_identifier(&rs)
        .account_with_restore_access(OTHER)
        .send()
        .await
        .unwrap();

    let report = run_prune(&cloud, &daily, false).await;
    let shared = [format!("shared with {OTHER}")];
    // EBS and RDS sharing is asked of what the rules would delete; Redshift's
    // listing says it, so the point is kept outright.
    assert_eq!(reasons_of(&report, "refused", &snap), shared);
    assert_eq!(reasons_of(&report, "refused", &db), shared);
    assert_eq!(reasons_of(&report, "kept", &rs), shared);
    let selected = manifest
        .resources
        .iter()
        .filter(|r| r.region == "us-east-1")
        .filter(|r| {
            matches!(
                r.resource_type,
                ResourceType::EbsVolume | ResourceType::RdsInstance | ResourceType::RedshiftCluster
            )
        })
        .filter(|r| r.tags.get("backup").map(String::as_str) == Some("daily"))
        .filter(|r| r.tags.get("backup-skip").map(String::as_str) != Some("true"))
        .count();
    assert_eq!(report.deleted, selected - 3, "{report:?}");
    let left: BTreeSet<String> = emu
        .recovery_points()
        .await
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert!(left.contains(&snap) && left.contains(&db) && left.contains(&rs));
}

/// Issue 7, items 4 and 6: the snapshots an AMI left when it was
/// deregistered (by hand, or by a deletion AWS did half) are a failed
/// recovery point: kept 7 days for inspection, then deleted.
#[tokio::test]
async fn what_a_deregistered_ami_left_is_deleted_after_the_grace() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let mut amis = policy("amis", json!({"keep_last": 5}));
    amis["selector"]["resource_types"] = json!(["ec2-instance"]);
    amis["ec2"] = json!({"mode": "ami"});
    for days in [10, 2] {
        backup(&cloud, &amis, NEWEST - Duration::days(days)).await;
    }
    let conf = emu.harness_config().await;
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&conf)
            .region(Region::new("us-east-1"))
            .build(),
    );
    let points = emu.recovery_points().await;
    let images: Vec<&Found> = points.iter().filter(|f| f.kind == FoundKind::Ami).collect();
    assert_eq!(images.len(), 2);
    for i in &images {
        // Deregistered without its snapshots: nothing lists them as an AMI any more.
        ec2.deregister_image().image_id(&i.id).send().await.unwrap();
    }
    let report = run_prune(&cloud, &amis, false).await;
    let old = images.iter().find(|i| day(i) == "2026-11-19").unwrap();
    let new = images.iter().find(|i| day(i) == "2026-11-27").unwrap();
    // Listed as what each AMI left, and deleted snapshot by snapshot.
    assert_eq!(
        reasons_of(&report, "deleted", &format!("{}/remains", old.id)),
        ["failed more than 7 days ago"]
    );
    assert_eq!(
        reasons_of(&report, "kept", &format!("{}/remains", new.id)),
        ["not completed", "failed, kept 7 days for inspection"]
    );
    let calls = emu.strongroom_calls();
    assert_eq!(calls.get("ec2:DeregisterImage"), None, "{calls:?}");
    let left: Vec<String> = emu
        .recovery_points()
        .await
        .iter()
        .filter(|f| f.kind == FoundKind::Ebs)
        .map(day)
        .collect();
    assert!(
        !left.is_empty() && left.iter().all(|d| d == "2026-11-27"),
        "{left:?}"
    );
}

/// Issue 7, item 4: an instance snapshot set whose deletion stopped half
/// way is finished by the next prune, not listed as a smaller set.
#[tokio::test]
async fn a_set_whose_deletion_stopped_half_way_is_finished() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let mut sets = policy("sets", json!({"keep_last": 5}));
    sets["selector"]["resource_types"] = json!(["ec2-instance"]);
    for i in 0..3 {
        backup(&cloud, &sets, NEWEST - Duration::days(i)).await;
    }
    let conf = emu.harness_config().await;
    let ec2 = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&conf)
            .region(Region::new("us-east-1"))
            .build(),
    );
    // The middle day's set: marked by a prune, which then stopped after one member.
    let members: Vec<Found> = emu
        .recovery_points()
        .await
        .into_iter()
        .filter(|f| day(f) == "2026-11-28")
        .collect();
    assert!(members.len() > 1, "{members:?}");
    let instance = members[0].tags[tags::SOURCE].clone();
    let members: Vec<Found> = members
        .into_iter()
        .filter(|f| f.tags[tags::SOURCE] == instance)
        .collect();
    ec2.create_tags()
        .set_resources(Some(members.iter().map(|m| m.id.clone()).collect()))
        .tags(
            aws_sdk_ec2::types::Tag::builder()
                .key(tags::DELETING)
                .value("2026-11-29T03:59:00Z")
                .build(),
        )
        .send()
        .await
        .unwrap();
    ec2.delete_snapshot()
        .snapshot_id(&members[0].id)
        .send()
        .await
        .unwrap();

    let report = run_prune(&cloud, &sets, false).await;
    let set_id = format!("{instance}@2026-11-28T03:00:00Z");
    assert_eq!(
        reasons_of(&report, "deleted", &set_id),
        ["finishes an earlier deletion"]
    );
    let left = emu.recovery_points().await;
    for m in &members {
        assert!(left.iter().all(|f| f.id != m.id), "{} left", m.id);
    }
    // The instance's other sets are kept whole.
    let kept: usize = left
        .iter()
        .filter(|f| f.tags.get(tags::SOURCE) == Some(&instance))
        .count();
    assert_eq!(kept, 2 * members.len());
}
