#!/usr/bin/env python3
"""Offline checks of the SAM template (`make check-infra`), no AWS call.

1. Converts `infra/template.yaml` to CloudFormation with the SAM translator,
   as `sam deploy` would after `sam package` (local code and definition
   locations become S3 locations; the ASL is inlined), and writes it to
   `--out` for cfn-lint, which does not expand SAM resources itself.
2. Checks every ASL placeholder `${Name}` has a `DefinitionSubstitutions`
   entry, and every entry is used; and every schedule's input against the
   run input's JSON Schema (`infra/schemas/run-input.schema.json`, generated
   from the policy types), naming the field of a malformed policy.
3. Checks the IAM policies of the converted template (every branch of every
   `Fn::If`): no Allow statement with a wildcard action; every destructive
   action carries its guard (the `strongroom:managed` resource-tag
   condition where the service evaluates one; for Redshift, whose
   `DeleteClusterSnapshot` is limited to Strongroom's `strongroom-*` names,
   see README "IAM"); Redshift's `CreateTags` (a cluster's copies are tagged
   once found, not at creation), `CreateSnapshotCopyGrant` and its sharing
   (`AuthorizeSnapshotAccess`, a vault copy, and `RevokeSnapshotAccess`,
   before prune deletes one) only on Strongroom's names too; `kms:CreateGrant` only through an AWS service
   (`kms:ViaService`) or of named operations (`kms:GrantOperations`);
   sharing (`ec2:ModifySnapshotAttribute`,
   `ec2:ModifyImageAttribute`, `rds:Modify*SnapshotAttribute`) only of
   managed recovery points; `ec2:CreateTags` only at creation (copies by
   `CopySnapshot` and `CopyImage` included) or for the `strongroom:deleting`
   mark on managed snapshots; `sts:AssumeRole` only on the
   `AssumableRoleArns` parameter. Only the prune role may delete a
   recovery point (the copy role never: no `ec2:Delete*`,
   `ec2:DeregisterImage`, `rds:Delete*`, `redshift:Delete*`, nor a wildcard
   that would match one), and no role may unlock a snapshot or schedule a
   key's deletion. Every parameter refuses what is out of range. Each check
   first proves it can fail: it must reject the template with each guard
   removed.
4. Checks `infra/vault-account.yaml` (the vault account's key and roles) the
   same way, and more: its copy role's trust names exactly the
   `SourceCopyRoleArn` parameter (the prune role's, `SourcePruneRoleArn`),
   with the external id when one is set; no Allow statement of the copy role
   deletes or unlocks; its explicit Deny covers deleting, deregistering,
   unlocking and sharing (snapshots and AMIs); the key's policy names no
   principal but the vault account and the copy role; the optional restore
   role's trust names exactly `SourceRestoreRoleArn`.
5. The restore roles (`RestoreRole`, the vault's `VaultRestoreRole`) allow
   no action that deletes, unlocks, locks, shares or unshares a recovery
   point (nor a wildcard matching one) and have it all as an explicit
   Deny; every removal they allow (`Delete*`, `Terminate*`, `Deregister*`,
   `Revoke*`, `Remove*`, `Untag*`, `Disassociate*`, `Detach*`) is of what a
   restore made: conditioned on the
   `strongroom:restore` resource tag, and not on a `strongroom:managed=true`
   one; what they tag after creation (RDS, Redshift) is an instance or a
   cluster, never a snapshot. Their one tag removal, `redshift:DeleteTags`
   (a restored cluster may carry its snapshot's contract tags), is only on
   clusters tagged `strongroom:restore` and only of `strongroom:*` keys
   other than `strongroom:restore` and `strongroom:restored-from`. The restore state machine runs only
   `RestoreFunction` (its substitutions, every Task of its deployed
   definition, its role's invocations). The bucket's `recovery-points/`
   never expires (no lifecycle rule reaches it); `runs/` and `restores/` do.
6. A file restore's permissions (restore kind `files`): no role of either
   template may write a snapshot through the EBS direct APIs
   (`ebs:StartSnapshot`, `ebs:PutSnapshotBlock`, `ebs:CompleteSnapshot`,
   nor a wildcard matching one); only the restore roles may read one
   (`ebs:ListSnapshotBlocks`, `ebs:GetSnapshotBlock`, `ebs:ListChangedBlocks`),
   only on snapshots and only of managed recovery points. No role writes to
   S3 but under `runs/`, `recovery-points/` and `restores/` of the stack's
   bucket and, the restore role only, in the `FileRestoreBuckets` (exactly
   the parameter's buckets, whose pattern refuses wildcards), where it may
   only check the bucket, put objects and list or abort its multipart
   uploads: no role deletes an S3 object or reads one there. The restore
   roles use KMS keys only through a service (`kms:ViaService`).
7. With `--cdk` / `--vault-cdk`: the CDK app's templates deploy the same
   resources, properties and IAM statements as the SAM template and the
   vault template.
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import json
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterator

ROOT = Path(__file__).resolve().parents[1]

# Destructive action -> the condition keys that guard it (any one, equal to "true").
TAG_GUARDED = {
    "ec2:DeleteSnapshot": ["aws:ResourceTag/strongroom:managed", "ec2:ResourceTag/strongroom:managed"],
    "ec2:DeregisterImage": ["aws:ResourceTag/strongroom:managed", "ec2:ResourceTag/strongroom:managed"],
    "rds:DeleteDBSnapshot": ["rds:snapshot-tag/strongroom:managed", "aws:ResourceTag/strongroom:managed"],
    "rds:DeleteDBClusterSnapshot": ["rds:cluster-snapshot-tag/strongroom:managed", "aws:ResourceTag/strongroom:managed"],
}
# Sharing (a copy to a vault account shares the recovery point for the copy) ->
# the condition keys that keep it to managed recovery points (any one, "true"):
# unguarded, it could make any snapshot or AMI of the account public.
# Redshift's sharing is in NAME_GUARDED: no resource-tag condition to rely on.
SHARE_GUARDED = {
    "ec2:ModifySnapshotAttribute": ["aws:ResourceTag/strongroom:managed", "ec2:ResourceTag/strongroom:managed"],
    "ec2:ModifyImageAttribute": ["aws:ResourceTag/strongroom:managed", "ec2:ResourceTag/strongroom:managed"],
    "rds:ModifyDBSnapshotAttribute": ["rds:snapshot-tag/strongroom:managed", "aws:ResourceTag/strongroom:managed"],
    "rds:ModifyDBClusterSnapshotAttribute": ["rds:cluster-snapshot-tag/strongroom:managed", "aws:ResourceTag/strongroom:managed"],
}
# Actions guarded by the names Strongroom gives instead (the resource ARN):
# Redshift deletes, tags (a cluster's copy is made by the cluster, so it is
# tagged once found: unguarded, the copy role could mark any snapshot managed
# for prune), sharing (a vault copy of a Redshift snapshot is a share, as AWS
# copies none across accounts: unguarded, the copy role could give any
# snapshot of the account to any account; its revocation, before prune
# deletes a shared one, as the delete) and snapshot copy grants.
NAME_GUARDED = {
    "redshift:DeleteClusterSnapshot": ":snapshot:*/strongroom-*",
    "redshift:CreateTags": ":snapshot:*/strongroom-*",
    "redshift:AuthorizeSnapshotAccess": ":snapshot:*/strongroom-*",
    "redshift:RevokeSnapshotAccess": ":snapshot:*/strongroom-*",
    "redshift:CreateSnapshotCopyGrant": ":snapshotcopygrant:strongroom-*",
}
# A KMS grant gives another principal the use of a key: only through an AWS
# service (kms:ViaService, each value a service endpoint), or of named
# operations only (kms:GrantOperations, ForAllValues).
GRANT_ACTIONS = {"kms:CreateGrant"}
# The ec2:CreateAction values that make a tag one at creation (copies and restores included).
CREATE_ACTIONS = {
    "CreateSnapshot", "CreateSnapshots", "CreateImage", "CopySnapshot", "CopyImage",
    "CreateVolume", "RunInstances", "RegisterImage", "CreateSecurityGroup",
}
# The tags a role may add to managed snapshots after creation, one key per
# statement (aws:TagKeys): prune's deleting mark, and the device of an
# instance set's member (its value differs per member, which CreateSnapshots'
# one tag specification cannot carry).
MARKS = {"strongroom:deleting", "strongroom:device"}
# Actions that remove a recovery point: only the roles in DELETERS may have
# them (IAM patterns, matched case-insensitively like IAM does).
DELETE_ACTIONS = ["ec2:Delete*", "ec2:DeregisterImage", "rds:Delete*", "redshift:Delete*"]
DELETERS = {"PruneRole", "VaultPruneRole"}
# The EBS direct APIs that write a snapshot block by block: a file restore
# only reads (a snapshot started or completed through them is no recovery
# point of Strongroom's, and could pass for one).
EBS_WRITES = ["ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot"]
# No role of either template may have these: a lock is only ever let expire,
# a key whose deletion is scheduled takes every copy it encrypts with it, and
# no snapshot is ever written through the EBS direct APIs.
NEVER = ["ec2:UnlockSnapshot", "kms:ScheduleKeyDeletion"] + EBS_WRITES
# Concrete actions that the patterns above stand for, to find wildcards
# (`ec2:D*`, `*`) that would match one of them.
DESTRUCTIVE_EXAMPLES = [
    "ec2:DeleteSnapshot", "ec2:DeregisterImage", "ec2:UnlockSnapshot", "rds:DeleteDBSnapshot",
    "rds:DeleteDBClusterSnapshot", "redshift:DeleteClusterSnapshot", "kms:ScheduleKeyDeletion",
] + EBS_WRITES
# A snapshot's data, read through the EBS direct APIs: only the restore roles
# (a file restore), only on snapshots, only of Strongroom's recovery points.
EBS_READS = ["ebs:ListSnapshotBlocks", "ebs:GetSnapshotBlock", "ebs:ListChangedBlocks"]
SNAPSHOT_ARNS = "arn:${AWS::Partition}:ec2:*::snapshot/*"
# S3: where the roles write. The stack's bucket under these prefixes, and a
# file restore's destinations, the FileRestoreBuckets parameter's buckets:
# there only the restore role, and only these actions (HeadBucket is
# s3:ListBucket; CreateMultipartUpload, UploadPart and CompleteMultipartUpload
# are s3:PutObject; ListParts; AbortMultipartUpload), never a read or a
# delete of an object. No role deletes an S3 object anywhere.
BUCKET_ARN = "${RunsBucket.Arn}"
BUCKET_PREFIXES = ("runs/", "recovery-points/", "restores/")
FILE_BUCKETS = "FileRestoreBuckets"
FILE_BUCKETS_ROLE = "RestoreRole"
FILE_BUCKET_ACTIONS = {"s3:ListBucket", "s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}
# The parameter's bucket and object ARNs, as both templates spell them
# (CloudFormation has no map over a list: the names joined by a literal).
FILE_BUCKET_ARNS = {"Fn::Split": [",", {"Fn::Join": ["", [
    "arn:*:s3:::", {"Fn::Join": [",arn:*:s3:::", {"Ref": FILE_BUCKETS}]}]]}]}
FILE_OBJECT_ARNS = {"Fn::Split": [",", {"Fn::Join": ["", [
    "arn:*:s3:::", {"Fn::Join": ["/*,arn:*:s3:::", {"Ref": FILE_BUCKETS}]}, "/*"]]}]}
# S3 actions that write nothing (by the name's start).
S3_READS = ("get", "list", "describe")
# What FileRestoreBuckets' pattern must accept (empty: none) and refuse.
FILE_BUCKET_NAMES_OK = ["", "restored-files", "files.example.com", "abc"]
FILE_BUCKET_NAMES_REFUSED = ["*", "restored-*", "re?tored", "a/b", "arn:aws:s3:::x", "x", "Restored", "a b"]
# KMS actions that use a key's material: a restorer's only through a service.
KMS_USES = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:ReEncrypt")
# The vault copy role's explicit Deny must name at least these (on "*", unconditioned):
# deleting a copy, deregistering an AMI copy, unlocking, sharing an AMI copy out.
VAULT_COPY_DENIED = [
    "ec2:DeleteSnapshot", "ec2:DeregisterImage", "ec2:UnlockSnapshot", "ec2:ModifyImageAttribute",
    "rds:DeleteDBSnapshot", "rds:DeleteDBClusterSnapshot",
]
VAULT_PRUNE_DENIED = ["ec2:UnlockSnapshot", "ec2:ModifyImageAttribute", "kms:ScheduleKeyDeletion"]
# The restore roles: they create, and remove only what a restore made. They
# may never delete, unlock, lock, share or unshare a recovery point: none of
# these allowed (nor a wildcard matching one), all of them an explicit Deny.
RESTORERS = {"RestoreRole", "VaultRestoreRole"}
RESTORE_DENIED = [
    "ec2:DeleteSnapshot", "ec2:ModifySnapshotAttribute", "ec2:ModifyImageAttribute", "ec2:DisableImage",
    "ec2:LockSnapshot", "ec2:UnlockSnapshot", "rds:DeleteDBSnapshot", "rds:DeleteDBClusterSnapshot",
    "rds:ModifyDBSnapshotAttribute", "rds:ModifyDBClusterSnapshotAttribute", "redshift:DeleteClusterSnapshot",
    "redshift:RevokeSnapshotAccess", "redshift:AuthorizeSnapshotAccess",
]
# The vault's also keeps the key that makes its copies readable.
VAULT_RESTORE_DENIED = RESTORE_DENIED + ["kms:ScheduleKeyDeletion", "kms:DisableKey"]
# What a restore made carries this tag (its execution), and a recovery point
# strongroom:managed=true: a restorer's removals need both conditions.
RESTORE_TAG = "aws:ResourceTag/strongroom:restore"
MANAGED_TAG = "aws:ResourceTag/strongroom:managed"
REMOVALS = ("delete", "terminate", "deregister", "revoke", "remove", "untag", "disassociate", "detach")
# RDS and Redshift restores are tagged after creation (no condition tells
# those tags from later ones): only the resource types a restore makes,
# never a snapshot (whose tags prune and restore rely on).
RESTORER_TAGS = {"rds:AddTagsToResource": (":db:", ":cluster:"), "redshift:CreateTags": (":cluster:",)}
# A restored Redshift cluster may come back with its snapshot's contract tags
# (strongroom:*), which the restore removes: a restorer's one tag removal,
# not a recovery point's. Only on clusters; only of one a restore made
# (tagged strongroom:restore: it is tagged strongroom:managed=true at that
# moment, so no managed condition); only strongroom: keys (ForAllValues
# aws:TagKeys), never a customer's tag nor the restore's own two keys.
RESTORER_UNTAGS = {"redshift:DeleteTags": (":cluster:",)}
RESTORE_OWN_KEYS = ["strongroom:restore", "strongroom:restored-from"]
# The bucket's prefixes: the records of recovery points are kept as long as
# the points (years); the runs' files and the restore reports expire.
KEPT_PREFIX = "recovery-points/"
EXPIRING_PREFIXES = ["runs/", "restores/"]
# The emulator's function ARNs (the deployed definitions' substitutions).
EMULATOR_FUNCTIONS = "arn:aws:lambda:us-east-1:123456789012:function:"


def load(path: Path) -> dict[str, Any]:
    from samcli.yamlhelper import yaml_parse

    return yaml_parse(path.read_text())


def packaged(template: dict[str, Any], base: Path) -> dict[str, Any]:
    """What `sam package` hands CloudFormation: code in S3, the ASL inlined."""
    t = copy.deepcopy(template)
    for name, r in t["Resources"].items():
        props = r.get("Properties", {})
        if r["Type"] == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            props["CodeUri"] = f"s3://strongroom-artifacts/{name}.zip"
        if r["Type"] == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            props["Definition"] = json.loads((base / props.pop("DefinitionUri")).read_text())
    return t


def convert(template: dict[str, Any]) -> dict[str, Any]:
    from samtranslator.translator.managed_policy_translator import ManagedPolicyLoader
    from samtranslator.translator.transform import transform

    class NoManagedPolicies(ManagedPolicyLoader):
        """The template names no managed policies: nothing to look up."""

        def __init__(self) -> None:
            pass

        def load(self) -> dict[str, str]:
            return {}

    # The translator fills AWS::Region from the environment; any region does
    # for a check (nothing is called).
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    return transform(template, {}, NoManagedPolicies())


def check_parameters(template: dict[str, Any]) -> list[str]:
    """Every parameter refuses what is out of range at deploy: AllowedValues,
    AllowedPattern or MinValue/MaxValue (a CommaDelimitedList of role ARNs
    is checked where it is used: IAM refuses a malformed ARN)."""
    problems = []
    for name, p in template.get("Parameters", {}).items():
        if p.get("Type") == "CommaDelimitedList":
            # CloudFormation matches its AllowedPattern against each value.
            if "AllowedPattern" in p:
                for value in str(p.get("Default", "")).split(","):
                    if not re.fullmatch(p["AllowedPattern"], value):
                        problems.append(f"parameter {name}: default value {value!r} does not match its AllowedPattern")
            continue
        if not any(k in p for k in ("AllowedValues", "AllowedPattern", "MinValue", "MaxValue")):
            problems.append(f"parameter {name}: no AllowedValues, AllowedPattern or MinValue/MaxValue")
        default = p.get("Default")
        if "AllowedValues" in p and default is not None and str(default) not in [str(v) for v in p["AllowedValues"]]:
            problems.append(f"parameter {name}: default {default!r} is not among its AllowedValues")
        if "AllowedPattern" in p and default is not None and not re.fullmatch(p["AllowedPattern"], str(default)):
            problems.append(f"parameter {name}: default {default!r} does not match its AllowedPattern")
    return problems


def self_test_parameters(template: dict[str, Any], where: str) -> None:
    """The parameter check must reject a parameter without its constraint."""
    params = template.get("Parameters", {})
    name = next((n for n, p in params.items() if "AllowedPattern" in p and p.get("Type") != "CommaDelimitedList"), None)
    if name is None:
        raise SystemExit(f"self-test: {where} has no parameter with an AllowedPattern; the check would prove nothing")
    broken = copy.deepcopy(template)
    for key in ("AllowedValues", "AllowedPattern", "MinValue", "MaxValue"):
        broken["Parameters"][name].pop(key, None)
    if not any(name in p for p in check_parameters(broken)):
        raise SystemExit(f"self-test: the parameter check accepts {where}'s {name} without a constraint")


def check_substitutions(template: dict[str, Any], base: Path) -> list[str]:
    problems = []
    for name, r in template["Resources"].items():
        if r["Type"] != "AWS::Serverless::StateMachine":
            continue
        props = r["Properties"]
        text = (base / props["DefinitionUri"]).read_text()
        used = set(re.findall(r"\$\{([A-Za-z0-9]+)\}", text))
        given = set(props.get("DefinitionSubstitutions", {}))
        for missing in sorted(used - given):
            problems.append(f"{name}: ${{{missing}}} in {props['DefinitionUri']} has no DefinitionSubstitutions entry")
        for unused in sorted(given - used):
            problems.append(f"{name}: DefinitionSubstitutions.{unused} is not used by {props['DefinitionUri']}")
    return problems


def branches(value: Any) -> Iterator[Any]:
    """Every concrete form of `value` over the branches of its `Fn::If`s (statements only)."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        _, yes, no = value["Fn::If"]
        yield from branches(yes)
        yield from branches(no)
    else:
        yield value


def statements(cfn: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(role or policy, statement) for every identity policy statement."""
    for name, r in cfn["Resources"].items():
        props = r.get("Properties", {})
        docs = []
        if r["Type"] == "AWS::IAM::Role":
            docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
        elif r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            docs = [props["PolicyDocument"]]
        for doc in docs:
            for s in doc.get("Statement", []):
                for concrete in branches(s):
                    if isinstance(concrete, dict) and concrete.get("Effect") == "Allow":
                        yield name, concrete


def as_list(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def resource_text(v: Any) -> str:
    return json.dumps(v)


def via_guarded(condition: dict[str, Any]) -> bool:
    """Whether a statement's condition keeps a key's use to AWS services'
    requests on the role's behalf (kms:ViaService, each value a service endpoint)."""
    for operator in ("StringEquals", "StringLike"):
        via = as_list(condition.get(operator, {}).get("kms:ViaService", []))
        if via and all(isinstance(v, str) and re.fullmatch(r"[a-z0-9-]+\.[^.]+\.amazonaws\.com", v)
                       for v in canon(via)):
            return True
    return False


def grant_guarded(condition: dict[str, Any]) -> bool:
    """Whether a kms:CreateGrant statement's condition keeps the grants to
    an AWS service's use of the key or to named operations."""
    if via_guarded(condition):
        return True
    operations = as_list(condition.get("ForAllValues:StringEquals", {}).get("kms:GrantOperations", []))
    return bool(operations) and all(isinstance(o, str) and "*" not in o for o in operations)


def restore_guarded(condition: dict[str, Any]) -> bool:
    """Whether a restorer's removal is only of what a restore made: tagged
    strongroom:restore (any value: its execution), and not a managed recovery point."""
    made = (condition.get("StringLike", {}).get(RESTORE_TAG) == "*"
            or condition.get("Null", {}).get(RESTORE_TAG) == "false")
    return made and condition.get("StringNotEquals", {}).get(MANAGED_TAG) == "true"


def untag_guarded(condition: dict[str, Any]) -> bool:
    """Whether a restorer's tag removal is only of contract keys (strongroom:*,
    but never the restore's own) of what a restore made (tagged strongroom:restore)."""
    made = (condition.get("StringLike", {}).get(RESTORE_TAG) == "*"
            or condition.get("Null", {}).get(RESTORE_TAG) == "false")
    like = as_list(condition.get("ForAllValues:StringLike", {}).get("aws:TagKeys", []))
    contract = bool(like) and all(isinstance(k, str) and k.startswith("strongroom:") for k in like)
    kept = as_list(condition.get("ForAllValues:StringNotEquals", {}).get("aws:TagKeys", []))
    return made and contract and all(k in kept for k in RESTORE_OWN_KEYS)


def check_iam(cfn: dict[str, Any]) -> list[str]:
    problems = []
    for role, s in statements(cfn):
        sid = s.get("Sid", "?")
        actions = as_list(s.get("Action", []))
        condition = s.get("Condition", {})
        restorer = role in RESTORERS
        for a in actions:
            where = f"{role} {sid} {a}"
            if "*" in a:
                problems.append(f"{where}: a wildcard action")
                continue
            # A restorer deregisters only its own temporary images (check_restorers).
            if a in TAG_GUARDED and not (restorer and restore_guarded(condition)):
                eq = condition.get("StringEquals", {})
                if not any(eq.get(k) == "true" for k in TAG_GUARDED[a]):
                    problems.append(f"{where}: destructive without a strongroom:managed=true resource-tag condition")
            if a in SHARE_GUARDED:
                eq = condition.get("StringEquals", {})
                if not any(eq.get(k) == "true" for k in SHARE_GUARDED[a]):
                    problems.append(f"{where}: shares without a strongroom:managed=true resource-tag condition")
            # A restorer tags the clusters it made (check_restorers), never a snapshot.
            if a in NAME_GUARDED and not (restorer and a in RESTORER_TAGS):
                resources = [resource_text(r) for r in as_list(s.get("Resource", []))]
                if not resources or not all(NAME_GUARDED[a] in r for r in resources):
                    problems.append(f"{where}: on resources other than Strongroom's names ({NAME_GUARDED[a]})")
            if a in GRANT_ACTIONS and not grant_guarded(condition):
                problems.append(f"{where}: a grant neither through an AWS service (kms:ViaService) "
                                "nor of named operations (ForAllValues kms:GrantOperations)")
            if a == "ec2:CreateTags":
                create = set(as_list(condition.get("StringEquals", {}).get("ec2:CreateAction", [])))
                keys = as_list(condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys", []))
                marking = (
                    condition.get("StringEquals", {}).get(MANAGED_TAG) == "true"
                    and len(keys) == 1 and keys[0] in MARKS
                )
                if not (create and create <= CREATE_ACTIONS) and not marking:
                    problems.append(f"{where}: tags existing resources (needs ec2:CreateAction, or one mark "
                                    f"of {sorted(MARKS)} on managed snapshots)")
            if a == "sts:AssumeRole" and s.get("Resource") != {"Ref": "AssumableRoleArns"}:
                problems.append(f"{where}: may assume roles other than the AssumableRoleArns parameter")
    return problems


def role_statements(cfn: dict[str, Any], role: str) -> Iterator[dict[str, Any]]:
    """Every concrete statement (Allow and Deny) that applies to `role`: its
    inline policies and the template's policies attached to it."""
    props = cfn["Resources"][role].get("Properties", {})
    docs = [p["PolicyDocument"] for p in props.get("Policies", [])]
    for r in cfn["Resources"].values():
        if r["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and {"Ref": role} in r["Properties"].get("Roles", []):
            docs.append(r["Properties"]["PolicyDocument"])
    for doc in docs:
        for s in doc.get("Statement", []):
            for concrete in branches(s):
                if isinstance(concrete, dict):
                    yield concrete


def matches(action: str, pattern: str) -> bool:
    """Whether IAM action `action` (perhaps a wildcard) may grant what `pattern` names."""
    a, p = action.lower(), pattern.lower()
    if fnmatch.fnmatchcase(a, p) or fnmatch.fnmatchcase(p, a):
        return True
    return any(fnmatch.fnmatchcase(x.lower(), a) and fnmatch.fnmatchcase(x.lower(), p) for x in DESTRUCTIVE_EXAMPLES)


def check_deleters(cfn: dict[str, Any]) -> list[str]:
    """Only DELETERS may delete a recovery point; no role may unlock a
    snapshot or schedule a key's deletion; a role's permissions are all in
    the template (no managed policy, no NotAction) so that this can be told."""
    problems = []
    for role, r in cfn["Resources"].items():
        if r["Type"] != "AWS::IAM::Role":
            continue
        if r.get("Properties", {}).get("ManagedPolicyArns"):
            problems.append(f"{role}: managed policies, whose actions this check cannot see")
        if role in RESTORERS:
            # Its removals of what a restore made are check_restorers'.
            forbidden = NEVER + RESTORE_DENIED
        else:
            forbidden = NEVER + ([] if role in DELETERS else DELETE_ACTIONS)
        for s in role_statements(cfn, role):
            if s.get("Effect") != "Allow":
                continue
            sid = s.get("Sid", "?")
            if "NotAction" in s:
                problems.append(f"{role} {sid}: an Allow with NotAction (grants all but the actions it names)")
            for a in as_list(s.get("Action", [])):
                hits = [f for f in forbidden if matches(a, f)]
                if hits:
                    problems.append(f"{role} {sid} {a}: may {', '.join(hits)}, which {role} must never")
    return problems


def self_test_deleters(cfn: dict[str, Any], role: str, deleter: str | None) -> None:
    """The deleters check must reject `role` given any delete or unlock
    action, or a wildcard matching one; and `deleter` given an unlock."""

    def with_action(target: str, action: str) -> list[str]:
        broken = copy.deepcopy(cfn)
        policies = broken["Resources"][target]["Properties"]["Policies"]
        policies[0]["PolicyDocument"]["Statement"].append(
            {"Sid": "Injected", "Effect": "Allow", "Action": action, "Resource": "*"})
        return check_deleters(broken)

    if role not in cfn["Resources"]:
        raise SystemExit(f"self-test: no {role}; the check would prove nothing")
    for action in DESTRUCTIVE_EXAMPLES + ["ec2:*", "rds:Delete*", "*"]:
        if not any(p.startswith(f"{role} Injected") for p in with_action(role, action)):
            raise SystemExit(f"self-test: the deleters check accepts {action} in {role}")
    if deleter is not None:
        if deleter not in cfn["Resources"]:
            raise SystemExit(f"self-test: no {deleter}; the check would prove nothing")
        if not any(p.startswith(f"{deleter} Injected") for p in with_action(deleter, "ec2:UnlockSnapshot")):
            raise SystemExit(f"self-test: the deleters check accepts ec2:UnlockSnapshot in {deleter}")


def self_test(cfn: dict[str, Any], complete: bool = True) -> None:
    """The IAM check must reject each guard taken away (`complete`: every
    guarded action must be in the template; else those that are)."""

    def without(mutate: Any) -> list[str]:
        broken = copy.deepcopy(cfn)
        for _, s in statements(broken):
            mutate(s)
        return check_iam(broken)

    def drop_condition(action: str) -> Any:
        def mutate(s: dict[str, Any]) -> None:
            if action in as_list(s.get("Action", [])):
                s.pop("Condition", None)
        return mutate

    for action in list(TAG_GUARDED) + list(SHARE_GUARDED) + ["ec2:CreateTags"] + sorted(GRANT_ACTIONS):
        if not any(action in as_list(s.get("Action", [])) for _, s in statements(cfn)):
            if not complete:
                continue
            raise SystemExit(f"self-test: no statement grants {action}; the check would prove nothing")
        if not any(action in p for p in without(drop_condition(action))):
            raise SystemExit(f"self-test: the check accepts {action} without its condition")

    # Tags at creation are those of the actions that create: one that does
    # not (here, sharing an AMI) among them tags existing resources.
    def not_at_creation(s: dict[str, Any]) -> None:
        equals = s.get("Condition", {}).get("StringEquals", {})
        if "ec2:CreateAction" in equals:
            equals["ec2:CreateAction"] = as_list(equals["ec2:CreateAction"]) + ["ModifyImageAttribute"]

    if not any("ec2:CreateTags" in p and "tags existing" in p for p in without(not_at_creation)):
        raise SystemExit("self-test: the check accepts ec2:CreateTags with an ec2:CreateAction that creates nothing")
    if not complete:
        return

    def widen(action: str) -> Any:
        def mutate(s: dict[str, Any]) -> None:
            if action in as_list(s.get("Action", [])):
                s["Resource"] = "*"
        return mutate

    # The same resource type under any name (`snapshot:*/*`) is no guard either.
    def any_name(action: str) -> Any:
        def mutate(s: dict[str, Any]) -> None:
            if action in as_list(s.get("Action", [])):
                s["Resource"] = json.loads(resource_text(s["Resource"]).replace("strongroom-*", "*"))
        return mutate

    for action in NAME_GUARDED:
        if not any(action in as_list(s.get("Action", [])) for _, s in statements(cfn)):
            raise SystemExit(f"self-test: no statement grants {action}; the check would prove nothing")
        if not any(action in p and "Strongroom's names" in p for p in without(widen(action))):
            raise SystemExit(f"self-test: the check accepts {action} on any resource")
        if not any(action in p and "Strongroom's names" in p for p in without(any_name(action))):
            raise SystemExit(f"self-test: the check accepts {action} on resources of any name")

    # A grant through any service at all is no guard.
    def any_service(s: dict[str, Any]) -> None:
        for operator in ("StringEquals", "StringLike"):
            if "kms:ViaService" in s.get("Condition", {}).get(operator, {}):
                s["Condition"][operator]["kms:ViaService"] = "*"

    if not any("kms:CreateGrant" in p and "kms:ViaService" in p for p in without(any_service)):
        raise SystemExit("self-test: the check accepts kms:CreateGrant through kms:ViaService *")

    def wildcard(s: dict[str, Any]) -> None:
        if s.get("Sid") == "Logs":
            s["Action"] = "logs:*"

    if not any("wildcard" in p for p in without(wildcard)):
        raise SystemExit("self-test: the check accepts logs:*")

    def any_role(s: dict[str, Any]) -> None:
        if "sts:AssumeRole" in as_list(s.get("Action", [])):
            s["Resource"] = "*"

    if not any("AssumableRoleArns" in p for p in without(any_role)):
        raise SystemExit("self-test: the check accepts sts:AssumeRole on *")


def check_restorers(cfn: dict[str, Any]) -> list[str]:
    """The restore roles of `cfn`: the explicit Deny of everything that would
    delete, unlock, lock, share or unshare a recovery point (check_deleters
    refuses any of it allowed); every removal allowed only of what a restore
    made; tags after creation only on the instances and clusters it makes."""
    problems = []
    for role in sorted(RESTORERS & set(cfn["Resources"])):
        problems += check_denied(cfn, role, VAULT_RESTORE_DENIED if role.startswith("Vault") else RESTORE_DENIED)
        for s in role_statements(cfn, role):
            if s.get("Effect") != "Allow":
                continue
            sid = s.get("Sid", "?")
            condition = s.get("Condition", {})
            for a in as_list(s.get("Action", [])):
                name = a.split(":", 1)[-1].lower()
                if a in RESTORER_UNTAGS:
                    resources = [resource_text(r) for r in as_list(s.get("Resource", []))]
                    if not resources or not all(any(f in r for f in RESTORER_UNTAGS[a]) for r in resources):
                        problems.append(f"{role} {sid} {a}: removes tags other than of what a restore makes "
                                        f"({', '.join(RESTORER_UNTAGS[a])}): a snapshot's tags are the contract")
                    if not untag_guarded(condition):
                        problems.append(f"{role} {sid} {a}: removes tags other than a restored cluster's contract "
                                        f"keys (needs StringLike {RESTORE_TAG} \"*\", ForAllValues:StringLike "
                                        f"aws:TagKeys strongroom:*, ForAllValues:StringNotEquals aws:TagKeys "
                                        f"{' '.join(RESTORE_OWN_KEYS)})")
                elif name.startswith(REMOVALS) and not restore_guarded(condition):
                    problems.append(f"{role} {sid} {a}: removes other than what a restore made (needs StringLike "
                                    f"{RESTORE_TAG} \"*\" and StringNotEquals {MANAGED_TAG} \"true\")")
                if a in RESTORER_TAGS:
                    resources = [resource_text(r) for r in as_list(s.get("Resource", []))]
                    if not resources or not all(any(f in r for f in RESTORER_TAGS[a]) for r in resources):
                        problems.append(f"{role} {sid} {a}: tags other than what a restore makes "
                                        f"({', '.join(RESTORER_TAGS[a])}): a snapshot's tags are the contract")
                if a.startswith(KMS_USES) and not via_guarded(condition):
                    problems.append(f"{role} {sid} {a}: uses a key other than through an AWS service "
                                    "(needs kms:ViaService)")
    return problems


def self_test_restorers(cfn: dict[str, Any], role: str) -> None:
    """The restorer checks must reject `role` given a recovery point's delete,
    unlock, lock or share (or a wildcard matching one), without any action
    of its Deny, with a removal not conditioned on both tags, or tagging a
    snapshot."""
    if role not in cfn["Resources"]:
        raise SystemExit(f"self-test: no {role}; the check would prove nothing")

    def broken_by(mutate: Any) -> list[str]:
        broken = copy.deepcopy(cfn)
        mutate(broken["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])
        return check_restorers(broken) + check_deleters(broken) + check_iam(broken)

    for action in RESTORE_DENIED + ["ec2:*", "rds:Delete*", "redshift:*Snapshot*", "*"]:
        def inject(statements: list[Any], action: str = action) -> None:
            statements.append({"Sid": "Injected", "Effect": "Allow", "Action": action, "Resource": "*"})
        if not any(p.startswith(f"{role} Injected") for p in broken_by(inject)):
            raise SystemExit(f"self-test: the restorer checks accept {action} in {role}")

    required = VAULT_RESTORE_DENIED if role.startswith("Vault") else RESTORE_DENIED
    for action in required + [None]:
        def drop(statements: list[Any], action: str | None = action) -> None:
            for s in statements:
                if isinstance(s, dict) and s.get("Effect") == "Deny":
                    s["Action"] = [a for a in as_list(s["Action"]) if action is not None and a != action]
        if not any(p.startswith(f"{role}: no explicit Deny") and (action is None or action in p) for p in broken_by(drop)):
            raise SystemExit(f"self-test: the restorer checks accept {role} without denying {action or 'anything'}")

    removals = [
        (s.get("Sid"), a) for s in cfn["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        if isinstance(s, dict) and s.get("Effect") == "Allow"
        for a in as_list(s.get("Action", []))
        if a.split(":", 1)[-1].lower().startswith(REMOVALS) and a not in RESTORER_UNTAGS
    ]
    if not removals:
        raise SystemExit(f"self-test: {role} removes nothing; the removal check would prove nothing")
    for sid, action in removals:
        for operator in ("StringLike", "StringNotEquals", None):
            def loosen(statements: list[Any], sid: str = sid, operator: str | None = operator) -> None:
                for s in statements:
                    if isinstance(s, dict) and s.get("Sid") == sid:
                        if operator is None:
                            s.pop("Condition", None)
                        else:
                            s["Condition"].pop(operator, None)
            if not any(p.startswith(f"{role} {sid} {action}: removes") for p in broken_by(loosen)):
                raise SystemExit(f"self-test: the restorer checks accept {role} {action} without its {operator or 'conditions'}")

    for action, resource in (("rds:AddTagsToResource", "arn:aws:rds:*:123456789012:snapshot:strongroom-*"),
                             ("redshift:CreateTags", "arn:aws:redshift:*:123456789012:snapshot:*/strongroom-*"),
                             ("rds:AddTagsToResource", "*")):
        def tag(statements: list[Any], action: str = action, resource: str = resource) -> None:
            statements.append({"Sid": "Injected", "Effect": "Allow", "Action": action, "Resource": resource})
        if not any(p.startswith(f"{role} Injected {action}: tags") for p in broken_by(tag)):
            raise SystemExit(f"self-test: the restorer checks accept {role} {action} on {resource}")

    # The tag removal: each of its conditions taken away or widened, on a
    # snapshot or on anything, and any other removal under its conditions.
    untags = [
        (s.get("Sid"), a) for s in cfn["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
        if isinstance(s, dict) and s.get("Effect") == "Allow"
        for a in as_list(s.get("Action", [])) if a in RESTORER_UNTAGS
    ]
    if not untags:
        raise SystemExit(f"self-test: {role} removes no tags; the tag removal check would prove nothing")

    def pop(operator: str) -> Any:
        return lambda c: c.pop(operator, None)

    def set_keys(operator: str, keys: Any) -> Any:
        def mutate(c: dict[str, Any]) -> None:
            c[operator] = {"aws:TagKeys": keys}
        return mutate

    def any_value(c: dict[str, Any]) -> None:
        c["ForAnyValue:StringLike"] = c.pop("ForAllValues:StringLike")

    loosenings = {
        "the strongroom:restore condition": pop("StringLike"),
        "the aws:TagKeys strongroom:* limit": pop("ForAllValues:StringLike"),
        "any aws:TagKeys": set_keys("ForAllValues:StringLike", "*"),
        "ForAnyValue aws:TagKeys": any_value,
        "the restore's own keys kept": pop("ForAllValues:StringNotEquals"),
        "strongroom:restored-from kept": set_keys("ForAllValues:StringNotEquals", ["strongroom:restore"]),
        "strongroom:restore kept": set_keys("ForAllValues:StringNotEquals", ["strongroom:restored-from"]),
        "its conditions": lambda c: c.clear(),
    }
    for sid, action in untags:
        for what, change in loosenings.items():
            def loosen_untag(statements: list[Any], sid: str = sid, change: Any = change) -> None:
                for s in statements:
                    if isinstance(s, dict) and s.get("Sid") == sid:
                        change(s.setdefault("Condition", {}))
            if not any(p.startswith(f"{role} {sid} {action}: removes tags") for p in broken_by(loosen_untag)):
                raise SystemExit(f"self-test: the restorer checks accept {role} {action} without {what}")
        statement = next(s for s in cfn["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
                         if isinstance(s, dict) and s.get("Sid") == sid)
        for resource in ("arn:aws:redshift:*:123456789012:snapshot:*/strongroom-*", "*"):
            def untag_elsewhere(statements: list[Any], resource: str = resource) -> None:
                statements.append({**copy.deepcopy(statement), "Sid": "Injected", "Resource": resource})
            if not any(p.startswith(f"{role} Injected {action}: removes tags") for p in broken_by(untag_elsewhere)):
                raise SystemExit(f"self-test: the restorer checks accept {role} {action} on {resource}")
        # Its conditions are no guard for a removal of anything else.
        for other in ("redshift:DeleteCluster", "redshift:DeleteClusterSnapshot", "ec2:DeleteTags"):
            def other_removal(statements: list[Any], other: str = other) -> None:
                statements.append({**copy.deepcopy(statement), "Sid": "Injected", "Action": other})
            if not any(p.startswith(f"{role} Injected {other}") for p in broken_by(other_removal)):
                raise SystemExit(f"self-test: the restorer checks accept {role} {other} under {action}'s conditions")


def resources_of(s: dict[str, Any]) -> list[Any]:
    """A statement's resources, canonical (a function returning a list, such
    as an Fn::Split, is one item)."""
    return [canon(r) for r in as_list(s.get("Resource", []))]


def check_snapshot_reads(cfn: dict[str, Any]) -> list[str]:
    """A snapshot's data (EBS direct APIs) is read only by the restore roles,
    for a file restore: only on snapshots, only of Strongroom's recovery
    points (strongroom:managed=true). Writing one is in NEVER."""
    problems = []
    for role, s in statements(cfn):
        sid = s.get("Sid", "?")
        for a in as_list(s.get("Action", [])):
            if not any(matches(a, r) for r in EBS_READS):
                continue
            where = f"{role} {sid} {a}"
            if role not in RESTORERS:
                problems.append(f"{where}: reads a snapshot's data (only the restore roles may, for a file restore)")
                continue
            if resources_of(s) != [SNAPSHOT_ARNS]:
                problems.append(f"{where}: on {json.dumps(s.get('Resource'))[:200]}, not only snapshots ({SNAPSHOT_ARNS})")
            if s.get("Condition", {}).get("StringEquals", {}).get(MANAGED_TAG) != "true":
                problems.append(f"{where}: reads snapshots other than Strongroom's recovery points "
                                f"(needs StringEquals {MANAGED_TAG} \"true\")")
    return problems


def check_s3(cfn: dict[str, Any]) -> list[str]:
    """Where the roles write in S3: under BUCKET_PREFIXES of the stack's bucket
    and, the restore role only, in the FileRestoreBuckets (exactly the
    parameter's buckets), where it may only check the bucket, put objects and
    list or abort its multipart uploads. No role deletes an S3 object."""
    problems = []
    buckets, objects = canon(FILE_BUCKET_ARNS), canon(FILE_OBJECT_ARNS)
    for role, s in statements(cfn):
        sid = s.get("Sid", "?")
        actions = as_list(s.get("Action", []))
        resources = resources_of(s)
        if FILE_BUCKETS in json.dumps(resources):
            if role != FILE_BUCKETS_ROLE:
                problems.append(f"{role} {sid}: on the {FILE_BUCKETS} (only {FILE_BUCKETS_ROLE} may, for a file restore)")
            for r in resources:
                if FILE_BUCKETS in json.dumps(r) and r not in (buckets, objects):
                    problems.append(f"{role} {sid}: {json.dumps(r)[:200]} is not exactly the {FILE_BUCKETS}' "
                                    "buckets or their objects")
            for a in actions:
                if a not in FILE_BUCKET_ACTIONS:
                    problems.append(f"{role} {sid} {a}: on the {FILE_BUCKETS}, where only "
                                    f"{', '.join(sorted(FILE_BUCKET_ACTIONS))} are allowed (never a read or a "
                                    "delete of an object)")
        for a in actions:
            if not (a.lower().startswith("s3:") or a == "*"):
                continue
            if matches(a, "s3:Delete*"):
                problems.append(f"{role} {sid} {a}: deletes S3 objects (no role may: the runs' files expire, a file "
                                "restore's destinations are the operator's)")
            if a.split(":", 1)[-1].lower().startswith(S3_READS):
                continue
            for r in resources:
                mine = isinstance(r, str) and any(r.startswith(f"{BUCKET_ARN}/{p}") for p in BUCKET_PREFIXES)
                if not mine and r != objects:
                    problems.append(f"{role} {sid} {a}: writes to {json.dumps(r)[:200]} (only under "
                                    f"{', '.join(BUCKET_PREFIXES)} of the stack's bucket, or the {FILE_BUCKETS}' objects)")
    return problems


def check_file_restore_buckets(cfn: dict[str, Any]) -> list[str]:
    """FileRestoreBuckets names buckets, never a pattern: CloudFormation
    matches its AllowedPattern against each name, and the pattern accepts
    bucket names (and empty: none) and refuses wildcards, paths and ARNs (a
    name such as `*` would let the restore role write to every bucket)."""
    uses = FILE_BUCKETS in json.dumps(cfn.get("Resources", {}))
    p = cfn.get("Parameters", {}).get(FILE_BUCKETS)
    if p is None:
        return [f"parameter {FILE_BUCKETS}: missing, and the template uses it"] if uses else []
    problems = []
    if p.get("Type") != "CommaDelimitedList":
        problems.append(f"parameter {FILE_BUCKETS}: {p.get('Type')}, not a CommaDelimitedList of bucket names")
    pattern = p.get("AllowedPattern")
    if not isinstance(pattern, str):
        return problems + [f"parameter {FILE_BUCKETS}: no AllowedPattern (a name such as * would let the restore "
                           "role write to every bucket)"]
    for name in FILE_BUCKET_NAMES_OK:
        if not re.fullmatch(pattern, name):
            problems.append(f"parameter {FILE_BUCKETS}: its AllowedPattern refuses {name!r}")
    for name in FILE_BUCKET_NAMES_REFUSED:
        if re.fullmatch(pattern, name):
            problems.append(f"parameter {FILE_BUCKETS}: its AllowedPattern accepts {name!r}, not a bucket name")
    return problems


def check_file_restore(cfn: dict[str, Any]) -> list[str]:
    return check_snapshot_reads(cfn) + check_s3(cfn) + check_file_restore_buckets(cfn)


def self_test_file_restore(cfn: dict[str, Any], restorer: str, other: str) -> None:
    """The file restore checks must reject: a snapshot written through the
    EBS direct APIs (or a wildcard that would) by any role; a snapshot's data
    read by another role than a restorer, or by it on anything but managed
    snapshots; and, where the template has the FileRestoreBuckets, an object
    deleted or read there, any other bucket, another role there, a write
    elsewhere in the stack's bucket, the parameter's pattern gone or open;
    a restorer's key use not through a service."""
    for role in (restorer, other):
        if role not in cfn["Resources"]:
            raise SystemExit(f"self-test: no {role}; the check would prove nothing")

    def checks(c: dict[str, Any]) -> list[str]:
        return check_iam(c) + check_deleters(c) + check_restorers(c) + check_file_restore(c)

    def broken_by(mutate: Any) -> list[str]:
        broken = copy.deepcopy(cfn)
        mutate(broken)
        return checks(broken)

    def inject(role: str, statement: dict[str, Any]) -> Any:
        def mutate(c: dict[str, Any]) -> None:
            c["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
                {"Sid": "Injected", "Effect": "Allow", **copy.deepcopy(statement)})
        return mutate

    def by_sid(c: dict[str, Any], role: str, sid: str) -> dict[str, Any]:
        found = [s for s in role_statements(c, role) if s.get("Sid") == sid]
        if not found:
            raise SystemExit(f"self-test: {role} has no {sid}; the check would prove nothing")
        return found[0]

    def change(role: str, sid: str, how: Any) -> Any:
        return lambda c: how(by_sid(c, role, sid))

    snapshots = {"Fn::Sub": SNAPSHOT_ARNS}
    managed = {"StringEquals": {MANAGED_TAG: "true"}}
    for role in (restorer, other):
        for action in EBS_WRITES + ["ebs:Put*", "ebs:*Snapshot", "ebs:*"]:
            if not any(p.startswith(f"{role} Injected") for p in broken_by(
                    inject(role, {"Action": action, "Resource": snapshots, "Condition": managed}))):
                raise SystemExit(f"self-test: the file restore checks accept {action} in {role}")
    for action in EBS_READS + ["ebs:Get*"]:
        if not any(p.startswith(f"{other} Injected") and "snapshot's data" in p for p in broken_by(
                inject(other, {"Action": action, "Resource": snapshots, "Condition": managed}))):
            raise SystemExit(f"self-test: the file restore checks accept {other} reading snapshots ({action})")
    reads = f"{restorer} ReadRecoveryPointBlocks"
    by_sid(cfn, restorer, "ReadRecoveryPointBlocks")
    for what, how in (("its managed condition", lambda s: s.pop("Condition")),
                      ("any tag value", lambda s: s.update(Condition={"StringLike": {MANAGED_TAG: "*"}})),
                      ("any resource", lambda s: s.update(Resource="*"))):
        if not any(p.startswith(reads) for p in broken_by(change(restorer, "ReadRecoveryPointBlocks", how))):
            raise SystemExit(f"self-test: the file restore checks accept {reads} without {what}")
    key_use = next((s.get("Sid") for s in role_statements(cfn, restorer) if s.get("Effect") == "Allow"
                    and any(a.startswith(KMS_USES) for a in as_list(s.get("Action", [])))), None)
    if key_use is None:
        raise SystemExit(f"self-test: {restorer} uses no key; the key use check would prove nothing")
    if not any(p.startswith(f"{restorer} {key_use}") and "kms:ViaService" in p
               for p in broken_by(change(restorer, key_use, lambda s: s.pop("Condition")))):
        raise SystemExit(f"self-test: the restorer checks accept {restorer} {key_use} without kms:ViaService")
    if FILE_BUCKETS not in cfn.get("Parameters", {}):
        return
    objects = f"{FILE_BUCKETS_ROLE} FileRestoreObjects"
    by_sid(cfn, FILE_BUCKETS_ROLE, "FileRestoreObjects")
    by_sid(cfn, FILE_BUCKETS_ROLE, "FileRestoreBuckets")
    for action in ("s3:DeleteObject", "s3:DeleteObjectVersion", "s3:GetObject", "s3:PutObjectAcl", "s3:PutBucketPolicy"):
        def add(s: dict[str, Any], action: str = action) -> None:
            s["Action"] = as_list(s["Action"]) + [action]
        if not any(p.startswith(f"{objects} {action}") for p in broken_by(change(FILE_BUCKETS_ROLE, "FileRestoreObjects", add))):
            raise SystemExit(f"self-test: the S3 check accepts {action} on the {FILE_BUCKETS}")
    elsewhere = json.loads(json.dumps(FILE_OBJECT_ARNS).replace("/*,arn:*:s3:::", "/*,arn:*:s3:::*"))
    for resource in ("arn:*:s3:::*/*", "*", elsewhere, [FILE_OBJECT_ARNS, "arn:aws:s3:::elsewhere/*"]):
        if not any(p.startswith(objects) for p in broken_by(
                change(FILE_BUCKETS_ROLE, "FileRestoreObjects", lambda s, r=resource: s.update(Resource=r)))):
            raise SystemExit(f"self-test: the S3 check accepts the file restore's objects on {json.dumps(resource)[:120]}")
    # Its bucket check (a read) on other buckets than the parameter's: "arn:*:s3:::*<name>".
    listed = json.loads(json.dumps(FILE_BUCKET_ARNS).replace(",arn:*:s3:::", ",arn:*:s3:::*"))
    if not any(p.startswith(f"{FILE_BUCKETS_ROLE} FileRestoreBuckets") and "not exactly" in p for p in broken_by(
            change(FILE_BUCKETS_ROLE, "FileRestoreBuckets", lambda s: s.update(Resource=listed)))):
        raise SystemExit("self-test: the S3 check accepts the file restore's bucket check on other buckets")
    if not any(p.startswith(f"{other} Injected") for p in broken_by(
            inject(other, {"Action": "s3:PutObject", "Resource": FILE_OBJECT_ARNS}))):
        raise SystemExit(f"self-test: the S3 check accepts {other} writing to the {FILE_BUCKETS}")
    for action, resource in (("s3:PutObject", {"Fn::Sub": "${RunsBucket.Arn}/*"}),
                             ("s3:PutObject", {"Fn::Sub": "${RunsBucket.Arn}"}),
                             ("s3:PutObject", "arn:aws:s3:::elsewhere/*"),
                             ("s3:AbortMultipartUpload", "arn:aws:s3:::elsewhere/*"),
                             ("s3:DeleteObject", {"Fn::Sub": "${RunsBucket.Arn}/restores/*"}),
                             ("s3:*", {"Fn::Sub": "${RunsBucket.Arn}/restores/*"})):
        if not any(p.startswith(f"{FILE_BUCKETS_ROLE} Injected") for p in broken_by(
                inject(FILE_BUCKETS_ROLE, {"Action": action, "Resource": resource}))):
            raise SystemExit(f"self-test: the S3 check accepts {action} on {json.dumps(resource)}")
    for what, how in (("without its AllowedPattern", lambda p: p.pop("AllowedPattern")),
                      ("with the pattern .*", lambda p: p.update(AllowedPattern=".*")),
                      ("with a pattern taking wildcards", lambda p: p.update(AllowedPattern="^$|^[a-z0-9*][a-z0-9.*-]{1,61}[a-z0-9*]$"))):
        if not any(FILE_BUCKETS in p for p in broken_by(lambda c, how=how: how(c["Parameters"][FILE_BUCKETS]))):
            raise SystemExit(f"self-test: the parameter check accepts {FILE_BUCKETS} {what}")


def task_resources(definition: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(state, Resource) of every Task of an ASL definition, in Parallel branches and Maps too."""
    for name, state in definition.get("States", {}).items():
        if state.get("Type") == "Task":
            yield name, state.get("Resource")
        for branch in state.get("Branches", []):
            yield from task_resources(branch)
        for key in ("ItemProcessor", "Iterator"):
            if key in state:
                yield from task_resources(state[key])


def check_restore_machine(cfn: dict[str, Any]) -> list[str]:
    """The restore state machine runs only RestoreFunction: its substitutions
    name only it, every Task of its deployed definition is it (no service
    integration, no other function), and its role invokes only it."""
    machine = cfn["Resources"].get("RestoreStateMachine")
    if machine is None:
        return ["RestoreStateMachine: not in the template"]
    problems = []
    props = machine["Properties"]
    only = {"Fn::GetAtt": ["RestoreFunction", "Arn"]}
    for key, value in props.get("DefinitionSubstitutions", {}).items():
        if value != only:
            problems.append(f"RestoreStateMachine: ${{{key}}} is {json.dumps(value)}, not RestoreFunction's ARN")
    restore = EMULATOR_FUNCTIONS + "restore"
    tasks = list(task_resources(deployed_definitions(cfn, EMULATOR_FUNCTIONS)["RestoreStateMachine"]))
    if not tasks:
        problems.append("RestoreStateMachine: no Task state")
    for state, resource in tasks:
        if resource != restore:
            problems.append(f"RestoreStateMachine {state}: runs {resource}, not RestoreFunction")
    role = props.get("RoleArn", {}).get("Fn::GetAtt", [None])[0]
    if role not in cfn["Resources"]:
        return problems + [f"RestoreStateMachine: its role {props.get('RoleArn')} is not the template's"]
    for s in role_statements(cfn, role):
        if s.get("Effect") != "Allow":
            continue
        for a in as_list(s.get("Action", [])):
            if not any(matches(a, pattern) for pattern in ("lambda:InvokeFunction", "states:StartExecution")):
                continue
            if a != "lambda:InvokeFunction" or as_list(s.get("Resource", [])) != [only]:
                problems.append(f"{role} {s.get('Sid', '?')} {a}: on {json.dumps(s.get('Resource'))}, "
                                "not only RestoreFunction")
    return problems


def self_test_restore_machine(cfn: dict[str, Any]) -> None:
    """The restore machine check must reject another function in its
    definition or its role's invocations."""
    machine = cfn["Resources"]["RestoreStateMachine"]
    broken = copy.deepcopy(cfn)
    subs = broken["Resources"]["RestoreStateMachine"]["Properties"]["DefinitionSubstitutions"]
    subs[next(iter(subs))] = {"Fn::GetAtt": ["PruneFunction", "Arn"]}
    if not any("runs " + EMULATOR_FUNCTIONS + "prune" in p for p in check_restore_machine(broken)):
        raise SystemExit("self-test: the restore machine check accepts a Task running PruneFunction")
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    for resource in ({"Fn::GetAtt": ["PruneFunction", "Arn"]}, "*"):
        broken = copy.deepcopy(cfn)
        broken["Resources"][role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"].append(
            {"Sid": "Injected", "Effect": "Allow", "Action": "lambda:InvokeFunction", "Resource": resource})
        if not any(p.startswith(f"{role} Injected") for p in check_restore_machine(broken)):
            raise SystemExit(f"self-test: the restore machine check accepts its role invoking {resource}")


def lifecycle_prefix(rule: dict[str, Any]) -> str:
    """The key prefix a lifecycle rule applies to ("" for the whole bucket)."""
    if isinstance(rule.get("Prefix"), str):
        return rule["Prefix"]
    f = rule.get("Filter", {})
    prefix = f.get("Prefix", f.get("And", {}).get("Prefix", ""))
    return prefix if isinstance(prefix, str) else ""


def check_lifecycle(cfn: dict[str, Any]) -> list[str]:
    """No lifecycle rule of the bucket expires (or moves) recovery-points/;
    the runs' files and the restore reports expire."""
    problems = []
    rules = cfn["Resources"]["RunsBucket"]["Properties"].get("LifecycleConfiguration", {}).get("Rules", [])
    expiring = set()
    for rule in rules:
        if rule.get("Status") != "Enabled":
            continue
        if not any(k in rule for k in ("ExpirationInDays", "ExpirationDate", "Transitions", "Transition")):
            continue
        prefix = lifecycle_prefix(rule)
        expiring.add(prefix)
        if KEPT_PREFIX.startswith(prefix) or prefix.startswith(KEPT_PREFIX):
            problems.append(f"RunsBucket lifecycle {rule.get('Id', '?')}: expires or moves {prefix or 'every key'} "
                            f"({KEPT_PREFIX} must be kept as long as the recovery points)")
    for prefix in EXPIRING_PREFIXES:
        if prefix not in expiring:
            problems.append(f"RunsBucket lifecycle: no rule expires {prefix}")
    return problems


def self_test_lifecycle(cfn: dict[str, Any]) -> None:
    for prefix in ("", "recovery-points/", "recovery-points/111111111111/"):
        broken = copy.deepcopy(cfn)
        broken["Resources"]["RunsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"].append(
            {"Id": "injected", "Status": "Enabled", "Prefix": prefix, "ExpirationInDays": 30})
        if not any("injected" in p for p in check_lifecycle(broken)):
            raise SystemExit(f"self-test: the lifecycle check accepts {prefix or 'every key'} expiring")
    broken = copy.deepcopy(cfn)
    rules = broken["Resources"]["RunsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    rules[:] = [r for r in rules if lifecycle_prefix(r) != "restores/"]
    if not any("restores/" in p for p in check_lifecycle(broken)):
        raise SystemExit("self-test: the lifecycle check accepts restore reports kept forever")


def check_trust(cfn: dict[str, Any], role: str, parameter: str) -> list[str]:
    """`role` may be assumed by the role the `parameter` names and nobody
    else, only as a principal of SourceAccountId (the ARN's account cannot
    be checked by a pattern), with the external id when ExternalId is set."""
    problems = []
    doc = cfn["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]
    allows = [c for s in doc.get("Statement", []) for c in branches(s) if isinstance(c, dict) and c.get("Effect") == "Allow"]
    if not allows:
        problems.append(f"{role}: nobody may assume it")
    external_id = {"Fn::If": ["HasExternalId", {"Ref": "ExternalId"}, {"Ref": "AWS::NoValue"}]}
    for s in allows:
        sid = s.get("Sid", "?")
        if "NotPrincipal" in s or s.get("Principal") != {"AWS": {"Ref": parameter}}:
            problems.append(f"{role} trust {sid}: the principal is not exactly the {parameter} parameter "
                            f"({json.dumps(s.get('Principal', s.get('NotPrincipal')))})")
        if as_list(s.get("Action", [])) != ["sts:AssumeRole"]:
            problems.append(f"{role} trust {sid}: {s.get('Action')} (only sts:AssumeRole)")
        equals = s.get("Condition", {}).get("StringEquals", {})
        if equals.get("aws:PrincipalAccount") != {"Ref": "SourceAccountId"}:
            problems.append(f"{role} trust {sid}: does not require a principal of SourceAccountId (aws:PrincipalAccount)")
        if equals.get("sts:ExternalId") != external_id:
            problems.append(f"{role} trust {sid}: does not require the external id when ExternalId is set")
    return problems


def check_denied(cfn: dict[str, Any], role: str, required: list[str]) -> list[str]:
    """`role` has an explicit, unconditioned Deny on "*" of every `required`
    action: it holds whatever else is ever attached to the role."""
    denied: set[str] = set()
    for s in role_statements(cfn, role):
        if s.get("Effect") == "Deny" and s.get("Resource") == "*" and "Condition" not in s:
            denied |= {a.lower() for a in as_list(s.get("Action", []))}
    return [f"{role}: no explicit Deny of {a} (on \"*\", unconditioned)" for a in required if a.lower() not in denied]


def check_key_policy(cfn: dict[str, Any]) -> list[str]:
    """The vault key's policy lets only the vault account (its IAM policies)
    and the copy role in, the copy role only through EBS and RDS, and the key rotates."""
    problems = []
    key = cfn["Resources"]["VaultKey"]
    props = key["Properties"]
    if props.get("EnableKeyRotation") is not True:
        problems.append("VaultKey: EnableKeyRotation is not true")
    if key.get("DeletionPolicy") != "Retain":
        problems.append("VaultKey: not retained with the stack (deleting it makes every copy unreadable)")
    root = {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root"}}
    copy_role = {"AWS": {"Fn::GetAtt": ["VaultCopyRole", "Arn"]}}
    for s in props["KeyPolicy"]["Statement"]:
        sid = s.get("Sid", "?")
        if s.get("Effect") != "Allow":
            continue
        principal = canon(s.get("Principal"))
        if principal == canon(root):
            continue
        if principal != canon(copy_role):
            problems.append(f"VaultKey policy {sid}: lets in {json.dumps(s.get('Principal'))}")
            continue
        via = canon(s.get("Condition", {}).get("StringEquals", {}).get("kms:ViaService"))
        if sorted(as_list(via or [])) != ["ec2.${AWS::Region}.amazonaws.com", "rds.${AWS::Region}.amazonaws.com"]:
            problems.append(f"VaultKey policy {sid}: the copy role may use the key other than through EBS and RDS")
        for a in as_list(s.get("Action", [])):
            if "*" in a or not a.startswith("kms:"):
                problems.append(f"VaultKey policy {sid}: {a} for the copy role")
            if a == "kms:CreateGrant" and s.get("Condition", {}).get("Bool", {}).get("kms:GrantIsForAWSResource") != "true":
                problems.append(f"VaultKey policy {sid}: kms:CreateGrant not only for AWS resources")
    return problems


def check_vault(cfn: dict[str, Any]) -> list[str]:
    problems = check_parameters(cfn) + check_iam(cfn) + check_deleters(cfn) + check_key_policy(cfn)
    problems += check_trust(cfn, "VaultCopyRole", "SourceCopyRoleArn")
    problems += check_denied(cfn, "VaultCopyRole", VAULT_COPY_DENIED)
    if "VaultPruneRole" in cfn["Resources"]:
        if cfn["Resources"]["VaultPruneRole"].get("Condition") != "HasPruneRole":
            problems.append("VaultPruneRole: made without SourcePruneRoleArn (needs Condition: HasPruneRole)")
        problems += check_trust(cfn, "VaultPruneRole", "SourcePruneRoleArn")
        problems += check_denied(cfn, "VaultPruneRole", VAULT_PRUNE_DENIED)
    if "VaultRestoreRole" in cfn["Resources"]:
        if cfn["Resources"]["VaultRestoreRole"].get("Condition") != "HasRestoreRole":
            problems.append("VaultRestoreRole: made without SourceRestoreRoleArn (needs Condition: HasRestoreRole)")
        problems += check_trust(cfn, "VaultRestoreRole", "SourceRestoreRoleArn")
    problems += check_restorers(cfn)
    problems += check_file_restore(cfn)
    return problems


def self_test_vault(cfn: dict[str, Any]) -> None:
    """Each vault check must reject its guard taken away."""

    def broken_by(mutate: Any) -> list[str]:
        broken = copy.deepcopy(cfn)
        mutate(broken["Resources"])
        return check_vault(broken)

    def trust(role: str, change: Any) -> Any:
        def mutate(resources: dict[str, Any]) -> None:
            change(resources[role]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0])
        return mutate

    for role, parameter in (("VaultCopyRole", "SourceCopyRoleArn"), ("VaultPruneRole", "SourcePruneRoleArn"),
                            ("VaultRestoreRole", "SourceRestoreRoleArn")):
        for principal in ("*", {"AWS": "*"}, {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${SourceAccountId}:root"}}):
            if not any(p.startswith(f"{role} trust") for p in broken_by(trust(role, lambda s, principal=principal: s.update(Principal=principal)))):
                raise SystemExit(f"self-test: the trust check accepts {role} assumable by {principal}, not {parameter}")
        for key, says in (("sts:ExternalId", "external id"), ("aws:PrincipalAccount", "SourceAccountId")):
            if not any(says in p for p in broken_by(trust(role, lambda s, key=key: s["Condition"]["StringEquals"].pop(key)))):
                raise SystemExit(f"self-test: the trust check accepts {role} without its {key} condition")

    def drop_deny(role: str, action: str | None) -> Any:
        def mutate(resources: dict[str, Any]) -> None:
            for s in resources[role]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
                if s.get("Effect") == "Deny":
                    s["Action"] = [a for a in as_list(s["Action"]) if action is not None and a != action]
        return mutate

    for role, required in (("VaultCopyRole", VAULT_COPY_DENIED), ("VaultPruneRole", VAULT_PRUNE_DENIED)):
        for action in required:
            if not any(action in p for p in broken_by(drop_deny(role, action))):
                raise SystemExit(f"self-test: the Deny check accepts {role} without denying {action}")
        if not any(p.startswith(f"{role}: no explicit Deny") for p in broken_by(drop_deny(role, None))):
            raise SystemExit(f"self-test: the Deny check accepts {role} without its Deny")

    def conditioned_deny(resources: dict[str, Any]) -> None:
        for s in resources["VaultCopyRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]:
            if s.get("Effect") == "Deny":
                s["Condition"] = {"Bool": {"aws:ViaAWSService": "false"}}

    if not any("no explicit Deny" in p for p in broken_by(conditioned_deny)):
        raise SystemExit("self-test: the Deny check accepts a conditioned Deny")

    def unconditional_prune(resources: dict[str, Any]) -> None:
        resources["VaultPruneRole"].pop("Condition")

    if not any("HasPruneRole" in p for p in broken_by(unconditional_prune)):
        raise SystemExit("self-test: the vault check accepts a prune role made without SourcePruneRoleArn")

    def unconditional_restore(resources: dict[str, Any]) -> None:
        resources["VaultRestoreRole"].pop("Condition")

    if not any("HasRestoreRole" in p for p in broken_by(unconditional_restore)):
        raise SystemExit("self-test: the vault check accepts a restore role made without SourceRestoreRoleArn")
    self_test_restorers(cfn, "VaultRestoreRole")

    def open_key(resources: dict[str, Any]) -> None:
        resources["VaultKey"]["Properties"]["KeyPolicy"]["Statement"].append(
            {"Sid": "Injected", "Effect": "Allow", "Principal": {"AWS": {"Fn::Sub": "arn:${AWS::Partition}:iam::${SourceAccountId}:root"}},
             "Action": "kms:Decrypt", "Resource": "*"})

    if not any("Injected" in p for p in broken_by(open_key)):
        raise SystemExit("self-test: the key policy check accepts the source account in the vault key's policy")

    def copy_role_anywhere(resources: dict[str, Any]) -> None:
        for s in resources["VaultKey"]["Properties"]["KeyPolicy"]["Statement"]:
            s.get("Condition", {}).pop("StringEquals", None)

    if not any("other than through EBS and RDS" in p for p in broken_by(copy_role_anywhere)):
        raise SystemExit("self-test: the key policy check accepts the copy role using the key directly")

    def no_rotation(resources: dict[str, Any]) -> None:
        resources["VaultKey"]["Properties"]["EnableKeyRotation"] = False

    if not any("EnableKeyRotation" in p for p in broken_by(no_rotation)):
        raise SystemExit("self-test: the key check accepts a key that does not rotate")
    self_test_deleters(cfn, "VaultCopyRole", "VaultPruneRole")
    self_test_file_restore(cfn, "VaultRestoreRole", "VaultCopyRole")
    self_test(cfn, complete=False)
    self_test_parameters(cfn, "the vault template")


def schedule_inputs(template: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(schedule, its run input) for every schedule, pseudo parameters filled in."""
    for name, r in template["Resources"].items():
        if r["Type"] != "AWS::Scheduler::Schedule":
            continue
        raw = r["Properties"]["Target"].get("Input")
        if isinstance(raw, dict) and "Fn::Sub" in raw:
            raw = raw["Fn::Sub"]
        if not isinstance(raw, str):
            yield name, None
            continue
        for pseudo, value in (("${AWS::Region}", "us-east-1"), ("${AWS::AccountId}", "123456789012"),
                              ("${AWS::Partition}", "aws")):
            raw = raw.replace(pseudo, value)
        try:
            yield name, json.loads(raw)
        except ValueError as e:
            yield name, f"not JSON: {e}"


def check_schedules(template: dict[str, Any], schema_path: Path) -> list[str]:
    """Every schedule's input is a run input (the schema the functions generate):
    a malformed policy fails here, not at 3 a.m."""
    import jsonschema

    schema = json.loads(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    seen = 0
    for name, value in schedule_inputs(template):
        seen += 1
        if not isinstance(value, dict):
            problems.append(f"{name}: Target.Input is not a run input ({value})")
            continue
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path)):
            while e.context:  # anyOf / oneOf: the deepest error names the field
                e = max(e.context, key=lambda c: len(c.absolute_path))
            where = ".".join(str(p) for p in e.absolute_path) or "(the input)"
            problems.append(f"{name}: Target.Input at `{where}`: {e.message}")
        if value.get("scheduled_time") != "<aws.scheduler.scheduled-time>":
            problems.append(f"{name}: Target.Input.scheduled_time must be <aws.scheduler.scheduled-time> "
                            "(the idempotency key of each run)")
    if seen == 0:
        problems.append("no AWS::Scheduler::Schedule: nothing would start a run")
    # The check must be able to fail: a policy without its selector is refused.
    broken = copy.deepcopy(template)
    for r in broken["Resources"].values():
        if r["Type"] == "AWS::Scheduler::Schedule":
            r["Properties"]["Target"]["Input"] = json.dumps({"policy": {"name": "x"}})
    if not any("selector" in p for p in check_schedules_once(broken, validator)):
        raise SystemExit("self-test: the schedule check accepts a policy without a selector")
    return problems


def check_schedules_once(template: dict[str, Any], validator: Any) -> list[str]:
    return [
        f"{name}: {e.message}"
        for name, value in schedule_inputs(template)
        if isinstance(value, dict)
        for e in validator.iter_errors(value)
    ]


def deployed_definitions(cfn: dict[str, Any], arn_prefix: str) -> dict[str, Any]:
    """Each state machine's definition as the stack deploys it, its
    substitutions resolved with the functions at `arn_prefix` + their name
    (the part of `FunctionName` after the stack name): what the emulator runs."""
    out = {}
    for name, r in cfn["Resources"].items():
        if r["Type"] != "AWS::StepFunctions::StateMachine":
            continue
        props = r["Properties"]
        # The translator writes the definition as {"Fn::Join": ["\n", [lines]]}.
        separator, lines = props["DefinitionString"]["Fn::Join"]
        assert all(isinstance(line, str) for line in lines), "a definition with intrinsics inside"
        text = separator.join(lines)
        for key, value in props.get("DefinitionSubstitutions", {}).items():
            target, attribute = value["Fn::GetAtt"]
            assert attribute == "Arn", (key, value)
            function_name = cfn["Resources"][target]["Properties"]["FunctionName"]["Fn::Sub"]
            short = function_name.split("${AWS::StackName}-", 1)[1]
            text = text.replace("${%s}" % key, arn_prefix + short)
        out[name] = json.loads(text)
    return out


def canon(v: Any) -> Any:
    """`v` with CloudFormation's equivalent spellings made one: Fn::Sub
    strings and Fn::Join lists become `${Ref}` / `${Res.Attr}` strings."""
    if isinstance(v, list):
        return [canon(x) for x in v]
    if not isinstance(v, dict):
        return v
    if set(v) == {"Ref"}:
        return "${%s}" % v["Ref"]
    if set(v) == {"Fn::GetAtt"}:
        target = v["Fn::GetAtt"]
        return "${%s}" % (".".join(target) if isinstance(target, list) else target)
    if set(v) == {"Fn::Sub"} and isinstance(v["Fn::Sub"], str):
        return v["Fn::Sub"]
    if set(v) == {"Fn::Join"}:
        separator, parts = v["Fn::Join"]
        if not isinstance(parts, list):  # a list parameter, or a function returning a list
            return {"Fn::Join": [separator, canon(parts)]}
        parts = [canon(p) for p in parts]
        if all(isinstance(p, str) for p in parts):
            return separator.join(parts)
        return {"Fn::Join": [separator, parts]}
    return {k: canon(x) for k, x in v.items()}


# Properties that differ by construction between the two templates, and why.
BY_CONSTRUCTION = {
    "AWS::Lambda::Function": {"Code", "Tags"},  # SAM: S3 after `sam package`, a createdBy tag; CDK: an asset
    "AWS::StepFunctions::StateMachine": {"DefinitionString", "Tags"},  # compared as JSON below
}


def check_equivalent(sam: dict[str, Any], cdk: dict[str, Any], label: str = "SAM") -> list[str]:
    """The CDK app deploys the SAM template's architecture: the same resources
    with the same properties (IAM statements included), the same state
    machine definitions; schedules as the SAM template's defaults. (`label`
    names the template's side in the problems: the vault's is plain YAML.)"""
    problems = []
    defaults = {k: p.get("Default") for k, p in sam.get("Parameters", {}).items()}
    ours = {k: r for k, r in cdk["Resources"].items() if r["Type"] != "AWS::CDK::Metadata"}
    for name in sorted(set(sam["Resources"]) ^ set(ours)):
        side = f"{label} only" if name in sam["Resources"] else "CDK only"
        problems.append(f"{name}: {side}")
    for name in sorted(set(sam["Resources"]) & set(ours)):
        a, b = sam["Resources"][name], ours[name]
        if a["Type"] != b["Type"]:
            problems.append(f"{name}: {a['Type']} ({label}) vs {b['Type']} (CDK)")
            continue
        skip = BY_CONSTRUCTION.get(a["Type"], set())
        pa = {k: v for k, v in a.get("Properties", {}).items() if k not in skip}
        pb = {k: v for k, v in b.get("Properties", {}).items() if k not in skip}
        ca, cb = canon(pa), canon(pb)
        if a["Type"] == "AWS::Scheduler::Schedule":
            # SAM takes the example schedule's settings as parameters; CDK from its config.
            text = json.dumps(ca)
            for param, value in defaults.items():
                text = text.replace('"${%s}"' % param, json.dumps(value))
            ca = json.loads(text)
            for side in (ca, cb):
                side["Target"]["Input"] = json.loads(side["Target"]["Input"])
        if ca != cb:
            for key in sorted(set(ca) | set(cb)):
                if ca.get(key) != cb.get(key):
                    problems.append(f"{name}.{key}: {label} {json.dumps(ca.get(key))[:300]} vs CDK {json.dumps(cb.get(key))[:300]}")
        if a["Type"] == "AWS::StepFunctions::StateMachine":
            separator, lines = a["Properties"]["DefinitionString"]["Fn::Join"]
            if json.loads(separator.join(lines)) != json.loads(b["Properties"]["DefinitionString"]):
                problems.append(f"{name}: the definitions differ")
        for attr in ("DeletionPolicy", "UpdateReplacePolicy", "Condition"):
            if a.get(attr) != b.get(attr):
                problems.append(f"{name}.{attr}: {label} {a.get(attr)} vs CDK {b.get(attr)}")
    return problems


def check_sections_equivalent(yaml: dict[str, Any], cdk: dict[str, Any]) -> list[str]:
    """Parameters, conditions and outputs the same (a plain template, so all
    of them), but what the CDK adds for itself: its bootstrap version
    parameter and the condition of its AWS::CDK::Metadata resource."""
    problems = []
    if yaml.get("Description") != cdk.get("Description"):
        problems.append("Description: the templates' descriptions differ")
    for section in ("Parameters", "Conditions", "Outputs"):
        a = canon(yaml.get(section, {}))
        b = canon({k: v for k, v in cdk.get(section, {}).items() if k not in ("BootstrapVersion", "CDKMetadataAvailable")})
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                problems.append(f"{section}.{key}: YAML {json.dumps(a.get(key))[:300]} vs CDK {json.dumps(b.get(key))[:300]}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template", default=str(ROOT / "infra/template.yaml"))
    ap.add_argument("--out", required=True, help="where the converted CloudFormation template goes")
    ap.add_argument("--cdk", help="the CDK app's synthesized template: must deploy the same architecture")
    ap.add_argument("--vault", default=str(ROOT / "infra/vault-account.yaml"),
                    help="the vault account's template (a plain CloudFormation template)")
    ap.add_argument("--vault-cdk", help="the CDK app's synthesized vault template: must deploy the same")
    ap.add_argument("--deployed-backup", help="also write the backup state machine's deployed definition here, "
                    "its functions at arn:aws:lambda:us-east-1:123456789012:function:<name> (the emulator's)")
    ap.add_argument("--deployed-restore", help="also write the restore state machine's deployed definition here, "
                    "its function at arn:aws:lambda:us-east-1:123456789012:function:restore (the emulator's)")
    args = ap.parse_args()
    path = Path(args.template)
    template = load(path)
    problems = check_substitutions(template, path.parent)
    self_test_parameters(template, path.name)
    problems += check_parameters(template)
    problems += check_schedules(template, ROOT / "infra/schemas/run-input.schema.json")
    cfn = convert(packaged(template, path.parent))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(cfn, indent=1))
    self_test(cfn)
    self_test_deleters(cfn, "CopyRole", "PruneRole")
    self_test_restorers(cfn, "RestoreRole")
    self_test_restore_machine(cfn)
    self_test_lifecycle(cfn)
    self_test_file_restore(cfn, "RestoreRole", "CopyRole")
    problems += check_iam(cfn)
    problems += check_deleters(cfn)
    problems += check_restorers(cfn)
    problems += check_restore_machine(cfn)
    problems += check_lifecycle(cfn)
    problems += check_file_restore(cfn)
    vault_path = Path(args.vault)
    vault = load(vault_path)
    self_test_vault(vault)
    problems += check_vault(vault)
    if args.vault_cdk:
        vault_cdk = json.loads(Path(args.vault_cdk).read_text())
        problems += check_equivalent(vault, vault_cdk, "YAML") + check_sections_equivalent(vault, vault_cdk)
        # The comparison must be able to fail: the copy role's Deny dropped on the CDK side is found.
        broken = copy.deepcopy(vault_cdk)
        statements_of = broken["Resources"]["VaultCopyRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        statements_of["Statement"] = [s for s in statements_of["Statement"] if s.get("Effect") != "Deny"]
        if not any(p.startswith("VaultCopyRole.") for p in check_equivalent(vault, broken, "YAML")):
            raise SystemExit("self-test: the vault YAML/CDK comparison misses a dropped Deny")
        broken = copy.deepcopy(vault_cdk)
        broken["Parameters"]["SourceAccountId"].pop("AllowedPattern")
        if not any(p.startswith("Parameters.SourceAccountId") for p in check_sections_equivalent(vault, broken)):
            raise SystemExit("self-test: the vault YAML/CDK comparison misses a dropped parameter constraint")
    if args.cdk:
        cdk = json.loads(Path(args.cdk).read_text())
        problems += check_equivalent(cfn, cdk)
        # The comparison must be able to fail: a guard dropped on the CDK side is found.
        broken = copy.deepcopy(cdk)
        for _, s in statements(broken):
            if s.get("Sid") == "DeleteManagedEbsSnapshots":
                s.pop("Condition", None)
        if not any(p.startswith("PruneRole.") for p in check_equivalent(cfn, broken)):
            raise SystemExit("self-test: the SAM/CDK comparison misses a dropped condition")
    if problems:
        sys.exit("template check failed:\n  " + "\n  ".join(problems))
    deployed = deployed_definitions(cfn, EMULATOR_FUNCTIONS)
    for target, machine in ((args.deployed_backup, "BackupStateMachine"), (args.deployed_restore, "RestoreStateMachine")):
        if target:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            Path(target).write_text(json.dumps(deployed[machine], indent=1))
    roles = sum(1 for r in cfn["Resources"].values() if r["Type"] == "AWS::IAM::Role")
    if args.cdk:
        print(f"ok    the CDK app ({Path(args.cdk).name}) deploys the same resources, properties, IAM statements, "
              "definitions and schedules")
    print(f"ok    {path.name}: converted ({len(cfn['Resources'])} resources, {roles} roles), "
          "substitutions complete, schedule inputs valid, IAM guards in place, the restore role removes only what a "
          "restore made and denies every delete or unshare of a recovery point, the restore state machine runs only "
          "RestoreFunction, recovery-points/ never expires, a file restore reads snapshots (EBS direct, read only, "
          "managed) and writes only to the stack's bucket and the FileRestoreBuckets, deleting nothing "
          "(and the check rejects each one removed)")
    if args.vault_cdk:
        print(f"ok    the CDK app ({Path(args.vault_cdk).name}) deploys the same vault: resources, properties, "
              "IAM statements, parameters, conditions and outputs")
    print(f"ok    {vault_path.name}: trust only the source's roles, no delete or unlock allowed to the copy role, "
          "the restore role removes only what a restore made and reads copies' snapshots (EBS direct, read only, "
          "managed), explicit Denies, key policy, parameters (and the check rejects each guard removed)")


if __name__ == "__main__":
    main()
