#!/usr/bin/env python3
"""`make demo`: a backup run end to end, against the emulator, on loopback.

Starts the emulator (moto + Strongroom's real function binaries), seeds a small
estate in two regions, runs the backup state machine through Step Functions
with the shipped scheduled input (events/backup/scheduled.json), follows its
states as they happen, prints what it protected, runs the same schedule again
to show that a re-run creates nothing, restores one volume and one database
through the restore state machine (inputs as a person pastes them in the
console) and reads them back, runs a second policy that copies every
recovery point to another region (the disaster-recovery copies), and stops
everything it started, also on Ctrl-C or when a step fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from client import ACCOUNT, FUNCTIONS, ROOT, Emulator, backup_definition

TYPES = ["ebs-volume", "ec2-instance", "rds-instance", "aurora-cluster", "redshift-cluster"]


def say(msg: str = "") -> None:
    print(msg, flush=True)


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        say("    " + "  ".join(c.ljust(w) for c, w in zip(r, widths)))
        if n == 0:
            say("    " + "  ".join("-" * w for w in widths))


def make_demo_disk(work: Path) -> Path:
    """A small ext4 filesystem image (mkfs.ext4 -d) of a few files."""
    tree = work / "demo-disk-tree"
    (tree / "etc/app").mkdir(parents=True, exist_ok=True)
    (tree / "srv/reports").mkdir(parents=True, exist_ok=True)
    (tree / "etc/app/config.yaml").write_text("listen: 0.0.0.0:8080\nworkers: 4\n")
    rows = "".join(f"2026-11-{d:02d},orders,{d * 1733 % 9973}\n" for d in range(1, 31)) * 400
    (tree / "srv/reports/2026-11.csv").write_text("day,kind,count\n" + rows)
    image = work / "demo-disk.img"
    mkfs = shutil.which("mkfs.ext4") or "/usr/sbin/mkfs.ext4"
    subprocess.run([mkfs, "-q", "-F", "-d", str(tree), str(image), "64M"], check=True, capture_output=True)
    return image


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
        resources = emu.seed("demo")
        rows = [["region", "type", "id", "tags"]]
        for r in resources:
            tags = ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items()) if k != "Name")
            rows.append([r["region"], r["resource_type"], r["id"], tags])
        table(rows)

        # The volume the demo restores files from holds a small ext4 filesystem.
        disk_volume = next(r for r in resources if r["resource_type"] == "ebs-volume" and r["region"] == "us-east-1"
                           and "backup-skip" not in r["tags"])
        disk = make_demo_disk(Path(emu.log_dir))
        emu.set_volume_content("us-east-1", disk_volume["id"], str(disk))
        say(f"    {disk_volume['id']} holds an ext4 filesystem ({disk.stat().st_size >> 20} MiB image): "
            f"/etc/app/config.yaml, /srv/reports/2026-11.csv, ...")

        run_input = json.loads((ROOT / "events/backup/scheduled.json").read_text())
        run_input["poll_seconds"] = 0
        # Keep one recovery point per source, so that the second day prunes the first.
        run_input["policy"]["retention"] = {"keep_last": 1}
        policy = run_input["policy"]
        say()
        say(f"==> Policy {policy['name']!r}: tags {policy['selector']['tags']}, "
            f"excluding {policy['selector'].get('exclude_tags', {})}, regions {policy['selector']['regions']}, "
            f"retention {policy['retention']}")

        machine = emu.create_backup_machine()

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
        execution = emu.run_execution(
            machine, "demo-daily-2026-11-28", run_input, on_state=lambda s, state: say(f"    {s:6.1f}s  {state}")
        )
        desc = execution.description
        if desc["status"] != "SUCCEEDED":
            raise SystemExit(f"the execution {desc['status']}: {desc.get('error')} {desc.get('cause')}")
        summary(execution.report())
        at = execution.summary()["report"]
        say(f"    the whole run report: s3://{at['bucket']}/{at['key']} (the execution's output is its summary)")

        run_input["scheduled_time"] = "2026-11-29T03:00:00Z"
        say()
        say("==> Day 2: the next scheduled run (its Prune stage removes day 1's recovery points)")
        execution = emu.run_execution(machine, "demo-daily-2026-11-29", run_input)
        desc = execution.description
        if desc["status"] != "SUCCEEDED":
            raise SystemExit(f"the execution {desc['status']}: {desc.get('error')} {desc.get('cause')}")
        report = execution.report()
        rp = report["recovery_points"]
        summary(report)
        say()
        say("==> Recovery points, read back from the emulator")
        points = emu.recovery_points(policy["selector"]["regions"])
        per_source: dict[str, list[str]] = defaultdict(list)
        for p in points:
            if p.kind != "ec2":
                per_source[p.source].append(p.id)
            elif p.tags.get("strongroom:managed") == "true":
                # An EBS snapshot's volume, or for an AMI's snapshot the instance.
                per_source[p.tags["strongroom:source"]].append(p.id)
        rows = [["source", "recovery point(s)"]]
        for source, ids in sorted(per_source.items()):
            rows.append([source, ", ".join(sorted(ids))])
        table(rows)
        example = next((p for p in points if p.kind == "ec2"), None)
        if example:
            say(f"    tags on {example.id}:")
            for k, v in sorted(example.tags.items()):
                say(f"      {k} = {v}")

        say()
        say("==> Running day 2 again (a re-run must create and delete nothing)")
        report2 = emu.run_execution(machine, "demo-daily-2026-11-29-rerun", run_input).report()
        created = sum(report2["recovery_points"]["created"].values())
        existing = sum(report2["recovery_points"]["existing"].values())
        deleted = (report2.get("prune") or {}).get("deleted", 0)
        say(f"    outcome {report2['outcome']}: created {created}, found existing {existing}, pruned {deleted}")
        if created != 0 or deleted != 0:
            raise SystemExit("a re-run created or deleted recovery points: idempotency is broken")
        say()
        say("==> Restore: one volume and one database from their newest recovery points (restore state machine)")
        restore_machine = emu.sfn.create_state_machine(
            name="strongroom-restore",
            definition=backup_definition("restore"),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/strongroom-restore",
        )["stateMachineArn"]
        volume = next(r for r in resources if r["resource_type"] == "ebs-volume" and r["region"] == "us-east-1"
                      and "backup-skip" not in r["tags"])
        database = next(r for r in resources if r["resource_type"] == "rds-instance" and r["region"] == "us-east-1")
        requests = {
            "demo-restore-volume": {
                "from": {"source": volume["id"]}, "location": {"region": "us-east-1"},
                "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1b"}, "poll_seconds": 0},
            "demo-restore-database": {
                "from": {"source": database["arn"]}, "location": {"region": "us-east-1"},
                "restore": {"kind": "rds-instance", "identifier": f"{database['id']}-restored"}, "poll_seconds": 0},
        }
        for name, request in requests.items():
            say(f"    input: {json.dumps(request)}")
            execution = emu.run_execution(
                restore_machine, name, request, on_state=lambda s, state: say(f"    {s:6.1f}s  {state}")
            )
            desc = execution.description
            if desc["status"] != "SUCCEEDED":
                raise SystemExit(f"the restore {desc['status']}: {desc.get('error')} {desc.get('cause')}")
            restored = json.loads(desc["output"])
            made = ", ".join(f"{m['kind']} {m['id']}" for m in restored["restored"])
            say(f"    restored {made} from {restored['recovery_point']} "
                f"(made {restored['point_created_at']}) in {restored['seconds']} s, "
                f"report s3://{restored['report']['bucket']}/{restored['report']['key']}")
            for m in restored["restored"]:
                if m["kind"] == "volume":
                    v = emu.client("ec2").describe_volumes(VolumeIds=[m["id"]])["Volumes"][0]
                    tags = {t["Key"]: t["Value"] for t in v.get("Tags", [])}
                    say(f"      read back: {v['VolumeId']} {v['State']}, {v['Size']} GiB {v['VolumeType']} in "
                        f"{v['AvailabilityZone']}, from snapshot {v['SnapshotId']}, "
                        f"strongroom:restored-from = {tags.get('strongroom:restored-from')}")
                    if v["State"] != "available" or v["SnapshotId"] != restored["recovery_point"]:
                        raise SystemExit("the restored volume is not what was asked for")
                elif m["kind"] == "db-instance":
                    d = emu.client("rds").describe_db_instances(DBInstanceIdentifier=m["id"])["DBInstances"][0]
                    tags = {t["Key"]: t["Value"] for t in d.get("TagList", [])}
                    say(f"      read back: {d['DBInstanceIdentifier']} {d['DBInstanceStatus']}, "
                        f"{d['DBInstanceClass']} {d['Engine']}, endpoint {d.get('Endpoint', {}).get('Address')}, "
                        f"strongroom:restored-from = {tags.get('strongroom:restored-from')}")
                    if d["DBInstanceStatus"] != "available" or "strongroom:managed" in tags:
                        raise SystemExit("the restored database is not what was asked for")

        say()
        say("==> File restore: one file straight out of the volume's newest snapshot, no volume, no instance")
        # Day 2's (retention keeps one per source).
        snap = next(p for p in emu.recovery_points(["us-east-1"])
                    if p.kind == "ec2" and p.id.startswith("snap-") and p.tags.get("strongroom:managed") == "true"
                    and p.tags.get("strongroom:source") == disk_volume["id"])
        volume_gib = emu.client("ec2").describe_volumes(VolumeIds=[disk_volume["id"]])["Volumes"][0]["Size"]
        out_dir = Path(emu.log_dir) / "restored-files"
        env = {**os.environ, "AWS_ENDPOINT_URL": emu.endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1"}
        cmd = [os.path.join(args.functions_dir, "strongroom"), "files", "get", "--snapshot", snap.id,
               "--region", "us-east-1", "--out", str(out_dir), "--json", "/srv/reports/2026-11.csv"]
        say(f"    $ strongroom files get --snapshot {snap.id} --region us-east-1 --out {out_dir} /srv/reports/2026-11.csv")
        got = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if got.returncode != 0:
            raise SystemExit(f"strongroom files get failed: {got.stderr}")
        files_report = json.loads(got.stdout)
        blocks = files_report["disk"]["read"]["blocks_fetched"]
        for r in files_report["restored"]:
            if r["kind"] == "file":
                local = out_dir / r["path"].lstrip("/")
                say(f"    to a folder: {local}  {r['size']} bytes  sha256 {r['sha256']}")
                if hashlib.sha256(local.read_bytes()).hexdigest() != r["sha256"]:
                    raise SystemExit("the restored file does not match its SHA-256")
        say(f"    read {blocks} blocks of 512 KiB ({files_report['disk']['read']['bytes_fetched']} bytes) "
            f"of a {volume_gib} GiB volume ({volume_gib * 2048} blocks)")
        request = {"from": {"source": disk_volume["id"]}, "location": {"region": "us-east-1"},
                   "restore": {"kind": "files", "paths": ["/srv/reports/2026-11.csv", "/etc/app"],
                               "destination": {"bucket": f"strongroom-runs-{ACCOUNT}"}},
                   "poll_seconds": 0}
        say(f"    to S3, through the restore state machine: {json.dumps(request)}")
        execution = emu.run_execution(
            restore_machine, "demo-restore-files", request, on_state=lambda s, state: say(f"    {s:6.1f}s  {state}")
        )
        desc = execution.description
        if desc["status"] != "SUCCEEDED":
            raise SystemExit(f"the file restore {desc['status']}: {desc.get('error')} {desc.get('cause')}")
        restored = json.loads(desc["output"])
        d = restored["details"]
        listed = emu.object_json(d["list"].split("/", 3)[3])
        for f in listed:
            if f.get("key"):
                say(f"    s3://strongroom-runs-{ACCOUNT}/{f['key']}  {f['size']} bytes  sha256 {f['sha256']}")
        say(f"    {d['files']} files, {d['bytes']} bytes in {d['steps']} CopyFiles step(s); read {d['blocks_fetched']} "
            f"blocks of {volume_gib * 2048}; the list: {d['list']}")

        say()
        say("==> Disaster recovery: a policy 'dr' copies every recovery point to us-west-2, under its own key")
        key = emu.client("kms", "us-west-2").create_key(Description="strongroom demo destination")["KeyMetadata"]["Arn"]
        dr_input = {
            "policy": {
                "name": "dr",
                "selector": {
                    "resource_types": [t for t in TYPES if t != "redshift-cluster"],
                    "regions": policy["selector"]["regions"],
                    "tags": policy["selector"]["tags"],
                    "exclude_tags": policy["selector"].get("exclude_tags", {}),
                },
                "retention": {"keep_last": 7},
                "copies": [{"region": "us-west-2", "kms_key": key, "retention": {"keep_last": 30}}],
            },
            "scheduled_time": "2026-11-29T04:00:00Z",
            "poll_seconds": 0,
        }
        execution = emu.run_execution(machine, "demo-dr-2026-11-29", dr_input)
        desc = execution.description
        if desc["status"] != "SUCCEEDED":
            raise SystemExit(f"the execution {desc['status']}: {desc.get('error')} {desc.get('cause')}")
        dr = execution.report()
        say(f"    run {dr['run']['execution']}: {dr['outcome']}")
        rows = [["destination", "started", "reused", "completed", "failed", "passes", "most in flight"]]
        for d in dr.get("copies", []):
            loc = d.get("location") or {}
            c = d["counts"]
            rows.append([f"{loc.get('account', '?')}/{loc.get('region', '?')}", str(c["started"]), str(c["reused"]),
                         str(c["completed"]), str(c["failed"]), str(d["passes"]),
                         ", ".join(f"{k} {v}" for k, v in sorted(d.get("peak_in_flight", {}).items()))])
        table(rows)
        for f in dr["failures"]:
            say(f"    FAILED {f.get('id')} in {f['region']}: {f['error_type']}: {f['message']}")
        copies = [p for p in emu.recovery_points(["us-west-2"]) if "strongroom:copy-of" in p.tags]
        say(f"    {len(copies)} copies in us-west-2, each tagged strongroom:copy-of (e.g. "
            f"{copies[0].id} <- {copies[0].tags['strongroom:copy-of']})" if copies else "    no copies found")
        if not copies or any(d["counts"]["failed"] for d in dr.get("copies", [])):
            raise SystemExit("the disaster-recovery copies did not all complete")
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
