//! Issue 11 in the emulator: the restore state machine, started as a person
//! starts it from the console (a restore request as the input), makes a
//! working resource of every kind from a recovery point made by the backup
//! state machine, in the source region, from a copy in another region and
//! from a vault account; reads back what it made; refuses bad requests
//! before making anything; removes what a failed restore made unless told to
//! keep it; never touches the recovery point it reads. The emulator's patch
//! 19 registers images with every mapping and launches them with one volume
//! per mapping, as AWS does.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use serde_json::{json, Value};
use strongroom_core::report::RunOutcome;
use strongroom_core::restore::run::{MadeKind, RestoreReport};
use strongroom_core::tags as contract;
use strongroom_tests::clients::{ec2, rds, redshift};
use strongroom_tests::executions::{
    backup_machine, execute, report, restore_machine, sfn, Execution,
};
use strongroom_tests::{functions_dir, Emulator, Manifest, ACCOUNT};

const REGION: &str = "us-east-1";
const COPIES: &str = "us-west-2";
const VAULT: &str = "210987654321";

fn ec2_tags(t: &[aws_sdk_ec2::types::Tag]) -> BTreeMap<String, String> {
    t.iter()
        .map(|t| (t.key().unwrap().into(), t.value().unwrap_or("").into()))
        .collect()
}

fn rds_tags(t: &[aws_sdk_rds::types::Tag]) -> BTreeMap<String, String> {
    t.iter()
        .map(|t| (t.key().unwrap().into(), t.value().unwrap_or("").into()))
        .collect()
}

fn hours_ago(hours: i64) -> String {
    strongroom_core::model::format_time(
        time::OffsetDateTime::now_utc() - time::Duration::hours(hours),
    )
}

fn policy(name: &str, types: &[&str], extra: Value) -> Value {
    let mut p = json!({
        "name": name,
        "selector": {"resource_types": types, "regions": [REGION], "tags": {"backup": "daily"}},
        "retention": {"keep_last": 3}
    });
    if let (Some(p), Some(extra)) = (p.as_object_mut(), extra.as_object()) {
        p.extend(extra.clone());
    }
    p
}

const ALL: [&str; 5] = [
    "ebs-volume",
    "ec2-instance",
    "rds-instance",
    "aurora-cluster",
    "redshift-cluster",
];

async fn backup(emu: &Emulator, name: &str, policy: Value) {
    let sfn = sfn(emu).await;
    let machine = backup_machine(&sfn).await;
    let input = json!({"policy": policy, "scheduled_time": hours_ago(1), "poll_seconds": 0});
    let e = execute(emu, &sfn, &machine, name, &input).await;
    let r = report(&e, emu).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:#?}", r.failures);
}

async fn restore(emu: &Emulator, name: &str, request: Value) -> Execution {
    let sfn = sfn(emu).await;
    let machine = restore_machine(&sfn).await;
    execute(emu, &sfn, &machine, name, &request).await
}

/// A restore that succeeded: its output is the report, the same report is
/// in the bucket.
async fn restored(emu: &Emulator, name: &str, request: Value) -> RestoreReport {
    let e = restore(emu, name, request).await;
    assert_eq!(
        e.status,
        "SUCCEEDED",
        "{name}: {:?} {:?}\nrestore log:\n{}",
        e.error,
        e.cause,
        emu.function_log("restore")
    );
    let r: RestoreReport =
        serde_json::from_value(e.output.expect("an output")).expect("the output is a report");
    assert_eq!(r.outcome, "succeeded");
    assert_eq!(r.execution, name);
    let kept: RestoreReport = emu.object_json(&r.report).await;
    assert_eq!(kept, r, "the bucket holds the same report");
    r
}

fn made(r: &RestoreReport, kind: MadeKind) -> Vec<String> {
    r.restored
        .iter()
        .filter(|m| m.kind == kind)
        .map(|m| m.id.clone())
        .collect()
}

fn resource<'a>(m: &'a Manifest, rtype: &str) -> &'a strongroom_tests::SeededResource {
    m.resources
        .iter()
        .find(|r| r.resource_type.as_str() == rtype)
        .unwrap_or_else(|| panic!("no {rtype} seeded"))
}

/// What a restore tags: `restored-from`, `restore`, the source's own tags,
/// never `strongroom:managed` (prune never touches it).
fn assert_restore_tags(t: &BTreeMap<String, String>, point: &str, execution: &str) {
    assert_eq!(
        t.get(contract::RESTORED_FROM).map(String::as_str),
        Some(point),
        "{t:?}"
    );
    assert_eq!(
        t.get(contract::RESTORE).map(String::as_str),
        Some(execution),
        "{t:?}"
    );
    assert_eq!(
        t.get("team").map(String::as_str),
        Some("core"),
        "source tags: {t:?}"
    );
    assert!(!t.contains_key(contract::MANAGED), "{t:?}");
    assert!(!t.contains_key(contract::POLICY), "{t:?}");
}

/// Every recovery point id (EBS snapshots, AMIs, manual DB, cluster and
/// Redshift snapshots) in a region, with its tags.
async fn points(conf: &SdkConfig, region: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let e = ec2(conf, region);
    for s in e
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
    {
        out.insert(s.snapshot_id().unwrap().to_owned(), ec2_tags(s.tags()));
    }
    for i in e
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap()
        .images()
    {
        out.insert(i.image_id().unwrap().to_owned(), ec2_tags(i.tags()));
    }
    let r = rds(conf, region);
    for s in r
        .describe_db_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap()
        .db_snapshots()
    {
        out.insert(
            s.db_snapshot_identifier().unwrap().to_owned(),
            rds_tags(s.tag_list()),
        );
    }
    for s in r
        .describe_db_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap()
        .db_cluster_snapshots()
    {
        out.insert(
            s.db_cluster_snapshot_identifier().unwrap().to_owned(),
            rds_tags(s.tag_list()),
        );
    }
    for s in redshift(conf, region)
        .describe_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .filter(|s| s.snapshot_type() == Some("manual"))
    {
        let t = s
            .tags()
            .iter()
            .map(|t| {
                (
                    t.key().unwrap().to_owned(),
                    t.value().unwrap_or("").to_owned(),
                )
            })
            .collect();
        out.insert(s.snapshot_identifier().unwrap().to_owned(), t);
    }
    out
}

#[tokio::test]
async fn every_kind_restores_in_the_source_region_and_reads_back() {
    // The tests run the definition the stack deploys: the ASL file, substituted.
    assert_eq!(
        serde_json::from_str::<Value>(&strongroom_tests::deployed_restore_definition()).unwrap(),
        serde_json::from_str::<Value>(&strongroom_tests::restore_definition()).unwrap()
    );
    let emu = Emulator::start();
    let m = emu.seed("restores");
    backup(&emu, "daily-1", policy("daily", &ALL, json!({}))).await;
    backup(
        &emu,
        "images-1",
        policy("images", &["ec2-instance"], json!({"ec2": {"mode": "ami"}})),
    )
    .await;
    let conf = emu.harness_config().await;
    let before = points(&conf, REGION).await;
    let e = ec2(&conf, REGION);
    let net = &m.keys;

    // A volume, by source: the recorded type and IOPS, in another zone.
    let volume = resource(&m, "ebs-volume");
    let r = restored(
        &emu,
        "restore-volume",
        json!({"from": {"source": volume.id}, "location": {"region": REGION},
               "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1b"}, "poll_seconds": 0}),
    )
    .await;
    let ids = made(&r, MadeKind::Volume);
    assert_eq!(ids.len(), 1, "{r:#?}");
    let v = e
        .describe_volumes()
        .volume_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let v = &v.volumes()[0];
    assert_eq!(v.size(), Some(50));
    assert_eq!(v.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(v.iops(), Some(4000), "the recorded IOPS");
    assert_eq!(v.availability_zone(), Some("us-east-1b"));
    assert_eq!(v.snapshot_id(), Some(r.recovery_point.as_str()));
    assert_restore_tags(&ec2_tags(v.tags()), &r.recovery_point, "restore-volume");

    // One member of the instance's set, by device.
    let instance = resource(&m, "ec2-instance");
    let sets: Vec<_> = before
        .iter()
        .filter(|(_, t)| t.get(contract::KIND).map(String::as_str) == Some("ec2-snapshot-set"))
        .collect();
    assert_eq!(sets.len(), 3, "one snapshot per volume: {before:#?}");
    let set_id = format!("{}@{}", instance.id, sets[0].1[contract::CREATED_AT]);
    let r = restored(
        &emu,
        "restore-member",
        json!({"from": {"recovery_point": set_id}, "location": {"region": REGION},
               "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "device": "/dev/sdg"},
               "poll_seconds": 0}),
    )
    .await;
    let v = e
        .describe_volumes()
        .volume_ids(&made(&r, MadeKind::Volume)[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        v.volumes()[0].size(),
        Some(30),
        "the /dev/sdg volume was 30 GiB"
    );

    // The whole instance from its snapshot set: every volume on its device,
    // with the recorded type, subnet, groups and key pair.
    let r = restored(
        &emu,
        "restore-instance",
        json!({"from": {"recovery_point": set_id}, "location": {"region": REGION},
               "restore": {"kind": "ec2-instance"}, "poll_seconds": 0}),
    )
    .await;
    let ids = made(&r, MadeKind::Instance);
    assert_eq!(ids.len(), 1, "{r:#?}");
    let out = e
        .describe_instances()
        .instance_ids(&ids[0])
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(
        i.state().and_then(|s| s.name()).map(|n| n.as_str()),
        Some("running")
    );
    assert_eq!(i.instance_type().map(|t| t.as_str()), Some("m5.large"));
    assert_eq!(i.subnet_id(), Some(net["subnet"].as_str()));
    assert_eq!(i.key_name(), Some("ops"));
    let groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, [net["sg"].as_str()]);
    assert_restore_tags(&ec2_tags(i.tags()), &set_id, "restore-instance");
    let mut devices: Vec<(String, i32, String)> = Vec::new();
    for b in i.block_device_mappings() {
        let vid = b.ebs().unwrap().volume_id().unwrap();
        let v = e.describe_volumes().volume_ids(vid).send().await.unwrap();
        let v = &v.volumes()[0];
        let snapshot = v.snapshot_id().unwrap_or_default().to_owned();
        assert_eq!(
            before[&snapshot].get(contract::DEVICE).map(String::as_str),
            b.device_name(),
            "each volume comes from the member recorded at its device"
        );
        devices.push((
            b.device_name().unwrap().to_owned(),
            v.size().unwrap(),
            snapshot,
        ));
    }
    devices.sort();
    let sizes: Vec<(&str, i32)> = devices.iter().map(|(d, s, _)| (d.as_str(), *s)).collect();
    assert_eq!(
        sizes,
        [("/dev/sda1", 8), ("/dev/sdf", 20), ("/dev/sdg", 30)]
    );
    // The temporary image is gone; the set's snapshots are all still there.
    let images = e.describe_images().owners("self").send().await.unwrap();
    assert!(
        images
            .images()
            .iter()
            .all(|i| !ec2_tags(i.tags()).contains_key(contract::RESTORE)),
        "the image registered for the launch was deregistered"
    );

    // The instance from its AMI, isolated: a group with no ingress or egress.
    let ami = before
        .iter()
        .find(|(id, t)| {
            id.starts_with("ami-") && t.get(contract::POLICY).map(String::as_str) == Some("images")
        })
        .map(|(id, _)| id.clone())
        .expect("the images policy made an AMI");
    let r = restored(
        &emu,
        "restore-ami",
        json!({"from": {"recovery_point": ami}, "location": {"region": REGION},
               "restore": {"kind": "ec2-instance", "instance_type": "t3.small"}, "isolate": true, "poll_seconds": 0}),
    )
    .await;
    let out = e
        .describe_instances()
        .instance_ids(&made(&r, MadeKind::Instance)[0])
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(i.image_id(), Some(ami.as_str()));
    assert_eq!(
        i.instance_type().map(|t| t.as_str()),
        Some("t3.small"),
        "the request's type"
    );
    let isolating = made(&r, MadeKind::SecurityGroup);
    assert_eq!(isolating.len(), 1);
    let groups: Vec<&str> = i
        .security_groups()
        .iter()
        .filter_map(|g| g.group_id())
        .collect();
    assert_eq!(groups, [isolating[0].as_str()]);
    let g = e
        .describe_security_groups()
        .group_ids(&isolating[0])
        .send()
        .await
        .unwrap();
    let g = &g.security_groups()[0];
    assert!(g.ip_permissions().is_empty(), "no ingress: {g:?}");
    assert!(g.ip_permissions_egress().is_empty(), "no egress: {g:?}");
    assert_eq!(
        g.vpc_id(),
        Some(net["vpc"].as_str()),
        "in the instance's VPC"
    );

    // An RDS instance: the recorded class, subnet group and groups.
    let r = restored(
        &emu,
        "restore-db",
        json!({"from": {"source": "orders"}, "location": {"region": REGION},
               "restore": {"kind": "rds-instance", "identifier": "orders-restored"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(made(&r, MadeKind::DbInstance), ["orders-restored"]);
    let d = rds(&conf, REGION)
        .describe_db_instances()
        .db_instance_identifier("orders-restored")
        .send()
        .await
        .unwrap();
    let d = &d.db_instances()[0];
    assert_eq!(d.db_instance_status(), Some("available"));
    assert_eq!(d.db_instance_class(), Some("db.m6g.large"));
    assert_eq!(
        d.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("app-db")
    );
    let groups: Vec<&str> = d
        .vpc_security_groups()
        .iter()
        .filter_map(|g| g.vpc_security_group_id())
        .collect();
    assert_eq!(groups, [net["sg"].as_str()]);
    assert_restore_tags(&rds_tags(d.tag_list()), &r.recovery_point, "restore-db");

    // An Aurora cluster and both of its instances.
    let r = restored(
        &emu,
        "restore-aurora",
        json!({"from": {"source": resource(&m, "aurora-cluster").arn}, "location": {"region": REGION},
               "restore": {"kind": "aurora-cluster", "identifier": "ledger-restored", "instances": 2},
               "poll_seconds": 0}),
    )
    .await;
    assert_eq!(made(&r, MadeKind::DbCluster), ["ledger-restored"]);
    assert_eq!(
        made(&r, MadeKind::DbInstance),
        ["ledger-restored-1", "ledger-restored-2"]
    );
    let c = rds(&conf, REGION)
        .describe_db_clusters()
        .db_cluster_identifier("ledger-restored")
        .send()
        .await
        .unwrap();
    let c = &c.db_clusters()[0];
    assert_eq!(c.status(), Some("available"));
    assert_eq!(c.db_cluster_members().len(), 2, "{c:?}");
    assert_eq!(c.db_subnet_group(), Some("app-db"));
    assert_restore_tags(&rds_tags(c.tag_list()), &r.recovery_point, "restore-aurora");
    for n in ["ledger-restored-1", "ledger-restored-2"] {
        let d = rds(&conf, REGION)
            .describe_db_instances()
            .db_instance_identifier(n)
            .send()
            .await
            .unwrap();
        assert_eq!(
            d.db_instances()[0].db_instance_class(),
            Some("db.r6g.large"),
            "the recorded class"
        );
    }

    // A Redshift cluster: the recorded node type and count, subnet group.
    let r = restored(
        &emu,
        "restore-dwh",
        json!({"from": {"source": "warehouse"}, "location": {"region": REGION},
               "restore": {"kind": "redshift-cluster", "identifier": "warehouse-restored"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(made(&r, MadeKind::RedshiftCluster), ["warehouse-restored"]);
    let c = redshift(&conf, REGION)
        .describe_clusters()
        .cluster_identifier("warehouse-restored")
        .send()
        .await
        .unwrap();
    let c = &c.clusters()[0];
    assert_eq!(c.node_type(), Some("ra3.xlplus"));
    assert_eq!(c.number_of_nodes(), Some(2));
    assert_eq!(c.cluster_subnet_group_name(), Some("app-dwh"));
    let t: BTreeMap<String, String> = c
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap().to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_restore_tags(&t, &r.recovery_point, "restore-dwh");

    // No restore modified or deleted a recovery point.
    assert_eq!(
        points(&conf, REGION).await,
        before,
        "the recovery points are untouched"
    );
    let destructive: Vec<_> = emu
        .calls()
        .into_iter()
        .filter(|c| c.function.as_deref() == Some("restore"))
        .filter(|c| {
            (c.action.starts_with("Delete") && c.action.contains("Snapshot"))
                || c.action.starts_with("Modify")
                || c.action.contains("SnapshotAccess")
                || c.action.contains("LockSnapshot")
                || c.action == "DisableImage"
        })
        .collect();
    assert!(destructive.is_empty(), "{destructive:?}");

    // The CLI lists what a restore can name, with sizes.
    let out = std::process::Command::new(functions_dir().join("strongroom"))
        .args([
            "recovery-points",
            "list",
            "--location",
            REGION,
            "--source",
            &volume.id,
        ])
        .env("AWS_ENDPOINT_URL", &emu.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .output()
        .expect("run the CLI");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["kind"], "ebs-snapshot");
    assert_eq!(listed[0]["state"], "completed");
    assert_eq!(listed[0]["size_gib"], 50);
    assert_eq!(listed[0]["policy"], "daily");
    assert_eq!(listed[0]["location"]["account"], ACCOUNT);
}

#[tokio::test]
async fn a_region_copy_and_a_vault_copy_restore_with_the_recorded_settings() {
    let emu = Emulator::start();
    let home = emu.seed("restores");
    let vault = emu.seed_in("vault", VAULT, None);
    let copies = json!({"copies": [
        {"region": COPIES, "kms_key": home.keys["strongroom-destination"]},
        {"region": COPIES, "account": VAULT, "role_arn": vault.roles["strongroom-vault-copy"],
         "kms_key": vault.keys["strongroom-vault"]}
    ]});
    backup(
        &emu,
        "dr-1",
        policy("dr", &["ebs-volume", "rds-instance"], copies),
    )
    .await;
    let volume = resource(&home, "ebs-volume");

    // From the copy in us-west-2 of the same account: the copy's own record
    // carries the source's type and IOPS.
    let r = restored(
        &emu,
        "restore-region-copy",
        json!({"from": {"source": volume.id}, "location": {"region": COPIES},
               "restore": {"kind": "ebs-volume", "availability_zone": "us-west-2a"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(r.location.region, COPIES);
    let conf = emu.harness_config().await;
    let v = ec2(&conf, COPIES)
        .describe_volumes()
        .volume_ids(&made(&r, MadeKind::Volume)[0])
        .send()
        .await
        .unwrap();
    let v = &v.volumes()[0];
    assert_eq!(v.volume_type().map(|t| t.as_str()), Some("gp3"));
    assert_eq!(v.iops(), Some(4000));
    assert_eq!(v.availability_zone(), Some("us-west-2a"));
    assert_eq!(v.snapshot_id(), Some(r.recovery_point.as_str()));
    let copy = ec2(&conf, COPIES)
        .describe_snapshots()
        .snapshot_ids(&r.recovery_point)
        .send()
        .await
        .unwrap();
    let copy_tags = ec2_tags(copy.snapshots()[0].tags());
    assert!(
        copy_tags[contract::COPY_OF].starts_with("snap-"),
        "restored from the copy: {copy_tags:?}"
    );
    // The copy carries the record of its source, under its own id.
    let record: strongroom_core::restore::settings::RecoveryPointRecord = emu
        .object_json(&strongroom_core::runs::S3Object {
            bucket: format!("strongroom-runs-{ACCOUNT}"),
            key: strongroom_core::restore::settings::record_key(&r.location, &r.recovery_point),
        })
        .await;
    assert_eq!(
        record.copy_of.as_deref(),
        Some(copy_tags[contract::COPY_OF].as_str())
    );
    assert_eq!(record.source, volume.id);
    assert!(r.details.contains_key("volume_id"), "{r:#?}");

    // From the vault, assuming its restore role: the database comes back in
    // the vault account, with the recorded class; the source region's
    // network is not the vault's, so AWS's defaults place it.
    let r = restored(
        &emu,
        "restore-vault",
        json!({"from": {"source": resource(&home, "rds-instance").arn},
               "location": {"region": COPIES, "account": VAULT, "role_arn": vault.roles["strongroom-vault-restore"]},
               "restore": {"kind": "rds-instance", "identifier": "orders-dr"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(r.location.account, VAULT);
    let in_vault = emu
        .harness_config_as(&vault.roles["strongroom-vault-restore"])
        .await;
    let d = rds(&in_vault, COPIES)
        .describe_db_instances()
        .db_instance_identifier("orders-dr")
        .send()
        .await
        .unwrap();
    let d = &d.db_instances()[0];
    assert_eq!(
        d.db_instance_class(),
        Some("db.m6g.large"),
        "the recorded class"
    );
    assert_ne!(
        d.db_subnet_group().and_then(|g| g.db_subnet_group_name()),
        Some("app-db"),
        "the source region's subnet group is not used elsewhere"
    );
    let t = rds_tags(d.tag_list());
    assert_eq!(t[contract::RESTORED_FROM], r.recovery_point);
    assert!(t[contract::RESTORED_FROM].starts_with("strongroom-dr-"));
    let home_rds = rds(&conf, COPIES)
        .describe_db_instances()
        .send()
        .await
        .unwrap();
    assert!(
        home_rds
            .db_instances()
            .iter()
            .all(|d| d.db_instance_identifier() != Some("orders-dr")),
        "restored in the vault account, not the home account"
    );

    // Into the home account from the vault's copies: refused until the vault
    // shares them, then made in the home account.
    let from_vault = |kind: Value| {
        json!({"from": {"source": volume.id},
               "location": {"region": COPIES, "account": VAULT, "role_arn": vault.roles["strongroom-vault-restore"]},
               "into": {"account": ACCOUNT}, "restore": kind, "poll_seconds": 0})
    };
    let volume_back = from_vault(json!({"kind": "ebs-volume", "availability_zone": "us-west-2b"}));
    let e = restore(&emu, "into-home-unshared", volume_back.clone()).await;
    assert_eq!(e.status, "FAILED");
    assert_eq!(e.error.as_deref(), Some("Strongroom.InvalidInput"));
    let cause = e.cause.unwrap_or_default();
    assert!(
        cause.contains("into.account") && cause.contains("not shared"),
        "{cause}"
    );
    let vault_ec2 = ec2(&in_vault, COPIES);
    let vault_copies = vault_ec2
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap();
    for snap in vault_copies.snapshots() {
        vault_ec2
            .modify_snapshot_attribute()
            .snapshot_id(snap.snapshot_id().unwrap())
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .operation_type(aws_sdk_ec2::types::OperationType::Add)
            .user_ids(ACCOUNT)
            .send()
            .await
            .unwrap();
    }
    let r = restored(&emu, "into-home-volume", volume_back).await;
    assert_eq!(r.location.account, VAULT);
    assert_eq!(r.restored_in.account, ACCOUNT);
    let v = ec2(&conf, COPIES)
        .describe_volumes()
        .volume_ids(&made(&r, MadeKind::Volume)[0])
        .send()
        .await
        .unwrap();
    assert_eq!(
        v.volumes()[0].snapshot_id(),
        Some(r.recovery_point.as_str()),
        "from the vault's snapshot"
    );
    assert_eq!(
        v.volumes()[0].iops(),
        Some(4000),
        "with the recorded settings"
    );
    let vault_rds = rds(&in_vault, COPIES);
    let db_copy = vault_rds
        .describe_db_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap()
        .db_snapshots()[0]
        .db_snapshot_identifier()
        .unwrap()
        .to_owned();
    vault_rds
        .modify_db_snapshot_attribute()
        .db_snapshot_identifier(&db_copy)
        .attribute_name("restore")
        .values_to_add(ACCOUNT)
        .send()
        .await
        .unwrap();
    let mut db_back = from_vault(json!({"kind": "rds-instance", "identifier": "orders-home"}));
    db_back["from"] = json!({"source": resource(&home, "rds-instance").arn});
    let r = restored(&emu, "into-home-db", db_back).await;
    assert_eq!(r.restored_in.account, ACCOUNT);
    let d = rds(&conf, COPIES)
        .describe_db_instances()
        .db_instance_identifier("orders-home")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.db_instances()[0].db_instance_class(),
        Some("db.m6g.large")
    );
    assert_eq!(
        rds_tags(d.db_instances()[0].tag_list())[contract::RESTORED_FROM],
        db_copy
    );
}

/// What exists that a restore could have made: volumes, instances, DB
/// instances and clusters, Redshift clusters, security groups, images.
async fn inventory(conf: &SdkConfig) -> Vec<String> {
    let e = ec2(conf, REGION);
    let mut out = Vec::new();
    for v in e.describe_volumes().send().await.unwrap().volumes() {
        out.push(v.volume_id().unwrap().to_owned());
    }
    for r in e.describe_instances().send().await.unwrap().reservations() {
        for i in r.instances() {
            out.push(i.instance_id().unwrap().to_owned());
        }
    }
    for g in e
        .describe_security_groups()
        .send()
        .await
        .unwrap()
        .security_groups()
    {
        out.push(g.group_id().unwrap().to_owned());
    }
    for i in e
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap()
        .images()
    {
        out.push(i.image_id().unwrap().to_owned());
    }
    let r = rds(conf, REGION);
    for d in r
        .describe_db_instances()
        .send()
        .await
        .unwrap()
        .db_instances()
    {
        out.push(d.db_instance_identifier().unwrap().to_owned());
    }
    for c in r.describe_db_clusters().send().await.unwrap().db_clusters() {
        out.push(c.db_cluster_identifier().unwrap().to_owned());
    }
    for c in redshift(conf, REGION)
        .describe_clusters()
        .send()
        .await
        .unwrap()
        .clusters()
    {
        out.push(c.cluster_identifier().unwrap().to_owned());
    }
    out.sort();
    out
}

#[tokio::test]
async fn bad_requests_are_refused_naming_the_field_before_anything_is_made() {
    let emu = Emulator::start();
    let m = emu.seed("restores");
    backup(&emu, "daily-1", policy("daily", &ALL, json!({}))).await;
    let conf = emu.harness_config().await;
    // A DB instance named as an Aurora restore's first instance would be.
    rds(&conf, REGION)
        .create_db_instance()
        .db_instance_identifier("orders-x-1")
        .engine("postgres")
        .db_instance_class("db.t3.micro")
        .allocated_storage(20)
        .master_username("admin1")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap();
    let before = inventory(&conf).await;
    let points_before = points(&conf, REGION).await;
    let volume = resource(&m, "ebs-volume");
    let instance = resource(&m, "ec2-instance");
    let db_point = points_before
        .iter()
        .find(|(_, t)| t.get(contract::KIND).map(String::as_str) == Some("rds-snapshot"))
        .map(|(id, _)| id.clone())
        .unwrap();
    let loc = json!({"region": REGION});
    let cases: Vec<(&str, Value, &str, &[&str])> = vec![
        (
            "unknown-point",
            json!({"from": {"recovery_point": "snap-0123456789abcdef0"}, "location": loc,
                   "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}}),
            "Strongroom.NotFound",
            &["from.recovery_point", "the nearest", "snap-"],
        ),
        (
            "wrong-kind",
            json!({"from": {"recovery_point": db_point}, "location": loc,
                   "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}}),
            "Strongroom.InvalidInput",
            &["from.recovery_point", "rds-snapshot", "ebs-volume"],
        ),
        (
            "no-point-before",
            json!({"from": {"source": volume.id, "at_or_before": "2020-01-01T00:00:00Z"}, "location": loc,
                   "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}}),
            "Strongroom.NotFound",
            &["from.source", "2020-01-01T00:00:00Z", "the nearest"],
        ),
        (
            "zone-of-the-region-that-does-not-exist",
            json!({"from": {"source": volume.id}, "location": loc,
                   "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1z"}}),
            "Strongroom.InvalidInput",
            &["restore.availability_zone", "us-east-1z"],
        ),
        (
            "zone-of-another-region",
            json!({"from": {"source": volume.id}, "location": loc,
                   "restore": {"kind": "ebs-volume", "availability_zone": "eu-west-1a"}}),
            "Strongroom.InvalidInput",
            &["restore.availability_zone"],
        ),
        (
            "malformed-instance-type",
            json!({"from": {"source": instance.id}, "location": loc,
                   "restore": {"kind": "ec2-instance", "instance_type": "large"}}),
            "Strongroom.InvalidInput",
            &["restore.instance_type"],
        ),
        (
            "identifier-taken",
            json!({"from": {"source": "orders"}, "location": loc,
                   "restore": {"kind": "rds-instance", "identifier": "orders"}}),
            "Strongroom.InvalidInput",
            &["restore.identifier", "already exists"],
        ),
        (
            "groups-of-another-vpc",
            json!({"from": {"source": instance.id}, "location": loc,
                   "restore": {"kind": "ec2-instance", "subnet_id": m.keys["subnet"],
                               "security_group_ids": [m.keys["other-sg"]]}}),
            "Strongroom.InvalidInput",
            &["restore.security_group_ids[0]", "restore.subnet_id"],
        ),
        (
            "missing-identifier",
            json!({"from": {"source": "orders"}, "location": loc, "restore": {"kind": "rds-instance"}}),
            "Strongroom.InvalidInput",
            &["identifier"],
        ),
        (
            "aurora-instance-name-taken",
            json!({"from": {"source": "ledger"}, "location": loc,
                   "restore": {"kind": "aurora-cluster", "identifier": "orders-x"}}),
            "Strongroom.InvalidInput",
            &["restore.identifier", "orders-x-1"],
        ),
        (
            "io2-without-iops",
            json!({"from": {"source": volume.id}, "location": loc,
                   "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "volume_type": "io2"}}),
            "Strongroom.InvalidInput",
            &["restore.iops"],
        ),
        (
            "unknown-key-pair",
            json!({"from": {"source": instance.id}, "location": loc,
                   "restore": {"kind": "ec2-instance", "key_name": "nobody"}}),
            "Strongroom.NotFound",
            &["restore.key_name", "nobody"],
        ),
    ];
    for (name, request, error, needles) in cases {
        let e = restore(&emu, name, request).await;
        assert_eq!(e.status, "FAILED", "{name}: {:?}", e.output);
        assert_eq!(e.error.as_deref(), Some(error), "{name}: {:?}", e.cause);
        let cause = e.cause.unwrap_or_default();
        for n in needles {
            assert!(cause.contains(n), "{name}: `{n}` not in {cause}");
        }
    }
    assert_eq!(inventory(&conf).await, before, "nothing was made");
    assert_eq!(
        points(&conf, REGION).await,
        points_before,
        "no recovery point changed"
    );
    let creates: Vec<_> = emu
        .calls()
        .into_iter()
        .filter(|c| c.function.as_deref() == Some("restore"))
        .filter(|c| !c.action.starts_with("Describe") && c.action != "GetObject")
        .collect();
    assert!(creates.is_empty(), "only reads: {creates:?}");
}

#[tokio::test]
async fn a_failed_restore_removes_what_it_made_unless_told_to_keep_it() {
    let emu =
        Emulator::start_with_env(&[("STRONGROOM_EMULATOR_FAILED_RESTORES", "volume,db-instance")]);
    let m = emu.seed("restores");
    backup(&emu, "daily-1", policy("daily", &ALL, json!({}))).await;
    let conf = emu.harness_config().await;
    let before = inventory(&conf).await;
    let points_before = points(&conf, REGION).await;

    // The volume ends in `error`: removed, the execution fails, the report says why.
    let e = restore(
        &emu,
        "doomed-volume",
        json!({"from": {"source": resource(&m, "ebs-volume").id}, "location": {"region": REGION},
               "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(e.status, "FAILED");
    assert_eq!(
        e.error.as_deref(),
        Some("Strongroom.RestoreFailed"),
        "{:?}",
        e.cause
    );
    assert!(
        e.cause.as_deref().unwrap_or("").contains("error"),
        "{:?}",
        e.cause
    );
    assert_eq!(
        inventory(&conf).await,
        before,
        "the failed volume was removed"
    );
    let report: RestoreReport = emu
        .object_json(&strongroom_core::runs::S3Object {
            bucket: format!("strongroom-runs-{ACCOUNT}"),
            key: "restores/doomed-volume/report.json".into(),
        })
        .await;
    assert_eq!(report.outcome, "failed");
    assert!(report.kept.is_empty());
    assert!(report.error.is_some());

    // The database ends `incompatible-restore`, and the request keeps it.
    let e = restore(
        &emu,
        "kept-db",
        json!({"from": {"source": "orders"}, "location": {"region": REGION},
               "restore": {"kind": "rds-instance", "identifier": "orders-kept"},
               "keep_on_failure": true, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(e.status, "FAILED");
    let report: RestoreReport = emu
        .object_json(&strongroom_core::runs::S3Object {
            bucket: format!("strongroom-runs-{ACCOUNT}"),
            key: "restores/kept-db/report.json".into(),
        })
        .await;
    assert_eq!(report.kept.len(), 1, "{report:#?}");
    assert_eq!(report.kept[0].id, "orders-kept");
    let d = rds(&conf, REGION)
        .describe_db_instances()
        .db_instance_identifier("orders-kept")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.db_instances()[0].db_instance_status(),
        Some("incompatible-restore")
    );

    // A launch that fails after the isolating group was made: the group is
    // found by its tag and removed, although the failed step returned no state.
    let before_launch = inventory(&conf).await;
    let e = restore(
        &emu,
        "doomed-launch",
        json!({"from": {"source": resource(&m, "ec2-instance").id}, "location": {"region": REGION},
               "restore": {"kind": "ec2-instance", "instance_profile": "no-such-profile"},
               "isolate": true, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(e.status, "FAILED", "{:?}", e.output);
    assert_eq!(
        inventory(&conf).await,
        before_launch,
        "the group and the image were removed"
    );
    let report: RestoreReport = emu
        .object_json(&strongroom_core::runs::S3Object {
            bucket: format!("strongroom-runs-{ACCOUNT}"),
            key: "restores/doomed-launch/report.json".into(),
        })
        .await;
    assert!(report.error.is_some(), "{report:#?}");

    // The same without keep_on_failure: removed.
    let e = restore(
        &emu,
        "doomed-db",
        json!({"from": {"source": "orders"}, "location": {"region": REGION},
               "restore": {"kind": "rds-instance", "identifier": "orders-doomed"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(e.status, "FAILED");
    let left = rds(&conf, REGION)
        .describe_db_instances()
        .send()
        .await
        .unwrap();
    assert!(
        left.db_instances()
            .iter()
            .all(|d| d.db_instance_identifier() != Some("orders-doomed")),
        "removed"
    );
    assert_eq!(
        points(&conf, REGION).await,
        points_before,
        "no recovery point changed"
    );
}

#[tokio::test]
async fn a_restore_waits_in_the_state_machine_until_what_it_made_is_usable() {
    let emu = Emulator::start_with_env(&[("STRONGROOM_EMULATOR_RESTORE_DESCRIBES", "3")]);
    let m = emu.seed("restores");
    backup(
        &emu,
        "daily-1",
        policy("daily", &["ebs-volume", "rds-instance"], json!({})),
    )
    .await;
    for (name, request, kind) in [
        (
            "slow-volume",
            json!({"from": {"source": resource(&m, "ebs-volume").id}, "location": {"region": REGION},
                   "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}, "poll_seconds": 0}),
            MadeKind::Volume,
        ),
        (
            "slow-db",
            json!({"from": {"source": "orders"}, "location": {"region": REGION},
                   "restore": {"kind": "rds-instance", "identifier": "orders-slow"}, "poll_seconds": 0}),
            MadeKind::DbInstance,
        ),
    ] {
        let r = restored(&emu, name, request).await;
        assert_eq!(made(&r, kind).len(), 1);
        assert_eq!(
            r.checks, 4,
            "{name}: three checks saw it creating, the fourth usable: {r:#?}"
        );
    }
    // Each wait went through the state machine's Wait state, not a sleep in a function.
    let sfn = sfn(&emu).await;
    let machine = restore_machine(&sfn).await;
    let execution = sfn
        .list_executions()
        .state_machine_arn(&machine)
        .send()
        .await
        .unwrap();
    let arn = execution
        .executions()
        .iter()
        .find(|e| e.name() == "slow-volume")
        .map(|e| e.execution_arn().to_owned())
        .expect("the execution");
    let history = sfn
        .get_execution_history()
        .execution_arn(&arn)
        .max_results(1000)
        .send()
        .await
        .unwrap();
    let waits = history
        .events()
        .iter()
        .filter(|e| {
            e.state_entered_event_details()
                .is_some_and(|d| d.name() == "WaitForRestore")
        })
        .count();
    assert_eq!(waits, 3);
}

#[tokio::test]
async fn every_kind_restores_from_the_vault() {
    let emu = Emulator::start();
    let home = emu.seed("restores");
    let vault = emu.seed_in("vault", VAULT, None);
    let to_vault = json!({"copies": [
        {"region": COPIES, "account": VAULT, "role_arn": vault.roles["strongroom-vault-copy"],
         "kms_key": vault.keys["strongroom-vault"]}
    ]});
    backup(&emu, "dr-1", policy("dr", &ALL, to_vault.clone())).await;
    let mut images = to_vault.clone();
    images["ec2"] = json!({"mode": "ami"});
    backup(
        &emu,
        "images-1",
        policy("images", &["ec2-instance"], images),
    )
    .await;
    let role = &vault.roles["strongroom-vault-restore"];
    let in_vault = emu.harness_config_as(role).await;
    let at_vault = json!({"region": COPIES, "account": VAULT, "role_arn": role});
    let instance = resource(&home, "ec2-instance");

    // The instance, rebuilt in the vault from the copy of its snapshot set:
    // the recorded type and every volume, in the vault's default network.
    let set_copy = format!(
        "{}@{}",
        instance.id,
        points(&in_vault, COPIES)
            .await
            .values()
            .find(|t| t.get(contract::KIND).map(String::as_str) == Some("ec2-snapshot-set"))
            .map(|t| t[contract::CREATED_AT].clone())
            .expect("the set was copied")
    );
    let r = restored(
        &emu,
        "vault-instance",
        json!({"from": {"recovery_point": set_copy}, "location": at_vault,
               "restore": {"kind": "ec2-instance"}, "poll_seconds": 0}),
    )
    .await;
    let e = ec2(&in_vault, COPIES);
    let out = e
        .describe_instances()
        .instance_ids(&made(&r, MadeKind::Instance)[0])
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(i.instance_type().map(|t| t.as_str()), Some("m5.large"));
    assert_ne!(i.subnet_id(), Some(home.keys["subnet"].as_str()));
    let mut sizes = Vec::new();
    for b in i.block_device_mappings() {
        let v = e
            .describe_volumes()
            .volume_ids(b.ebs().unwrap().volume_id().unwrap())
            .send()
            .await
            .unwrap();
        sizes.push((
            b.device_name().unwrap().to_owned(),
            v.volumes()[0].size().unwrap(),
        ));
    }
    sizes.sort();
    assert_eq!(
        sizes,
        [
            ("/dev/sda1".to_owned(), 8),
            ("/dev/sdf".to_owned(), 20),
            ("/dev/sdg".to_owned(), 30)
        ]
    );

    // The instance from the vault's copy of its AMI.
    let ami = e
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap()
        .images()
        .iter()
        .find(|i| ec2_tags(i.tags()).get(contract::POLICY).map(String::as_str) == Some("images"))
        .and_then(|i| i.image_id().map(str::to_owned))
        .expect("the AMI was copied to the vault");
    let r = restored(
        &emu,
        "vault-ami",
        json!({"from": {"recovery_point": ami}, "location": at_vault,
               "restore": {"kind": "ec2-instance"}, "poll_seconds": 0}),
    )
    .await;
    let out = e
        .describe_instances()
        .instance_ids(&made(&r, MadeKind::Instance)[0])
        .send()
        .await
        .unwrap();
    let i = &out.reservations()[0].instances()[0];
    assert_eq!(i.image_id(), Some(ami.as_str()));
    assert_eq!(
        i.instance_type().map(|t| t.as_str()),
        Some("m5.large"),
        "the recorded type"
    );

    // The Aurora cluster and its instance.
    let r = restored(
        &emu,
        "vault-aurora",
        json!({"from": {"source": "ledger"}, "location": at_vault,
               "restore": {"kind": "aurora-cluster", "identifier": "ledger-dr"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(made(&r, MadeKind::DbInstance), ["ledger-dr-1"]);
    let d = rds(&in_vault, COPIES)
        .describe_db_instances()
        .db_instance_identifier("ledger-dr-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.db_instances()[0].db_instance_class(),
        Some("db.r6g.large")
    );

    // Redshift reaches the vault as a share of the source's snapshot: it is
    // restored into the vault from the source region.
    let r = restored(
        &emu,
        "vault-dwh",
        json!({"from": {"source": "warehouse"}, "location": {"region": REGION},
               "into": {"account": VAULT, "role_arn": role},
               "restore": {"kind": "redshift-cluster", "identifier": "warehouse-dr"}, "poll_seconds": 0}),
    )
    .await;
    assert_eq!(r.restored_in.account, VAULT);
    assert_eq!(r.location.account, ACCOUNT);
    let c = redshift(&in_vault, REGION)
        .describe_clusters()
        .cluster_identifier("warehouse-dr")
        .send()
        .await
        .unwrap();
    let c = &c.clusters()[0];
    assert_eq!(c.node_type(), Some("ra3.xlplus"));
    assert_eq!(c.number_of_nodes(), Some(2));
    let t: BTreeMap<String, String> = c
        .tags()
        .iter()
        .map(|t| {
            (
                t.key().unwrap().to_owned(),
                t.value().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_restore_tags(&t, &r.recovery_point, "vault-dwh");
    let conf = emu.harness_config().await;
    let home_clusters = redshift(&conf, REGION)
        .describe_clusters()
        .send()
        .await
        .unwrap();
    assert!(
        home_clusters
            .clusters()
            .iter()
            .all(|c| c.cluster_identifier() != Some("warehouse-dr")),
        "made in the vault, not at home"
    );
}
