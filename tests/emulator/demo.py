#!/usr/bin/env python3
"""`make demo`: a backup run end to end, against the emulator, on loopback.

Starts the emulator (moto + Strongroom's real function binaries), seeds a small
estate in two regions, runs the backup state machine through Step Functions
with the shipped scheduled input (events/backup/scheduled.json), follows its
states as they happen, prints what it protected, runs the same schedule again
to show that a re-run creates nothing, and stops everything it started, also
on Ctrl-C or when a step fails.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
ACCOUNT = "123456789012"
FUNCTIONS = {
    "DiscoverFunctionArn": "discover",
    "SnapshotFunctionArn": "snapshot",
    "StatusFunctionArn": "status",
    "ReportFunctionArn": "report",
    "PruneFunctionArn": "prune",
}
TYPES = ["ebs-volume", "ec2-instance", "rds-instance", "aurora-cluster", "redshift-cluster"]


def say(msg: str = "") -> None:
    print(msg, flush=True)


class Emulator:
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

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"max_attempts": 2}),
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def definition() -> str:
    text = (ROOT / "infra/statemachines/backup.asl.json").read_text()
    for var, name in FUNCTIONS.items():
        text = text.replace("${%s}" % var, f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:{name}")
    return text


def run_execution(sfn: Any, machine: str, name: str, run_input: dict[str, Any], follow: bool) -> dict[str, Any]:
    arn = sfn.start_execution(stateMachineArn=machine, name=name, input=json.dumps(run_input))["executionArn"]
    seen = 0
    started = time.time()
    while True:
        desc = sfn.describe_execution(executionArn=arn)
        if follow:
            events = sfn.get_execution_history(executionArn=arn, maxResults=1000).get("events", [])
            for ev in events[seen:]:
                details = ev.get("stateEnteredEventDetails")
                if details:
                    say(f"    {time.time() - started:6.1f}s  {details['name']}")
            seen = len(events)
        if desc["status"] != "RUNNING":
            return desc
        if time.time() - started > 300:
            raise SystemExit("the execution did not finish within 300 s")
        time.sleep(0.3)


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        say("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if n == 0:
            say("    " + "  ".join("-" * w for w in widths))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--functions-dir", required=True)
    args = ap.parse_args()
    for f in FUNCTIONS.values():
        if not os.path.exists(os.path.join(args.functions_dir, f)):
            raise SystemExit(f"missing function binary {f} in {args.functions_dir}: run `make build-functions`")

    say("==> Starting the emulator (moto_server + Strongroom's Lambda binaries, 127.0.0.1 only)")
    emu = Emulator(args.functions_dir)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        say(f"    listening on {emu.endpoint}; function logs in {emu.log_dir}")
        say("==> Seeding a small estate in us-east-1 and eu-west-1")
        seeded = subprocess.run(
            [sys.executable, str(ROOT / "tests/emulator/seed.py"), "--endpoint", emu.endpoint, "--estate", "demo"],
            check=True,
            capture_output=True,
            text=True,
        )
        resources = json.loads(seeded.stdout)["resources"]
        rows = [["region", "type", "id", "tags"]]
        for r in resources:
            tags = ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items()) if k != "Name")
            rows.append([r["region"], r["resource_type"], r["id"], tags])
        table(rows)

        run_input = json.loads((ROOT / "events/backup/scheduled.json").read_text())
        run_input["poll_seconds"] = 0
        # Keep one recovery point per source, so that the second day prunes the first.
        run_input["policy"]["retention"] = {"keep_last": 1}
        policy = run_input["policy"]
        say()
        say(f"==> Policy {policy['name']!r}: tags {policy['selector']['tags']}, "
            f"excluding {policy['selector'].get('exclude_tags', {})}, regions {policy['selector']['regions']}, "
            f"retention {policy['retention']}")

        sfn = emu.client("stepfunctions")
        machine = sfn.create_state_machine(
            name="strongroom-backup",
            definition=definition(),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/strongroom-backup",
        )["stateMachineArn"]

        def summary(report: dict[str, Any]) -> None:
            say(f"    run {report['run']['execution']} (scheduled {report['run']['scheduled_time']}): {report['outcome']}")
            rp = report["recovery_points"]
            rows = [["type", "selected", "created", "existing", "completed", "failed"]]
            for t in TYPES:
                rows.append([t] + [str(d.get(t, 0)) for d in (report["resources_found"], rp["created"], rp["existing"], rp["completed"], rp["failed"])])
            table(rows)
            say(f"    skipped by exclude tags: {report['skipped']}")
            for f in report["failures"]:
                say(f"    FAILED {f['resource_type']} {f['id']} in {f['region']}: {f['error_type']}: {f['message']}")
            prune = report.get("prune") or {}
            say(f"    prune: deleted {prune.get('deleted', 0)}, kept {prune.get('kept', 0)}, "
                f"refused {prune.get('refused', 0)}, failed {prune.get('failed', 0)}")
            for d in prune.get("deleted_ids", []):
                say(f"      deleted {d}")

        run_input["scheduled_time"] = "2026-11-28T03:00:00Z"
        say("==> Day 1: running the backup state machine (states as they happen)")
        desc = run_execution(sfn, machine, "demo-daily-2026-11-28", run_input, follow=True)
        if desc["status"] != "SUCCEEDED":
            raise SystemExit(f"the execution {desc['status']}: {desc.get('error')} {desc.get('cause')}")
        summary(json.loads(desc["output"]))

        run_input["scheduled_time"] = "2026-11-29T03:00:00Z"
        say()
        say("==> Day 2: the next scheduled run (its Prune stage removes day 1's recovery points)")
        desc = run_execution(sfn, machine, "demo-daily-2026-11-29", run_input, follow=False)
        if desc["status"] != "SUCCEEDED":
            raise SystemExit(f"the execution {desc['status']}: {desc.get('error')} {desc.get('cause')}")
        report = json.loads(desc["output"])
        rp = report["recovery_points"]
        summary(report)
        say()
        say("==> Recovery points, read back from the emulator")
        per_source: dict[str, list[str]] = defaultdict(list)
        for region in policy["selector"]["regions"]:
            for s in emu.client("ec2", region).describe_snapshots(OwnerIds=["self"])["Snapshots"]:
                tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
                if tags.get("strongroom:managed") == "true":
                    per_source[tags["strongroom:source"]].append(s["SnapshotId"])
            rds = emu.client("rds", region)
            for s in rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]:
                per_source[s["DBInstanceIdentifier"]].append(s["DBSnapshotIdentifier"])
            for s in rds.describe_db_cluster_snapshots(SnapshotType="manual")["DBClusterSnapshots"]:
                per_source[s["DBClusterIdentifier"]].append(s["DBClusterSnapshotIdentifier"])
            for s in emu.client("redshift", region).describe_cluster_snapshots()["Snapshots"]:
                if s.get("SnapshotType") == "manual":
                    per_source[s["ClusterIdentifier"]].append(s["SnapshotIdentifier"])
        rows = [["source", "recovery point(s)"]]
        for source, ids in sorted(per_source.items()):
            rows.append([source, ", ".join(sorted(ids))])
        table(rows)
        example = next(
            (s for r in policy["selector"]["regions"] for s in emu.client("ec2", r).describe_snapshots(OwnerIds=["self"])["Snapshots"]),
            None,
        )
        if example:
            say(f"    tags on {example['SnapshotId']}:")
            for t in sorted(example.get("Tags", []), key=lambda t: t["Key"]):
                say(f"      {t['Key']} = {t['Value']}")

        say()
        say("==> Running day 2 again (a re-run must create and delete nothing)")
        desc2 = run_execution(sfn, machine, "demo-daily-2026-11-29-rerun", run_input, follow=False)
        report2 = json.loads(desc2["output"])
        created = sum(report2["recovery_points"]["created"].values())
        existing = sum(report2["recovery_points"]["existing"].values())
        deleted = (report2.get("prune") or {}).get("deleted", 0)
        say(f"    outcome {report2['outcome']}: created {created}, found existing {existing}, pruned {deleted}")
        if created != 0 or deleted != 0:
            raise SystemExit("a re-run created or deleted recovery points: idempotency is broken")
        counts = Counter(r["resource_type"] for r in resources)
        say()
        say(f"Done: {len(resources)} resources seeded ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}); "
            f"{sum(report['resources_found'].values())} selected, "
            f"{sum(rp['completed'].values())} recovery points completed, {len(report['failures'])} failures.")
    except KeyboardInterrupt:
        say("\ninterrupted")
        sys.exit(130)
    finally:
        say("==> Stopping the emulator")
        emu.stop()


if __name__ == "__main__":
    main()
