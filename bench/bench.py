#!/usr/bin/env python3
"""`make bench`: Strongroom's figures, written to BENCHMARKS.md.

1. API calls of one backup run over a freshly seeded estate of >= 100
   resources of all five types in two regions, counted by the emulator's call
   log, side by side with Cloud Custodian (pinned c7n, a `snapshot` policy per
   type on the same tag filter) against the same freshly seeded estate.
2. Cold start of the `snapshot` release binary (process start to its first
   request for an event on the Lambda Runtime API) and its peak RSS.
3. Retention planner throughput: 1,000,000 recovery points across 10,000
   sources (criterion, `cargo bench -p strongroom-core --bench planner`).
4. API calls of a prune of 1,000 recovery points at one location.
5. The backup run of (1) under switchable emulator faults (issue 7): a fifth
   of Strongroom's calls throttled, a fifth of its creates' answers lost, new
   EC2 snapshots invisible for 3 s, every new recovery point pending for 2
   describes; duplicates, failures and API calls per source, side by side with
   the same run without throttling, lost answers and delayed visibility.
   `--only-faults` measures only this and rewrites only its section of an
   existing BENCHMARKS.md (no release build, no Custodian needed).
6. A run over 2,000 sources in 2 accounts x 2 regions (issue 8, `scale.py`):
   wall time, API calls per source, the history events of the parent and
   of its largest child, the largest state payload. `--only-scale` measures
   only this and rewrites only its section.
7. Copies of 100 recovery points to another region, in the same account and
   in a vault account (issue 10, `copying.py`): API calls per copied recovery
   point, the peak of copies in flight and how full the queue kept the limit.
   `--only-copies` measures only this and rewrites only its section.
7. One restore per kind (issue 11, `restoring.py`): API calls and wall time
   from StartExecution to usable, through the restore state machine.
   `--only-restores` measures only this and rewrites only its section.

Everything runs on 127.0.0.1 with dummy credentials.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/emulator"))
from client import ACCOUNT, Emulator  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import copying  # noqa: E402
import files  # noqa: E402
import restoring  # noqa: E402
import scale  # noqa: E402

POLICY = {
    "name": "daily",
    "selector": {
        "resource_types": ["ebs-volume", "ec2-instance", "rds-instance", "aurora-cluster", "redshift-cluster"],
        "regions": ["us-east-1", "eu-west-1"],
        "tags": {"backup": "daily"},
    },
}
C7N_POLICY = """policies:
  - name: ebs-snapshot
    resource: aws.ebs
    filters: [{"tag:backup": "daily"}]
    actions: [snapshot]
  - name: ec2-snapshot
    resource: aws.ec2
    filters: [{"tag:backup": "daily"}]
    actions: [snapshot]
  - name: rds-snapshot
    resource: aws.rds
    filters: [{"tag:backup": "daily"}]
    actions: [snapshot]
  - name: aurora-snapshot
    resource: aws.rds-cluster
    filters: [{"tag:backup": "daily"}]
    actions: [snapshot]
  - name: redshift-snapshot
    resource: aws.redshift
    filters: [{"tag:backup": "daily"}]
    actions: [snapshot]
"""
SCHEDULED_TIME = "2026-11-29T03:00:00Z"
# Issue 7's faults. Lost answers hit the six creates (faults.DEFAULT_LOST_RESPONSE_ACTIONS);
# throttling hits every call of Strongroom's, describes and the Tagging API included.
FAULTS = {"seed": 7, "throttle_fraction": 0.2, "visibility_seconds": 3, "pending_describes": 2, "lost_response_fraction": 0.2}
# The clean run keeps the completion checks' repetitions, so that it differs only by
# throttling, lost answers and delayed visibility.
CLEAN = {"seed": 7, "pending_describes": 2}
FAULTS_HEADING = "## A backup run under throttling, lost answers and delayed visibility"


def by_action(cs: list[dict[str, str]]) -> Counter[str]:
    return Counter(f"{c['service']}:{c['action']}" for c in cs)


def count_recovery_points(emu: Emulator) -> int:
    """Every manual snapshot in the policy's regions, Strongroom's or Custodian's."""
    return len(emu.recovery_points(POLICY["selector"]["regions"]))


def strongroom_run(functions_dir: str) -> dict[str, Any]:
    with Emulator(functions_dir) as emu:
        resources = emu.seed("bench")
        machine = emu.create_backup_machine()
        emu.reset_calls()
        execution = emu.run_execution(
            machine,
            "bench-1",
            {"policy": POLICY, "scheduled_time": SCHEDULED_TIME, "poll_seconds": 0},
            poll_s=0.2,
            timeout_s=None,
        )
        ours = [c for c in emu.calls() if c["client"] == "strongroom"]
        d = execution.description
        if d["status"] != "SUCCEEDED":
            raise SystemExit(f"strongroom run {d['status']}: {d.get('cause')}")
        report = execution.report()
        return {
            "resources": len(resources),
            "selected": sum(report["resources_found"].values()),
            "completed": sum(report["recovery_points"]["completed"].values()),
            "failures": len(report["failures"]),
            "recovery_points": count_recovery_points(emu),
            "calls": by_action(ours),
            "wall_s": execution.wall_s,
        }


def backup_run_under(functions_dir: str, faults: dict[str, Any], name: str) -> dict[str, Any]:
    """`strongroom_run`'s backup (same estate, same state machine, same input) with
    `faults` switched on after seeding: what came of it, source by source."""
    with Emulator(functions_dir) as emu:
        resources = emu.seed("bench")
        machine = emu.create_backup_machine()
        in_force = emu.set_faults(faults)
        emu.reset_calls()
        execution = emu.run_execution(
            machine,
            name,
            {"policy": POLICY, "scheduled_time": SCHEDULED_TIME, "poll_seconds": 0},
            poll_s=0.2,
            timeout_s=None,
        )
        ours = [c for c in emu.calls() if c["client"] == "strongroom"]
        emu.set_faults({})  # read back the truth (the harness's calls are never faulted anyway)
        points = emu.recovery_points(POLICY["selector"]["regions"])
        d = execution.description
        report = execution.report() if d["status"] == "SUCCEEDED" else None

    # This run's recovery points per source, by their tags. An instance's snapshot
    # set is one recovery point of one snapshot per volume.
    this_run: Counter[str] = Counter(
        p.tags["strongroom:source"]
        for p in points
        if p.tags.get("strongroom:created-at") == SCHEDULED_TIME and "strongroom:source" in p.tags
    )
    selected = [
        r for r in resources
        if r["region"] in POLICY["selector"]["regions"]
        and all(r["tags"].get(k) == v for k, v in POLICY["selector"]["tags"].items())
    ]
    made, duplicates, missing = 0, [], []
    for r in selected:
        n = this_run.get(r["id"], 0) + (this_run.get(r["arn"], 0) if r["arn"] != r["id"] else 0)
        size = len(r.get("volumes") or []) if r["resource_type"] == "ec2-instance" else 1
        if n == 0:
            missing.append(r["id"])
            continue
        made += 1
        if n > size:
            duplicates.append({"source": r["id"], "type": r["resource_type"], "region": r["region"],
                               "snapshots": n, "expected": size})
    known = {r["id"] for r in selected} | {r["arn"] for r in selected}
    strays = sorted(s for s in this_run if s not in known)
    failures = report["failures"] if report else []
    return {
        "faults": in_force,
        "status": d["status"],
        "cause": d.get("cause") or d.get("error"),
        "outcome": report["outcome"] if report else d["status"],
        "resources": len(resources),
        "selected": sum(report["resources_found"].values()) if report else len(selected),
        "selected_in_estate": len(selected),
        "created": sum(report["recovery_points"]["created"].values()) if report else 0,
        "existing": sum(report["recovery_points"]["existing"].values()) if report else 0,
        "completed": sum(report["recovery_points"]["completed"].values()) if report else 0,
        "made": made,
        "snapshots": sum(this_run.values()),
        "duplicates": duplicates,
        "missing": missing,
        "strays": strays,
        "failures": failures,
        "failure_types": Counter(f["error_type"] for f in failures),
        "calls": by_action(ours),
        "faulted": Counter(c["fault"] for c in ours if c.get("fault")),
        "faulted_by_action": {
            kind: Counter(f"{c['service']}:{c['action']}" for c in ours if c.get("fault") == kind)
            for kind in ("throttled", "lost-response", "quota")
        },
        "wall_s": execution.wall_s,
    }


def fault_run(functions_dir: str) -> dict[str, Any]:
    """Issue 7's figure: the bench backup once with `CLEAN` faults, once with `FAULTS`,
    each on a freshly started and seeded emulator."""
    return {
        "clean": backup_run_under(functions_dir, CLEAN, "bench-clean"),
        "faulted": backup_run_under(functions_dir, FAULTS, "bench-faults"),
    }


def custodian_run(functions_dir: str, custodian: str) -> dict[str, Any]:
    with Emulator(functions_dir) as emu:
        resources = emu.seed("bench")
        emu.reset_calls()
        with tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp, "policy.yml")
            policy.write_text(C7N_POLICY)
            env = dict(
                os.environ,
                AWS_ENDPOINT_URL=emu.endpoint,
                AWS_ACCESS_KEY_ID="testing",
                AWS_SECRET_ACCESS_KEY="testing",
                AWS_DEFAULT_REGION="us-east-1",
            )
            started = time.time()
            out = subprocess.run(
                [custodian, "run", "-s", str(Path(tmp, "out")), "--cache-period", "0",
                 "--region", "us-east-1", "--region", "eu-west-1", str(policy)],
                env=env, capture_output=True, text=True,
            )
            wall = time.time() - started
            if out.returncode != 0:
                raise SystemExit(f"custodian failed:\n{out.stderr[-3000:]}")
        # Every call since the reset is custodian's (it names itself CloudCustodian in the user agent).
        theirs = [c for c in emu.calls() if c["client"] != "strongroom"]
        return {
            "resources": len(resources),
            "recovery_points": count_recovery_points(emu),
            "calls": by_action(theirs),
            "wall_s": wall,
        }


class OneShotRuntime:
    """A Lambda Runtime API that notes when the function first asks for work."""

    def __init__(self, event: bytes) -> None:
        self.ready_at: float | None = None
        self.ready = threading.Event()
        self.answered = threading.Event()
        self.response = b""
        rt = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                if rt.ready_at is None:
                    rt.ready_at = time.perf_counter()
                    rt.ready.set()
                else:  # second poll: the benchmark is over; hang until killed
                    time.sleep(30)
                    return
                self.send_response(200)
                for k, v in {
                    "Content-Type": "application/json",
                    "Lambda-Runtime-Aws-Request-Id": "bench-1",
                    "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 60) * 1000)),
                    "Lambda-Runtime-Invoked-Function-Arn": f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:snapshot",
                    "Content-Length": str(len(event)),
                }.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(event)

            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                rt.response = self.rfile.read(n)
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                rt.answered.set()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def vm_hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def cold_starts(binary: str, runs: int) -> dict[str, Any]:
    event = (ROOT / "events/snapshot/batch.json").read_bytes()
    # An empty batch: the first event is handled without any AWS call.
    batch = json.loads(event)
    batch["targets"] = []
    event = json.dumps(batch).encode()
    ready_ms, rss_ready, rss_after = [], [], []
    for _ in range(runs):
        rt = OneShotRuntime(event)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{rt.server.server_address[1]}",
            "AWS_LAMBDA_FUNCTION_NAME": "snapshot",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_FORMAT": "JSON",
            "AWS_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SESSION_TOKEN": "testing",
            "AWS_EC2_METADATA_DISABLED": "true",
        }
        t0 = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            if not rt.ready.wait(10):
                raise SystemExit("the snapshot binary never asked for an event")
            rss_ready.append(vm_hwm_kib(proc.pid))
            ready_ms.append((rt.ready_at - t0) * 1000)
            if not rt.answered.wait(10):
                raise SystemExit("the snapshot binary never answered")
            rss_after.append(vm_hwm_kib(proc.pid))
            json.loads(rt.response)
        finally:
            proc.kill()
            proc.wait()
            rt.server.shutdown()

    def q(xs: list[float], p: float) -> float:
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]

    return {
        "runs": runs,
        "ready_ms_median": statistics.median(ready_ms),
        "ready_ms_p95": q(ready_ms, 0.95),
        "ready_ms_max": max(ready_ms),
        "rss_ready_mib_max": max(rss_ready) / 1024,
        "rss_first_event_mib_max": max(rss_after) / 1024,
        "size_mib": os.path.getsize(binary) / 2**20,
    }


def planner_throughput(target_dir: str) -> dict[str, Any]:
    env = dict(os.environ, CARGO_TARGET_DIR=target_dir)
    subprocess.run(
        ["cargo", "bench", "-p", "strongroom-core", "--bench", "planner", "--", "--noplot"],
        check=True, env=env, cwd=ROOT,
    )
    est = json.loads(Path(target_dir, "criterion/planner/planner-1M/new/estimates.json").read_text())
    return {
        "mean_s": est["mean"]["point_estimate"] / 1e9,
        "low_s": est["mean"]["confidence_interval"]["lower_bound"] / 1e9,
        "high_s": est["mean"]["confidence_interval"]["upper_bound"] / 1e9,
    }


def prune_calls(functions_dir: str) -> dict[str, Any]:
    """1,000 recovery points of one policy at one location: 10 volumes x 100 days."""
    with Emulator(functions_dir) as emu:
        ec2 = emu.client("ec2", "us-east-1")
        newest = dt.datetime(2026, 11, 29, 3, 0, tzinfo=dt.timezone.utc)
        for v in range(10):
            vol = ec2.create_volume(AvailabilityZone="us-east-1a", Size=8)["VolumeId"]
            for d in range(100):
                created = (newest - dt.timedelta(days=d)).strftime("%Y-%m-%dT%H:%M:%SZ")
                ec2.create_snapshot(
                    VolumeId=vol,
                    TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
                        {"Key": "strongroom:managed", "Value": "true"},
                        {"Key": "strongroom:policy", "Value": "bench"},
                        {"Key": "strongroom:source", "Value": vol},
                        {"Key": "strongroom:created-at", "Value": created},
                    ]}],
                )
        with tempfile.TemporaryDirectory() as tmp:
            policy = Path(tmp, "policy.json")
            policy.write_text(json.dumps({
                "name": "bench",
                "selector": {"resource_types": ["ebs-volume"], "regions": ["us-east-1"], "tags": {"backup": "daily"}},
                "retention": {"keep_daily": 7, "keep_weekly": 4, "keep_monthly": 3},
            }))
            emu.reset_calls()
            env = dict(os.environ, AWS_ENDPOINT_URL=emu.endpoint, AWS_ACCESS_KEY_ID="testing",
                       AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true")
            out = subprocess.run(
                [str(Path(functions_dir, "strongroom")), "prune", "--policy", str(policy), "--now", "2026-11-29T04:00:00Z"],
                env=env, capture_output=True, text=True, check=True,
            )
        report = json.loads(out.stdout)
        ours = [c for c in emu.calls() if c["client"] == "strongroom"]
        return {"points": 1000, "deleted": report["deleted"], "kept": report["kept"], "calls": by_action(ours)}


def fault_section(fr: dict[str, Any], cmd: str) -> list[str]:
    """BENCHMARKS.md's section of `fault_run`, heading first, no trailing blank line."""
    c, f = fr["clean"], fr["faulted"]
    runs = (c, f)

    def row(label: str, value: Any) -> str:
        return f"| {label} | " + " | ".join(str(value(r)) for r in runs) + " |"

    def total(r: dict[str, Any]) -> int:
        return sum(r["calls"].values())

    def types(r: dict[str, Any]) -> str:
        n = len(r["failures"])
        if not n:
            return "0"
        return f"{n} (" + ", ".join(f"{t} {k}" for t, k in sorted(r["failure_types"].items())) + ")"

    lines = [
        FAULTS_HEADING,
        "",
        "Issue 7's figure: the backup run of the first section (the same freshly seeded `bench` estate of "
        f"{f['resources']} resources in us-east-1 and eu-west-1, the same Step Functions execution of the backup "
        "state machine with `poll_seconds` 0, the Status completion checks repeating until every recovery point is "
        "complete), made twice, each on a freshly started emulator, with the emulator's switchable faults "
        "(`tests/emulator/faults.py`) switched on after seeding. They apply to Strongroom's calls only.",
        "",
        f"- **faulted**: `{json.dumps(FAULTS)}`: a fifth of Strongroom's calls (every action: creates, describes and "
        "the Tagging API) refused with the service's throttling error (EC2 `RequestLimitExceeded`, RDS/Redshift "
        "`Throttling`, Tagging `ThrottlingException`); a fifth of its creates (`CreateSnapshot`, `CreateSnapshots`, "
        "`CreateImage`, `CreateDBSnapshot`, `CreateDBClusterSnapshot`, `CreateClusterSnapshot`) **done, but answered "
        "with a server error** (a lost answer: the create happened and Strongroom is not told); new EBS snapshots "
        "and AMIs missing from describes for 3 s; every new recovery point shown in progress by its create answer "
        "and its first 2 describes.",
        f"- **clean**: `{json.dumps(CLEAN)}`: the same in-progress answers, so the completion checks repeat as in "
        "the faulted run; the clean run differs only by throttling, lost answers and delayed visibility.",
        "",
        "Duplicates are sources with more than one recovery point of this run's scheduled time, counted afterwards "
        "over every manual snapshot in both regions by its `strongroom:source` and `strongroom:created-at` tags; an "
        "instance's snapshot set is one recovery point (a duplicate set would show as more snapshots than the "
        "instance has volumes, as listed by the seed manifest). Calls are Strongroom's in the emulator's call log, "
        "faulted ones included (each has its `fault`).",
        "",
        "| figure | clean | faulted |",
        "|---|---:|---:|",
        row("execution / run outcome", lambda r: f"{r['status']} / {r['outcome']}"),
        row("sources selected", lambda r: r["selected"]),
        row("sources with a recovery point of this run", lambda r: r["made"]),
        row("snapshots of this run (an instance set: one per volume)", lambda r: r["snapshots"]),
        row("**duplicates** (must be 0)", lambda r: f"**{len(r['duplicates'])}**"),
        row("recovery points completed (run report)", lambda r: r["completed"]),
        row("created / existing already (run report)", lambda r: f"{r['created']} / {r['existing']}"),
        row("failures in the run report", types),
        row("Strongroom's API calls", total),
        row("answered with throttling", lambda r: r["faulted"].get("throttled", 0)),
        row("answered with a lost answer (done, server error)", lambda r: r["faulted"].get("lost-response", 0)),
        row("**API calls per selected source**", lambda r: f"**{total(r) / max(r['selected'], 1):.2f}**"),
        row("execution wall time", lambda r: f"{r['wall_s']:.1f} s"),
        "",
        "| call | clean | faulted | of which throttled | of which lost answers |",
        "|---|---:|---:|---:|---:|",
    ]
    for a in sorted(set(c["calls"]) | set(f["calls"])):
        lines.append(
            f"| {a} | {c['calls'].get(a, 0)} | {f['calls'].get(a, 0)} | "
            f"{f['faulted_by_action']['throttled'].get(a, 0)} | {f['faulted_by_action']['lost-response'].get(a, 0)} |"
        )
    lines.append(
        f"| **total** | **{total(c)}** | **{total(f)}** | **{f['faulted'].get('throttled', 0)}** | "
        f"**{f['faulted'].get('lost-response', 0)}** |"
    )
    lines.append("")
    for name, r in (("clean", c), ("faulted", f)):
        if r["status"] != "SUCCEEDED":
            lines.append(f"- **The {name} execution ended {r['status']}**: {r['cause']}")
        for d in r["duplicates"]:
            lines.append(
                f"- **Duplicate ({name})**: {d['type']} `{d['source']}` in {d['region']}: {d['snapshots']} snapshots "
                f"of this run, {d['expected']} expected."
            )
        for x in r["failures"]:
            lines.append(
                f"- **Failure ({name})**: {x.get('resource_type') or 'batch'} `{x.get('id') or '-'}` in "
                f"{x['region']}: `{x['error_type']}`: {x['message']}"
            )
        if r["missing"]:
            lines.append(f"- Without a recovery point of this run ({name}): " + ", ".join(f"`{m}`" for m in r["missing"]) + ".")
        if r["strays"]:
            lines.append(f"- Recovery points of this run of sources not selected ({name}): " + ", ".join(r["strays"]) + ".")
    if not any(r["duplicates"] or r["failures"] or r["missing"] or r["status"] != "SUCCEEDED" for r in runs):
        lines.append(
            f"Both runs protected all {f['selected']} sources with one recovery point each, without duplicates or "
            f"failures. Under faults Strongroom made {total(f)} calls instead of {total(c)} "
            f"({total(f) / max(total(c), 1):.2f}x). Throttled calls are sent again after a wait. A lost EBS or "
            "instance-set create is not sent again (`CreateSnapshot(s)` take no idempotency token): the completion "
            "checks find what it made by its tags (`DescribeSnapshots`), waiting out the delayed visibility. A lost "
            "RDS, Aurora or Redshift create is sent again under the same deterministic name and its `AlreadyExists` "
            "answer taken as the recovery point, so the report counts it as created."
        )
    lines += [
        "",
        "The faults' random draws are seeded (seed 7), but the Map state runs up to 10 batches at once, so which "
        "call meets which draw varies from run to run, and so do the counts of the faulted run.",
        "",
        f"Produced by `{cmd}` on {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}.",
    ]
    return lines


def splice_fault_section(text: str, section: list[str]) -> str:
    """`text` (a BENCHMARKS.md) with its fault section replaced by `section`."""
    return splice_section(text, FAULTS_HEADING, section)


def splice_section(text: str, heading: str, section: list[str]) -> str:
    """`text` (a BENCHMARKS.md) with the section under `heading` replaced by `section`, or, if
    it has none, with `section` put after the first API-calls section. Everything else is kept."""
    lines = text.split("\n")
    heads = [i for i, line in enumerate(lines) if line.startswith("## ")]
    block = section + [""]
    if heading in lines:
        start = lines.index(heading)
        end = next((i for i in heads if i > start), len(lines))
        return "\n".join(lines[:start] + block + lines[end:])
    first = next((i for i in heads if lines[i].startswith("## API calls of one backup run")), None)
    after = next((i for i in heads if first is not None and i > first), None)
    if after is None:
        return text.rstrip("\n") + "\n\n" + "\n".join(block)
    return "\n".join(lines[:after] + block + lines[after:])


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def command_line() -> str:
    """How this script was run, as one would type it again (the home directory as ~)."""
    home = str(Path.home())

    def shown(a: str) -> str:
        if a == home or a.startswith(home + "/"):
            return "~" + shlex.quote(a[len(home):]) if a != home else "~"
        return shlex.quote(a)

    script = os.path.relpath(__file__)
    if script.startswith(".."):
        script = __file__
    return " ".join(shown(a) for a in [sys.executable, script, *sys.argv[1:]])


def write(out: Path, sr: dict[str, Any], c7n: dict[str, Any], cs: dict[str, Any], pt: dict[str, Any], pc: dict[str, Any], fr: dict[str, Any], sc: dict[str, Any], cp: dict[str, Any], rs: dict[str, Any], cmd: str) -> None:
    s_total, c_total = sum(sr["calls"].values()), sum(c7n["calls"].values())
    actions = sorted(set(sr["calls"]) | set(c7n["calls"]))
    lines = [
        "# Benchmarks",
        "",
        f"Produced by `{cmd}` on {dt.datetime.now(dt.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}, "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Everything ran against the emulator on 127.0.0.1.",
        "",
        "## API calls of one backup run, side by side with Cloud Custodian",
        "",
        f"Estate: `tests/emulator/seed.py --estate bench`, {sr['resources']} resources "
        "(per region: 10 EC2 instances with 2 volumes each, 20 EBS volumes, 8 RDS instances, 6 Aurora clusters, "
        "8 Redshift clusters; all tagged `backup=daily`) in us-east-1 and eu-west-1, freshly seeded for each tool. "
        "Calls counted by the emulator's call log (`/_strongroom/calls`): for Strongroom every call its Lambda "
        "binaries made during the Step Functions execution (Discover, Snapshot, Status, Report); for Custodian "
        "every call of `custodian run` (c7n 0.9.53, one `snapshot` policy per type on `tag:backup: daily`).",
        "",
        "| call | Strongroom | Custodian |",
        "|---|---:|---:|",
    ]
    for a in actions:
        lines.append(f"| {a} | {sr['calls'].get(a, 0)} | {c7n['calls'].get(a, 0)} |")
    # The quota preflight: per region, DescribeAccountAttributes, a Redshift
    # count and an EBS count (every kind is selected in both regions).
    pre = 3 * sr["calls"].get("rds:DescribeAccountAttributes", 0)
    poll_describes = sr["calls"].get("ec2:DescribeSnapshots", 0) - 4
    lines += [
        f"| **total** | **{s_total}** | **{c_total}** |",
        "",
        f"- Strongroom: {sr['selected']} sources selected, {sr['completed']} recovery points completed, "
        f"{sr['failures']} failures; {sr['recovery_points']} snapshots/AMIs in the emulator afterwards; "
        f"execution wall time {sr['wall_s']:.1f} s.",
        f"- Custodian: {c7n['recovery_points']} snapshots in the emulator afterwards; wall time {c7n['wall_s']:.1f} s.",
        f"- **Ratio Strongroom / Custodian: {s_total / c_total:.3f}** ({s_total} vs {c_total} calls; target <= 1), "
        f"**{(s_total - pre) / c_total:.3f} without the quota preflight** ({s_total - pre} calls), which no peer does.",
        "",
        "What Strongroom's count includes that Custodian's does not: the quota preflight (Discover, per region: one "
        "RDS `DescribeAccountAttributes` for the manual DB and cluster snapshot quotas, one paged count of Redshift "
        "manual snapshots and one of the account's EBS snapshots, a page per 1,000: "
        f"{pre} calls here), the idempotency lookup (one tag-filtered "
        "`DescribeSnapshots` per location before creating EBS/instance snapshots; RDS, Aurora, Redshift and AMIs "
        "are idempotent through deterministic names at no extra call) and the completion check (`Status`: one "
        "describe per kind and location, EBS snapshots and instance sets sharing one `DescribeSnapshots`, only for "
        "recovery points that their create call returned as pending). "
        f"In this run the emulator answered creates as completed unless it had just made them pending, so the "
        f"completion check cost {poll_describes} `DescribeSnapshots` (the others are the 2 lookups and the 2 "
        "preflight counts). **On AWS every create starts pending**: the first poll then costs one describe per "
        f"kind per location, 8 for this estate, which would make the run {s_total - poll_describes + 8} "
        f"calls ({(s_total - poll_describes + 8) / c_total:.3f} of Custodian's, "
        "which checks neither quotas, idempotency nor completion), plus 8 per further poll (`poll_seconds`, "
        "default 60 s). Discovery is one Resource Groups Tagging API call per region for all five types, paged "
        "(the emulator pages by tag count, 100 tags per page: 2 pages per region here).",
        "",
        *fault_section(fr, cmd),
        "",
        *scale.scale_section(sc, cmd, now()),
        "",
        *copying.copies_section(cp, cmd, now()),
        "",
        *restoring.restores_section(rs, cmd, now()),
        "",
        "## Cold start of the `snapshot` release binary",
        "",
        f"`target/lambda/snapshot/bootstrap` from `cargo lambda build --release` (LTO, one codegen unit, stripped, "
        f"panic=abort), {cs['size_mib']:.1f} MiB. Measured {cs['runs']} times: from process spawn to its first "
        "`GET /2018-06-01/runtime/invocation/next` on a local Runtime API (configuration loaded, clients built: "
        "ready for the first event); peak RSS is the kernel's VmHWM, at ready and after handling a first "
        "(empty) batch.",
        "",
        "| figure | value | target |",
        "|---|---:|---:|",
        f"| ready, median | {cs['ready_ms_median']:.1f} ms | |",
        f"| ready, p95 | {cs['ready_ms_p95']:.1f} ms | <= 20 ms |",
        f"| ready, max | {cs['ready_ms_max']:.1f} ms | |",
        f"| peak RSS at ready (max) | {cs['rss_ready_mib_max']:.1f} MiB | |",
        f"| peak RSS after the first event (max) | {cs['rss_first_event_mib_max']:.1f} MiB | <= 30 MiB |",
        "",
        "## Retention planner throughput",
        "",
        "`cargo bench -p strongroom-core --bench planner` (criterion, release profile): 10,000 sources x 100 "
        "recovery points, planned with keep_last 2, keep_daily 7, keep_weekly 4, keep_monthly 12, keep_yearly 3, "
        "keep_within 2d, max_age 400d; every decision with its reasons.",
        "",
        "| figure | value | target |",
        "|---|---:|---:|",
        f"| 1,000,000 recovery points, mean | {pt['mean_s']:.3f} s (95% CI {pt['low_s']:.3f}-{pt['high_s']:.3f}) | <= 1 s |",
        "",
        "## API calls of a prune of 1,000 recovery points at one location",
        "",
        "1,000 EBS snapshots of one policy (10 volumes x 100 days) in us-east-1, pruned by `strongroom prune` "
        "(the prune function's code) with keep_daily 7, keep_weekly 4, keep_monthly 3; calls counted by the "
        "emulator's call log. Listings ask for the largest page each API serves (DescribeSnapshots 1,000, "
        "DescribeImages 1,000, RDS 100, Redshift 100); the policy's other kinds are listed too, so that recovery "
        "points of a type later dropped from the selector are still pruned.",
        "",
        "| call | count |",
        "|---|---:|",
    ]
    for a, n in sorted(pc["calls"].items()):
        lines.append(f"| {a} | {n} |")
    lines += [
        f"| **total** | **{sum(pc['calls'].values())}** |",
        "",
        f"{pc['deleted']} deleted (one `DeleteSnapshot` each, after one `DescribeSnapshotAttribute` each: prune "
        "asks who else may restore a snapshot before deleting it, and AWS has no listing of that), "
        f"{pc['kept']} kept.",
        "",
    ]
    out.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--functions-dir", required=True, help="debug binaries the emulator runs")
    ap.add_argument("--lambda-dir", help="cargo lambda's output (target/lambda); not with --only-faults")
    ap.add_argument("--c7n", help="the custodian executable; not with --only-faults")
    ap.add_argument("--out", default="BENCHMARKS.md")
    ap.add_argument("--cold-runs", type=int, default=30)
    ap.add_argument(
        "--only-scale",
        action="store_true",
        help="only the 2,000-source run; rewrites only its section of an existing --out",
    )
    ap.add_argument(
        "--only-restores",
        action="store_true",
        help="only the restores, one per kind; rewrites only its section of an existing --out",
    )
    ap.add_argument(
        "--only-files",
        action="store_true",
        help="only the file restores (issue 12), with coldsnap side by side; rewrites only its section",
    )
    ap.add_argument("--strongroom", help="the strongroom CLI (with --only-files)")
    ap.add_argument("--coldsnap", help="a coldsnap binary (with --only-files), for the side-by-side figure")
    ap.add_argument(
        "--only-copies",
        action="store_true",
        help="only the copies of 100 recovery points; rewrites only its section of an existing --out",
    )
    ap.add_argument(
        "--only-faults",
        action="store_true",
        help="only the backup run under faults (and its clean twin); rewrites only its section of an existing --out",
    )
    args = ap.parse_args()
    out = Path(args.out)
    if args.only_faults:
        if not out.is_file():
            ap.error(f"--only-faults rewrites one section of an existing file; {out} does not exist")
        cmd = command_line()
        print("==> The bench backup run, clean and under faults", flush=True)
        fr = fault_run(args.functions_dir)
        report_fault_run(fr)
        out.write_text(splice_fault_section(out.read_text(), fault_section(fr, cmd)))
        print(f"==> rewrote the section {FAULTS_HEADING[3:]!r} of {args.out}")
        return
    if args.only_copies:
        if not out.is_file():
            ap.error(f"--only-copies rewrites one section of an existing file; {out} does not exist")
        cmd = command_line()
        print("==> Copies of 100 recovery points, same account and vault account", flush=True)
        cp = copying.copies_run(args.functions_dir)
        report_copies_run(cp)
        out.write_text(splice_section(out.read_text(), copying.COPIES_HEADING, copying.copies_section(cp, cmd, now())))
        print(f"==> rewrote the section {copying.COPIES_HEADING[3:]!r} of {args.out}")
        return
    if args.only_files:
        if not out.is_file():
            ap.error(f"--only-files rewrites one section of an existing file; {out} does not exist")
        if not args.strongroom:
            ap.error("--only-files needs --strongroom, the CLI to measure")
        cmd = command_line()
        print("==> File restores straight from snapshots (and coldsnap)", flush=True)
        fl = files.files_run(args.functions_dir, args.strongroom, args.coldsnap)
        for x in fl["rows"]:
            print(f"    {x['path']}: {x['blocks']} blocks, ratio {x['ratio']:.3f}, {x['wall_s']:.2f} s, "
                  f"{x['rss_mib']:.0f} MiB", flush=True)
        if fl["coldsnap"]:
            print(f"    coldsnap download: {fl['coldsnap']['blocks']} blocks, {fl['coldsnap']['wall_s']:.2f} s", flush=True)
        text = out.read_text()
        section = files.files_section(fl, cmd, now())
        if files.FILES_HEADING in text:
            text = splice_section(text, files.FILES_HEADING, section)
        else:
            text = text.rstrip("\n") + "\n\n" + "\n".join(section) + "\n"
        out.write_text(text)
        print(f"==> rewrote the section {files.FILES_HEADING[3:]!r} of {args.out}")
        return
    if args.only_restores:
        if not out.is_file():
            ap.error(f"--only-restores rewrites one section of an existing file; {out} does not exist")
        cmd = command_line()
        print("==> One restore per kind", flush=True)
        rs = restoring.restores_run(args.functions_dir)
        report_restores_run(rs)
        out.write_text(
            splice_section(out.read_text(), restoring.RESTORES_HEADING, restoring.restores_section(rs, cmd, now()))
        )
        print(f"==> rewrote the section {restoring.RESTORES_HEADING[3:]!r} of {args.out}")
        return
    if args.only_scale:
        if not out.is_file():
            ap.error(f"--only-scale rewrites one section of an existing file; {out} does not exist")
        cmd = command_line()
        print("==> 2,000 sources in 2 accounts x 2 regions", flush=True)
        sc = scale.scale_run(args.functions_dir)
        report_scale_run(sc)
        out.write_text(splice_section(out.read_text(), scale.SCALE_HEADING, scale.scale_section(sc, cmd, now())))
        print(f"==> rewrote the section {scale.SCALE_HEADING[3:]!r} of {args.out}")
        return
    if not args.lambda_dir or not args.c7n:
        ap.error("--lambda-dir and --c7n are required (unless --only-faults)")
    print("==> Strongroom backup run over the bench estate", flush=True)
    sr = strongroom_run(args.functions_dir)
    print(f"    {sum(sr['calls'].values())} calls: {dict(sr['calls'])}", flush=True)
    print("==> The same backup run, clean and under faults", flush=True)
    fr = fault_run(args.functions_dir)
    report_fault_run(fr)
    print("==> 2,000 sources in 2 accounts x 2 regions", flush=True)
    sc = scale.scale_run(args.functions_dir)
    report_scale_run(sc)
    print("==> Copies of 100 recovery points, same account and vault account", flush=True)
    cp = copying.copies_run(args.functions_dir)
    report_copies_run(cp)
    print("==> One restore per kind", flush=True)
    rs = restoring.restores_run(args.functions_dir)
    report_restores_run(rs)
    print("==> Cloud Custodian over a freshly seeded bench estate", flush=True)
    c7n = custodian_run(args.functions_dir, args.c7n)
    print(f"    {sum(c7n['calls'].values())} calls: {dict(c7n['calls'])}", flush=True)
    print("==> Cold starts of the snapshot release binary", flush=True)
    cs = cold_starts(str(Path(args.lambda_dir, "snapshot", "bootstrap")), args.cold_runs)
    print(f"    {cs}", flush=True)
    print("==> Retention planner throughput (criterion)", flush=True)
    pt = planner_throughput(os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target")))
    print(f"    {pt}", flush=True)
    print("==> API calls of a prune of 1,000 recovery points", flush=True)
    pc = prune_calls(args.functions_dir)
    print(f"    {sum(pc['calls'].values())} calls: {dict(pc['calls'])}", flush=True)
    write(out, sr, c7n, cs, pt, pc, fr, sc, cp, rs, "make bench")
    print(f"==> wrote {args.out}")


def report_restores_run(rs: dict[str, Any]) -> None:
    for x in rs["restores"]:
        print(f"    {x['label']}: {sum(x['calls'].values())} calls, {x['checks']} checks, {x['wall_s']:.2f} s", flush=True)


def report_copies_run(cp: dict[str, Any]) -> None:
    for name in ("same", "vault"):
        r = cp[name]
        print(
            f"    {name}: {r['counts']}, {r['passes']} passes, {sum(r['calls'].values())} calls, "
            f"peak {r['peak_ebs']} EBS / {r['peak_db']} DB in flight, utilisation {r['utilisation']}, {r['wall_s']:.0f} s",
            flush=True,
        )


def report_scale_run(sc: dict[str, Any]) -> None:
    for name in ("quick", "slow", "small"):
        r = sc[name]
        print(
            f"    {name}: {r['outcome']}, {r['selected']} selected, {r['completed']} completed, {r['failures']} failures, "
            f"{sum(r['calls'].values())} calls, parent {r['parent_events']} events / {r['parent_payload']} B, "
            f"{r['children']} children, largest {r['child_events_max']} events / {r['child_payload']} B, "
            f"{r['wall_s']:.0f} s",
            flush=True,
        )
    print(f"    a day pending: {sc['checks_in_a_day']} checks, ~{sc['day_child_events']} child events", flush=True)


def report_fault_run(fr: dict[str, Any]) -> None:
    for name in ("clean", "faulted"):
        r = fr[name]
        print(
            f"    {name}: {r['status']}/{r['outcome']}, {r['selected']} selected, {r['made']} with a recovery point, "
            f"{len(r['duplicates'])} duplicates, {len(r['failures'])} failures {dict(r['failure_types'])}, "
            f"{sum(r['calls'].values())} calls ({dict(r['faulted'])}), {r['wall_s']:.1f} s",
            flush=True,
        )
        for d in r["duplicates"]:
            print(f"      DUPLICATE {d}", flush=True)
        for x in r["failures"]:
            print(f"      FAILURE {x}", flush=True)


if __name__ == "__main__":
    main()
