"""Issue 10's figures: copies of 100 recovery points to one region.

Two fresh emulators, each with the `copies-bench` estate (a hundred recovery
points: 70 volumes under a customer key, 10 instances of 2 volumes, 10 RDS
instances, 10 Aurora clusters, in us-east-1) and one policy copying to
us-west-2: in the same account, then in a vault account (shared, granted,
copied with the vault's key and locked, unshared). Every copy stays in
progress for its first `COPY_DESCRIBES` describes (the emulator's patch 17),
so copies overlap and queue as on AWS. Measured:

- the API calls the copy function made (the emulator's call log names the
  function of each call), per copied recovery point;
- the most copies in flight at once per limit at the destination, as the
  emulator counted them, and how full the queue kept the limit while copies
  waited (each pass's copies in flight over the limit, averaged over the
  passes that left copies waiting), from the destination's state file.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from client import ACCOUNT, Emulator

COPIES_HEADING = "## Copies to another region and to a vault account"
VAULT = "210987654321"
COPY_DESCRIBES = 3
LIMIT = 20


def policy(destination: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": "daily",
        "selector": {
            "resource_types": ["ebs-volume", "ec2-instance", "rds-instance", "aurora-cluster"],
            "regions": ["us-east-1"],
            "tags": {"backup": "daily"},
        },
        "copies": [destination],
    }


def one_run(functions_dir: str, vault: bool) -> dict[str, Any]:
    with Emulator(functions_dir) as emu:
        emu.set_copies({"copy_describes": COPY_DESCRIBES})
        home = emu.seed_in("copies-bench")
        if vault:
            v = emu.seed_in("vault", VAULT)
            destination = {
                "region": "us-west-2",
                "account": VAULT,
                "role_arn": v["roles"]["strongroom-vault-copy"],
                "kms_key": v["keys"]["strongroom-vault"],
                "lock": {"mode": "governance", "duration_days": 30},
            }
        else:
            destination = {"region": "us-west-2", "kms_key": home["keys"]["strongroom-destination"]}
        machine = emu.create_backup_machine()
        emu.reset_calls()
        run_input = {"policy": policy(destination), "poll_seconds": 0, "scheduled_time": "2026-11-29T03:00:00Z"}
        execution = emu.run_execution(machine, "copies", run_input, poll_s=0.5, timeout_s=None)
        d = execution.description
        if d["status"] != "SUCCEEDED":
            raise SystemExit(f"copies: {d['status']}: {d.get('error')} {d.get('cause')}")
        report = execution.report()
        dest = report["copies"][0]
        state = emu.object_json("runs/daily/copies/copies/0.json")
        calls = Counter(
            f"{c['service']}:{c['action']}" for c in emu.calls() if c.get("function") == "copy"
        )
        account = VAULT if vault else ACCOUNT
        peaks = emu.copies()["peaks"]
        utilisation: dict[str, float] = {}
        for limit in ("ebs-snapshots", "db-snapshots"):
            busy = [p[limit]["in_flight"] / LIMIT for p in state["passes"] if limit in p and p[limit]["waiting"] > 0]
            utilisation[limit] = sum(busy) / len(busy) if busy else 1.0
        return {
            "points": len(state["jobs"]),
            "counts": dest["counts"],
            "passes": dest["passes"],
            "calls": calls,
            "wall_s": execution.wall_s,
            "peak_ebs": peaks.get(f"{account}/us-west-2/ebs", 0),
            "peak_db": peaks.get(f"{account}/us-west-2/db", 0),
            "utilisation": utilisation,
            "units": sum(len(j["units"]) for j in state["jobs"]),
        }


def copies_run(functions_dir: str) -> dict[str, Any]:
    return {"same": one_run(functions_dir, vault=False), "vault": one_run(functions_dir, vault=True)}


def copies_section(r: dict[str, Any], cmd: str, when: str) -> list[str]:
    same, vault = r["same"], r["vault"]
    lines = [
        COPIES_HEADING,
        "",
        "Estate: `tests/emulator/seed.py --estate copies-bench` (in us-east-1: 70 EBS volumes under a customer "
        "key, 10 EC2 instances with 2 volumes each, 10 RDS instances, 10 Aurora clusters: a hundred recovery "
        f"points, {same['units']} snapshot copies), one policy copying to us-west-2, `poll_seconds` 0, every copy in "
        f"progress for its first {COPY_DESCRIBES} describes (the emulator's patch 17, which also enforces AWS's "
        f"{LIMIT} copies in flight per destination region). Calls: those the copy function made (the call log "
        "names each call's function). Same account, then a vault account (`--estate vault`: shared, key granted, "
        "copied with the vault's key, locked in governance mode, unshared).",
        "",
        "| figure | same account | vault account | goal |",
        "|---|---:|---:|---:|",
        f"| recovery points copied / failed | {same['counts']['completed']} / {same['counts']['failed']} | "
        f"{vault['counts']['completed']} / {vault['counts']['failed']} | |",
        f"| copy passes (loop iterations) | {same['passes']} | {vault['passes']} | |",
        f"| API calls of the copy function | {sum(same['calls'].values())} | {sum(vault['calls'].values())} | |",
        f"| **API calls per copied recovery point** | **{sum(same['calls'].values()) / same['points']:.2f}** | "
        f"**{sum(vault['calls'].values()) / vault['points']:.2f}** | |",
        f"| **peak EBS snapshot copies in flight** (emulator's count) | **{same['peak_ebs']}** | "
        f"**{vault['peak_ebs']}** | <= {LIMIT} |",
        f"| **peak DB snapshot copies in flight** (emulator's count) | **{same['peak_db']}** | "
        f"**{vault['peak_db']}** | <= {LIMIT} |",
        f"| utilisation while copies waited, EBS | {same['utilisation']['ebs-snapshots']:.0%} | "
        f"{vault['utilisation']['ebs-snapshots']:.0%} | |",
        f"| utilisation while copies waited, DB | {same['utilisation']['db-snapshots']:.0%} | "
        f"{vault['utilisation']['db-snapshots']:.0%} | |",
        f"| wall time of the execution | {same['wall_s']:.0f} s | {vault['wall_s']:.0f} s | |",
        "",
        "Utilisation: for each pass that left copies waiting, the copies in flight after it over the limit, "
        "averaged. Each pass reads and writes its state file, checks the copies in flight (one describe per kind), "
        "lists what the destination holds (the idempotency lookup and the count of Strongroom copies in flight "
        "there), describes the sources it starts (one describe per kind), and starts what the limit allows: one "
        "copy call per snapshot. A vault copy adds, per snapshot, a share and an unshare and (locked) a "
        "`LockSnapshot` (those APIs take one snapshot each), and per source key one `DescribeKey`, one "
        "`CreateGrant` and one `RevokeGrant` for the whole run.",
        "",
        "| call | same account | vault account |",
        "|---|---:|---:|",
    ]
    for a in sorted(set(same["calls"]) | set(vault["calls"])):
        lines.append(f"| {a} | {same['calls'].get(a, 0)} | {vault['calls'].get(a, 0)} |")
    lines += ["", f"Produced by `{cmd}` on {when}."]
    return lines
