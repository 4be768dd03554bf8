"""Issue 11's figures: API calls and wall time of one restore per kind.

One fresh emulator with the `restores` estate (in us-east-1: an instance
with three volumes, a volume, an RDS instance, an Aurora cluster with two
instances, a Redshift cluster, in a VPC) and a `vault` account. Two backup
runs make the recovery points (a policy of snapshots and instance sets that
also copies volumes and databases to the vault in us-west-2, and a policy of
AMIs); then the restore state machine runs once per kind, as a person starts
it from the console, with `poll_seconds` 0 and every restored volume and DB
instance `creating` for its first `RESTORE_DESCRIBES` describes (the
emulator's patch 19), so each restore goes through its wait loop. Measured
per restore: the API calls the restore function made (the emulator's call
log names the function of each call), the checks until usable, and the wall
time from StartExecution to the execution's end (the state machine ends when
what it made is usable and the report is written).

The emulator completes everything else at once: the wall times are a
regression figure for Strongroom's own work, not what AWS takes (a volume
from a snapshot is available in seconds to minutes, a database or a
Redshift cluster in tens of minutes).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from client import ACCOUNT, Emulator, backup_definition

RESTORES_HEADING = "## Restores, one per kind"
VAULT = "210987654321"
RESTORE_DESCRIBES = 2


def _policy(name: str, types: list[str], extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "selector": {"resource_types": types, "regions": ["us-east-1"], "tags": {"backup": "daily"}},
        "retention": {"keep_last": 3},
        **extra,
    }


def restores_run(functions_dir: str) -> dict[str, Any]:
    env = {"STRONGROOM_EMULATOR_RESTORE_DESCRIBES": str(RESTORE_DESCRIBES)}
    with Emulator(functions_dir, extra_env=env) as emu:
        home = emu.seed_in("restores")
        vault = emu.seed_in("vault", VAULT)
        backup = emu.create_backup_machine()
        types = ["ebs-volume", "ec2-instance", "rds-instance", "aurora-cluster", "redshift-cluster"]
        copies = {"copies": [{"region": "us-west-2", "account": VAULT, "role_arn": vault["roles"]["strongroom-vault-copy"],
                              "kms_key": vault["keys"]["strongroom-vault"]}]}
        for name, policy in (
            ("daily", _policy("daily", types, copies)),
            ("images", _policy("images", ["ec2-instance"], {"ec2": {"mode": "ami"}})),
        ):
            run = {"policy": policy, "poll_seconds": 0, "scheduled_time": "2026-11-29T03:00:00Z"}
            d = emu.run_execution(backup, f"{name}-backup", run, poll_s=0.2).description
            if d["status"] != "SUCCEEDED":
                raise SystemExit(f"{name} backup: {d['status']}: {d.get('error')} {d.get('cause')}")
        machine = emu.sfn.create_state_machine(
            name="strongroom-restore",
            definition=backup_definition("restore"),
            roleArn=f"arn:aws:iam::{ACCOUNT}:role/strongroom-restore",
        )["stateMachineArn"]
        res = {r["resource_type"]: r for r in home["resources"]}
        instance = res["ec2-instance"]["id"]
        ami = next(
            i["ImageId"] for i in emu.client("ec2").describe_images(Owners=["self"])["Images"]
            if any(t["Key"] == "strongroom:policy" and t["Value"] == "images" for t in i.get("Tags", []))
        )
        here = {"region": "us-east-1"}
        cases: list[tuple[str, dict[str, Any]]] = [
            ("ebs-volume", {"from": {"source": res["ebs-volume"]["id"]}, "location": here,
                            "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a"}}),
            ("ebs-volume (one member of an instance set)",
             {"from": {"source": instance}, "location": here,
              "restore": {"kind": "ebs-volume", "availability_zone": "us-east-1a", "device": "/dev/sdf"}}),
            ("ec2-instance from an instance set (3 volumes)",
             {"from": {"recovery_point": f"{instance}@2026-11-29T03:00:00Z"}, "location": here,
              "restore": {"kind": "ec2-instance"}}),
            ("ec2-instance from an AMI, isolated",
             {"from": {"recovery_point": ami}, "location": here,
              "restore": {"kind": "ec2-instance"}, "isolate": True}),
            ("rds-instance", {"from": {"source": "orders"}, "location": here,
                              "restore": {"kind": "rds-instance", "identifier": "orders-restored"}}),
            ("aurora-cluster (2 instances)",
             {"from": {"source": "ledger"}, "location": here,
              "restore": {"kind": "aurora-cluster", "identifier": "ledger-restored", "instances": 2}}),
            ("redshift-cluster", {"from": {"source": "warehouse"}, "location": here,
                                  "restore": {"kind": "redshift-cluster", "identifier": "warehouse-restored"}}),
            ("rds-instance from the vault copy",
             {"from": {"source": "orders"},
              "location": {"region": "us-west-2", "account": VAULT, "role_arn": vault["roles"]["strongroom-vault-restore"]},
              "restore": {"kind": "rds-instance", "identifier": "orders-dr"}}),
        ]
        out = []
        for n, (label, request) in enumerate(cases):
            request["poll_seconds"] = 0
            emu.reset_calls()
            e = emu.run_execution(machine, f"restore-{n}", request, poll_s=0.05)
            d = e.description
            if d["status"] != "SUCCEEDED":
                raise SystemExit(f"{label}: {d['status']}: {d.get('error')} {d.get('cause')}")
            report = json.loads(d["output"])
            calls = Counter(f"{c['service']}:{c['action']}" for c in emu.calls() if c.get("function") == "restore")
            out.append({"label": label, "calls": calls, "checks": report["checks"], "wall_s": e.wall_s,
                        "made": [m["kind"] for m in report["restored"]]})
        return {"restores": out}


def restores_section(r: dict[str, Any], cmd: str, when: str) -> list[str]:
    lines = [
        RESTORES_HEADING,
        "",
        "Estate: `tests/emulator/seed.py --estate restores` (us-east-1, in a VPC: an instance with three gp3 "
        "volumes, a volume, an RDS instance, an Aurora cluster with two instances, a Redshift cluster) and "
        "`--estate vault`. Recovery points from two backup runs (snapshots and instance sets, with copies of "
        "every point to the vault in us-west-2; AMIs of the instance). One restore state machine execution per "
        "row, `poll_seconds` 0, every restored volume and DB instance `creating` for its first "
        f"{RESTORE_DESCRIBES} describes (the emulator's patch 19). Calls: those the restore function made. Wall "
        "time: StartExecution to the end of the execution, polled every 50 ms; the emulator makes everything "
        "else at once, so this is a regression figure for Strongroom's own work, not AWS's restore times.",
        "",
        "| restore | API calls | checks | wall time | made |",
        "|---|---:|---:|---:|---|",
    ]
    for x in r["restores"]:
        lines.append(f"| {x['label']} | **{sum(x['calls'].values())}** | {x['checks']} | {x['wall_s']:.2f} s | "
                     f"{', '.join(x['made'])} |")
    lines += [
        "",
        "What the calls are: validate lists the location's recovery points of the kinds the request restores "
        "(by id: of every kind, so that a point of another kind is named as such; one paged describe per kind), "
        "reads the backup's record of the point (one S3 `GetObject`, two for a copy made before copies had "
        "records), and checks the plan against the account (zone, subnet, groups, key pair, subnet group, that "
        "the identifier is free: one describe each that applies); start makes the resource (an instance from a "
        "set: `DescribeImages` for an image a retried start made, `RegisterImage`, then `RunInstances`; isolated: "
        "the group, with its default egress rule revoked); each check is one describe (an instance: two, its "
        "state and its status checks; an Aurora cluster: the cluster and each instance, made by the first check "
        "that finds the cluster available); finalize writes the report (`PutObject`) and deregisters a set's "
        "temporary image.",
        "",
        "| call | " + " | ".join(str(i + 1) for i in range(len(r["restores"]))) + " |",
        "|---|" + "---:|" * len(r["restores"]),
    ]
    actions = sorted({a for x in r["restores"] for a in x["calls"]})
    for a in actions:
        lines.append(f"| {a} | " + " | ".join(str(x["calls"].get(a, 0)) for x in r["restores"]) + " |")
    lines += ["", "Columns follow the rows of the first table.", "", f"Produced by `{cmd}` on {when}."]
    return lines
