"""Patch 10 of the emulator: switchable faults, per emulator instance.

Strongroom has to cope with what AWS does under load and at its limits; moto
never throttles, never loses a response, answers every create with a finished
resource and has no quotas. This module makes the emulator do those things,
on demand, and only to Strongroom's own calls (client ``strongroom`` in the
call log): the tests' set-up and read-back calls (``harness``) and seed
scripts (``boto3``) always see the truth, and Lambda invocations and the Step
Functions API are never faulted.

Configuration: JSON, from ``STRONGROOM_EMULATOR_FAULTS`` at start, or
``POST /_strongroom/faults`` at runtime (the body replaces the whole
configuration and reseeds the random generator); ``GET /_strongroom/faults``
returns the configuration in force, every field spelled out. Default: no
faults. Fields, all optional:

``seed`` (int, 0)
    Seeds the one ``random.Random`` behind every random decision.
``throttle_fraction`` (0..1, 0) and ``throttle_actions`` (names; null = all)
    That fraction of matching calls is refused with the service's throttling
    error before moto sees it (nothing is done): EC2 HTTP 503
    ``RequestLimitExceeded``; RDS, Redshift, STS HTTP 400 ``Throttling``
    (Type ``Sender``); Resource Groups Tagging API HTTP 400
    ``ThrottlingException`` (JSON 1.1, ``x-amzn-ErrorType``). AWS, "Request
    throttling for the Amazon EC2 API": "If you exceed an API throttling
    limit, you get the RequestLimitExceeded error code"; the query APIs
    answer ``Throttling`` "Rate exceeded".
``lost_response_fraction`` (0..1, 0) and ``lost_response_actions`` (names;
default the six creates of ``DEFAULT_LOST_RESPONSE_ACTIONS``)
    The call is done by moto, then its answer is replaced by a server error:
    EC2 HTTP 500 ``InternalError``, RDS/Redshift/STS HTTP 500
    ``InternalFailure``, Tagging HTTP 500 ``InternalServiceException`` (the
    Tagging API's own: "The request processing failed because of an unknown
    error, exception, or failure. You can retry the request."). A server
    error says nothing of whether the create was done: the caller has to
    find out.
``pending_describes`` (int N, 0)
    Every EBS snapshot, AMI, RDS DB snapshot, DB cluster snapshot and Redshift
    snapshot created while N > 0 is shown still in progress (EBS and AMI
    ``pending``; RDS, Aurora and Redshift ``creating``) in the create answer
    to Strongroom and in the first N describe answers to Strongroom that
    include it (counted per resource); then in its real state. Harness and
    seed describes show the real state and do not count. (moto's
    ``CreateSnapshots`` answer left ``State`` out; it now has it.)
``visibility_seconds`` (float, 0)
    An EBS snapshot or AMI created while this is set is missing from
    Strongroom's ``DescribeSnapshots`` / ``DescribeImages`` answers for that
    long after its creation; asked for by id it is ``InvalidSnapshot.NotFound``
    / ``InvalidAMIID.NotFound``. AWS, "Eventual consistency in the Amazon EC2
    API": "if you run a command to modify or describe the resource that you
    just created, its ID might not have propagated throughout the system, and
    you will get an error responding that the resource does not exist".
``quotas`` (object: ``ebs_snapshots``, ``rds_manual_snapshots``,
``rds_manual_cluster_snapshots``, ``redshift_manual_snapshots``)
    The most of each per account and region. A create by Strongroom beyond it
    fails with AWS's own error: EC2 ``CreateSnapshot``, ``CreateSnapshots``,
    ``CreateImage`` ``SnapshotLimitExceeded`` ("The limit on the number of
    Amazon EBS snapshots has been exceeded"); RDS ``CreateDBSnapshot`` and
    ``CreateDBClusterSnapshot`` ``SnapshotQuotaExceeded`` ("The request would
    result in the user exceeding the allowed number of DB snapshots");
    Redshift ``CreateClusterSnapshot`` ``ClusterSnapshotQuotaExceeded`` ("The
    request would result in the user exceeding the allowed number of cluster
    snapshots"). All HTTP 400. AWS, RDS quotas: "After a quota for a resource
    has been reached, additional calls to create that resource fail with an
    exception."

``vanishing_keys`` (list of key suffixes, [])
    An S3 object Strongroom writes whose key ends with one of these is
    deleted right after the write succeeds, as a lifecycle rule or a person
    might remove it before its reader comes (e.g. ``batches.jsonl``: the Map
    items gone between Discover and the Distributed Map's ``ItemReader``).
``ebs_direct_throttle_every`` (int N, 0) and ``ebs_direct_throttle_actions``
(EBS direct API names; default ``["GetSnapshotBlock"]``)
    Every Nth call by Strongroom of one of those actions (counted from the
    last configuration) is refused before anything is done with HTTP 400
    ``RequestThrottledException``, ``Reason`` ``ACCOUNT_THROTTLED``, the
    EBS direct APIs' own throttling error ("The number of API requests has
    exceeded the maximum allowed API request throttling limit"; AWS: "You
    should always retry requests that receive ... ThrottlingException and
    RequestThrottledException client error responses"). 0: never. Patch 20
    (tests/emulator/ebs_direct.py) serves the EBS direct APIs.

RDS ``DescribeAccountAttributes`` (which moto lacks) answers, to every
client, the ``AccountQuotas`` ``ManualSnapshots`` and
``ManualClusterSnapshots`` (AWS: "The number of manual DB instance snapshots
per account. The used value is the count of the manual DB instance snapshots
in the account"), ``Max`` being the configured quota or AWS's default of 100
("Manual DB instance snapshots ... 100", "Manual DB cluster snapshots ...
100").

Every faulted call has ``"fault"`` in its call-log entry: ``"throttled"``, ``"vanished"``,
``"lost-response"`` or ``"quota"``.

How: ``serve`` runs each logged call, setting the thread-local ``CURRENT``
(client, action) for moto's code, which runs in the request's own thread.
Models' state attributes become properties that answer the in-progress state
for the objects a describe of this request chose to show so; describe and
create methods of the backends are wrapped for visibility and quotas.
"""

from __future__ import annotations

import functools
import json
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

DEFAULT_LOST_RESPONSE_ACTIONS = [
    "CreateSnapshot",
    "CreateSnapshots",
    "CreateImage",
    "CreateDBSnapshot",
    "CreateDBClusterSnapshot",
    "CreateClusterSnapshot",
]
EBS_DIRECT_ACTIONS = (
    "StartSnapshot", "PutSnapshotBlock", "CompleteSnapshot", "ListSnapshotBlocks", "ListChangedBlocks", "GetSnapshotBlock",
)
DEFAULT_EBS_DIRECT_THROTTLE_ACTIONS = ["GetSnapshotBlock"]
QUOTA_NAMES = ("ebs_snapshots", "rds_manual_snapshots", "rds_manual_cluster_snapshots", "redshift_manual_snapshots")
RDS_DEFAULT_MANUAL_SNAPSHOTS = 100  # AWS's default quota, instance and cluster snapshots alike

# Services whose calls can be faulted, by SigV4 credential-scope name, and the
# error protocol of each. Everything else (Step Functions, Lambda, ...) never is.
PROTOCOLS = {"ec2": "ec2", "rds": "query", "redshift": "query", "sts": "query", "tagging": "json"}


@dataclass
class FaultConfig:
    seed: int = 0
    throttle_fraction: float = 0.0
    throttle_actions: list[str] | None = None
    lost_response_fraction: float = 0.0
    lost_response_actions: list[str] = field(default_factory=lambda: list(DEFAULT_LOST_RESPONSE_ACTIONS))
    pending_describes: int = 0
    visibility_seconds: float = 0.0
    quotas: dict[str, int] = field(default_factory=dict)
    vanishing_keys: list[str] = field(default_factory=list)
    ebs_direct_throttle_every: int = 0
    ebs_direct_throttle_actions: list[str] = field(default_factory=lambda: list(DEFAULT_EBS_DIRECT_THROTTLE_ACTIONS))

    @classmethod
    def parse(cls, raw: Any) -> FaultConfig:
        """A configuration from its JSON form; ValueError says what is wrong."""
        if not isinstance(raw, dict):
            raise ValueError("the fault configuration is a JSON object")
        unknown = set(raw) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown fields: {sorted(unknown)}")
        config = cls()

        def number(name: str, low: float, high: float | None, kind: type) -> None:
            value = raw.get(name)
            if value is None:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
                raise ValueError(f"{name} must be a{'n integer' if kind is int else ' number'}")
            if value < low or (high is not None and value > high):
                raise ValueError(f"{name} must be between {low} and {high if high is not None else 'any'}")
            setattr(config, name, kind(value))

        def actions(name: str) -> None:
            value = raw.get(name)
            if value is None:
                return
            if not isinstance(value, list) or not all(isinstance(a, str) for a in value):
                raise ValueError(f"{name} must be a list of action names")
            setattr(config, name, list(value))

        if "seed" in raw and (isinstance(raw["seed"], bool) or not isinstance(raw["seed"], int)):
            raise ValueError("seed must be an integer")
        config.seed = int(raw.get("seed") or 0)
        number("throttle_fraction", 0, 1, float)
        number("lost_response_fraction", 0, 1, float)
        number("pending_describes", 0, None, int)
        number("visibility_seconds", 0, None, float)
        number("ebs_direct_throttle_every", 0, None, int)
        actions("throttle_actions")
        actions("lost_response_actions")
        actions("vanishing_keys")
        actions("ebs_direct_throttle_actions")
        strange = [a for a in config.ebs_direct_throttle_actions if a not in EBS_DIRECT_ACTIONS]
        if strange:
            raise ValueError(f"ebs_direct_throttle_actions: {strange} are not EBS direct APIs {list(EBS_DIRECT_ACTIONS)}")
        quotas = raw.get("quotas") or {}
        if not isinstance(quotas, dict):
            raise ValueError("quotas must be an object")
        for name, value in quotas.items():
            if name not in QUOTA_NAMES:
                raise ValueError(f"unknown quota {name!r}; known: {list(QUOTA_NAMES)}")
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"quota {name} must be a non-negative integer")
        config.quotas = dict(quotas)
        return config


class Faults:
    """The configuration in force and the one random generator, under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config = FaultConfig()
        self.rng = random.Random(0)
        self.ebs_direct_calls = 0  # Strongroom's calls of the throttled EBS direct actions

    def configure(self, raw: Any) -> FaultConfig:
        config = FaultConfig.parse(raw)
        with self.lock:
            self.config = config
            self.rng = random.Random(config.seed)
            self.ebs_direct_calls = 0
        return config

    def ebs_direct_throttled(self, action: str) -> bool:
        """Whether this call of an EBS direct API `action` is the Nth one, to throttle."""
        config = self.config
        every = config.ebs_direct_throttle_every
        if every <= 0 or action not in config.ebs_direct_throttle_actions:
            return False
        with self.lock:
            self.ebs_direct_calls += 1
            return self.ebs_direct_calls % every == 0

    def draw(self, fraction: float, actions: list[str] | None, action: str) -> bool:
        """Whether this call is faulted: a draw only for calls the fault targets."""
        if fraction <= 0 or (actions is not None and action not in actions):
            return False
        with self.lock:
            return self.rng.random() < fraction


FAULTS = Faults()
# The call being served in this thread: client, action, the ids of the model
# objects this answer shows in progress (`pending`), and the fault a patched
# backend hit (`fault`).
CURRENT = threading.local()
_COUNTERS = threading.Lock()  # guards the objects' pending-describe counters


def strongroom_call(action: str | None = None) -> bool:
    """True while serving Strongroom's own call (of `action`, if given)."""
    if getattr(CURRENT, "client", None) != "strongroom":
        return False
    return action is None or getattr(CURRENT, "action", None) == action


# --------------------------------------------------------------------------
# Serving one call: throttling before moto, lost responses after it.
# --------------------------------------------------------------------------


def _request_id() -> str:
    return str(uuid.uuid4())


def _error(protocol: str, status: str, code: str, message: str, sender: bool) -> tuple[str, list[tuple[str, str]], bytes]:
    rid = _request_id()
    if protocol == "ec2":
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error><Code>{code}</Code>"
            f"<Message>{message}</Message></Error></Errors><RequestID>{rid}</RequestID></Response>"
        ).encode()
        headers = [("Content-Type", "text/xml;charset=UTF-8")]
    elif protocol == "query":
        kind = "Sender" if sender else "Receiver"
        body = (
            f"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>"
            f"<Message>{message}</Message></Error><RequestId>{rid}</RequestId></ErrorResponse>"
        ).encode()
        headers = [("Content-Type", "text/xml")]
    else:
        body = json.dumps({"__type": code, "Message": message}).encode()
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-ErrorType", code)]
    headers += [("x-amzn-RequestId", rid), ("Content-Length", str(len(body)))]
    return status, headers, body


def throttled(protocol: str) -> tuple[str, list[tuple[str, str]], bytes]:
    if protocol == "ec2":
        return _error(protocol, "503 Service Unavailable", "RequestLimitExceeded", "Request limit exceeded.", True)
    if protocol == "query":
        return _error(protocol, "400 Bad Request", "Throttling", "Rate exceeded", True)
    return _error(protocol, "400 Bad Request", "ThrottlingException", "Rate exceeded", True)


def lost(protocol: str) -> tuple[str, list[tuple[str, str]], bytes]:
    if protocol == "ec2":
        return _error(protocol, "500 Internal Server Error", "InternalError", "An internal error has occurred.", False)
    if protocol == "query":
        return _error(protocol, "500 Internal Server Error", "InternalFailure", "An internal error has occurred.", False)
    return _error(protocol, "500 Internal Server Error", "InternalServiceException", "An internal error has occurred.", False)


def _protocol(service: str, environ: dict[str, Any]) -> str | None:
    protocol = PROTOCOLS.get(service)
    # The Tagging API is JSON 1.1 with X-Amz-Target for the Rust SDK; other
    # encodings (botocore's CBOR) are never faulted.
    if protocol == "json" and not environ.get("HTTP_X_AMZ_TARGET"):
        return None
    return protocol


def _vanish(environ: dict[str, Any], suffixes: list[str], mark: Callable[[str], None]) -> None:
    """Deletes the object just written when its key ends with one of `suffixes`."""
    bucket, _, key = environ.get("PATH_INFO", "").lstrip("/").partition("/")
    if not key or not any(key.endswith(s) for s in suffixes):
        return
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    s3_backends[DEFAULT_ACCOUNT_ID]["aws"].delete_object(bucket, key)
    mark("vanished")


def serve(
    call: dict[str, str],
    mark: Callable[[str], None],
    environ: dict[str, Any],
    start_response: Any,
    app: Callable[..., Iterable[bytes]],
) -> list[bytes]:
    """Serves one logged AWS call through `app` (moto), faulting it as configured.

    `mark(fault)` records the fault in the call's log entry."""
    config = FAULTS.config
    action = call["action"]
    protocol = _protocol(call["service"], environ) if call["client"] == "strongroom" else None
    if protocol and FAULTS.draw(config.throttle_fraction, config.throttle_actions, action):
        mark("throttled")
        status, headers, body = throttled(protocol)
        start_response(status, headers)
        return [body]

    captured: dict[str, Any] = {}
    chunks: list[bytes] = []

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"], captured["headers"] = status, headers
        return chunks.append

    CURRENT.client, CURRENT.action, CURRENT.pending, CURRENT.fault = call["client"], action, set(), None
    try:
        result = app(environ, capture)
        try:
            chunks.extend(result)
        finally:
            if hasattr(result, "close"):
                result.close()
        fault = CURRENT.fault
    finally:
        CURRENT.client, CURRENT.action, CURRENT.pending, CURRENT.fault = None, None, set(), None
    if fault:
        mark(fault)
    status = captured["status"]
    if call["client"] == "strongroom" and action == "PutObject" and status.startswith("2"):
        _vanish(environ, config.vanishing_keys, mark)
    if (
        protocol
        and status.startswith("2")
        and FAULTS.draw(config.lost_response_fraction, config.lost_response_actions, action)
    ):
        mark("lost-response")
        status, headers, body = lost(protocol)
        start_response(status, headers)
        return [body]
    start_response(status, captured["headers"])
    return [b"".join(chunks)]


def control(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """``/_strongroom/faults``: GET the configuration, POST a new one."""
    method = environ.get("REQUEST_METHOD", "GET")
    status = "200 OK"
    if method == "POST":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        raw = environ["wsgi.input"].read(length) if length else b"{}"
        try:
            FAULTS.configure(json.loads(raw or b"{}"))
            payload: Any = asdict(FAULTS.config)
        except ValueError as e:  # json.JSONDecodeError is a ValueError
            status, payload = "400 Bad Request", {"error": str(e)}
    elif method == "GET":
        payload = asdict(FAULTS.config)
    else:
        status, payload = "405 Method Not Allowed", {"error": "GET or POST"}
    body = json.dumps(payload).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


# --------------------------------------------------------------------------
# moto: resources in progress, eventual visibility, quotas.
# --------------------------------------------------------------------------


def _state_property(attr: str, in_progress: str) -> property:
    """The model's `attr`, except `in_progress` for objects this answer shows so."""
    key = f"_strongroom_{attr}"

    def get(self: Any) -> Any:
        if id(self) in getattr(CURRENT, "pending", ()):
            return in_progress
        return self.__dict__.get(key, self.__dict__.get(attr))

    def set_(self: Any, value: Any) -> None:
        self.__dict__[key] = value

    return property(get, set_)


def _stamp_on_create(cls: type, visibility: bool) -> None:
    """Objects of `cls` created while faults are set: pending, maybe invisible."""
    original = cls.__init__

    @functools.wraps(original)
    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        config = FAULTS.config
        if config.pending_describes > 0:
            self._strongroom_pending_left = config.pending_describes
            if strongroom_call():
                CURRENT.pending.add(id(self))  # the create answer shows it in progress too
        if visibility and config.visibility_seconds > 0:
            self._strongroom_visible_at = time.monotonic() + config.visibility_seconds

    cls.__init__ = init  # type: ignore[misc]


def _watch_describe(cls: type, method: str, action: str, ids_param: str | None = None, not_found: Any = None) -> None:
    """Strongroom's `action` answers: invisible objects left out, pending ones counted."""
    original = getattr(cls, method)

    @functools.wraps(original)
    def describe(self: Any, *args: Any, **kwargs: Any) -> Any:
        found = original(self, *args, **kwargs)
        if not strongroom_call(action):
            return found
        now = time.monotonic()
        hidden = {id(o): o for o in found if getattr(o, "_strongroom_visible_at", 0.0) > now}
        if hidden:
            wanted = kwargs.get(ids_param) if ids_param in kwargs else (args[0] if args else None)
            missing = [o.id for o in hidden.values() if wanted and o.id in wanted]
            if missing:
                raise not_found(missing)
            found = [o for o in found if id(o) not in hidden]
        with _COUNTERS:
            for o in found:
                left = getattr(o, "_strongroom_pending_left", 0)
                if left > 0:
                    o._strongroom_pending_left = left - 1
                    CURRENT.pending.add(id(o))
        return found

    setattr(cls, method, describe)


def _guard_quota(
    cls: type, method: str, action: str, quota: str, used: Callable[[Any], int], error: Callable[[], Exception],
    adding: Callable[[Any, tuple[Any, ...], dict[str, Any]], int] = lambda *_: 1,
) -> None:
    """Strongroom's `action` fails with `error` if it would take `used` past `quota`."""
    original = getattr(cls, method)

    @functools.wraps(original)
    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        limit = FAULTS.config.quotas.get(quota)
        if limit is not None and strongroom_call(action) and used(self) + adding(self, args, kwargs) > limit:
            CURRENT.fault = "quota"
            raise error()
        return original(self, *args, **kwargs)

    setattr(cls, method, create)


def _manual(snapshots: dict[str, Any]) -> int:
    return sum(1 for s in snapshots.values() if getattr(s, "snapshot_type", "manual") == "manual")


def patch_moto_faults() -> None:
    """Patch 10: installs the moto side of the faults (once)."""
    from moto.core.responses import ActionResult
    from moto.ec2.exceptions import EC2ClientError, InvalidAMIIdError, InvalidSnapshotIdError
    from moto.ec2.models.amis import Ami, AmiBackend
    from moto.ec2.models.elastic_block_store import EBSBackend
    from moto.ec2.models.elastic_block_store import Snapshot as EbsSnapshot
    from moto.rds.exceptions import SnapshotQuotaExceededFault
    from moto.rds.models import DBClusterSnapshot, DBSnapshot, RDSBackend
    from moto.rds.responses import RDSResponse
    from moto.redshift.exceptions import RedshiftClientError
    from moto.redshift.models import RedshiftBackend
    from moto.redshift.models import Snapshot as RedshiftSnapshot

    if getattr(RDSResponse, "_strongroom_faults", False):
        return

    # Resources in progress, and (EC2 only) eventually visible.
    for cls, attr, shown, visibility in [
        (EbsSnapshot, "status", "pending", True),
        (Ami, "state", "pending", True),
        (DBSnapshot, "status", "creating", False),
        (DBClusterSnapshot, "status", "creating", False),
        (RedshiftSnapshot, "status", "creating", False),
    ]:
        setattr(cls, attr, _state_property(attr, shown))
        _stamp_on_create(cls, visibility)
    # CreateSnapshots answers SnapshotInfo, whose State moto finds under `state`:
    # without this, moto leaves the state out of that answer.
    EbsSnapshot.state = property(lambda self: self.status)  # type: ignore[attr-defined]
    _watch_describe(EBSBackend, "describe_snapshots", "DescribeSnapshots", "snapshot_ids", lambda _ids: InvalidSnapshotIdError())
    _watch_describe(AmiBackend, "describe_images", "DescribeImages", "ami_ids", InvalidAMIIdError)
    _watch_describe(RDSBackend, "describe_db_snapshots", "DescribeDBSnapshots")
    _watch_describe(RDSBackend, "describe_db_cluster_snapshots", "DescribeDBClusterSnapshots")
    _watch_describe(RedshiftBackend, "describe_cluster_snapshots", "DescribeClusterSnapshots")

    # Quotas.
    def ebs_limit() -> Exception:
        return EC2ClientError("SnapshotLimitExceeded", "The limit on the number of Amazon EBS snapshots has been exceeded.")

    def instance_volumes(backend: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
        spec = kwargs.get("instance_spec", args[0] if args else {})
        instance = backend.get_instance(spec["InstanceId"])
        exclude_boot = str(spec.get("ExcludeBootVolume", False)).lower() == "true"
        return sum(1 for device, _ in instance.get_block_device_mapping if not (exclude_boot and device == instance.root_device_name))

    ebs_used: Callable[[Any], int] = lambda backend: len(backend.snapshots)  # noqa: E731
    _guard_quota(EBSBackend, "create_snapshot", "CreateSnapshot", "ebs_snapshots", ebs_used, ebs_limit)
    _guard_quota(EBSBackend, "create_snapshots", "CreateSnapshots", "ebs_snapshots", ebs_used, ebs_limit, instance_volumes)
    # moto backs every AMI with one snapshot.
    _guard_quota(AmiBackend, "create_image", "CreateImage", "ebs_snapshots", ebs_used, ebs_limit)
    _guard_quota(
        RDSBackend, "create_db_snapshot", "CreateDBSnapshot", "rds_manual_snapshots",
        lambda b: _manual(b.database_snapshots), SnapshotQuotaExceededFault,
    )
    _guard_quota(
        RDSBackend, "create_db_cluster_snapshot", "CreateDBClusterSnapshot", "rds_manual_cluster_snapshots",
        lambda b: _manual(b.cluster_snapshots), SnapshotQuotaExceededFault,
    )
    _guard_quota(
        RedshiftBackend, "create_cluster_snapshot", "CreateClusterSnapshot", "redshift_manual_snapshots",
        lambda b: _manual(b.snapshots),
        lambda: RedshiftClientError(
            "ClusterSnapshotQuotaExceeded",
            "The request would result in the user exceeding the allowed number of cluster snapshots.",
        ),
    )

    def describe_account_attributes(self: Any) -> ActionResult:
        quotas = FAULTS.config.quotas
        return ActionResult(
            {
                "AccountQuotas": [
                    {
                        "AccountQuotaName": "ManualSnapshots",
                        "Used": _manual(self.backend.database_snapshots),
                        "Max": quotas.get("rds_manual_snapshots", RDS_DEFAULT_MANUAL_SNAPSHOTS),
                    },
                    {
                        "AccountQuotaName": "ManualClusterSnapshots",
                        "Used": _manual(self.backend.cluster_snapshots),
                        "Max": quotas.get("rds_manual_cluster_snapshots", RDS_DEFAULT_MANUAL_SNAPSHOTS),
                    },
                ]
            }
        )

    RDSResponse.describe_account_attributes = describe_account_attributes
    RDSResponse._strongroom_faults = True
