#!/usr/bin/env python3
"""Checks the emulator's patch 20 (the EBS direct APIs over snapshots that
hold data, tests/emulator/ebs_direct.py) through boto3's ``ebs`` client.

Starts its own emulator (no function binaries needed), makes small raw disk
images in a temporary directory, gives them to volumes with
``POST /_strongroom/volume-content``, and reads them back through EC2
snapshots, copies, images and shares, as Strongroom would. Calls as
Strongroom carry the header ``X-Strongroom-Client: strongroom`` (the only
calls patch 10's faults touch); calls as the harness carry
``app/strongroom-tests``. No retries: every ClientError is what the emulator
answered.

Usage: ``check_ebs_direct.py`` (from any directory). Exits non-zero if a check fails.
"""

from __future__ import annotations

import base64
import hashlib
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from check_faults import Check  # noqa: E402
from client import ACCOUNT, Emulator  # noqa: E402

BS = 524_288
GIB = 1 << 30
OTHER = "210987654321"
REGION, ELSEWHERE = "us-east-1", "us-west-2"


def checksum(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def block_bytes(seed: int) -> bytes:
    """A 512 KiB block no other seed makes."""
    return hashlib.sha256(str(seed).encode()).digest() * (BS // 32)


class EbsCheck:
    def __init__(self, check: Check, workdir: str) -> None:
        self.check = check
        self.dir = workdir
        self.images = 0

    # -- plumbing ----------------------------------------------------------------

    def client(self, service: str, who: str = "strongroom", region: str = REGION, account: str | None = None,
               validate: bool = True) -> Any:
        c = self.check.client(service, who, region)
        if not validate:  # send what botocore would refuse (the Rust SDK checks no ranges)
            c = boto3.client(
                service, endpoint_url=self.check.endpoint, region_name=region, aws_access_key_id="testing",
                aws_secret_access_key="testing",
                config=Config(retries={"total_max_attempts": 1}, parameter_validation=False),
            )
            c.meta.events.register(
                "request-created", lambda request, **_: request.headers.__setitem__("X-Strongroom-Client", who)
            )
        if account:
            c.meta.events.register(
                "before-sign", lambda request, **_: request.headers.__setitem__("x-moto-account-id", account)
            )
        return c

    def image(self, blocks: dict[int, bytes], size: int) -> str:
        """A sparse raw image of `size` bytes with `blocks` written at their indexes."""
        self.images += 1
        path = os.path.join(self.dir, f"image-{self.images}.raw")
        with open(path, "wb") as f:
            f.truncate(size)
            for index, data in blocks.items():
                f.seek(index * BS)
                f.write(data)
        return path

    def set_content(self, volume_id: str, image: str | None, region: str = REGION,
                    account: str | None = None) -> tuple[int, Any]:
        body: dict[str, Any] = {"region": region, "volume_id": volume_id, "image": image}
        if account:
            body["account"] = account
        return self.check.http("POST", "/_strongroom/volume-content", body)

    def volume_with(self, blocks: dict[int, bytes], size_gib: int = 1, image_size: int = 3 << 20,
                    region: str = REGION, account: str | None = None) -> str:
        ec2 = self.client("ec2", "harness", region, account)
        volume = ec2.create_volume(AvailabilityZone=f"{region}a", Size=size_gib)["VolumeId"]
        status, answer = self.set_content(volume, self.image(blocks, image_size), region, account)
        assert status == 200, (status, answer)
        return volume

    def listed(self, ebs: Any, snapshot_id: str, **kwargs: Any) -> dict[int, str]:
        """Every block of a snapshot, index -> token, through every page."""
        found: dict[int, str] = {}
        token = None
        while True:
            page = ebs.list_snapshot_blocks(SnapshotId=snapshot_id, **kwargs, **({"NextToken": token} if token else {}))
            assert page["BlockSize"] == BS, page
            indexes = [b["BlockIndex"] for b in page["Blocks"]]
            assert indexes == sorted(indexes), indexes
            found.update({b["BlockIndex"]: b["BlockToken"] for b in page["Blocks"]})
            token = page.get("NextToken")
            if not token:
                return found

    def read(self, ebs: Any, snapshot_id: str, expected: dict[int, bytes]) -> None:
        """The snapshot's blocks are exactly `expected` (index -> the data at its start)."""
        blocks = self.listed(ebs, snapshot_id)
        assert sorted(blocks) == sorted(expected), (sorted(blocks), sorted(expected))
        for index, token in blocks.items():
            got = ebs.get_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockToken=token)
            data = got["BlockData"].read()
            want = expected[index] + bytes(BS - len(expected[index]))
            assert len(data) == BS and got["DataLength"] == BS, (index, len(data), got["DataLength"])
            assert data == want, f"block {index} of {snapshot_id} differs"
            assert got["Checksum"] == checksum(data) and got["ChecksumAlgorithm"] == "SHA256", got

    def refused(self, call: Callable[[], Any], code: str, status: int, reason: str | None, what: str) -> None:
        try:
            call()
        except ClientError as e:
            got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e.response.get("Reason"))
            assert got == (code, status, reason), f"{what}: expected {(code, status, reason)}, got {got}"
            return
        raise AssertionError(f"{what}: expected {code}, the call succeeded")

    # -- sections ----------------------------------------------------------------

    def content_endpoint(self) -> None:
        ec2 = self.client("ec2", "harness")
        volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
        too_big = self.image({0: b"x"}, GIB + BS)
        status, answer = self.set_content(volume, too_big)
        assert status == 400 and "larger than volume" in answer["error"] and str(GIB + BS) in answer["error"], answer
        status, answer = self.set_content(volume, "relative/image.raw")
        assert status == 400 and "absolute" in answer["error"], answer
        status, answer = self.set_content(volume, os.path.join(self.dir, "missing.raw"))
        assert status == 400 and "not a file" in answer["error"], answer
        status, answer = self.set_content("vol-00000000000000000", self.image({0: b"x"}, BS))
        assert status == 404 and "vol-00000000000000000" in answer["error"], answer
        status, answer = self.check.http("POST", "/_strongroom/volume-content", {"region": REGION, "volum_id": volume})
        assert status == 400 and "unknown" in answer["error"], answer
        exact = self.image({0: b"x"}, GIB)  # exactly the volume's size is fine
        status, answer = self.set_content(volume, exact)
        assert status == 200 and answer == {
            "region": REGION, "account": ACCOUNT, "volume_id": volume, "image": exact, "bytes": GIB,
        }, answer

    def snapshot_reads(self) -> None:
        """CreateSnapshot of a 3 MiB image with data in blocks 0, 2 and 5."""
        data = {0: b"\x01" * 1000, 2: block_bytes(2), 5: b"\x05" + bytes(BS - 2) + b"\x05"}
        volume = self.volume_with(data)
        ec2, ebs = self.client("ec2", "harness"), self.client("ebs")
        snap = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        page = ebs.list_snapshot_blocks(SnapshotId=snap)
        assert [b["BlockIndex"] for b in page["Blocks"]] == [0, 2, 5], page["Blocks"]
        assert page["VolumeSize"] == 1 and page["BlockSize"] == BS and "NextToken" not in page, page
        days = (page["ExpiryTime"].timestamp() - time.time()) / 86400
        assert 6.9 < days <= 7, page["ExpiryTime"]
        self.read(ebs, snap, data)
        # StartingBlockIndex: from that index or the next with data.
        page = ebs.list_snapshot_blocks(SnapshotId=snap, StartingBlockIndex=1)
        assert [b["BlockIndex"] for b in page["Blocks"]] == [2, 5], page["Blocks"]
        tokens = {b["BlockIndex"]: b["BlockToken"] for b in page["Blocks"]}
        # Wrong tokens, a block without data, a missing snapshot.
        self.refused(lambda: ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=5, BlockToken=tokens[2]),
                     "ValidationException", 400, "INVALID_BLOCK_TOKEN", "another block's token")
        self.refused(lambda: ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=1, BlockToken=tokens[2]),
                     "ValidationException", 400, "INVALID_BLOCK_TOKEN", "a block without data")
        self.refused(lambda: ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=2, BlockToken="AAAB" + "A" * 40),
                     "ValidationException", 400, "INVALID_BLOCK_TOKEN", "a made-up token")
        missing = "snap-0123456789abcdef0"
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=missing),
                     "ResourceNotFoundException", 404, "SNAPSHOT_NOT_FOUND", "a missing snapshot")
        self.refused(lambda: ebs.get_snapshot_block(SnapshotId=missing, BlockIndex=0, BlockToken=tokens[2]),
                     "ResourceNotFoundException", 404, "SNAPSHOT_NOT_FOUND", "a block of a missing snapshot")
        # A snapshot captures the content of its moment; a volume made from it starts with it.
        self.set_content(volume, self.image({7: b"\x07"}, 4 << 20))
        later = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        self.read(ebs, snap, data)
        self.read(ebs, later, {7: b"\x07"})
        restored = ec2.create_volume(AvailabilityZone="us-east-1b", SnapshotId=snap)["VolumeId"]
        self.read(ebs, ec2.create_snapshot(VolumeId=restored)["SnapshotId"], data)
        empty = ec2.create_volume(AvailabilityZone="us-east-1a", Size=2)["VolumeId"]
        page = ebs.list_snapshot_blocks(SnapshotId=ec2.create_snapshot(VolumeId=empty)["SnapshotId"])
        assert page["Blocks"] == [] and page["VolumeSize"] == 2, page
        # While patch 10 shows a new snapshot pending to Strongroom, Strongroom cannot read it.
        self.check.faults({"pending_describes": 1})
        pending = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=pending),
                     "ValidationException", 400, "INVALID_SNAPSHOT_ID", "a snapshot Strongroom sees pending")
        self.client("ebs", "harness").list_snapshot_blocks(SnapshotId=pending)  # the harness sees the truth
        assert self.client("ec2").describe_snapshots(SnapshotIds=[pending])["Snapshots"][0]["State"] == "pending"
        self.read(ebs, pending, {7: b"\x07"})
        self.check.faults({})
        # Archived snapshots cannot be read.
        ec2.modify_snapshot_tier(SnapshotId=later, StorageTier="archive")
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=later),
                     "ValidationException", 400, "INVALID_SNAPSHOT_ID", "an archived snapshot")

    def paging(self) -> None:
        """A sparse 1 GiB image with one byte in each of 250 blocks."""
        indexes = [i * 7 + 3 for i in range(250)]
        volume = self.volume_with({i: bytes([i % 251 + 1]) for i in indexes}, 1, GIB)
        snap = self.client("ec2", "harness").create_snapshot(VolumeId=volume)["SnapshotId"]
        ebs = self.client("ebs")
        pages, token = [], None
        while True:
            page = ebs.list_snapshot_blocks(SnapshotId=snap, MaxResults=100, **({"NextToken": token} if token else {}))
            pages.append([b["BlockIndex"] for b in page["Blocks"]])
            token = page.get("NextToken")
            if not token:
                break
        assert [len(p) for p in pages] == [100, 100, 50] and sum(pages, []) == indexes, [len(p) for p in pages]
        first = ebs.list_snapshot_blocks(SnapshotId=snap, MaxResults=100)
        # NextToken wins over StartingBlockIndex.
        page = ebs.list_snapshot_blocks(SnapshotId=snap, MaxResults=100, NextToken=first["NextToken"],
                                        StartingBlockIndex=0)
        assert [b["BlockIndex"] for b in page["Blocks"]] == indexes[100:200], page["Blocks"][:3]
        unchecked = self.client("ebs", validate=False)
        page = unchecked.list_snapshot_blocks(SnapshotId=snap, MaxResults=5)
        assert len(page["Blocks"]) == 100, "MaxResults under 100 answers 100"
        self.refused(lambda: unchecked.list_snapshot_blocks(SnapshotId=snap, MaxResults=20000),
                     "ValidationException", 400, "INVALID_PARAMETER_VALUE", "MaxResults over 10000")
        assert len(ebs.list_snapshot_blocks(SnapshotId=snap)["Blocks"]) == 250, "default MaxResults"
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=snap, NextToken="bm90LWEtdG9rZW4="),
                     "ValidationException", 400, "INVALID_PAGE_TOKEN", "a made-up page token")
        other = self.client("ec2", "harness").create_snapshot(VolumeId=volume)["SnapshotId"]
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=other, NextToken=first["NextToken"]),
                     "ValidationException", 400, "INVALID_PAGE_TOKEN", "another snapshot's page token")
        # The last block of the 1 GiB image reads alone.
        last = self.image({2047: b"\xff" * 10}, GIB)
        self.set_content(volume, last)
        snap = self.client("ec2", "harness").create_snapshot(VolumeId=volume)["SnapshotId"]
        started = time.monotonic()
        self.read(ebs, snap, {2047: b"\xff" * 10})
        assert time.monotonic() - started < 5, "reading one block of a 1 GiB image took too long"

    def copies_images_launches(self) -> None:
        data = {1: block_bytes(11), 4: b"\x04" * 4096}
        volume = self.volume_with(data)
        ec2, ebs = self.client("ec2", "harness"), self.client("ebs")
        snap = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        self.set_content(volume, None)  # the copy carries the snapshot's content, not the volume's now
        # CopySnapshot to another region: pending until Strongroom's describe (patch 17), then readable there.
        west_ec2, west_ebs = self.client("ec2", region=ELSEWHERE), self.client("ebs", region=ELSEWHERE)
        copy = west_ec2.copy_snapshot(SourceSnapshotId=snap, SourceRegion=REGION)["SnapshotId"]
        self.refused(lambda: west_ebs.list_snapshot_blocks(SnapshotId=copy),
                     "ValidationException", 400, "INVALID_SNAPSHOT_ID", "a copy still pending")
        for _ in range(5):
            state = west_ec2.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]["State"]
            if state == "completed":
                break
        assert state == "completed", state
        self.read(west_ebs, copy, data)
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=copy),
                     "ResourceNotFoundException", 404, "SNAPSHOT_NOT_FOUND", "a snapshot of another region")
        # CreateImage: the root volume's content; CopyImage: its source's.
        self.set_content(volume, self.image(data, 3 << 20))
        instance = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1,
                                     BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}}])
        instance_id = instance["Instances"][0]["InstanceId"]
        described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
        root = next(m["Ebs"]["VolumeId"] for m in described["BlockDeviceMappings"] if m["DeviceName"] == "/dev/sda1")
        root_data = {0: b"boot" * 100, 9: block_bytes(9)}
        status, answer = self.set_content(root, self.image(root_data, 8 << 20))
        assert status == 200, answer
        made = ec2.create_snapshots(InstanceSpecification={"InstanceId": instance_id})["Snapshots"]
        self.read(ebs, next(s["SnapshotId"] for s in made if s["VolumeId"] == root), root_data)
        image = ec2.create_image(InstanceId=instance_id, Name=f"ebs-direct-{time.time_ns()}")["ImageId"]
        image_snap = ec2.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
        self.read(ebs, image_snap, root_data)
        image_copy = west_ec2.copy_image(SourceImageId=image, SourceRegion=REGION, Name=f"ebs-direct-copy-{time.time_ns()}")
        copied = self.client("ec2", "harness", ELSEWHERE).describe_images(ImageIds=[image_copy["ImageId"]])["Images"][0]
        self.read(west_ebs, copied["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"], root_data)
        # RunInstances of a registered image: its volumes start with the snapshots' content.
        registered = ec2.register_image(
            Name=f"ebs-direct-reg-{time.time_ns()}", RootDeviceName="/dev/xvda",
            BlockDeviceMappings=[{"DeviceName": "/dev/xvda", "Ebs": {"SnapshotId": snap}}],
        )["ImageId"]
        launched = ec2.run_instances(ImageId=registered, MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
        described = ec2.describe_instances(InstanceIds=[launched])["Reservations"][0]["Instances"][0]
        launched_volume = described["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
        again = ec2.create_snapshot(VolumeId=launched_volume)["SnapshotId"]
        self.read(ebs, again, data)
        changed = ebs.list_changed_blocks(FirstSnapshotId=snap, SecondSnapshotId=again)
        assert changed["ChangedBlocks"] == [], "a volume restored from a snapshot is of its lineage, unchanged"

    def sharing(self) -> None:
        """Shared with the caller: readable; not shared: not found; public: refused."""
        data = {3: block_bytes(33)}
        volume = self.volume_with(data, account=OTHER)
        theirs = self.client("ec2", "harness", account=OTHER)
        snap = theirs.create_snapshot(VolumeId=volume)["SnapshotId"]
        ebs = self.client("ebs")
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=snap),
                     "ResourceNotFoundException", 404, "SNAPSHOT_NOT_FOUND", "another account's snapshot, not shared")
        their_ebs = self.client("ebs", account=OTHER)
        token = their_ebs.list_snapshot_blocks(SnapshotId=snap)["Blocks"][0]["BlockToken"]
        self.refused(lambda: ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=3, BlockToken=token),
                     "ResourceNotFoundException", 404, "SNAPSHOT_NOT_FOUND", "a block of a snapshot not shared")
        theirs.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                         CreateVolumePermission={"Add": [{"UserId": ACCOUNT}]})
        self.read(ebs, snap, data)
        public = theirs.create_snapshot(VolumeId=volume)["SnapshotId"]
        theirs.modify_snapshot_attribute(SnapshotId=public, Attribute="createVolumePermission",
                                         CreateVolumePermission={"Add": [{"Group": "all"}]})
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=public),
                     "AccessDeniedException", 403, "UNAUTHORIZED_ACCOUNT", "a public snapshot")
        self.read(their_ebs, public, data)  # its owner reads it
        # Encrypted with the other account's key: only with a grant.
        kms = self.client("kms", "harness", account=OTHER)
        key = kms.create_key(Description="theirs")["KeyMetadata"]["Arn"]
        sealed = theirs.create_volume(AvailabilityZone="us-east-1a", Size=1, Encrypted=True, KmsKeyId=key)["VolumeId"]
        assert self.set_content(sealed, self.image(data, 4 << 20), account=OTHER)[0] == 200
        sealed_snap = theirs.create_snapshot(VolumeId=sealed)["SnapshotId"]
        theirs.modify_snapshot_attribute(SnapshotId=sealed_snap, Attribute="createVolumePermission",
                                         CreateVolumePermission={"Add": [{"UserId": ACCOUNT}]})
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=sealed_snap),
                     "AccessDeniedException", 403, "DEPENDENCY_ACCESS_DENIED", "a shared snapshot under a key not granted")
        kms.create_grant(KeyId=key, GranteePrincipal=f"arn:aws:iam::{ACCOUNT}:root", Operations=["Decrypt"])
        self.read(ebs, sealed_snap, data)
        # A copy into the caller's own account, from the shared snapshot, in another region.
        west_ec2 = self.client("ec2", region=ELSEWHERE)
        copy = west_ec2.copy_snapshot(SourceSnapshotId=snap, SourceRegion=REGION)["SnapshotId"]
        for _ in range(3):
            west_ec2.describe_snapshots(SnapshotIds=[copy])
        self.read(self.client("ebs", region=ELSEWHERE), copy, data)

    def changed_blocks(self) -> None:
        before = {0: b"same" * 10, 2: block_bytes(20), 5: block_bytes(50)}
        after = {0: b"same" * 10, 2: block_bytes(21), 7: block_bytes(70)}
        volume = self.volume_with(before, image_size=4 << 20)
        ec2, ebs = self.client("ec2", "harness"), self.client("ebs")
        first = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        self.set_content(volume, self.image(after, 4 << 20))
        second = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        got = ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=second)
        shape = [(c["BlockIndex"], "FirstBlockToken" in c, "SecondBlockToken" in c) for c in got["ChangedBlocks"]]
        assert shape == [(2, True, True), (5, True, False), (7, False, True)], shape
        assert got["BlockSize"] == BS and got["VolumeSize"] == 1 and "NextToken" not in got, got
        for c in got["ChangedBlocks"]:  # each token reads its own snapshot's block
            if "FirstBlockToken" in c:
                data = ebs.get_snapshot_block(SnapshotId=first, BlockIndex=c["BlockIndex"],
                                              BlockToken=c["FirstBlockToken"])["BlockData"].read()
                assert data == before[c["BlockIndex"]], c["BlockIndex"]
            if "SecondBlockToken" in c:
                data = ebs.get_snapshot_block(SnapshotId=second, BlockIndex=c["BlockIndex"],
                                              BlockToken=c["SecondBlockToken"])["BlockData"].read()
                assert data == after[c["BlockIndex"]], c["BlockIndex"]
        only_second = ebs.list_changed_blocks(SecondSnapshotId=second)["ChangedBlocks"]
        assert [(c["BlockIndex"], "FirstBlockToken" in c) for c in only_second] == [(0, False), (2, False), (7, False)]
        stranger = ec2.create_snapshot(VolumeId=self.volume_with(before))["SnapshotId"]
        self.refused(lambda: ebs.list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=stranger),
                     "ValidationException", 400, "UNRELATED_SNAPSHOTS", "snapshots of two volumes")
        # Pages cover indexes with data in either snapshot: a page can be empty, with a NextToken.
        many = {i: bytes([1]) for i in range(300)}
        volume = self.volume_with(many, image_size=300 * BS)
        old = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        self.set_content(volume, self.image({**many, 299: bytes([2])}, 300 * BS))
        new = ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        pages, token = [], None
        while True:
            page = ebs.list_changed_blocks(FirstSnapshotId=old, SecondSnapshotId=new, MaxResults=100,
                                           **({"NextToken": token} if token else {}))
            pages.append([c["BlockIndex"] for c in page["ChangedBlocks"]])
            token = page.get("NextToken")
            if not token:
                break
        assert pages == [[], [], [299]], pages

    def writes(self) -> None:
        ebs, ec2 = self.client("ebs"), self.client("ec2", "harness")
        started = ebs.start_snapshot(VolumeSize=1, Description="direct", Tags=[{"Key": "k", "Value": "v"}],
                                     ClientToken="token-1")
        sid = started["SnapshotId"]
        assert started["Status"] == "pending" and started["BlockSize"] == BS and started["VolumeSize"] == 1, started
        assert ebs.start_snapshot(VolumeSize=1, Description="direct", Tags=[{"Key": "k", "Value": "v"}],
                                  ClientToken="token-1")["SnapshotId"] == sid, "the same client token, the same snapshot"
        self.refused(lambda: ebs.start_snapshot(VolumeSize=2, ClientToken="token-1"),
                     "ConflictException", 409, None, "a client token reused for another request")
        described = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
        assert described["State"] == "pending" and described["VolumeSize"] == 1, described
        assert {"Key": "k", "Value": "v"} in described.get("Tags", []) and described["Description"] == "direct"
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=sid),
                     "ValidationException", 400, "INVALID_SNAPSHOT_ID", "reading a pending snapshot")
        blocks = {0: block_bytes(100), 3: block_bytes(103)}

        def put(index: int, data: bytes, **overrides: Any) -> Any:
            args = {"SnapshotId": sid, "BlockIndex": index, "BlockData": data, "DataLength": len(data),
                    "Checksum": checksum(data), "ChecksumAlgorithm": "SHA256", **overrides}
            return ebs.put_snapshot_block(**args)

        for index, data in blocks.items():
            answer = put(index, data)
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 201 and answer["Checksum"] == checksum(data), answer
        self.refused(lambda: put(1, blocks[0], Checksum=checksum(b"other")),
                     "ValidationException", 400, "INVALID_PARAMETER_VALUE", "a checksum that does not match")
        self.refused(lambda: put(1, b"short"), "ValidationException", 400, "INVALID_PARAMETER_VALUE", "a short block")
        self.refused(lambda: put(1, blocks[0], DataLength=4096),
                     "ValidationException", 400, "INVALID_PARAMETER_VALUE", "a DataLength other than 524288")
        self.refused(lambda: put(2048, blocks[0]), "ValidationException", 400, "INVALID_BLOCK", "a block past the volume")
        self.refused(lambda: ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=3),
                     "ValidationException", 400, "INVALID_PARAMETER_VALUE", "a wrong ChangedBlocksCount")
        linear = checksum(b"".join(hashlib.sha256(blocks[i]).digest() for i in sorted(blocks)))
        done = ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=2, Checksum=linear,
                                     ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
        assert done["Status"] == "completed" and done["ResponseMetadata"]["HTTPStatusCode"] == 202, done
        assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed"
        self.refused(lambda: put(1, blocks[0]), "ValidationException", 400, "INVALID_SNAPSHOT_ID",
                     "writing to a completed snapshot")
        self.read(ebs, sid, blocks)
        # A child of it: the parent's blocks and its own.
        child = ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=sid)["SnapshotId"]
        self.refused(lambda: ebs.start_snapshot(VolumeSize=1, ParentSnapshotId=sid, Encrypted=True),
                     "ValidationException", 400, "INVALID_PARAMETER_VALUE", "ParentSnapshotId with Encrypted")
        sid, written = child, block_bytes(101)
        put(1, written)
        ebs.complete_snapshot(SnapshotId=child, ChangedBlocksCount=1)
        self.read(ebs, child, {**blocks, 1: written})
        changed = ebs.list_changed_blocks(FirstSnapshotId=started["SnapshotId"], SecondSnapshotId=child)
        assert [c["BlockIndex"] for c in changed["ChangedBlocks"]] == [1], changed["ChangedBlocks"]
        self.refused(lambda: ebs.start_snapshot(VolumeSize=70000), "ValidationException", 400, "INVALID_VOLUME_SIZE",
                     "a volume over 64 TiB")
        # A volume made from it holds its blocks.
        volume = ec2.create_volume(AvailabilityZone="us-east-1a", SnapshotId=child)["VolumeId"]
        self.read(ebs, ec2.create_snapshot(VolumeId=volume)["SnapshotId"], {**blocks, 1: written})

    def throttling_and_call_log(self) -> None:
        volume = self.volume_with({0: b"a", 1: b"b", 2: b"c"})
        snap = self.client("ec2", "harness").create_snapshot(VolumeId=volume)["SnapshotId"]
        status, answer = self.check.http("POST", "/_strongroom/faults", {"ebs_direct_throttle_every": -1})
        assert status == 400 and "ebs_direct_throttle_every" in answer["error"], answer
        status, answer = self.check.http("POST", "/_strongroom/faults", {"ebs_direct_throttle_actions": ["Nope"]})
        assert status == 400 and "Nope" in answer["error"], answer
        got = self.check.http("GET", "/_strongroom/faults")[1]
        assert got["ebs_direct_throttle_every"] == 0 and got["ebs_direct_throttle_actions"] == ["GetSnapshotBlock"], got
        self.check.faults({"ebs_direct_throttle_every": 3})
        got = self.check.http("GET", "/_strongroom/faults")[1]
        assert got["ebs_direct_throttle_every"] == 3, got
        ebs, harness = self.client("ebs"), self.client("ebs", "harness")
        tokens = self.listed(ebs, snap)  # ListSnapshotBlocks is not throttled by default
        self.check.reset_calls()
        outcomes = []
        for i in range(6):
            try:
                ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=i % 3, BlockToken=tokens[i % 3])["BlockData"].read()
                outcomes.append("ok")
            except ClientError as e:
                outcomes.append((e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"],
                                 e.response.get("Reason")))
            harness.get_snapshot_block(SnapshotId=snap, BlockIndex=0, BlockToken=tokens[0])  # never the harness
        throttled = ("RequestThrottledException", 400, "ACCOUNT_THROTTLED")
        assert outcomes == ["ok", "ok", throttled, "ok", "ok", throttled], outcomes
        log = [c for c in self.check.calls() if c["service"] == "ebs"]
        assert [(c["action"], c["client"], c.get("fault")) for c in log if c["client"] == "strongroom"] == [
            ("GetSnapshotBlock", "strongroom", "throttled" if o != "ok" else None) for o in outcomes
        ], log
        assert sum(1 for c in log if c["action"] == "GetSnapshotBlock") == 12, log
        self.check.faults({"ebs_direct_throttle_every": 1, "ebs_direct_throttle_actions": ["ListSnapshotBlocks"]})
        self.refused(lambda: ebs.list_snapshot_blocks(SnapshotId=snap), *throttled, "ListSnapshotBlocks throttled")
        ebs.get_snapshot_block(SnapshotId=snap, BlockIndex=0, BlockToken=tokens[0])
        self.check.faults({})
        # Every operation is named in the call log.
        self.check.reset_calls()
        sid = ebs.start_snapshot(VolumeSize=1)["SnapshotId"]
        data = block_bytes(7)
        ebs.put_snapshot_block(SnapshotId=sid, BlockIndex=0, BlockData=data, DataLength=BS, Checksum=checksum(data),
                               ChecksumAlgorithm="SHA256")
        ebs.complete_snapshot(SnapshotId=sid, ChangedBlocksCount=1)
        ebs.list_changed_blocks(SecondSnapshotId=sid)
        actions = [c["action"] for c in self.check.calls() if c["service"] == "ebs"]
        assert actions == ["StartSnapshot", "PutSnapshotBlock", "CompleteSnapshot", "ListChangedBlocks"], actions


def s3_list_parts_root(check: Any) -> None:
    """Patch 21: ListParts answers <ListPartsResult>, as AWS documents."""
    s3 = check.client("s3", "harness")
    s3.create_bucket(Bucket="list-parts-check")
    upload = s3.create_multipart_upload(Bucket="list-parts-check", Key="k")["UploadId"]
    s3.upload_part(Bucket="list-parts-check", Key="k", UploadId=upload, PartNumber=1, Body=b"x" * (5 << 20))
    seen: list[bytes] = []
    s3.meta.events.register("after-call.s3.ListParts", lambda http_response, **_: seen.append(http_response.content))
    parts = s3.list_parts(Bucket="list-parts-check", Key="k", UploadId=upload)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1], parts
    assert b"<ListPartsResult" in seen[0] and b"ListPartsResponse" not in seen[0], seen[0][:200]
    s3.abort_multipart_upload(Bucket="list-parts-check", Key="k", UploadId=upload)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="strongroom-check-") as functions_dir, tempfile.TemporaryDirectory(
        prefix="strongroom-images-"
    ) as images, Emulator(functions_dir) as emulator:
        check = Check(emulator.endpoint)
        ebs = EbsCheck(check, images)
        for name, section in [
            ("volume-content endpoint", ebs.content_endpoint),
            ("snapshot blocks, tokens and errors", ebs.snapshot_reads),
            ("paging", ebs.paging),
            ("copies, images and launches carry content", ebs.copies_images_launches),
            ("shared, public and encrypted snapshots", ebs.sharing),
            ("ListChangedBlocks", ebs.changed_blocks),
            ("StartSnapshot, PutSnapshotBlock, CompleteSnapshot", ebs.writes),
            ("throttling and the call log", ebs.throttling_and_call_log),
            ("S3 ListParts's root element (patch 21)", lambda: s3_list_parts_root(check)),
        ]:
            check.run(name, section)
    if check.failures:
        sys.exit(f"{len(check.failures)} check(s) failed: {', '.join(check.failures)}")
    print("all EBS direct API checks passed")


if __name__ == "__main__":
    main()
