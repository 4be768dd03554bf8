#!/usr/bin/env python3
"""Checks the emulator's patches 10 (faults), 11 (DeregisterImage with
DeleteAssociatedSnapshots), 12 (sharing), 13, 14, 15 (Distributed Map), 16
and 18 (IAM enforced: infra/vault-account.yaml's vault roles, rendered with
PyYAML, which moto[server] brings, and judged by moto's IAM evaluator)
through boto3.

Starts its own emulator (no function binaries needed: functions only run when
invoked) with faults set from ``STRONGROOM_EMULATOR_FAULTS``, then changes them
with ``POST /_strongroom/faults``. Calls as Strongroom carry the header
``X-Strongroom-Client: strongroom``; calls as the harness carry
``app/strongroom-tests`` in the user agent, as the Rust tests' do. No retries:
every ClientError is what the emulator answered.

Usage: ``check_faults.py`` (from any directory). Exits non-zero if a check fails.
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402
from botocore.parsers import create_parser  # noqa: E402

from client import ACCOUNT, Emulator  # noqa: E402

INITIAL = {"seed": 3, "throttle_fraction": 1.0, "throttle_actions": ["DescribeVolumes"]}
OTHER_ACCOUNT = "111122223333"


class Check:
    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.failures: list[str] = []

    # -- plumbing ----------------------------------------------------------

    def client(self, service: str, who: str = "strongroom", region: str = "us-east-1") -> Any:
        c = boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                retries={"total_max_attempts": 1},
                user_agent_appid="strongroom-tests" if who == "harness" else None,
            ),
        )
        if who == "strongroom":
            def declare(request: Any, **_: Any) -> None:
                request.headers["X-Strongroom-Client"] = "strongroom"

            c.meta.events.register("request-created", declare)
        return c

    def http(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.endpoint}{path}", data=data, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def faults(self, config: dict[str, Any]) -> None:
        status, answer = self.http("POST", "/_strongroom/faults", config)
        assert status == 200, f"POST /_strongroom/faults {config}: {status} {answer}"

    def calls(self) -> list[dict[str, str]]:
        return self.http("GET", "/_strongroom/calls")[1]

    def reset_calls(self) -> None:
        self.http("DELETE", "/_strongroom/calls")

    def error(self, call: Callable[[], Any]) -> tuple[str, int]:
        """The error code and HTTP status `call` fails with ("", 200 if it does not)."""
        try:
            call()
        except ClientError as e:
            return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
        return "", 200

    def expect_error(self, call: Callable[[], Any], code: str, status: int, what: str) -> None:
        got = self.error(call)
        assert got == (code, status), f"{what}: expected {code} HTTP {status}, got {got}"

    def run(self, name: str, section: Callable[[], None]) -> None:
        self.faults({})
        try:
            section()
            print(f"ok    {name}")
        except Exception:  # noqa: BLE001 - report every failing section
            self.failures.append(name)
            print(f"FAIL  {name}\n{traceback.format_exc()}")

    # -- the estate ----------------------------------------------------------

    def setup(self) -> None:
        ec2, rds, rs = self.client("ec2", "harness"), self.client("rds", "harness"), self.client("redshift", "harness")
        self.volume = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
        self.instance = ec2.run_instances(
            ImageId="ami-12345678",
            MinCount=1,
            MaxCount=1,
            BlockDeviceMappings=[
                {"DeviceName": "/dev/sda1", "Ebs": {"VolumeSize": 8}},
                {"DeviceName": "/dev/sdf", "Ebs": {"VolumeSize": 20}},
            ],
        )["Instances"][0]["InstanceId"]
        rds.create_db_instance(
            DBInstanceIdentifier="db1", Engine="postgres", DBInstanceClass="db.t3.micro", AllocatedStorage=20,
            MasterUsername="admin1", MasterUserPassword="not-a-secret-1", BackupRetentionPeriod=0,
        )
        rds.create_db_cluster(
            DBClusterIdentifier="cl1", Engine="aurora-postgresql", MasterUsername="admin1",
            MasterUserPassword="not-a-secret-1",
        )
        rs.create_cluster(
            ClusterIdentifier="rs1", NodeType="ra3.xlplus", MasterUsername="admin1", MasterUserPassword="NotASecret1"
        )
        self.serial = 0

    def name(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}-{self.serial}"

    # -- patch 10: configuration ----------------------------------------------

    def configuration(self) -> None:
        # The emulator started with INITIAL from the environment; run() reset it since,
        # so the first check of it is done in main() before any run().
        status, answer = self.http("POST", "/_strongroom/faults", {"throttle_fraction": 2})
        assert status == 400 and "throttle_fraction" in answer["error"], (status, answer)
        status, answer = self.http("POST", "/_strongroom/faults", {"throttle_fractoin": 0.5})
        assert status == 400 and "unknown" in answer["error"], (status, answer)
        status, answer = self.http("POST", "/_strongroom/faults", {"quotas": {"ebs_snapshots": -1}})
        assert status == 400, (status, answer)
        wanted = {"seed": 9, "pending_describes": 2, "quotas": {"ebs_snapshots": 5}}
        self.faults(wanted)
        got = self.http("GET", "/_strongroom/faults")[1]
        for key, value in wanted.items():
            assert got[key] == value, (key, got)
        assert got["throttle_fraction"] == 0 and got["throttle_actions"] is None, got
        assert "CreateDBClusterSnapshot" in got["lost_response_actions"], got
        self.faults(got)  # what GET answers is a valid configuration
        assert self.http("GET", "/_strongroom/faults")[1] == got

    def initial_from_environment(self) -> None:
        got = self.http("GET", "/_strongroom/faults")[1]
        for key, value in INITIAL.items():
            assert got[key] == value, (key, got)
        self.reset_calls()
        self.expect_error(
            lambda: self.client("ec2").describe_volumes(), "RequestLimitExceeded", 503, "DescribeVolumes throttled"
        )
        self.client("ec2").describe_snapshots(OwnerIds=["self"])  # not a throttled action
        self.client("ec2", "harness").describe_volumes()  # never the harness
        log = self.calls()
        assert [(c["action"], c["client"], c.get("fault")) for c in log] == [
            ("DescribeVolumes", "strongroom", "throttled"),
            ("DescribeSnapshots", "strongroom", None),
            ("DescribeVolumes", "harness", None),
        ], log

    # -- patch 10: throttling ------------------------------------------------

    def throttling(self) -> None:
        harness_ec2 = self.client("ec2", "harness")
        volumes = len(harness_ec2.describe_volumes()["Volumes"])
        self.faults({"throttle_fraction": 1})
        self.reset_calls()
        self.expect_error(
            lambda: self.client("ec2").create_volume(AvailabilityZone="us-east-1a", Size=1),
            "RequestLimitExceeded", 503, "EC2",
        )
        self.expect_error(lambda: self.client("rds").describe_db_instances(), "Throttling", 400, "RDS")
        self.expect_error(lambda: self.client("redshift").describe_clusters(), "Throttling", 400, "Redshift")
        self.expect_error(lambda: self.client("sts").get_caller_identity(), "Throttling", 400, "STS")
        assert self.tagging_error() == ("ThrottlingException", 400), self.tagging_error()
        # Never throttled: the Step Functions API, the harness, seed scripts (boto3).
        self.client("stepfunctions").list_state_machines()
        assert len(harness_ec2.describe_volumes()["Volumes"]) == volumes, "a throttled CreateVolume was done"
        boto3_ec2 = boto3.client(
            "ec2", endpoint_url=self.endpoint, region_name="us-east-1", aws_access_key_id="testing",
            aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}),
        )
        boto3_ec2.describe_volumes()
        faulted = [(c["service"], c["action"]) for c in self.calls() if c.get("fault") == "throttled"]
        assert faulted == [
            ("ec2", "CreateVolume"), ("rds", "DescribeDBInstances"), ("redshift", "DescribeClusters"),
            ("sts", "GetCallerIdentity"), ("tagging", "GetResources"),
        ], faulted
        clients = {c["client"] for c in self.calls() if not c.get("fault")}
        assert clients == {"strongroom", "harness", "boto3"}, clients

    def tagging_error(self) -> tuple[str, int]:
        """A GetResources as aws-sdk-rust sends it (JSON 1.1), its error as botocore's JSON parser reads it."""
        body = b"{}"
        req = urllib.request.Request(
            self.endpoint + "/",
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/x-amz-json-1.1",
                "X-Amz-Target": "ResourceGroupsTaggingAPI_20170126.GetResources",
                "X-Strongroom-Client": "strongroom",
                "Authorization": "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/tagging/aws4_request, "
                "SignedHeaders=host, Signature=0",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return "", r.status
        except urllib.error.HTTPError as e:
            raw = {"status_code": e.code, "headers": dict(e.headers), "body": e.read()}
        model = self.client("resourcegroupstaggingapi", "boto3").meta.service_model.operation_model("GetResources")
        parsed = create_parser("json").parse(raw, model.output_shape)
        assert raw["headers"].get("x-amzn-ErrorType") == parsed["Error"]["Code"], raw["headers"]
        return parsed["Error"]["Code"], raw["status_code"]

    def throttle_fraction(self) -> None:
        config = {"seed": 42, "throttle_fraction": 0.5, "throttle_actions": ["DescribeVolumes"]}
        ec2 = self.client("ec2")

        def pattern(interleave: bool) -> list[bool]:
            self.faults(config)  # reseeds
            out = []
            for _ in range(40):
                if interleave:
                    ec2.describe_snapshots(OwnerIds=["self"])  # not targeted: no draw
                out.append(self.error(ec2.describe_volumes)[0] == "RequestLimitExceeded")
            return out

        first = pattern(False)
        assert 8 <= sum(first) <= 32, sum(first)
        assert pattern(True) == first, "the same seed gave other decisions"

    # -- patch 10: lost responses ------------------------------------------------

    def lost_responses(self) -> None:
        ec2, h_ec2 = self.client("ec2"), self.client("ec2", "harness")
        rds, h_rds = self.client("rds"), self.client("rds", "harness")
        rs, h_rs = self.client("redshift"), self.client("redshift", "harness")
        self.faults({"lost_response_fraction": 1})
        self.reset_calls()
        before = {s["SnapshotId"] for s in h_ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
        self.expect_error(lambda: ec2.create_snapshot(VolumeId=self.volume), "InternalError", 500, "CreateSnapshot")
        after = {s["SnapshotId"] for s in h_ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}
        assert len(after - before) == 1, "the lost CreateSnapshot was not done"
        self.expect_error(
            lambda: ec2.create_snapshots(InstanceSpecification={"InstanceId": self.instance}),
            "InternalError", 500, "CreateSnapshots",
        )
        image = self.name("lost-image")
        self.expect_error(
            lambda: ec2.create_image(InstanceId=self.instance, Name=image), "InternalError", 500, "CreateImage"
        )
        assert h_ec2.describe_images(Filters=[{"Name": "name", "Values": [image]}])["Images"], "lost CreateImage not done"
        snap = self.name("lost-db")
        self.expect_error(
            lambda: rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=snap),
            "InternalFailure", 500, "CreateDBSnapshot",
        )
        h_rds.describe_db_snapshots(DBSnapshotIdentifier=snap)
        csnap = self.name("lost-cl")
        self.expect_error(
            lambda: rds.create_db_cluster_snapshot(DBClusterIdentifier="cl1", DBClusterSnapshotIdentifier=csnap),
            "InternalFailure", 500, "CreateDBClusterSnapshot",
        )
        h_rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=csnap)
        rsnap = self.name("lost-rs")
        self.expect_error(
            lambda: rs.create_cluster_snapshot(ClusterIdentifier="rs1", SnapshotIdentifier=rsnap),
            "InternalFailure", 500, "CreateClusterSnapshot",
        )
        h_rs.describe_cluster_snapshots(SnapshotIdentifier=rsnap)
        ec2.describe_volumes()  # not one of the default actions
        # The harness's creates are never lost.
        h_rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=self.name("kept"))
        lost = [c["action"] for c in self.calls() if c.get("fault") == "lost-response"]
        assert lost == [
            "CreateSnapshot", "CreateSnapshots", "CreateImage", "CreateDBSnapshot", "CreateDBClusterSnapshot",
            "CreateClusterSnapshot",
        ], lost
        self.faults({"lost_response_fraction": 1, "lost_response_actions": ["DescribeVolumes"]})
        self.expect_error(ec2.describe_volumes, "InternalError", 500, "DescribeVolumes, when listed")
        self.expect_error(lambda: rds.describe_db_instances(), "", 200, "DescribeDBInstances, not listed")

    # -- patch 10: resources in progress --------------------------------------------

    def pending(self) -> None:
        ec2, h_ec2 = self.client("ec2"), self.client("ec2", "harness")
        rds, h_rds = self.client("rds"), self.client("rds", "harness")
        rs, h_rs = self.client("redshift"), self.client("redshift", "harness")
        done_before = ec2.create_snapshot(VolumeId=self.volume)["SnapshotId"]  # created with no faults set
        self.faults({"pending_describes": 2})

        def states(describe: Callable[[], str], harness: Callable[[], str], done: str, shown: str) -> None:
            seen = [describe(), harness(), describe(), describe(), describe()]
            assert seen == [shown, done, shown, done, done], seen

        snap = ec2.create_snapshot(VolumeId=self.volume)
        assert snap["State"] == "pending", snap["State"]
        sid = snap["SnapshotId"]
        states(
            lambda: ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"],
            lambda: h_ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"],
            "completed", "pending",
        )
        assert ec2.describe_snapshots(SnapshotIds=[done_before])["Snapshots"][0]["State"] == "completed"
        # Created by the harness while set: the harness sees it done, Strongroom in progress.
        hsnap = h_ec2.create_snapshot(VolumeId=self.volume)
        assert hsnap["State"] == "completed", hsnap["State"]
        states(
            lambda: ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [hsnap["SnapshotId"]]}])[
                "Snapshots"][0]["State"],
            lambda: h_ec2.describe_snapshots(SnapshotIds=[hsnap["SnapshotId"]])["Snapshots"][0]["State"],
            "completed", "pending",
        )
        multi = ec2.create_snapshots(InstanceSpecification={"InstanceId": self.instance})["Snapshots"]
        assert [s["State"] for s in multi] == ["pending", "pending"], multi
        image = ec2.create_image(InstanceId=self.instance, Name=self.name("pending-image"))["ImageId"]
        states(
            lambda: ec2.describe_images(ImageIds=[image])["Images"][0]["State"],
            lambda: h_ec2.describe_images(ImageIds=[image])["Images"][0]["State"],
            "available", "pending",
        )
        name = self.name("pending-db")
        assert rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=name)["DBSnapshot"][
            "Status"] == "creating"
        states(
            lambda: rds.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"][0]["Status"],
            lambda: h_rds.describe_db_snapshots(DBSnapshotIdentifier=name)["DBSnapshots"][0]["Status"],
            "available", "creating",
        )
        name = self.name("pending-cl")
        assert rds.create_db_cluster_snapshot(DBClusterIdentifier="cl1", DBClusterSnapshotIdentifier=name)[
            "DBClusterSnapshot"]["Status"] == "creating"
        states(
            lambda: rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"][0][
                "Status"],
            lambda: h_rds.describe_db_cluster_snapshots(DBClusterSnapshotIdentifier=name)["DBClusterSnapshots"][0][
                "Status"],
            "available", "creating",
        )
        name = self.name("pending-rs")
        assert rs.create_cluster_snapshot(ClusterIdentifier="rs1", SnapshotIdentifier=name)["Snapshot"][
            "Status"] == "creating"
        states(
            lambda: rs.describe_cluster_snapshots(SnapshotIdentifier=name)["Snapshots"][0]["Status"],
            lambda: h_rs.describe_cluster_snapshots(SnapshotIdentifier=name)["Snapshots"][0]["Status"],
            "available", "creating",
        )

    # -- patch 10: eventual visibility ----------------------------------------------

    def visibility(self) -> None:
        ec2, h_ec2 = self.client("ec2"), self.client("ec2", "harness")
        self.faults({"visibility_seconds": 2})
        sid = ec2.create_snapshot(VolumeId=self.volume)["SnapshotId"]
        image = ec2.create_image(InstanceId=self.instance, Name=self.name("late-image"))["ImageId"]
        started = time.monotonic()

        def strongroom_snapshots() -> set[str]:
            return {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}

        def strongroom_images() -> set[str]:
            return {i["ImageId"] for i in ec2.describe_images(Owners=["self"])["Images"]}

        assert sid not in strongroom_snapshots()
        assert not ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [sid]}])["Snapshots"]
        self.expect_error(
            lambda: ec2.describe_snapshots(SnapshotIds=[sid]), "InvalidSnapshot.NotFound", 400, "snapshot by id"
        )
        assert image not in strongroom_images()
        self.expect_error(lambda: ec2.describe_images(ImageIds=[image]), "InvalidAMIID.NotFound", 400, "AMI by id")
        h_ec2.describe_snapshots(SnapshotIds=[sid])
        h_ec2.describe_images(ImageIds=[image])
        assert time.monotonic() - started < 2, "too slow to check invisibility"
        time.sleep(2.2 - (time.monotonic() - started))
        assert sid in strongroom_snapshots() and image in strongroom_images()
        ec2.describe_snapshots(SnapshotIds=[sid])

    # -- patch 10: quotas ------------------------------------------------------------

    def quotas(self) -> None:
        ec2, h_ec2 = self.client("ec2"), self.client("ec2", "harness")
        rds, h_rds = self.client("rds"), self.client("rds", "harness")
        rs, h_rs = self.client("redshift"), self.client("redshift", "harness")
        ebs = len(h_ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"])

        def account(client: Any) -> dict[str, tuple[int, int]]:
            return {q["AccountQuotaName"]: (q["Used"], q["Max"]) for q in client.describe_account_attributes()["AccountQuotas"]}

        used = account(h_rds)
        assert used["ManualSnapshots"][1] == 100 and used["ManualClusterSnapshots"][1] == 100, used
        db = used["ManualSnapshots"][0]
        cl = used["ManualClusterSnapshots"][0]
        assert db == len(h_rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]), used
        red = sum(1 for s in h_rs.describe_cluster_snapshots()["Snapshots"] if s["SnapshotType"] == "manual")
        self.faults({"quotas": {
            "ebs_snapshots": ebs + 1, "rds_manual_snapshots": db + 1, "rds_manual_cluster_snapshots": cl + 1,
            "redshift_manual_snapshots": red + 1,
        }})
        self.reset_calls()
        assert account(rds) == {"ManualSnapshots": (db, db + 1), "ManualClusterSnapshots": (cl, cl + 1)}, account(rds)
        ec2.create_snapshot(VolumeId=self.volume)
        self.expect_error(
            lambda: ec2.create_snapshot(VolumeId=self.volume), "SnapshotLimitExceeded", 400, "CreateSnapshot"
        )
        self.expect_error(
            lambda: ec2.create_image(InstanceId=self.instance, Name=self.name("over")),
            "SnapshotLimitExceeded", 400, "CreateImage",
        )
        self.expect_error(
            lambda: ec2.create_snapshots(InstanceSpecification={"InstanceId": self.instance}),
            "SnapshotLimitExceeded", 400, "CreateSnapshots",
        )
        h_ec2.create_snapshot(VolumeId=self.volume)  # the harness is never refused
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=self.name("q-db"))
        self.expect_error(
            lambda: rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=self.name("q-db")),
            "SnapshotQuotaExceeded", 400, "CreateDBSnapshot",
        )
        rds.create_db_cluster_snapshot(DBClusterIdentifier="cl1", DBClusterSnapshotIdentifier=self.name("q-cl"))
        self.expect_error(
            lambda: rds.create_db_cluster_snapshot(DBClusterIdentifier="cl1", DBClusterSnapshotIdentifier=self.name("q")),
            "SnapshotQuotaExceeded", 400, "CreateDBClusterSnapshot",
        )
        assert account(rds) == {"ManualSnapshots": (db + 1, db + 1), "ManualClusterSnapshots": (cl + 1, cl + 1)}
        rs.create_cluster_snapshot(ClusterIdentifier="rs1", SnapshotIdentifier=self.name("q-rs"))
        self.expect_error(
            lambda: rs.create_cluster_snapshot(ClusterIdentifier="rs1", SnapshotIdentifier=self.name("q-rs")),
            "ClusterSnapshotQuotaExceeded", 400, "CreateClusterSnapshot",
        )
        quota = [c["action"] for c in self.calls() if c.get("fault") == "quota"]
        assert quota == [
            "CreateSnapshot", "CreateImage", "CreateSnapshots", "CreateDBSnapshot", "CreateDBClusterSnapshot",
            "CreateClusterSnapshot",
        ], quota

    # -- patch 11: DeregisterImage with DeleteAssociatedSnapshots ---------------------

    def deregister(self) -> None:
        ec2, h_ec2 = self.client("ec2"), self.client("ec2", "harness")

        def image() -> tuple[str, str]:
            iid = h_ec2.create_image(InstanceId=self.instance, Name=self.name("img"))["ImageId"]
            snap = h_ec2.describe_images(ImageIds=[iid])["Images"][0]["BlockDeviceMappings"][0]["Ebs"]["SnapshotId"]
            return iid, snap

        def exists(sid: str) -> bool:
            return bool(h_ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [sid]}])["Snapshots"])

        plain, plain_snap = image()
        out = ec2.deregister_image(ImageId=plain, DeleteAssociatedSnapshots=True)
        assert out["DeleteSnapshotResults"] == [{"SnapshotId": plain_snap, "ReturnCode": "success"}], out
        assert not exists(plain_snap)

        older, shared = image()
        newer = h_ec2.register_image(
            Name=self.name("reg"), RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": shared}}],
        )["ImageId"]
        out = ec2.deregister_image(ImageId=newer, DeleteAssociatedSnapshots=True)
        assert out["DeleteSnapshotResults"] == [{"SnapshotId": shared, "ReturnCode": "skipped"}], out
        assert exists(shared)
        self.expect_error(
            lambda: ec2.delete_snapshot(SnapshotId=shared), "InvalidSnapshot.InUse", 400, "snapshot of another AMI"
        )
        out = ec2.deregister_image(ImageId=older, DeleteAssociatedSnapshots=True)
        assert out["DeleteSnapshotResults"] == [{"SnapshotId": shared, "ReturnCode": "success"}], out

        locked, locked_snap = image()
        h_ec2.lock_snapshot(SnapshotId=locked_snap, LockMode="governance", LockDuration=1)
        out = ec2.deregister_image(ImageId=locked, DeleteAssociatedSnapshots=True)
        assert out["DeleteSnapshotResults"] == [{"SnapshotId": locked_snap, "ReturnCode": "client-error"}], out
        assert exists(locked_snap)
        assert not h_ec2.describe_images(Owners=["self"], Filters=[{"Name": "image-id", "Values": [locked]}])["Images"]

        kept, kept_snap = image()
        out = ec2.deregister_image(ImageId=kept)
        assert not out.get("DeleteSnapshotResults"), out
        assert exists(kept_snap)
        ec2.delete_snapshot(SnapshotId=kept_snap)  # no AMI uses it any more

    # -- patch 12: sharing ----------------------------------------------------------

    def sharing(self) -> None:
        ec2, rds, rs = self.client("ec2"), self.client("rds"), self.client("redshift")
        sid = ec2.create_snapshot(VolumeId=self.volume)["SnapshotId"]

        def volume_permissions() -> list[dict[str, str]]:
            got = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
            return sorted(got["CreateVolumePermissions"], key=json.dumps)

        ec2.modify_snapshot_attribute(
            SnapshotId=sid, Attribute="createVolumePermission",
            CreateVolumePermission={"Add": [{"UserId": OTHER_ACCOUNT}, {"UserId": "444455556666"}]},
        )
        assert volume_permissions() == [{"UserId": OTHER_ACCOUNT}, {"UserId": "444455556666"}], volume_permissions()
        ec2.modify_snapshot_attribute(
            SnapshotId=sid, Attribute="createVolumePermission",
            CreateVolumePermission={"Remove": [{"UserId": "444455556666"}]},
        )
        assert volume_permissions() == [{"UserId": OTHER_ACCOUNT}], volume_permissions()
        ec2.modify_snapshot_attribute(
            SnapshotId=sid, Attribute="createVolumePermission", OperationType="remove", UserIds=[OTHER_ACCOUNT]
        )
        assert volume_permissions() == [], volume_permissions()
        ec2.modify_snapshot_attribute(
            SnapshotId=sid, Attribute="createVolumePermission", OperationType="add", UserIds=[OTHER_ACCOUNT]
        )
        ec2.delete_snapshot(SnapshotId=sid)  # AWS lets the owner delete a shared snapshot

        image = ec2.create_image(InstanceId=self.instance, Name=self.name("shared"))["ImageId"]
        ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Add": [{"UserId": OTHER_ACCOUNT}]})
        got = ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"]
        assert got == [{"UserId": OTHER_ACCOUNT}], got
        ec2.modify_image_attribute(ImageId=image, LaunchPermission={"Remove": [{"UserId": OTHER_ACCOUNT}]})
        assert ec2.describe_image_attribute(ImageId=image, Attribute="launchPermission")["LaunchPermissions"] == []

        name = self.name("shared-db")
        rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=name)
        rds.modify_db_snapshot_attribute(DBSnapshotIdentifier=name, AttributeName="restore", ValuesToAdd=[OTHER_ACCOUNT])
        attrs = rds.describe_db_snapshot_attributes(DBSnapshotIdentifier=name)["DBSnapshotAttributesResult"]
        assert attrs["DBSnapshotAttributes"] == [{"AttributeName": "restore", "AttributeValues": [OTHER_ACCOUNT]}], attrs
        rds.delete_db_snapshot(DBSnapshotIdentifier=name)  # AWS lets the owner delete a shared snapshot
        name = self.name("shared-cl")
        rds.create_db_cluster_snapshot(DBClusterIdentifier="cl1", DBClusterSnapshotIdentifier=name)
        rds.modify_db_cluster_snapshot_attribute(
            DBClusterSnapshotIdentifier=name, AttributeName="restore", ValuesToAdd=[OTHER_ACCOUNT]
        )
        attrs = rds.describe_db_cluster_snapshot_attributes(DBClusterSnapshotIdentifier=name)[
            "DBClusterSnapshotAttributesResult"]["DBClusterSnapshotAttributes"]
        assert attrs == [{"AttributeName": "restore", "AttributeValues": [OTHER_ACCOUNT]}], attrs
        rds.delete_db_cluster_snapshot(DBClusterSnapshotIdentifier=name)

        name = self.name("shared-rs")
        created = rs.create_cluster_snapshot(ClusterIdentifier="rs1", SnapshotIdentifier=name)["Snapshot"]
        assert "AccountsWithRestoreAccess" not in created, created
        got = rs.authorize_snapshot_access(SnapshotIdentifier=name, AccountWithRestoreAccess=OTHER_ACCOUNT)["Snapshot"]
        assert got["AccountsWithRestoreAccess"] == [{"AccountId": OTHER_ACCOUNT}], got
        described = rs.describe_cluster_snapshots(SnapshotIdentifier=name)["Snapshots"][0]
        assert described["AccountsWithRestoreAccess"] == [{"AccountId": OTHER_ACCOUNT}], described
        self.expect_error(
            lambda: rs.authorize_snapshot_access(SnapshotIdentifier=name, AccountWithRestoreAccess=OTHER_ACCOUNT),
            "AuthorizationAlreadyExists", 400, "authorizing twice",
        )
        self.expect_error(
            lambda: rs.delete_cluster_snapshot(SnapshotIdentifier=name),
            "InvalidClusterSnapshotState", 400, "deleting an authorized snapshot",
        )
        arn = f"arn:aws:redshift:us-east-1:123456789012:snapshot:rs1/{name}"
        got = rs.revoke_snapshot_access(SnapshotArn=arn, AccountWithRestoreAccess=OTHER_ACCOUNT)["Snapshot"]
        assert "AccountsWithRestoreAccess" not in got, got
        self.expect_error(
            lambda: rs.revoke_snapshot_access(SnapshotIdentifier=name, AccountWithRestoreAccess=OTHER_ACCOUNT),
            "AuthorizationNotFound", 404, "revoking twice",  # the model's HTTP status for it
        )
        self.expect_error(
            lambda: rs.authorize_snapshot_access(SnapshotIdentifier="nope", AccountWithRestoreAccess=OTHER_ACCOUNT),
            "ClusterSnapshotNotFound", 404, "authorizing a missing snapshot",
        )
        rs.delete_cluster_snapshot(SnapshotIdentifier=name)


def check_missing_image_attribute(check: "Check") -> None:
    """Patch 13: DescribeImageAttribute of a missing or deregistered AMI."""
    ec2 = check.client("ec2", "harness")
    check.expect_error(
        lambda: ec2.describe_image_attribute(ImageId="ami-12345678", Attribute="launchPermission"),
        "InvalidAMIID.NotFound", 400, "a missing AMI",
    )
    iid = ec2.create_image(InstanceId=check.instance, Name=check.name("gone"))["ImageId"]
    perms = ec2.describe_image_attribute(ImageId=iid, Attribute="launchPermission")
    assert perms.get("LaunchPermissions", []) == [], perms
    ec2.deregister_image(ImageId=iid)
    code, _ = check.error(
        lambda: ec2.describe_image_attribute(ImageId=iid, Attribute="launchPermission")
    )
    assert code in ("InvalidAMIID.Unavailable", "InvalidAMIID.NotFound"), code


def check_assume_role_needs_the_role(check: "Check") -> None:
    """Patch 14: AssumeRole of a missing role, or without its external id, is AccessDenied."""
    sts = check.client("sts", "harness")
    other = "444455556666"
    arn = f"arn:aws:iam::{other}:role/strongroom"
    code, _ = check.error(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="strongroom"))
    assert code == "AccessDenied", code
    iam = check.client("iam", "harness")
    iam.meta.events.register("before-sign", lambda request, **_: request.headers.__setitem__("x-moto-account-id", other))
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Condition": {"StringEquals": {"sts:ExternalId": "ext-1"}}}]}
    iam.create_role(RoleName="strongroom", AssumeRolePolicyDocument=json.dumps(trust))
    code, _ = check.error(lambda: sts.assume_role(RoleArn=arn, RoleSessionName="strongroom"))
    assert code == "AccessDenied", f"without the external id: {code}"
    creds = sts.assume_role(RoleArn=arn, RoleSessionName="strongroom", ExternalId="ext-1")["Credentials"]
    assert creds["AccessKeyId"], creds


def check_distributed_map(check: "Check") -> None:
    """Patch 15: a Distributed Map reading S3 (JSON, JSONL), with child
    executions, the failure threshold and ResultWriter's files."""
    s3, sfn = check.client("s3", "harness"), check.client("stepfunctions", "harness")
    bucket = "strongroom-dmap"
    s3.create_bucket(Bucket=bucket)
    items = [{"id": i, "ok": i % 3 != 0} for i in range(6)]  # ids 0 and 3 fail
    s3.put_object(Bucket=bucket, Key="in/items.json", Body=json.dumps(items).encode())
    s3.put_object(Bucket=bucket, Key="in/items.jsonl", Body="\n".join(json.dumps(i) for i in items).encode())
    role = "arn:aws:iam::123456789012:role/strongroom-sfn"

    def definition(input_type: str, key: str, execution_type: str, tolerance: dict[str, Any], prefix: str | None) -> str:
        writer: dict[str, Any] = {"Bucket": bucket}
        if prefix == "from-input":
            # Paths resolved against the state's input (the run input), not the results.
            writer = {"Bucket.$": "$.out.bucket", "Prefix.$": "$.out.prefix"}
        elif prefix is not None:
            writer["Prefix"] = prefix
        return json.dumps({"StartAt": "Fan", "States": {"Fan": {
            "Type": "Map",
            "Label": "items",
            "ItemReader": {
                "Resource": "arn:aws:states:::s3:getObject",
                "ReaderConfig": {"InputType": input_type},
                "Parameters": {"Bucket": bucket, "Key": key},
            },
            "ItemSelector": {"id.$": "$$.Map.Item.Value.id", "ok.$": "$$.Map.Item.Value.ok",
                             "index.$": "$$.Map.Item.Index", "run.$": "$.run"},
            "ItemProcessor": {
                "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": execution_type},
                "StartAt": "Check",
                "States": {
                    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.ok", "BooleanEquals": False, "Next": "Boom"}],
                              "Default": "Done"},
                    "Boom": {"Type": "Fail", "Error": "Item.Bad", "Cause": "item refused"},
                    "Done": {"Type": "Pass", "Parameters": {"id.$": "$.id", "doubled.$": "States.MathAdd($.id, $.id)",
                                                            "run.$": "$.run"}, "End": True},
                },
            },
            "MaxConcurrency": 2,
            "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": writer},
            "End": True,
            **tolerance,
        }}})

    def run(name: str, text: str) -> dict[str, Any]:
        arn = sfn.create_state_machine(name=name, definition=text, roleArn=role)["stateMachineArn"]
        run_input = {"run": name, "out": {"bucket": bucket, "prefix": "from-input"}}
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(run_input))["executionArn"]
        deadline = time.time() + 60
        while True:
            described = sfn.describe_execution(executionArn=execution)
            if described["status"] != "RUNNING":
                return described
            assert time.time() < deadline, f"{name} still running"
            time.sleep(0.2)

    def read(key: str) -> Any:
        return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())

    def results(name: str, execution: dict[str, Any], prefix: str | None) -> None:
        runs = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
        assert len(runs) == 1, runs
        map_run = runs[0]["mapRunArn"]
        run_id = map_run.split(":")[-1]
        base = f"{prefix.rstrip('/')}/{run_id}/" if prefix else f"{run_id}/"
        manifest = read(base + "manifest.json")
        assert manifest["DestinationBucket"] == bucket and manifest["MapRunArn"] == map_run, manifest
        files = manifest["ResultFiles"]
        assert files["PENDING"] == [], files
        assert [f["Key"] for f in files["SUCCEEDED"]] == [base + "SUCCEEDED_0.json"], files
        assert [f["Key"] for f in files["FAILED"]] == [base + "FAILED_0.json"], files
        for entry in files["SUCCEEDED"] + files["FAILED"]:
            size = s3.head_object(Bucket=bucket, Key=entry["Key"])["ContentLength"]
            assert entry["Size"] == size, (entry, size)
        succeeded, failed = read(base + "SUCCEEDED_0.json"), read(base + "FAILED_0.json")
        machine = f"arn:aws:states:us-east-1:123456789012:stateMachine:{name}/items"
        assert sorted(json.loads(r["Input"])["id"] for r in succeeded) == [1, 2, 4, 5], succeeded
        for row in succeeded:
            given = json.loads(row["Input"])
            assert given == {"id": given["id"], "ok": True, "index": given["id"], "run": name}, row
            assert json.loads(row["Output"]) == {"id": given["id"], "doubled": 2 * given["id"], "run": name}, row
            assert row["Status"] == "SUCCEEDED" and row["OutputDetails"] == {"Included": True}, row
        assert sorted(json.loads(r["Input"])["id"] for r in failed) == [0, 3], failed
        for row in failed:
            assert row["Status"] == "FAILED" and row["Error"] == "Item.Bad" and row["Cause"] == "item refused", row
            assert "Output" not in row, row
        for row in succeeded + failed:
            assert row["StateMachineArn"] == machine, row
            assert row["ExecutionArn"] == f"arn:aws:states:us-east-1:123456789012:execution:{name}/items:{row['Name']}", row
            assert row["InputDetails"] == {"Included": True} and row["StartDate"] <= row["StopDate"], row
        children = sfn.list_executions(mapRunArn=map_run)["executions"]
        assert len(children) == len(items), children
        assert {c["executionArn"] for c in children} == {r["ExecutionArn"] for r in succeeded + failed}, children
        assert sorted(c["status"] for c in children) == ["FAILED"] * 2 + ["SUCCEEDED"] * 4, children
        for c in children:  # every child has a history of its own
            events = sfn.get_execution_history(executionArn=c["executionArn"])["events"]
            end = {"SUCCEEDED": "ExecutionSucceeded", "FAILED": "ExecutionFailed"}[c["status"]]
            assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == end, events
            assert [e["id"] for e in events] == list(range(1, len(events) + 1)), events
            assert any(e["type"] == "ChoiceStateEntered" for e in events), events
        parent = sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
        assert not any(e["type"] == "ChoiceStateEntered" for e in parent), "the children's states are theirs"
        only_failed = sfn.list_executions(mapRunArn=map_run, statusFilter="FAILED")["executions"]
        assert {c["executionArn"] for c in only_failed} == {r["ExecutionArn"] for r in failed}, only_failed

    cases = [
        # name, input type, key, execution type, tolerance, prefix, status
        ("dmap-json-tolerant", "JSON", "in/items.json", "STANDARD", {"ToleratedFailurePercentage": 50}, "out", "SUCCEEDED"),
        ("dmap-jsonl-express", "JSONL", "in/items.jsonl", "EXPRESS", {"ToleratedFailureCount": 2}, None, "SUCCEEDED"),
        ("dmap-json-strict", "JSON", "in/items.json", "STANDARD", {}, "strict/", "FAILED"),
        ("dmap-jsonl-count", "JSONL", "in/items.jsonl", "EXPRESS", {"ToleratedFailureCount": 1}, "count", "FAILED"),
        ("dmap-json-percent", "JSON", "in/items.json", "STANDARD", {"ToleratedFailurePercentage": 25.0}, "pct", "FAILED"),
        ("dmap-writer-paths", "JSONL", "in/items.jsonl", "STANDARD", {"ToleratedFailurePercentage": 100}, "from-input",
         "SUCCEEDED"),
    ]
    for name, input_type, key, execution_type, tolerance, prefix, status in cases:
        execution = run(name, definition(input_type, key, execution_type, tolerance, prefix))
        assert execution["status"] == status, (name, execution)
        if status == "SUCCEEDED":
            output = json.loads(execution["output"])
            runs = sfn.list_map_runs(executionArn=execution["executionArn"])["mapRuns"]
            run_id = runs[0]["mapRunArn"].split(":")[-1]
            manifest = f"{prefix}/{run_id}/manifest.json" if prefix else f"{run_id}/manifest.json"
            assert output == {"MapRunArn": runs[0]["mapRunArn"],
                              "ResultWriterDetails": {"Bucket": bucket, "Key": manifest}}, output
        else:
            assert execution.get("error") == "States.ExceedToleratedFailureThreshold", (name, execution)
        results(name, execution, prefix)
    # Items that cannot be read: the Map fails with States.ItemReaderFailed.
    gone = run("dmap-gone", definition("JSONL", "in/missing.jsonl", "STANDARD", {}, "gone"))
    assert gone["status"] == "FAILED" and gone.get("error") == "States.ItemReaderFailed", gone
    assert "NoSuchKey" in (gone.get("cause") or ""), gone
    # No items at all (a policy that selects nothing): the Map Run succeeds
    # and its manifest lists no result file.
    s3.put_object(Bucket=bucket, Key="in/empty.jsonl", Body=b"")
    execution = run("dmap-empty", definition("JSONL", "in/empty.jsonl", "STANDARD", {}, "empty"))
    assert execution["status"] == "SUCCEEDED", execution
    manifest = read(json.loads(execution["output"])["ResultWriterDetails"]["Key"])
    assert manifest["ResultFiles"] == {"FAILED": [], "PENDING": [], "SUCCEEDED": []}, manifest
    check.expect_error(
        lambda: sfn.list_executions(mapRunArn="arn:aws:states:us-east-1:123456789012:mapRun:nope/items:x"),
        "ResourceNotFound", 400, "children of a missing Map Run",
    )


def check_organizations_listing(check: "Check") -> None:
    """Patch 16: listing an organization's units needs its management account."""
    org = check.client("organizations", "harness")
    check.expect_error(lambda: org.list_accounts_for_parent(ParentId="r-ab12"),
                       "AWSOrganizationsNotInUseException", 400, "no organization")
    org.create_organization(FeatureSet="ALL")
    root = org.list_roots()["Roots"][0]["Id"]
    member = org.create_account(Email="m@example.com", AccountName="member")["CreateAccountStatus"]["AccountId"]
    listed = [a["Id"] for a in org.list_accounts_for_parent(ParentId=root)["Accounts"]]
    assert member in listed, listed
    assert org.list_organizational_units_for_parent(ParentId=root)["OrganizationalUnits"] == []
    as_member = check.client("organizations", "harness")

    def in_member(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = member

    as_member.meta.events.register("before-sign", in_member)
    for call in (lambda: as_member.list_accounts_for_parent(ParentId=root),
                 lambda: as_member.list_organizational_units_for_parent(ParentId=root)):
        check.expect_error(call, "AccessDeniedException", 400, "a member account lists")


def check_vanishing_keys(check: "Check") -> None:
    """Patch 10: objects Strongroom writes under a vanishing key are gone at once."""
    harness, strongroom = check.client("s3", "harness"), check.client("s3", "strongroom")
    harness.create_bucket(Bucket="strongroom-vanish")
    check.faults({"vanishing_keys": ["batches.jsonl"]})
    strongroom.put_object(Bucket="strongroom-vanish", Key="runs/p/e/batches.jsonl", Body=b"{}\n")
    strongroom.put_object(Bucket="strongroom-vanish", Key="runs/p/e/discovery.json", Body=b"{}")
    harness.put_object(Bucket="strongroom-vanish", Key="mine/batches.jsonl", Body=b"{}\n")
    keys = sorted(o["Key"] for o in harness.list_objects_v2(Bucket="strongroom-vanish").get("Contents", []))
    assert keys == ["mine/batches.jsonl", "runs/p/e/discovery.json"], keys
    assert check.http("GET", "/_strongroom/faults")[1]["vanishing_keys"] == ["batches.jsonl"]


# -- patch 18: IAM enforced for the vault roles --------------------------------------

VAULT_TEMPLATE = Path(__file__).resolve().parents[2] / "infra/vault-account.yaml"
VAULT_ACCOUNT = "210987654321"
VAULT_REGION = "us-west-2"
VAULT_PARAMETERS = {
    "SourceAccountId": "123456789012",
    "SourceCopyRoleArn": "arn:aws:iam::123456789012:role/strongroom-copy",
    "SourcePruneRoleArn": "arn:aws:iam::123456789012:role/strongroom-prune",
    "SourceRestoreRoleArn": "arn:aws:iam::123456789012:role/strongroom-restore",
    "ExternalId": "",
}
ENFORCE = {"Key": "strongroom-emulator:enforce-iam", "Value": "true"}
MANAGED = [{"Key": "strongroom:managed", "Value": "true"}]
NO_VALUE = object()


def check_restores(check: "Check") -> None:
    """Patch 19: images keep every mapping and launch with one volume per
    mapping; volumes and DB instances restore from what another account
    shared, and only then; a DB restore does not inherit the source's subnet
    group."""
    ec2 = check.client("ec2", "harness")
    volumes = [ec2.create_volume(AvailabilityZone="us-east-1a", Size=size, VolumeType="gp3")["VolumeId"]
               for size in (8, 20, 30)]
    snaps = [ec2.create_snapshot(VolumeId=v)["SnapshotId"] for v in volumes]
    devices = ["/dev/xvda", "/dev/sdf", "/dev/sdg"]
    image = ec2.register_image(
        Name=check.name("restore"), RootDeviceName="/dev/xvda", Architecture="arm64", VirtualizationType="hvm",
        BlockDeviceMappings=[{"DeviceName": d, "Ebs": {"SnapshotId": s, "VolumeType": "gp3"}} for d, s in zip(devices, snaps)],
        TagSpecifications=[{"ResourceType": "image", "Tags": [{"Key": "strongroom:restore", "Value": "r-1"}]}],
    )["ImageId"]
    described = ec2.describe_images(ImageIds=[image])["Images"][0]
    got = sorted((m["DeviceName"], m["Ebs"]["SnapshotId"], m["Ebs"]["VolumeSize"]) for m in described["BlockDeviceMappings"])
    assert got == sorted(zip(devices, snaps, (8, 20, 30))), got
    assert described["RootDeviceName"] == "/dev/xvda" and described["Architecture"] == "arm64", described
    assert {"Key": "strongroom:restore", "Value": "r-1"} in described.get("Tags", []), described
    check.expect_error(lambda: ec2.delete_snapshot(SnapshotId=snaps[2]), "InvalidSnapshot.InUse", 400,
                       "a snapshot any mapping of a registered image uses")
    instance = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="m7g.large")["Instances"][0]
    attached = ec2.describe_instances(InstanceIds=[instance["InstanceId"]])["Reservations"][0]["Instances"][0]
    made = {}
    for m in attached["BlockDeviceMappings"]:
        v = ec2.describe_volumes(VolumeIds=[m["Ebs"]["VolumeId"]])["Volumes"][0]
        made[m["DeviceName"]] = (v["SnapshotId"], v["Size"])
    assert made == {d: (s, z) for d, s, z in zip(devices, snaps, (8, 20, 30))}, made
    ec2.deregister_image(ImageId=image)
    assert len(ec2.describe_snapshots(SnapshotIds=snaps)["Snapshots"]) == 3, "deregistering keeps the snapshots"

    # Another account's snapshot: a volume only once it is shared.
    other = "555566667777"

    def as_other(client: Any) -> Any:
        client.meta.events.register("before-sign", lambda request, **_: request.headers.__setitem__("x-moto-account-id", other))
        return client

    theirs = as_other(check.client("ec2", "harness"))
    their_volume = theirs.create_volume(AvailabilityZone="us-east-1a", Size=5)["VolumeId"]
    their_snap = theirs.create_snapshot(VolumeId=their_volume)["SnapshotId"]
    check.expect_error(lambda: ec2.create_volume(AvailabilityZone="us-east-1a", SnapshotId=their_snap),
                       "InvalidSnapshot.NotFound", 400, "a snapshot another account did not share")
    theirs.modify_snapshot_attribute(SnapshotId=their_snap, Attribute="createVolumePermission",
                                     OperationType="add", UserIds=[ACCOUNT])
    v = ec2.create_volume(AvailabilityZone="us-east-1a", SnapshotId=their_snap)
    assert v["SnapshotId"] == their_snap and v["Size"] == 5, v

    # Another account's DB snapshot, by ARN: only once shared; no inherited subnet group.
    their_rds = as_other(check.client("rds", "harness"))
    their_ec2 = theirs
    vpc = their_ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [their_ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24", AvailabilityZone=f"us-east-1{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    their_rds.create_db_subnet_group(DBSubnetGroupName="theirs", DBSubnetGroupDescription="x", SubnetIds=subnets)
    their_rds.create_db_instance(DBInstanceIdentifier="theirs", Engine="postgres", DBInstanceClass="db.t3.micro",
                                 AllocatedStorage=20, MasterUsername="admin1", MasterUserPassword="not-a-secret-1",
                                 DBSubnetGroupName="theirs")
    their_rds.create_db_snapshot(DBInstanceIdentifier="theirs", DBSnapshotIdentifier="theirs-1")
    arn = f"arn:aws:rds:us-east-1:{other}:snapshot:theirs-1"
    rds = check.client("rds", "harness")
    check.expect_error(lambda: rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="mine", DBSnapshotIdentifier=arn),
                       "DBSnapshotNotFound", 404, "a DB snapshot another account did not share")
    their_rds.modify_db_snapshot_attribute(DBSnapshotIdentifier="theirs-1", AttributeName="restore", ValuesToAdd=[ACCOUNT])
    db = rds.restore_db_instance_from_db_snapshot(DBInstanceIdentifier="mine", DBSnapshotIdentifier=arn)["DBInstance"]
    assert db["DBInstanceIdentifier"] == "mine", db
    assert (db.get("DBSubnetGroup") or {}).get("DBSubnetGroupName") != "theirs", db


def load_template(path: Path) -> dict[str, Any]:
    """A CloudFormation YAML template, its short tags (!Sub, !Ref, !If, ...) as their long forms."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def short_form(loader: Any, suffix: str, node: Any) -> dict[str, Any]:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        if suffix == "Ref":
            return {"Ref": value}
        if suffix == "Condition":
            return {"Condition": value}
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", short_form)
    return yaml.load(path.read_text(), Loader)  # noqa: S506 - SafeLoader with the CloudFormation tags


def render(node: Any, refs: dict[str, Any], conditions: dict[str, bool]) -> Any:
    """Resolves Ref, Fn::Sub, Fn::GetAtt, Fn::If and the condition functions; drops AWS::NoValue.
    A reference it does not know fails (KeyError): nothing is left unresolved."""
    if isinstance(node, list):
        items = [render(n, refs, conditions) for n in node]
        return [i for i in items if i is not NO_VALUE]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (fn, arg), = node.items()
        if fn == "Ref":
            return refs[arg]
        if fn == "Fn::GetAtt":
            return refs[".".join(arg)]
        if fn == "Fn::Sub":
            text, own = (arg, {}) if isinstance(arg, str) else (arg[0], render(arg[1], refs, conditions))
            return re.sub(r"\$\{([^!}][^}]*)\}", lambda m: str(own[m[1]] if m[1] in own else refs[m[1]]), text)
        if fn == "Fn::If":
            return render(arg[1] if conditions[arg[0]] else arg[2], refs, conditions)
        if fn == "Fn::Equals":
            return render(arg[0], refs, conditions) == render(arg[1], refs, conditions)
        if fn == "Fn::Not":
            return not render(arg[0], refs, conditions)
        if fn == "Fn::And":
            return all(render(a, refs, conditions) for a in arg)
        if fn == "Fn::Or":
            return any(render(a, refs, conditions) for a in arg)
        if fn == "Condition":
            return conditions[arg]
        if fn.startswith("Fn::"):
            raise KeyError(f"{fn} is not rendered")
    out = {k: render(v, refs, conditions) for k, v in node.items()}
    return {k: v for k, v in out.items() if v is not NO_VALUE}


def check_vault_roles_enforced(check: "Check") -> None:
    """Patch 18: infra/vault-account.yaml's VaultCopyRole and VaultPruneRole,
    rendered (SourceAccountId 123456789012, no external id, AWS::AccountId
    210987654321, AWS::Region us-west-2) and created in the vault account
    tagged for enforcement, judged by moto's IAM evaluator: the source's copy
    role cannot delete, deregister, unlock, share, disable or archive a vault
    copy (EBS, RDS, and AMIs when the template copies them), nor schedule the
    deletion of or disable the key, even with a broader policy attached; it
    can copy, tag at creation, lock (managed copies only) and describe. The
    prune role deletes an unlocked managed copy (and deregisters a managed
    AMI when the template lets it), not one without the tag, not a locked
    one (the lock refuses it), and cannot unlock. A role not tagged for
    enforcement stays unrestricted, even with a Deny-everything policy.

    What the evaluator judges here (iam_enforcement.py): every statement's
    Action and Resource (snapshot, DB snapshot and key ARNs named per
    action); the explicit Denies (Resource "*", no condition) as AWS does;
    StringEquals on aws:ResourceTag/strongroom:managed,
    rds:snapshot-tag/strongroom:managed and ec2:CreateAction, from the
    resource's tags and the creating action. Not judged (treated as met):
    kms:ViaService, kms:GrantIsForAWSResource, aws:TagKeys
    (ForAllValues), the trust policy's principal and aws:PrincipalAccount;
    the key's policy takes no part."""
    template = load_template(VAULT_TEMPLATE)
    params = {name: spec.get("Default") for name, spec in template["Parameters"].items()}
    params.update(VAULT_PARAMETERS)
    assert set(params) == set(template["Parameters"]), sorted(params)
    refs: dict[str, Any] = {
        **params, "AWS::Partition": "aws", "AWS::AccountId": VAULT_ACCOUNT, "AWS::Region": VAULT_REGION,
        "AWS::NoValue": NO_VALUE,
    }
    conditions: dict[str, bool] = {}
    for name, expression in template["Conditions"].items():
        conditions[name] = bool(render(expression, refs, conditions))
    assert conditions == {"HasExternalId": False, "HasPruneRole": True, "HasRestoreRole": True}, conditions
    # VaultRestoreRole is created (rendered, enforced) with the others; its calls are not exercised here.
    names = {"VaultCopyRole": "strongroom-vault-VaultCopyRole", "VaultPruneRole": "strongroom-vault-VaultPruneRole",
             "VaultRestoreRole": "strongroom-vault-VaultRestoreRole"}
    for logical, name in names.items():
        refs[logical] = name
        refs[f"{logical}.Arn"] = f"arn:aws:iam::{VAULT_ACCOUNT}:role/{name}"

    def in_vault(client: Any) -> Any:
        client.meta.events.register(
            "before-sign", lambda request, **_: request.headers.__setitem__("x-moto-account-id", VAULT_ACCOUNT))
        return client

    iam = in_vault(check.client("iam", "harness"))
    v_ec2 = in_vault(check.client("ec2", "harness", VAULT_REGION))
    v_rds = in_vault(check.client("rds", "harness", VAULT_REGION))
    v_kms = in_vault(check.client("kms", "harness", VAULT_REGION))
    key = template["Resources"]["VaultKey"]["Properties"]
    key_arn = v_kms.create_key(
        Description=key["Description"], Policy=json.dumps(render(key["KeyPolicy"], refs, conditions)),
    )["KeyMetadata"]["Arn"]
    refs["VaultKey"], refs["VaultKey.Arn"] = key_arn.rsplit("/", 1)[1], key_arn
    allowed: dict[str, set[str]] = {}  # role -> the actions its Allow statements name
    for logical, name in names.items():
        resource = template["Resources"][logical]
        assert resource.get("Condition") is None or conditions[resource["Condition"]], logical
        props = render(resource["Properties"], refs, conditions)
        allowed[logical] = {
            a for p in props["Policies"] for st in p["PolicyDocument"]["Statement"] if st["Effect"] == "Allow"
            for a in ([st["Action"]] if isinstance(st["Action"], str) else st["Action"])
        }
        # Anything else that grants (ManagedPolicyArns, a boundary) would go unjudged: fail instead.
        assert set(props) <= {"Description", "AssumeRolePolicyDocument", "Policies"}, sorted(props)
        iam.create_role(
            RoleName=name, Description=props["Description"],
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]), Tags=[ENFORCE],
        )
        for policy in props["Policies"]:
            iam.put_role_policy(
                RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(policy["PolicyDocument"]))

    def assume(role_arn: str, session: str) -> Callable[..., Any]:
        """Clients with the credentials AssumeRole gives the home account (as the source's functions get them)."""
        creds = check.client("sts", "harness").assume_role(RoleArn=role_arn, RoleSessionName=session)["Credentials"]

        def client(service: str, region: str = VAULT_REGION) -> Any:
            return boto3.client(
                service, endpoint_url=check.endpoint, region_name=region, aws_access_key_id=creds["AccessKeyId"],
                aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
                config=Config(retries={"total_max_attempts": 1}),
            )

        return client

    def refused(call: Callable[[], Any], code: str, status: int, what: str, why: str = "explicit deny") -> None:
        try:
            call()
        except ClientError as e:
            got = (e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"])
            message = e.response["Error"].get("Message", "")
            assert got == (code, status), f"{what}: expected {code} HTTP {status}, got {got} {message}"
            if code == "UnauthorizedOperation":
                assert message.startswith("You are not authorized to perform this operation."), message
            assert why in message, f"{what}: {message!r} does not say {why!r}"
            return
        raise AssertionError(f"{what}: allowed, expected {code} HTTP {status}")

    def snapshot_exists(sid: str) -> bool:
        return bool(v_ec2.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [sid]}])["Snapshots"])

    # The source's recovery points, shared with the vault account, as the copy function finds them.
    h_ec2, h_rds = check.client("ec2", "harness"), check.client("rds", "harness")
    source = h_ec2.create_snapshot(VolumeId=check.volume)["SnapshotId"]
    h_ec2.modify_snapshot_attribute(SnapshotId=source, Attribute="createVolumePermission",
                                    CreateVolumePermission={"Add": [{"UserId": VAULT_ACCOUNT}]})
    db_source = check.name("strongroom-vault-db")
    h_rds.create_db_snapshot(DBInstanceIdentifier="db1", DBSnapshotIdentifier=db_source)
    h_rds.modify_db_snapshot_attribute(DBSnapshotIdentifier=db_source, AttributeName="restore",
                                       ValuesToAdd=[VAULT_ACCOUNT])
    db_source_arn = f"arn:aws:rds:us-east-1:123456789012:snapshot:{db_source}"
    # A snapshot of the vault account's own, not managed.
    volume = v_ec2.create_volume(AvailabilityZone=f"{VAULT_REGION}a", Size=1)["VolumeId"]
    unmanaged = v_ec2.create_snapshot(VolumeId=volume)["SnapshotId"]

    # -- the copy role -------------------------------------------------------------
    as_copy = assume(refs["VaultCopyRole.Arn"], "strongroom-copy")
    who = as_copy("sts").get_caller_identity()
    assert who["Account"] == VAULT_ACCOUNT and ":assumed-role/strongroom-vault-VaultCopyRole/" in who["Arn"], who
    ec2, rds, kms = as_copy("ec2"), as_copy("rds"), as_copy("kms")

    def copy() -> str:
        return ec2.copy_snapshot(
            SourceSnapshotId=source, SourceRegion="us-east-1", Encrypted=True, KmsKeyId=key_arn,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": MANAGED}],
        )["SnapshotId"]

    kept, pruned = copy(), copy()  # CopySnapshot, with ec2:CreateTags at creation
    assert v_ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [kept]}])["Tags"][0]["Value"] == "true"
    assert {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]} >= {kept, pruned}
    ec2.lock_snapshot(SnapshotId=kept, LockMode="compliance", LockDuration=1)  # a managed copy
    assert [s["SnapshotId"] for s in ec2.describe_locked_snapshots(SnapshotIds=[kept])["Snapshots"]] == [kept]
    unauthorized = ("UnauthorizedOperation", 403)
    refused(lambda: ec2.delete_snapshot(SnapshotId=pruned), *unauthorized, "copy role DeleteSnapshot")
    assert snapshot_exists(pruned), "a refused DeleteSnapshot deleted the copy"
    refused(lambda: ec2.unlock_snapshot(SnapshotId=kept), *unauthorized, "copy role UnlockSnapshot")
    assert v_ec2.describe_locked_snapshots(SnapshotIds=[kept])["Snapshots"], "a refused unlock unlocked"
    refused(lambda: ec2.modify_snapshot_attribute(
        SnapshotId=pruned, Attribute="createVolumePermission", CreateVolumePermission={"Add": [{"Group": "all"}]},
    ), *unauthorized, "copy role ModifySnapshotAttribute (public)")
    refused(lambda: ec2.modify_snapshot_attribute(
        SnapshotId=pruned, Attribute="createVolumePermission", OperationType="add", UserIds=[OTHER_ACCOUNT],
    ), *unauthorized, "copy role ModifySnapshotAttribute (another account)")
    perms = v_ec2.describe_snapshot_attribute(SnapshotId=pruned, Attribute="createVolumePermission")
    assert not perms["CreateVolumePermissions"], perms
    refused(lambda: ec2.modify_snapshot_tier(SnapshotId=pruned, StorageTier="archive"), *unauthorized,
            "copy role ModifySnapshotTier")
    refused(lambda: ec2.deregister_image(ImageId="ami-12345678"), *unauthorized, "copy role DeregisterImage")
    # Allowed only as the template says: tags only at creation, locks only on managed copies.
    refused(lambda: ec2.create_tags(Resources=[pruned], Tags=[{"Key": "strongroom:managed", "Value": "false"}]),
            *unauthorized, "copy role CreateTags after creation", "because no identity-based policy allows")
    refused(lambda: ec2.lock_snapshot(SnapshotId=unmanaged, LockMode="governance", LockDuration=1),
            *unauthorized, "copy role LockSnapshot of an unmanaged snapshot", "because no identity-based policy")
    refused(lambda: ec2.create_volume(AvailabilityZone=f"{VAULT_REGION}a", Size=1), *unauthorized,
            "copy role CreateVolume", "because no identity-based policy allows")
    # AMIs, when the template copies them: CopyImage (and tags at creation), never
    # deregistered, shared or disabled.
    ami_copy = ami_unmanaged = None
    if "ec2:CopyImage" in allowed["VaultCopyRole"]:
        root = v_ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
        ami_unmanaged = v_ec2.register_image(
            Name=check.name("vault-ami"), RootDeviceName="/dev/sda1",
            BlockDeviceMappings=[{"DeviceName": "/dev/sda1", "Ebs": {"SnapshotId": root}}],
        )["ImageId"]
        ami_copy = ec2.copy_image(
            SourceImageId=ami_unmanaged, SourceRegion=VAULT_REGION, Name=check.name("vault-ami-copy"),
            TagSpecifications=[{"ResourceType": kind, "Tags": MANAGED} for kind in ("image", "snapshot")],
        )["ImageId"]
        v_ec2.create_tags(Resources=[ami_copy], Tags=MANAGED)  # moto's CopyImage drops TagSpecifications
        assert [i["ImageId"] for i in ec2.describe_images(ImageIds=[ami_copy])["Images"]] == [ami_copy]
        refused(lambda: ec2.deregister_image(ImageId=ami_copy), *unauthorized, "copy role DeregisterImage")
        refused(lambda: ec2.modify_image_attribute(
            ImageId=ami_copy, LaunchPermission={"Add": [{"Group": "all"}]}), *unauthorized,
            "copy role ModifyImageAttribute (public)")
        refused(lambda: ec2.disable_image(ImageId=ami_copy), *unauthorized, "copy role DisableImage")
    # RDS: copies of strongroom-* names only; never deleted or shared.
    db_copy = db_source
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier=db_source_arn, TargetDBSnapshotIdentifier=db_copy,
                         KmsKeyId=key_arn, Tags=MANAGED)
    db_untagged = check.name("strongroom-vault-untagged")
    rds.copy_db_snapshot(SourceDBSnapshotIdentifier=db_source_arn, TargetDBSnapshotIdentifier=db_untagged,
                         KmsKeyId=key_arn)
    assert rds.describe_db_snapshots(DBSnapshotIdentifier=db_copy)["DBSnapshots"], db_copy
    refused(lambda: rds.copy_db_snapshot(SourceDBSnapshotIdentifier=db_source_arn,
                                         TargetDBSnapshotIdentifier=check.name("elsewhere"), KmsKeyId=key_arn),
            "AccessDenied", 403, "copy role CopyDBSnapshot to another name", "because no identity-based policy")
    refused(lambda: rds.delete_db_snapshot(DBSnapshotIdentifier=db_copy), "AccessDenied", 403,
            "copy role DeleteDBSnapshot")
    refused(lambda: rds.modify_db_snapshot_attribute(
        DBSnapshotIdentifier=db_copy, AttributeName="restore", ValuesToAdd=["all"]),
        "AccessDenied", 403, "copy role ModifyDBSnapshotAttribute")
    assert v_rds.describe_db_snapshots(DBSnapshotIdentifier=db_copy)["DBSnapshots"], "a refused delete deleted"
    # The key: never disabled, nor its deletion scheduled.
    refused(lambda: kms.schedule_key_deletion(KeyId=key_arn, PendingWindowInDays=7), "AccessDeniedException", 400,
            "copy role ScheduleKeyDeletion")
    refused(lambda: kms.disable_key(KeyId=key_arn), "AccessDeniedException", 400, "copy role DisableKey")
    assert v_kms.describe_key(KeyId=key_arn)["KeyMetadata"]["KeyState"] == "Enabled"
    # A broader policy attached later (attached policies count): the explicit Deny still wins.
    broad = iam.create_policy(PolicyName="strongroom-vault-broad", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["ec2:*", "kms:*"], "Resource": "*"}]}),
    )["Policy"]["Arn"]
    iam.attach_role_policy(RoleName=names["VaultCopyRole"], PolicyArn=broad)
    ec2.delete_volume(VolumeId=ec2.create_volume(AvailabilityZone=f"{VAULT_REGION}a", Size=1)["VolumeId"])
    refused(lambda: ec2.delete_snapshot(SnapshotId=pruned), *unauthorized, "DeleteSnapshot with ec2:* attached")
    refused(lambda: ec2.unlock_snapshot(SnapshotId=kept), *unauthorized, "UnlockSnapshot with ec2:* attached")
    refused(lambda: kms.schedule_key_deletion(KeyId=key_arn), "AccessDeniedException", 400,
            "ScheduleKeyDeletion with kms:* attached")
    iam.detach_role_policy(RoleName=names["VaultCopyRole"], PolicyArn=broad)
    assert snapshot_exists(pruned) and snapshot_exists(kept)

    # -- the prune role --------------------------------------------------------------
    as_prune = assume(refs["VaultPruneRole.Arn"], "strongroom-prune")
    ec2, rds = as_prune("ec2"), as_prune("rds")
    assert {s["SnapshotId"] for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]} >= {kept, pruned}
    deleting = [{"Key": "strongroom:deleting", "Value": "true"}]
    refused(lambda: ec2.create_tags(Resources=[unmanaged], Tags=deleting), *unauthorized,
            "prune role marks an unmanaged snapshot", "because no identity-based policy allows")
    refused(lambda: ec2.delete_snapshot(SnapshotId=unmanaged), *unauthorized, "prune role deletes an unmanaged one",
            "because no identity-based policy allows")
    assert snapshot_exists(unmanaged)
    refused(lambda: ec2.unlock_snapshot(SnapshotId=kept), *unauthorized, "prune role UnlockSnapshot")
    check.expect_error(lambda: ec2.delete_snapshot(SnapshotId=kept), "SnapshotLocked", 400,
                       "prune role deletes a locked copy (allowed by IAM, refused by the lock)")
    ec2.create_tags(Resources=[pruned], Tags=deleting)
    ec2.delete_snapshot(SnapshotId=pruned)
    assert not snapshot_exists(pruned) and snapshot_exists(kept)
    if ami_copy and "ec2:DeregisterImage" in allowed["VaultPruneRole"]:
        refused(lambda: ec2.deregister_image(ImageId=ami_unmanaged), *unauthorized,
                "prune role deregisters an unmanaged AMI", "because no identity-based policy allows")
        ec2.deregister_image(ImageId=ami_copy)
        assert not v_ec2.describe_images(Filters=[{"Name": "image-id", "Values": [ami_copy]}])["Images"]
    refused(lambda: rds.delete_db_snapshot(DBSnapshotIdentifier=db_untagged), "AccessDenied", 403,
            "prune role deletes an untagged DB snapshot", "because no identity-based policy allows")
    rds.delete_db_snapshot(DBSnapshotIdentifier=db_copy)
    assert db_copy not in {s["DBSnapshotIdentifier"] for s in v_rds.describe_db_snapshots()["DBSnapshots"]}

    # -- not tagged for enforcement: unrestricted, whatever its policies ---------------------
    iam.create_role(RoleName="strongroom-vault-unenforced", AssumeRolePolicyDocument=json.dumps(
        render(template["Resources"]["VaultCopyRole"]["Properties"]["AssumeRolePolicyDocument"], refs, conditions)))
    iam.put_role_policy(RoleName="strongroom-vault-unenforced", PolicyName="deny-everything", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "*", "Resource": "*"}]}))
    ec2 = assume(f"arn:aws:iam::{VAULT_ACCOUNT}:role/strongroom-vault-unenforced", "strongroom-copy")("ec2")
    first = v_ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    ec2.delete_snapshot(SnapshotId=first)
    # The tag is read at each request: tagged, the same credentials are judged; untagged, not.
    iam.tag_role(RoleName="strongroom-vault-unenforced", Tags=[ENFORCE])
    second = v_ec2.create_snapshot(VolumeId=volume)["SnapshotId"]
    refused(lambda: ec2.delete_snapshot(SnapshotId=second), *unauthorized, "once tagged for enforcement")
    iam.untag_role(RoleName="strongroom-vault-unenforced", TagKeys=[ENFORCE["Key"]])
    ec2.delete_snapshot(SnapshotId=second)
    assert not snapshot_exists(first) and not snapshot_exists(second)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="strongroom-check-") as functions_dir, Emulator(
        functions_dir, {"STRONGROOM_EMULATOR_FAULTS": json.dumps(INITIAL)}
    ) as emulator:
        check = Check(emulator.endpoint)
        try:
            check.initial_from_environment()
            print("ok    faults from STRONGROOM_EMULATOR_FAULTS")
        except Exception:  # noqa: BLE001
            check.failures.append("faults from STRONGROOM_EMULATOR_FAULTS")
            print(f"FAIL  faults from STRONGROOM_EMULATOR_FAULTS\n{traceback.format_exc()}")
        check.faults({})
        check.setup()
        for name, section in [
            ("configuration endpoint", check.configuration),
            ("throttling shapes and exemptions", check.throttling),
            ("throttle fraction and seed", check.throttle_fraction),
            ("lost responses", check.lost_responses),
            ("pending describes", check.pending),
            ("eventual visibility", check.visibility),
            ("quotas and DescribeAccountAttributes", check.quotas),
            ("DeregisterImage with DeleteAssociatedSnapshots", check.deregister),
            ("sharing", check.sharing),
            ("DescribeImageAttribute of a missing AMI", lambda: check_missing_image_attribute(check)),
            ("AssumeRole needs the role", lambda: check_assume_role_needs_the_role(check)),
            ("Distributed Map", lambda: check_distributed_map(check)),
            ("Organizations listing needs the management account", lambda: check_organizations_listing(check)),
            ("vanishing keys", lambda: check_vanishing_keys(check)),
            ("images, launches and shared restores (patch 19)", lambda: check_restores(check)),
            ("IAM enforced for the vault roles (infra/vault-account.yaml)", lambda: check_vault_roles_enforced(check)),
        ]:
            check.run(name, section)
    if check.failures:
        sys.exit(f"{len(check.failures)} check(s) failed: {', '.join(check.failures)}")
    print("all checks passed")


if __name__ == "__main__":
    main()
