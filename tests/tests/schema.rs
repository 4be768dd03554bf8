//! The committed JSON Schemas (run input, restore request) are the ones the types generate.
//! `STRONGROOM_BLESS=1 cargo test -p strongroom-tests --test schema` (or `make schema`) rewrites it.

use strongroom_core::policy::run_input_schema;
use strongroom_tests::workspace;

#[test]
fn committed_schema_is_current() {
    let path = workspace().join("infra/schemas/run-input.schema.json");
    let generated = serde_json::to_string_pretty(&run_input_schema()).unwrap() + "\n";
    if std::env::var_os("STRONGROOM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the policy types: run `make schema` and commit it",
        path.display()
    );
    // The schema says what the docs promise.
    let v: serde_json::Value = serde_json::from_str(&committed).unwrap();
    let text = v.to_string();
    for needle in [
        "resource_types",
        "exclude_tags",
        "redshift-cluster",
        "scheduled_time",
        "additionalProperties",
    ] {
        assert!(text.contains(needle), "schema lacks {needle}");
    }
}

#[test]
fn committed_restore_schema_is_current() {
    let path = workspace().join("infra/schemas/restore-request.schema.json");
    let generated =
        serde_json::to_string_pretty(&strongroom_core::restore::restore_request_schema()).unwrap()
            + "\n";
    if std::env::var_os("STRONGROOM_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with the restore types: run `make schema` and commit it",
        path.display()
    );
    for needle in [
        "ebs-volume",
        "aurora-cluster",
        "at_or_before",
        "keep_on_failure",
    ] {
        assert!(committed.contains(needle), "schema lacks {needle}");
    }
}
