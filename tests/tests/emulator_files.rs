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
