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
   see README "IAM"); `ec2:CreateTags` only at creation or for the
   `strongroom:deleting` mark on managed snapshots; `sts:AssumeRole` only on
   the `AssumableRoleArns` parameter. The check first proves it can fail: it
   must reject the template with each guard removed.
"""

from __future__ import annotations

import argparse
import copy
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
# Destructive actions guarded by the names Strongroom gives instead (the resource ARN).
NAME_GUARDED = {
    "redshift:DeleteClusterSnapshot": ":snapshot:*/strongroom-*",
}
CREATE_ACTIONS = {"CreateSnapshot", "CreateSnapshots", "CreateImage"}


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
            continue
        if not any(k in p for k in ("AllowedValues", "AllowedPattern", "MinValue", "MaxValue")):
            problems.append(f"parameter {name}: no AllowedValues, AllowedPattern or MinValue/MaxValue")
        default = p.get("Default")
        if "AllowedValues" in p and default is not None and str(default) not in [str(v) for v in p["AllowedValues"]]:
            problems.append(f"parameter {name}: default {default!r} is not among its AllowedValues")
        if "AllowedPattern" in p and default is not None and not re.fullmatch(p["AllowedPattern"], str(default)):
            problems.append(f"parameter {name}: default {default!r} does not match its AllowedPattern")
    return problems


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


def check_iam(cfn: dict[str, Any]) -> list[str]:
    problems = []
    for role, s in statements(cfn):
        sid = s.get("Sid", "?")
        actions = as_list(s.get("Action", []))
        condition = s.get("Condition", {})
        for a in actions:
            where = f"{role} {sid} {a}"
            if "*" in a:
                problems.append(f"{where}: a wildcard action")
                continue
            if a in TAG_GUARDED:
                eq = condition.get("StringEquals", {})
                if not any(eq.get(k) == "true" for k in TAG_GUARDED[a]):
                    problems.append(f"{where}: destructive without a strongroom:managed=true resource-tag condition")
            if a in NAME_GUARDED:
                resources = [resource_text(r) for r in as_list(s.get("Resource", []))]
                if not resources or not all(NAME_GUARDED[a] in r for r in resources):
                    problems.append(f"{where}: destructive on resources other than Strongroom's names ({NAME_GUARDED[a]})")
            if a == "ec2:CreateTags":
                create = set(as_list(condition.get("StringEquals", {}).get("ec2:CreateAction", [])))
                marking = (
                    condition.get("StringEquals", {}).get("aws:ResourceTag/strongroom:managed") == "true"
                    and as_list(condition.get("ForAllValues:StringEquals", {}).get("aws:TagKeys", []))
                    == ["strongroom:deleting"]
                )
                if not (create and create <= CREATE_ACTIONS) and not marking:
                    problems.append(f"{where}: tags existing resources (needs ec2:CreateAction, or the deleting mark)")
            if a == "sts:AssumeRole" and s.get("Resource") != {"Ref": "AssumableRoleArns"}:
                problems.append(f"{where}: may assume roles other than the AssumableRoleArns parameter")
    return problems


def self_test(cfn: dict[str, Any]) -> None:
    """The IAM check must reject each guard taken away."""

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

    for action in list(TAG_GUARDED) + ["ec2:CreateTags"]:
        if not any(action in as_list(s.get("Action", [])) for _, s in statements(cfn)):
            raise SystemExit(f"self-test: no statement grants {action}; the check would prove nothing")
        if not any(action in p for p in without(drop_condition(action))):
            raise SystemExit(f"self-test: the check accepts {action} without its condition")

    def widen(s: dict[str, Any]) -> None:
        if "redshift:DeleteClusterSnapshot" in as_list(s.get("Action", [])):
            s["Resource"] = "*"

    if not any("redshift:DeleteClusterSnapshot" in p for p in without(widen)):
        raise SystemExit("self-test: the check accepts redshift:DeleteClusterSnapshot on any snapshot")

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


def check_equivalent(sam: dict[str, Any], cdk: dict[str, Any]) -> list[str]:
    """The CDK app deploys the SAM template's architecture: the same resources
    with the same properties (IAM statements included), the same state
    machine definitions; schedules as the SAM template's defaults."""
    problems = []
    defaults = {k: p.get("Default") for k, p in sam.get("Parameters", {}).items()}
    ours = {k: r for k, r in cdk["Resources"].items() if r["Type"] != "AWS::CDK::Metadata"}
    for name in sorted(set(sam["Resources"]) ^ set(ours)):
        side = "SAM only" if name in sam["Resources"] else "CDK only"
        problems.append(f"{name}: {side}")
    for name in sorted(set(sam["Resources"]) & set(ours)):
        a, b = sam["Resources"][name], ours[name]
        if a["Type"] != b["Type"]:
            problems.append(f"{name}: {a['Type']} (SAM) vs {b['Type']} (CDK)")
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
                    problems.append(f"{name}.{key}: SAM {json.dumps(ca.get(key))[:300]} vs CDK {json.dumps(cb.get(key))[:300]}")
        if a["Type"] == "AWS::StepFunctions::StateMachine":
            separator, lines = a["Properties"]["DefinitionString"]["Fn::Join"]
            if json.loads(separator.join(lines)) != json.loads(b["Properties"]["DefinitionString"]):
                problems.append(f"{name}: the definitions differ")
        for attr in ("DeletionPolicy", "UpdateReplacePolicy", "Condition"):
            if a.get(attr) != b.get(attr):
                problems.append(f"{name}.{attr}: SAM {a.get(attr)} vs CDK {b.get(attr)}")
    return problems


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--template", default=str(ROOT / "infra/template.yaml"))
    ap.add_argument("--out", required=True, help="where the converted CloudFormation template goes")
    ap.add_argument("--cdk", help="the CDK app's synthesized template: must deploy the same architecture")
    ap.add_argument("--deployed-backup", help="also write the backup state machine's deployed definition here, "
                    "its functions at arn:aws:lambda:us-east-1:123456789012:function:<name> (the emulator's)")
    args = ap.parse_args()
    path = Path(args.template)
    template = load(path)
    problems = check_substitutions(template, path.parent)
    problems += check_parameters(template)
    problems += check_schedules(template, ROOT / "infra/schemas/run-input.schema.json")
    cfn = convert(packaged(template, path.parent))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(cfn, indent=1))
    self_test(cfn)
    problems += check_iam(cfn)
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
    if args.deployed_backup:
        deployed = deployed_definitions(cfn, "arn:aws:lambda:us-east-1:123456789012:function:")
        Path(args.deployed_backup).write_text(json.dumps(deployed["BackupStateMachine"], indent=1))
    roles = sum(1 for r in cfn["Resources"].values() if r["Type"] == "AWS::IAM::Role")
    if args.cdk:
        print(f"ok    the CDK app ({Path(args.cdk).name}) deploys the same resources, properties, IAM statements, "
              "definitions and schedules")
    print(f"ok    {path.name}: converted ({len(cfn['Resources'])} resources, {roles} roles), "
          "substitutions complete, schedule inputs valid, IAM guards in place (and the check rejects each one removed)")


if __name__ == "__main__":
    main()
