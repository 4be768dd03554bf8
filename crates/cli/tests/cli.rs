//! The `strongroom` binary: retention plans from files, errors that name the field.

use std::path::PathBuf;
use std::process::Command;

/// The fixtures of this checkout: cargo sets `CARGO_MANIFEST_DIR` when it
/// runs a test, and the compile-time value may name another checkout that
/// shared the target directory (cargo does not rebuild for a moved tree).
fn fixtures() -> PathBuf {
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.join("../../tests/fixtures")
}

fn strongroom(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strongroom"))
        .args(args)
        .output()
        .expect("run strongroom");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ids(v: &serde_json::Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn retention_plan_prints_keep_and_delete_with_reasons() {
    let f = fixtures();
    let retention = f.join("retention-7d-4w.json");
    let policy = f.join("policy-daily.json");
    for source in [
        ["--retention", retention.to_str().unwrap()],
        ["--policy", policy.to_str().unwrap()],
    ] {
        let points = f.join("thirty-days.json");
        let mut args = vec!["retention", "plan"];
        args.extend(source);
        args.extend([
            "--recovery-points",
            points.to_str().unwrap(),
            "--now",
            "2026-11-29T04:00:00Z",
        ]);
        let (code, out, err) = strongroom(&args);
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            ids(&v, "keep"),
            [
                "snap-20261129",
                "snap-20261128",
                "snap-20261127",
                "snap-20261126",
                "snap-20261125",
                "snap-20261124",
                "snap-20261123",
                "snap-20261122",
                "snap-20261115",
                "snap-20261114",
                "snap-20261108"
            ]
        );
        assert_eq!(ids(&v, "delete").len(), 19);
        assert_eq!(v["keep"][9]["reasons"], serde_json::json!(["hold"]));
        assert_eq!(
            v["keep"][7]["reasons"],
            serde_json::json!(["weekly snapshot"])
        );
        assert_eq!(
            v["delete"][0]["reasons"],
            serde_json::json!(["matches no keep rule"])
        );
    }
}

#[test]
fn bad_retention_fails_naming_the_field_and_changes_nothing() {
    let dir = std::env::temp_dir().join(format!("strongroom-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"keep_daily": -2}"#).unwrap();
    let points = fixtures().join("thirty-days.json");
    let (code, out, err) = strongroom(&[
        "retention",
        "plan",
        "--retention",
        bad.to_str().unwrap(),
        "--recovery-points",
        points.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(
        err.contains("retention.keep_daily") && err.contains("-1 for all"),
        "{err}"
    );
    std::fs::write(&bad, r#"{"keep_daily": 7, "keep_hourlies": 3}"#).unwrap();
    let (code, _, err) = strongroom(&[
        "retention",
        "plan",
        "--retention",
        bad.to_str().unwrap(),
        "--recovery-points",
        points.to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("keep_hourlies"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `strongroom files` on a local ext4 image (`mkfs.ext4 -d`): a listing, a
/// restore with links, times and SHA-256, and bad input that names the path
/// or the argument and writes nothing.
#[test]
fn files_ls_and_get_read_a_local_image() {
    let work = std::env::temp_dir().join(format!("strongroom-cli-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let tree = work.join("tree");
    std::fs::create_dir_all(tree.join("etc/app")).unwrap();
    std::fs::write(tree.join("etc/app/config.yaml"), "workers: 4\n").unwrap();
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(tree.join("etc/app/data.bin"), &big).unwrap();
    std::os::unix::fs::symlink("config.yaml", tree.join("etc/app/current")).unwrap();
    let image = work.join("disk.img");
    let mkfs = ["/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("mkfs.ext4 (make setup installs e2fsprogs)");
    let ok = Command::new(mkfs)
        .args(["-q", "-F", "-d"])
        .arg(&tree)
        .arg(&image)
        .arg("32M")
        .status()
        .unwrap();
    assert!(ok.success());
    let img = image.to_str().unwrap();

    let (code, out, err) = strongroom(&["files", "ls", "--image", img, "--json", "/etc/app"]);
    assert_eq!(code, 0, "{err}");
    let listed: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "/etc/app/config.yaml",
            "/etc/app/current",
            "/etc/app/data.bin"
        ]
    );
    assert_eq!(listed[1]["target"], "config.yaml");
    assert_eq!(listed[2]["size"], 3_000_000);

    let out_dir = work.join("out");
    let (code, out, err) = strongroom(&[
        "files",
        "get",
        "--image",
        img,
        "--out",
        out_dir.to_str().unwrap(),
        "--json",
        "/etc/app/*",
    ]);
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["files"], 2);
    assert_eq!(
        std::fs::read(out_dir.join("etc/app/data.bin")).unwrap(),
        big
    );
    assert_eq!(
        std::fs::read_link(out_dir.join("etc/app/current"))
            .unwrap()
            .to_str(),
        Some("config.yaml")
    );
    let restored = report["restored"].as_array().unwrap();
    let data = restored
        .iter()
        .find(|r| r["path"] == "/etc/app/data.bin")
        .unwrap();
    let sha = Command::new("sha256sum")
        .arg(out_dir.join("etc/app/data.bin"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&sha.stdout).starts_with(data["sha256"].as_str().unwrap()));

    // Bad input: named, exit 2, nothing written.
    let nothing = work.join("nothing");
    for (args, says) in [
        (
            vec![
                "files",
                "get",
                "--image",
                img,
                "--out",
                nothing.to_str().unwrap(),
                "/etc/missing",
            ],
            "Strongroom.NotFound: /etc/missing",
        ),
        (
            vec![
                "files",
                "get",
                "--image",
                img,
                "--partition",
                "2",
                "--out",
                nothing.to_str().unwrap(),
                "/etc",
            ],
            "no partition table",
        ),
        (
            vec!["files", "ls", "--snapshot", "snap-nothex", "/"],
            "is not a snapshot id",
        ),
        (
            vec![
                "files",
                "ls",
                "--image",
                work.join("absent.img").to_str().unwrap(),
                "/",
            ],
            "Strongroom.NotFound",
        ),
    ] {
        let (code, _, err) = strongroom(&args);
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!nothing.exists(), "nothing is written on bad input");
    let _ = std::fs::remove_dir_all(&work);
}
