//! Issue 10 in the emulator: the backup state machine copies every completed
//! recovery point to another region of the same account and to a vault
//! account, with the destination's key and the tag contract; never more than
//! 20 copies in flight per destination region; a re-run makes no second
//! copy; sharing with the vault lasts only for the copy; an AWS managed key
//! fails clearly with nothing shared; a locked vault copy survives a prune
//! that would otherwise delete it. The emulator's patch 17 makes copies take
//! time, limits them, and copies across accounts as AWS does.

use std::collections::BTreeMap;

use aws_config::SdkConfig;
use serde_json::{json, Value};
use strongroom_core::report::{RunOutcome, RunReport};
use strongroom_core::tags as contract;
use strongroom_tests::clients::{ec2, rds};
use strongroom_tests::executions::{backup_machine, execute, report, sfn};
use strongroom_tests::{Emulator, Manifest, ACCOUNT};

const VAULT: &str = "210987654321";
const SOURCE: &str = "us-east-1";
const DESTINATION: &str = "us-west-2";

/// An EBS snapshot as the test reads it back.
#[derive(Debug)]
struct Snap {
    id: String,
    kms_key: Option<String>,
    state: String,
    tags: BTreeMap<String, String>,
}

async fn snapshots(conf: &SdkConfig, region: &str) -> Vec<Snap> {
    ec2(conf, region)
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .iter()
        .map(|s| Snap {
            id: s.snapshot_id().unwrap().to_owned(),
            kms_key: s.kms_key_id().map(str::to_owned),
            state: s.state().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            tags: s
                .tags()
                .iter()
                .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                .collect(),
        })
        .collect()
}

/// The DB snapshots (manual) of a region, with their tags.
async fn db_snapshots(conf: &SdkConfig, region: &str) -> Vec<(String, BTreeMap<String, String>)> {
    rds(conf, region)
        .describe_db_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap()
        .db_snapshots()
        .iter()
        .map(|s| {
            (
                s.db_snapshot_identifier().unwrap().to_owned(),
                s.tag_list()
                    .iter()
                    .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
                    .collect(),
            )
        })
        .collect()
}

fn policy(copies: Value, retention: Value) -> Value {
    json!({
        "name": "daily",
        "selector": {
            "resource_types": ["ebs-volume", "ec2-instance", "rds-instance"],
            "regions": [SOURCE],
            "tags": {"backup": "daily"}
        },
        "retention": retention,
        "copies": copies
    })
}

fn same_account(home: &Manifest) -> Value {
    json!({"region": DESTINATION, "kms_key": home.keys["strongroom-destination"]})
}

fn vault_destination(vault: &Manifest) -> Value {
    json!({
        "region": DESTINATION,
        "account": VAULT,
        "role_arn": vault.roles["strongroom-vault-copy"],
        "kms_key": vault.keys["strongroom-vault"],
        "lock": {"mode": "compliance", "duration_days": 30, "cool_off_hours": 1},
        "prune_role_arn": vault.roles["strongroom-vault-prune"],
    })
}

fn input(policy: Value, scheduled: &str) -> Value {
    json!({"policy": policy, "scheduled_time": scheduled, "poll_seconds": 0})
}

/// A scheduled time `hours` before now, in the contract's form.
fn hours_ago(hours: i64) -> String {
    strongroom_core::model::format_time(
        time::OffsetDateTime::now_utc() - time::Duration::hours(hours),
    )
}

async fn run(emu: &Emulator, name: &str, input: &Value) -> RunReport {
    let sfn = sfn(emu).await;
    let machine = backup_machine(&sfn).await;
    let e = execute(emu, &sfn, &machine, name, input).await;
    report(&e, emu).await
}

fn strongroom_count(emu: &Emulator, action: &str) -> usize {
    emu.strongroom_calls().get(action).copied().unwrap_or(0)
}

#[tokio::test]
async fn copies_land_in_each_region_and_account_with_its_key_tags_and_lock() {
    let emu = Emulator::start();
    let home = emu.seed("copies");
    let vault = emu.seed_in("vault", VAULT, None);
    let p = policy(
        json!([same_account(&home), vault_destination(&vault)]),
        json!({"keep_last": 2}),
    );
    let r = run(&emu, "copies-1", &input(p, &hours_ago(1))).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:#?}", r.failures);
    assert_eq!(r.copies.len(), 2);
    for d in &r.copies {
        // Three volumes, one instance (a set of two volumes), one database.
        assert_eq!(d.counts.completed, 5, "{d:#?}");
        assert_eq!(d.counts.started, 5, "{d:#?}");
        assert_eq!(d.counts.failed, 0, "{d:#?}");
        assert!(d.passes >= 2, "copies take time, so the loop waits: {d:#?}");
    }
    let here = emu.harness_config().await;
    let in_vault = emu
        .harness_config_as(&vault.roles["strongroom-vault-copy"])
        .await;
    let vault_ec2 = ec2(&in_vault, DESTINATION);
    for (conf, key, account) in [
        (&here, &home.keys["strongroom-destination"], ACCOUNT),
        (&in_vault, &vault.keys["strongroom-vault"], VAULT),
    ] {
        let copies: Vec<Snap> = snapshots(conf, DESTINATION)
            .await
            .into_iter()
            .filter(|s| s.tags.contains_key(contract::COPY_OF))
            .collect();
        assert_eq!(copies.len(), 5, "{account}: {copies:#?}");
        for c in &copies {
            assert_eq!(
                c.kms_key.as_ref(),
                Some(key),
                "{account}: encrypted with the destination's key"
            );
            assert_eq!(c.state, "completed");
            assert_eq!(c.tags[contract::MANAGED], "true");
            assert_eq!(c.tags[contract::POLICY], "daily");
            assert_eq!(c.tags[contract::SOURCE_REGION], SOURCE);
            assert_eq!(c.tags[contract::SOURCE_ACCOUNT], ACCOUNT);
            assert!(c.tags[contract::COPY_OF].starts_with("snap-"));
        }
        let dbs: Vec<_> = db_snapshots(conf, DESTINATION)
            .await
            .into_iter()
            .filter(|(_, t)| t.contains_key(contract::COPY_OF))
            .collect();
        assert_eq!(dbs.len(), 1, "{account}: {dbs:?}");
        assert!(dbs[0].0.starts_with("strongroom-daily-"));
        assert!(dbs[0].1[contract::COPY_OF]
            .starts_with(&format!("arn:aws:rds:{SOURCE}:{ACCOUNT}:snapshot:")));
    }
    // The vault's EBS copies are locked.
    let vault_ids: Vec<String> = snapshots(&in_vault, DESTINATION)
        .await
        .into_iter()
        .filter(|s| s.tags.contains_key(contract::COPY_OF))
        .map(|s| s.id)
        .collect();
    let locked = vault_ec2
        .describe_locked_snapshots()
        .set_snapshot_ids(Some(vault_ids.clone()))
        .send()
        .await
        .unwrap();
    assert_eq!(locked.snapshots().len(), 5, "{locked:?}");
    // Shared for the copy only: nothing stays shared with the vault, and the
    // grants on the source key are revoked.
    let home_ec2 = ec2(&here, SOURCE);
    for s in snapshots(&here, SOURCE).await {
        let attr = home_ec2
            .describe_snapshot_attribute()
            .snapshot_id(&s.id)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .send()
            .await
            .unwrap();
        assert!(
            attr.create_volume_permissions().is_empty(),
            "{} still shared",
            s.id
        );
    }
    let home_rds = rds(&here, SOURCE);
    for (id, _) in db_snapshots(&here, SOURCE).await {
        let attrs = home_rds
            .describe_db_snapshot_attributes()
            .db_snapshot_identifier(&id)
            .send()
            .await
            .unwrap();
        let restore: Vec<String> = attrs
            .db_snapshot_attributes_result()
            .unwrap()
            .db_snapshot_attributes()
            .iter()
            .filter(|a| a.attribute_name() == Some("restore"))
            .flat_map(|a| a.attribute_values().iter().cloned())
            .collect();
        assert!(restore.is_empty(), "{id} still shared with {restore:?}");
    }
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&here)
            .region(aws_config::Region::new(SOURCE))
            .build(),
    );
    let grants = kms
        .list_grants()
        .key_id(&home.keys["strongroom-source"])
        .send()
        .await
        .unwrap();
    assert!(grants.grants().is_empty(), "{:?}", grants.grants());
    // It was shared, with the vault only, and unshared: once each per snapshot.
    assert_eq!(strongroom_count(&emu, "ec2:ModifySnapshotAttribute"), 2 * 5);
    assert_eq!(strongroom_count(&emu, "rds:ModifyDBSnapshotAttribute"), 2);
    assert_eq!(
        strongroom_count(&emu, "kms:CreateGrant"),
        1,
        "one per source key"
    );
    assert_eq!(strongroom_count(&emu, "kms:RevokeGrant"), 1);
    // Whether a key is AWS managed is asked only for the vault's copies, once per key.
    assert_eq!(strongroom_count(&emu, "kms:DescribeKey"), 1);
}

#[tokio::test]
async fn fifty_points_to_one_region_never_exceed_twenty_in_flight_and_a_rerun_copies_nothing() {
    let emu = Emulator::start();
    emu.set_copies(&json!({"copy_describes": 2}));
    let home = emu.seed("copies-many");
    let mut p = policy(json!([same_account(&home)]), json!({"keep_last": 5}));
    p["selector"]["resource_types"] = json!(["ebs-volume"]);
    let scheduled = hours_ago(1);
    let r = run(&emu, "many-1", &input(p.clone(), &scheduled)).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:#?}", r.failures);
    let d = &r.copies[0];
    assert_eq!(d.counts.completed, 50);
    let peak = emu.copies()["peaks"][format!("{ACCOUNT}/{DESTINATION}/ebs")]
        .as_u64()
        .unwrap();
    assert_eq!(peak, 20, "the limit is used, never passed");
    assert_eq!(
        d.peak_in_flight[&strongroom_core::copy::CopyLimit::EbsSnapshots],
        20
    );
    let copies_before = snapshots(&emu.harness_config().await, DESTINATION)
        .await
        .len();
    assert_eq!(copies_before, 50);
    // One CopySnapshot per copy: none was refused by the limit and sent again.
    assert_eq!(strongroom_count(&emu, "ec2:CopySnapshot"), 50);
    assert!(emu
        .calls()
        .iter()
        .filter(|c| c.action == "CopySnapshot")
        .all(|c| c.function.as_deref() == Some("copy")));

    // The same scheduled run again: every copy is found, none is made.
    emu.reset_calls();
    let again = run(&emu, "many-2", &input(p, &scheduled)).await;
    assert_eq!(again.copies[0].counts.reused, 50, "{:#?}", again.copies);
    assert_eq!(again.copies[0].counts.started, 0);
    assert_eq!(strongroom_count(&emu, "ec2:CopySnapshot"), 0);
    assert_eq!(
        snapshots(&emu.harness_config().await, DESTINATION)
            .await
            .len(),
        copies_before
    );
}

#[tokio::test]
async fn an_aws_managed_key_fails_clearly_and_nothing_is_shared() {
    let emu = Emulator::start();
    let home = emu.seed("copies-default-key");
    let vault = emu.seed_in("vault", VAULT, None);
    let mut p = policy(json!([vault_destination(&vault)]), json!({"keep_last": 2}));
    p["selector"]["resource_types"] = json!(["ebs-volume"]);
    let _ = home;
    let r = run(&emu, "default-key", &input(p, &hours_ago(1))).await;
    // The snapshots were made; their copies were refused, each with why.
    assert_eq!(r.outcome, RunOutcome::Partial, "{:#?}", r.failures);
    let d = &r.copies[0];
    assert_eq!(d.counts.failed, 2, "{d:#?}");
    for f in &d.failures {
        assert_eq!(f.error_type, "Strongroom.InvalidInput");
        assert!(f.message.contains("customer-managed key"), "{}", f.message);
        assert!(f.message.contains("policy.copies[0]"), "{}", f.message);
    }
    assert_eq!(
        strongroom_count(&emu, "ec2:ModifySnapshotAttribute"),
        0,
        "nothing shared"
    );
    assert_eq!(strongroom_count(&emu, "kms:CreateGrant"), 0);
    assert_eq!(
        strongroom_count(&emu, "ec2:CopySnapshot"),
        0,
        "nothing copied"
    );
}

#[tokio::test]
async fn a_locked_vault_copy_survives_a_prune_that_would_delete_it() {
    let emu = Emulator::start();
    emu.seed("copies");
    let vault = emu.seed_in("vault", VAULT, None);
    let mut destination = vault_destination(&vault);
    destination["retention"] = json!({"keep_last": 1});
    let mut p = policy(json!([destination]), json!({"keep_last": 1}));
    p["selector"]["resource_types"] = json!(["ebs-volume"]);
    let first = run(&emu, "lock-1", &input(p.clone(), &hours_ago(2))).await;
    assert_eq!(
        first.outcome,
        RunOutcome::Succeeded,
        "{:#?}",
        first.failures
    );
    let in_vault = emu
        .harness_config_as(&vault.roles["strongroom-vault-copy"])
        .await;
    let first_copies: Vec<String> = snapshots(&in_vault, DESTINATION)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(first_copies.len(), 3);

    // A second run: `keep_last: 1` no longer keeps the first copies, but
    // they are locked, so the vault prune keeps them, saying why.
    let second = run(&emu, "lock-2", &input(p, &hours_ago(1))).await;
    assert_eq!(
        second.outcome,
        RunOutcome::Succeeded,
        "{:#?}",
        second.failures
    );
    let prune = second.prune.as_ref().expect("prune ran");
    let left: Vec<String> = snapshots(&in_vault, DESTINATION)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(left.len(), 6, "the locked copies are still there");
    for id in &first_copies {
        assert!(left.contains(id), "{id} was deleted");
        assert!(!prune.deleted_ids.contains(id));
    }
    // The source's own first snapshots were not locked: prune deleted them.
    assert_eq!(prune.deleted, 3, "{prune:#?}");
    assert_eq!(strongroom_count(&emu, "ec2:DeleteSnapshot"), 3);
    // The full prune report names the lock as the reason.
    let full: strongroom_core::prune::PruneReport = emu
        .object_json(&strongroom_core::runs::S3Object {
            bucket: strongroom_tests::RUNS_BUCKET.into(),
            key: "runs/daily/lock-2/prune.json".into(),
        })
        .await;
    let at_vault = full
        .locations
        .iter()
        .find(|l| l.location.as_ref().is_some_and(|l| l.account == VAULT))
        .expect("the vault was pruned through its prune role");
    for id in &first_copies {
        let kept = at_vault.kept.iter().find(|d| &d.id == id).unwrap();
        assert_eq!(kept.reasons, vec![strongroom_core::Reason::Locked]);
    }
}

#[tokio::test]
async fn a_vault_role_that_cannot_be_assumed_fails_its_destination_and_shares_nothing() {
    let emu = Emulator::start();
    let home = emu.seed("copies");
    // The vault exists, but not the role the policy names.
    let vault = emu.seed_in("vault", VAULT, None);
    let mut destination = vault_destination(&vault);
    destination["role_arn"] = json!(format!("arn:aws:iam::{VAULT}:role/not-deployed"));
    destination
        .as_object_mut()
        .unwrap()
        .remove("prune_role_arn");
    let mut p = policy(
        json!([same_account(&home), destination]),
        json!({"keep_last": 2}),
    );
    p["selector"]["resource_types"] = json!(["ebs-volume"]);
    let r = run(&emu, "no-vault-role", &input(p, &hours_ago(1))).await;
    // The other destination is copied; the vault's loop fails, naming it.
    assert_eq!(r.outcome, RunOutcome::Partial, "{:#?}", r.failures);
    assert_eq!(r.copies[0].counts.completed, 3);
    let failed = &r.copies[1];
    let e = failed.error.as_ref().expect("the vault's loop failed");
    assert_eq!(e.error, "Strongroom.AccessDenied");
    assert!(e.cause.contains("policy.copies[1]"), "{}", e.cause);
    assert!(e.cause.contains("not-deployed"), "{}", e.cause);
    assert_eq!(
        strongroom_count(&emu, "ec2:ModifySnapshotAttribute"),
        0,
        "nothing shared"
    );
    assert_eq!(strongroom_count(&emu, "kms:CreateGrant"), 0);
    let in_vault = snapshots(
        &emu.harness_config_as(&vault.roles["strongroom-vault-copy"])
            .await,
        DESTINATION,
    )
    .await;
    assert!(in_vault.is_empty(), "{in_vault:?}");
}

/// An AMI and what the test reads of it.
async fn images(conf: &SdkConfig, region: &str) -> Vec<aws_sdk_ec2::types::Image> {
    ec2(conf, region)
        .describe_images()
        .owners("self")
        .send()
        .await
        .unwrap()
        .images()
        .to_vec()
}

#[tokio::test]
async fn amis_are_copied_whole_tagged_encrypted_locked_and_once() {
    let emu = Emulator::start();
    let home = emu.seed("copies");
    let vault = emu.seed_in("vault", VAULT, None);
    let mut p = policy(
        json!([same_account(&home), vault_destination(&vault)]),
        json!({"keep_last": 2}),
    );
    p["selector"]["resource_types"] = json!(["ec2-instance"]);
    p["ec2"] = json!({"mode": "ami"});
    let scheduled = hours_ago(1);
    let r = run(&emu, "amis-1", &input(p.clone(), &scheduled)).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:#?}", r.failures);
    for d in &r.copies {
        assert_eq!(d.counts.completed, 1, "{d:#?}");
    }
    let here = emu.harness_config().await;
    let source = images(&here, SOURCE).await;
    assert_eq!(source.len(), 1);
    let source_name = source[0].name().unwrap().to_owned();
    let source_id = source[0].image_id().unwrap().to_owned();
    let in_vault = emu
        .harness_config_as(&vault.roles["strongroom-vault-copy"])
        .await;
    for (conf, key) in [
        (&here, &home.keys["strongroom-destination"]),
        (&in_vault, &vault.keys["strongroom-vault"]),
    ] {
        let copies = images(conf, DESTINATION).await;
        assert_eq!(copies.len(), 1, "{copies:#?}");
        let copy = &copies[0];
        assert_eq!(
            copy.name(),
            Some(source_name.as_str()),
            "named as its source"
        );
        let tags: BTreeMap<String, String> = copy
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
            .collect();
        assert_eq!(tags[contract::COPY_OF], source_id);
        assert_eq!(tags[contract::KIND], "ami");
        assert_eq!(tags[contract::SOURCE_REGION], SOURCE);
        // Its snapshot is encrypted with the destination's key and tagged at creation.
        let snaps = snapshots(conf, DESTINATION).await;
        let snap = snaps
            .iter()
            .find(|s| s.tags.get(contract::COPY_OF) == Some(&source_id))
            .expect("the copy's snapshot carries the tags");
        assert_eq!(snap.kms_key.as_ref(), Some(key));
    }
    // The vault copy's snapshot is locked; the source AMI is no longer shared.
    let vault_snap: Vec<String> = snapshots(&in_vault, DESTINATION)
        .await
        .into_iter()
        .map(|s| s.id)
        .collect();
    let locked = ec2(&in_vault, DESTINATION)
        .describe_locked_snapshots()
        .set_snapshot_ids(Some(vault_snap))
        .send()
        .await
        .unwrap();
    assert_eq!(locked.snapshots().len(), 1);
    let launch = ec2(&here, SOURCE)
        .describe_image_attribute()
        .image_id(&source_id)
        .attribute(aws_sdk_ec2::types::ImageAttributeName::LaunchPermission)
        .send()
        .await
        .unwrap();
    assert!(launch.launch_permissions().is_empty(), "{launch:?}");
    assert_eq!(strongroom_count(&emu, "ec2:ModifyImageAttribute"), 2);
    assert_eq!(strongroom_count(&emu, "ec2:CopyImage"), 2);

    // The same scheduled run again copies nothing.
    emu.reset_calls();
    let again = run(&emu, "amis-2", &input(p, &scheduled)).await;
    assert!(
        again.copies.iter().all(|d| d.counts.reused == 1),
        "{:#?}",
        again.copies
    );
    assert_eq!(strongroom_count(&emu, "ec2:CopyImage"), 0);
}

#[tokio::test]
async fn a_redshift_cluster_is_configured_to_copy_and_its_copy_is_found_and_tagged() {
    let emu = Emulator::start();
    let home = emu.seed("copies");
    let mut p = policy(json!([same_account(&home)]), json!({"keep_last": 2}));
    p["selector"]["resource_types"] = json!(["redshift-cluster"]);
    let scheduled = hours_ago(1);
    let r = run(&emu, "redshift-1", &input(p.clone(), &scheduled)).await;
    assert_eq!(r.outcome, RunOutcome::Succeeded, "{:#?}", r.failures);
    assert_eq!(r.copies[0].counts.completed, 1, "{:#?}", r.copies);
    let here = emu.harness_config().await;
    // The cluster now copies its snapshots to the destination, kept until pruned.
    let rs_source = aws_sdk_redshift::Client::from_conf(
        aws_sdk_redshift::config::Builder::from(&here)
            .region(aws_config::Region::new(SOURCE))
            .build(),
    );
    let cluster = rs_source
        .describe_clusters()
        .cluster_identifier("warehouse")
        .send()
        .await
        .unwrap();
    let status = cluster.clusters()[0]
        .cluster_snapshot_copy_status()
        .expect("copy configured");
    assert_eq!(status.destination_region(), Some(DESTINATION));
    // The copy the cluster made is Strongroom's: tagged with the contract.
    let rs_dest = aws_sdk_redshift::Client::from_conf(
        aws_sdk_redshift::config::Builder::from(&here)
            .region(aws_config::Region::new(DESTINATION))
            .build(),
    );
    let copies = rs_dest
        .describe_cluster_snapshots()
        .snapshot_type("manual")
        .send()
        .await
        .unwrap();
    assert_eq!(copies.snapshots().len(), 1);
    let copy = &copies.snapshots()[0];
    assert!(copy
        .snapshot_identifier()
        .unwrap()
        .starts_with("strongroom-daily-"));
    let tags: BTreeMap<String, String> = copy
        .tags()
        .iter()
        .map(|t| (t.key().unwrap().into(), t.value().unwrap().into()))
        .collect();
    assert_eq!(tags[contract::MANAGED], "true");
    assert_eq!(tags[contract::KIND], "redshift-snapshot");
    assert_eq!(tags[contract::SOURCE_REGION], SOURCE);
    assert!(tags[contract::COPY_OF].starts_with(&format!(
        "arn:aws:redshift:{SOURCE}:{ACCOUNT}:snapshot:warehouse/strongroom-daily-"
    )));
    assert_eq!(strongroom_count(&emu, "redshift:EnableSnapshotCopy"), 1);

    // A re-run finds the tagged copy and configures nothing again.
    emu.reset_calls();
    let again = run(&emu, "redshift-2", &input(p, &scheduled)).await;
    assert_eq!(again.copies[0].counts.reused, 1, "{:#?}", again.copies);
    assert_eq!(strongroom_count(&emu, "redshift:EnableSnapshotCopy"), 0);
    assert_eq!(strongroom_count(&emu, "redshift:CreateTags"), 0);
}

#[tokio::test]
async fn a_redshift_snapshot_reaches_the_vault_as_a_share_which_prune_takes_back() {
    let emu = Emulator::start();
    emu.seed("copies");
    let vault = emu.seed_in("vault", VAULT, None);
    let mut destination = vault_destination(&vault);
    destination.as_object_mut().unwrap().remove("lock");
    let mut p = policy(json!([destination]), json!({"keep_last": 1}));
    p["selector"]["resource_types"] = json!(["redshift-cluster"]);
    let first = run(&emu, "share-1", &input(p.clone(), &hours_ago(2))).await;
    assert_eq!(
        first.outcome,
        RunOutcome::Succeeded,
        "{:#?}",
        first.failures
    );
    let d = &first.copies[0];
    assert_eq!(
        (d.counts.shared, d.counts.completed, d.counts.started),
        (1, 1, 0),
        "{d:#?}"
    );
    let here = emu.harness_config().await;
    let rs = aws_sdk_redshift::Client::from_conf(
        aws_sdk_redshift::config::Builder::from(&here)
            .region(aws_config::Region::new(SOURCE))
            .build(),
    );
    let manual = || async {
        rs.describe_cluster_snapshots()
            .snapshot_type("manual")
            .send()
            .await
            .unwrap()
            .snapshots()
            .iter()
            // The emulator also lists a cluster's automated snapshot.
            .filter(|s| s.snapshot_type() == Some("manual"))
            .cloned()
            .collect::<Vec<_>>()
    };
    let snaps = manual().await;
    assert_eq!(snaps.len(), 1, "{snaps:#?}");
    let shared: Vec<&str> = snaps[0]
        .accounts_with_restore_access()
        .iter()
        .filter_map(|a| a.account_id())
        .collect();
    assert_eq!(shared, vec![VAULT], "the vault may restore it");
    let first_id = snaps[0].snapshot_identifier().unwrap().to_owned();
    assert_eq!(strongroom_count(&emu, "redshift:CopyClusterSnapshot"), 0);

    // The next run: `keep_last: 1` lets the first go. AWS refuses to delete a
    // snapshot others may restore, so prune takes the vault's access back first.
    let second = run(&emu, "share-2", &input(p, &hours_ago(1))).await;
    assert_eq!(
        second.outcome,
        RunOutcome::Succeeded,
        "{:#?}",
        second.failures
    );
    let prune = second.prune.as_ref().unwrap();
    assert_eq!(prune.deleted_ids, vec![first_id.clone()], "{prune:#?}");
    let left = manual().await;
    assert_eq!(left.len(), 1);
    assert_ne!(left[0].snapshot_identifier(), Some(first_id.as_str()));
    assert_eq!(strongroom_count(&emu, "redshift:RevokeSnapshotAccess"), 1);
    assert_eq!(strongroom_count(&emu, "redshift:DeleteClusterSnapshot"), 1);
}
