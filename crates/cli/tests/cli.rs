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
