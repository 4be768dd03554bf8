//! Listing and deleting a policy's recovery points at a location.
//!
//! One listing per kind, paged at the largest page each API serves: EBS
//! snapshots (tag-filtered), every AMI of the account (to know which
//! snapshots any AMI uses), the snapshot locks, RDS and Aurora manual
//! snapshots, Redshift manual snapshots. Any page that fails fails the whole
//! listing: nothing is pruned from a partial view.

use std::collections::{BTreeMap, HashMap, HashSet};

use aws_sdk_ec2::types::Filter as Ec2Filter;
use strongroom_core::model::{
    Location, RecoveryPoint, RecoveryPointKind, RecoveryPointState, ResourceType, Tags,
};
use strongroom_core::ports::{ListedPoint, Pruning};
use strongroom_core::prune::{is_held, DeletionPermit};
use strongroom_core::{tags, CloudError};

use crate::error::from_sdk;
use crate::recovery_points::{is_ami_snapshot, tags_from};
use crate::AwsCloud;

/// DescribeLockedSnapshots takes at most this many ids per call.
const LOCK_CHUNK: usize = 1000;

fn ours(t: &Tags, policy: &str) -> bool {
    t.get(tags::MANAGED).map(String::as_str) == Some("true")
        && t.get(tags::POLICY).map(String::as_str) == Some(policy)
}

/// The account in an ARN (`arn:aws:rds:region:ACCOUNT:...`).
fn arn_account(arn: Option<&str>) -> Option<String> {
    arn.and_then(|a| a.split(':').nth(4))
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

fn point(
    kind: RecoveryPointKind,
    rtype: ResourceType,
    id: String,
    members: Vec<String>,
    t: &Tags,
    location: &Location,
    state: RecoveryPointState,
) -> RecoveryPoint {
    RecoveryPoint {
        id,
        kind,
        members,
        resource_type: rtype,
        source: t.get(tags::SOURCE).cloned().unwrap_or_default(),
        location: location.clone(),
        created_at: t.get(tags::CREATED_AT).cloned().unwrap_or_default(),
        state,
    }
}

struct EbsSnap {
    id: String,
    owner: String,
    state: RecoveryPointState,
    tags: Tags,
}

impl AwsCloud {
    async fn list_ec2(
        &self,
        location: &Location,
        policy: &str,
    ) -> Result<Vec<ListedPoint>, CloudError> {
        let region = location.region.as_str();
        let ec2 = self.clients.ec2(region);
        // 1. The policy's EBS snapshots.
        let mut snaps = Vec::new();
        let mut held_ami_snapshots: HashMap<String, String> = HashMap::new();
        let mut pages = ec2
            .describe_snapshots()
            .owner_ids("self")
            .filters(
                Ec2Filter::builder()
                    .name(format!("tag:{}", tags::MANAGED))
                    .values("true")
                    .build(),
            )
            .filters(
                Ec2Filter::builder()
                    .name(format!("tag:{}", tags::POLICY))
                    .values(policy)
                    .build(),
            )
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "DescribeSnapshots", "-", region))?;
            for s in page.snapshots() {
                if is_ami_snapshot(s.description()) {
                    // Part of an AMI recovery point, listed with it; a hold put
                    // on the snapshot holds the AMI.
                    let t = tags_from(s.tags().iter().map(|t| (t.key(), t.value())));
                    if let (Some(id), true) = (s.snapshot_id(), is_held(&t)) {
                        held_ami_snapshots.insert(id.to_owned(), t[tags::HOLD].clone());
                    }
                    continue;
                }
                let t = tags_from(s.tags().iter().map(|t| (t.key(), t.value())));
                snaps.push(EbsSnap {
                    id: s.snapshot_id().unwrap_or_default().to_owned(),
                    owner: s.owner_id().unwrap_or_default().to_owned(),
                    state: RecoveryPointState::from_aws(
                        s.state().map(|s| s.as_str()).unwrap_or("pending"),
                    ),
                    tags: t,
                });
            }
        }
        // 2. Every AMI of the account, in any state: which snapshots they use.
        let mut used_by: HashMap<String, Vec<String>> = HashMap::new();
        let mut amis = Vec::new();
        let mut pages = ec2
            .describe_images()
            .owners("self")
            .include_deprecated(true)
            .include_disabled(true)
            .max_results(1000)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "DescribeImages", "-", region))?;
            for i in page.images() {
                let id = i.image_id().unwrap_or_default().to_owned();
                let members: Vec<String> = i
                    .block_device_mappings()
                    .iter()
                    .filter_map(|m| m.ebs().and_then(|e| e.snapshot_id()).map(str::to_owned))
                    .collect();
                for m in &members {
                    used_by.entry(m.clone()).or_default().push(id.clone());
                }
                let t = tags_from(i.tags().iter().map(|t| (t.key(), t.value())));
                if ours(&t, policy) {
                    let state = RecoveryPointState::from_aws(
                        i.state().map(|s| s.as_str()).unwrap_or("pending"),
                    );
                    amis.push((
                        id,
                        members,
                        i.owner_id().unwrap_or_default().to_owned(),
                        state,
                        t,
                    ));
                }
            }
        }
        // 3. Locks on any of those snapshots.
        let all_ids: Vec<String> = snaps
            .iter()
            .map(|s| s.id.clone())
            .chain(amis.iter().flat_map(|a| a.1.clone()))
            .collect();
        let mut locked = HashSet::new();
        for chunk in all_ids.chunks(LOCK_CHUNK) {
            let mut token: Option<String> = None;
            loop {
                let out = ec2
                    .describe_locked_snapshots()
                    .set_snapshot_ids(Some(chunk.to_vec()))
                    .set_next_token(token.take())
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DescribeLockedSnapshots", "-", region))?;
                for s in out.snapshots() {
                    let expired = s.lock_state().map(|l| l.as_str()) == Some("expired");
                    if let (Some(id), false) = (s.snapshot_id(), expired) {
                        locked.insert(id.to_owned());
                    }
                }
                match out.next_token() {
                    Some(t) if !t.is_empty() => token = Some(t.to_owned()),
                    _ => break,
                }
            }
        }

        let mut listed = Vec::new();
        // Instance snapshot sets: the snapshots of one instance from one run.
        let mut sets: BTreeMap<(String, String), Vec<EbsSnap>> = BTreeMap::new();
        for s in snaps {
            let source = s.tags.get(tags::SOURCE).cloned().unwrap_or_default();
            if source.starts_with("i-") {
                let created = s.tags.get(tags::CREATED_AT).cloned().unwrap_or_default();
                sets.entry((source, created)).or_default().push(s);
                continue;
            }
            listed.push(ListedPoint {
                locked: locked.contains(&s.id),
                used_by_amis: used_by.get(&s.id).cloned().unwrap_or_default(),
                point: point(
                    RecoveryPointKind::EbsSnapshot,
                    ResourceType::EbsVolume,
                    s.id.clone(),
                    vec![],
                    &s.tags,
                    location,
                    s.state,
                ),
                owner: s.owner,
                tags: s.tags,
            });
        }
        for ((source, created), members) in sets {
            let mut ids: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
            ids.sort();
            let state = RecoveryPointState::worst(members.iter().map(|m| m.state));
            // The set is held, foreign or unmanaged if any member is: take the
            // strictest facts of all members.
            let first = &members[0];
            let mut t = first.tags.clone();
            if let Some(held) = members
                .iter()
                .find(|m| is_held(&m.tags))
                .and_then(|m| m.tags.get(tags::HOLD))
            {
                t.insert(tags::HOLD.into(), held.clone());
            }
            let owner = members
                .iter()
                .find(|m| m.owner != first.owner)
                .map(|m| m.owner.clone())
                .unwrap_or_else(|| first.owner.clone());
            let mut amis_using: Vec<String> = ids
                .iter()
                .flat_map(|i| used_by.get(i).cloned().unwrap_or_default())
                .collect();
            amis_using.sort();
            amis_using.dedup();
            listed.push(ListedPoint {
                locked: ids.iter().any(|i| locked.contains(i)),
                used_by_amis: amis_using,
                point: point(
                    RecoveryPointKind::Ec2SnapshotSet,
                    ResourceType::Ec2Instance,
                    RecoveryPoint::instance_set_id(&source, &created),
                    ids,
                    &t,
                    location,
                    state,
                ),
                owner,
                tags: t,
            });
        }
        for (id, members, owner, state, mut t) in amis {
            if let Some(hold) = members.iter().find_map(|m| held_ami_snapshots.get(m)) {
                t.insert(tags::HOLD.into(), hold.clone());
            }
            let others: Vec<String> = members
                .iter()
                .flat_map(|m| used_by.get(m).cloned().unwrap_or_default())
                .filter(|a| *a != id)
                .collect();
            listed.push(ListedPoint {
                locked: members.iter().any(|m| locked.contains(m)),
                used_by_amis: others,
                point: point(
                    RecoveryPointKind::Ami,
                    ResourceType::Ec2Instance,
                    id,
                    members,
                    &t,
                    location,
                    state,
                ),
                owner,
                tags: t,
            });
        }
        Ok(listed)
    }

    async fn list_rds(
        &self,
        location: &Location,
        policy: &str,
    ) -> Result<Vec<ListedPoint>, CloudError> {
        let region = location.region.as_str();
        let rds = self.clients.rds(region);
        let mut listed = Vec::new();
        let mut pages = rds
            .describe_db_snapshots()
            .snapshot_type("manual")
            .max_records(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "DescribeDBSnapshots", "-", region))?;
            for s in page.db_snapshots() {
                let t = tags_from(s.tag_list().iter().map(|t| (t.key(), t.value())));
                if !ours(&t, policy) {
                    continue;
                }
                listed.push(ListedPoint {
                    point: point(
                        RecoveryPointKind::RdsSnapshot,
                        ResourceType::RdsInstance,
                        s.db_snapshot_identifier().unwrap_or_default().to_owned(),
                        vec![],
                        &t,
                        location,
                        RecoveryPointState::from_aws(s.status().unwrap_or("creating")),
                    ),
                    owner: arn_account(s.db_snapshot_arn()).unwrap_or_default(),
                    locked: false,
                    used_by_amis: vec![],
                    tags: t,
                });
            }
        }
        let mut pages = rds
            .describe_db_cluster_snapshots()
            .snapshot_type("manual")
            .max_records(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "DescribeDBClusterSnapshots", "-", region))?;
            for s in page.db_cluster_snapshots() {
                let t = tags_from(s.tag_list().iter().map(|t| (t.key(), t.value())));
                if !ours(&t, policy) {
                    continue;
                }
                listed.push(ListedPoint {
                    point: point(
                        RecoveryPointKind::AuroraSnapshot,
                        ResourceType::AuroraCluster,
                        s.db_cluster_snapshot_identifier()
                            .unwrap_or_default()
                            .to_owned(),
                        vec![],
                        &t,
                        location,
                        RecoveryPointState::from_aws(s.status().unwrap_or("creating")),
                    ),
                    owner: arn_account(s.db_cluster_snapshot_arn()).unwrap_or_default(),
                    locked: false,
                    used_by_amis: vec![],
                    tags: t,
                });
            }
        }
        Ok(listed)
    }

    async fn list_redshift(
        &self,
        location: &Location,
        policy: &str,
    ) -> Result<Vec<ListedPoint>, CloudError> {
        let region = location.region.as_str();
        let mut listed = Vec::new();
        let mut pages = self
            .clients
            .redshift(region)
            .describe_cluster_snapshots()
            .snapshot_type("manual")
            .tag_keys(tags::POLICY)
            .tag_values(policy)
            .max_records(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| from_sdk(e, "DescribeClusterSnapshots", "-", region))?;
            for s in page.snapshots() {
                let t = tags_from(s.tags().iter().map(|t| (t.key(), t.value())));
                if !ours(&t, policy) || s.snapshot_type() != Some("manual") {
                    continue;
                }
                listed.push(ListedPoint {
                    point: point(
                        RecoveryPointKind::RedshiftSnapshot,
                        ResourceType::RedshiftCluster,
                        s.snapshot_identifier().unwrap_or_default().to_owned(),
                        vec![],
                        &t,
                        location,
                        RecoveryPointState::from_aws(s.status().unwrap_or("creating")),
                    ),
                    owner: s.owner_account().unwrap_or_default().to_owned(),
                    locked: false,
                    used_by_amis: vec![],
                    tags: t,
                });
            }
        }
        Ok(listed)
    }
}

impl AwsCloud {
    /// One `DeleteSnapshot` per snapshot; the first failure stops the rest.
    async fn delete_snapshots(&self, region: &str, ids: &[String]) -> Result<(), CloudError> {
        let ec2 = self.clients.ec2(region);
        for id in ids {
            ec2.delete_snapshot()
                .snapshot_id(id)
                .send()
                .await
                .map_err(|e| from_sdk(e, "DeleteSnapshot", id, region))?;
        }
        Ok(())
    }
}

impl Pruning for AwsCloud {
    async fn account(&self) -> Result<String, CloudError> {
        let out = self
            .clients
            .sts()
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| from_sdk(e, "GetCallerIdentity", "-", "global"))?;
        Ok(out.account().unwrap_or_default().to_owned())
    }

    async fn list(
        &self,
        location: &Location,
        policy: &str,
    ) -> Result<Vec<ListedPoint>, CloudError> {
        let (ec2, rds, redshift) = futures::join!(
            self.list_ec2(location, policy),
            self.list_rds(location, policy),
            self.list_redshift(location, policy)
        );
        let mut all = ec2?;
        all.extend(rds?);
        all.extend(redshift?);
        Ok(all)
    }

    async fn delete(&self, permit: &DeletionPermit) -> Result<(), CloudError> {
        let p = permit.point();
        let region = p.location.region.as_str();
        match p.kind {
            RecoveryPointKind::EbsSnapshot => {
                self.delete_snapshots(region, std::slice::from_ref(&p.id))
                    .await?;
            }
            RecoveryPointKind::Ec2SnapshotSet => self.delete_snapshots(region, &p.members).await?,
            RecoveryPointKind::Ami => {
                self.clients
                    .ec2(region)
                    .deregister_image()
                    .image_id(&p.id)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DeregisterImage", &p.id, region))?;
                self.delete_snapshots(region, &p.members).await?;
            }
            RecoveryPointKind::RdsSnapshot => {
                self.clients
                    .rds(region)
                    .delete_db_snapshot()
                    .db_snapshot_identifier(&p.id)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DeleteDBSnapshot", &p.id, region))?;
            }
            RecoveryPointKind::AuroraSnapshot => {
                self.clients
                    .rds(region)
                    .delete_db_cluster_snapshot()
                    .db_cluster_snapshot_identifier(&p.id)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DeleteDBClusterSnapshot", &p.id, region))?;
            }
            RecoveryPointKind::RedshiftSnapshot => {
                self.clients
                    .redshift(region)
                    .delete_cluster_snapshot()
                    .snapshot_identifier(&p.id)
                    .send()
                    .await
                    .map_err(|e| from_sdk(e, "DeleteClusterSnapshot", &p.id, region))?;
            }
        }
        Ok(())
    }
}
