"""The Python client of the emulator, shared by `make demo` (demo.py) and
`make bench` (bench/bench.py); seed.py takes its boto3 clients from here too.

`Emulator` starts `tests/emulator/emulator.py` on a free loopback port and
talks to it: boto3 clients with dummy credentials, seeding an estate with
`tests/emulator/seed.py`, the call log (`/_strongroom/calls`), the backup
state machine (infra/statemachines/backup.asl.json, its function ARNs filled
in) and its executions, and the recovery points left afterwards. It stops the
emulator on `stop()` or at the end of a `with` block. (The Rust tests have
their own harness, tests/src/lib.rs.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
# The state machine's substitution variables and the functions they name.
FUNCTIONS = {
    "DiscoverFunctionArn": "discover",
    "SnapshotFunctionArn": "snapshot",
    "StatusFunctionArn": "status",
    "ReportFunctionArn": "report",
    "PruneFunctionArn": "prune",
    "CopyFunctionArn": "copy",
    "RestoreFunctionArn": "restore",
}


def aws_client(endpoint: str, service: str, region: str = "us-east-1") -> Any:
    """A boto3 client of the emulator at `endpoint`, with dummy credentials."""
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"max_attempts": 2}),
    )


def backup_definition(machine: str = "backup") -> str:
    """A state machine's ASL (`backup`, `restore`), with the emulator's function ARNs substituted."""
    text = (ROOT / f"infra/statemachines/{machine}.asl.json").read_text()
    for var, name in FUNCTIONS.items():
        text = text.replace("${%s}" % var, f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}")
    return text


@dataclass
class Execution:
    """A Step Functions execution that has stopped running."""

    description: dict[str, Any]  # DescribeExecution's answer once the status left RUNNING
    wall_s: float  # from StartExecution's answer until then
    s3: Any  # a client of the emulator's S3, where the run report is

    def summary(self) -> dict[str, Any]:
        """The execution's output: the run summary."""
        return json.loads(self.description["output"])

    def report(self) -> dict[str, Any]:
        """The whole run report, from the bucket the summary names."""
        at = self.summary()["report"]
        return json.loads(self.s3.get_object(Bucket=at["bucket"], Key=at["key"])["Body"].read())


@dataclass
class RecoveryPoint:
    """A manual snapshot in the emulator, whichever tool made it."""

    kind: str  # "ec2" (EBS snapshots, also those behind AMIs), "rds", "aurora" or "redshift"
    region: str
    id: str
    source: str  # the volume, DB instance, DB cluster or Redshift cluster it was taken of
    tags: dict[str, str]


class Emulator:
    """One running emulator (`tests/emulator/emulator.py`) on 127.0.0.1."""

    def __init__(self, functions_dir: str, extra_env: dict[str, str] | None = None) -> None:
        env = dict(os.environ, **(extra_env or {}))
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests/emulator/emulator.py"), "--functions-dir", functions_dir],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            text=True,
            start_new_session=True,
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        parts = line.split()
        if len(parts) < 3 or parts[0] != "READY":
            self.stop()
            raise SystemExit(f"the emulator did not start (got {line!r})")
        self.port = int(parts[1])
        self.log_dir = parts[2]
        self.endpoint = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return aws_client(self.endpoint, service, region)

    @cached_property
    def sfn(self) -> Any:
        """The Step Functions client (us-east-1, where the state machine lives)."""
        return self.client("stepfunctions")

    def seed(self, estate: str) -> list[dict[str, Any]]:
        """Seeds one of seed.py's estates; returns its manifest's resources."""
        return self.seed_in(estate)["resources"]

    def seed_in(self, estate: str, account: str = ACCOUNT, role: str | None = None) -> dict[str, Any]:
        """Seeds an estate in `account` (and there a role the home account may
        assume); returns seed.py's whole manifest (`role_arn` among it)."""
        args = [sys.executable, str(ROOT / "tests/emulator/seed.py"), "--endpoint", self.endpoint,
                "--estate", estate, "--account", account]
        if role:
            args += ["--role", role]
        out = subprocess.run(args, check=True, capture_output=True, text=True)
        return json.loads(out.stdout)

    def calls(self) -> list[dict[str, str]]:
        """Every AWS API call since the last `reset_calls()`: service, region, action, client,
        and `fault` ("throttled", "lost-response", "quota") if the emulator faulted it."""
        return json.loads(urllib.request.urlopen(f"{self.endpoint}/_strongroom/calls").read())

    def reset_calls(self) -> None:
        urllib.request.urlopen(urllib.request.Request(f"{self.endpoint}/_strongroom/calls", method="DELETE")).read()

    def faults(self) -> dict[str, Any]:
        """The switchable faults in force (`GET /_strongroom/faults`), every field spelled out."""
        return json.loads(urllib.request.urlopen(f"{self.endpoint}/_strongroom/faults").read())

    def set_faults(self, config: dict[str, Any]) -> dict[str, Any]:
        """Replaces the fault configuration (and reseeds its random generator); returns it in full."""
        req = urllib.request.Request(
            f"{self.endpoint}/_strongroom/faults",
            data=json.dumps(config).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        return json.loads(urllib.request.urlopen(req).read())

    def copies(self) -> dict[str, Any]:
        """Patch 17's copy settings and the most copies seen in flight (`GET /_strongroom/copies`)."""
        return json.loads(urllib.request.urlopen(f"{self.endpoint}/_strongroom/copies").read())

    def set_copies(self, config: dict[str, Any]) -> dict[str, Any]:
        """Replaces patch 17's copy settings (and clears the peaks)."""
        req = urllib.request.Request(
            f"{self.endpoint}/_strongroom/copies",
            data=json.dumps(config).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        return json.loads(urllib.request.urlopen(req).read())

    def set_volume_content(self, region: str, volume_id: str, image: str) -> dict[str, Any]:
        """Makes a raw disk image the volume's content (patch 20)."""
        req = urllib.request.Request(
            f"{self.endpoint}/_strongroom/volume-content",
            data=json.dumps({"region": region, "volume_id": volume_id, "image": image}).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        return json.loads(urllib.request.urlopen(req).read())

    def object_json(self, key: str) -> Any:
        """A JSON object of the stack's bucket (`runs/...`)."""
        body = self.client("s3").get_object(Bucket=f"strongroom-runs-{ACCOUNT}", Key=key)["Body"].read()
        return json.loads(body)

    def create_backup_machine(self) -> str:
        """Creates the backup state machine (`backup_definition()`); returns its ARN."""
        return self.sfn.create_state_machine(
            name="strongroom-backup",
            definition=backup_definition(),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/strongroom-backup",
        )["stateMachineArn"]

    def run_execution(
        self,
        machine: str,
        name: str,
        run_input: dict[str, Any],
        on_state: Callable[[float, str], None] | None = None,
        poll_s: float = 0.3,
        timeout_s: int | None = 300,
    ) -> Execution:
        """Starts an execution and polls it every `poll_s` until it stops running.

        `on_state(seconds since the start, state name)` is called for every
        state the execution enters, as it happens. Exits the program if the
        execution still runs after `timeout_s` (None: waits for ever).
        """
        arn = self.sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(run_input))["executionArn"]
        seen = 0
        started = time.time()
        while True:
            desc = self.sfn.describe_execution(executionArn=arn)
            if on_state:
                events = self.sfn.get_execution_history(executionArn=arn, maxResults=1000).get("events", [])
                for ev in events[seen:]:
                    details = ev.get("stateEnteredEventDetails")
                    if details:
                        on_state(time.time() - started, details["name"])
                seen = len(events)
            if desc["status"] != "RUNNING":
                return Execution(desc, time.time() - started, self.client("s3"))
            if timeout_s is not None and time.time() - started > timeout_s:
                raise SystemExit(f"the execution did not finish within {timeout_s} s")
            time.sleep(poll_s)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        """Every event of an execution's history (paged to its end)."""
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": execution_arn, "maxResults": 1000}
        while True:
            page = self.sfn.get_execution_history(**kwargs)
            events += page.get("events", [])
            if not page.get("nextToken"):
                return events
            kwargs["nextToken"] = page["nextToken"]

    def recovery_points(self, regions: list[str]) -> list[RecoveryPoint]:
        """Every manual snapshot in `regions`: per region EBS snapshots, DB snapshots,
        DB cluster snapshots, then Redshift snapshots, each in the order listed."""
        points: list[RecoveryPoint] = []
        for region in regions:
            for s in self.client("ec2", region).describe_snapshots(OwnerIds=["self"])["Snapshots"]:
                points.append(RecoveryPoint("ec2", region, s["SnapshotId"], s.get("VolumeId", ""), _tags(s.get("Tags"))))
            rds = self.client("rds", region)
            for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]:
                points.append(
                    RecoveryPoint("rds", region, s["DBSnapshotIdentifier"], s["DBInstanceIdentifier"], _tags(s.get("TagList")))
                )
            for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]:
                points.append(
                    RecoveryPoint(
                        "aurora", region, s["DBClusterSnapshotIdentifier"], s["DBClusterIdentifier"], _tags(s.get("TagList"))
                    )
                )
            for s in self.client("redshift", region).describe_cluster_snapshots()["Snapshots"]:
                if s.get("SnapshotType") == "manual":
                    points.append(
                        RecoveryPoint("redshift", region, s["SnapshotIdentifier"], s["ClusterIdentifier"], _tags(s.get("Tags")))
                    )
        return points


def _tags(pairs: list[dict[str, str]] | None) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in pairs or []}
