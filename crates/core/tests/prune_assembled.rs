//! The safety invariants of pruning over raw listings, as the AWS adapters
//! return them and `listing::assemble` turns them into recovery points: EBS
//! snapshots (volume snapshots, instance set members, AMI snapshots, some
//! marked `strongroom:deleting`, some left by deregistered AMIs), AMIs of
//! every owner and policy, and locks. Whatever the retention says, no
//! snapshot that must not go is deleted, checked against the raw facts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use proptest::prelude::*;
use strongroom_core::error::CloudError;
use strongroom_core::listing::{assemble, is_remains, ListedImage, ListedSnapshot, Listing};
use strongroom_core::model::{
    Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, Tags,
};
use strongroom_core::ports::{Identity, Listed, Pruning};
use strongroom_core::prune::{prune, DeletionPermit, PruneRequest, FAILED_GRACE_DAYS};
use strongroom_core::retention::Retention;
use strongroom_core::tags;
use time::macros::datetime;
use time::OffsetDateTime;

const ME: &str = "111111111111";
const NOW: OffsetDateTime = datetime!(2026-11-29 04:00 UTC);

/// A location whose listing is fixed; deletions are recorded.
struct Raw {
    listing: Listing,
    shared: BTreeSet<String>,
    deleted: Mutex<Vec<RecoveryPoint>>,
}

impl Identity for Raw {
    async fn home_account(&self) -> Result<String, CloudError> {
        Ok(ME.into())
    }
}

impl Pruning for Raw {
    /// As the EBS listing asks AWS: only snapshots tagged managed and with
    /// the policy (AMIs: all of the account's).
    async fn list(&self, location: &Location, policy: &str) -> Result<Listed, CloudError> {
        let mut listing = self.listing.clone();
        listing
            .snapshots
            .retain(|s| strongroom_core::listing::ours(&s.tags, policy));
        Ok(assemble(location, policy, listing))
    }

    async fn shared_with(&self, point: &RecoveryPoint) -> Result<Vec<String>, CloudError> {
        let ids: Vec<&String> = if point.members.is_empty() {
            vec![&point.id]
        } else {
            point.members.iter().collect()
        };
        Ok(ids
            .into_iter()
            .filter(|i| self.shared.contains(*i))
            .map(|_| "210987654321".to_owned())
            .collect())
    }

    async fn delete(&self, permit: &DeletionPermit) -> Result<(), CloudError> {
        self.deleted.lock().unwrap().push(permit.point().clone());
        Ok(())
    }
}

#[derive(Debug, Clone)]
struct SnapSpec {
    /// 0..2 volumes, 2..4 instances.
    source: u8,
    day: u8,
    state: u8,
    image: Option<u8>,
    policy: u8,
    held: bool,
    deleting: bool,
    foreign: bool,
    locked: bool,
    shared: bool,
}

fn snap_spec() -> impl Strategy<Value = SnapSpec> {
    (
        (
            0..4u8,
            0..20u8,
            0..10u8,
            prop::option::weighted(0.3, 0..4u8),
        ),
        (
            0..10u8,
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.15),
            prop::bool::weighted(0.05),
            prop::bool::weighted(0.1),
            prop::bool::weighted(0.1),
        ),
    )
        .prop_map(
            |((source, day, state, image), (policy, held, deleting, foreign, locked, shared))| {
                SnapSpec {
                    source,
                    day,
                    state,
                    image,
                    policy,
                    held,
                    deleting,
                    foreign,
                    locked,
                    shared,
                }
            },
        )
}

fn created(day: u8) -> String {
    let t = NOW - time::Duration::days(i64::from(day)) - time::Duration::hours(1);
    strongroom_core::model::format_time(t)
}

fn source_of(n: u8) -> String {
    if n < 2 {
        format!("vol-{n}")
    } else {
        format!("i-{n}")
    }
}

fn contract(source: &str, at: &str, policy: u8) -> Tags {
    let mut t = Tags::new();
    if policy != 9 {
        t.insert(tags::MANAGED.into(), "true".into());
    }
    t.insert(
        tags::POLICY.into(),
        if policy == 8 { "weekly" } else { "daily" }.into(),
    );
    t.insert(tags::SOURCE.into(), source.into());
    t.insert(tags::CREATED_AT.into(), at.into());
    t
}

/// AMI `ami-N` uses the AMI snapshots made for it; images 0 and 1 are
/// listed (0 is someone else's), 2 and 3 were deregistered.
fn listing(specs: &[SnapSpec]) -> (Listing, BTreeSet<String>) {
    let mut snapshots = Vec::new();
    let mut locked = BTreeSet::new();
    let mut shared = BTreeSet::new();
    let mut images: BTreeMap<u8, ListedImage> = BTreeMap::new();
    for (i, s) in specs.iter().enumerate() {
        let id = format!("snap-{i:03}");
        let source = source_of(s.source);
        let at = created(s.day);
        // CreateImage tags our AMI's snapshots as the AMI: same policy.
        let policy = if s.image == Some(1) { 0 } else { s.policy };
        let mut t = contract(&source, &at, policy);
        if s.held {
            t.insert(tags::HOLD.into(), "case-1".into());
        }
        if s.deleting {
            t.insert(tags::DELETING.into(), "2026-11-28T00:00:00Z".into());
        }
        if let Some(img) = s.image {
            t.insert(tags::KIND.into(), "ami".into());
            if img < 2 {
                let image = images.entry(img).or_insert_with(|| ListedImage {
                    size_gib: None,
                    id: format!("ami-{img}"),
                    owner: ME.into(),
                    state: RecoveryPointState::Completed,
                    tags: if img == 0 {
                        Tags::new()
                    } else {
                        contract(&source, &at, 0)
                    },
                    snapshots: vec![],
                });
                image.snapshots.push(id.clone());
            }
        }
        snapshots.push(ListedSnapshot {
            size_gib: None,
            id: id.clone(),
            owner: if s.foreign { "9".into() } else { ME.into() },
            state: match s.state {
                0 => RecoveryPointState::Pending,
                1 => RecoveryPointState::Failed,
                _ => RecoveryPointState::Completed,
            },
            tags: t,
            volume_id: Some(if s.source < 2 {
                source.clone()
            } else {
                format!("vol-of-{i}")
            }),
            of_image: s.image.is_some(),
            image_id: s.image.map(|i| format!("ami-{i}")),
        });
        if s.locked {
            locked.insert(id.clone());
        }
        if s.shared {
            shared.insert(id);
        }
    }
    (
        Listing {
            snapshots,
            images: images.into_values().collect(),
            records: vec![],
            locked,
        },
        shared,
    )
}

fn retention() -> impl Strategy<Value = Retention> {
    (0..3i64, 0..5i64, prop::option::of(3..30u32)).prop_map(|(last, daily, max_age)| Retention {
        keep_last: Some(last.max(i64::from(max_age.is_none()))),
        keep_daily: Some(daily),
        max_age: max_age.map(|d| format!("{d}d")),
        ..Default::default()
    })
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn no_snapshot_that_must_stay_is_deleted(
        specs in prop::collection::vec(snap_spec(), 0..40),
        r in retention(),
    ) {
        let (listing, shared) = listing(&specs);
        let raw = Raw { listing: listing.clone(), shared: shared.clone(), deleted: Mutex::new(vec![]) };
        let policy: strongroom_core::policy::Policy = serde_json::from_value(serde_json::json!({
            "name": "daily",
            "selector": {"resource_types": ["ebs-volume", "ec2-instance"], "regions": ["eu-west-1"], "tags": {"backup": "daily"}},
            "retention": r
        })).unwrap();
        let rules = policy.retention.as_ref().unwrap().rules("retention").unwrap();
        let req = PruneRequest { policy, dry_run: false, now: None, report_to: None };
        block_on(prune(req, Some(rules), NOW, &raw)).unwrap();
        let deleted = raw.deleted.lock().unwrap().clone();

        let by_id: BTreeMap<&str, &ListedSnapshot> = listing.snapshots.iter().map(|s| (s.id.as_str(), s)).collect();
        let image_users: BTreeMap<&str, Vec<&str>> = listing.images.iter().fold(BTreeMap::new(), |mut m, i| {
            for s in &i.snapshots { m.entry(s.as_str()).or_default().push(i.id.as_str()); }
            m
        });
        let listed_images: BTreeSet<&str> = listing.images.iter().map(|i| i.id.as_str()).collect();
        // The newest restorable point of each source: all of its snapshots
        // completed, none being deleted, not an AMI's.
        let mut groups: BTreeMap<(String, String, String), Vec<&ListedSnapshot>> = BTreeMap::new();
        for s in listing.snapshots.iter().filter(|s| !s.of_image && strongroom_core::listing::ours(&s.tags, "daily")) {
            // A volume's snapshots are points each; an instance's of one run are one set.
            let one = if s.tags[tags::SOURCE].starts_with("vol-") { s.id.clone() } else { String::new() };
            groups.entry((s.tags[tags::SOURCE].clone(), s.tags[tags::CREATED_AT].clone(), one)).or_default().push(s);
        }
        // Source -> (time, id): the id of a volume snapshot or an AMI, or
        // the set id of an instance's set.
        let mut newest: BTreeMap<String, (String, String)> = BTreeMap::new();
        // Our completed AMIs are restorable points of their source too.
        for i in listing.images.iter().filter(|i| strongroom_core::listing::ours(&i.tags, "daily")) {
            if i.state == RecoveryPointState::Completed {
                let (source, at) = (i.tags[tags::SOURCE].clone(), i.tags[tags::CREATED_AT].clone());
                if newest.get(&source).is_none_or(|n| at > n.0) {
                    newest.insert(source, (at, i.id.clone()));
                }
            }
        }
        for ((source, at, one), members) in &groups {
            let ours = true;
            let restorable = members.iter().all(|m| m.state == RecoveryPointState::Completed && !m.tags.contains_key(tags::DELETING));
            let id = if one.is_empty() { format!("{source}@{at}") } else { one.clone() };
            if ours && restorable && newest.get(source).is_none_or(|n| *at > n.0) {
                newest.insert(source.clone(), (at.clone(), id));
            }
        }

        for p in &deleted {
            let snaps: Vec<&str> = match p.kind {
                RecoveryPointKind::EbsSnapshot => vec![p.id.as_str()],
                _ => p.members.iter().map(String::as_str).collect(),
            };
            for id in &snaps {
                let Some(s) = by_id.get(id) else {
                    // An AMI's own snapshots need not be listed.
                    prop_assert_eq!(p.kind, RecoveryPointKind::Ami);
                    continue;
                };
                // A registered AMI is the recovery point: its own tags and
                // owner count (AWS tags and owns its snapshots alike); the
                // generator may give its snapshots others.
                let registered_ami = p.kind == RecoveryPointKind::Ami && !is_remains(&p.id);
                if !registered_ami {
                    prop_assert_eq!(s.tags.get(tags::MANAGED).map(String::as_str), Some("true"), "{} unmanaged", id);
                    prop_assert_eq!(s.tags[tags::POLICY].as_str(), "daily", "{} another policy's", id);
                    prop_assert_eq!(s.owner.as_str(), ME, "{} foreign", id);
                }
                prop_assert!(!s.tags.contains_key(tags::HOLD), "{} held", id);
                prop_assert!(!listing.locked.contains(*id), "{} locked", id);
                prop_assert!(!shared.contains(*id), "{} shared", id);
                let users: Vec<&str> = image_users.get(id).cloned().unwrap_or_default();
                prop_assert!(users.iter().all(|u| *u == p.id), "{} used by {:?}", id, users);
                let marked = s.tags.contains_key(tags::DELETING);
                // (An AMI's state is the image's: AWS makes it available
                // once its snapshots are.)
                if s.state == RecoveryPointState::Pending && !registered_ami {
                    prop_assert!(marked, "{} pending", id);
                }
            }
            if p.kind == RecoveryPointKind::Ami {
                if is_remains(&p.id) {
                    // Remains of an AMI that is not listed, deleted snapshot by snapshot.
                    let ami = p.id.trim_end_matches("/remains");
                    prop_assert!(!listed_images.contains(ami), "{} is listed", ami);
                } else {
                    prop_assert_eq!(p.id.as_str(), "ami-1", "only our listed AMI");
                }
            }
            if p.state == RecoveryPointState::Failed {
                let marked = snaps.iter().any(|i| by_id.get(i).is_some_and(|s| s.tags.contains_key(tags::DELETING)));
                prop_assert!(
                    marked || NOW - p.created_at > time::Duration::days(FAILED_GRACE_DAYS),
                    "{} failed within its grace", p.id
                );
            }
            if !is_remains(&p.id) {
                let newest_id = newest.get(&p.source).map(|n| n.1.as_str());
                prop_assert!(newest_id != Some(p.id.as_str()), "{} is the newest restorable of {}", p.id, p.source);
            }
        }
    }
}
