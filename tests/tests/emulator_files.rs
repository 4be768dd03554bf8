//! File restore from EBS snapshots, end to end in the emulator: a volume
//! whose content is a real xfs image (emulator patch 20), its snapshot and a
//! copy of it in another region, each read by `strongroom files get
//! --snapshot` through the EBS direct APIs, with no volume or instance made.

use std::process::Command;

use strongroom_tests::clients;
use strongroom_tests::fsimages::{image, tree};
use strongroom_tests::{functions_dir, Emulator};

const REGION: &str = "us-east-1";
const COPY_REGION: &str = "eu-west-1";

fn sha256_of(manifest: &serde_json::Value, rel: &str) -> String {
    manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == rel)
        .and_then(|e| e["sha256"].as_str())
        .unwrap_or_else(|| panic!("{rel} is in the manifest"))
        .to_string()
}

/// A 1 GiB volume tagged `backup=daily` whose content is `img` (patch 20).
async fn daily_volume(emu: &Emulator, img: &std::path::Path) -> String {
    let conf = emu.harness_config().await;
    let volume = clients::ec2(&conf, REGION)
        .create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .tag_specifications(
            aws_sdk_ec2::types::TagSpecification::builder()
                .resource_type(aws_sdk_ec2::types::ResourceType::Volume)
                .tags(
                    aws_sdk_ec2::types::Tag::builder()
                        .key("backup")
                        .value("daily")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .expect("CreateVolume")
        .volume_id()
        .unwrap()
        .to_string();
    emu.set_volume_content(REGION, &volume, img);
    volume
}

/// One run of the backup state machine for a policy of `backup=daily`
/// sources of `types` in us-east-1, with `extra` policy fields.
async fn backup(emu: &Emulator, name: &str, types: &[&str], extra: serde_json::Value) {
    use strongroom_tests::executions::{backup_machine, execute, sfn};
    let mut policy = serde_json::json!({
        "name": name,
        "selector": {"resource_types": types, "regions": [REGION], "tags": {"backup": "daily"}},
        "retention": {"keep_last": 3}
    });
    if let (Some(p), Some(e)) = (policy.as_object_mut(), extra.as_object()) {
        p.extend(e.clone());
    }
    let input = serde_json::json!({
        "policy": policy,
        "scheduled_time": strongroom_core::model::format_time(
            time::OffsetDateTime::now_utc() - time::Duration::hours(1)),
        "poll_seconds": 0
    });
    let sfn = sfn(emu).await;
    let e = execute(
        emu,
        &sfn,
        &backup_machine(&sfn).await,
        &format!("{name}-backup"),
        &input,
    )
    .await;
    assert_eq!(e.status, "SUCCEEDED", "{:?} {:?}", e.error, e.cause);
}

/// A restore that failed with `error`, its cause naming `says`.
async fn refused(
    emu: &Emulator,
    machine: &str,
    name: &str,
    request: &serde_json::Value,
    error: &str,
    says: &str,
) {
    use strongroom_tests::executions::{execute, sfn};
    let e = execute(emu, &sfn(emu).await, machine, name, request).await;
    assert_eq!(e.status, "FAILED", "{name}");
    assert_eq!(e.error.as_deref(), Some(error), "{name}: {:?}", e.cause);
    assert!(
        e.cause.as_deref().unwrap_or("").contains(says),
        "{name}: {:?}",
        e.cause
    );
}

/// A file restore that succeeded: its report and its list of what it copied.
async fn restored_files(
    emu: &Emulator,
    name: &str,
    request: &serde_json::Value,
) -> (
    strongroom_core::restore::run::RestoreReport,
    Vec<strongroom_core::restore::files::FileCopied>,
) {
    use strongroom_tests::executions::{execute, restore_machine, sfn};
    let sfn = sfn(emu).await;
    let e = execute(emu, &sfn, &restore_machine(&sfn).await, name, request).await;
    assert_eq!(
        e.status,
        "SUCCEEDED",
        "{:?} {:?}\n{}",
        e.error,
        e.cause,
        emu.function_log("restore")
    );
    let r: strongroom_core::restore::run::RestoreReport =
        serde_json::from_value(e.output.unwrap()).unwrap();
    let key = r.details["list"]
        .as_str()
        .unwrap()
        .strip_prefix(&format!("s3://{}/", strongroom_tests::RUNS_BUCKET))
        .expect("the list is in the stack's bucket")
        .to_string();
    let copied = emu
        .object_json(&strongroom_core::runs::S3Object {
            bucket: strongroom_tests::RUNS_BUCKET.into(),
            key,
        })
        .await;
    (r, copied)
}

#[tokio::test(flavor = "multi_thread")]
async fn files_are_restored_from_a_snapshot_and_its_copy_without_a_volume() {
    let tree = tree("emulator-files");
    let (img, _) = image(&tree, "xfs", "gpt", &[]);
    let emu = Emulator::start();
    let conf = emu.harness_config().await;
    let ec2 = clients::ec2(&conf, REGION);
    let volume = ec2
        .create_volume()
        .availability_zone("us-east-1a")
        .size(1)
        .send()
        .await
        .expect("CreateVolume");
    let volume = volume.volume_id().unwrap().to_string();
    emu.set_volume_content(REGION, &volume, &img);
    let snapshot = ec2
        .create_snapshot()
        .volume_id(&volume)
        .send()
        .await
        .expect("CreateSnapshot")
        .snapshot_id()
        .unwrap()
        .to_string();
    let copy = clients::ec2(&conf, COPY_REGION)
        .copy_snapshot()
        .source_region(REGION)
        .source_snapshot_id(&snapshot)
        .send()
        .await
        .expect("CopySnapshot")
        .snapshot_id()
        .unwrap()
        .to_string();
    // A copy is `pending` until Strongroom's describes have seen it progress
    // (patch 17); the EBS direct APIs read only completed snapshots.
    let copies = clients::ec2(&emu.sdk_config().await, COPY_REGION);
    for _ in 0..50 {
        let state = copies
            .describe_snapshots()
            .snapshot_ids(&copy)
            .send()
            .await
            .expect("DescribeSnapshots")
            .snapshots()[0]
            .state()
            .map(|s| s.as_str().to_string());
        if state.as_deref() == Some("completed") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    for (region, id) in [(REGION, &snapshot), (COPY_REGION, &copy)] {
        emu.reset_calls();
        let out = tree.dir.parent().unwrap().join(format!("out-{region}"));
        let run = Command::new(functions_dir().join("strongroom"))
            .args([
                "files",
                "get",
                "--snapshot",
                id,
                "--region",
                region,
                "--json",
                "--out",
            ])
            .arg(&out)
            .args(["/sizes/1KiB", "/sizes/3MiB*", "/links"])
            .env("AWS_ENDPOINT_URL", &emu.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", REGION)
            .output()
            .expect("run strongroom files get");
        assert!(
            run.status.success(),
            "files get from {id} in {region}: {}",
            String::from_utf8_lossy(&run.stderr)
        );
        let report: serde_json::Value = serde_json::from_slice(&run.stdout).expect("a JSON report");
        for rel in ["sizes/1KiB", "sizes/3MiB+7"] {
            let restored = report["restored"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["path"] == format!("/{rel}"))
                .unwrap_or_else(|| panic!("{rel} restored from {region}: {report}"));
            assert_eq!(
                restored["sha256"].as_str().unwrap(),
                sha256_of(&tree.manifest, rel)
            );
            let local = std::fs::read(out.join(rel)).unwrap();
            assert_eq!(local.len() as u64, restored["size"].as_u64().unwrap());
        }
        assert!(
            out.join("links").is_dir(),
            "a directory is restored with what is under it"
        );
        // Only the blocks the files and the metadata on the way need: a few
        // of the volume's 2,048.
        let calls = emu.calls();
        let gets = calls
            .iter()
            .filter(|c| c.service == "ebs" && c.action == "GetSnapshotBlock")
            .count();
        assert!(
            (2..40).contains(&gets),
            "{gets} blocks fetched from {region}"
        );
        assert!(
            calls
                .iter()
                .all(|c| c.service == "ebs" || c.service == "sts"),
            "only EBS direct calls (and STS for the account): {calls:?}"
        );
        assert_eq!(
            report["disk"]["read"]["blocks_fetched"].as_u64().unwrap() as usize,
            gets
        );
    }

    // A snapshot that does not exist: NotFound, nothing written.
    let out = tree.dir.parent().unwrap().join("out-missing");
    let run = Command::new(functions_dir().join("strongroom"))
        .args([
            "files",
            "get",
            "--snapshot",
            "snap-0123456789abcdef0",
            "--out",
        ])
        .arg(&out)
        .arg("/x")
        .env("AWS_ENDPOINT_URL", &emu.endpoint)
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_REGION", REGION)
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        err.contains("Strongroom.NotFound") && err.contains("snap-0123456789abcdef0"),
        "{err}"
    );
    assert!(
        !out.exists(),
        "nothing is written for a snapshot that cannot be read"
    );
}

/// The restore state machine's `files` kind, end to end: a volume holding
/// an xfs disk is backed up by the backup state machine; the restore,
/// started with a request as from the console, copies paths and globs to
/// S3 over several CopyFiles steps (a small step budget makes a 3 MiB file's
/// upload span steps), each object with the manifest's SHA-256 in the
/// report's list; a path that does not exist fails the restore naming it,
/// and a destination bucket that does not exist is refused before anything
/// is read.
#[tokio::test(flavor = "multi_thread")]
async fn the_restore_state_machine_copies_files_to_s3_across_steps() {
    use strongroom_tests::executions::{restore_machine, sfn};

    let tree = tree("state-machine-files");
    let (img, _) = image(&tree, "xfs", "gpt", &[]);
    // 1 MiB per step at most: small files go several to a step, the 16 MiB
    // sparse file in two 8 MiB parts, a step each, its SHA-256 carried from
    // one step to the next.
    let emu = Emulator::start_with_env(&[("STRONGROOM_FILES_STEP_BYTES", "1048576")]);
    let conf = emu.harness_config().await;
    let volume = daily_volume(&emu, &img).await;
    backup(&emu, "files", &["ebs-volume"], serde_json::json!({})).await;

    let sfn = sfn(&emu).await;
    let machine = restore_machine(&sfn).await;
    let request = serde_json::json!({
        "from": {"source": volume},
        "location": {"region": REGION},
        "restore": {
            "kind": "files",
            "paths": ["/sizes/1KiB", "/sizes/3MiB*", "/unicode", "/links/*", "/sparse/all-hole"],
            "destination": {"bucket": strongroom_tests::RUNS_BUCKET}
        },
        "poll_seconds": 0
    });
    let (r, copied) = restored_files(&emu, "files-restore", &request).await;
    assert!(r.restored.is_empty(), "a file restore makes no resource");
    let steps = r.details["steps"].as_u64().unwrap();
    assert!(steps >= 3, "the restore ran in {steps} CopyFiles steps");
    let s3 = aws_sdk_s3::Client::new(&conf);
    let mut files = 0;
    for c in &copied {
        let rel = c.file.path.trim_start_matches('/');
        let m = tree.manifest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == rel)
            .unwrap_or_else(|| panic!("{rel} is in the tree"));
        assert_eq!(c.file.kind, m["type"].as_str().unwrap(), "{rel}");
        if c.file.kind == "symlink" {
            assert_eq!(c.file.target.as_deref(), m["target"].as_str(), "{rel}");
            continue;
        }
        if c.file.kind != "file" {
            continue;
        }
        files += 1;
        let want = m["sha256"].as_str().unwrap();
        assert_eq!(
            c.sha256.as_deref(),
            Some(want),
            "{rel}: the report's SHA-256"
        );
        let key = c.key.as_deref().unwrap();
        assert_eq!(key, format!("restores/files-restore/files/{rel}"));
        let object = s3
            .get_object()
            .bucket(strongroom_tests::RUNS_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        let meta = object.metadata().cloned().unwrap_or_default();
        assert_eq!(
            meta.get("mtime").map(String::as_str),
            Some(m["mtime"].to_string().as_str()),
            "{rel} mtime"
        );
        assert_eq!(
            meta.get("uid").map(String::as_str),
            Some(m["uid"].to_string().as_str()),
            "{rel} uid"
        );
        let body = object.body.collect().await.unwrap().into_bytes();
        let got = strongroom_fs::local::hex(&<sha2::Sha256 as sha2::Digest>::digest(&body));
        assert_eq!(got, want, "{rel}: the object's content");
    }
    assert!(files >= 4, "{files} files copied: {copied:?}");
    assert!(
        copied.iter().any(|c| c.file.path == "/sizes/3MiB+7"),
        "the glob matched the 3 MiB file"
    );
    assert!(
        copied.iter().any(|c| c.file.path == "/sparse/all-hole"),
        "the 16 MiB file is copied"
    );

    // A path that is not there: the restore fails naming it.
    let mut missing = request.clone();
    missing["restore"]["paths"] = serde_json::json!(["/sizes/1KiB", "/no/such/file"]);
    refused(
        &emu,
        &machine,
        "files-missing",
        &missing,
        "Strongroom.NotFound",
        "/no/such/file",
    )
    .await;
    let written = s3
        .list_objects_v2()
        .bucket(strongroom_tests::RUNS_BUCKET)
        .prefix("restores/files-missing/files/")
        .send()
        .await
        .unwrap();
    assert_eq!(
        written.key_count(),
        Some(0),
        "nothing is copied when a path is missing"
    );

    // The stack's own bucket takes file restores only under restores/.
    let mut outside = request.clone();
    outside["restore"]["destination"]["prefix"] = serde_json::json!("recovery-points");
    refused(
        &emu,
        &machine,
        "files-outside",
        &outside,
        "Strongroom.InvalidInput",
        "restore.destination.prefix",
    )
    .await;

    // A destination that does not exist: refused at Validate.
    let mut nowhere = request.clone();
    nowhere["restore"]["destination"]["bucket"] = serde_json::json!("no-such-bucket-here");
    refused(
        &emu,
        &machine,
        "files-nowhere",
        &nowhere,
        "Strongroom.NotFound",
        "restore.destination.bucket",
    )
    .await;
}

/// A file restore from the vault: the backup copies the volume's snapshot to
/// the vault account in another region (the copy carries its content); the
/// restore reads the copy there through the vault's restore role, and writes
/// to the stack's bucket with its own credentials.
#[tokio::test(flavor = "multi_thread")]
async fn files_are_restored_from_the_vault_copy_through_its_role() {
    const VAULT: &str = "210987654321";
    const VAULT_REGION: &str = "us-west-2";
    let tree = tree("vault-files");
    let (img, _) = image(&tree, "ntfs", "gpt", &[]);
    let emu = Emulator::start();
    let vault = emu.seed_in("vault", VAULT, None);
    let volume = daily_volume(&emu, &img).await;
    backup(
        &emu,
        "dr",
        &["ebs-volume"],
        serde_json::json!({"copies": [{"region": VAULT_REGION, "account": VAULT,
            "role_arn": vault.roles["strongroom-vault-copy"], "kms_key": vault.keys["strongroom-vault"]}]}),
    )
    .await;

    let role = &vault.roles["strongroom-vault-restore"];
    let request = serde_json::json!({
        "from": {"source": volume},
        "location": {"region": VAULT_REGION, "account": VAULT, "role_arn": role},
        "restore": {"kind": "files", "paths": ["/sizes/*", "/unicode/**"],
                    "destination": {"bucket": strongroom_tests::RUNS_BUCKET, "region": REGION}},
        "poll_seconds": 0
    });
    let (r, copied) = restored_files(&emu, "vault-files", &request).await;
    assert_eq!(r.location.account, VAULT);
    assert_eq!(r.location.region, VAULT_REGION);
    let mut files = 0;
    for c in copied.iter().filter(|c| c.file.kind == "file") {
        let rel = c.file.path.trim_start_matches('/');
        let want = tree.manifest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == rel)
            .and_then(|e| e["sha256"].as_str())
            .unwrap_or_else(|| panic!("{rel} is in the tree"));
        assert_eq!(c.sha256.as_deref(), Some(want), "{rel}");
        files += 1;
    }
    assert!(files >= 8, "{files} files from the vault: {copied:?}");
    // The EBS direct calls went to the vault's region, as the vault.
    let calls = emu.calls();
    assert!(
        calls
            .iter()
            .filter(|c| c.service == "ebs")
            .all(|c| c.region == VAULT_REGION),
        "{calls:?}"
    );
}

/// A file restore from an AMI: the backup's AMI of an instance, read at its
/// root device (found with DescribeImages when the copy starts).
#[tokio::test(flavor = "multi_thread")]
async fn files_are_restored_from_an_amis_root_volume() {
    let tree = tree("ami-files");
    let (img, _) = image(&tree, "ext4", "gpt", &[]);
    let emu = Emulator::start();
    let home = emu.seed("restores");
    let instance = home
        .resources
        .iter()
        .find(|r| r.resource_type.as_str() == "ec2-instance")
        .expect("an instance is seeded")
        .clone();
    // Every volume of the instance holds the disk: whichever is the root.
    for v in &instance.volumes {
        emu.set_volume_content(REGION, v, &img);
    }
    backup(
        &emu,
        "images",
        &["ec2-instance"],
        serde_json::json!({"ec2": {"mode": "ami"}}),
    )
    .await;
    let request = serde_json::json!({
        "from": {"source": instance.id},
        "location": {"region": REGION},
        "restore": {"kind": "files", "paths": ["/sizes/1KiB", "/many/f0000*"],
                    "destination": {"bucket": strongroom_tests::RUNS_BUCKET}},
        "poll_seconds": 0
    });
    let (r, copied) = restored_files(&emu, "ami-files", &request).await;
    assert!(r.recovery_point.starts_with("ami-"), "{}", r.recovery_point);
    assert_eq!(copied.len(), 11, "{copied:?}");
    for c in &copied {
        let rel = c.file.path.trim_start_matches('/');
        let want = tree.manifest["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == rel)
            .and_then(|e| e["sha256"].as_str())
            .unwrap();
        assert_eq!(c.sha256.as_deref(), Some(want), "{rel}");
    }
}
