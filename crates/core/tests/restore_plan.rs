//! Restores, pure parts: which recovery point a request names, what is made
//! of it (the request's settings over the recorded ones over defaults), the
//! tags it gets, and the catalog the CLI prints.

use std::collections::BTreeMap;

use serde_json::json;
use strongroom_core::model::{
    parse_time, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType, Tags,
};
use strongroom_core::ports::{Listed, ListedPoint};
use strongroom_core::restore::run::{catalog_entries, plan, resolve, restore_tags, RestorePlan};
use strongroom_core::restore::settings::{
    DbInstanceSettings, InstanceSettings, RecoveryPointRecord, SourceSettings, VolumeSettings,
    RECORD_FORMAT,
};
use strongroom_core::restore::RestoreRequest;
use strongroom_core::{tags, Error, ErrorKind};

const HOME: &str = "111111111111";

fn now() -> time::OffsetDateTime {
    parse_time("2026-11-29T12:00:00Z").unwrap()
}

fn here() -> Location {
    Location {
        account: HOME.into(),
        region: "us-east-1".into(),
    }
}

fn point(
    id: &str,
    kind: RecoveryPointKind,
    source: &str,
    at: &str,
    state: RecoveryPointState,
) -> ListedPoint {
    let mut t = Tags::new();
    t.insert(tags::MANAGED.into(), "true".into());
    t.insert(tags::POLICY.into(), "daily".into());
    t.insert(tags::SOURCE.into(), source.into());
    t.insert(tags::SOURCE_REGION.into(), "us-east-1".into());
    t.insert(tags::SOURCE_ACCOUNT.into(), HOME.into());
    t.insert("team".into(), "core".into());
    t.insert("aws:cloudformation:stack-name".into(), "x".into());
    ListedPoint {
        point: RecoveryPoint {
            id: id.into(),
            kind,
            members: vec![],
            resource_type: kind.facts().resource_type,
            source: source.into(),
            location: here(),
            created_at: parse_time(at).unwrap(),
            state,
        },
        tags: t,
        owner: HOME.into(),
        locked: false,
        used_by_amis: vec![],
        deleting: false,
        shared_with: None,
        revocable_shares: vec![],
        devices: BTreeMap::new(),
        size_gib: Some(50),
    }
}

fn set(id_time: &str) -> ListedPoint {
    let mut p = point(
        &format!("i-0abc@{id_time}"),
        RecoveryPointKind::Ec2SnapshotSet,
        "i-0abc",
        id_time,
        RecoveryPointState::Completed,
    );
    p.point.members = vec!["snap-root".into(), "snap-data".into()];
    p.devices = [
        ("snap-root".to_owned(), "/dev/xvda".to_owned()),
        ("snap-data".to_owned(), "/dev/sdf".to_owned()),
    ]
    .into();
    p
}

fn listed() -> Listed {
    use RecoveryPointKind::*;
    use RecoveryPointState::*;
    Listed {
        points: vec![
            point(
                "snap-old",
                EbsSnapshot,
                "vol-1",
                "2026-11-27T03:00:00Z",
                Completed,
            ),
            point(
                "snap-mid",
                EbsSnapshot,
                "vol-1",
                "2026-11-28T03:00:00Z",
                Completed,
            ),
            point(
                "snap-new",
                EbsSnapshot,
                "vol-1",
                "2026-11-29T03:00:00Z",
                Pending,
            ),
            point(
                "snap-bad",
                EbsSnapshot,
                "vol-1",
                "2026-11-29T02:00:00Z",
                Failed,
            ),
            point(
                "db-snap",
                RdsSnapshot,
                "arn:aws:rds:us-east-1:111111111111:db:orders",
                "2026-11-29T03:00:00Z",
                Completed,
            ),
            set("2026-11-29T03:00:00Z"),
        ],
        unreadable: vec![],
    }
}

fn request(v: serde_json::Value) -> RestoreRequest {
    RestoreRequest::parse(v, now()).expect("a valid request")
}

fn field_of(e: &Error) -> String {
    match e {
        Error::InvalidInput { field, .. } => field.clone(),
        other => panic!("not an invalid input: {other}"),
    }
}

fn volume(from: serde_json::Value) -> RestoreRequest {
    request(json!({"from": from, "location": {"region": "us-east-1"},
                   "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}}))
}

#[test]
fn a_source_restores_from_its_newest_completed_point_at_or_before_the_time() {
    let (p, member) = resolve(&volume(json!({"source": "vol-1"})), &listed(), now()).unwrap();
    assert_eq!(
        p.point.id, "snap-mid",
        "the pending and the failed newer ones are not restorable"
    );
    assert!(member.is_none());
    let (p, _) = resolve(
        &volume(json!({"source": "vol-1", "at_or_before": "2026-11-27T12:00:00Z"})),
        &listed(),
        now(),
    )
    .unwrap();
    assert_eq!(p.point.id, "snap-old");
    let db = request(
        json!({"from": {"source": "orders"}, "location": {"region": "us-east-1"},
                            "restore": {"kind": "rds-instance", "identifier": "orders-2"}}),
    );
    let (p, _) = resolve(&db, &listed(), now()).unwrap();
    assert_eq!(
        p.point.id, "db-snap",
        "a database's bare identifier names its ARN"
    );
}

#[test]
fn nothing_restorable_is_not_found_and_names_the_nearest_candidates() {
    let e = resolve(
        &volume(json!({"source": "vol-1", "at_or_before": "2026-11-26T00:00:00Z"})),
        &listed(),
        now(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let msg = e.to_string();
    assert!(msg.contains("from.source"), "{msg}");
    // Newest first, with their states.
    let new = msg.find("snap-new").expect("named");
    let old = msg.find("snap-old").expect("named");
    assert!(new < old, "{msg}");
    assert!(msg.contains("pending"), "{msg}");

    let e = resolve(
        &volume(json!({"recovery_point": "snap-nope"})),
        &listed(),
        now(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.to_string().contains("from.recovery_point"), "{e}");
    assert!(e.to_string().contains("snap-mid"), "{e}");

    let e = resolve(&volume(json!({"source": "vol-9"})), &listed(), now()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(
        e.to_string().contains("vol-1"),
        "sources with points are named: {e}"
    );
}

#[test]
fn a_point_not_completed_or_of_another_kind_is_refused() {
    let e = resolve(
        &volume(json!({"recovery_point": "snap-new"})),
        &listed(),
        now(),
    )
    .unwrap_err();
    assert_eq!(field_of(&e), "from.recovery_point");
    assert!(e.to_string().contains("not completed"), "{e}");
    let e = resolve(
        &volume(json!({"recovery_point": "snap-bad"})),
        &listed(),
        now(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("failed"), "{e}");
    let e = resolve(
        &volume(json!({"recovery_point": "db-snap"})),
        &listed(),
        now(),
    )
    .unwrap_err();
    assert_eq!(field_of(&e), "from.recovery_point");
    assert!(e.to_string().contains("rds-snapshot"), "{e}");
    assert!(
        e.to_string().contains("ebs-snapshot or ec2-snapshot-set"),
        "{e}"
    );
}

#[test]
fn a_volume_comes_from_one_member_of_a_set_by_id_or_by_device() {
    let set_id = "i-0abc@2026-11-29T03:00:00Z";
    let (p, member) = resolve(
        &volume(json!({"recovery_point": "snap-data"})),
        &listed(),
        now(),
    )
    .unwrap();
    assert_eq!(p.point.id, set_id);
    assert_eq!(member.as_deref(), Some("snap-data"));
    let plan_of = |r: &RestoreRequest| {
        let (p, m) = resolve(r, &listed(), now()).unwrap();
        plan(r, &p, m.as_deref(), None, &here())
    };
    match plan_of(&volume(json!({"recovery_point": "snap-data"}))).unwrap() {
        RestorePlan::EbsVolume { snapshot, .. } => assert_eq!(snapshot, "snap-data"),
        other => panic!("{other:?}"),
    }
    let by_device = request(
        json!({"from": {"recovery_point": set_id}, "location": {"region": "us-east-1"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "device": "/dev/xvda"}}),
    );
    match plan_of(&by_device).unwrap() {
        RestorePlan::EbsVolume { snapshot, .. } => assert_eq!(snapshot, "snap-root"),
        other => panic!("{other:?}"),
    }
    // The whole set without a device: which one?
    let e = plan_of(&volume(json!({"recovery_point": set_id}))).unwrap_err();
    assert_eq!(field_of(&e), "restore.device");
    let wrong = request(
        json!({"from": {"recovery_point": set_id}, "location": {"region": "us-east-1"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "device": "/dev/sdz"}}),
    );
    let e = plan_of(&wrong).unwrap_err();
    assert_eq!(field_of(&e), "restore.device");
    assert!(
        e.to_string().contains("/dev/sdf") && e.to_string().contains("/dev/xvda"),
        "{e}"
    );
}

fn instance_record() -> RecoveryPointRecord {
    let vol = |device: &str, size: i32| VolumeSettings {
        device: device.into(),
        volume_type: Some("gp3".into()),
        size_gib: Some(size),
        iops: Some(3000),
        throughput: Some(125),
        delete_on_termination: true,
        ..Default::default()
    };
    RecoveryPointRecord {
        format: RECORD_FORMAT,
        recovery_point: "i-0abc@2026-11-29T03:00:00Z".into(),
        kind: RecoveryPointKind::Ec2SnapshotSet,
        location: here(),
        source: "i-0abc".into(),
        source_tags: [
            ("team".to_owned(), "core".to_owned()),
            ("Name".to_owned(), "app".to_owned()),
        ]
        .into(),
        settings: SourceSettings::Ec2Instance(InstanceSettings {
            instance_type: "m7g.large".into(),
            architecture: "arm64".into(),
            root_device_name: "/dev/xvda".into(),
            volumes: vec![vol("/dev/sdf", 100), vol("/dev/xvda", 8)],
            subnet_id: Some("subnet-0123456789abcdef0".into()),
            security_group_ids: vec!["sg-0123456789abcdef0".into()],
            key_name: Some("ops".into()),
            private_ip: Some("10.0.0.5".into()),
            ..Default::default()
        }),
        copy_of: None,
    }
}

#[test]
fn an_instance_is_rebuilt_from_its_set_with_the_recorded_settings_unless_overridden() {
    let listed = listed();
    let set = listed.points.last().unwrap().clone();
    let r = request(
        json!({"from": {"recovery_point": set.point.id}, "location": {"region": "us-east-1"},
                           "restore": {"kind": "ec2-instance", "instance_type": "m7g.xlarge"}}),
    );
    let p = plan(&r, &set, None, Some(&instance_record()), &here()).unwrap();
    let RestorePlan::Ec2Instance {
        image,
        volumes,
        root_device_name,
        architecture,
        instance_type,
        subnet_id,
        security_group_ids,
        key_name,
        private_ip,
        ..
    } = p
    else {
        panic!("{p:?}")
    };
    assert!(image.is_none(), "a set is registered as an image first");
    assert_eq!(instance_type, "m7g.xlarge", "the request wins");
    assert_eq!(architecture, "arm64");
    assert_eq!(root_device_name, "/dev/xvda");
    let got: Vec<(&str, &str, Option<i32>)> = volumes
        .iter()
        .map(|v| (v.device.as_str(), v.snapshot.as_str(), v.size_gib))
        .collect();
    assert_eq!(
        got,
        [
            ("/dev/sdf", "snap-data", Some(100)),
            ("/dev/xvda", "snap-root", Some(8))
        ]
    );
    assert_eq!(subnet_id.as_deref(), Some("subnet-0123456789abcdef0"));
    assert_eq!(security_group_ids, ["sg-0123456789abcdef0"]);
    assert_eq!(key_name.as_deref(), Some("ops"));
    assert!(
        private_ip.is_none(),
        "the source's address is likely still in use"
    );

    // Without a record, a set cannot be launched: its volumes can.
    let e = plan(&r, &set, None, None, &here()).unwrap_err();
    assert_eq!(field_of(&e), "from");
    assert!(e.to_string().contains("ebs-volume"), "{e}");

    // A set without its root volume cannot boot.
    let mut rec = instance_record();
    if let SourceSettings::Ec2Instance(i) = &mut rec.settings {
        i.root_device_name = "/dev/sda1".into();
    }
    let e = plan(&r, &set, None, Some(&rec), &here()).unwrap_err();
    assert!(e.to_string().contains("root volume"), "{e}");
}

#[test]
fn away_from_the_source_region_the_recorded_network_is_not_used() {
    let listed = listed();
    let mut copy = listed.points.last().unwrap().clone();
    copy.point.location.region = "us-west-2".into();
    let r = request(
        json!({"from": {"recovery_point": copy.point.id}, "location": {"region": "us-west-2"},
                           "restore": {"kind": "ec2-instance"}}),
    );
    let RestorePlan::Ec2Instance {
        subnet_id,
        security_group_ids,
        key_name,
        instance_type,
        ..
    } = plan(
        &r,
        &copy,
        None,
        Some(&instance_record()),
        &copy.point.location,
    )
    .unwrap()
    else {
        panic!()
    };
    assert_eq!(
        instance_type, "m7g.large",
        "sizes still come from the record"
    );
    assert!(subnet_id.is_none() && security_group_ids.is_empty() && key_name.is_none());

    let db = listed
        .points
        .iter()
        .find(|p| p.point.id == "db-snap")
        .unwrap()
        .clone();
    let mut db_copy = db.clone();
    db_copy.point.location.account = "222222222222".into();
    let rec = RecoveryPointRecord {
        settings: SourceSettings::RdsInstance(DbInstanceSettings {
            instance_class: "db.m6g.large".into(),
            subnet_group: Some("app-db".into()),
            parameter_group: Some("tuned".into()),
            security_group_ids: vec!["sg-0123456789abcdef0".into()],
            ..Default::default()
        }),
        kind: RecoveryPointKind::RdsSnapshot,
        ..instance_record()
    };
    let r = request(
        json!({"from": {"recovery_point": "db-snap"}, "location": {"region": "us-east-1"},
                           "restore": {"kind": "rds-instance", "identifier": "orders-dr"}}),
    );
    for (p, local) in [(&db, true), (&db_copy, false)] {
        let RestorePlan::RdsInstance {
            instance_class,
            subnet_group,
            parameter_group,
            security_group_ids,
            ..
        } = plan(&r, p, None, Some(&rec), &p.point.location).unwrap()
        else {
            panic!()
        };
        assert_eq!(instance_class.as_deref(), Some("db.m6g.large"));
        assert_eq!(subnet_group.is_some(), local);
        assert_eq!(parameter_group.is_some(), local);
        assert_eq!(!security_group_ids.is_empty(), local);
    }
}

#[test]
fn a_volume_keeps_its_recorded_type_and_may_only_grow() {
    let listed = listed();
    let p = listed
        .points
        .iter()
        .find(|p| p.point.id == "snap-mid")
        .unwrap();
    let rec = RecoveryPointRecord {
        kind: RecoveryPointKind::EbsSnapshot,
        settings: SourceSettings::EbsVolume {
            volume: VolumeSettings {
                volume_type: Some("io2".into()),
                size_gib: Some(50),
                iops: Some(8000),
                ..Default::default()
            },
            availability_zone: Some("us-east-1a".into()),
        },
        ..instance_record()
    };
    let r = volume(json!({"recovery_point": "snap-mid"}));
    let RestorePlan::EbsVolume {
        volume_type, iops, ..
    } = plan(&r, p, None, Some(&rec), &here()).unwrap()
    else {
        panic!()
    };
    assert_eq!((volume_type.as_str(), iops), ("io2", Some(8000)));
    // Another type drops the IOPS it cannot carry over.
    let r = request(
        json!({"from": {"recovery_point": "snap-mid"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "volume_type": "st1"}}),
    );
    let RestorePlan::EbsVolume { iops, .. } = plan(&r, p, None, Some(&rec), &here()).unwrap()
    else {
        panic!()
    };
    assert_eq!(iops, None);
    let r = request(
        json!({"from": {"recovery_point": "snap-mid"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "size_gib": 10}}),
    );
    let e = plan(&r, p, None, Some(&rec), &here()).unwrap_err();
    assert_eq!(field_of(&e), "restore.size_gib");
}

#[test]
fn an_aurora_identifier_leaves_room_for_its_instances() {
    let listed = listed();
    let mut p = listed.points[4].clone();
    p.point.kind = RecoveryPointKind::AuroraSnapshot;
    p.point.resource_type = ResourceType::AuroraCluster;
    let id = "a".repeat(61);
    let r = request(
        json!({"from": {"recovery_point": "db-snap"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "aurora-cluster", "identifier": id, "instance_class": "db.r6g.large"}}),
    );
    let e = plan(&r, &p, None, None, &here()).unwrap_err();
    assert_eq!(field_of(&e), "restore.identifier");
    // Without a record or a class in the request: which class?
    let r = request(
        json!({"from": {"recovery_point": "db-snap"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "aurora-cluster", "identifier": "ledger-2"}}),
    );
    let e = plan(&r, &p, None, None, &here()).unwrap_err();
    assert_eq!(field_of(&e), "restore.instance_class");
}

#[test]
fn what_a_restore_makes_is_tagged_as_restored_never_as_managed() {
    let listed = listed();
    let p = &listed.points[1];
    let r = volume(json!({"recovery_point": "snap-mid"}));
    let t = restore_tags(&r, &p.point, None, &p.tags, "restore-1");
    assert_eq!(t[tags::RESTORED_FROM], "snap-mid");
    assert_eq!(t[tags::RESTORE], "restore-1");
    assert_eq!(t["team"], "core");
    assert!(t.keys().all(|k| !k.starts_with("aws:")));
    assert!(
        !t.contains_key(tags::MANAGED)
            && !t.contains_key(tags::POLICY)
            && !t.contains_key(tags::SOURCE)
    );
    // The record's source tags are preferred; at most 50 tags in all.
    let mut rec = instance_record();
    rec.source_tags = (0..80)
        .map(|i| (format!("k{i:02}"), "v".to_owned()))
        .collect();
    let t = restore_tags(&r, &p.point, Some(&rec), &p.tags, "restore-1");
    assert_eq!(t.len(), tags::MAX_TAGS);
    assert!(t.contains_key(tags::RESTORED_FROM) && t.contains_key(tags::RESTORE));
    // copy_source_tags: false.
    let r = request(
        json!({"from": {"recovery_point": "snap-mid"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}, "copy_source_tags": false}),
    );
    let t = restore_tags(&r, &p.point, Some(&rec), &p.tags, "restore-1");
    assert_eq!(t.len(), 2, "{t:?}");
}

#[test]
fn the_catalog_lists_by_source_newest_first_and_filters() {
    let listed = listed();
    let all = catalog_entries(&listed, None, None);
    assert_eq!(all.len(), listed.points.len());
    let vol: Vec<String> = catalog_entries(&listed, Some("vol-1"), None)
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(vol, ["snap-new", "snap-bad", "snap-mid", "snap-old"]);
    assert!(catalog_entries(&listed, None, Some("weekly")).is_empty());
    let db = catalog_entries(&listed, Some("orders"), Some("daily"));
    assert_eq!(db.len(), 1);
    assert_eq!(db[0].size_gib, Some(50));
    let set = catalog_entries(&listed, Some("i-0abc"), None);
    assert_eq!(set[0].devices["snap-data"], "/dev/sdf");
}

#[test]
fn requests_know_the_classes_identifiers_and_volume_settings_aws_takes() {
    let parse = |v: serde_json::Value| RestoreRequest::parse(v, now());
    let aurora = json!({"from": {"source": "ledger"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "aurora-cluster", "identifier": "ledger-2", "instance_class": "db.serverless"}});
    assert!(parse(aurora).is_ok(), "Aurora Serverless v2's class");
    let upper = json!({"from": {"source": "dwh"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "redshift-cluster", "identifier": "Dwh-2"}});
    assert_eq!(field_of(&parse(upper).unwrap_err()), "restore.identifier");
    let throughput_on_io2 = json!({"from": {"source": "vol-1"}, "location": {"region": "us-east-1"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "volume_type": "io2", "throughput": 500}});
    assert_eq!(
        field_of(&parse(throughput_on_io2).unwrap_err()),
        "restore.throughput"
    );
    let into_itself = json!({"from": {"source": "vol-1"}, "location": {"region": "us-east-1", "account": "222222222222",
        "role_arn": "arn:aws:iam::222222222222:role/r"}, "into": {"account": "222222222222"},
        "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}});
    assert_eq!(field_of(&parse(into_itself).unwrap_err()), "into.account");

    // io1/io2 need IOPS: given, or recorded with that type.
    let listed = listed();
    let p = listed
        .points
        .iter()
        .find(|p| p.point.id == "snap-mid")
        .unwrap();
    let io2 = |iops: serde_json::Value| {
        request(
            json!({"from": {"recovery_point": "snap-mid"}, "location": {"region": "us-east-1"},
            "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "volume_type": "io2", "iops": iops}}),
        )
    };
    let e = plan(
        &request(json!({"from": {"recovery_point": "snap-mid"}, "location": {"region": "us-east-1"},
            "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "volume_type": "io2"}})),
        p,
        None,
        None,
        &here(),
    )
    .unwrap_err();
    assert_eq!(field_of(&e), "restore.iops");
    let RestorePlan::EbsVolume { iops, .. } =
        plan(&io2(json!(16000)), p, None, None, &here()).unwrap()
    else {
        panic!()
    };
    assert_eq!(iops, Some(16000));
}

#[test]
fn a_later_step_refuses_a_state_validate_could_not_have_made() {
    use strongroom_core::restore::run::{Made, MadeKind, RestoreState};
    let listed = listed();
    let db = listed
        .points
        .iter()
        .find(|p| p.point.id == "db-snap")
        .unwrap();
    let r = request(
        json!({"from": {"recovery_point": "db-snap"}, "location": {"region": "us-east-1"},
                           "restore": {"kind": "rds-instance", "identifier": "orders-2"}}),
    );
    let plan = plan(&r, db, None, None, &here()).unwrap();
    // An execution name may hold `'`, which RDS tags refuse: it becomes `_`.
    let tags = restore_tags(&r, &db.point, None, &db.tags, "restore-o'brien");
    assert_eq!(tags[tags::RESTORE], "restore-o_brien");
    let state = RestoreState {
        request: r,
        execution: "restore-o'brien".into(),
        bucket: "strongroom-runs-111111111111".into(),
        location: here(),
        target: here(),
        point: db.point.clone(),
        recorded: false,
        plan,
        tags,
        made: vec![Made {
            kind: MadeKind::DbInstance,
            id: "orders-2".into(),
        }],
        usable: false,
        failed: None,
        polls: 1,
        poll_seconds: 60,
        wait_seconds: 60,
        started_at: now(),
        details: Default::default(),
        files: None,
    };
    state.validate(now()).expect("what Validate makes passes");
    assert_eq!(state.restore_tag(), "restore-o_brien");
    let refused = |f: &dyn Fn(&mut RestoreState)| {
        let mut s = state.clone();
        f(&mut s);
        field_of(&s.validate(now()).unwrap_err())
    };
    assert_eq!(
        refused(&|s| {
            s.tags.insert(tags::MANAGED.into(), "true".into());
        }),
        "state.tags"
    );
    assert_eq!(
        refused(&|s| {
            s.tags
                .insert(tags::RESTORE.into(), "another-restore".into());
        }),
        "state.tags"
    );
    assert_eq!(
        refused(&|s| s.made.push(Made {
            kind: MadeKind::DbInstance,
            id: "someone-elses-db".into()
        })),
        "state.made[1]"
    );
    assert_eq!(
        refused(&|s| s.made.push(Made {
            kind: MadeKind::Volume,
            id: "vol-zz".into()
        })),
        "state.made[1]"
    );
    assert_eq!(
        refused(&|s| {
            if let RestorePlan::RdsInstance { identifier, .. } = &mut s.plan {
                *identifier = "orders".into();
            }
        }),
        "state.plan"
    );
    assert_eq!(
        refused(&|s| s.target.account = "222222222222".into()),
        "state.location"
    );
    assert_eq!(
        refused(&|s| s.point.kind = RecoveryPointKind::EbsSnapshot),
        "state.point.kind"
    );
    assert_eq!(
        refused(&|s| s.execution = "two words".into()),
        "state.execution"
    );
    assert_eq!(refused(&|s| s.wait_seconds = 86_400), "state.wait_seconds");
}

fn files(from: serde_json::Value, extra: serde_json::Value) -> serde_json::Value {
    let mut restore = json!({"kind": "files", "paths": ["/etc/hosts", "/var/log/*.log"],
        "destination": {"bucket": "my-restores"}});
    if let (Some(r), Some(e)) = (restore.as_object_mut(), extra.as_object()) {
        r.extend(e.clone());
    }
    json!({"from": from, "location": {"region": "us-east-1"}, "restore": restore})
}

#[test]
fn a_file_restore_reads_a_snapshot_a_set_member_or_an_amis_volume() {
    let set_id = "i-0abc@2026-11-29T03:00:00Z";
    let plan_of = |v: serde_json::Value| {
        let r = request(v);
        let (p, m) = resolve(&r, &listed(), now())?;
        plan(&r, &p, m.as_deref(), None, &here())
    };
    match plan_of(files(json!({"source": "vol-1"}), json!({}))).unwrap() {
        RestorePlan::Files {
            snapshot,
            image,
            paths,
            bucket,
            prefix,
            bucket_region,
            ..
        } => {
            assert_eq!(
                snapshot.as_deref(),
                Some("snap-mid"),
                "the newest completed one"
            );
            assert_eq!(image, None);
            assert_eq!(paths, vec!["/etc/hosts", "/var/log/*.log"]);
            assert_eq!(
                (bucket.as_str(), prefix.as_str(), bucket_region.as_str()),
                ("my-restores", "", "us-east-1")
            );
        }
        other => panic!("{other:?}"),
    }
    // A member by device, or by its own id; a set of two needs one.
    for (from, device, want) in [
        (
            json!({"recovery_point": set_id}),
            json!({"device": "/dev/sdf"}),
            "snap-data",
        ),
        (
            json!({"recovery_point": "snap-root"}),
            json!({}),
            "snap-root",
        ),
    ] {
        match plan_of(files(from, device)).unwrap() {
            RestorePlan::Files { snapshot, .. } => assert_eq!(snapshot.as_deref(), Some(want)),
            other => panic!("{other:?}"),
        }
    }
    let e = plan_of(files(json!({"recovery_point": set_id}), json!({}))).unwrap_err();
    assert_eq!(field_of(&e), "restore.device");
    assert!(e.to_string().contains("/dev/sdf"), "{e}");
    // A volume's snapshot takes no device; a database's snapshot holds no files.
    let e = plan_of(files(
        json!({"recovery_point": "snap-mid"}),
        json!({"device": "/dev/sdf"}),
    ))
    .unwrap_err();
    assert_eq!(field_of(&e), "restore.device");
    let e = plan_of(files(json!({"recovery_point": "db-snap"}), json!({}))).unwrap_err();
    assert_eq!(field_of(&e), "from.recovery_point");
    assert!(e.to_string().contains("restore.kind files"), "{e}");
    // A pending point is refused before anything is read.
    let e = plan_of(files(json!({"recovery_point": "snap-new"}), json!({}))).unwrap_err();
    assert!(e.to_string().contains("not completed"), "{e}");
    // A prefix gets its slash.
    match plan_of(files(
        json!({"source": "vol-1"}),
        json!({"destination": {"bucket": "b-1", "prefix": "x/y"}}),
    ))
    .unwrap()
    {
        RestorePlan::Files { prefix, .. } => assert_eq!(prefix, "x/y/"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn file_restore_requests_are_checked_field_by_field() {
    let bad = |extra: serde_json::Value, field: &str| {
        let mut v = files(json!({"source": "vol-1"}), extra);
        if field == "into" {
            v["into"] = json!({"account": "222222222222"});
        }
        if field == "isolate" {
            v["isolate"] = json!(true);
        }
        let e = RestoreRequest::parse(v, now()).unwrap_err();
        assert_eq!(field_of(&e), field, "{e}");
    };
    bad(json!({"paths": []}), "restore.paths");
    bad(json!({"paths": ["etc/hosts"]}), "restore.paths[0]");
    bad(
        json!({"paths": (0..101).map(|i| format!("/f{i}")).collect::<Vec<_>>()}),
        "restore.paths",
    );
    bad(json!({"partition": 0}), "restore.partition");
    bad(
        json!({"destination": {"bucket": "Not_A_Bucket"}}),
        "restore.destination.bucket",
    );
    bad(
        json!({"destination": {"bucket": "ok-bucket", "prefix": "/abs"}}),
        "restore.destination.prefix",
    );
    bad(
        json!({"destination": {"bucket": "ok-bucket", "kms_key_id": "alias/aws/s3"}}),
        "restore.destination.kms_key_id",
    );
    bad(
        json!({"destination": {"bucket": "ok-bucket", "region": "mars-1"}}),
        "restore.destination.region",
    );
    bad(json!({}), "into");
    bad(json!({}), "isolate");
    RestoreRequest::parse(
        files(json!({"source": "vol-1"}), json!({"partition": 2, "destination": {"bucket": "ok-bucket",
            "kms_key_id": "arn:aws:kms:us-east-1:111111111111:key/0123abcd-0123-4567-89ab-0123456789ab"}})),
        now(),
    )
    .expect("a valid file restore");
}
