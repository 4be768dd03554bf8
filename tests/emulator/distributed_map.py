"""Patch 15 of the emulator: the Step Functions Distributed Map, as AWS runs it.

moto 5.2.5 interprets a ``Map`` state with ``ProcessorConfig.Mode``
``DISTRIBUTED`` and an S3 ``ItemReader`` (JSON or CSV), but stops short of
AWS in six places, each put right here:

1. ``ProcessorConfig.ExecutionType`` ``EXPRESS``. AWS: "ExecutionType
   (Required) Specifies the execution type for the Map workflow as either
   STANDARD or EXPRESS" (state-map-distributed.html). moto's grammar only
   knows ``STANDARD`` and refuses the definition at ``CreateStateMachine``.
   Here EXPRESS children run as the same in-process workers as STANDARD ones
   (there is no difference to see in the emulator but the ARN of nothing).
2. ``ItemReader.ReaderConfig.InputType`` ``JSONL``. AWS (input-output-
   itemreader.html): the input type may be "CSV, JSON, JSONL, PARQUET,
   MANIFEST"; a JSON Lines file has one item per line. moto knows CSV and
   JSON only. ``MaxItems`` applies as to JSON.
3. Child workflow executions. AWS: "In Distributed mode, the Map state
   processes the items in the dataset in iterations called child workflow
   executions ... Each child workflow execution has its own, separate
   execution history from that of the parent workflow." moto runs the items
   but keeps nothing of them. Here every item is recorded on its Map Run as a
   child execution: input (after ``ItemSelector``), output, status
   (``SUCCEEDED``, ``FAILED``, ``ABORTED``), error, cause, start and stop
   dates, name (a UUID) and ARN ``arn:aws:states:<region>:<account>:execution:
   <state machine>/<Label or state name>:<name>`` (the Map Run's state machine
   ARN, as AWS forms it). ``ListExecutions`` with ``mapRunArn`` (AWS: "The
   Amazon Resource Name (ARN) of the Map Run that started the child workflow
   executions. If the mapRunArn field is specified, a list of all of the child
   workflow executions started by a Map Run is returned") answers from them,
   honouring ``statusFilter``; moto answers HTTP 500. Each child also keeps
   its own history, which ``GetExecutionHistory`` of its ARN returns
   (``ExecutionStarted``, its states' events, ``ExecutionSucceeded`` /
   ``ExecutionFailed`` / ``ExecutionAborted``); moto writes every child's
   events into one history of the Map Run that nothing returns.
4. The tolerated failure threshold (maprun-fail-threshold.html; paraphrased,
   the stored copy of that page was a translation): a Map Run fails with
   ``States.ExceedToleratedFailureThreshold`` when its failed or timed-out
   child executions exceed ``ToleratedFailureCount`` or
   ``ToleratedFailurePercentage`` (either of them when both are set; the
   percentage is failed items over all items, 0 to 100; the default is zero,
   so any failed child fails the run). moto parses
   ``ToleratedFailureCount`` / ``ToleratedFailurePercentage`` (and their
   ``Path`` forms) and ignores them: a failed item becomes ``null`` and the
   Map succeeds. An integer percentage (``50``), which moto's grammar refuses
   at ``CreateStateMachine``, is taken as ``50.0``.
5. ``ResultWriter`` to S3 (input-output-resultwriter.html). AWS writes, under
   ``<Prefix>/<map run id>/``, "manifest.json", "SUCCEEDED_n.json",
   "FAILED_n.json" and "PENDING_n.json": each result file a JSON array of
   ``{ExecutionArn, Input, InputDetails: {Included}, Name, Output,
   OutputDetails: {Included}, RedriveCount, RedriveStatus,
   RedriveStatusReason, StartDate, StateMachineArn, Status, StopDate}`` (Input
   and Output JSON strings; a FAILED row has ``Error`` and ``Cause`` instead
   of ``Output``), the manifest ``{DestinationBucket, MapRunArn, ResultFiles:
   {FAILED: [{Key, Size}], PENDING: [...], SUCCEEDED: [...]}}``; the Map
   state's output is then ``{MapRunArn, ResultWriterDetails: {Bucket, Key}}``
   (Key the manifest's). AWS also writes the results of a Map Run that
   failed. moto writes an empty manifest only (the results are dropped), and
   fails without ``Prefix``. Here: one ``SUCCEEDED_0.json`` and one
   ``FAILED_0.json`` (each written only when it has a row; no ``PENDING``:
   every child has finished when the writer runs), ``Prefix`` optional, and
   the files also written when the threshold fails the run.

6. ``ResultWriter`` ``Parameters`` paths (``"Bucket.$"``, ``"Prefix.$"``)
   are resolved against the Map state's input, as AWS resolves every
   reference path of a state's fields before its result exists (the
   ``ItemReader``'s ``Parameters`` likewise); the results of the child
   executions are what gets written, not where. moto resolves them against
   the array of child outputs, so ``"$.files.bucket"`` is not found there.

7. An ``ItemReader`` that cannot read its object (gone, no access) fails
   the Map state with ``States.ItemReaderFailed`` (AWS's error names:
   "States.ItemReaderFailed: Map state failed because it couldn't read from
   the item source specified in the ItemReader field"), the cause carrying
   S3's answer; moto fails it with ``States.Runtime``.

Not reproduced: ``DescribeExecution`` of a child ARN, paging of a child's
history (all its events come in one answer), redrive (rows say ``RedriveCount`` 0),
``ItemBatcher``, ``WriterConfig``, result files split at AWS's size limits,
``TIMED_OUT`` children, and EXPRESS's at-least-once semantics.

moto's own S3 calls (ItemReader, ResultWriter) go through the emulator's
front like any botocore client's, and are logged as client ``boto3``.
"""

from __future__ import annotations

import copy
import datetime
import json
import threading
import uuid
from typing import Any

_LOCK = threading.Lock()
_CURRENT = threading.local()  # the child's input, per worker thread
_CHILDREN = "_strongroom_children"  # attribute of a MapRunRecord: its child executions
_MAP_RUN = "_strongroom_map_run"  # attribute of an Environment / exception: the Map Run
_THRESHOLD_CAUSE = "The specified tolerance threshold was exceeded"


def patch_moto_distributed_map() -> None:
    """Patch 15: installs all of the above (once)."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_map import state_map

    if getattr(state_map.StateMap, "_strongroom_distributed_map", False):
        return
    state_map.StateMap._strongroom_distributed_map = True
    _accept_express()
    _jsonl_reader()
    _child_executions()
    _tolerance_and_writer()
    _result_files()
    _writer_parameters_from_input()
    _item_reader_failures()
    _list_child_executions()


def _now() -> datetime.datetime:
    return datetime.datetime.now(tz=datetime.timezone.utc)


def _compact(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def children_of(record: Any) -> list[dict[str, Any]]:
    """The child executions recorded on a Map Run, in item order."""
    with _LOCK:
        return sorted(getattr(record, _CHILDREN, []), key=lambda c: c["index"])


# -- 1. EXPRESS (and integer percentages) ----------------------------------------


def _accept_express() -> None:
    """Rewrites, before moto's grammar sees them, what it refuses and AWS takes:
    ``ExecutionType: EXPRESS`` (run as STANDARD) and an integer
    ``ToleratedFailurePercentage`` (``50``, which moto's grammar refuses,
    becomes ``50.0``)."""
    from moto.stepfunctions.parser.asl.parse import asl_parser

    parser = asl_parser.AmazonStateLanguageParser
    original = parser.parse

    def normalise(node: Any) -> None:
        if isinstance(node, dict):
            config = node.get("ProcessorConfig")
            if isinstance(config, dict) and config.get("ExecutionType") == "EXPRESS":
                config["ExecutionType"] = "STANDARD"
            percentage = node.get("ToleratedFailurePercentage")
            if isinstance(percentage, int) and not isinstance(percentage, bool):
                node["ToleratedFailurePercentage"] = float(percentage)
            for value in node.values():
                normalise(value)
        elif isinstance(node, list):
            for value in node:
                normalise(value)

    def parse(definition: str) -> Any:
        if "EXPRESS" in definition or "ToleratedFailurePercentage" in definition:
            try:
                tree = json.loads(definition)
            except ValueError:
                pass  # moto reports the syntax error
            else:
                normalise(tree)
                definition = json.dumps(tree)
        return original(definition)

    parser.parse = staticmethod(parse)


# -- 2. JSONL ------------------------------------------------------------------------


def _jsonl_reader() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader import item_reader_decl
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.eval.resource_output_transformer.transformer import (
        ResourceOutputTransformer,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader.reader_config import input_type

    values = input_type.InputTypeValue
    if "JSONL" not in values._member_map_:
        # Enum members cannot be added the ordinary way: this is what EnumMeta does.
        jsonl = object.__new__(values)
        jsonl._name_ = jsonl._value_ = "JSONL"
        values._member_map_["JSONL"] = jsonl
        values._value2member_map_["JSONL"] = jsonl
        values._member_names_.append("JSONL")
    jsonl = values._member_map_["JSONL"]

    class JsonLinesTransformer(ResourceOutputTransformer):
        def _eval_body(self, env: Any) -> None:
            reader_config = env.stack.pop()
            body: str = env.stack.pop()
            items = [json.loads(line) for line in body.splitlines() if line.strip()]
            env.stack.append(items[: reader_config["MaxItemsValue"]])

    original = item_reader_decl.resource_output_transformer_for

    def transformer_for(input_type: Any) -> Any:
        if input_type.input_type_value is jsonl:
            return JsonLinesTransformer()
        return original(input_type)

    item_reader_decl.resource_output_transformer_for = transformer_for


# -- 3. Child executions ---------------------------------------------------------------


def _child_executions() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor import (
        distributed_item_processor_worker as worker,
    )
    from moto.stepfunctions.parser.asl.eval.program_state import ProgramEnded, ProgramStopped

    cls = worker.DistributedItemProcessorWorker
    original_input = cls._eval_input
    original_job = cls._eval_job

    def _eval_input(self: Any, env_frame: Any) -> None:
        original_input(self, env_frame)
        # The child's input: the item after ItemSelector (or Parameters).
        _CURRENT.input = copy.deepcopy(env_frame.states.get_input())

    def _eval_job(self: Any, env: Any, job: Any) -> None:
        from moto.stepfunctions.parser.asl.eval.event.event_manager import EventManager

        record = self._map_run_record
        start = _now()
        _CURRENT.input = copy.deepcopy(job.job_input)
        # The child's own history (this job's frame only; moto shares one per Map Run).
        env.event_manager = EventManager()
        original_job(self, env, job)
        state = env.program_state()
        name = str(uuid.uuid4())
        child: dict[str, Any] = {
            "index": job.job_index,
            "name": name,
            "arn": record.map_state_machine_arn.replace(":stateMachine:", ":execution:", 1) + ":" + name,
            "input": _CURRENT.input,
            "start": start,
            "stop": _now(),
            "events": env.event_manager.get_event_history(),
        }
        if isinstance(state, ProgramEnded):
            child.update(status="SUCCEEDED", output=job.job_output)
        elif isinstance(state, ProgramStopped):
            child.update(status="ABORTED", error=state.error, cause=state.cause)
        else:
            details = getattr(state, "error", None) or {}
            child.update(status="FAILED", error=details.get("error"), cause=details.get("cause"))
        with _LOCK:
            record.__dict__.setdefault(_CHILDREN, []).append(child)

    cls._eval_input = _eval_input
    cls._eval_job = _eval_job


# -- 4. Tolerated failures, and the writer on failure -----------------------------------


def _tolerance_and_writer() -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map import state_map
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import (
        distributed_iteration_component as dic,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.tolerated_failure import (
        ToleratedFailureCountDecl,
        ToleratedFailurePercentageDecl,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    StateMap = state_map.StateMap
    Component = dic.DistributedIterationComponent

    original_props = StateMap.from_state_props

    def from_state_props(self: Any, state_props: Any) -> None:
        original_props(self, state_props)
        # Which thresholds the definition names: an absent one does not apply,
        # unless neither is named (then any failure fails the run).
        self.iteration_component._strongroom_thresholds = (
            state_props.get(ToleratedFailureCountDecl) is not None,
            state_props.get(ToleratedFailurePercentageDecl) is not None,
        )

    StateMap.from_state_props = from_state_props

    original_body = Component._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        # Remember the Map Run for the ResultWriter, which runs on the same env.
        setattr(env, _MAP_RUN, env.stack[-1].map_run_record)
        original_body(self, env)

    Component._eval_body = _eval_body

    original_run = Component._map_run

    def _map_run(self: Any, env: Any, eval_input: Any) -> None:
        original_run(self, env, eval_input)
        record = eval_input.map_run_record
        children = children_of(record)
        failed = sum(1 for c in children if c["status"] in ("FAILED", "TIMED_OUT"))
        count_named, percentage_named = getattr(self, "_strongroom_thresholds", (False, False))
        exceeded = False
        if count_named or not percentage_named:
            exceeded |= failed > int(eval_input.tolerated_failure_count)
        if percentage_named and children:
            exceeded |= 100.0 * failed / len(children) > float(eval_input.tolerated_failure_percentage)
        if exceeded:
            env.stack.pop()  # the outputs
            error = StatesErrorName(typ=StatesErrorNameType.StatesExceedToleratedFailureThreshold)
            failure = FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=error,
                    event_type=HistoryEventType.ExecutionFailed,
                    event_details=EventDetails(
                        executionFailedEventDetails=ExecutionFailedEventDetails(
                            error=error.error_name, cause=_THRESHOLD_CAUSE
                        )
                    ),
                )
            )
            setattr(failure, _MAP_RUN, record)
            raise failure

    Component._map_run = _map_run

    original_execution = StateMap._eval_execution

    def _eval_execution(self: Any, env: Any) -> None:
        try:
            original_execution(self, env)
        except FailureEventException as failure:
            if self.result_writer is not None and getattr(failure, _MAP_RUN, None) is not None:
                env.stack.append(None)  # in place of the results, which the writer takes
                self.result_writer.eval(env)
                env.stack.pop()  # the writer's output: the state fails anyway
            raise

    StateMap._eval_execution = _eval_execution


# -- 5. Result files ---------------------------------------------------------------------


def _iso(moment: datetime.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def result_row(record: Any, child: dict[str, Any]) -> dict[str, Any]:
    """A child execution as AWS writes it in SUCCEEDED_n.json / FAILED_n.json."""
    status = child["status"]
    row: dict[str, Any] = {
        "ExecutionArn": child["arn"],
        "Input": _compact(child["input"]),
        "InputDetails": {"Included": True},
        "Name": child["name"],
    }
    if status == "SUCCEEDED":
        row["Output"] = _compact(child["output"])
        row["OutputDetails"] = {"Included": True}
        redrive = ("NOT_REDRIVABLE", "Execution is SUCCEEDED and cannot be redriven")
    else:
        redrive = ("REDRIVABLE_BY_MAP_RUN", "")
    row.update(
        RedriveCount=0,
        RedriveStatus=redrive[0],
        RedriveStatusReason=redrive[1],
        StartDate=_iso(child["start"]),
        StateMachineArn=record.map_state_machine_arn,
        Status=status,
        StopDate=_iso(child["stop"]),
    )
    if status != "SUCCEEDED":
        if child.get("error") is not None:
            row["Error"] = child["error"]
        if child.get("cause") is not None:
            row["Cause"] = child["cause"]
    return row


def _result_files() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer.resource_eval import (
        resource_eval_s3,
    )

    S3 = resource_eval_s3.ResourceEvalS3

    def _handle_put_object(env: Any, resource_runtime_part: Any, state_credentials: Any) -> None:
        parameters = env.stack.pop()
        env.stack.pop()  # the Map's results: written from the child executions instead
        s3 = S3._get_s3_client(resource_runtime_part=resource_runtime_part, state_credentials=state_credentials)
        record = getattr(env, _MAP_RUN, None) or env.map_run_record_pool_manager.get_all()[-1]
        run_id = record.map_run_arn.split(":")[-1]
        bucket = parameters["Bucket"]
        prefix = parameters.get("Prefix") or ""
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        children = children_of(record)
        files: dict[str, list[dict[str, Any]]] = {"FAILED": [], "PENDING": [], "SUCCEEDED": []}
        for status in ("SUCCEEDED", "FAILED"):
            rows = [
                result_row(record, c) for c in children if (c["status"] == "SUCCEEDED") == (status == "SUCCEEDED")
            ]
            if rows:
                key = f"{prefix}{run_id}/{status}_0.json"
                body = json.dumps(rows).encode()
                s3.put_object(Bucket=bucket, Key=key, Body=body)
                files[status].append({"Key": key, "Size": len(body)})
        manifest = {"DestinationBucket": bucket, "MapRunArn": record.map_run_arn, "ResultFiles": files}
        key = f"{prefix}{run_id}/manifest.json"
        s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(manifest, indent=2).encode())
        env.stack.append({"MapRunArn": record.map_run_arn, "ResultWriterDetails": {"Bucket": bucket, "Key": key}})

    S3._handle_put_object = staticmethod(_handle_put_object)


# -- 6. ResultWriter parameters from the state's input --------------------------------


def _writer_parameters_from_input() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.result_writer import result_writer_decl

    def _eval_body(self: Any, env: Any) -> None:
        results = env.stack.pop()
        env.stack.append(copy.deepcopy(env.states.get_input()))
        self.parargs.eval(env=env)
        parameters = env.stack.pop()
        env.stack.pop()  # the state's input
        env.stack.append(results)
        env.stack.append(parameters)
        self.resource_eval.eval_resource(env=env)

    result_writer_decl.ResultWriter._eval_body = _eval_body


# -- 7. States.ItemReaderFailed -----------------------------------------------------------


def _item_reader_failures() -> None:
    from moto.stepfunctions.parser.api import ExecutionFailedEventDetails, HistoryEventType
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import StatesErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.item_reader import item_reader_decl
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    original = item_reader_decl.ItemReader._eval_body

    def _eval_body(self: Any, env: Any) -> None:
        try:
            original(self, env)
        except FailureEventException:
            raise
        except Exception as e:  # noqa: BLE001 - any failure to read the items
            error = StatesErrorName(typ=StatesErrorNameType.StatesItemReaderFailed)
            raise FailureEventException(
                FailureEvent(
                    env=env,
                    error_name=error,
                    event_type=HistoryEventType.TaskFailed,
                    event_details=EventDetails(
                        executionFailedEventDetails=ExecutionFailedEventDetails(error=error.error_name, cause=str(e))
                    ),
                )
            ) from e

    item_reader_decl.ItemReader._eval_body = _eval_body


# -- 8. ListExecutions(mapRunArn) ---------------------------------------------------------


def _list_child_executions() -> None:
    from moto.core.responses import ActionResult
    from moto.stepfunctions.exceptions import ResourceNotFound
    from moto.stepfunctions.responses import StepFunctionResponse

    original = StepFunctionResponse.list_executions

    def list_executions(self: Any) -> Any:
        map_run_arn = self._get_param("mapRunArn")
        if not map_run_arn:
            return original(self)
        status_filter = self._get_param("statusFilter")
        for execution in self.stepfunction_backend._get_executions():
            worker = getattr(execution, "exec_worker", None)
            record = worker.env.map_run_record_pool_manager.get(map_run_arn) if worker else None
            if record is None:
                continue
            return ActionResult(
                {
                    "executions": [
                        {
                            "executionArn": c["arn"],
                            "stateMachineArn": record.map_state_machine_arn,
                            "name": c["name"],
                            "status": c["status"],
                            "startDate": c["start"],
                            "stopDate": c["stop"],
                            "mapRunArn": map_run_arn,
                        }
                        for c in children_of(record)
                        if not status_filter or c["status"] == status_filter
                    ]
                }
            )
        raise ResourceNotFound(map_run_arn)

    StepFunctionResponse.list_executions = list_executions

    original_history = StepFunctionResponse.get_execution_history

    def get_execution_history(self: Any) -> Any:
        arn = self._get_param("executionArn") or ""
        child = _find_child(self.stepfunction_backend, arn)
        if child is None:
            return original_history(self)
        return ActionResult({"events": child_history(child)})

    StepFunctionResponse.get_execution_history = get_execution_history


def _find_child(backend: Any, arn: str) -> dict[str, Any] | None:
    """The child execution whose ARN is `arn`, in any Map Run of any execution."""
    if ":execution:" not in arn or arn.count(":") < 7:
        return None  # not a child's ARN (a child's names its Map Run's label)
    for execution in backend._get_executions():
        worker = getattr(execution, "exec_worker", None)
        if worker is None:
            continue
        for record in worker.env.map_run_record_pool_manager.get_all():
            for child in children_of(record):
                if child["arn"] == arn:
                    return child
    return None


def child_history(child: dict[str, Any]) -> list[dict[str, Any]]:
    """A child's history as AWS gives it: started, its states, its end."""
    states = [dict(e) for e in child.get("events", [])]
    events: list[dict[str, Any]] = [{
        "timestamp": child["start"], "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
        "executionStartedEventDetails": {"input": _compact(child["input"]), "inputDetails": {"truncated": False}},
    }]
    for e in states:
        e["id"] = len(events) + 1
        e["previousEventId"] = len(events)
        events.append(e)
    end = {"SUCCEEDED": "ExecutionSucceeded", "FAILED": "ExecutionFailed", "ABORTED": "ExecutionAborted"}[child["status"]]
    last: dict[str, Any] = {"timestamp": child["stop"], "type": end, "id": len(events) + 1, "previousEventId": len(events)}
    if end == "ExecutionSucceeded":
        last["executionSucceededEventDetails"] = {"output": _compact(child.get("output")), "outputDetails": {"truncated": False}}
    events.append(last)
    return events
