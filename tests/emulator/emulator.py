#!/usr/bin/env python3
"""Strongroom's AWS emulator: moto_server, in-process, with documented patches.

One process serves, on one loopback port:

* moto (pinned in requirements.txt) for every AWS API;
* Lambda invocations (``POST /2015-03-31/functions/<fn>/invocations``), routed
  to Strongroom's real function binaries, each run under a small
  implementation of the Lambda Runtime API (one loopback port per function);
* ``/_strongroom/calls``: a log of every AWS API call that reached moto (with
  ``function``, the Lambda function that made it, for Strongroom's calls), by
  service, action and client, which is how the benchmarks count API calls;
* ``/_strongroom/faults``: the switchable faults of patch 10 (GET the
  configuration, POST a new one);
* ``/_strongroom/volume-content``: POST ``{"region", "account", "volume_id",
  "image"}`` makes a raw disk image a volume's content (patch 20), which its
  snapshots then hold and the EBS direct APIs read.

The client of a call is ``harness`` for the Rust tests' own calls (user agent
with ``app/strongroom-tests``), ``strongroom`` for the rest of aws-sdk-rust
(Strongroom's code), ``boto3`` for botocore, ``other`` otherwise. A request
header ``X-Strongroom-Client: strongroom|harness|boto3`` overrides that, so a
check script can call as Strongroom.

Step Functions execution is switched on, and ``MOTO_PORT`` points at this
server, so moto's ASL interpreter invokes our binaries for Lambda tasks.

Patches (each reproduces documented AWS behaviour that moto 5.2.5 lacks):

1. Resource Groups Tagging API ``GetResources`` returns Redshift clusters
   (``redshift:cluster``). AWS lists Redshift among the services that the
   Tagging API supports; moto's Redshift backend does not take part in it.
2. EC2 ``CreateImage`` accepts ``TagSpecifications`` with ResourceType
   ``snapshot`` and tags the AMI's snapshots with them (AWS: "the tags to apply
   to the AMI and snapshots on creation"); moto raises NotImplementedError.
3. EC2 ``CreateImage`` with a name already used by an AMI of the account in
   the region fails with ``InvalidAMIName.Duplicate`` (AWS: AMI names are
   unique per account and region); moto accepts duplicates.
4. EBS Snapshot Lock: ``LockSnapshot``, ``UnlockSnapshot`` and
   ``DescribeLockedSnapshots``, and ``DeleteSnapshot`` refusing a locked
   snapshot (AWS: "A locked snapshot can't be deleted"). moto has none of them.
   Locks here never expire and have no cooling-off period: enough to test that
   Strongroom sees locks and never tries to delete a locked snapshot.
5. EC2 ``RegisterImage`` with ``BlockDeviceMappings`` that name an existing
   snapshot uses that snapshot (AWS: the AMI is backed by it, and
   ``DeleteSnapshot`` then fails with ``InvalidSnapshot.InUse``); moto ignores
   the mappings and invents a snapshot of its own.
6. Redshift ``DescribeClusterSnapshots`` returns ``OwnerAccount`` (AWS: "the
   account used to create or copy the snapshot"); moto leaves it out.
7. Snapshot identifiers follow AWS's rules: ``DBSnapshotIdentifier`` (RDS
   ``CreateDBSnapshot``) and ``SnapshotIdentifier`` (Redshift
   ``CreateClusterSnapshot``) 1-255 characters, ``DBClusterSnapshotIdentifier``
   (``CreateDBClusterSnapshot``) 1-63; letters, digits and hyphens, starting
   with a letter, no two consecutive hyphens, not ending with one. AWS refuses
   anything else with ``InvalidParameterValue``; moto accepts any string.
8. Redshift manual snapshot retention: ``CreateCluster`` takes
   ``ManualSnapshotRetentionPeriod`` (the cluster's default, -1 when absent),
   ``CreateClusterSnapshot`` takes one too and otherwise inherits the
   cluster's, ``DescribeClusterSnapshots`` reports it, and a manual snapshot
   whose period has run out is deleted (AWS: "The number of days that a
   manual snapshot is retained. If the value is -1, the manual snapshot is
   retained indefinitely"; a cluster's default applies to snapshots created
   without a period). moto has no retention at all. How long a "day" lasts
   is ``STRONGROOM_EMULATOR_DAY_SECONDS`` (default 86400), so a test can let
   days pass in seconds.
9. RDS and Redshift tag rules on snapshot creation: keys 1-128 and values
   0-256 characters of Unicode letters, digits, white space and
   ``_ . : / = + - @`` (RDS: "Java regex ``^([\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]*)$``"),
   refused otherwise (RDS ``InvalidParameterValue``, Redshift
   ``InvalidTagFault``); moto accepts any tag.
10. Switchable faults, for Strongroom's own calls only (tests/emulator/faults.py
    documents each): throttling (EC2 ``RequestLimitExceeded`` HTTP 503; RDS,
    Redshift, STS ``Throttling`` and Tagging ``ThrottlingException``, HTTP
    400; AWS: "If you exceed an API throttling limit, you get the
    RequestLimitExceeded error code"), lost responses (the create is done,
    the answer is HTTP 500 ``InternalError`` / ``InternalFailure``), snapshots
    and AMIs shown ``pending`` / ``creating`` for their first describes,
    EBS snapshots and AMIs not yet visible to describes (AWS, "Eventual
    consistency in the Amazon EC2 API": "if you run a command to modify or
    describe the resource that you just created, its ID might not have
    propagated throughout the system, and you will get an error responding
    that the resource does not exist"), and snapshot quotas with AWS's errors
    (``SnapshotLimitExceeded``, ``SnapshotQuotaExceeded``,
    ``ClusterSnapshotQuotaExceeded``). Also RDS ``DescribeAccountAttributes``,
    which moto lacks, with the ``ManualSnapshots`` and
    ``ManualClusterSnapshots`` quotas (AWS's default ``Max`` is 100), and
    ``State`` in ``CreateSnapshots`` answers, which moto leaves out. Set
    from ``STRONGROOM_EMULATOR_FAULTS`` (JSON) or ``POST /_strongroom/faults``;
    every faulted call's log entry has ``"fault"``.
11. EC2 ``DeregisterImage`` with ``DeleteAssociatedSnapshots`` deletes the
    AMI's snapshots and answers ``DeleteSnapshotResults`` (AWS: "if a
    snapshot is associated with multiple AMIs, it won't be deleted even if
    specified for deletion, although the AMI will still be deregistered";
    return codes "``success`` - The snapshot was successfully deleted",
    "``skipped`` - The snapshot was not deleted because it's associated with
    other AMIs", "``client-error`` - The snapshot was not deleted due to a
    client configuration error", which is what a locked snapshot (patch 4)
    gets, as its ``DeleteSnapshot`` fails with ``SnapshotLocked``). moto
    ignores the flag. ``DeleteSnapshot`` also refuses, with
    ``InvalidSnapshot.InUse``, a snapshot backing any registered AMI (AWS:
    "You cannot delete a snapshot of the root device of an EBS volume used by
    a registered AMI"); moto only checks the AMI that created it.
12. Sharing, where moto falls short: EC2 ``ModifySnapshotAttribute`` with
    ``CreateVolumePermission`` ``Add`` / ``Remove`` (AWS's structured form;
    moto only honours ``OperationType`` with ``UserIds``); Redshift
    ``AuthorizeSnapshotAccess`` / ``RevokeSnapshotAccess``,
    ``AccountsWithRestoreAccess`` in snapshots ("A list of the Amazon Web
    Services accounts authorized to restore the snapshot. Returns null if no
    accounts are authorized"), and ``DeleteClusterSnapshot`` refusing, with
    ``InvalidClusterSnapshotState``, a snapshot others may restore (AWS: "If
    other accounts are authorized to access the snapshot, you must revoke all
    of the authorizations before you can delete the snapshot"). moto already
    has EC2 ``DescribeSnapshotAttribute``, ``ModifyImageAttribute`` /
    ``DescribeImageAttribute`` (launchPermission) and RDS
    ``Modify/DescribeDB[Cluster]SnapshotAttribute[s]`` (``restore``) right,
    and, as AWS does, lets the owner delete a shared EBS snapshot (AWS names
    only the registered-AMI case) or a shared RDS snapshot (AWS: "To delete a
    shared or public snapshot, you must sign in to the AWS account that owns
    the snapshot").

13. EC2 ``DescribeImageAttribute`` of an AMI that does not exist (or was
    deregistered) fails with ``InvalidAMIID.NotFound`` / ``InvalidAMIID.Unavailable``
    (AWS: "The specified AMI ID does not exist"); moto raises a ``KeyError``
    and answers a bare HTTP 500.

14. STS ``AssumeRole`` of a role that does not exist in its account fails
    with ``AccessDenied`` (AWS: "User: ... is not authorized to perform:
    sts:AssumeRole on resource: <role>"; a role must exist and trust the
    caller: here only existence and the external id are checked, not the
    trusted principal); moto hands out credentials for any ARN ("the role does not need
    to exist"). Roles are made with IAM ``CreateRole`` in their account
    (``seed.py --account A --role NAME``). A role whose trust policy names an
    ``sts:ExternalId`` condition also requires that external id.

15. Step Functions Distributed Map (tests/emulator/distributed_map.py
    documents each part, with AWS's wording): ``ProcessorConfig.ExecutionType``
    ``EXPRESS`` accepted (AWS: "Specifies the execution type for the Map
    workflow as either STANDARD or EXPRESS"; run as the same in-process
    workers), ``ReaderConfig.InputType`` ``JSONL``; every item recorded as a
    child workflow execution (input, output, status, error, cause, dates, ARN
    ``...:execution:<state machine>/<Label or state>:<uuid>``) that
    ``ListExecutions`` with ``mapRunArn`` lists; ``ToleratedFailureCount`` /
    ``ToleratedFailurePercentage`` enforced (a Map Run beyond either fails
    with ``States.ExceedToleratedFailureThreshold``; default zero: any failed
    child fails the run); and ``ResultWriter`` writing ``SUCCEEDED_0.json`` /
    ``FAILED_0.json`` rows and a ``manifest.json`` listing them with
    ``{Key, Size}``, ``Prefix`` optional, also when the Map Run fails. moto
    parses the thresholds and ignores them, refuses EXPRESS and JSONL, keeps
    no child executions (``ListExecutions(mapRunArn)`` is HTTP 500) and writes
    an empty manifest only.

16. AWS Organizations ``ListAccountsForParent`` and
    ``ListOrganizationalUnitsForParent`` only from the management account:
    from an account in no organization they fail with
    ``AWSOrganizationsNotInUseException`` ("Your account is not a member of
    an organization"), from a member account with ``AccessDeniedException``
    (AWS: "This operation can be called only from the organization's
    management account or by a member account that is a delegated
    administrator"; delegated administrators are not modelled). moto answers
    ``ParentNotFoundException`` without an organization and lets members list.
    ``seed.py --organization`` makes the home account a management account.
17. Snapshot copies as AWS makes them (tests/emulator/copies.py documents
    each part, with AWS's wording): copies in progress for their first
    describes; at most 20 copies in flight per destination region and account
    (EBS ``ResourceLimitExceeded``, RDS ``SnapshotQuotaExceeded``), with the
    peak kept (``GET /_strongroom/copies``); ``CopySnapshot`` and the RDS
    copies of a snapshot another account shared with the caller (moto looks
    in the caller's account only), failing when its key grants the caller
    nothing; the AWS managed ``aws/ebs`` key reported as AWS managed, carried
    by snapshots, and refused for sharing.
18. IAM policies enforced, by moto's own evaluator, for requests signed with
    credentials STS ``AssumeRole`` handed out for a role tagged
    ``strongroom-emulator:enforce-iam`` = ``true`` (tests/emulator/iam_enforcement.py
    documents what moto's evaluator judges and how, resources and condition
    keys included): the role's inline and attached policies decide, and "an
    explicit deny in any policy overrides any allows" (AWS, IAM policy
    evaluation logic); a denied EC2 call is HTTP 403 ``UnauthorizedOperation``
    ("You are not authorized to perform this operation."), a JSON service's
    HTTP 400 ``AccessDeniedException``, another's HTTP 403 ``AccessDenied``.
    moto enforces IAM for every request or none (the emulator's dummy
    credentials are no IAM user): every other request stays unrestricted.
19. Images and launches as a restore needs them (tests/emulator/restores.py
    documents each part, with AWS's wording): ``RegisterImage`` keeps every
    block device mapping (moto, even with patch 5, keeps one), its root
    device, architecture and image tags, and ``DescribeImages`` shows them;
    ``RunInstances`` of such an image creates one volume per mapping from
    its snapshot at its device (moto attaches one default root volume).
20. The EBS direct APIs over snapshots that hold data (tests/emulator/ebs_direct.py
    documents each part, with AWS's wording): ``POST /_strongroom/volume-content``
    makes a raw disk image a volume's content (an image larger than the
    volume is refused, HTTP 400); a snapshot captures its volume's content, a
    copy its source's, a volume made from a snapshot the snapshot's.
    ``ListSnapshotBlocks`` lists the 512 KiB blocks that hold data ("A block
    index is a logical index in units of 512 KiB blocks"; "BlockSize"
    524288; zero blocks are not listed), with block tokens, ``ExpiryTime``
    and paging (``MaxResults`` 100..10000, ``NextToken``,
    ``StartingBlockIndex``); ``GetSnapshotBlock`` reads one block (only that
    block of the image) with its base64 SHA256 ``x-amz-Checksum``;
    ``ListChangedBlocks`` compares two snapshots "of the same volume/snapshot
    lineage"; ``StartSnapshot`` / ``PutSnapshotBlock`` / ``CompleteSnapshot``
    make an EC2 snapshot, ``pending`` until completed, checking each block's
    length (524288: "the only supported size") and checksum ("If the
    checksums do not correspond, the request fails"). AWS's errors:
    ``ResourceNotFoundException`` (404, ``SNAPSHOT_NOT_FOUND``) for a snapshot
    that does not exist or is not shared with the caller, ``AccessDeniedException``
    (403) for a public one ("does not support public snapshots"),
    ``ValidationException`` (400) for a snapshot not ``completed`` ("The
    snapshot can be accessed only if it has a completed status"), a wrong
    block token (``INVALID_BLOCK_TOKEN``) or page token; switchable
    ``RequestThrottledException`` (400) for every Nth ``GetSnapshotBlock``
    (patch 10's ``ebs_direct_throttle_every``). Snapshots shared with the
    caller are read as its own. moto's EBS direct APIs use 512-byte blocks,
    check nothing, and EC2's snapshots hold no data.
21. S3 ``ListParts`` answers with the root element ``ListPartsResult``, as
    AWS documents its response ("<ListPartsResult>" in the ListParts API
    reference); moto 5.2.5 names it ``ListPartsResponse``, which
    aws-sdk-rust refuses ("expected ListPartsResult"). A file restore lists
    a multipart upload's parts to complete it.

The stack's bucket: at start the emulator creates ``strongroom-runs-<account>``
in the home region, as the stack does, and gives the functions its name in
``STRONGROOM_BUCKET`` (where Discover writes the Map items, the Distributed
Map its results, Prune and Report their reports).

Usage: ``emulator.py --functions-dir target/debug [--port 0]``. Prints
``READY <port>`` on stdout once it serves. Loopback only, dummy credentials.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import copies
import distributed_map
import ebs_direct
import faults
import iam_enforcement
import restores

HOST = "127.0.0.1"
ACCOUNT = "123456789012"
HOME_REGION = "us-east-1"
# `app/<name>` in a function's user agent (AWS_SDK_UA_APP_ID).
APP_ID = re.compile(r"\bapp/([A-Za-z0-9._-]+)")
FUNCTIONS = ("discover", "snapshot", "status", "copy", "report", "prune", "restore")
RUNS_BUCKET = f"strongroom-runs-{ACCOUNT}"
MAX_INSTANCES = 4
INVOKE_TIMEOUT_S = 900

# Must be set before moto is imported: no 1,300 foreign AMIs, dummy credentials.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", HOME_REGION)


def patch_moto() -> None:
    """Patch 1: Redshift clusters in the Resource Groups Tagging API."""
    from moto.core.resource_tagging import TaggableResourcesMixin, TaggedResource
    from moto.redshift.models import RedshiftBackend

    def iter_tagged_resources(self):  # type: ignore[no-untyped-def]
        for cluster in self.clusters.values():
            yield TaggedResource(
                arn=cluster.arn,
                tags={t["Key"]: t["Value"] for t in cluster.tags},
                resource_type="redshift:cluster",
            )

    _patch_create_image()
    _patch_snapshot_lock()
    _patch_register_image()
    _patch_redshift_owner()
    _patch_snapshot_identifiers()
    _patch_redshift_manual_retention()
    _patch_database_tag_rules()
    _patch_deregister_associated_snapshots()
    _patch_sharing()
    _patch_image_attribute_of_missing_ami()
    _patch_assume_role_needs_the_role()
    _patch_organizations_listing()
    faults.patch_moto_faults()
    distributed_map.patch_moto_distributed_map()
    copies.patch_moto_copies()
    iam_enforcement.patch_moto_iam_enforcement()
    restores.patch_moto_restores()
    ebs_direct.patch_moto_ebs_direct()
    _patch_s3_list_parts_root()
    if not issubclass(RedshiftBackend, TaggableResourcesMixin):
        RedshiftBackend.__bases__ = RedshiftBackend.__bases__ + (TaggableResourcesMixin,)
    RedshiftBackend.SERVICE_NAMESPACE = "redshift"
    RedshiftBackend.iter_tagged_resources = iter_tagged_resources


def _patch_s3_list_parts_root() -> None:
    """Patch 21: S3 ListParts's root element is ListPartsResult."""
    from moto.s3.responses import S3Response

    original = S3Response.list_parts

    def list_parts(self: Any) -> Any:
        status, headers, body = original(self)
        if isinstance(body, bytes):
            body = body.replace(b"<ListPartsResponse", b"<ListPartsResult", 1).replace(
                b"</ListPartsResponse>", b"</ListPartsResult>", 1
            )
        elif isinstance(body, str):
            body = body.replace("<ListPartsResponse", "<ListPartsResult", 1).replace(
                "</ListPartsResponse>", "</ListPartsResult>", 1
            )
        return status, headers, body

    S3Response.list_parts = list_parts


def _patch_create_image() -> None:
    """Patches 2 and 3: snapshot tags at creation, unique AMI names."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.amis import AmiBackend

    original = AmiBackend.create_image
    if getattr(original, "_strongroom", False):
        return

    def create_image(self, instance_id, name, description, tag_specifications):  # type: ignore[no-untyped-def]
        for ami in self.amis.values():
            if ami.name == name:
                raise EC2ClientError(
                    "InvalidAMIName.Duplicate",
                    f"AMI name {name} is already in use by AMI {ami.id}",
                )
        image_specs = [s for s in tag_specifications if s.get("ResourceType") != "snapshot"]
        snapshot_tags = {
            t["Key"]: t["Value"]
            for s in tag_specifications
            if s.get("ResourceType") == "snapshot"
            for t in s.get("Tags", [])
        }
        ami = original(self, instance_id, name, description, image_specs)
        snapshot = getattr(ami, "ebs_snapshot", None)
        if snapshot_tags and snapshot is not None:
            self.create_tags([snapshot.id], snapshot_tags)
        return ami

    create_image._strongroom = True  # type: ignore[attr-defined]
    AmiBackend.create_image = create_image


def _patch_snapshot_lock() -> None:
    """Patch 4: EBS Snapshot Lock (LockSnapshot / UnlockSnapshot / DescribeLockedSnapshots)."""
    import datetime

    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.ec2.responses import EC2Response

    if getattr(EC2Response, "_strongroom_locks", False):
        return
    original_delete = EBSBackend.delete_snapshot

    def locks(backend):  # type: ignore[no-untyped-def]
        if not hasattr(backend, "_strongroom_locks"):
            backend._strongroom_locks = {}
        return backend._strongroom_locks

    def delete_snapshot(self, snapshot_id):  # type: ignore[no-untyped-def]
        if snapshot_id in locks(self):
            raise EC2ClientError("SnapshotLocked", f"The snapshot {snapshot_id} is locked and can't be deleted.")
        return original_delete(self, snapshot_id)

    def lock_snapshot(self):  # type: ignore[no-untyped-def]
        snapshot_id = self._get_param("SnapshotId")
        snapshot = self.ec2_backend.get_snapshot(snapshot_id)
        mode = self._get_param("LockMode")
        days = int(self._get_param("LockDuration") or 1)
        now = datetime.datetime.now(datetime.timezone.utc)
        lock = {
            "SnapshotId": snapshot.id,
            "OwnerId": self.current_account,
            "LockState": "governance" if mode == "governance" else "compliance",
            "LockDuration": days,
            "LockCreatedOn": now,
            "LockDurationStartTime": now,
            "LockExpiresOn": now + datetime.timedelta(days=days),
        }
        locks(self.ec2_backend)[snapshot.id] = lock
        return ActionResult(lock)

    def unlock_snapshot(self):  # type: ignore[no-untyped-def]
        snapshot_id = self._get_param("SnapshotId")
        locks(self.ec2_backend).pop(snapshot_id, None)
        return ActionResult({"SnapshotId": snapshot_id})

    def describe_locked_snapshots(self):  # type: ignore[no-untyped-def]
        wanted = set(self._get_param("SnapshotIds", []))
        found = [l for sid, l in locks(self.ec2_backend).items() if not wanted or sid in wanted]
        return ActionResult({"Snapshots": found})

    EBSBackend.delete_snapshot = delete_snapshot
    EC2Response.lock_snapshot = lock_snapshot
    EC2Response.unlock_snapshot = unlock_snapshot
    EC2Response.describe_locked_snapshots = describe_locked_snapshots
    EC2Response._strongroom_locks = True


def _patch_register_image() -> None:
    """Patch 5: RegisterImage backed by the snapshot its mappings name."""
    from moto.core.responses import ActionResult
    from moto.ec2.responses import EC2Response

    if getattr(EC2Response, "_strongroom_register", False):
        return

    def register_image(self):  # type: ignore[no-untyped-def]
        name = self._get_param("Name")
        description = self._get_param("Description", "")
        self.error_on_dryrun()
        image = self.ec2_backend.register_image(name, description)
        for mapping in self._get_param("BlockDeviceMappings", []) or []:
            snapshot_id = (mapping.get("Ebs") or {}).get("SnapshotId")
            if snapshot_id:
                own = image.ebs_snapshot
                snapshot = self.ec2_backend.get_snapshot(snapshot_id)
                snapshot.from_ami = image.id
                image.ebs_snapshot = snapshot
                self.ec2_backend.snapshots.pop(own.id, None)
                break
        return ActionResult({"ImageId": image.id})

    EC2Response.register_image = register_image
    EC2Response._strongroom_register = True


def _patch_redshift_owner() -> None:
    """Patch 6: Redshift snapshots report their owner account."""
    from moto.redshift.models import Snapshot

    if not hasattr(Snapshot, "owner_account"):
        Snapshot.owner_account = property(lambda self: self.account_id)  # type: ignore[attr-defined]


IDENTIFIER = re.compile(r"[A-Za-z](?:[A-Za-z0-9]|-(?!-))*")


def _identifier_problem(value: str, max_len: int) -> str | None:
    if not 1 <= len(value) <= max_len:
        return f"must be 1 to {max_len} characters, got {len(value)}"
    if not IDENTIFIER.fullmatch(value) or value.endswith("-"):
        return "must start with a letter and contain only letters, digits and single hyphens, not ending with one"
    return None


def _patch_snapshot_identifiers() -> None:
    """Patch 7: snapshot identifiers are checked as AWS checks them."""
    from moto.rds.exceptions import InvalidParameterValue
    from moto.rds.models import RDSBackend
    from moto.redshift.exceptions import InvalidParameterValueError
    from moto.redshift.models import RedshiftBackend

    def checked(original, position, name, type_position, max_len, error):  # type: ignore[no-untyped-def]
        def create(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            value = kwargs.get(name, args[position] if len(args) > position else "")
            kind = kwargs.get("snapshot_type", args[type_position] if len(args) > type_position else "manual")
            # Automated snapshots get names of AWS's own making ("rds:..."): only
            # what callers name is checked.
            problem = _identifier_problem(value, max_len) if kind == "manual" else None
            if problem:
                raise error(f"The parameter {name} is not a valid identifier: {problem}.")
            return original(self, *args, **kwargs)

        create.strongroom_checked = True  # type: ignore[attr-defined]
        return create

    for cls, method, position, name, type_position, max_len, error in [
        (RDSBackend, "create_db_snapshot", 1, "db_snapshot_identifier", 2, 255, InvalidParameterValue),
        (RDSBackend, "create_db_cluster_snapshot", 1, "db_cluster_snapshot_identifier", 2, 63, InvalidParameterValue),
        (RedshiftBackend, "create_cluster_snapshot", 1, "snapshot_identifier", 4, 255, InvalidParameterValueError),
    ]:
        original = getattr(cls, method)
        if not getattr(original, "strongroom_checked", False):
            setattr(cls, method, checked(original, position, name, type_position, max_len, error))


def _patch_redshift_manual_retention() -> None:
    """Patch 8: Redshift manual snapshots keep the period they were given."""
    from moto.core.utils import utcnow
    from moto.redshift.models import RedshiftBackend
    from moto.redshift.responses import RedshiftResponse

    if getattr(RedshiftResponse.create_cluster, "strongroom_retention", False):
        return
    day_s = float(os.environ.get("STRONGROOM_EMULATOR_DAY_SECONDS", "86400"))
    create_cluster = RedshiftResponse.create_cluster
    create_snapshot = RedshiftResponse.create_cluster_snapshot
    describe = RedshiftBackend.describe_cluster_snapshots

    def period(response: Any) -> int | None:
        raw = response._get_param("ManualSnapshotRetentionPeriod")
        return None if raw is None else int(raw)

    def create_cluster_with_default(self):  # type: ignore[no-untyped-def]
        days = period(self)
        result = create_cluster(self)
        cluster = self.redshift_backend.clusters[self._get_param("ClusterIdentifier")]
        cluster.manual_snapshot_retention_period = -1 if days is None else days
        return result

    def create_snapshot_with_period(self):  # type: ignore[no-untyped-def]
        days = period(self)
        result = create_snapshot(self)
        snapshot = self.redshift_backend.snapshots[self._get_param("SnapshotIdentifier")]
        cluster = self.redshift_backend.clusters[snapshot.cluster_identifier]
        default = getattr(cluster, "manual_snapshot_retention_period", -1)
        snapshot.manual_snapshot_retention_period = default if days is None else days
        return result

    def describe_unexpired(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        now = utcnow()
        for name, snap in list(self.snapshots.items()):
            days = getattr(snap, "manual_snapshot_retention_period", -1)
            if snap.snapshot_type == "manual" and days >= 0:
                if (now - snap.create_time).total_seconds() > days * day_s:
                    del self.snapshots[name]
        return describe(self, *args, **kwargs)

    create_cluster_with_default.strongroom_retention = True  # type: ignore[attr-defined]
    RedshiftResponse.create_cluster = create_cluster_with_default
    RedshiftResponse.create_cluster_snapshot = create_snapshot_with_period
    RedshiftBackend.describe_cluster_snapshots = describe_unexpired


TAG_TEXT = re.compile(r"[\w\s.:/=+\-@]*")


def _tag_problem(tags: list[dict[str, str]] | None) -> str | None:
    for tag in tags or []:
        key, value = tag.get("Key", ""), tag.get("Value", "")
        if not 1 <= len(key) <= 128 or len(value) > 256:
            return f"tag {key!r}: keys are 1-128 characters, values up to 256"
        if not (TAG_TEXT.fullmatch(key) and TAG_TEXT.fullmatch(value)):
            return f"tag {key!r}={value!r} has characters other than letters, digits, spaces and _.:/=+-@"
    return None


def _patch_database_tag_rules() -> None:
    """Patch 9: RDS and Redshift refuse tags with characters they do not allow."""
    from moto.rds.exceptions import InvalidParameterValue
    from moto.rds.models import RDSBackend
    from moto.redshift.exceptions import RedshiftClientError
    from moto.redshift.models import RedshiftBackend

    def invalid_tag(message: str) -> Exception:
        return RedshiftClientError("InvalidTagFault", message)

    def checked(original, position, error):  # type: ignore[no-untyped-def]
        def create(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            tags = kwargs.get("tags", args[position] if len(args) > position else None)
            problem = _tag_problem(tags)
            if problem:
                raise error(problem)
            return original(self, *args, **kwargs)

        create.strongroom_tags = True  # type: ignore[attr-defined]
        return create

    for cls, method, position, error in [
        (RDSBackend, "create_db_snapshot", 3, InvalidParameterValue),
        (RDSBackend, "create_db_cluster_snapshot", 3, InvalidParameterValue),
        (RedshiftBackend, "create_cluster_snapshot", 3, invalid_tag),
    ]:
        original = getattr(cls, method)
        if not getattr(original, "strongroom_tags", False):
            setattr(cls, method, checked(original, position, error))


def _ami_snapshot_ids(ami: Any) -> list[str]:
    return [m["Ebs"]["SnapshotId"] for m in ami.block_device_mappings if (m.get("Ebs") or {}).get("SnapshotId")]


def _patch_deregister_associated_snapshots() -> None:
    """Patch 11: DeregisterImage deletes the AMI's snapshots when asked to."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError, InvalidSnapshotInUse
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.ec2.responses import EC2Response

    if getattr(EC2Response, "_strongroom_deregister", False):
        return
    delete_snapshot = EBSBackend.delete_snapshot  # with patch 4's lock check

    def backing_ami(backend: Any, snapshot_id: str) -> str | None:
        return next((a.id for a in backend.amis.values() if snapshot_id in _ami_snapshot_ids(a)), None)

    def delete_unless_in_use(self, snapshot_id):  # type: ignore[no-untyped-def]
        ami_id = backing_ami(self, snapshot_id)
        if ami_id is not None:
            raise InvalidSnapshotInUse(snapshot_id, ami_id)
        return delete_snapshot(self, snapshot_id)

    def return_code(backend: Any, snapshot_id: str) -> str:
        if backing_ami(backend, snapshot_id) is not None:
            return "skipped"
        try:
            delete_snapshot(backend, snapshot_id)
        except EC2ClientError:  # SnapshotLocked, InvalidSnapshot.NotFound
            return "client-error"
        except Exception:  # noqa: BLE001 - AWS reports the snapshot, not the call, as failed
            return "internal-error"
        return "success"

    def deregister_image(self):  # type: ignore[no-untyped-def]
        ami_id = self._get_param("ImageId")
        delete = self._get_bool_param("DeleteAssociatedSnapshots", False)
        self.error_on_dryrun()
        ami = self.ec2_backend.amis.get(ami_id)
        snapshot_ids = _ami_snapshot_ids(ami) if ami is not None else []
        self.ec2_backend.deregister_image(ami_id)
        result: dict[str, Any] = {"Return": True}
        if delete:
            result["DeleteSnapshotResults"] = [
                {"SnapshotId": sid, "ReturnCode": return_code(self.ec2_backend, sid)} for sid in snapshot_ids
            ]
        return ActionResult(result)

    EBSBackend.delete_snapshot = delete_unless_in_use
    EC2Response.deregister_image = deregister_image
    EC2Response._strongroom_deregister = True


def _patch_image_attribute_of_missing_ami() -> None:
    """Patch 13: DescribeImageAttribute of a missing AMI is InvalidAMIID.*."""
    from moto.ec2.exceptions import InvalidAMIIdError, UnvailableAMIIdError
    from moto.ec2.models.amis import AmiBackend

    original = AmiBackend.describe_image_attribute
    if getattr(original, "_strongroom", False):
        return

    def describe_image_attribute(self, ami_id, attribute_name):  # type: ignore[no-untyped-def]
        if ami_id in getattr(self, "deleted_amis", ()):
            raise UnvailableAMIIdError(ami_id)
        if ami_id not in self.amis:
            raise InvalidAMIIdError(ami_id)
        return original(self, ami_id, attribute_name)

    describe_image_attribute._strongroom = True  # type: ignore[attr-defined]
    AmiBackend.describe_image_attribute = describe_image_attribute


def _patch_assume_role_needs_the_role() -> None:
    """Patch 14: AssumeRole only of a role that exists (and its external id)."""
    from moto.core.exceptions import ServiceException
    from moto.iam.models import iam_backends
    from moto.sts.models import STSBackend

    original = STSBackend.assume_role
    if getattr(original, "_strongroom", False):
        return

    class AccessDenied(ServiceException):
        code = "AccessDenied"

    def assume_role(self, region_name, role_session_name, role_arn, policy, duration, external_id):  # type: ignore[no-untyped-def]
        parts = role_arn.split(":")
        account = parts[4] if len(parts) > 5 else ""
        denied = AccessDenied(
            f"User: arn:aws:sts::{self.account_id}:assumed-role/strongroom is not authorized "
            f"to perform: sts:AssumeRole on resource: {role_arn}"
        )
        role = None
        try:
            role = iam_backends[account]["aws"].get_role_by_arn(role_arn)
        except Exception:  # noqa: BLE001 - any lookup failure is a role that does not exist
            raise denied from None
        wanted = None
        try:
            trust = json.loads(urllib.parse.unquote(role.assume_role_policy_document))
            for st in trust.get("Statement", []):
                cond = st.get("Condition", {}).get("StringEquals", {})
                wanted = cond.get("sts:ExternalId", wanted)
        except (TypeError, ValueError, AttributeError):
            wanted = None
        if wanted is not None and wanted != external_id:
            raise denied
        return original(self, region_name, role_session_name, role_arn, policy, duration, external_id)

    assume_role._strongroom = True  # type: ignore[attr-defined]
    STSBackend.assume_role = assume_role


def _patch_organizations_listing() -> None:
    """Patch 16: listing an organization's units needs its management account."""
    from moto.organizations.exceptions import AWSOrganizationsNotInUseException, OrganizationsClientError
    from moto.organizations.models import OrganizationsBackend

    if getattr(OrganizationsBackend.list_accounts_for_parent, "_strongroom", False):
        return

    class AccessDeniedException(OrganizationsClientError):
        def __init__(self) -> None:
            super().__init__("AccessDeniedException", "You don't have permissions to access this resource.")

    def management_only(original: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            if self.org is None:
                from moto.organizations.models import organizations_backends

                if self.account_id in organizations_backends.master_accounts:
                    raise AccessDeniedException()
                raise AWSOrganizationsNotInUseException()
            return original(self, *args, **kwargs)

        call._strongroom = True  # type: ignore[attr-defined]
        return call

    for name in ("list_accounts_for_parent", "list_organizational_units_for_parent"):
        setattr(OrganizationsBackend, name, management_only(getattr(OrganizationsBackend, name)))


def _patch_sharing() -> None:
    """Patch 12: structured CreateVolumePermission; Redshift snapshot access."""
    from moto.core.responses import ActionResult, EmptyResult
    from moto.ec2.responses import EC2Response
    from moto.redshift.exceptions import ClusterSnapshotNotFoundError, RedshiftClientError
    from moto.redshift.models import RedshiftBackend, Snapshot
    from moto.redshift.responses import RedshiftResponse

    if getattr(RedshiftResponse, "_strongroom_sharing", False):
        return
    modify_snapshot_attribute = EC2Response.modify_snapshot_attribute

    def modify_with_structure(self):  # type: ignore[no-untyped-def]
        permission = self._get_param("CreateVolumePermission") or {}
        if not permission:
            return modify_snapshot_attribute(self)
        snapshot_id = self._get_param("SnapshotId")
        self.error_on_dryrun()
        for items, change in (
            (permission.get("Add") or [], self.ec2_backend.add_create_volume_permission),
            (permission.get("Remove") or [], self.ec2_backend.remove_create_volume_permission),
        ):
            users = [i["UserId"] for i in items if i.get("UserId")]
            groups = [i["Group"] for i in items if i.get("Group")]
            if users or groups:
                change(snapshot_id, user_ids=users, groups=groups)
        return EmptyResult()

    def accounts_with_restore_access(self):  # type: ignore[no-untyped-def]
        accounts = getattr(self, "_strongroom_restore_access", [])
        return [
            {"AccountAlias": a} if a == "amazon-redshift-support" else {"AccountId": a} for a in accounts
        ] or None

    def snapshot_named(response: Any) -> Any:
        # SnapshotArn: arn:aws:redshift:<region>:<account>:snapshot:<cluster>/<snapshot>
        arn = response._get_param("SnapshotArn") or ""
        name = response._get_param("SnapshotIdentifier") or arn.rsplit("/", 1)[-1]
        snapshot = response.redshift_backend.snapshots.get(name)
        if snapshot is None:
            raise ClusterSnapshotNotFoundError(name)
        if not hasattr(snapshot, "_strongroom_restore_access"):
            snapshot._strongroom_restore_access = []
        return snapshot

    def authorize_snapshot_access(self):  # type: ignore[no-untyped-def]
        snapshot = snapshot_named(self)
        account = self._get_param("AccountWithRestoreAccess")
        if account in snapshot._strongroom_restore_access:
            raise RedshiftClientError(
                "AuthorizationAlreadyExists",
                f"The account {account} is already authorized to restore snapshot {snapshot.snapshot_identifier}.",
            )
        snapshot._strongroom_restore_access.append(account)
        return ActionResult({"Snapshot": snapshot})

    def revoke_snapshot_access(self):  # type: ignore[no-untyped-def]
        snapshot = snapshot_named(self)
        account = self._get_param("AccountWithRestoreAccess")
        if account not in snapshot._strongroom_restore_access:
            raise RedshiftClientError(
                "AuthorizationNotFound",
                f"The account {account} is not authorized to restore snapshot {snapshot.snapshot_identifier}.",
            )
        snapshot._strongroom_restore_access.remove(account)
        return ActionResult({"Snapshot": snapshot})

    delete_cluster_snapshot = RedshiftBackend.delete_cluster_snapshot

    def delete_unless_shared(self, snapshot_identifier):  # type: ignore[no-untyped-def]
        snapshot = self.snapshots.get(snapshot_identifier)
        if snapshot is not None and getattr(snapshot, "_strongroom_restore_access", []):
            raise RedshiftClientError(
                "InvalidClusterSnapshotState",
                f"Cannot delete snapshot {snapshot_identifier}: other accounts are authorized to restore it;"
                " revoke their access first.",
            )
        return delete_cluster_snapshot(self, snapshot_identifier)

    EC2Response.modify_snapshot_attribute = modify_with_structure
    Snapshot.accounts_with_restore_access = property(accounts_with_restore_access)  # type: ignore[attr-defined]
    RedshiftResponse.authorize_snapshot_access = authorize_snapshot_access
    RedshiftResponse.revoke_snapshot_access = revoke_snapshot_access
    RedshiftBackend.delete_cluster_snapshot = delete_unless_shared
    RedshiftResponse._strongroom_sharing = True


# --------------------------------------------------------------------------
# Lambda: run real binaries under a minimal Lambda Runtime API.
# --------------------------------------------------------------------------


class Invocation:
    def __init__(self, payload: bytes) -> None:
        self.id = str(uuid.uuid4())
        self.payload = payload
        self.done = threading.Event()
        self.error = False
        self.body = b""


class FunctionHost:
    """One function: a Runtime API endpoint and up to MAX_INSTANCES processes."""

    def __init__(self, name: str, binary: str, env: dict[str, str], log_dir: str) -> None:
        self.name = name
        self.binary = binary
        self.env = env
        self.log_dir = log_dir
        self.pending: "queue.Queue[Invocation]" = queue.Queue()
        self.inflight: dict[str, Invocation] = {}
        self.lock = threading.Lock()
        self.idle = 0
        self.procs: list[subprocess.Popen[bytes]] = []
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _send(self, code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path != "/2018-06-01/runtime/invocation/next":
                    return self._send(404)
                inv = host.next_invocation()
                self._send(
                    200,
                    inv.payload,
                    {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": inv.id,
                        "Lambda-Runtime-Deadline-Ms": str(int((time.time() + INVOKE_TIMEOUT_S) * 1000)),
                        "Lambda-Runtime-Invoked-Function-Arn": function_arn(host.name),
                        "Lambda-Runtime-Trace-Id": "Root=1-00000000-000000000000000000000000;Sampled=0",
                    },
                )

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                m = re.match(r"^/2018-06-01/runtime/invocation/([^/]+)/(response|error)$", self.path)
                if m:
                    host.finish(m.group(1), body, m.group(2) == "error")
                    return self._send(202, b"{}")
                if self.path == "/2018-06-01/runtime/init/error":
                    sys.stderr.write(f"[{host.name}] init error: {body.decode(errors='replace')}\n")
                    return self._send(202, b"{}")
                self._send(404)

        self.server = ThreadingHTTPServer((HOST, 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def runtime_api(self) -> str:
        return f"{HOST}:{self.server.server_address[1]}"

    def next_invocation(self) -> Invocation:
        with self.lock:
            self.idle += 1
        inv = self.pending.get()
        with self.lock:
            self.idle -= 1
            self.inflight[inv.id] = inv
        return inv

    def finish(self, request_id: str, body: bytes, error: bool) -> None:
        with self.lock:
            inv = self.inflight.pop(request_id, None)
        if inv is not None:
            inv.body, inv.error = body, error
            inv.done.set()

    def _spawn_if_needed(self) -> None:
        with self.lock:
            self.procs = [p for p in self.procs if p.poll() is None]
            if self.idle > 0 or len(self.procs) >= MAX_INSTANCES:
                return
            if not os.path.exists(self.binary):
                raise FileNotFoundError(
                    f"function binary {self.binary} is missing; build it first (make build-functions)"
                )
            env = dict(self.env)
            env.update(
                AWS_LAMBDA_RUNTIME_API=self.runtime_api,
                AWS_LAMBDA_FUNCTION_NAME=self.name,
                AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
                AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
                AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{self.name}",
                AWS_LAMBDA_LOG_STREAM_NAME=f"emulator/{len(self.procs)}",
            )
            log = open(os.path.join(self.log_dir, f"{self.name}.log"), "ab")
            self.procs.append(subprocess.Popen([self.binary], env=env, stdout=log, stderr=subprocess.STDOUT))

    def invoke(self, payload: bytes) -> Invocation:
        inv = Invocation(payload)
        self._spawn_if_needed()
        self.pending.put(inv)
        deadline = time.time() + INVOKE_TIMEOUT_S
        while not inv.done.wait(0.2):
            with self.lock:
                alive = [p for p in self.procs if p.poll() is None]
            if not alive or time.time() > deadline:
                inv.error = True
                inv.body = json.dumps(
                    {"errorType": "Runtime.ExitError", "errorMessage": f"{self.name} exited or timed out"}
                ).encode()
                break
        return inv

    def terminate(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()

    def stop(self) -> None:
        self.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        self.server.shutdown()


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{HOME_REGION}:{ACCOUNT}:function:{name}"


# --------------------------------------------------------------------------
# The WSGI front: Lambda invocations, the call log, then moto.
# --------------------------------------------------------------------------

INVOKE_PATH = re.compile(r"^/2015-03-31/functions/([^/]+)/invocations$")
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/aws4_request")


def s3_action(environ: dict[str, Any]) -> str:
    """The S3 operation of a path-style REST request, as AWS names it (the
    common ones; anything else by method and path shape)."""
    method = environ.get("REQUEST_METHOD", "")
    path = environ.get("PATH_INFO", "").lstrip("/")
    has_key = "/" in path and path.split("/", 1)[1] != ""
    query = environ.get("QUERY_STRING", "")
    if has_key:
        return {"GET": "GetObject", "PUT": "PutObject", "HEAD": "HeadObject", "DELETE": "DeleteObject"}.get(
            method, f"{method} object"
        )
    if method == "GET":
        return "ListObjectsV2" if "list-type=2" in query else "ListObjects"
    return {"PUT": "CreateBucket", "HEAD": "HeadBucket", "DELETE": "DeleteBucket"}.get(method, f"{method} bucket")


class Front:
    def __init__(self, moto_app: Any, hosts: dict[str, FunctionHost]) -> None:
        self.moto_app = moto_app
        self.hosts = hosts
        self.calls: list[dict[str, str]] = []
        self.calls_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        m = INVOKE_PATH.match(path)
        if m and method == "POST":
            return self.invoke(urllib.parse.unquote(m.group(1)), environ, start_response)
        if path == "/_strongroom/calls":
            if method == "DELETE":
                with self.calls_lock:
                    self.calls.clear()
            with self.calls_lock:
                body = json.dumps(self.calls).encode()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if path == "/_strongroom/faults":
            return faults.control(environ, start_response)
        if path == "/_strongroom/copies":
            return copies.control(environ, start_response)
        if path == "/_strongroom/volume-content":
            return ebs_direct.control(environ, start_response)
        if path.startswith("/moto-api"):
            return self.moto_app(environ, start_response)
        call = self.log_call(environ)

        def mark(fault: str) -> None:
            with self.calls_lock:
                call["fault"] = fault

        return faults.serve(call, mark, environ, start_response, self.moto_app)

    def log_call(self, environ: dict[str, Any]) -> dict[str, str]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        if length:
            body = environ["wsgi.input"].read(length)
        elif environ.get("wsgi.input_terminated"):  # chunked: the server ends the stream
            body = environ["wsgi.input"].read()
            environ["CONTENT_LENGTH"] = str(len(body))
        else:
            body = b""
        environ["wsgi.input"] = io.BytesIO(body)
        auth = environ.get("HTTP_AUTHORIZATION", "")
        scope = CREDENTIAL_SCOPE.search(auth)
        region, service = (scope.group(1), scope.group(2)) if scope else ("?", "?")
        action = ""
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            action = target.rsplit(".", 1)[-1]
        elif service == "ebs":  # REST-JSON (patch 20): the operation is the method and path
            method, path = environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", "")
            action = ebs_direct.action_name(method, path) or f"{method} {path}"
        else:
            params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
            if not params.get("Action"):
                try:
                    params = urllib.parse.parse_qs(body.decode())
                except UnicodeDecodeError:
                    params = {}
            action = (params.get("Action") or [environ.get("REQUEST_METHOD", "") + " " + environ.get("PATH_INFO", "")])[0]
        if service == "s3":
            action = s3_action(environ)
        agent = environ.get("HTTP_USER_AGENT", "")
        declared = environ.get("HTTP_X_STRONGROOM_CLIENT", "")
        if declared in ("strongroom", "harness", "boto3"):
            client = declared  # check scripts calling as one of these
        elif "app/strongroom-tests" in agent:
            client = "harness"  # the Rust tests' own set-up and read-back calls
        elif "aws-sdk-rust" in agent:
            client = "strongroom"
        elif "boto3" in agent.lower() or "botocore" in agent.lower():
            client = "boto3"
        else:
            client = "other"
        call = {"service": service, "region": region, "action": action, "client": client}
        # Each function runs with AWS_SDK_UA_APP_ID set to its name (the SDK
        # puts it in its user agent as app/<name>): the log says which made the call.
        made_by = APP_ID.search(agent)
        if client == "strongroom" and made_by:
            call["function"] = made_by.group(1)
        with self.calls_lock:
            self.calls.append(call)
        return call

    def invoke(self, function: str, environ: dict[str, Any], start_response: Any) -> Any:
        name = function.split(":function:")[-1].split(":")[0]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        payload = environ["wsgi.input"].read(length) if length else b"{}"
        host = self.hosts.get(name)
        if host is None:
            body = json.dumps({"Type": "User", "message": f"Function not found: {name}"}).encode()
            start_response("404 Not Found", [("Content-Type", "application/json"), ("x-amzn-ErrorType", "ResourceNotFoundException"), ("Content-Length", str(len(body)))])
            return [body]
        inv = host.invoke(payload)
        headers = [("Content-Type", "application/json"), ("X-Amz-Executed-Version", "$LATEST"), ("Content-Length", str(len(inv.body)))]
        if inv.error:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        start_response("200 OK", headers)
        return [inv.body]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--functions-dir", required=True, help="directory holding the function binaries")
    ap.add_argument("--log-dir", default=None, help="where function logs go (default: a temp dir)")
    ap.add_argument("--exit-with-stdin", action="store_true", help="exit when stdin closes (test harnesses)")
    args = ap.parse_args()

    import tempfile

    from werkzeug.serving import make_server

    try:
        faults.FAULTS.configure(json.loads(os.environ.get("STRONGROOM_EMULATOR_FAULTS") or "{}"))
    except ValueError as e:
        sys.exit(f"STRONGROOM_EMULATOR_FAULTS: {e}")
    log_dir = args.log_dir or tempfile.mkdtemp(prefix="strongroom-emulator-")
    os.makedirs(log_dir, exist_ok=True)

    # Bind first: moto's Step Functions interpreter reads MOTO_PORT to find Lambda.
    placeholder: dict[str, Any] = {}

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        return placeholder["front"](environ, start_response)

    from moto.server import MotoRequestHandler  # noqa: E402  (import after env setup)

    server = make_server(HOST, args.port, app, threaded=True, request_handler=MotoRequestHandler)
    port = server.server_port
    os.environ["MOTO_PORT"] = str(port)
    endpoint = f"http://{HOST}:{port}"

    patch_moto()
    from moto.server import DomainDispatcherApplication, create_backend_app

    moto_app = DomainDispatcherApplication(create_backend_app)
    fn_env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    fn_env.update(
        AWS_ENDPOINT_URL=endpoint,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_REGION=HOME_REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_LAMBDA_LOG_FORMAT="JSON",
        STRONGROOM_BUCKET=RUNS_BUCKET,
    )
    hosts = {
        name: FunctionHost(name, os.path.join(args.functions_dir, name), {**fn_env, "AWS_SDK_UA_APP_ID": name}, log_dir)
        for name in FUNCTIONS
    }
    placeholder["front"] = Front(moto_app, hosts)

    threading.Thread(target=server.serve_forever, daemon=True).start()
    req = urllib.request.Request(
        f"{endpoint}/moto-api/config",
        data=json.dumps({"stepfunctions": {"execute_state_machine": True}}).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(req, timeout=30).read()
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name=HOME_REGION).create_bucket(Bucket=RUNS_BUCKET)
    print(f"READY {port} {log_dir}", flush=True)

    import signal

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # Exit on a signal, or (for test harnesses) when the parent closes stdin.
    if args.exit_with_stdin:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    for h in hosts.values():
        h.terminate()
    stoppers = [threading.Thread(target=h.stop) for h in hosts.values()]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join()
    server.shutdown()


if __name__ == "__main__":
    main()
