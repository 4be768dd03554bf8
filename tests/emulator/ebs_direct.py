"""Patch 20 of the emulator: the EBS direct APIs, over snapshots that hold data.

moto has the six EBS direct APIs, but as a toy: blocks of 512 bytes, no
checks of checksums or lengths, block tokens never checked, no paging, a
snapshot readable while ``pending``, and (above all) snapshots made by EC2
hold no data at all, so there is nothing to read. This module makes the
emulator do what AWS does (AWS's wording from the EBS direct APIs reference,
its user guide and its FAQ):

* **Volumes and snapshots hold data.** ``POST /_strongroom/volume-content``
  with ``{"region", "account" (default 123456789012), "volume_id", "image"}``
  makes the raw disk image at the absolute path ``image`` the volume's
  content (``"image": null`` empties it again); an image larger than the
  volume (``Size`` GiB) is refused with HTTP 400 naming the sizes, as are a
  relative path, a missing file and a volume that does not exist (404). A
  snapshot of the volume (EC2 ``CreateSnapshot``, ``CreateSnapshots``, the
  root volume's snapshot of ``CreateImage``) captures the content the volume
  has at that moment; a copy (``CopySnapshot``, within or across regions and
  accounts, patch 17's copies included; ``CopyImage``'s snapshot) carries its
  source's content; a volume made from a snapshot (``CreateVolume`` with
  ``SnapshotId``, ``RunInstances`` of an image, patch 19's restores) starts
  with the snapshot's content. The emulator keeps a reference to the image
  file, not a copy: test images are never changed once given (change one and
  every snapshot "of" it changes too).
* **512 KiB blocks.** "A block index is a logical index in units of 512 KiB
  blocks ... (logical offset of data/524288)": block *i* of a snapshot is
  bytes ``i * 524288`` to ``(i + 1) * 524288`` of its content (the image's
  last, partial block padded with zeros). Blocks that are all zeros are not
  in the snapshot: ``ListSnapshotBlocks`` "only returns block indexes and
  tokens of blocks that have data written" (FAQ), as a snapshot of a fresh
  volume holds only what was written to it. ``GetSnapshotBlock`` reads the
  one block asked for (a seek and a 512 KiB read; a large image is never
  loaded whole), and answers its bytes with ``x-amz-Data-Length: 524288``,
  ``x-amz-Checksum`` (base64 SHA256 of the bytes) and
  ``x-amz-Checksum-Algorithm: SHA256``. Which blocks of an image hold data is
  found once per image (skipping the holes of a sparse file) and kept.
* **Block tokens.** Each block of a snapshot has a token ("the identifying
  hash of a block within a snapshot", ``^[A-Za-z0-9+/=]+$``, here bound to
  the snapshot and the index); ``GetSnapshotBlock`` with a token that is not
  the one ``ListSnapshotBlocks`` / ``ListChangedBlocks`` gave for that
  snapshot and index, or for a block that holds no data, is
  ``ValidationException`` with ``Reason`` ``INVALID_BLOCK_TOKEN``.
  ``ExpiryTime`` is seven days on ("Block tokens are valid for seven days");
  tokens do not expire here.
* **Paging.** ``MaxResults`` is 100..10000 ("Valid Range: Minimum value of
  100. Maximum value of 10000"; more is ``ValidationException``
  ``INVALID_PARAMETER_VALUE``); less than 100 answers 100 ("If you submit a
  request with a MaxResult parameter value of under 100 ... the API will
  return at least 100 results"); without it, 10000 (the reference names no
  default). ``StartingBlockIndex`` starts the list at that index or the next
  one with data; ``NextToken`` is null on the last page, and "If you specify
  NextToken, then StartingBlockIndex is ignored". A next token is valid for
  60 minutes ("next tokens are valid for 60 minutes") and for the listing
  that made it; any other is ``ValidationException`` ``INVALID_PAGE_TOKEN``.
  Block indexes come "in numerical order".
* **ListChangedBlocks** "Returns information about the blocks that are
  different between two Amazon Elastic Block Store snapshots of the same
  volume/snapshot lineage": each ``ChangedBlocks`` entry has ``BlockIndex``,
  ``FirstBlockToken`` where the first snapshot has the block and
  ``SecondBlockToken`` where the second has it. A page covers the next
  ``MaxResults`` indexes with data in either snapshot, so a page can be empty
  and still have a ``NextToken``, as AWS's "The response can include one or
  more empty ChangedBlocks arrays" (and "The response can skip unwritten
  blocks in the snapshots"). Without ``FirstSnapshotId`` every block of the
  second snapshot is listed. Snapshots of different lineages (a lineage: a
  volume, the volumes made from its snapshots and their snapshots, copies, and
  ``StartSnapshot`` children of a ``ParentSnapshotId``) are
  ``ValidationException`` ``UNRELATED_SNAPSHOTS``.
* **StartSnapshot / PutSnapshotBlock / CompleteSnapshot.** ``StartSnapshot``
  "Creates a new Amazon EBS snapshot. The new snapshot enters the pending
  state": an EC2 snapshot, ``pending`` in ``DescribeSnapshots`` with the
  ``VolumeSize`` given (1..65536: "The maximum size is 65536 GiB", else
  ``INVALID_VOLUME_SIZE``), its ``Tags`` and ``Description``, and an
  arbitrary volume id (``vol-ffffffff``; for copies AWS says such an id
  "should not be used for any purpose"); ``ParentSnapshotId`` makes it start
  with the parent's blocks ("You can't specify ParentSnapshotId and
  Encrypted in the same request. If you specify both parameters, the request
  fails with ValidationException"); ``Encrypted`` / ``KmsKeyArn`` encrypt
  it; the same ``ClientToken`` answers the same snapshot, or
  ``ConflictException`` (HTTP 409) when the parameters differ ("The request
  uses the same client token as a previous, but non-identical request").
  ``PutSnapshotBlock`` writes one block: "The target snapshot must be in the
  pending state"; ``DataLength`` "Currently, the only supported size is
  524288 bytes"; the body must be exactly that long (AWS: "Failed to read
  block data", ``INVALID_PARAMETER_VALUE``); ``ChecksumAlgorithm`` ``SHA256``
  and ``Checksum`` the base64 SHA256 of the body ("It is validated against a
  checksum generated by Amazon EBS ... If the checksums do not correspond,
  the request fails": ``INVALID_PARAMETER_VALUE``); an index past the volume
  is ``INVALID_BLOCK``. HTTP 201, the checksum echoed. ``CompleteSnapshot``
  "Seals and completes the snapshot ... Completing the snapshot changes the
  status to completed. You cannot write new blocks to a snapshot after it
  has been completed": ``ChangedBlocksCount`` must be the number of blocks
  written, and an aggregated ``Checksum`` (``LINEAR``: "arrange the checksums
  for each written block in ascending order of their block index,
  concatenate them ..., and then generate the checksum on the entire string
  using the SHA256 algorithm"; the concatenation of the base64 strings or of
  the raw digests is accepted) must match; HTTP 202 ``completed``, and the
  EC2 snapshot is ``completed``. ``Timeout`` is not modelled.
* **Who may read what.** A snapshot the caller's account owns, or one
  another account shared with it (``createVolumePermission`` naming the
  account): AWS's EBS direct APIs read "snapshots" under IAM
  (``arn:aws:ec2:<region>::snapshot/*``, no account in the ARN) and warn that
  this may "give access to a user who is denied access to the same resource
  through the Amazon EC2 APIs, such as the CopySnapshot or CreateVolume
  actions"; AWS's documentation excludes only public snapshots. So: a
  snapshot that does not exist, or that another account owns and has not
  shared with the caller, is ``ResourceNotFoundException`` (HTTP 404,
  ``Reason`` ``SNAPSHOT_NOT_FOUND``: "The specified resource does not
  exist"); one shared only publicly (group ``all``) is
  ``AccessDeniedException`` (HTTP 403, ``UNAUTHORIZED_ACCOUNT``: "Amazon EBS
  direct APIs does not support public snapshots"); a shared snapshot
  encrypted with the other account's key that grants the caller nothing is
  ``AccessDeniedException`` ``DEPENDENCY_ACCESS_DENIED`` ("If the specified
  snapshot is encrypted, you must have permission to use the KMS key that
  was used to encrypt the snapshot"). Blocks are written only to the
  caller's own ``pending`` snapshots.
* **Only completed snapshots are read.** "Can a snapshot be accessed using
  the EBS direct APIs if it has a pending status? No. The snapshot can be
  accessed only if it has a completed status" (FAQ): a ``pending`` or
  ``error`` snapshot (a copy in flight, patch 17) is ``ValidationException``
  ``INVALID_SNAPSHOT_ID``; so is an archived one ("You can't use EBS direct
  APIs with archived snapshots"); and, to Strongroom, so is a snapshot that
  patch 10's ``pending_describes`` still shows it ``pending``.
* **Throttling** (switchable, patch 10's faults, Strongroom's calls only):
  ``ebs_direct_throttle_every`` = N makes every Nth call by Strongroom of an
  action in ``ebs_direct_throttle_actions`` (default ``["GetSnapshotBlock"]``)
  ``RequestThrottledException``, HTTP 400, ``Reason`` ``ACCOUNT_THROTTLED``
  ("The number of API requests has exceeded the maximum allowed API request
  throttling limit"; "You should always retry requests that receive ...
  ThrottlingException and RequestThrottledException client error
  responses"), before anything is done; its call-log entry has ``"fault":
  "throttled"``.

Errors are AWS's REST-JSON shape: the code in ``x-amzn-ErrorType``, a JSON
body ``{"Message": ..., "Reason": ...}``. The call log names every call
``ebs`` / its operation (``action_name``). Requests reach moto's EBS backend
as the Rust SDK signs them: moto's dispatcher picks the backend by the SigV4
credential scope's service name (``ebs``).
"""

from __future__ import annotations

import base64
import bisect
import errno
import hashlib
import hmac
import json
import os
import re
import threading
import time
from datetime import timedelta
from typing import Any, Callable

import faults

BLOCK_SIZE = 524_288
GIB = 1 << 30
DEFAULT_ACCOUNT = "123456789012"
MIN_RESULTS, MAX_RESULTS = 100, 10_000
MAX_VOLUME_GIB = 65_536
TOKEN_DAYS = 7
PAGE_TOKEN_SECONDS = 3600
DIRECT_VOLUME_ID = "vol-ffffffff"
SNAPSHOT_ID = re.compile(r"snap-[0-9a-f]+")
PATCHED = "_strongroom_ebs_direct"

_SECRET = os.urandom(32)  # block and page tokens are valid in this emulator only
_ZERO = bytes(BLOCK_SIZE)


# --------------------------------------------------------------------------
# Content: what a volume holds, and so what a snapshot of it captured.
# --------------------------------------------------------------------------


class Content:
    """A volume's data, by 512 KiB block. Immutable once a snapshot holds it
    (a ``StartSnapshot`` snapshot's is written to while it is ``pending``)."""

    def indices(self) -> list[int]:
        """The indexes of the blocks that hold data, ascending."""
        raise NotImplementedError

    def read(self, index: int) -> bytes | None:
        """Block `index` (524288 bytes), or None where it holds no data."""
        raise NotImplementedError

    def same_as(self, other: Content | None) -> bool:
        return self is other


_SCANS: dict[tuple[str, int, int], list[int]] = {}
_SCANS_LOCK = threading.Lock()


def _scan(path: str, size: int) -> list[int]:
    """The indexes of the blocks of `path` (its first `size` bytes) that are not
    all zeros. Holes of a sparse file are skipped without reading them."""
    found: list[int] = []
    seek_data = getattr(os, "SEEK_DATA", None)
    with open(path, "rb") as f:
        fd = f.fileno()
        offset = 0
        while offset < size:
            if seek_data is not None:
                try:
                    offset = os.lseek(fd, offset, seek_data)
                except OSError as e:
                    if e.errno == errno.ENXIO:  # only a hole is left
                        break
                    seek_data = None  # not supported here: read every block
            if offset >= size:
                break
            index = offset // BLOCK_SIZE
            f.seek(index * BLOCK_SIZE)
            block = f.read(min(BLOCK_SIZE, size - index * BLOCK_SIZE))
            if block != _ZERO[: len(block)]:
                found.append(index)
            offset = (index + 1) * BLOCK_SIZE
    return found


class ImageContent(Content):
    """A raw disk image on the emulator's file system (by reference)."""

    def __init__(self, path: str) -> None:
        stat = os.stat(path)
        self.path = path
        self.size = stat.st_size
        self.key = (path, stat.st_size, stat.st_mtime_ns)

    def indices(self) -> list[int]:
        with _SCANS_LOCK:
            found = _SCANS.get(self.key)
        if found is None:
            found = _scan(self.path, self.size)
            with _SCANS_LOCK:
                _SCANS[self.key] = found
        return found

    def read(self, index: int) -> bytes | None:
        start = index * BLOCK_SIZE
        if index < 0 or start >= self.size:
            return None
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(BLOCK_SIZE)
        if len(data) < BLOCK_SIZE:
            data += bytes(BLOCK_SIZE - len(data))
        return None if data == _ZERO else data

    def same_as(self, other: Content | None) -> bool:
        return isinstance(other, ImageContent) and other.key == self.key


class WrittenContent(Content):
    """Blocks written with ``PutSnapshotBlock``, over a parent snapshot's."""

    def __init__(self, parent: Content | None) -> None:
        self.parent = parent
        self.blocks: dict[int, bytes] = {}

    def indices(self) -> list[int]:
        below = set(self.parent.indices()) if self.parent is not None else set()
        return sorted(below | set(self.blocks))

    def read(self, index: int) -> bytes | None:
        if index in self.blocks:
            return self.blocks[index]
        return self.parent.read(index) if self.parent is not None else None


def content_of(resource: Any) -> Content | None:
    return getattr(resource, "_strongroom_content", None)


def lineage_of(resource: Any) -> str:
    return getattr(resource, "_strongroom_lineage", None) or resource.id


# --------------------------------------------------------------------------
# Errors, tokens, parameters.
# --------------------------------------------------------------------------


class Refusal(Exception):
    """An EBS direct API error, answered in AWS's REST-JSON form."""

    def __init__(self, code: str, status: int, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.message, self.reason = code, status, message, reason

    def response(self) -> tuple[str, dict[str, Any]]:
        body: dict[str, str] = {"Message": self.message}
        if self.reason:
            body["Reason"] = self.reason
        headers = {"status": self.status, "Content-Type": "application/json", "x-amzn-ErrorType": self.code}
        return json.dumps(body), headers


def invalid(reason: str, message: str) -> Refusal:
    return Refusal("ValidationException", 400, message, reason)


def not_found(snapshot_id: str) -> Refusal:
    return Refusal(
        "ResourceNotFoundException", 404, f"The snapshot '{snapshot_id}' does not exist.", "SNAPSHOT_NOT_FOUND"
    )


def _checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def block_token(snapshot_id: str, index: int) -> str:
    mac = hmac.new(_SECRET, f"block/{snapshot_id}/{index}".encode(), hashlib.sha256).digest()
    return base64.b64encode(b"\x00\x00\x01" + mac).decode()


def _page_token(listing: str, next_index: int) -> str:
    raw = json.dumps([listing, next_index, int(time.time())], separators=(",", ":")).encode()
    mac = hmac.new(_SECRET, raw, hashlib.sha256).digest()[:12]
    return base64.b64encode(mac + raw).decode()


def _page_start(token: str, listing: str) -> int:
    """The index a next token of `listing` resumes at."""
    try:
        raw = base64.b64decode(token.encode(), validate=True)
        mac, body = raw[:12], raw[12:]
        if not hmac.compare_digest(mac, hmac.new(_SECRET, body, hashlib.sha256).digest()[:12]):
            raise ValueError("forged")
        made_for, next_index, issued = json.loads(body)
    except (ValueError, TypeError):
        raise invalid("INVALID_PAGE_TOKEN", "The pagination token is not valid.") from None
    if made_for != listing:
        raise invalid("INVALID_PAGE_TOKEN", "The pagination token was issued for another request.")
    if time.time() - issued > PAGE_TOKEN_SECONDS:
        raise invalid("INVALID_PAGE_TOKEN", "The pagination token has expired.")
    return int(next_index)


def _integer(value: Any, name: str, reason: str = "INVALID_PARAMETER_VALUE") -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise invalid(reason, f"{name} must be an integer, got {value!r}.") from None


def _max_results(response: Any) -> int:
    wanted = _integer(response._get_param("MaxResults"), "MaxResults")
    if wanted is None:
        return MAX_RESULTS
    if wanted > MAX_RESULTS:
        raise invalid("INVALID_PARAMETER_VALUE", f"MaxResults must be at most {MAX_RESULTS}, got {wanted}.")
    return max(wanted, MIN_RESULTS)


def _start(response: Any, listing: str) -> int:
    token = response._get_param("NextToken")
    if token:
        return _page_start(token, listing)
    start = _integer(response._get_param("StartingBlockIndex"), "StartingBlockIndex")
    if start is not None and start < 0:
        raise invalid("INVALID_PARAMETER_VALUE", "StartingBlockIndex must be 0 or more.")
    return start or 0


def _expiry() -> Any:
    from moto.core.utils import utcnow

    return utcnow() + timedelta(days=TOKEN_DAYS)


def _grants_account(key_arn: str | None, account: str) -> bool:
    """Whether the KMS key `key_arn` lets `account` use it (its owner, or a grant)."""
    if not key_arn or not key_arn.startswith("arn:"):
        return True
    parts = key_arn.split(":")
    if parts[4] == account:
        return True
    from moto.kms import kms_backends

    try:
        key = kms_backends[parts[4]][parts[3]].describe_key(key_arn)
    except Exception:  # noqa: BLE001 - a key that does not exist grants nothing
        return False
    return any(f":{account}:" in g.grantee_principal for g in key.grants.values())


def _snapshot(account: str, region: str, snapshot_id: str | None) -> Any:
    """The snapshot `snapshot_id` as `account` may read it through the EBS direct
    APIs, or the Refusal AWS answers."""
    from moto.ec2.models import ec2_backends

    if not snapshot_id or not SNAPSHOT_ID.fullmatch(snapshot_id):
        raise invalid("INVALID_SNAPSHOT_ID", f"The snapshot ID '{snapshot_id}' is not valid.")
    snapshot = ec2_backends[account][region].snapshots.get(snapshot_id)
    if snapshot is None:
        for owner, regions in list(ec2_backends.items()):
            if owner == account:
                continue
            foreign = regions[region].snapshots.get(snapshot_id)
            if foreign is None:
                continue
            if account in foreign.create_volume_permission_userids:
                if foreign.encrypted and not _grants_account(foreign.kms_key_id, account):
                    raise Refusal(
                        "AccessDeniedException", 403,
                        f"The snapshot '{snapshot_id}' is encrypted with a KMS key that your account can't use.",
                        "DEPENDENCY_ACCESS_DENIED",
                    )
                snapshot = foreign
            elif "all" in foreign.create_volume_permission_groups:
                raise Refusal(
                    "AccessDeniedException", 403,
                    f"The snapshot '{snapshot_id}' is public: the EBS direct APIs do not support public snapshots.",
                    "UNAUTHORIZED_ACCOUNT",
                )
            break
    if snapshot is None:
        raise not_found(snapshot_id)
    if getattr(snapshot, "storage_tier", "standard") == "archive":
        raise invalid("INVALID_SNAPSHOT_ID", f"The snapshot '{snapshot_id}' is archived.")
    status = snapshot.status
    if faults.strongroom_call() and getattr(snapshot, "_strongroom_pending_left", 0) > 0:
        status = "pending"  # patch 10's pending_describes: Strongroom has not yet seen it completed
    if status != "completed":
        raise invalid(
            "INVALID_SNAPSHOT_ID", f"The snapshot '{snapshot_id}' is {status}: only a completed snapshot can be read."
        )
    return snapshot


def _own_pending(account: str, region: str, snapshot_id: str | None) -> Any:
    """A snapshot `account` started with StartSnapshot, still being written."""
    from moto.ec2.models import ec2_backends

    snapshot = ec2_backends[account][region].snapshots.get(snapshot_id or "")
    if snapshot is None or not getattr(snapshot, "_strongroom_direct", False):
        raise not_found(snapshot_id or "")
    if snapshot.status != "pending":
        raise invalid(
            "INVALID_SNAPSHOT_ID",
            f"The snapshot '{snapshot_id}' is {snapshot.status}: blocks are written to pending snapshots only.",
        )
    return snapshot


# --------------------------------------------------------------------------
# The six operations.
# --------------------------------------------------------------------------


def start_snapshot(self: Any) -> Any:
    from moto.core.responses import ActionResult
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.elastic_block_store import Snapshot, Volume
    from moto.ec2.utils import random_snapshot_id

    account, region = self.current_account, self.region
    size = _integer(self._get_param("VolumeSize"), "VolumeSize", "INVALID_VOLUME_SIZE")
    if size is None or not 1 <= size <= MAX_VOLUME_GIB:
        raise invalid("INVALID_VOLUME_SIZE", f"VolumeSize must be 1 to {MAX_VOLUME_GIB} GiB, got {size}.")
    parent_id = self._get_param("ParentSnapshotId")
    encrypted = str(self._get_param("Encrypted", False)).lower() == "true"
    kms_key_arn = self._get_param("KmsKeyArn")
    tags = self._get_param("Tags") or []
    description = self._get_param("Description") or ""
    token = self._get_param("ClientToken")
    if parent_id and encrypted:
        raise invalid(
            "INVALID_PARAMETER_VALUE", "You can't specify ParentSnapshotId and Encrypted in the same request."
        )
    ec2 = ec2_backends[account][region]
    asked = json.dumps([size, parent_id, encrypted, kms_key_arn, tags, description], sort_keys=True)
    tokens = ec2.__dict__.setdefault("_strongroom_direct_tokens", {})
    if token and token in tokens:
        made_id, made_asked = tokens[token]
        if made_asked != asked:
            raise Refusal(
                "ConflictException", 409, "The request uses the same client token as a previous, but non-identical request."
            )
        return ActionResult(_started(ec2.snapshots[made_id]))
    parent = _snapshot(account, region, parent_id) if parent_id else None
    if parent is not None and size < parent.volume_size:
        raise invalid(
            "INVALID_VOLUME_SIZE",
            f"VolumeSize {size} GiB is smaller than the parent snapshot's {parent.volume_size} GiB.",
        )
    if kms_key_arn or (parent is not None and parent.encrypted):
        encrypted = True
    if encrypted and not kms_key_arn:
        kms_key_arn = parent.kms_key_id if parent is not None else None
        if not kms_key_arn:
            if not ec2.default_kms_key_id:
                ec2._create_default_encryption_key()
            kms_key_arn = ec2.default_kms_key_id
    volume = Volume(ec2, DIRECT_VOLUME_ID, size, None)
    snapshot_id = random_snapshot_id()
    volume._strongroom_lineage = lineage_of(parent) if parent is not None else snapshot_id
    snapshot = Snapshot(ec2, snapshot_id, volume, description, encrypted=encrypted, kms_key_id=kms_key_arn)
    snapshot.status = "pending"
    snapshot._strongroom_direct = True
    snapshot._strongroom_parent = parent_id
    snapshot._strongroom_content = WrittenContent(content_of(parent))
    snapshot._strongroom_lineage = volume._strongroom_lineage
    if tags:
        ec2.create_tags([snapshot_id], {t["Key"]: t.get("Value", "") for t in tags})
    ec2.snapshots[snapshot_id] = snapshot
    if token:
        tokens[token] = (snapshot_id, asked)
    return ActionResult(_started(snapshot))


def _started(snapshot: Any) -> dict[str, Any]:
    tags = [{"Key": t["key"], "Value": t["value"]} for t in snapshot.get_tags()]
    answer: dict[str, Any] = {
        "SnapshotId": snapshot.id,
        "OwnerId": snapshot.owner_id,
        "Status": snapshot.status,
        "StartTime": snapshot.start_time,
        "VolumeSize": snapshot.volume_size,
        "BlockSize": BLOCK_SIZE,
        "SseType": ("sse-kms" if snapshot.kms_key_id else "sse-ebs") if snapshot.encrypted else "none",
    }
    if tags:
        answer["Tags"] = tags
    if snapshot.description:
        answer["Description"] = snapshot.description
    if getattr(snapshot, "_strongroom_parent", None):
        answer["ParentSnapshotId"] = snapshot._strongroom_parent
    if snapshot.kms_key_id:
        answer["KmsKeyArn"] = snapshot.kms_key_id
    return answer


def put_snapshot_block(self: Any) -> Any:
    snapshot = _own_pending(self.current_account, self.region, self._get_param("SnapshotId"))
    index = _integer(self._get_param("BlockIndex"), "BlockIndex", "INVALID_BLOCK")
    if index is None or index < 0 or index * BLOCK_SIZE >= snapshot.volume_size * GIB:
        raise invalid("INVALID_BLOCK", f"Block index {index} is outside the {snapshot.volume_size} GiB volume.")
    algorithm = self._get_param("ChecksumAlgorithm")
    if algorithm != "SHA256":
        raise invalid("INVALID_PARAMETER_VALUE", "The only supported checksum algorithm is SHA256.")
    length = _integer(self._get_param("DataLength"), "DataLength")
    if length != BLOCK_SIZE:
        raise invalid("INVALID_PARAMETER_VALUE", f"DataLength must be {BLOCK_SIZE}, got {length}.")
    data = self.raw_body if isinstance(self.raw_body, bytes) else (self.raw_body or "").encode()
    if len(data) != BLOCK_SIZE:
        raise invalid("INVALID_PARAMETER_VALUE", "Failed to read block data")
    checksum = _checksum(data)
    if self._get_param("Checksum") != checksum:
        raise invalid("INVALID_PARAMETER_VALUE", "The checksum of the block data does not match x-amz-Checksum.")
    snapshot._strongroom_content.blocks[index] = data
    return "{}", {
        "status": 201, "Content-Type": "application/json",
        "x-amz-Checksum": checksum, "x-amz-Checksum-Algorithm": "SHA256",
    }


def complete_snapshot(self: Any) -> Any:
    from moto.core.responses import ActionResult

    snapshot = _own_pending(self.current_account, self.region, self._get_param("SnapshotId"))
    written: dict[int, bytes] = snapshot._strongroom_content.blocks
    count = _integer(self._get_param("ChangedBlocksCount"), "ChangedBlocksCount")
    if count != len(written):
        raise invalid(
            "INVALID_PARAMETER_VALUE",
            f"ChangedBlocksCount is {count}, but {len(written)} blocks were written to the snapshot.",
        )
    aggregate = self._get_param("Checksum")
    if aggregate:
        if self._get_param("ChecksumAlgorithm") not in (None, "SHA256") or self._get_param(
            "ChecksumAggregationMethod"
        ) not in (None, "LINEAR"):
            raise invalid("INVALID_PARAMETER_VALUE", "Only the SHA256 algorithm and LINEAR aggregation are supported.")
        digests = [hashlib.sha256(written[i]).digest() for i in sorted(written)]
        accepted = {
            _checksum(b"".join(digests)),
            _checksum("".join(base64.b64encode(d).decode() for d in digests).encode()),
        }
        if aggregate not in accepted:
            raise invalid("INVALID_PARAMETER_VALUE", "The aggregated checksum does not match the blocks written.")
    snapshot.status = "completed"
    return ActionResult({"Status": "completed"})


def list_snapshot_blocks(self: Any) -> Any:
    from moto.core.responses import ActionResult

    snapshot = _snapshot(self.current_account, self.region, self._get_param("SnapshotId"))
    listing = f"blocks/{snapshot.id}"
    limit, start = _max_results(self), _start(self, listing)
    content = content_of(snapshot)
    indices = content.indices() if content is not None else []
    rest = indices[bisect.bisect_left(indices, start):]
    answer: dict[str, Any] = {
        "Blocks": [{"BlockIndex": i, "BlockToken": block_token(snapshot.id, i)} for i in rest[:limit]],
        "ExpiryTime": _expiry(),
        "VolumeSize": snapshot.volume_size,
        "BlockSize": BLOCK_SIZE,
    }
    if len(rest) > limit:
        answer["NextToken"] = _page_token(listing, rest[limit])
    return ActionResult(answer)


def list_changed_blocks(self: Any) -> Any:
    from moto.core.responses import ActionResult

    account, region = self.current_account, self.region
    second = _snapshot(account, region, self._get_param("SecondSnapshotId"))
    first_id = self._get_param("FirstSnapshotId")
    first = _snapshot(account, region, first_id) if first_id else None
    if first is not None and lineage_of(first) != lineage_of(second):
        raise invalid(
            "UNRELATED_SNAPSHOTS",
            f"The snapshots '{first.id}' and '{second.id}' are not of the same volume/snapshot lineage.",
        )
    listing = f"changed/{first.id if first is not None else ''}/{second.id}"
    limit, start = _max_results(self), _start(self, listing)
    a, b = content_of(first), content_of(second)
    in_a = set(a.indices()) if a is not None else set()
    in_b = set(b.indices()) if b is not None else set()
    union = sorted(in_a | in_b) if first is not None else sorted(in_b)
    rest = union[bisect.bisect_left(union, start):]
    same = a is not None and a.same_as(b)
    changed = []
    for i in rest[:limit]:
        if first is not None and i in in_a and i in in_b and (same or a.read(i) == b.read(i)):
            continue
        entry: dict[str, Any] = {"BlockIndex": i}
        if first is not None and i in in_a:
            entry["FirstBlockToken"] = block_token(first.id, i)
        if i in in_b:
            entry["SecondBlockToken"] = block_token(second.id, i)
        changed.append(entry)
    answer: dict[str, Any] = {
        "ChangedBlocks": changed,
        "ExpiryTime": _expiry(),
        "VolumeSize": second.volume_size,
        "BlockSize": BLOCK_SIZE,
    }
    if len(rest) > limit:
        answer["NextToken"] = _page_token(listing, rest[limit])
    return ActionResult(answer)


def get_snapshot_block(self: Any) -> Any:
    snapshot = _snapshot(self.current_account, self.region, self._get_param("SnapshotId"))
    index = _integer(self._get_param("BlockIndex"), "BlockIndex", "INVALID_BLOCK_TOKEN")
    token = self._get_param("BlockToken") or ""
    content = content_of(snapshot)
    if index is None or not hmac.compare_digest(token, block_token(snapshot.id, index)):
        raise invalid("INVALID_BLOCK_TOKEN", f"The block token is not valid for block {index} of '{snapshot.id}'.")
    data = content.read(index) if content is not None else None
    if data is None:
        raise invalid("INVALID_BLOCK_TOKEN", f"Block {index} of '{snapshot.id}' holds no data.")
    return data, {
        "status": 200,
        "Content-Type": "application/octet-stream",
        "x-amz-Data-Length": str(len(data)),
        "x-amz-Checksum": _checksum(data),
        "x-amz-Checksum-Algorithm": "SHA256",
    }


OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "StartSnapshot": start_snapshot,
    "PutSnapshotBlock": put_snapshot_block,
    "CompleteSnapshot": complete_snapshot,
    "ListSnapshotBlocks": list_snapshot_blocks,
    "ListChangedBlocks": list_changed_blocks,
    "GetSnapshotBlock": get_snapshot_block,
}


def _served(action: str, operation: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`operation` as moto's EBSResponse method: throttled when the faults say
    so, and every Refusal answered as AWS answers it."""

    def method(self: Any) -> Any:
        try:
            if faults.strongroom_call() and faults.FAULTS.ebs_direct_throttled(action):
                faults.CURRENT.fault = "throttled"
                raise Refusal(
                    "RequestThrottledException", 400,
                    "The number of API requests has exceeded the maximum allowed API request throttling limit.",
                    "ACCOUNT_THROTTLED",
                )
            return operation(self)
        except Refusal as refusal:
            return refusal.response()

    method.__name__ = operation.__name__
    return method


def action_name(method: str, path: str) -> str | None:
    """The EBS direct API operation of a REST request, as AWS names it (None
    for a path that is not one of them)."""
    parts = path.strip("/").split("/")
    if not parts or parts[0] != "snapshots":
        return None
    if len(parts) == 1 and method == "POST":
        return "StartSnapshot"
    if len(parts) == 3 and parts[1] == "completion" and method == "POST":
        return "CompleteSnapshot"
    if len(parts) == 3 and parts[2] == "blocks" and method == "GET":
        return "ListSnapshotBlocks"
    if len(parts) == 3 and parts[2] == "changedblocks" and method == "GET":
        return "ListChangedBlocks"
    if len(parts) == 4 and parts[2] == "blocks":
        return {"GET": "GetSnapshotBlock", "PUT": "PutSnapshotBlock"}.get(method)
    return None


# --------------------------------------------------------------------------
# POST /_strongroom/volume-content
# --------------------------------------------------------------------------


def set_volume_content(raw: Any) -> dict[str, Any]:
    """Makes an image file a volume's content; ValueError (400) or LookupError
    (404) says what is wrong."""
    from moto.ec2.models import ec2_backends

    if not isinstance(raw, dict):
        raise ValueError("the body is a JSON object: {region, account, volume_id, image}")
    unknown = set(raw) - {"region", "account", "volume_id", "image"}
    if unknown:
        raise ValueError(f"unknown fields: {sorted(unknown)}")
    region, volume_id = raw.get("region"), raw.get("volume_id")
    account = raw.get("account") or DEFAULT_ACCOUNT
    image = raw.get("image")
    for name, value in (("region", region), ("volume_id", volume_id), ("account", account)):
        if not isinstance(value, str) or not value:
            raise ValueError(f"{name} must be a non-empty string")
    if image is not None and (not isinstance(image, str) or not os.path.isabs(image)):
        raise ValueError(f"image must be an absolute path (or null), got {image!r}")
    try:
        backend = ec2_backends[account][region]
    except KeyError:
        raise ValueError(f"unknown region {region!r} or account {account!r}") from None
    volume = backend.volumes.get(volume_id)
    if volume is None:
        raise LookupError(f"volume {volume_id} does not exist in account {account}, region {region}")
    if image is None:
        volume._strongroom_content = None
        return {"region": region, "account": account, "volume_id": volume_id, "image": None, "bytes": 0}
    if not os.path.isfile(image):
        raise ValueError(f"image {image} is not a file")
    content = ImageContent(image)
    if content.size > volume.size * GIB:
        raise ValueError(
            f"image {image} is {content.size} bytes, larger than volume {volume_id} "
            f"({volume.size} GiB = {volume.size * GIB} bytes)"
        )
    volume._strongroom_content = content
    return {"region": region, "account": account, "volume_id": volume_id, "image": image, "bytes": content.size}


def control(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``POST /_strongroom/volume-content``: sets a volume's content."""
    status = "200 OK"
    if environ.get("REQUEST_METHOD") != "POST":
        status, payload = "405 Method Not Allowed", {"error": "POST {region, account, volume_id, image}"}
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        try:
            payload = set_volume_content(json.loads(environ["wsgi.input"].read(length) or b"null"))
        except LookupError as e:
            status, payload = "404 Not Found", {"error": str(e)}
        except (ValueError, OSError) as e:  # json.JSONDecodeError is a ValueError
            status, payload = "400 Bad Request", {"error": str(e)}
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# --------------------------------------------------------------------------
# moto: content through volumes, snapshots, copies and images.
# --------------------------------------------------------------------------


def _source_snapshot(region: str, snapshot_id: str) -> Any:
    from moto.ec2.models import ec2_backends

    for _, regions in list(ec2_backends.items()):
        found = regions[region].snapshots.get(snapshot_id)
        if found is not None:
            return found
    return None


def patch_moto_ebs_direct() -> None:
    """Patch 20: installs the EBS direct APIs and snapshot content (once)."""
    from moto.ebs.responses import EBSResponse
    from moto.ec2.models.amis import Ami
    from moto.ec2.models.elastic_block_store import EBSBackend, Snapshot, Volume

    if getattr(EBSResponse, PATCHED, False):
        return
    setattr(EBSResponse, PATCHED, True)

    for action, operation in OPERATIONS.items():
        setattr(EBSResponse, operation.__name__, _served(action, operation))

    volume_init = Volume.__init__

    def volume_from_snapshot(self: Any, *args: Any, **kwargs: Any) -> None:
        volume_init(self, *args, **kwargs)
        snapshot_id = getattr(self, "snapshot_id", None)
        source = self.ec2_backend.snapshots.get(snapshot_id) if snapshot_id else None
        self._strongroom_content = content_of(source)
        self._strongroom_lineage = lineage_of(source) if source is not None else self.id

    snapshot_init = Snapshot.__init__

    def snapshot_of_volume(self: Any, *args: Any, **kwargs: Any) -> None:
        snapshot_init(self, *args, **kwargs)
        volume = getattr(self, "volume", None)
        self._strongroom_content = content_of(volume)
        self._strongroom_lineage = lineage_of(volume) if volume is not None else self.id

    copy_snapshot = EBSBackend.copy_snapshot  # patch 17's

    def copy_with_content(self: Any, source_snapshot_id: str, source_region: str, *args: Any, **kwargs: Any) -> Any:
        made = copy_snapshot(self, source_snapshot_id, source_region, *args, **kwargs)
        source = _source_snapshot(source_region, source_snapshot_id)
        if source is not None:
            made._strongroom_content = content_of(source)
            made._strongroom_lineage = lineage_of(source)
        return made

    ami_init = Ami.__init__

    def image_with_content(self: Any, *args: Any, **kwargs: Any) -> None:
        ami_init(self, *args, **kwargs)
        snapshot = getattr(self, "ebs_snapshot", None)
        if snapshot is None:
            return
        instance = kwargs.get("instance", args[2] if len(args) > 2 else None)
        source_ami = kwargs.get("source_ami", args[3] if len(args) > 3 else None)
        origin: Any = None
        if instance is not None:  # CreateImage: the root volume
            for device, mapping in instance.get_block_device_mapping:
                if device == instance.root_device_name:
                    origin = instance.ec2_backend.volumes.get(mapping.volume_id)
        elif source_ami is not None:  # CopyImage: the source image's snapshot
            origin = getattr(source_ami, "ebs_snapshot", None)
        if origin is not None:
            snapshot._strongroom_content = content_of(origin)
            snapshot._strongroom_lineage = lineage_of(origin)

    Volume.__init__ = volume_from_snapshot  # type: ignore[method-assign]
    Snapshot.__init__ = snapshot_of_volume  # type: ignore[method-assign]
    EBSBackend.copy_snapshot = copy_with_content
    Ami.__init__ = image_with_content  # type: ignore[method-assign]
