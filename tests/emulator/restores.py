"""Patch 19 of the emulator: images and launches as a restore needs them.

A restore of an instance snapshot set registers an image of the set's
snapshots (each on its recorded device) and launches it. moto registers an
image with a single invented snapshot (patch 5 makes that the first mapping's
snapshot) and launches every instance with one default root volume, so an
instance rebuilt from three snapshots would come back with one. This module
makes the emulator do what AWS does:

* **RegisterImage keeps every mapping.** ``BlockDeviceMappings`` with
  ``Ebs.SnapshotId`` are all kept, with their ``VolumeSize`` (default: the
  snapshot's volume size, AWS: "If you specify a snapshot, the default is the
  snapshot size"), ``VolumeType`` (default ``gp2`` here, as moto's volumes),
  ``Iops``, ``Throughput`` and ``DeleteOnTermination``; ``RootDeviceName``,
  ``Architecture``, ``BootMode`` and ``EnaSupport`` are kept; and
  ``TagSpecifications`` with ResourceType ``image`` tag the AMI ("The tags to
  apply to the AMI"). ``DescribeImages`` shows every mapping, so that a
  snapshot used by any mapping is in use by the image (patch 11 refuses to
  delete it, and Strongroom's prune keeps it).
* **RunInstances creates the image's volumes.** Without
  ``BlockDeviceMappings`` in the request, an instance gets one volume per
  mapping of its AMI, created from the mapping's snapshot at its device
  (AWS: "the block device mapping of the AMI ... specifies the EBS volumes to
  attach to the instance when it's launched"), with the root volume on the
  AMI's root device. AMIs without kept mappings launch as moto launches them.

* **Restores take time** (switchable): with
  ``STRONGROOM_EMULATOR_RESTORE_DESCRIBES`` = N, a volume created with the
  tag ``strongroom:restore`` is ``creating`` and a DB instance made by
  ``RestoreDBInstanceFromDBSnapshot`` is ``creating`` for their first N
  describes by Strongroom (AWS: a volume is ``creating`` until it is
  ``available``; a restored DB instance is ``creating`` until it is
  ``available``), so the restore state machine's wait loop runs.
* **A DB restore does not inherit the source's subnet group.**
  ``RestoreDBInstanceFromDBSnapshot`` without ``DBSubnetGroupName`` places
  the instance by the account's defaults (AWS, for this parameter: "The name
  of the DB subnet group to use for the new instance"; without one the
  default VPC's is used), not in the source instance's subnet group, which
  in another region or account does not even exist; moto copies the source
  instance's and fails with ``DBSubnetGroupNotFoundFault`` there.

* **Restores from what another account shared.** ``CreateVolume`` of a
  snapshot another account owns works when that account shared it with the
  caller (``createVolumePermission``), else ``InvalidSnapshot.NotFound``
  (AWS: "You can create a volume from a snapshot that is shared with you");
  ``RestoreDBInstanceFromDBSnapshot`` of a DB snapshot ARN of another account
  works when its ``restore`` attribute names the caller (AWS: "If you are
  restoring from a shared manual DB snapshot, the DBSnapshotIdentifier must
  be the ARN of the shared DB snapshot"); Redshift
  ``RestoreFromClusterSnapshot`` with ``OwnerAccount`` restores a snapshot
  of that account which it authorized the caller to restore (AWS:
  "OwnerAccount: The Amazon Web Services account used to create or copy the
  snapshot. Required if you are restoring a snapshot you do not own"), else
  ``ClusterSnapshotNotFound``. moto looks in the caller's own account only
  (and ignores ``OwnerAccount``).

moto already deregisters an image without touching its snapshots, as AWS
does without ``DeleteAssociatedSnapshots``: a restore's temporary image goes,
the recovery point's snapshots stay.

And one switchable fault, so that a test can watch a restore fail after it
made something: ``STRONGROOM_EMULATOR_FAILED_RESTORES`` (comma-separated
``volume``, ``db-instance``) makes a volume created with the tag
``strongroom:restore`` report the state ``error``, and a DB instance made by
``RestoreDBInstanceFromDBSnapshot`` the status ``incompatible-restore``. Both
are AWS's own ends of a restore that failed (EC2: "error" in the volume
states, "the underlying hardware related to your EBS volume has failed";
RDS: "incompatible-restore: Amazon RDS can't do a point-in-time restore" /
the restore "failed"). Deleting them works as for any other.
"""

from __future__ import annotations

from typing import Any

import os

PATCHED = "_strongroom_restores"
FAILED = "STRONGROOM_EMULATOR_FAILED_RESTORES"
DESCRIBES = "STRONGROOM_EMULATOR_RESTORE_DESCRIBES"


def pending_describes() -> int:
    """How many of Strongroom's describes a restored resource stays ``creating``."""
    try:
        return max(0, int(os.environ.get(DESCRIBES, "0")))
    except ValueError:
        return 0


def failing(what: str) -> bool:
    """Whether restores of `what` (``volume``, ``db-instance``) are to fail."""
    return what in {w.strip() for w in os.environ.get(FAILED, "").split(",")}


def _countdown() -> int:
    """The describes left, counted down before each describe serializes its
    answer: N describes see ``creating``, the next one the end state."""
    n = pending_describes()
    return n + 1 if n else 0


def patch_moto_restores() -> None:
    """Patch 19: installs the image and launch behaviour (once)."""
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.instances import InstanceBackend
    from moto.ec2.responses import EC2Response

    if getattr(EC2Response, PATCHED, False):
        return
    setattr(EC2Response, PATCHED, True)

    moto_mappings = Ami.block_device_mappings

    def block_device_mappings(self: Any) -> list[dict[str, Any]]:
        kept = getattr(self, "_strongroom_mappings", None)
        if kept:
            return [dict(m, Ebs=dict(m["Ebs"])) for m in kept]
        return moto_mappings.fget(self)  # type: ignore[attr-defined]

    Ami.block_device_mappings = property(block_device_mappings)  # type: ignore[assignment]

    register = EC2Response.register_image  # patch 5's

    def register_image(self):  # type: ignore[no-untyped-def]
        result = register(self)
        image_id = (getattr(result, "result", None) or {}).get("ImageId")
        if image_id is None:
            return result
        image = self.ec2_backend.amis[image_id]
        kept = []
        for m in self._get_param("BlockDeviceMappings", []) or []:
            ebs = m.get("Ebs") or {}
            snapshot_id = ebs.get("SnapshotId")
            if not snapshot_id:
                continue
            snapshot = self.ec2_backend.get_snapshot(snapshot_id)
            size = ebs.get("VolumeSize") or getattr(snapshot.volume, "size", None) or 8
            kept.append(
                {
                    "DeviceName": m["DeviceName"],
                    "Ebs": {
                        "SnapshotId": snapshot_id,
                        "VolumeSize": int(size),
                        "VolumeType": ebs.get("VolumeType") or "gp2",
                        "DeleteOnTermination": str(ebs.get("DeleteOnTermination", False)).lower() == "true",
                        "Encrypted": bool(snapshot.encrypted),
                        **({"Iops": int(ebs["Iops"])} if ebs.get("Iops") else {}),
                        **({"Throughput": int(ebs["Throughput"])} if ebs.get("Throughput") else {}),
                    },
                }
            )
        if kept:
            image._strongroom_mappings = kept
        for attr, param in (
            ("root_device_name", "RootDeviceName"),
            ("architecture", "Architecture"),
            ("boot_mode", "BootMode"),
            ("virtualization_type", "VirtualizationType"),
        ):
            value = self._get_param(param)
            if value:
                setattr(image, attr, value)
        image.root_device_type = "ebs"
        tags: dict[str, str] = {}
        for spec in self._get_param("TagSpecifications", []) or []:
            if spec.get("ResourceType") == "image":
                tags.update({t["Key"]: t["Value"] for t in spec.get("Tags", [])})
        if tags:
            self.ec2_backend.create_tags([image_id], tags)
        return result

    EC2Response.register_image = register_image

    run_instances = InstanceBackend.run_instances

    def run_from_image_mappings(self, image_id, count, user_data, security_group_names, **kwargs):  # type: ignore[no-untyped-def]
        image = self.amis.get(image_id) if hasattr(self, "amis") else None
        kept = getattr(image, "_strongroom_mappings", None)
        if kept and "block_device_mappings" not in kwargs:
            kwargs["block_device_mappings"] = [
                {
                    "DeviceName": m["DeviceName"],
                    "Ebs": {
                        "SnapshotId": m["Ebs"]["SnapshotId"],
                        "VolumeSize": m["Ebs"]["VolumeSize"],
                        "VolumeType": m["Ebs"]["VolumeType"],
                        "DeleteOnTermination": m["Ebs"]["DeleteOnTermination"],
                        "Encrypted": m["Ebs"]["Encrypted"],
                    },
                }
                for m in kept
            ]
        reservation = run_instances(self, image_id, count, user_data, security_group_names, **kwargs)
        if kept:
            for instance in reservation.instances:
                instance.root_device_name = image.root_device_name
                if image.architecture:
                    instance.architecture = image.architecture
        return reservation

    InstanceBackend.run_instances = run_from_image_mappings

    from moto.ec2.models.elastic_block_store import Volume
    from moto.rds.responses import RDSResponse

    volume_status = Volume.status

    def status(self: Any) -> str:
        if getattr(self, "_strongroom_left", 0) > 0:
            return "creating"
        if getattr(self, "_strongroom_failed", False):
            return "error"
        return volume_status.fget(self)  # type: ignore[attr-defined]

    Volume.status = property(status)  # type: ignore[assignment]

    create_volume = EC2Response.create_volume

    def create_volume_failing(self):  # type: ignore[no-untyped-def]
        result = create_volume(self)
        tags = self._parse_tag_specification().get("volume", {})
        if "strongroom:restore" in tags:
            result.result._strongroom_failed = failing("volume")
            result.result._strongroom_left = _countdown()
        return result

    EC2Response.create_volume = create_volume_failing

    import faults

    describe_volumes = EC2Response.describe_volumes

    def describe_volumes_advancing(self):  # type: ignore[no-untyped-def]
        if faults.strongroom_call("DescribeVolumes"):
            for v in self.ec2_backend.volumes.values():
                left = getattr(v, "_strongroom_left", 0)
                if left > 0:
                    v._strongroom_left = left - 1
        return describe_volumes(self)

    EC2Response.describe_volumes = describe_volumes_advancing

    restore_db = RDSResponse.restore_db_instance_from_db_snapshot

    def restore_db_failing(self):  # type: ignore[no-untyped-def]
        result = restore_db(self)
        db = result.result["DBInstance"]
        db._strongroom_end = "incompatible-restore" if failing("db-instance") else db.status
        db._strongroom_left = _countdown()
        db.status = "creating" if db._strongroom_left else db._strongroom_end
        return result

    RDSResponse.restore_db_instance_from_db_snapshot = restore_db_failing

    describe_dbs = RDSResponse.describe_db_instances

    def describe_dbs_advancing(self):  # type: ignore[no-untyped-def]
        if faults.strongroom_call("DescribeDBInstances"):
            for db in self.backend.databases.values():
                left = getattr(db, "_strongroom_left", 0)
                if left > 0:
                    db._strongroom_left = left - 1
                    if db._strongroom_left == 0:
                        db.status = db._strongroom_end
        return describe_dbs(self)

    RDSResponse.describe_db_instances = describe_dbs_advancing

    from moto.rds.models import RDSBackend

    backend_restore = RDSBackend.restore_db_instance_from_db_snapshot

    def restore_without_source_subnet_group(self, from_snapshot_id, overrides):  # type: ignore[no-untyped-def]
        if overrides.get("db_subnet_group_name"):
            return backend_restore(self, from_snapshot_id, overrides)
        name = from_snapshot_id.split(":")[-1] if from_snapshot_id.startswith("arn:") else from_snapshot_id
        snapshot = self.describe_db_snapshots(db_instance_identifier=None, db_snapshot_identifier=name)[0]
        source = snapshot.database
        kept = source.__dict__.get("_db_subnet_group_name")
        source.__dict__["_db_subnet_group_name"] = None
        try:
            return backend_restore(self, from_snapshot_id, overrides)
        finally:
            source.__dict__["_db_subnet_group_name"] = kept

    RDSBackend.restore_db_instance_from_db_snapshot = restore_without_source_subnet_group

    # Shared snapshots of other accounts, lent to the caller's backend for
    # the one call that restores from them.
    from moto.ec2.exceptions import InvalidSnapshotIdError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.rds.exceptions import DBSnapshotNotFoundFault
    from moto.rds.models import rds_backends

    create_volume_backend = EBSBackend.create_volume

    def create_volume_from_shared(self, size, zone_name, snapshot_id=None, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not snapshot_id or snapshot_id in self.snapshots:
            return create_volume_backend(self, size, zone_name, snapshot_id, *args, **kwargs)
        for account, regions in list(ec2_backends.items()):
            if account == self.account_id:
                continue
            foreign = regions[self.region_name].snapshots.get(snapshot_id)
            if foreign is None:
                continue
            if self.account_id in foreign.create_volume_permission_userids or "all" in foreign.create_volume_permission_groups:
                self.snapshots[snapshot_id] = foreign
                try:
                    return create_volume_backend(self, size, zone_name, snapshot_id, *args, **kwargs)
                finally:
                    self.snapshots.pop(snapshot_id, None)
        raise InvalidSnapshotIdError()

    EBSBackend.create_volume = create_volume_from_shared

    restore_own = RDSBackend.restore_db_instance_from_db_snapshot

    def restore_from_shared(self, from_snapshot_id, overrides):  # type: ignore[no-untyped-def]
        parts = from_snapshot_id.split(":")
        if not from_snapshot_id.startswith("arn:") or len(parts) < 7 or parts[4] == self.account_id:
            return restore_own(self, from_snapshot_id, overrides)
        region, account, name = parts[3], parts[4], parts[6]
        foreign = rds_backends[account][region].database_snapshots.get(name)
        if foreign is None or not ({self.account_id, "all"} & set(foreign.attributes.get("restore", []))):
            raise DBSnapshotNotFoundFault(from_snapshot_id)
        self.database_snapshots[name] = foreign
        try:
            return restore_own(self, name, overrides)
        finally:
            self.database_snapshots.pop(name, None)

    RDSBackend.restore_db_instance_from_db_snapshot = restore_from_shared

    from moto.redshift.exceptions import ClusterSnapshotNotFoundError
    from moto.redshift.models import redshift_backends
    from moto.redshift.responses import RedshiftResponse

    restore_cluster = RedshiftResponse.restore_from_cluster_snapshot

    def restore_cluster_from_shared(self):  # type: ignore[no-untyped-def]
        owner = self._get_param("OwnerAccount")
        name = self._get_param("SnapshotIdentifier")
        if not owner or owner == self.current_account:
            return restore_cluster(self)
        foreign = redshift_backends[owner][self.region].snapshots.get(name)
        if foreign is None or self.current_account not in getattr(foreign, "_strongroom_restore_access", []):
            raise ClusterSnapshotNotFoundError(name)
        self.redshift_backend.snapshots[name] = foreign
        try:
            return restore_cluster(self)
        finally:
            self.redshift_backend.snapshots.pop(name, None)

    RedshiftResponse.restore_from_cluster_snapshot = restore_cluster_from_shared
