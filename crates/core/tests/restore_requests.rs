//! Issue 11, item 2: restore requests parse, and every mistake is named
//! with its field before anything happens.

use serde_json::{json, Value};
use strongroom_core::restore::{RestoreRequest, RestoreTarget};
use strongroom_core::Error;

const NOW: time::OffsetDateTime = time::macros::datetime!(2026-11-30 04:00 UTC);

fn volume() -> Value {
    json!({
        "from": {"recovery_point": "snap-0123456789abcdef0"},
        "location": {"region": "us-east-1"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}
    })
}

fn field(v: Value) -> (String, String) {
    match RestoreRequest::parse(v.clone(), NOW) {
        Err(Error::InvalidInput { field, message }) => (field, message),
        other => panic!("{v}: expected InvalidInput, got {other:?}"),
    }
}

#[test]
fn a_request_per_kind_parses_with_its_defaults() {
    let r = RestoreRequest::parse(volume(), NOW).unwrap();
    assert!(r.copy_source_tags && !r.isolate && !r.keep_on_failure);
    assert!(matches!(r.restore, RestoreTarget::EbsVolume { .. }));
    for restore in [
        json!({"kind": "ec2-instance", "instance_type": "m7g.large", "subnet_id": "subnet-0123456789abcdef0"}),
        json!({"kind": "rds-instance", "identifier": "orders-restored"}),
        json!({"kind": "aurora-cluster", "identifier": "ledger-restored", "instances": 2}),
        json!({"kind": "redshift-cluster", "identifier": "dwh-restored"}),
    ] {
        let mut v = volume();
        v["restore"] = restore.clone();
        RestoreRequest::parse(v, NOW).unwrap_or_else(|e| panic!("{restore}: {e}"));
    }
    // From a vault, the newest point of a source before a time.
    let v = json!({
        "from": {"source": "vol-0123456789abcdef0", "at_or_before": "2026-11-29T03:00:00Z"},
        "location": {"region": "eu-west-1", "account": "210987654321",
                     "role_arn": "arn:aws:iam::210987654321:role/strongroom-vault"},
        "restore": {"kind": "ebs-volume", "availability_zone": "eu-west-1b"}
    });
    RestoreRequest::parse(v, NOW).unwrap();
}

#[test]
fn every_mistake_names_its_field() {
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"restore": {"kind": "ebs-volume", "availability_zone": "eu-west-1a"}}),
            "restore.availability_zone",
            "not an Availability Zone of us-east-1",
        ),
        (
            json!({"restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "volume_type": "gp9"}}),
            "restore.volume_type",
            "gp3",
        ),
        (
            json!({"restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "iops_please": 3}}),
            "restore",
            "iops_please",
        ),
        (
            json!({"restore": {"kind": "floppy-disk"}}),
            "restore.kind",
            "floppy-disk",
        ),
        (
            json!({"restore": {"kind": "ec2-instance", "instance_type": "large"}}),
            "restore.instance_type",
            "m7g.large",
        ),
        (
            json!({"restore": {"kind": "ec2-instance", "subnet_id": "subnet-xyz"}}),
            "restore.subnet_id",
            "subnet-",
        ),
        (
            json!({"restore": {"kind": "ec2-instance", "security_group_ids": ["sg-0123456789abcdef0", "default"]}}),
            "restore.security_group_ids[1]",
            "sg-",
        ),
        (
            json!({"restore": {"kind": "ec2-instance", "private_ip": "10.0.0.300"}}),
            "restore.private_ip",
            "IPv4",
        ),
        (
            json!({"restore": {"kind": "rds-instance", "identifier": "1orders"}}),
            "restore.identifier",
            "starting with a letter",
        ),
        (
            json!({"restore": {"kind": "rds-instance", "identifier": "orders", "instance_class": "t4g.medium"}}),
            "restore.instance_class",
            "db.r6g.large",
        ),
        (
            json!({"restore": {"kind": "rds-instance"}}),
            "restore",
            "identifier",
        ),
        (
            json!({"restore": {"kind": "aurora-cluster", "identifier": "ledger", "instances": 0}}),
            "restore.instances",
            "1-16",
        ),
        (
            json!({"from": {"recovery_point": "snap-0123456789abcdef0", "source": "vol-1"}}),
            "from",
            "one of them",
        ),
        (json!({"from": {}}), "from", "names nothing"),
        (
            json!({"from": {"source": "vol-1", "at_or_before": "yesterday"}}),
            "from.at_or_before",
            "RFC 3339",
        ),
        (
            json!({"from": {"source": "vol-1", "at_or_before": "2027-01-01T00:00:00Z"}}),
            "from.at_or_before",
            "future",
        ),
        (
            json!({"from": {"recovery_point": "snap-1", "at_or_before": "2026-11-29T00:00:00Z"}}),
            "from.at_or_before",
            "goes with `source`",
        ),
        (
            json!({"location": {"region": "us-est-1"}}),
            "location.region",
            "not a region",
        ),
        (
            json!({"location": {"region": "us-east-1", "role_arn": "arn:aws:iam::210987654321:role/x"}}),
            "location.account",
            "missing",
        ),
        (
            json!({"location": {"region": "us-east-1", "account": "2109"}}),
            "location.account",
            "12 digits",
        ),
        (json!({"poll_seconds": 4000}), "poll_seconds", "3600"),
    ];
    for (patch, want_field, needle) in cases {
        let mut v = volume();
        for (k, val) in patch.as_object().unwrap() {
            v[k] = val.clone();
        }
        let (f, m) = field(v.clone());
        assert_eq!(f, want_field, "{v}: {m}");
        assert!(m.contains(needle), "{v}: {m}");
    }
}
