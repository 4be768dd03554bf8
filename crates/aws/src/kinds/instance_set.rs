//! Crash-consistent snapshot sets of EC2 instances (`CreateSnapshots`): one
//! EBS snapshot per volume, taken at the same moment, kept and pruned as one
//! recovery point. The members are listed by the EBS listing and grouped
//! into sets by the core (`strongroom_core::listing`).

use aws_sdk_ec2::types::{InstanceSpecification, ResourceType as Ec2ResourceType};
use strongroom_core::listing::Listing;
use strongroom_core::listing::Scope;
use strongroom_core::model::{RecoveryPoint, RecoveryPointState};
use strongroom_core::ports::{CreateRequest, Created};
use strongroom_core::restore::settings::SourceSettings;
use strongroom_core::tags;
use strongroom_core::{CloudError, ErrorKind};

use super::ebs::{
    delete_snapshots, description, mark_deleting, no_retries, send_unless_processed,
    snapshots_shared_with,
};
use super::{KindAdapter, SnapshotStates};
use crate::clients::LocationClients;
use crate::error::from_sdk;
use crate::sdk::{PointState, ToSdkTags};

pub(crate) struct InstanceSet;

/// Tags each member with the device its volume was attached at
/// (`strongroom:device`), from the batch's describe of the instance. The
/// values differ per member, so `CreateSnapshots`' one tag specification
/// cannot carry them: one `CreateTags` per member. A failure is logged and
/// left: the set is whole, and the recovery point's record maps volumes to
/// devices too.
async fn tag_devices(
    cx: &LocationClients,
    req: &CreateRequest<'_>,
    made: &[aws_sdk_ec2::types::SnapshotInfo],
) {
    let Some(SourceSettings::Ec2Instance(settings)) = req.settings else {
        return;
    };
    for s in made {
        let (Some(snapshot), Some(volume)) = (s.snapshot_id(), s.volume_id()) else {
            continue;
        };
        let Some(v) = settings
            .volumes
            .iter()
            .find(|v| v.volume_id.as_deref() == Some(volume))
        else {
            continue;
        };
        let sent = cx
            .ec2()
            .create_tags()
            .resources(snapshot)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(tags::DEVICE)
                    .value(&v.device)
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = sent {
            let e = from_sdk(e, "CreateTags", snapshot, cx.region_name());
            tracing::warn!(snapshot, device = %v.device, error = %e, "device tag not written");
        }
    }
}

impl KindAdapter for InstanceSet {
    async fn create(
        &self,
        cx: &LocationClients,
        req: &CreateRequest<'_>,
    ) -> Result<Created, CloudError> {
        let region = cx.region_name();
        let out = send_unless_processed(|| async {
            cx.ec2()
                .create_snapshots()
                .instance_specification(
                    InstanceSpecification::builder()
                        .instance_id(&req.target.id)
                        .exclude_boot_volume(req.ec2.exclude_boot_volume)
                        .build(),
                )
                .description(description(req))
                .tag_specifications(req.tags.ec2_spec(Ec2ResourceType::Snapshot))
                .customize()
                .config_override(no_retries())
                .send()
                .await
                .map_err(|e| from_sdk(e, "CreateSnapshots", &req.target.id, region))
        })
        .await?;
        let mut members: Vec<String> = out
            .snapshots()
            .iter()
            .map(|s| s.snapshot_id().unwrap_or_default().to_owned())
            .collect();
        members.sort();
        if members.is_empty() {
            return Err(CloudError::new(
                ErrorKind::InvalidInput,
                "CreateSnapshots",
                &req.target.id,
                region,
                "no volume was snapshotted (an instance with only a root volume and exclude_boot_volume set?)",
            ));
        }
        tag_devices(cx, req, out.snapshots()).await;
        let state = RecoveryPointState::worst(out.snapshots().iter().map(|s| s.point_state()));
        Ok(Created {
            recovery_point: req.point(
                RecoveryPoint::instance_set_id(&req.target.id, req.run.scheduled_time),
                members,
                state,
            ),
            existed: false,
        })
    }

    fn snapshot_ids(&self, point: &RecoveryPoint) -> Vec<String> {
        point.members.clone()
    }

    async fn refresh(
        &self,
        _cx: &LocationClients,
        points: &[&RecoveryPoint],
        snapshots: &SnapshotStates,
    ) -> Result<Vec<RecoveryPoint>, CloudError> {
        // A set whose members are not all known yet is left out (pending or gone).
        Ok(points
            .iter()
            .filter_map(|p| {
                let members: Option<Vec<_>> = p
                    .members
                    .iter()
                    .map(|m| snapshots.get(m).copied())
                    .collect();
                members.map(|ms| RecoveryPoint {
                    state: RecoveryPointState::worst(ms),
                    ..(*p).clone()
                })
            })
            .collect())
    }

    async fn list(&self, _cx: &LocationClients, _scope: Scope<'_>) -> Result<Listing, CloudError> {
        // The members come with the EBS snapshot listing.
        Ok(Listing::default())
    }

    async fn shared_with(
        &self,
        cx: &LocationClients,
        point: &RecoveryPoint,
    ) -> Result<Vec<String>, CloudError> {
        snapshots_shared_with(cx, &point.members).await
    }

    /// Marks every member first, so that a deletion stopping half way is
    /// finished by the next prune rather than the rest listed as a smaller
    /// set (one `CreateTags` for all; marking again is harmless).
    async fn delete(&self, cx: &LocationClients, point: &RecoveryPoint) -> Result<(), CloudError> {
        if point.members.len() > 1 {
            mark_deleting(cx, &point.members).await?;
        }
        delete_snapshots(cx, &point.members).await
    }
}
