//! The safety invariants of pruning, property-tested over random estates with
//! a careless listing (one that returns every recovery point at the location,
//! whatever its tags): whatever the retention says, prune never deletes what it
//! must not.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use proptest::prelude::*;
use strongroom_core::fake::fixtures::REGIONS;
use strongroom_core::fake::{MemoryCloud, StoredPoint, FAKE_ACCOUNT};
use strongroom_core::model::{
    format_time, utc, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType,
    Tags,
};
use strongroom_core::prune::{is_held, prune, PruneRequest, FAILED_GRACE_DAYS};
use strongroom_core::retention::Retention;
use strongroom_core::{tags, ErrorKind};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-11-29 04:00 UTC);

#[derive(Debug, Clone)]
struct Spec {
    region: usize,
    source: u8,
    age_hours: i64,
    managed: bool,
    other_policy: bool,
    foreign: bool,
    hold: bool,
    locked: bool,
    ami: bool,
    state: u8,
    deleting: bool,
    shared: bool,
}

fn spec() -> impl Strategy<Value = Spec> {
    (
        0..2usize,
        0..4u8,
        0..(400 * 24i64),
        prop::bool::weighted(0.9),
        prop::bool::weighted(0.15),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
        0..20u8,
        prop::bool::weighted(0.1),
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(
                region,
                source,
                age_hours,
                managed,
                other_policy,
                foreign,
                hold,
                locked,
                ami,
                state,
                deleting,
                shared,
            )| Spec {
                region,
                source,
                age_hours,
                managed,
                other_policy,
                foreign,
                hold,
                locked,
                ami,
                state,
                deleting,
                shared,
            },
        )
}

fn retention() -> impl Strategy<Value = Retention> {
    (
        0..4i64,
        0..10i64,
        0..6i64,
        0..4i64,
        prop::option::of(1..20u32),
        prop::option::of(5..200u32),
    )
        .prop_map(|(last, daily, weekly, monthly, within, max_age)| {
            let mut r = Retention {
                keep_last: Some(last),
                keep_daily: Some(daily),
                keep_weekly: Some(weekly),
                keep_monthly: Some(monthly),
                keep_within: within.map(|d| format!("{d}d")),
                max_age: max_age.map(|d| format!("{d}d")),
                ..Default::default()
            };
            if last + daily + weekly + monthly == 0 && within.is_none() && max_age.is_none() {
                r.keep_last = Some(1);
            }
            r
        })
}

fn estate(specs: &[Spec]) -> MemoryCloud {
    let cloud = MemoryCloud::new();
    let mut points = cloud.points.write().unwrap();
    for (i, s) in specs.iter().enumerate() {
        let created = utc(NOW - Duration::hours(s.age_hours + 1));
        let source = format!("vol-{:02}", s.source);
        let mut t = Tags::new();
        if s.managed {
            t.insert(tags::MANAGED.into(), "true".into());
        }
        t.insert(
            tags::POLICY.into(),
            if s.other_policy { "weekly" } else { "daily" }.into(),
        );
        t.insert(tags::SOURCE.into(), source.clone());
        t.insert(tags::CREATED_AT.into(), format_time(created));
        if s.hold {
            t.insert(tags::HOLD.into(), "legal-2026-17".into());
        }
        points.push(StoredPoint {
            point: RecoveryPoint {
                id: format!("snap-{i:04}"),
                kind: RecoveryPointKind::EbsSnapshot,
                members: vec![],
                resource_type: ResourceType::EbsVolume,
                source,
                location: Location {
                    account: FAKE_ACCOUNT.into(),
                    region: REGIONS[s.region].into(),
                },
                created_at: created,
                state: match s.state {
                    0 => RecoveryPointState::Pending,
                    1 | 2 => RecoveryPointState::Failed,
                    _ => RecoveryPointState::Completed,
                },
            },
            name: String::new(),
            tags: t,
            owner: if s.foreign {
                "210987654321".into()
            } else {
                FAKE_ACCOUNT.into()
            },
            locked: s.locked,
            used_by_amis: if s.ami {
                vec!["ami-0123".into()]
            } else {
                vec![]
            },
            deleting: s.deleting,
            shared_with: if s.shared {
                vec!["210987654321".into()]
            } else {
                vec![]
            },
        });
    }
    drop(points);
    cloud.list_everything.store(true, Ordering::SeqCst);
    cloud
}

fn request(r: Retention, dry_run: bool) -> PruneRequest {
    let policy: strongroom_core::policy::Policy = serde_json::from_value(serde_json::json!({
        "name": "daily",
        "selector": {"resource_types": ["ebs-volume"], "regions": REGIONS, "tags": {"backup": "daily"}}
    }))
    .unwrap();
    PruneRequest {
        policy: strongroom_core::policy::Policy {
            retention: Some(r),
            ..policy
        },
        dry_run,
        now: None,
        report_to: None,
    }
}

async fn run(
    cloud: &MemoryCloud,
    r: &Retention,
    dry_run: bool,
) -> strongroom_core::prune::PruneReport {
    let rules = r.rules("retention").unwrap();
    prune(request(r.clone(), dry_run), Some(rules), NOW, cloud)
        .await
        .unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn prune_never_deletes_what_it_must_not(specs in prop::collection::vec(spec(), 0..60), r in retention()) {
        let cloud = estate(&specs);
        let before = cloud.stored();
        let report = block_on(run(&cloud, &r, false));
        let deleted = cloud.deleted.read().unwrap().clone();
        prop_assert_eq!(deleted.len(), report.deleted);
        let by_id: BTreeMap<&str, &StoredPoint> = before.iter().map(|p| (p.point.id.as_str(), p)).collect();
        for id in &deleted {
            let p = by_id[id.as_str()];
            // Invariant 1: ours, this account's, this policy's.
            prop_assert_eq!(p.tags.get(tags::MANAGED).map(String::as_str), Some("true"));
            prop_assert_eq!(p.owner.as_str(), FAKE_ACCOUNT);
            prop_assert_eq!(p.tags.get(tags::POLICY).map(String::as_str), Some("daily"));
            // Invariant 2: not held, locked, used by an AMI, shared, pending,
            // failed within its grace (unless its deletion had begun), nor the
            // newest completed.
            prop_assert!(!is_held(&p.tags));
            prop_assert!(!p.locked);
            prop_assert!(p.used_by_amis.is_empty());
            prop_assert!(p.shared_with.is_empty(), "{} is shared", id);
            prop_assert_ne!(p.point.state, RecoveryPointState::Pending);
            if p.point.state == RecoveryPointState::Failed {
                prop_assert!(
                    p.deleting || NOW - p.point.created_at > Duration::days(FAILED_GRACE_DAYS),
                    "{} failed within its grace", id
                );
                continue;
            }
            let newest = before
                .iter()
                .filter(|q| q.point.location == p.point.location && q.point.source == p.point.source)
                .filter(|q| q.point.state == RecoveryPointState::Completed)
                .map(|q| q.point.created_at)
                .max()
                .unwrap();
            prop_assert!(p.point.created_at < newest, "{} is the newest completed of {}", id, p.point.source);
        }
        // Every source that had a completed point still has its newest one.
        for p in &before {
            if p.point.state != RecoveryPointState::Completed { continue; }
            let newest = before.iter()
                .filter(|q| q.point.location == p.point.location && q.point.source == p.point.source && q.point.state == RecoveryPointState::Completed)
                .max_by_key(|q| q.point.created_at).unwrap();
            prop_assert!(!deleted.contains(&newest.point.id));
        }
        // Idempotent: the same prune again deletes nothing more.
        let again = block_on(run(&cloud, &r, false));
        prop_assert_eq!(again.deleted, 0);
    }

    #[test]
    fn dry_run_plans_the_same_and_deletes_nothing(specs in prop::collection::vec(spec(), 0..60), r in retention()) {
        let dry = estate(&specs);
        let real = estate(&specs);
        let planned = block_on(run(&dry, &r, true));
        prop_assert!(dry.deleted.read().unwrap().is_empty());
        prop_assert_eq!(dry.stored().len(), specs.len());
        let done = block_on(run(&real, &r, false));
        let ids = |rep: &strongroom_core::prune::PruneReport| -> Vec<String> {
            rep.locations.iter().flat_map(|l| l.deleted.iter().map(|d| d.id.clone())).collect()
        };
        prop_assert_eq!(ids(&planned), ids(&done));
        prop_assert!(planned.dry_run);
    }

    #[test]
    fn a_failed_listing_prunes_nothing_there(specs in prop::collection::vec(spec(), 0..60), r in retention()) {
        let cloud = estate(&specs);
        cloud.fail_list.write().unwrap().insert("eu-west-1".into(), ErrorKind::Throttled);
        let report = block_on(run(&cloud, &r, false));
        let deleted = cloud.deleted.read().unwrap().clone();
        for id in &deleted {
            let p = specs[id.trim_start_matches("snap-").parse::<usize>().unwrap()].clone();
            prop_assert_eq!(REGIONS[p.region], "us-east-1");
        }
        let eu = report.locations.iter().find(|l| l.location.as_ref().unwrap().region == "eu-west-1").unwrap();
        prop_assert!(eu.aborted.is_some());
        prop_assert!(eu.deleted.is_empty());
    }
}

#[tokio::test]
async fn no_retention_and_no_points_say_so() {
    let cloud = MemoryCloud::new();
    let mut req = request(
        Retention {
            keep_daily: Some(7),
            ..Default::default()
        },
        false,
    );
    req.policy.retention = None;
    let rep = prune(req, None, NOW, &cloud).await.unwrap();
    assert!(rep.notes[0].contains("no retention"), "{:?}", rep.notes);
    let r = Retention {
        keep_daily: Some(7),
        ..Default::default()
    };
    let rep = run(&cloud, &r, false).await;
    assert_eq!(rep.deleted, 0);
    assert_eq!(rep.notes.len(), 2, "{:?}", rep.notes);
    assert!(
        rep.notes[0].contains("no recovery points of policy daily"),
        "{:?}",
        rep.notes
    );
}

#[tokio::test]
async fn the_report_shows_each_reason_in_words_and_reads_back() {
    let plain = Spec {
        region: 0,
        source: 0,
        age_hours: 0,
        managed: true,
        other_policy: false,
        foreign: false,
        hold: false,
        locked: false,
        ami: false,
        state: 3,
        deleting: false,
        shared: false,
    };
    let at = |days: i64| Spec {
        age_hours: days * 24,
        ..plain.clone()
    };
    let specs = vec![
        plain.clone(),
        Spec {
            hold: true,
            ..at(30)
        },
        Spec {
            locked: true,
            ..at(31)
        },
        Spec {
            ami: true,
            ..at(32)
        },
        Spec {
            other_policy: true,
            ..at(33)
        },
        Spec {
            foreign: true,
            ..at(34)
        },
        Spec {
            managed: false,
            ..at(35)
        },
        Spec { state: 0, ..at(36) },
        at(37),
        Spec {
            shared: true,
            ..at(38)
        },
        Spec { state: 1, ..at(2) },
        Spec { state: 1, ..at(10) },
        Spec {
            deleting: true,
            ..at(3)
        },
    ];
    let cloud = estate(&specs);
    let r = Retention {
        keep_daily: Some(1),
        max_age: Some("20d".into()),
        ..Default::default()
    };
    let report = run(&cloud, &r, true).await;
    let json = serde_json::to_value(&report).unwrap();
    let us = &json["locations"][0];
    let reasons = |list: &str, id: &str| -> serde_json::Value {
        let d = us[list].as_array().unwrap().iter().find(|d| d["id"] == id);
        d.unwrap_or_else(|| panic!("{id} not in {list}: {us}"))["reasons"].clone()
    };
    let words = |w: &[&str]| serde_json::json!(w);
    assert_eq!(
        reasons("kept", "snap-0000"),
        words(&[
            "daily snapshot",
            "newest completed recovery point of the source"
        ])
    );
    assert_eq!(reasons("kept", "snap-0001"), words(&["hold"]));
    assert_eq!(reasons("kept", "snap-0002"), words(&["locked"]));
    assert_eq!(reasons("kept", "snap-0003"), words(&["in use by ami-0123"]));
    assert_eq!(
        reasons("kept", "snap-0004"),
        words(&["made by policy weekly"])
    );
    assert_eq!(
        reasons("kept", "snap-0005"),
        words(&[&format!(
            "owned by account 210987654321, not {FAKE_ACCOUNT}"
        )])
    );
    assert_eq!(
        reasons("kept", "snap-0006"),
        words(&["not managed by Strongroom"])
    );
    assert_eq!(reasons("kept", "snap-0007"), words(&["not completed"]));
    assert_eq!(
        reasons("deleted", "snap-0008"),
        words(&["older than max_age 20d"])
    );
    assert_eq!(
        reasons("refused", "snap-0009"),
        words(&["shared with 210987654321"])
    );
    assert_eq!(
        reasons("kept", "snap-0010"),
        words(&["not completed", "failed, kept 7 days for inspection"])
    );
    assert_eq!(
        reasons("deleted", "snap-0011"),
        words(&["failed more than 7 days ago"])
    );
    assert_eq!(
        reasons("deleted", "snap-0012"),
        words(&["finishes an earlier deletion"])
    );
    // Sharing is asked only of what would be deleted.
    assert_eq!(cloud.sharing_checks.load(Ordering::SeqCst), 4);
    // The run report reads the prune report back, reasons and all.
    let back: strongroom_core::report::PruneOutcome = serde_json::from_value(json).unwrap();
    assert_eq!(back, strongroom_core::report::PruneOutcome::Done(report));
}

/// A Redshift snapshot of policy `daily`, completed, `hours` old.
fn redshift_point(
    id: &str,
    hours: i64,
    shared: Vec<String>,
    revocable: Vec<String>,
) -> strongroom_core::ports::ListedPoint {
    let mut t = Tags::new();
    t.insert(tags::MANAGED.into(), "true".into());
    t.insert(tags::POLICY.into(), "daily".into());
    strongroom_core::ports::ListedPoint {
        point: RecoveryPoint {
            id: id.into(),
            kind: RecoveryPointKind::RedshiftSnapshot,
            members: vec![],
            resource_type: ResourceType::RedshiftCluster,
            source: "arn:aws:redshift:us-east-1:123456789012:cluster:dwh".into(),
            location: Location {
                account: FAKE_ACCOUNT.into(),
                region: "us-east-1".into(),
            },
            created_at: NOW - Duration::hours(hours),
            state: RecoveryPointState::Completed,
        },
        tags: t,
        owner: FAKE_ACCOUNT.into(),
        locked: false,
        used_by_amis: vec![],
        deleting: false,
        shared_with: Some(shared),
        revocable_shares: revocable,
        devices: Default::default(),
        size_gib: None,
    }
}

proptest! {
    /// A share keeps a recovery point unless the policy made it itself (its
    /// vault's); a permit then names exactly those accounts to unshare first.
    #[test]
    fn only_the_policys_own_shares_are_taken_back_before_deleting(
        shared in prop::collection::btree_set(0..5usize, 0..4),
        revocable in prop::collection::btree_set(0..5usize, 0..4),
    ) {
        let account = |i: &usize| format!("21098765432{i}");
        let shared: Vec<String> = shared.iter().map(account).collect();
        let revocable: Vec<String> = revocable.iter().map(account).collect();
        let old = redshift_point("old", 48, shared.clone(), revocable.clone());
        let newer = redshift_point("newer", 1, vec![], vec![]);
        let result = strongroom_core::prune::authorize(&old, &[&old, &newer], FAKE_ACCOUNT, "daily", NOW, vec![]);
        let others: Vec<&String> = shared.iter().filter(|a| !revocable.contains(a)).collect();
        match result {
            Ok(permit) => {
                prop_assert!(others.is_empty(), "deleted although shared with {:?}", others);
                let expected: Vec<String> = shared.iter().filter(|a| revocable.contains(a)).cloned().collect();
                prop_assert_eq!(permit.unshare(), expected.as_slice());
            }
            Err(why) => {
                prop_assert!(!others.is_empty(), "refused for {:?}", why);
            }
        }
    }
}
