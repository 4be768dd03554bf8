//! From what a location's listings returned to the recovery points prune
//! decides on: the safety-critical assembly, pure and tested here, apart from
//! the I/O that gathers it.
//!
//! The adapters fill a [`Listing`] with raw facts: the policy's EBS snapshots,
//! every AMI of the account (whoever made it: any AMI that uses a snapshot
//! protects it), the snapshot locks, and the one-resource recovery points
//! (RDS, Aurora, Redshift). [`assemble`] groups an instance's snapshots into
//! one set per run, recognises AMI snapshots, and carries every protecting
//! fact to the point it protects: a hold, a lock, an AMI's use or a foreign
//! owner on any member holds, locks, uses or disowns the whole point.

use std::collections::{BTreeMap, BTreeSet};

use crate::kind::{Idempotency, Snapshots};
use crate::model::{
    parse_time, utc, Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, Tags,
};
use crate::ports::{Listed, ListedPoint, UnreadablePoint};
use crate::prune::is_held;
use crate::tags;

/// An EBS snapshot as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedSnapshot {
    pub id: String,
    pub owner: String,
    pub state: RecoveryPointState,
    pub tags: Tags,
    /// The volume it was taken of (AWS's `VolumeId`).
    pub volume_id: Option<String>,
    /// Made by `CreateImage`: part of an AMI, listed with it.
    pub of_image: bool,
    /// The AMI `CreateImage` made it for, as its description says.
    pub image_id: Option<String>,
    /// The size of the volume it was taken of (GiB).
    pub size_gib: Option<u64>,
}

/// An AMI as listed (every AMI of the account, ours or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedImage {
    pub id: String,
    pub owner: String,
    pub state: RecoveryPointState,
    pub tags: Tags,
    /// The EBS snapshots behind its block device mappings.
    pub snapshots: Vec<String>,
    /// The sum of its mappings' volume sizes (GiB).
    pub size_gib: Option<u64>,
}

/// A recovery point that is one AWS resource (RDS, Aurora, Redshift snapshots).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRecord {
    pub kind: RecoveryPointKind,
    pub id: String,
    pub owner: String,
    pub state: RecoveryPointState,
    pub tags: Tags,
    /// Accounts that may restore it, where the listing tells (Redshift).
    pub shared_with: Option<Vec<String>>,
    /// Its storage (GiB): allocated storage, or a Redshift backup's size.
    pub size_gib: Option<u64>,
}

/// Everything a location's listings returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub snapshots: Vec<ListedSnapshot>,
    pub images: Vec<ListedImage>,
    pub records: Vec<ListedRecord>,
    /// EBS snapshots under an EBS Snapshot Lock that has not expired.
    pub locked: BTreeSet<String>,
}

impl Listing {
    pub fn merge(&mut self, other: Listing) {
        self.snapshots.extend(other.snapshots);
        self.images.extend(other.images);
        self.records.extend(other.records);
        self.locked.extend(other.locked);
    }

    /// Every EBS snapshot a lock could protect: the listed ones and those of our AMIs.
    pub fn snapshot_ids(&self, policy: &str) -> Vec<String> {
        let mut ids: Vec<String> = self.snapshots.iter().map(|s| s.id.clone()).collect();
        for i in self.images.iter().filter(|i| ours(&i.tags, policy)) {
            ids.extend(i.snapshots.iter().cloned());
        }
        ids.sort();
        ids.dedup();
        ids
    }
}

/// Which recovery points an assembly keeps: one policy's (prune), or every
/// Strongroom point of any policy (restores, the catalog).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope<'a> {
    Policy(&'a str),
    AnyPolicy,
}

impl Scope<'_> {
    /// Whether tags `t` are of a point in scope.
    pub fn covers(self, t: &Tags) -> bool {
        match self {
            Self::Policy(p) => ours(t, p),
            Self::AnyPolicy => t.get(tags::MANAGED).map(String::as_str) == Some("true"),
        }
    }

    /// What tells the sets of two policies apart (for one policy: nothing,
    /// so that a member whose policy tag differs protects its whole set).
    fn set_key(self, t: &Tags) -> String {
        match self {
            Self::Policy(_) => String::new(),
            Self::AnyPolicy => t.get(tags::POLICY).cloned().unwrap_or_default(),
        }
    }
}

/// Managed by Strongroom and made by `policy`.
pub fn ours(t: &Tags, policy: &str) -> bool {
    t.get(tags::MANAGED).map(String::as_str) == Some("true")
        && t.get(tags::POLICY).map(String::as_str) == Some(policy)
}

/// The kind a listed EBS snapshot belongs to: its `strongroom:kind` tag, or
/// for snapshots made before that tag, what AWS says of it.
fn snapshot_kind(s: &ListedSnapshot) -> RecoveryPointKind {
    if s.of_image {
        return RecoveryPointKind::Ami;
    }
    s.tags
        .get(tags::KIND)
        .and_then(|k| RecoveryPointKind::from_tag(k))
        // Only a kind made of EBS snapshots alone can describe a snapshot: a
        // tag naming any other kind (by mistake or not) must never send the
        // snapshot's deletion to another service.
        .filter(|k| {
            let f = k.facts();
            f.snapshots == Snapshots::Itself
                || (f.snapshots == Snapshots::Members && f.idempotency == Idempotency::RunLookup)
        })
        .unwrap_or_else(|| {
            let source = s.tags.get(tags::SOURCE).map(String::as_str).unwrap_or("");
            RecoveryPointKind::of_untagged_snapshot(source, s.volume_id.as_deref())
        })
}

/// A point as the listings describe it, before its time is read.
struct Draft {
    kind: RecoveryPointKind,
    id: String,
    members: Vec<String>,
    tags: Tags,
    state: RecoveryPointState,
    owner: String,
    locked: bool,
    used_by_amis: Vec<String>,
    deleting: bool,
    shared_with: Option<Vec<String>>,
    devices: BTreeMap<String, String>,
    size_gib: Option<u64>,
}

impl Listed {
    /// Adds the point, or, when its `strongroom:created-at` is not a time, an
    /// unreadable point that prune keeps and reports.
    fn add(&mut self, d: Draft, location: &Location) {
        let source = d.tags.get(tags::SOURCE).cloned().unwrap_or_default();
        let raw = d.tags.get(tags::CREATED_AT).cloned().unwrap_or_default();
        let Ok(created_at) = parse_time(&raw) else {
            self.unreadable.push(UnreadablePoint {
                id: d.id,
                kind: d.kind,
                source,
                created_at: raw,
            });
            return;
        };
        self.points.push(ListedPoint {
            point: RecoveryPoint {
                id: d.id,
                kind: d.kind,
                members: d.members,
                resource_type: d.kind.facts().resource_type,
                source,
                location: location.clone(),
                created_at: utc(created_at),
                state: d.state,
            },
            tags: d.tags,
            owner: d.owner,
            locked: d.locked,
            used_by_amis: d.used_by_amis,
            deleting: d.deleting,
            shared_with: d.shared_with,
            revocable_shares: Vec::new(),
            devices: d.devices,
            size_gib: d.size_gib,
        });
    }
}

/// The suffix of the id of what a deregistered AMI left: its snapshots,
/// deleted one by one (`DeleteSnapshot`, which AWS refuses for a snapshot a
/// registered AMI uses), never through the AMI.
pub const REMAINS: &str = "/remains";

/// The id of the remains of the AMI `key` (its id, or `<source>@<time>`).
pub fn remains_id(key: &str) -> String {
    format!("{key}{REMAINS}")
}

/// Whether a recovery point of kind [`RecoveryPointKind::Ami`] is what a
/// deregistered AMI left rather than an AMI.
pub fn is_remains(id: &str) -> bool {
    id.ends_with(REMAINS)
}

/// Whether prune began deleting the snapshot.
fn is_deleting(s: &ListedSnapshot) -> bool {
    s.tags.contains_key(tags::DELETING)
}

/// One point made of several snapshots (an instance's set, or what a
/// deregistered AMI left), with the strictest facts of all members: held,
/// foreign or unmanaged if any member is; failed and to be finished if any
/// member's deletion began.
fn group(
    kind: RecoveryPointKind,
    id: String,
    members: &[&ListedSnapshot],
    scope: Scope<'_>,
    location: &Location,
) -> Draft {
    let mut ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    ids.sort();
    let first = members[0];
    let mut t = first.tags.clone();
    if let Some(m) = members.iter().find(|m| is_held(&m.tags)) {
        t.insert(tags::HOLD.into(), m.tags[tags::HOLD].clone());
    }
    if let Some(m) = members.iter().find(|m| !scope.covers(&m.tags)) {
        for k in [tags::MANAGED, tags::POLICY] {
            match m.tags.get(k) {
                Some(v) => t.insert(k.into(), v.clone()),
                None => t.remove(k),
            };
        }
    }
    // Foreign if any member is: any member not of this location's account.
    let owner = members
        .iter()
        .find(|m| m.owner != location.account)
        .unwrap_or(&first)
        .owner
        .clone();
    // A snapshot still being made is waited for, marked or not.
    let pending = members
        .iter()
        .any(|m| m.state == RecoveryPointState::Pending);
    let deleting = !pending && members.iter().any(|m| is_deleting(m));
    Draft {
        kind,
        id,
        // Set by the caller, which knows the locks and the AMIs.
        locked: false,
        used_by_amis: vec![],
        members: ids,
        tags: t,
        // For prune, a snapshot still being made outweighs a failed one: the
        // point is waited for, never deleted with a snapshot in the making.
        state: if pending {
            RecoveryPointState::Pending
        } else if deleting {
            RecoveryPointState::Failed
        } else {
            RecoveryPointState::worst(members.iter().map(|m| m.state))
        },
        owner,
        deleting,
        shared_with: None,
        devices: members
            .iter()
            .filter_map(|m| Some((m.id.clone(), m.tags.get(tags::DEVICE)?.clone())))
            .collect(),
        size_gib: members.iter().map(|m| m.size_gib).sum(),
    }
}

/// The recovery points of `policy` at `location`, each with the facts the
/// safety invariants need. Images and records of other policies or not
/// managed by Strongroom are not recovery points of the policy and are left out
/// (images still count as users of snapshots).
pub fn assemble(location: &Location, policy: &str, listing: Listing) -> Listed {
    assemble_in(location, Scope::Policy(policy), listing)
}

/// Every Strongroom recovery point at `location`, of any policy: what a
/// restore chooses from.
pub fn assemble_managed(location: &Location, listing: Listing) -> Listed {
    assemble_in(location, Scope::AnyPolicy, listing)
}

fn assemble_in(location: &Location, scope: Scope<'_>, listing: Listing) -> Listed {
    let Listing {
        snapshots,
        images,
        records,
        locked,
    } = listing;
    // Which AMIs use each snapshot, whoever made them.
    let mut used_by: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for i in &images {
        for s in &i.snapshots {
            used_by.entry(s.as_str()).or_default().push(i.id.clone());
        }
    }
    let users = |ids: &[String], except: Option<&str>| -> Vec<String> {
        let mut out: Vec<String> = ids
            .iter()
            .flat_map(|s| used_by.get(s.as_str()).cloned().unwrap_or_default())
            .filter(|a| Some(a.as_str()) != except)
            .collect();
        out.sort();
        out.dedup();
        out
    };
    let any_locked = |ids: &[String]| ids.iter().any(|i| locked.contains(i));
    let image_ids: BTreeSet<&str> = images.iter().map(|i| i.id.as_str()).collect();

    let mut listed = Listed::default();
    // A hold put on any snapshot an AMI uses holds the AMI (deleting the AMI
    // deletes its snapshots).
    let held_snapshots: BTreeMap<&str, &str> = snapshots
        .iter()
        .filter(|s| is_held(&s.tags))
        .map(|s| (s.id.as_str(), s.tags[tags::HOLD].as_str()))
        .collect();
    let mut sets: BTreeMap<(String, String, String), Vec<&ListedSnapshot>> = BTreeMap::new();
    let mut orphans: BTreeMap<String, Vec<&ListedSnapshot>> = BTreeMap::new();
    for s in &snapshots {
        match snapshot_kind(s) {
            // Part of an AMI: listed with it, unless no AMI uses it any more
            // (a deregistration whose snapshot deletion failed): then the
            // remains are a failed point of their own, so they are not
            // orphaned for ever.
            RecoveryPointKind::Ami => {
                // An AMI that is listed, even without this snapshot in its
                // mappings yet (EC2 describes lag), still has it.
                let image_listed = s.image_id.as_deref().is_some_and(|i| image_ids.contains(i));
                if scope.covers(&s.tags) && !used_by.contains_key(s.id.as_str()) && !image_listed {
                    let key = s.image_id.clone().unwrap_or_else(|| {
                        let tag = |k: &str| s.tags.get(k).cloned().unwrap_or_default();
                        format!("{}@{}", tag(tags::SOURCE), tag(tags::CREATED_AT))
                    });
                    orphans.entry(remains_id(&key)).or_default().push(s);
                }
            }
            RecoveryPointKind::Ec2SnapshotSet => {
                let key = |k: &str| s.tags.get(k).cloned().unwrap_or_default();
                sets.entry((
                    scope.set_key(&s.tags),
                    key(tags::SOURCE),
                    key(tags::CREATED_AT),
                ))
                .or_default()
                .push(s);
            }
            kind => {
                let ids = std::slice::from_ref(&s.id);
                // A snapshot still being made is waited for, marked or not.
                let deleting = is_deleting(s) && s.state != RecoveryPointState::Pending;
                let d = Draft {
                    kind,
                    id: s.id.clone(),
                    members: vec![],
                    tags: s.tags.clone(),
                    // A snapshot whose deletion began is no longer a point to restore from.
                    state: if deleting {
                        RecoveryPointState::Failed
                    } else {
                        s.state
                    },
                    owner: s.owner.clone(),
                    locked: any_locked(ids),
                    used_by_amis: users(ids, None),
                    deleting,
                    shared_with: None,
                    devices: BTreeMap::new(),
                    size_gib: s.size_gib,
                };
                listed.add(d, location);
            }
        }
    }
    for ((_, source, created), members) in sets {
        let id = match parse_time(&created) {
            Ok(at) => RecoveryPoint::instance_set_id(&source, at),
            Err(_) => format!("{source}@{created}"),
        };
        let mut d = group(
            RecoveryPointKind::Ec2SnapshotSet,
            id,
            &members,
            scope,
            location,
        );
        d.locked = any_locked(&d.members);
        d.used_by_amis = users(&d.members, None);
        listed.add(d, location);
    }
    for (id, members) in orphans {
        let mut d = group(RecoveryPointKind::Ami, id, &members, scope, location);
        d.locked = any_locked(&d.members);
        d.used_by_amis = users(&d.members, None);
        // Never restorable as an AMI again: failed, once no snapshot of it
        // is still being made.
        if d.state != RecoveryPointState::Pending {
            d.state = RecoveryPointState::Failed;
        }
        listed.add(d, location);
    }
    for i in images.iter().filter(|i| scope.covers(&i.tags)) {
        let mut t = i.tags.clone();
        if let Some(hold) = i
            .snapshots
            .iter()
            .find_map(|m| held_snapshots.get(m.as_str()))
        {
            t.insert(tags::HOLD.into(), (*hold).to_owned());
        }
        let d = Draft {
            kind: RecoveryPointKind::Ami,
            id: i.id.clone(),
            members: i.snapshots.clone(),
            tags: t,
            state: i.state,
            owner: i.owner.clone(),
            locked: any_locked(&i.snapshots),
            used_by_amis: users(&i.snapshots, Some(&i.id)),
            deleting: false,
            shared_with: None,
            devices: BTreeMap::new(),
            size_gib: i.size_gib,
        };
        listed.add(d, location);
    }
    for r in records.into_iter().filter(|r| scope.covers(&r.tags)) {
        let d = Draft {
            kind: r.kind,
            id: r.id,
            members: vec![],
            tags: r.tags,
            state: r.state,
            owner: r.owner,
            locked: false,
            used_by_amis: vec![],
            deleting: false,
            shared_with: r.shared_with,
            devices: BTreeMap::new(),
            size_gib: r.size_gib,
        };
        listed.add(d, location);
    }
    listed
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ME: &str = "111111111111";

    fn loc() -> Location {
        Location {
            account: ME.into(),
            region: "eu-west-1".into(),
        }
    }

    fn contract(source: &str, created: &str, kind: Option<&str>) -> Tags {
        let mut t: Tags = [
            (tags::MANAGED, "true"),
            (tags::POLICY, "daily"),
            (tags::SOURCE, source),
            (tags::CREATED_AT, created),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        if let Some(k) = kind {
            t.insert(tags::KIND.into(), k.into());
        }
        t
    }

    fn snap(id: &str, volume: &str, t: Tags) -> ListedSnapshot {
        ListedSnapshot {
            size_gib: None,
            id: id.into(),
            owner: ME.into(),
            state: RecoveryPointState::Completed,
            tags: t,
            volume_id: Some(volume.into()),
            of_image: false,
            image_id: None,
        }
    }

    const T1: &str = "2026-11-28T03:00:00Z";

    #[test]
    fn volumes_sets_and_amis_are_told_apart() {
        let mut held = contract("i-1", T1, Some("ec2-snapshot-set"));
        held.insert(tags::HOLD.into(), "legal".into());
        let mut image_snap = snap("snap-img", "vol-9", contract("i-2", T1, Some("ami")));
        image_snap.tags.insert(tags::HOLD.into(), "case-7".into());
        image_snap.of_image = true;
        let listing = Listing {
            snapshots: vec![
                // Tagged with its kind.
                snap(
                    "snap-a",
                    "vol-1",
                    contract("vol-1", T1, Some("ebs-snapshot")),
                ),
                // Made before the kind tag: classified by its volume.
                snap("snap-b", "vol-2", contract("vol-2", T1, None)),
                snap("snap-c", "vol-3", contract("i-1", T1, None)),
                snap("snap-d", "vol-4", held),
                image_snap,
            ],
            images: vec![
                ListedImage {
                    size_gib: None,
                    id: "ami-ours".into(),
                    owner: ME.into(),
                    state: RecoveryPointState::Completed,
                    tags: contract("i-2", T1, Some("ami")),
                    snapshots: vec!["snap-img".into()],
                },
                ListedImage {
                    size_gib: None,
                    id: "ami-theirs".into(),
                    owner: ME.into(),
                    state: RecoveryPointState::Completed,
                    tags: Tags::new(),
                    snapshots: vec!["snap-a".into(), "snap-img".into()],
                },
            ],
            records: vec![
                ListedRecord {
                    size_gib: None,
                    kind: RecoveryPointKind::RdsSnapshot,
                    id: "strongroom-daily-x-db".into(),
                    owner: ME.into(),
                    state: RecoveryPointState::Pending,
                    tags: contract("arn:aws:rds:eu-west-1:1:db:db", T1, None),
                    shared_with: None,
                },
                ListedRecord {
                    size_gib: None,
                    kind: RecoveryPointKind::RdsSnapshot,
                    id: "someone-elses".into(),
                    owner: ME.into(),
                    state: RecoveryPointState::Completed,
                    tags: Tags::new(),
                    shared_with: None,
                },
            ],
            locked: ["snap-c".to_owned()].into(),
        };
        let points = assemble(&loc(), "daily", listing).points;
        let by_id: BTreeMap<&str, &ListedPoint> =
            points.iter().map(|p| (p.point.id.as_str(), p)).collect();
        assert_eq!(
            by_id.keys().copied().collect::<Vec<_>>(),
            [
                "ami-ours",
                "i-1@2026-11-28T03:00:00Z",
                "snap-a",
                "snap-b",
                "strongroom-daily-x-db"
            ]
        );
        assert_eq!(by_id["snap-a"].used_by_amis, ["ami-theirs"]);
        assert_eq!(by_id["snap-b"].point.kind, RecoveryPointKind::EbsSnapshot);
        let set = by_id["i-1@2026-11-28T03:00:00Z"];
        assert_eq!(set.point.kind, RecoveryPointKind::Ec2SnapshotSet);
        assert_eq!(set.point.members, ["snap-c", "snap-d"]);
        assert!(set.locked, "a lock on one member locks the set");
        assert!(is_held(&set.tags), "a hold on one member holds the set");
        let ami = by_id["ami-ours"];
        assert_eq!(ami.used_by_amis, ["ami-theirs"]);
        assert_eq!(ami.tags[tags::HOLD], "case-7");
        assert_eq!(
            by_id["strongroom-daily-x-db"].point.state,
            RecoveryPointState::Pending
        );
    }

    #[test]
    fn a_point_whose_time_cannot_be_read_is_set_apart() {
        let listing = Listing {
            snapshots: vec![
                snap("snap-1", "vol-1", contract("vol-1", "yesterday", None)),
                snap("snap-2", "vol-2", contract("vol-2", T1, None)),
            ],
            ..Default::default()
        };
        let listed = assemble(&loc(), "daily", listing);
        assert_eq!(listed.points.len(), 1);
        assert_eq!(listed.points[0].point.id, "snap-2");
        assert_eq!(
            listed.unreadable,
            [UnreadablePoint {
                id: "snap-1".into(),
                kind: RecoveryPointKind::EbsSnapshot,
                source: "vol-1".into(),
                created_at: "yesterday".into(),
            }]
        );
    }

    #[test]
    fn a_snapshot_tagged_with_another_services_kind_stays_a_snapshot() {
        for wrong in [
            "rds-snapshot",
            "aurora-snapshot",
            "redshift-snapshot",
            "ami",
        ] {
            let listing = Listing {
                snapshots: vec![snap("snap-1", "vol-1", contract("vol-1", T1, Some(wrong)))],
                ..Default::default()
            };
            let points = assemble(&loc(), "daily", listing).points;
            assert_eq!(points.len(), 1, "{wrong}");
            assert_eq!(
                points[0].point.kind,
                RecoveryPointKind::EbsSnapshot,
                "{wrong}"
            );
        }
    }

    #[test]
    fn a_foreign_or_unmanaged_member_disowns_the_set() {
        let mut odd = snap("snap-2", "vol-2", contract("i-1", T1, None));
        odd.owner = "222222222222".into();
        let mut stray = snap("snap-3", "vol-3", contract("i-1", T1, None));
        stray.tags.insert(tags::POLICY.into(), "weekly".into());
        let listing = Listing {
            snapshots: vec![
                snap("snap-1", "vol-1", contract("i-1", T1, None)),
                odd,
                stray,
            ],
            ..Default::default()
        };
        let mut reversed = listing.clone();
        reversed.snapshots.reverse();
        // Whichever member comes first in the listing.
        for l in [listing, reversed] {
            let points = assemble(&loc(), "daily", l).points;
            assert_eq!(points.len(), 1);
            assert_eq!(points[0].owner, "222222222222");
            assert_eq!(points[0].tags[tags::POLICY], "weekly");
        }
    }

    fn arb_snapshot() -> impl Strategy<Value = ListedSnapshot> {
        (
            0..12u8,
            prop::sample::select(vec!["vol-1", "vol-2", "i-1", "i-2"]),
            0..2u8,
            any::<(bool, bool, bool, bool)>(),
        )
            .prop_map(|(n, source, day, (held, foreign, image, tagged))| {
                let created = format!("2026-11-2{day}T03:00:00Z");
                let kind = match (image, source.starts_with("vol")) {
                    (true, _) => "ami",
                    (false, true) => "ebs-snapshot",
                    (false, false) => "ec2-snapshot-set",
                };
                let mut t = contract(source, &created, tagged.then_some(kind));
                if held {
                    t.insert(tags::HOLD.into(), "yes".into());
                }
                let volume = if source.starts_with("vol") {
                    source.to_owned()
                } else {
                    format!("vol-{n}")
                };
                ListedSnapshot {
                    size_gib: None,
                    id: format!("snap-{n}"),
                    owner: if foreign { "9".into() } else { ME.into() },
                    state: RecoveryPointState::Completed,
                    tags: t,
                    volume_id: Some(volume),
                    of_image: image,
                    image_id: None,
                }
            })
    }

    fn arb_listing() -> impl Strategy<Value = Listing> {
        (
            prop::collection::vec(arb_snapshot(), 0..12),
            prop::collection::vec((0..3u8, prop::collection::vec(0..12u8, 0..3)), 0..3),
            prop::collection::btree_set(0..12u8, 0..3),
        )
            .prop_map(|(snaps, images, locked)| {
                let mut seen = BTreeSet::new();
                let snapshots: Vec<_> = snaps
                    .into_iter()
                    .filter(|s| seen.insert(s.id.clone()))
                    .collect();
                let images = images
                    .into_iter()
                    .enumerate()
                    .map(|(i, (who, members))| ListedImage {
                        size_gib: None,
                        id: format!("ami-{i}"),
                        owner: ME.into(),
                        state: RecoveryPointState::Completed,
                        tags: if who == 0 {
                            Tags::new()
                        } else {
                            contract("i-1", T1, Some("ami"))
                        },
                        snapshots: members.iter().map(|m| format!("snap-{m}")).collect(),
                    })
                    .collect();
                Listing {
                    snapshots,
                    images,
                    records: vec![],
                    locked: locked.iter().map(|m| format!("snap-{m}")).collect(),
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Whatever the listing, a protecting fact on any snapshot of a point
        /// protects the point, and no snapshot is lost or listed twice.
        #[test]
        fn protections_reach_the_point(listing in arb_listing()) {
            let points = assemble(&loc(), "daily", listing.clone()).points;
            let mut covered = BTreeSet::new();
            for p in &points {
                let own: Vec<String> = match p.point.kind.facts().snapshots {
                    crate::kind::Snapshots::Itself => vec![p.point.id.clone()],
                    crate::kind::Snapshots::Members => p.point.members.clone(),
                    crate::kind::Snapshots::None => vec![],
                };
                for id in &own {
                    if p.point.kind != RecoveryPointKind::Ami {
                        prop_assert!(covered.insert(id.clone()), "{id} in two points");
                    }
                    if listing.locked.contains(id) {
                        prop_assert!(p.locked, "{} not locked by {id}", p.point.id);
                    }
                    for i in &listing.images {
                        if i.id != p.point.id && i.snapshots.contains(id) {
                            prop_assert!(p.used_by_amis.contains(&i.id));
                        }
                    }
                    if let Some(s) = listing.snapshots.iter().find(|s| &s.id == id) {
                        if is_held(&s.tags) {
                            prop_assert!(is_held(&p.tags), "hold on {id} lost");
                        }
                        if s.owner != ME && p.point.kind != RecoveryPointKind::Ami {
                            prop_assert_ne!(&p.owner, ME, "foreign member {} hidden", id);
                        }
                    }
                }
                if p.point.kind == RecoveryPointKind::Ami {
                    prop_assert!(!p.used_by_amis.contains(&p.point.id));
                }
            }
            // Every listed non-AMI snapshot belongs to exactly one point.
            for s in listing.snapshots.iter().filter(|s| snapshot_kind(s) != RecoveryPointKind::Ami) {
                prop_assert!(covered.contains(&s.id), "{} dropped", s.id);
            }
            // Our AMIs become points, and so do what no AMI uses of our AMI
            // snapshots (one failed point per AMI they were made for).
            let ours_count = listing.images.iter().filter(|i| ours(&i.tags, "daily")).count();
            let used: BTreeSet<&str> = listing
                .images
                .iter()
                .flat_map(|i| i.snapshots.iter().map(String::as_str))
                .collect();
            let orphans: BTreeSet<String> = listing
                .snapshots
                .iter()
                .filter(|s| snapshot_kind(s) == RecoveryPointKind::Ami)
                .filter(|s| ours(&s.tags, "daily") && !used.contains(s.id.as_str()))
                .map(|s| remains_id(&format!("{}@{}", s.tags[tags::SOURCE], s.tags[tags::CREATED_AT])))
                .collect();
            let amis: Vec<_> = points.iter().filter(|p| p.point.kind == RecoveryPointKind::Ami).collect();
            prop_assert_eq!(amis.len(), ours_count + orphans.len());
            for a in amis.iter().filter(|a| orphans.contains(&a.point.id)) {
                prop_assert_ne!(a.point.state, RecoveryPointState::Completed);
            }
        }
    }
}
