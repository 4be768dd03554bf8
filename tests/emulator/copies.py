"""Patch 17 of the emulator: snapshot copies as AWS makes them.

moto copies an EBS snapshot only within its own account, finishes every copy
at once, has no limit on copies in flight, and leaves the AWS managed EBS key
looking like a customer's. The copy stage of Strongroom has to cope with all
of that, so this module makes the emulator do what AWS does:

* **Copies take time.** A snapshot made by EC2 ``CopySnapshot`` (EBS
  ``pending``), an AMI made by ``CopyImage`` (``pending``), or a snapshot made
  by RDS ``CopyDBSnapshot`` / ``CopyDBClusterSnapshot`` (``creating``) stays in progress for its first ``copy_describes``
  describes by Strongroom that include it (default 1), then completes (AWS:
  "Snapshot copies ... are created asynchronously"; a copy is ``pending``
  until it is ``completed``). Harness and seed describes see the state
  without advancing it.
* **Copies in flight are limited.** At most ``copy_limit`` (default 20) copies
  in progress per destination region and account: EBS "Concurrent snapshot
  copies per destination Region: 20" (Amazon EBS quotas; one more is
  ``ResourceLimitExceeded``), RDS "up to 20 snapshot copy requests in
  progress to a single destination Region per account" (Copying a DB
  snapshot; one more is ``SnapshotQuotaExceeded``). EBS and database copies
  are counted apart. AMI copies: at most ``image_copy_limit`` (default 25)
  pending per destination region and account (EC2: "Destination Regions are
  limited to 50 concurrent AMI copies at a time, with no more than 25 of
  those coming from a single source Region"; one more is
  ``ResourceLimitExceeded``). The most in flight at once is kept per destination:
  ``GET /_strongroom/copies`` answers it.
* **Copies across accounts.** ``CopySnapshot`` of a snapshot another account
  owns works when that account shared it with the caller
  (``createVolumePermission``), else ``InvalidSnapshot.NotFound``; the RDS
  copies likewise with the ``restore`` attribute, else
  ``DBSnapshotNotFound`` / ``DBClusterSnapshotNotFoundFault``. moto looks in
  the caller's own account only. A shared snapshot encrypted with the other
  account's key is copied only if that key grants the caller's account
  (``CreateGrant``); otherwise the copy ends in ``error`` (AWS: the copy
  fails, its ``StateMessage`` "Given key ID is not accessible").
* **CopyImage as AWS does it** (moto copies within the caller's account only
  and ignores everything but the id, region, name and description): an AMI
  another account owns is copied when its launch permission names the
  caller, else ``InvalidAMIID.NotFound``; when its snapshot is not shared
  with the caller too, the copy ends ``failed`` (AWS: "the owner of the
  source AMI must grant you read permissions for the storage that backs the
  AMI"); ``TagSpecifications`` tag the new AMI (``image``) and its snapshots
  (``snapshot``); ``KmsKeyId`` / ``Encrypted`` encrypt its snapshots; a name
  the caller's AMIs already use is ``InvalidAMIName.Duplicate``; the same
  ``ClientToken`` returns the same AMI (AWS: "Ensuring idempotency").
* **Redshift cross-region snapshot copy.** A manual snapshot of a cluster
  configured with ``EnableSnapshotCopy`` is copied by the cluster to its
  destination region, under the same identifier, untagged, ``creating`` for
  its first describes as above (AWS: "When a snapshot is created in the
  cluster's primary AWS Region, it's copied to a secondary AWS Region"; only
  snapshots taken after the copy was configured). moto stores the
  configuration and copies nothing.
* **The AWS managed EBS key.** An encrypted volume made without a key uses
  the account's ``aws/ebs`` key, whose ``KeyManager`` is ``AWS`` (moto makes
  the key but calls it ``CUSTOMER``); snapshots carry their volume's key
  (moto leaves ``KmsKeyId`` out); and ``ModifySnapshotAttribute`` refuses
  to share a snapshot encrypted with an AWS managed key with another account
  (AWS: "Snapshots encrypted with your default KMS key cannot be shared
  with other accounts"), with ``UnsupportedOperation``.

Configuration: JSON from ``STRONGROOM_EMULATOR_COPIES`` at start, or
``POST /_strongroom/copies`` at runtime (replaces the configuration and
clears the peaks): ``copy_describes`` (int >= 0), ``copy_limit`` and
``image_copy_limit`` (int >= 1).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import faults

DEFAULTS = {"copy_describes": 1, "copy_limit": 20, "image_copy_limit": 25}
_LOCK = threading.Lock()
CONFIG: dict[str, int] = dict(DEFAULTS)
# "<account>/<region>/<ebs|db>" -> the most copies in flight there at once.
PEAKS: dict[str, int] = {}


def configure(raw: dict[str, Any]) -> dict[str, int]:
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown field(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    new = dict(DEFAULTS)
    for k, v in raw.items():
        least = 0 if k == "copy_describes" else 1
        if not isinstance(v, int) or isinstance(v, bool) or v < least:
            raise ValueError(f"{k} must be an integer >= {least}")
        new[k] = v
    with _LOCK:
        CONFIG.clear()
        CONFIG.update(new)
        PEAKS.clear()
    return new


configure(json.loads(os.environ.get("STRONGROOM_EMULATOR_COPIES", "{}") or "{}"))


def control(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``GET``: the configuration and the peaks; ``POST``: a new configuration."""
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            configure(json.loads(environ["wsgi.input"].read(length) or b"{}"))
            status = "200 OK"
        except (ValueError, json.JSONDecodeError) as e:
            status = "400 Bad Request"
            body = json.dumps({"error": str(e)}).encode()
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
    with _LOCK:
        body = json.dumps({"config": CONFIG, "peaks": PEAKS}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def _in_flight(objects: Any, status: str, attr: str = "status") -> int:
    return sum(
        1
        for o in objects
        if getattr(o, "_strongroom_copy", False) and o.__dict__.get(f"_strongroom_{attr}", o.__dict__.get(attr)) == status
    )


def _started(copy: Any, key: str, in_flight: int, done: str, attr: str = "status") -> None:
    """Marks a new copy in progress (its `attr`) and records the peak."""
    left = CONFIG["copy_describes"]
    copy._strongroom_copy = True
    copy._strongroom_copy_attr = attr
    if left > 0:
        copy._strongroom_copy_left = left
        copy._strongroom_copy_done = done
        setattr(copy, attr, "creating" if done == "available" and attr == "status" else "pending")
        in_flight += 1
    with _LOCK:
        PEAKS[key] = max(PEAKS.get(key, 0), in_flight)


def _advance(found: list[Any], action: str) -> list[Any]:
    """Strongroom's describe of copies in progress: one step nearer done."""
    if not faults.strongroom_call(action):
        return found
    for o in found:
        left = getattr(o, "_strongroom_copy_left", 0)
        if left > 0:
            o._strongroom_copy_left = left - 1
        elif getattr(o, "_strongroom_copy_done", None):
            setattr(o, getattr(o, "_strongroom_copy_attr", "status"), o._strongroom_copy_done)
            o._strongroom_copy_done = None
    return found


def _grants_account(key: Any, account: str) -> bool:
    return any(f":{account}:" in g.grantee_principal for g in key.grants.values())


def patch_moto_copies() -> None:
    """Patch 17: installs the copy behaviour (once)."""
    from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotIdError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot
    from moto.kms import kms_backends
    from moto.rds.exceptions import DBClusterSnapshotNotFoundError, DBSnapshotNotFoundFault, RDSClientError
    from moto.rds.models import DBClusterSnapshot, DBSnapshot, RDSBackend, rds_backends
    from moto.rds.utils import split_arn

    if getattr(EBSBackend, "_strongroom_copies", False):
        return

    # The AWS managed EBS key, and snapshots that carry their volume's key.
    default_key = EBSBackend._create_default_encryption_key

    def aws_managed_default_key(self):  # type: ignore[no-untyped-def]
        arn = default_key(self)
        kms_backends[self.account_id][self.region_name].describe_key(arn).key_manager = "AWS"
        return arn

    snapshot_init = Snapshot.__init__

    def snapshot_with_volume_key(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        snapshot_init(self, *args, **kwargs)
        volume = getattr(self, "volume", None)
        if self.kms_key_id is None and volume is not None and getattr(volume, "kms_key_id", None):
            self.kms_key_id = volume.kms_key_id
            self.encrypted = True

    def key_of(arn: str | None) -> Any:
        # arn:aws:kms:<region>:<account>:key/<id>
        if not arn or not arn.startswith("arn:"):
            return None
        parts = arn.split(":")
        try:
            return kms_backends[parts[4]][parts[3]].describe_key(arn)
        except Exception:  # noqa: BLE001 - a key that does not exist is no key
            return None

    add_permission = EBSBackend.add_create_volume_permission

    def share_unless_aws_managed(self, snapshot_id, user_ids=None, groups=None):  # type: ignore[no-untyped-def]
        snapshot = self.get_snapshot(snapshot_id)
        key = key_of(snapshot.kms_key_id)
        if user_ids and key is not None and key.key_manager == "AWS":
            raise EC2ClientError(
                "UnsupportedOperation",
                "Snapshots encrypted with the AWS Managed CMK can't be shared. Specify another snapshot.",
            )
        return add_permission(self, snapshot_id, user_ids=user_ids, groups=groups)

    def copy_snapshot(self, source_snapshot_id, source_region, description, kms_key_id):  # type: ignore[no-untyped-def]
        source = None
        for account, regions in list(ec2_backends.items()):
            backend = regions[source_region]
            candidate = backend.snapshots.get(source_snapshot_id)
            if candidate is None:
                continue
            if account == self.account_id or self.account_id in candidate.create_volume_permission_userids or "all" in candidate.create_volume_permission_groups:
                source = candidate
                source_account = account
                break
        if source is None:
            raise InvalidSnapshotIdError()
        in_flight = _in_flight(self.snapshots.values(), "pending")
        if in_flight >= CONFIG["copy_limit"]:
            raise EC2ClientError(
                "ResourceLimitExceeded",
                f"Too many snapshot copies in progress. The limit is {CONFIG['copy_limit']} for this destination region.",
            )
        from moto.ec2.utils import random_snapshot_id

        snapshot_id = random_snapshot_id()
        copy = Snapshot(
            self, snapshot_id, volume=source.volume, description=description,
            encrypted=bool(kms_key_id) or source.encrypted,
            kms_key_id=kms_key_id or (source.kms_key_id if source_account == self.account_id else None),
        )
        copy.kms_key_id = kms_key_id or copy.kms_key_id
        self.snapshots[snapshot_id] = copy
        _started(copy, f"{self.account_id}/{self.region_name}/ebs", in_flight, "completed")
        # A shared snapshot under another account's key: the copy fails
        # unless that key grants this account.
        key = key_of(source.kms_key_id)
        if source_account != self.account_id and key is not None and not _grants_account(key, self.account_id):
            copy._strongroom_copy_done = "error"
            copy.state_message = "Given key ID is not accessible"
        return copy

    describe_snapshots = EBSBackend.describe_snapshots

    def describe_and_advance(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return _advance(describe_snapshots(self, *args, **kwargs), "DescribeSnapshots")

    # CopyImage.
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import InvalidAMIIdError
    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ec2.responses.amis import AmisResponse
    from moto.ec2.utils import random_ami_id

    def copy_image(self):  # type: ignore[no-untyped-def]
        source_image_id = self._get_param("SourceImageId")
        source_region = self._get_param("SourceRegion")
        name = self._get_param("Name")
        description = self._get_param("Description")
        kms_key_id = self._get_param("KmsKeyId")
        encrypted = str(self._get_param("Encrypted", False)).lower() == "true"
        token = self._get_param("ClientToken")
        specs = self._get_param("TagSpecification", []) or self._get_param("TagSpecifications", [])
        self.error_on_dryrun()
        backend = self.ec2_backend
        tokens = backend.__dict__.setdefault("_strongroom_copy_tokens", {})
        if token and token in tokens:
            return ActionResult({"ImageId": tokens[token]})
        source, source_account = None, None
        for account, regions in list(ec2_backends.items()):
            candidate = regions[source_region].amis.get(source_image_id)
            if candidate is None:
                continue
            if account == backend.account_id or candidate.is_public or {"UserId": backend.account_id} in candidate.launch_permissions:
                source, source_account = candidate, account
                break
        if source is None:
            raise InvalidAMIIdError(source_image_id)
        for ami in backend.amis.values():
            if ami.name == name:
                raise EC2ClientError("InvalidAMIName.Duplicate", f"AMI name {name} is already in use by AMI {ami.id}")
        in_flight = _in_flight(backend.amis.values(), "pending", "state")
        if in_flight >= CONFIG["image_copy_limit"]:
            raise EC2ClientError(
                "ResourceLimitExceeded",
                f"You have reached your quota of {CONFIG['image_copy_limit']} concurrent AMI copies for this region.",
            )
        ami = Ami(backend, random_ami_id(), instance=None, source_ami=source, name=name, description=description)
        backend.amis[ami.id] = ami
        for spec in specs:
            tags = {t["Key"]: t["Value"] for t in spec.get("Tag", spec.get("Tags", []))}
            if spec.get("ResourceType") == "image":
                for k, v in tags.items():
                    ami.add_tag(k, v)
            elif spec.get("ResourceType") == "snapshot":
                backend.create_tags([ami.ebs_snapshot.id], tags)
        if kms_key_id or encrypted:
            ami.ebs_snapshot.encrypted = True
            ami.ebs_snapshot.kms_key_id = kms_key_id or ami.ebs_snapshot.kms_key_id
        _started(ami, f"{backend.account_id}/{backend.region_name}/image", in_flight, "available", "state")
        snapshot = getattr(source, "ebs_snapshot", None)
        if source_account != backend.account_id and snapshot is not None and backend.account_id not in snapshot.create_volume_permission_userids:
            ami._strongroom_copy_done = "failed"
        if token:
            tokens[token] = ami.id
        return ActionResult({"ImageId": ami.id})

    describe_images = AmiBackend.describe_images

    def describe_images_and_advance(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        return _advance(describe_images(self, *args, **kwargs), "DescribeImages")

    AmisResponse.copy_image = copy_image
    AmiBackend.describe_images = describe_images_and_advance

    # Redshift: a configured cluster copies its new manual snapshots.
    from moto.redshift.models import RedshiftBackend, redshift_backends
    from moto.redshift.models import Snapshot as RedshiftSnapshot

    create_cluster_snapshot = RedshiftBackend.create_cluster_snapshot

    def create_and_copy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        made = create_cluster_snapshot(self, *args, **kwargs)
        cluster = self.clusters.get(made.cluster_identifier)
        status = getattr(cluster, "cluster_snapshot_copy_status", None)
        if made.snapshot_type == "manual" and status:
            dest = status["DestinationRegion"]
            backend = redshift_backends[self.account_id][dest]
            if made.snapshot_identifier not in backend.snapshots:
                in_flight = _in_flight(backend.snapshots.values(), "creating")
                copy = RedshiftSnapshot(cluster, made.snapshot_identifier, self.account_id, dest, None)
                copy._strongroom_source_region = self.region_name
                backend.snapshots[made.snapshot_identifier] = copy
                _started(copy, f"{self.account_id}/{dest}/redshift", in_flight, "available")
        return made

    RedshiftBackend.create_cluster_snapshot = create_and_copy

    EBSBackend._create_default_encryption_key = aws_managed_default_key
    Snapshot.__init__ = snapshot_with_volume_key  # type: ignore[method-assign]
    EBSBackend.add_create_volume_permission = share_unless_aws_managed
    EBSBackend.copy_snapshot = copy_snapshot
    EBSBackend.describe_snapshots = describe_and_advance

    # RDS: sources by ARN in their own account, shared through `restore`.
    get_snapshot = RDSBackend.get_snapshot

    def get_shared_snapshot(self, identifier, resource_type, not_found_exception):  # type: ignore[no-untyped-def]
        if identifier.startswith("arn"):
            region, account, _, name = split_arn(identifier)
            if account != self.account_id:
                snapshots = rds_backends[account][region].resource_map[resource_type]
                snapshot = snapshots.get(name)
                if snapshot is None or not ({self.account_id, "all"} & set(snapshot.attributes["restore"])):
                    raise not_found_exception(identifier)
                return snapshot
        return get_snapshot(self, identifier, resource_type, not_found_exception)

    def limited_copy(original: Any, kind: str) -> Any:
        def copy(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            in_flight = _in_flight(list(self.database_snapshots.values()) + list(self.cluster_snapshots.values()), "creating")
            if in_flight >= CONFIG["copy_limit"]:
                raise RDSClientError(
                    "SnapshotQuotaExceeded",
                    f"Cannot copy more than {CONFIG['copy_limit']} snapshots to this region at once.",
                )
            made = original(self, *args, **kwargs)
            _started(made, f"{self.account_id}/{self.region_name}/db", in_flight, "available")
            return made

        return copy

    def advancing(original: Any, action: str) -> Any:
        def describe(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            return _advance(original(self, *args, **kwargs), action)

        return describe

    RDSBackend.get_snapshot = get_shared_snapshot
    RDSBackend.copy_db_snapshot = limited_copy(RDSBackend.copy_db_snapshot, "db")
    RDSBackend.copy_db_cluster_snapshot = limited_copy(RDSBackend.copy_db_cluster_snapshot, "cluster")
    RDSBackend.describe_db_snapshots = advancing(RDSBackend.describe_db_snapshots, "DescribeDBSnapshots")
    RDSBackend.describe_db_cluster_snapshots = advancing(RDSBackend.describe_db_cluster_snapshots, "DescribeDBClusterSnapshots")
    # Keep the names referenced: the exceptions are what the patched calls raise.
    _ = (DBSnapshotNotFoundFault, DBClusterSnapshotNotFoundError, DBSnapshot, DBClusterSnapshot)
    RedshiftBackend.describe_cluster_snapshots = advancing(RedshiftBackend.describe_cluster_snapshots, "DescribeClusterSnapshots")
    EBSBackend._strongroom_copies = True
