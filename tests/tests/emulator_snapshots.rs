//! The AWS adapters against the emulator over real HTTP: discovery, snapshot
//! creation with the contract's tags at creation, idempotency, failures.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use strongroom_aws::{AwsCloud, Clients};
use strongroom_core::backup::discover::{discover, DiscoverRequest};
use strongroom_core::backup::snapshot::{snapshot_batch, BatchResult, Outcome};
use strongroom_core::backup::status::refresh_batch;
use strongroom_core::fake::fixtures::{discover_request, REGIONS};
use strongroom_core::model::{RecoveryPointKind, RecoveryPointState, ResourceType, Target};
use strongroom_core::tags;
use strongroom_tests::{Emulator, Found, FoundKind, Manifest, ACCOUNT};

const ALL_TYPES: [&str; 5] = [
    "ebs-volume",
    "ec2-instance",
    "rds-instance",
    "aurora-cluster",
    "redshift-cluster",
];

/// The test's own oracle: what the policy must select, from the seeded tags.
fn expected(manifest: &Manifest, types: &[&str]) -> BTreeSet<(ResourceType, String)> {
    manifest
        .resources
        .iter()
        .filter(|r| types.contains(&r.resource_type.as_str()))
        .filter(|r| REGIONS.contains(&r.region.as_str()))
        .filter(|r| r.tags.get("backup").map(String::as_str) == Some("daily"))
        .filter(|r| r.tags.get("backup-skip").map(String::as_str) != Some("true"))
        .map(|r| (r.resource_type, r.id.clone()))
        .collect()
}

/// What a recovery point of `r` made by execution `exec` must be tagged with.
fn expected_tags(r: &strongroom_tests::SeededResource, exec: &str) -> BTreeMap<String, String> {
    let mut t: BTreeMap<String, String> = r
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("aws:") && !k.starts_with("strongroom:"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let source = if r.resource_type == ResourceType::EbsVolume
        || r.resource_type == ResourceType::Ec2Instance
    {
        r.id.clone()
    } else {
        r.arn.clone()
    };
    t.insert(tags::MANAGED.into(), "true".into());
    t.insert(tags::POLICY.into(), "daily".into());
    t.insert(tags::SOURCE.into(), source);
    t.insert(tags::SOURCE_REGION.into(), r.region.clone());
    t.insert(tags::SOURCE_ACCOUNT.into(), ACCOUNT.into());
    t.insert(tags::CREATED_AT.into(), "2026-11-29T03:00:00Z".into());
    t.insert(tags::RUN.into(), exec.into());
    let kind = match r.resource_type.as_str() {
        "ebs-volume" => "ebs-snapshot",
        "ec2-instance" => "ec2-snapshot-set",
        "rds-instance" => "rds-snapshot",
        "aurora-cluster" => "aurora-snapshot",
        "redshift-cluster" => "redshift-snapshot",
        other => panic!("unknown resource type {other}"),
    };
    t.insert(tags::KIND.into(), kind.into());
    t
}

async fn run_all(cloud: &AwsCloud, req: DiscoverRequest) -> Vec<BatchResult> {
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

#[tokio::test]
async fn exactly_the_selected_sources_get_recovery_points_with_the_contract_tags_once() {
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let want = expected(&manifest, &ALL_TYPES);
    assert_eq!(
        want.len(),
        12,
        "the test estate selects 6 sources per region"
    );

    // Discovery finds exactly the oracle's set.
    let d = discover(discover_request("exec-1", &ALL_TYPES, json!({})), &cloud)
        .await
        .unwrap();
    let got: BTreeSet<(ResourceType, String)> = d
        .batches
        .iter()
        .flat_map(|b| b.targets.iter().map(|t| (t.resource_type, t.id.clone())))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        d.skipped.len(),
        2,
        "one backup-skip volume per region: {:?}",
        d.skipped
    );

    let first = run_all(&cloud, discover_request("exec-1", &ALL_TYPES, json!({}))).await;
    let results: Vec<_> = first.iter().flat_map(|b| &b.results).collect();
    assert_eq!(results.len(), 12);
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Created),
        "{results:?}"
    );

    let found = emu.recovery_points().await;
    // Where each instance volume is attached, as EC2 says.
    let mut devices: BTreeMap<String, String> = BTreeMap::new();
    let conf = emu.harness_config().await;
    for region in REGIONS {
        let ec2 = strongroom_tests::clients::ec2(&conf, region);
        for v in ec2.describe_volumes().send().await.unwrap().volumes() {
            if let Some(a) = v.attachments().first() {
                devices.insert(
                    v.volume_id().unwrap().to_owned(),
                    a.device().unwrap().to_owned(),
                );
            }
        }
    }
    // Every recovery point is managed by us, and each selected source has exactly its own.
    for f in &found {
        assert_eq!(
            f.tags.get(tags::MANAGED).map(String::as_str),
            Some("true"),
            "{f:?}"
        );
    }
    let mut by_source: BTreeMap<String, Vec<&Found>> = BTreeMap::new();
    for f in &found {
        by_source
            .entry(f.tags[tags::SOURCE].clone())
            .or_default()
            .push(f);
    }
    for r in manifest.resources.iter() {
        let selected = want.contains(&(r.resource_type, r.id.clone()));
        let key = if r.resource_type == ResourceType::EbsVolume
            || r.resource_type == ResourceType::Ec2Instance
        {
            &r.id
        } else {
            &r.arn
        };
        let points = by_source.get(key).cloned().unwrap_or_default();
        if !selected {
            assert!(
                points.is_empty(),
                "{} {} must not be protected: {points:?}",
                r.resource_type,
                r.id
            );
            continue;
        }
        let n = if r.resource_type == ResourceType::Ec2Instance {
            r.volumes.len()
        } else {
            1
        };
        assert_eq!(points.len(), n, "{} {}: {points:?}", r.resource_type, r.id);
        for p in points {
            let mut expected = expected_tags(r, "exec-1");
            if r.resource_type == ResourceType::Ec2Instance {
                // Each member carries the device its volume is attached at.
                let volume = p.volume.as_deref().expect("a member names its volume");
                expected.insert(tags::DEVICE.into(), devices[volume].clone());
            }
            assert_eq!(p.tags, expected, "tags of {}", p.id);
            if r.resource_type == ResourceType::Ec2Instance {
                assert!(
                    r.volumes.contains(p.volume.as_ref().unwrap()),
                    "snapshot of a volume of {}",
                    r.id
                );
            }
            if r.resource_type == ResourceType::EbsVolume {
                assert_eq!(p.volume.as_deref(), Some(r.id.as_str()));
            }
        }
    }
    let total = found.len();

    // The same scheduled run again (a redrive under another execution name): nothing new.
    emu.reset_calls();
    let again = run_all(
        &cloud,
        discover_request("exec-1-again", &ALL_TYPES, json!({})),
    )
    .await;
    let results: Vec<_> = again.iter().flat_map(|b| &b.results).collect();
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Existing),
        "{results:?}"
    );
    let after = emu.recovery_points().await;
    assert_eq!(after.len(), total);
    assert_eq!(after, found, "a re-run changes nothing");
    let calls = emu.strongroom_calls();
    assert!(
        !calls
            .keys()
            .any(|k| k.contains("CreateSnapshot") && !k.contains("DB") && !k.contains("Cluster")),
        "EC2 snapshots are found, not re-created: {calls:?}"
    );
}

#[tokio::test]
async fn instance_options_ami_mode_and_exclude_boot_volume() {
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let instances: Vec<_> = manifest
        .resources
        .iter()
        .filter(|r| {
            r.resource_type == ResourceType::Ec2Instance
                && r.tags.get("backup").map(String::as_str) == Some("daily")
        })
        .collect();

    // exclude_boot_volume: one snapshot fewer per instance.
    let res = run_all(
        &cloud,
        discover_request(
            "exec-x",
            &["ec2-instance"],
            json!({"exclude_boot_volume": true}),
        ),
    )
    .await;
    for r in res.iter().flat_map(|b| &b.results) {
        let p = r.recovery_point.as_ref().unwrap();
        assert_eq!(p.kind, RecoveryPointKind::Ec2SnapshotSet);
        let inst = instances.iter().find(|i| i.id == r.id).unwrap();
        assert_eq!(p.members.len(), inst.volumes.len() - 1, "{p:?}");
    }

    // AMI mode: one AMI per instance, tagged at creation, idempotent by name.
    let mut ami = discover_request("exec-ami", &["ec2-instance"], json!({"mode": "ami"}));
    ami.input["policy"]["name"] = json!("weekly");
    let res = run_all(&cloud, ami.clone()).await;
    let created: Vec<_> = res.iter().flat_map(|b| &b.results).collect();
    assert_eq!(created.len(), instances.len());
    assert!(
        created.iter().all(|r| r.outcome == Outcome::Created
            && r.recovery_point.as_ref().unwrap().kind == RecoveryPointKind::Ami),
        "{created:?}"
    );
    let amis: Vec<_> = emu
        .recovery_points()
        .await
        .into_iter()
        .filter(|f| f.kind == FoundKind::Ami)
        .collect();
    assert_eq!(amis.len(), instances.len());
    for a in &amis {
        assert_eq!(a.tags[tags::POLICY], "weekly");
        assert_eq!(a.tags[tags::RUN], "exec-ami");
        assert_eq!(a.tags[tags::KIND], "ami");
    }
    ami.execution = "exec-ami-2".into();
    let again = run_all(&cloud, ami).await;
    assert!(again
        .iter()
        .flat_map(|b| &b.results)
        .all(|r| r.outcome == Outcome::Existing));
    assert_eq!(
        emu.recovery_points()
            .await
            .into_iter()
            .filter(|f| f.kind == FoundKind::Ami)
            .count(),
        instances.len()
    );
}

#[tokio::test]
async fn a_source_gone_since_discovery_is_skipped_and_the_others_are_protected() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let d = discover(discover_request("exec-f", &ALL_TYPES, json!({})), &cloud)
        .await
        .unwrap();
    let mut batch = d
        .batches
        .into_iter()
        .find(|b| b.location.region == "us-east-1")
        .unwrap();
    // A volume that was deleted after discovery, and a database likewise.
    batch.targets.push(Target {
        resource_type: ResourceType::EbsVolume,
        id: "vol-00000000000000000".into(),
        arn: format!("arn:aws:ec2:us-east-1:{ACCOUNT}:volume/vol-00000000000000000"),
        tags: Default::default(),
    });
    batch.targets.push(Target {
        resource_type: ResourceType::RdsInstance,
        id: "gone".into(),
        arn: format!("arn:aws:rds:us-east-1:{ACCOUNT}:db:gone"),
        tags: Default::default(),
    });
    let n = batch.targets.len();
    let out = snapshot_batch(batch, &cloud, time::OffsetDateTime::now_utc(), None)
        .await
        .unwrap();
    // Gone is not failed: skipped, with the AWS answer that says so.
    let skipped: Vec<_> = out
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Skipped)
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(out.results.iter().all(|r| r.outcome != Outcome::Failed));
    for f in &skipped {
        let e = f.error.as_ref().unwrap();
        assert_eq!(e.error_type, "Strongroom.NotFound", "{e:?}");
        assert!(
            e.message.contains(&f.id),
            "the message names the resource: {}",
            e.message
        );
    }
    assert_eq!(
        out.results
            .iter()
            .filter(|r| r.outcome == Outcome::Created)
            .count(),
        n - 2
    );

    // The completion check sees them completed (the emulator completes at once).
    let refreshed = refresh_batch(out, &cloud, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(refreshed.pending, 0);
    for r in refreshed
        .results
        .iter()
        .filter(|r| r.outcome == Outcome::Created)
    {
        assert_eq!(
            r.recovery_point.as_ref().unwrap().state,
            RecoveryPointState::Completed,
            "{r:?}"
        );
    }
}

#[tokio::test]
async fn completion_check_uses_one_describe_per_kind() {
    let emu = Emulator::start();
    let _ = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let res = run_all(&cloud, discover_request("exec-s", &ALL_TYPES, json!({}))).await;
    let mut batch = res
        .into_iter()
        .find(|b| b.location.region == "eu-west-1")
        .unwrap();
    // Pretend nothing had completed at creation, as on AWS.
    for r in batch.results.iter_mut() {
        r.recovery_point.as_mut().unwrap().state = RecoveryPointState::Pending;
    }
    batch.pending = batch.results.len();
    emu.reset_calls();
    let out = refresh_batch(batch, &cloud, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    assert_eq!(out.pending, 0, "{out:?}");
    let calls = emu.strongroom_calls();
    let expected: BTreeMap<String, usize> = [
        ("ec2:DescribeSnapshots", 1),
        ("rds:DescribeDBSnapshots", 1),
        ("rds:DescribeDBClusterSnapshots", 1),
        ("redshift:DescribeClusterSnapshots", 1),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    assert_eq!(calls, expected);
}

#[tokio::test]
async fn a_cluster_whose_plain_name_is_too_long_is_still_protected_once() {
    // AWS limits a DB cluster snapshot identifier to 63 characters (the
    // emulator too); policy `prod-daily` + this cluster make 70.
    let emu = Emulator::start();
    let cluster = "payments-aurora-postgresql-prod";
    let rds = aws_sdk_rds::Client::from_conf(
        aws_sdk_rds::config::Builder::from(&emu.harness_config().await)
            .region(aws_config::Region::new("us-east-1"))
            .build(),
    );
    rds.create_db_cluster()
        .db_cluster_identifier(cluster)
        .engine("aurora-postgresql")
        .master_username("admin")
        .master_user_password("password123")
        .tags(
            aws_sdk_rds::types::Tag::builder()
                .key("backup")
                .value("daily")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let plain = format!("strongroom-prod-daily-20261129t030000z-{cluster}");
    assert_eq!(plain.len(), 70);
    let refused = rds
        .create_db_cluster_snapshot()
        .db_cluster_snapshot_identifier(&plain)
        .db_cluster_identifier(cluster)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        aws_sdk_rds::error::ProvideErrorMetadata::code(&refused),
        Some("InvalidParameterValue"),
        "the emulator must refuse what AWS refuses: {refused:?}"
    );

    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let mut req = discover_request("exec-long", &["aurora-cluster"], json!({}));
    req.input["policy"]["name"] = json!("prod-daily");
    req.input["policy"]["selector"]["regions"] = json!(["us-east-1"]);
    let first = run_all(&cloud, req.clone()).await;
    let results: Vec<_> = first.iter().flat_map(|b| &b.results).collect();
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0].outcome, Outcome::Created, "{results:?}");
    let id = &results[0].recovery_point.as_ref().unwrap().id;
    assert!(
        id.len() <= 63 && id.starts_with("strongroom-prod-daily-"),
        "{id}"
    );

    // A re-run finds it by the same deterministic name.
    req.execution = "exec-long-2".into();
    let again = run_all(&cloud, req).await;
    let results: Vec<_> = again.iter().flat_map(|b| &b.results).collect();
    assert_eq!(results[0].outcome, Outcome::Existing, "{results:?}");
    assert_eq!(&results[0].recovery_point.as_ref().unwrap().id, id);
    let snapshots: Vec<_> = emu
        .recovery_points()
        .await
        .into_iter()
        .filter(|f| f.kind == FoundKind::Aurora)
        .collect();
    assert_eq!(snapshots.len(), 1, "{snapshots:?}");
}

#[tokio::test]
async fn redshift_recovery_points_outlive_the_clusters_default_retention() {
    // Days last 0.2 s in this emulator; the cluster's default keeps manual
    // snapshots 7 days, which AWS applies to snapshots made without a period.
    let emu = Emulator::start_with_env(&[("STRONGROOM_EMULATOR_DAY_SECONDS", "0.2")]);
    let rs = aws_sdk_redshift::Client::from_conf(
        aws_sdk_redshift::config::Builder::from(&emu.harness_config().await)
            .region(aws_config::Region::new("us-east-1"))
            .build(),
    );
    rs.create_cluster()
        .cluster_identifier("dwh-7d")
        .node_type("dc2.large")
        .cluster_type("single-node")
        .master_username("admin")
        .master_user_password("Password123")
        .manual_snapshot_retention_period(7)
        .tags(
            aws_sdk_redshift::types::Tag::builder()
                .key("backup")
                .value("daily")
                .build(),
        )
        .send()
        .await
        .unwrap();
    // A snapshot made the way the cluster's default applies to.
    rs.create_cluster_snapshot()
        .snapshot_identifier("made-without-a-period")
        .cluster_identifier("dwh-7d")
        .send()
        .await
        .unwrap();

    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let mut req = discover_request("exec-rs", &["redshift-cluster"], json!({}));
    req.input["policy"]["selector"]["regions"] = json!(["us-east-1"]);
    let res = run_all(&cloud, req).await;
    let made = res[0].results[0].recovery_point.clone().unwrap();
    assert_eq!(res[0].results[0].outcome, Outcome::Created);

    // Eight "days" later the default has taken the other snapshot; ours stays.
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    let left = rs
        .describe_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    let manual: BTreeMap<&str, Option<i32>> = left
        .snapshots()
        .iter()
        .filter(|s| s.snapshot_type() == Some("manual"))
        .map(|s| {
            (
                s.snapshot_identifier().unwrap(),
                s.manual_snapshot_retention_period(),
            )
        })
        .collect();
    assert_eq!(
        manual,
        BTreeMap::from([(made.id.as_str(), Some(-1))]),
        "only the recovery point is left, kept until pruned"
    );
}

#[tokio::test]
async fn a_hand_started_execution_name_still_tags_database_recovery_points() {
    // Step Functions execution names may hold characters that RDS and
    // Redshift refuse in tag values (the emulator refuses them too).
    let emu = Emulator::start();
    let manifest = emu.seed("test");
    let cloud = AwsCloud::new(Clients::from_config(emu.sdk_config().await));
    let types = ["rds-instance", "aurora-cluster", "redshift-cluster"];
    let res = run_all(
        &cloud,
        discover_request("hand-run (retry 2)! it's", &types, json!({})),
    )
    .await;
    let results: Vec<_> = res.iter().flat_map(|b| &b.results).collect();
    assert_eq!(results.len(), expected(&manifest, &types).len());
    assert!(
        results.iter().all(|r| r.outcome == Outcome::Created),
        "{results:?}"
    );
    let runs: BTreeSet<String> = emu
        .recovery_points()
        .await
        .into_iter()
        .filter(|f| f.kind != FoundKind::Ebs && f.kind != FoundKind::Ami)
        .filter_map(|f| f.tags.get(tags::RUN).cloned())
        .collect();
    assert_eq!(
        runs,
        BTreeSet::from(["hand-run _retry 2__ it_s".to_owned()])
    );
}
