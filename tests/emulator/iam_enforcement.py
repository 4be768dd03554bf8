"""Patch 18 of the emulator: IAM policies enforced for the roles that ask for it.

moto can authorize requests against IAM policies (moto/iam/access_control.py),
but only for every request at once (``INITIAL_NO_AUTH_ACTION_COUNT``), which
would refuse every call of the emulator's dummy credentials (``testing`` is no
IAM user). This patch turns it on for some credentials only:

* **Which requests.** A request signed with credentials that STS
  ``AssumeRole`` handed out for a role tagged
  ``strongroom-emulator:enforce-iam`` = ``true`` (the tag is read at each
  request: tagging or untagging the role switches it) is authenticated and
  authorized as AWS does (IAM policy evaluation logic: "an explicit deny in
  any policy overrides any allows"; without an allow, "the request is
  implicitly denied"), against the role's inline and attached policies.
  Every other request is served as before: unrestricted.
* **The hook.** ``ActionAuthenticatorMixin._authenticate_and_authorize_action``,
  which every moto response calls before the action
  (``_authenticate_and_authorize_normal_action`` from ``call_action``, S3's
  ``_authenticate_and_authorize_s3_action``) and which does nothing while
  moto's global switch is off. Requests of a response that never calls it
  (moto's own gap; also the emulator's Lambda invocations, which moto does
  not serve) stay unrestricted even for such a role.
* **Moto's evaluator.** moto's ``IAMRequest`` / ``S3IAMRequest`` check the
  SigV4 signature with the session's secret (``AuthFailure`` for EC2,
  ``SignatureDoesNotMatch`` otherwise; a wrong session token is
  ``AuthFailure`` / ``InvalidClientTokenId``) and collect the role's policies
  (``AssumedRoleAccessKey.collect_policies``: inline and attached; no
  session policy, permissions boundary, SCP nor resource-based policy, such
  as a KMS key policy, takes part). Each statement is judged by moto's
  ``IAMPolicyStatement.is_action_permitted``: ``Action`` / ``NotAction`` and
  ``Resource`` matched with ``*`` as the only wildcard (case-sensitive; ``?``
  is not one, and a ``.`` matches any character), any Deny that applies
  wins, else any Allow that applies allows, else the request is implicitly
  denied. The action is the request's signing name and operation (moto's
  rule; the Tagging API's ``tagging`` is IAM's ``tag``).
  ``sts:GetCallerIdentity`` is always allowed (moto's rule and AWS's);
  ``sts:AssumeRole`` also needs the target role's trust policy when the
  role is in the caller's account (moto's rule).
* **Resources.** moto itself authorizes EC2, RDS and KMS actions against
  resource ``"*"`` only, so a statement whose ``Resource`` is an ARN pattern
  (``arn:aws:ec2:*::snapshot/*``) would never apply: no Allow, and no Deny
  either. This patch names the resources as AWS's Service Authorization
  Reference does for the actions Strongroom's roles are about, and
  authorizes the request for each (all must be allowed):
  EC2 ``CopySnapshot`` (the source snapshot, in ``SourceRegion``, and the new
  one, ``snapshot/*``), ``CopyImage`` (the source AMI, the new one,
  ``image/*``, and its snapshots, ``snapshot/*``), ``CreateSnapshot`` (the
  volume and ``snapshot/*``),
  ``CreateTags`` / ``DeleteTags`` (each of ``Resources``: snapshots, AMIs,
  volumes, instances), the snapshot of ``DeleteSnapshot``, ``LockSnapshot``,
  ``UnlockSnapshot``, ``ModifySnapshotAttribute``,
  ``ResetSnapshotAttribute``, ``DescribeSnapshotAttribute``,
  ``ModifySnapshotTier``, the AMI of ``DeregisterImage``,
  ``ModifyImageAttribute``, ``ResetImageAttribute``,
  ``DescribeImageAttribute``, ``DisableImage``, ``EnableImage`` (not the
  snapshots ``DeleteAssociatedSnapshots`` deletes); RDS the DB snapshot or cluster snapshot of
  ``Delete*``, ``Modify*Attribute``, ``Describe*Attributes``, the source and
  the target of ``CopyDBSnapshot`` / ``CopyDBClusterSnapshot``, the DB
  instance and the snapshot of ``CreateDBSnapshot``, ``ResourceName`` of
  ``AddTagsToResource`` / ``RemoveTagsFromResource`` /
  ``ListTagsForResource``; KMS the key ``KeyId`` names (aliases resolved in
  the caller's account). Every other action is judged against ``"*"``, as
  moto does: an Allow or a Deny on ``"*"`` applies to it, one on an ARN
  pattern does not (a Deny meant for it must be on ``"*"``, as the vault
  roles' are). EC2 tags at creation: an EC2 call with
  ``TagSpecifications`` is also authorized for ``ec2:CreateTags`` on the new
  resource with ``ec2:CreateAction`` = the call's action (AWS: "If tags are
  specified in the resource-creating action, Amazon performs additional
  authorization on the ec2:CreateTags action"); RDS tags at creation are
  not authorized apart.
* **Conditions.** moto evaluates the ``StringEquals`` operator only; any
  other (``StringLike``, ``Bool``, ``ForAllValues:...``, ``...IfExists``,
  ``StringNotEquals``, ``ArnLike``, ...) is treated as met. moto knows no
  request context (its condition keys are the request's ``sts:ExternalId``
  only), so this patch gives it the keys it can know: ``aws:ResourceTag/K``,
  ``ec2:ResourceTag/K`` (EC2 resources), ``rds:snapshot-tag/K`` and
  ``rds:cluster-snapshot-tag/K`` (RDS snapshots), from the resource's tags
  at the time of the request (a resource that does not exist, or a new one,
  has none), and ``ec2:CreateAction`` (tags at creation only). A key of
  these that the request lacks is absent, and a ``StringEquals`` on an
  absent key is not met (AWS: "If the key that you specify in a policy
  condition is not present in the request context, the values do not
  match"). Every other key (``kms:ViaService``, ``kms:GrantIsForAWSResource``,
  ``aws:PrincipalAccount``, ``aws:RequestTag/K``, ``aws:TagKeys``, ...) is
  unknown to moto and its condition treated as met: such an Allow is
  broader here than in AWS, such a Deny applies more widely. Two fixes to
  moto's statement evaluation: a statement whose condition is not met does
  not apply (moto answers an explicit deny for it, Allow or Deny), and the
  keys of a ``StringEquals`` block are compared each with its own value
  (moto pairs the values it has with the block's by position). And one to
  its resources: a statement with ``NotResource`` applies to the resources
  that match none of its patterns (moto takes any statement without
  ``Resource``, a Deny too, for an Allow of every resource, as in a trust
  policy).
* **Errors as AWS answers them.** EC2: HTTP 403 ``UnauthorizedOperation``,
  "You are not authorized to perform this operation." followed by AWS's
  "User: <arn> is not authorized to perform: <action> on resource: <arn>
  with an explicit deny in an identity-based policy" / "because no
  identity-based policy allows the <action> action" (no encoded
  authorization message). JSON services (KMS, ...): HTTP 400
  ``AccessDeniedException`` with that message. Other query services (RDS,
  Redshift, STS, IAM, ...): HTTP 403 ``AccessDenied``, as moto's access
  control answers, with that message. S3: moto's own S3 ``AccessDenied``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import urlparse
from xml.sax.saxutils import escape

ENFORCE_TAG = "strongroom-emulator:enforce-iam"
# The value a known condition key has when the request lacks it: equal to no
# policy's value, so a StringEquals on it is not met.
ABSENT = "\x00strongroom-emulator:absent"
# Signing names that are not the service's IAM prefix.
IAM_PREFIXES = {"tagging": "tag"}
TAG_KEY_FAMILIES = ("aws:ResourceTag/", "ec2:ResourceTag/", "rds:snapshot-tag/", "rds:cluster-snapshot-tag/")

EC2_SNAPSHOT_ACTIONS = {
    "DeleteSnapshot", "LockSnapshot", "UnlockSnapshot", "ModifySnapshotAttribute", "ResetSnapshotAttribute",
    "DescribeSnapshotAttribute", "ModifySnapshotTier",
}
EC2_IMAGE_ACTIONS = {
    "DeregisterImage", "ModifyImageAttribute", "ResetImageAttribute", "DescribeImageAttribute", "DisableImage",
    "EnableImage",
}
RDS_SNAPSHOT_ACTIONS = {"DeleteDBSnapshot", "ModifyDBSnapshotAttribute", "DescribeDBSnapshotAttributes"}
RDS_CLUSTER_SNAPSHOT_ACTIONS = {
    "DeleteDBClusterSnapshot", "ModifyDBClusterSnapshotAttribute", "DescribeDBClusterSnapshotAttributes",
}
RDS_TAG_ACTIONS = {"AddTagsToResource", "RemoveTagsFromResource", "ListTagsForResource"}


def _http_error(protocol: str, status: int, code: str, message: str) -> Exception:
    from werkzeug.exceptions import HTTPException

    rid = str(uuid.uuid4())
    if protocol == "ec2":
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
        )
        content_type = "text/xml;charset=UTF-8"
    elif protocol == "json":
        body = json.dumps({"__type": code, "message": message})
        content_type = "application/x-amz-json-1.1"
    else:
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code>'
            f"<Message>{escape(message)}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
        )
        content_type = "text/xml"

    class Refused(HTTPException):
        def get_body(self, *args: Any, **kwargs: Any) -> str:
            return body

        def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
            return [("Content-Type", content_type), ("X-Amzn-ErrorType", code), ("x-amzn-RequestId", rid)]

    error = Refused(description=body)
    error.code = status
    return error


def _enforced(response: Any) -> bool:
    """Whether the request's credentials are an assumed role tagged for enforcement."""
    headers = response.headers
    if "X-Amz-Security-Token" not in headers or "Credential=" not in headers.get("Authorization", ""):
        return False
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends
    from moto.utilities.utils import get_partition

    account = response.current_account
    partition = get_partition(response.region)
    key_id = headers["Authorization"].split("Credential=", 1)[1].split("/", 1)[0]
    try:
        assumed = sts_backends[account][partition].get_assumed_role_from_access_key(key_id)
        if assumed is None:
            return False
        role = iam_backends[account][partition].get_role_by_arn(assumed.role_arn)
    except Exception:  # noqa: BLE001 - no such role (moto lets any ARN be assumed): not enforced
        return False
    return any(t.get("Key") == ENFORCE_TAG and t.get("Value") == "true" for t in role.tags or [])


# -- resources -----------------------------------------------------------------


def _ec2_arn(partition: str, region: str, account: str, resource_id: str) -> str:
    kind = {"snap": "snapshot", "ami": "image", "vol": "volume", "i": "instance"}.get(resource_id.split("-", 1)[0])
    if kind is None:
        return "*"
    owner = "" if kind in ("snapshot", "image") else account  # AWS's ARNs of snapshots and AMIs name no account
    return f"arn:{partition}:ec2:{region}:{owner}:{kind}/{resource_id}"


def _rds_arn(partition: str, region: str, account: str, kind: str, identifier: str | None) -> str:
    if not identifier:
        return "*"
    if identifier.startswith("arn:"):
        return identifier
    return f"arn:{partition}:rds:{region}:{account}:{kind}:{identifier}"


def _kms_arn(partition: str, region: str, account: str, key_id: str | None) -> str:
    if not key_id:
        return "*"
    if key_id.startswith("arn:") and ":key/" in key_id:
        return key_id
    try:
        from moto.kms.models import kms_backends

        key_id = kms_backends[account][region].any_id_to_key_id(key_id)
    except Exception:  # noqa: BLE001 - an unknown alias: judged by its name
        pass
    return f"arn:{partition}:kms:{region}:{account}:key/{key_id}"


def _resources(response: Any, service: str, action: str) -> list[tuple[str, str, dict[str, str]]]:
    """(IAM action, resource ARN, request's condition keys) to authorize, in order."""
    p, region, account = response.partition, response.region, response.current_account
    get = response._get_param
    whole = f"{service}:{action}"
    if service == "ec2":
        found: list[tuple[str, str, dict[str, str]]] = []
        if action == "CopySnapshot":
            source = get("SourceSnapshotId")
            found = [
                (whole, _ec2_arn(p, get("SourceRegion") or region, account, source) if source else "*", {}),
                (whole, f"arn:{p}:ec2:{region}::snapshot/*", {}),
            ]
        elif action == "CopyImage":
            image = get("SourceImageId")
            found = [
                (whole, _ec2_arn(p, get("SourceRegion") or region, account, image) if image else "*", {}),
                (whole, f"arn:{p}:ec2:{region}::image/*", {}),
                (whole, f"arn:{p}:ec2:{region}::snapshot/*", {}),
            ]
        elif action == "CreateSnapshot":
            volume = get("VolumeId")
            found = [(whole, _ec2_arn(p, region, account, volume) if volume else "*", {}),
                     (whole, f"arn:{p}:ec2:{region}::snapshot/*", {})]
        elif action in ("CreateTags", "DeleteTags"):
            found = [(whole, _ec2_arn(p, region, account, r), {}) for r in get("Resources", []) or []]
        elif action in EC2_SNAPSHOT_ACTIONS and get("SnapshotId"):
            found = [(whole, _ec2_arn(p, region, account, get("SnapshotId")), {})]
        elif action in EC2_IMAGE_ACTIONS and get("ImageId"):
            found = [(whole, _ec2_arn(p, region, account, get("ImageId")), {})]
        found = found or [(whole, "*", {})]
        # Tags at creation: ec2:CreateTags on the new resource, with ec2:CreateAction.
        specs = get("TagSpecifications", []) or get("TagSpecification", []) or []
        for spec in specs if isinstance(specs, list) else [specs]:
            kind = (spec or {}).get("ResourceType")
            if kind and (spec.get("Tags") or spec.get("Tag")):
                owner = "" if kind in ("snapshot", "image") else account
                found.append(("ec2:CreateTags", f"arn:{p}:ec2:{region}:{owner}:{kind}/*", {"ec2:CreateAction": action}))
        return found
    if service == "rds":
        if action in RDS_SNAPSHOT_ACTIONS:
            return [(whole, _rds_arn(p, region, account, "snapshot", get("DBSnapshotIdentifier")), {})]
        if action in RDS_CLUSTER_SNAPSHOT_ACTIONS:
            return [(whole, _rds_arn(p, region, account, "cluster-snapshot", get("DBClusterSnapshotIdentifier")), {})]
        if action == "CopyDBSnapshot":
            return [(whole, _rds_arn(p, region, account, "snapshot", get(n)), {})
                    for n in ("SourceDBSnapshotIdentifier", "TargetDBSnapshotIdentifier")]
        if action == "CopyDBClusterSnapshot":
            return [(whole, _rds_arn(p, region, account, "cluster-snapshot", get(n)), {})
                    for n in ("SourceDBClusterSnapshotIdentifier", "TargetDBClusterSnapshotIdentifier")]
        if action == "CreateDBSnapshot":
            return [(whole, _rds_arn(p, region, account, "db", get("DBInstanceIdentifier")), {}),
                    (whole, _rds_arn(p, region, account, "snapshot", get("DBSnapshotIdentifier")), {})]
        if action in RDS_TAG_ACTIONS:
            return [(whole, get("ResourceName") or "*", {})]
    if service == "kms" and get("KeyId"):
        return [(whole, _kms_arn(p, region, account, get("KeyId")), {})]
    return [(whole, "*", {})]


def _tags_of(resource: str, account: str) -> tuple[str, dict[str, str]]:
    """The kind of the resource an ARN names ("ec2", "rds:snapshot", ...) and its tags now."""
    parts = resource.split(":", 5)
    if len(parts) < 6 or resource.endswith("*"):
        return "", {}
    service, region = parts[2], parts[3]
    try:
        if service == "ec2":
            from moto.ec2.models import ec2_backends

            resource_id = parts[5].split("/", 1)[-1]
            owners = [parts[4]] if parts[4] else [account] + [a for a in list(ec2_backends.keys()) if a != account]
            for owner in owners:
                backend = ec2_backends[owner][region]
                known = (backend.tags, getattr(backend, "snapshots", {}), getattr(backend, "amis", {}))
                if any(resource_id in k for k in known):
                    return "ec2", dict(backend.tags.get(resource_id, {}))
            return "ec2", {}
        if service == "rds":
            from moto.rds.models import rds_backends

            kind = parts[5].split(":", 1)[0]
            tags = rds_backends[parts[4]][region].list_tags_for_resource(resource)
            return f"rds:{kind}", {t["Key"]: t["Value"] for t in tags}
    except Exception:  # noqa: BLE001 - a resource that does not exist has no tags
        return "", {}
    return "", {}


def _context(keys: set[str], resource: str, account: str, given: dict[str, str]) -> dict[str, str]:
    """The request context for the condition keys the policies name and this patch knows."""
    context: dict[str, str] = {}
    kind, tags = None, {}
    for key in keys:
        if key in given:
            context[key] = given[key]
        elif key == "ec2:CreateAction":
            context[key] = ABSENT
        elif key.startswith(TAG_KEY_FAMILIES):
            if kind is None:
                kind, tags = _tags_of(resource, account)
            family, tag = key.split("/", 1)
            applies = family == "aws:ResourceTag" or (family == "ec2:ResourceTag" and kind == "ec2") or (
                family == f"{kind}-tag" and kind.startswith("rds:"))
            context[key] = tags.get(tag, ABSENT) if applies else ABSENT
    return context


# -- evaluation ----------------------------------------------------------------


def _statements(policies: list[Any]) -> list[dict[str, Any]]:
    from moto.iam.access_control import IAMPolicy

    out: list[dict[str, Any]] = []
    for policy in policies:
        statements = IAMPolicy(policy)._policy_json["Statement"]
        out += statements if isinstance(statements, list) else [statements]
    return out


def _condition_keys(statements: list[dict[str, Any]]) -> set[str]:
    return {k for st in statements for block in (st.get("Condition") or {}).values() for k in block}


def _judge(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> str:
    """"deny", "allow" or "" (does not apply): moto's evaluation of one statement, with the fixes."""
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    if "NotResource" in statement and "Resource" not in statement:
        if IAMPolicyStatement(statement)._check_element_matches("NotResource", resource):
            return ""
        statement = {k: v for k, v in statement.items() if k != "NotResource"}
        statement["Resource"] = "*"
    conditions = statement.get("Condition")
    if conditions:
        # moto pairs the values it has with the block's by position: give it only keys it has.
        statement = dict(statement)
        statement["Condition"] = {
            op: {k: v for k, v in block.items() if k in context} for op, block in conditions.items()
        }
    judged = IAMPolicyStatement(statement)
    result = judged.is_action_permitted(action, resource, None, context)
    if result == PermissionResult.DENIED:
        # moto answers DENIED for a statement whose condition is not met, Allow or Deny alike.
        if not judged._check_conditions(context):
            return ""
        return "deny"
    return "allow" if result == PermissionResult.PERMITTED else ""


def _authorize(response: Any, request_cls: type, resource: str) -> None:
    from moto.iam.access_control import S3IAMRequest

    parsed_url = urlparse(response.uri)
    path = response.raw_path + ("?" + parsed_url.query if parsed_url.query else "")
    request = request_cls(
        account_id=response.current_account,
        method=response.method,
        path=path,
        data=response.data,
        body=response.raw_body,
        headers=response.headers,
        action=response._get_action(),
    )
    request.check_signature()
    service, action = request._action.split(":", 1)  # the signing name and the operation (moto's rule)
    service = IAM_PREFIXES.get(service, service)
    whole = f"{service}:{action}"
    if whole == "sts:GetCallerIdentity":  # always allowed, even with an explicit Deny for it (moto, AWS)
        return
    statements = _statements(request._access_key.collect_policies())
    keys = _condition_keys(statements)
    if request_cls is S3IAMRequest or resource != "*":
        targets = [(whole, resource, {})]  # moto named the resource (S3 buckets and objects, STS, IAM, SQS)
    else:
        targets = _resources(response, service, action)
    for iam_action, arn, given in targets:
        context = _context(keys, arn, response.current_account, given)
        verdicts = [_judge(st, iam_action, arn, context) for st in statements]
        allowed = "allow" in verdicts
        if allowed and iam_action == "sts:AssumeRole" and request._is_assuming_role_operation(arn):
            allowed = request._check_role_trust_relationship(arn)
        if "deny" in verdicts or not allowed:
            if request_cls is S3IAMRequest:
                request._raise_access_denied()
            why = ("with an explicit deny in an identity-based policy" if "deny" in verdicts
                   else f"because no identity-based policy allows the {iam_action} action")
            user = request._access_key.arn
            message = f"User: {user} is not authorized to perform: {iam_action} on resource: {arn} {why}"
            if service == "ec2":
                message = f"You are not authorized to perform this operation. {message}"
                raise _http_error("ec2", 403, "UnauthorizedOperation", message)
            if "json" in (response.headers.get("Content-Type") or ""):
                raise _http_error("json", 400, "AccessDeniedException", message)
            raise _http_error("query", 403, "AccessDenied", message)


def patch_moto_iam_enforcement() -> None:
    """Patch 18: installs the enforcement (once)."""
    from moto.core.authorization import ActionAuthenticatorMixin

    original = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if getattr(original, "_strongroom", False):
        return

    def authenticate_and_authorize(self, iam_request_cls, resource="*"):  # type: ignore[no-untyped-def]
        if not _enforced(self):
            return original(self, iam_request_cls, resource)
        return _authorize(self, iam_request_cls, resource)

    authenticate_and_authorize._strongroom = True  # type: ignore[attr-defined]
    ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate_and_authorize
