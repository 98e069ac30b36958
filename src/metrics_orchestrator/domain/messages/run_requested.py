"""The `metric_run_requested` message (SPEC §4.3): the contract workers already speak.

The control plane builds it (`build_run_request`, and `build_retry_request` for a retry's new
identity); workers read it with `read_message`, which answers any body whatsoever (the
worker's version of SPEC §5.8) with one of: `Unanswerable` (no usable run id: logged and
deleted), `InvalidRequest` (a run request that cannot be executed: answered with a FAILURE
naming every problem, `retryable: false`, so the control plane records it instead of waiting
for a timeout) or a valid `RunRequest`.

Bodies are decoded by the domain's bounded decoder (size, UTF-8, depth, non-finite numbers,
integer ranges). A body nested deeper than its limit still names its run: the too-deep values
are cut out (replaced by null) to read the run id, and the depth is the request's problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from metrics_orchestrator.domain.decoding import (
    MAX_BODY_BYTES,
    MAX_JSON_DEPTH,
    UndecodableEvent,
    as_bytes,
    nesting_depth,
    read_json_object,
    unstorable_values,
)
from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.expressions import Expression, parse_expression
from metrics_orchestrator.domain.fields import MAX_LABEL_LENGTH
from metrics_orchestrator.domain.identifiers import identifier_problem
from metrics_orchestrator.domain.messages.shared import utc_text
from metrics_orchestrator.domain.metric_outputs import METRIC_OUTPUT_KIND, output_catalog_entry
from metrics_orchestrator.domain.model import DatasetUpdate, MetricDependency
from metrics_orchestrator.domain.s3_locations import S3Location, locate, parse_s3_uri

RUN_REQUESTED = "metric_run_requested"
# `kind` of a catalog entry of projections; an entry without `kind` is one (SPEC §4.3, §8)
PROJECTION_KIND = "projection"
_KINDS = (PROJECTION_KIND, METRIC_OUTPUT_KIND)
SCHEMA_VERSION = "1"
INVALID_REQUEST = "INVALID_REQUEST"
# Room for the problems in an error text of 2,000 characters (outputs.MAX_PUBLISHED_TEXT),
# leaving space for "... and N more problems".
_PROBLEMS_BUDGET = 1_900
# The longest key the worker writes under output.basePath: `runs/{uuid}-{attempt}.claim`.
_LONGEST_OUTPUT_SUFFIX = len("runs/") + 36 + 1 + 19 + len(".claim")
# A JSON string (escapes included) or a bracket, as the domain's depth scan reads them.
_STRING_OR_BRACKET = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


def format_timestamp(moment: datetime) -> str:
    return utc_text(moment, timespec="seconds")


def build_run_request(
    *,
    run_id: UUID,
    attempt: int,
    requested_at: datetime,
    metric_code: str,
    expression_type: str,
    expression_json: Mapping[str, Any],
    dependencies: Sequence[MetricDependency],
    consumed: Mapping[str, DatasetUpdate],
    output_base_path: str,
) -> dict[str, Any]:
    """The complete payload stored with a queued run and published as is."""
    missing = {d.dataset_id for d in dependencies} - consumed.keys()
    if missing:
        raise ValueError(f"run request lacks updates for datasets {sorted(missing)}")
    return {
        "type": RUN_REQUESTED,
        "schema": SCHEMA_VERSION,
        "runId": str(run_id),
        "attempt": attempt,
        "requestedAt": format_timestamp(requested_at),
        "metricCode": metric_code,
        "expressionType": expression_type,
        "expressionJson": dict(expression_json),
        "inputs": [{"datasetId": d.dataset_id, "seriesCode": d.series_code} for d in dependencies],
        "catalog": {
            "datasets": {
                dataset_id: {
                    "manifestPath": u.version_manifest_path,
                    "projectionsPath": u.projections_path,
                    "bucket": u.bucket,
                    "updateId": str(u.id),
                    # a metric's output also says so, and which metric and run wrote it (§8)
                    **output_catalog_entry(u),
                }
                for dataset_id, u in consumed.items()
            }
        },
        "output": {"basePath": output_base_path},
    }


def build_retry_request(
    original: Mapping[str, Any], *, run_id: UUID, attempt: int, requested_at: datetime
) -> dict[str, Any]:
    """A retry's request (SPEC §5.6): the original's inputs and catalog, the new run's identity."""
    return {
        **original,
        "runId": str(run_id),
        "attempt": attempt,
        "requestedAt": format_timestamp(requested_at),
    }


def requested_metric_code(payload: Mapping[str, Any] | None) -> str:
    """The `metricCode` a stored request carries; "" when it has none (never publishable).

    The stored request is the fact: a catalog sync may rename the metric after it was built,
    and the worker echoes the code it received (SPEC §4.2)."""
    code = payload.get("metricCode") if payload is not None else None
    return code if isinstance(code, str) else ""


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One entry of the request's `catalog.datasets`: the update this run consumes.

    A dataset's projections (`kind` "projection", also when the entry names no kind), or
    another metric's output (`kind` "metric_output", SPEC §8): then `manifest` is that run's
    output manifest, `projections` its `basePath`, and `metric_code` / `run_id` say which
    metric and run wrote it (None when the entry does not say)."""

    dataset_id: str
    bucket: str
    manifest: S3Location
    projections: S3Location
    kind: str = PROJECTION_KIND
    metric_code: str | None = None
    run_id: str | None = None

    @property
    def is_metric_output(self) -> bool:
        return self.kind == METRIC_OUTPUT_KIND


@dataclass(frozen=True, slots=True)
class RunRequest:
    run_id: str
    attempt: int
    metric_code: str
    expression: Expression
    # series code -> the dataset that provides it for this metric
    series_datasets: Mapping[str, str]
    datasets: Mapping[str, DatasetVersion]
    output_base: S3Location
    # the catalog exactly as received, copied into the output manifest (`inputs`)
    catalog: Mapping[str, Any]

    @property
    def key(self) -> tuple[str, int]:
        return (self.run_id, self.attempt)

    def series_of(self, dataset_id: str) -> tuple[str, ...]:
        return tuple(code for code, ds in self.series_datasets.items() if ds == dataset_id)


@dataclass(frozen=True, slots=True)
class InvalidRequest:
    """A run request that names its run but cannot be executed."""

    run_id: str
    attempt: int
    metric_code: str | None
    problems: tuple[str, ...]

    @property
    def error(self) -> str:
        """Every problem, as many as fit a published text (the count of the others said)."""
        shown: list[str] = []
        used = len(INVALID_REQUEST) + 2
        for problem in self.problems:
            used += len(problem) + 2
            if used > _PROBLEMS_BUDGET and shown:
                break
            shown.append(problem)
        more = len(self.problems) - len(shown)
        tail = f"; ... and {more:,} more problems" if more else ""
        return f"{INVALID_REQUEST}: " + "; ".join(shown) + tail


@dataclass(frozen=True, slots=True)
class Unanswerable:
    """A body with no usable run id: nobody to answer, so it is logged and deleted."""

    reason: str


def read_message(body: str | bytes) -> RunRequest | InvalidRequest | Unanswerable:
    """What a queue message body (raw or SNS-enveloped) asks of the worker. Never raises."""
    found = read_request_document(body)
    if isinstance(found, Unanswerable):
        return found
    return _Reader(found.document, found.run_id, list(found.problems)).read()


@dataclass(frozen=True, slots=True)
class RequestDocument:
    """A body that is a run request naming its run, before its fields are read."""

    document: dict[str, Any]
    run_id: str
    # problems found decoding it (a body nested too deep, its deep values cut out)
    problems: tuple[str, ...]


def read_request_document(body: str | bytes) -> RequestDocument | Unanswerable:
    """The run request in a body (raw or SNS-enveloped) with its run id; never raises."""
    document, problems = _decode(as_bytes(body), "body")
    if isinstance(document, Unanswerable):
        return document
    if document.get("Type") == "Notification":
        inner = document.get("Message")
        if not isinstance(inner, str):
            return Unanswerable("an SNS notification without a Message string")
        document, problems = _decode(as_bytes(inner), "Message")
        if isinstance(document, Unanswerable):
            return document
    kind = document.get("type", document.get("event"))
    if kind != RUN_REQUESTED:
        return Unanswerable("; ".join([*problems, f"not a run request (type {_shown(kind)})"]))
    run_id = document.get("runId")
    if not isinstance(run_id, str) or not _is_uuid(run_id):
        reason = f"a run request without a usable runId (got {_shown(run_id)})"
        return Unanswerable("; ".join([*problems, reason]))
    return RequestDocument(document, run_id, tuple(problems))


def _decode(raw: bytes, what: str) -> tuple[dict[str, Any] | Unanswerable, list[str]]:
    """The JSON object in `raw` and the problems found decoding it, or why there is none."""
    try:
        return read_json_object(raw, what=what), []
    except UndecodableEvent as exc:
        if len(raw) > MAX_BODY_BYTES or nesting_depth(raw) <= MAX_JSON_DEPTH:
            return Unanswerable(exc.reason), []
        try:
            return read_json_object(_pruned(raw, MAX_JSON_DEPTH), what=what), [exc.reason]
        except UndecodableEvent:  # not JSON or not an object either way: the depth says why
            return Unanswerable(exc.reason), []


def _pruned(raw: bytes, limit: int) -> bytes:
    """`raw` with every value nested deeper than `limit` levels replaced by null."""
    kept: list[bytes] = []
    depth = 0
    resume = 0
    for match in _STRING_OR_BRACKET.finditer(raw):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth == limit + 1:
                kept.append(raw[resume : match.start()])
        elif token in (b"]", b"}"):
            if depth == limit + 1:
                kept.append(b"null")
                resume = match.end()
            depth -= 1
    if depth <= limit:
        kept.append(raw[resume:])
    return b"".join(kept)


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return True


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class _Reader:
    def __init__(self, document: Mapping[str, Any], run_id: str, problems: list[str]) -> None:
        self.document = document
        self.run_id = run_id
        # Values no event may carry (non-finite numbers, integers out of range, NUL, ...),
        # named by their JSON path: a request holding one is refused, like the control plane's.
        self.problems = [*problems, *unstorable_values(dict(document))]

    def read(self) -> RunRequest | InvalidRequest:
        attempt = self._attempt()
        metric_code = self.document.get("metricCode")
        problem = identifier_problem(metric_code)
        # Only a valid code is echoed: the control plane refuses a completed event holding
        # another, and the run would wait for its timeout instead of failing now.
        code = metric_code if problem is None and isinstance(metric_code, str) else None
        if problem is not None:
            self.problems.append(f"metricCode: {problem}")
        expression = self._expression()
        series_datasets = self._inputs()
        datasets = self._catalog()
        output = self._output()
        if expression is not None and series_datasets is not None:
            self._check_coverage(expression, series_datasets, datasets)
        if (
            self.problems
            or code is None
            or expression is None
            or series_datasets is None
            or output is None
        ):
            return InvalidRequest(self.run_id, attempt, code, tuple(self.problems))
        catalog = self.document.get("catalog")
        return RunRequest(
            run_id=self.run_id,
            attempt=attempt,
            metric_code=code,
            expression=expression,
            series_datasets=series_datasets,
            datasets=datasets,
            output_base=output,
            catalog=catalog if isinstance(catalog, Mapping) else {},
        )

    def _attempt(self) -> int:
        value = self.document.get("attempt", 1)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        self.problems.append("attempt: must be an integer >= 1")
        return 1

    def _expression(self) -> Expression | None:
        try:
            return parse_expression(
                self.document.get("expressionType"),
                self.document.get("expressionJson"),
                path="expressionJson",
            )
        except ValidationError as exc:
            self.problems += [str(error) for error in exc.errors]
            return None

    def _inputs(self) -> dict[str, str] | None:
        inputs = self.document.get("inputs")
        if not isinstance(inputs, list):
            self.problems.append("inputs: must be a list")
            return None
        found: dict[str, str] = {}
        for index, item in enumerate(inputs):
            dataset = item.get("datasetId") if isinstance(item, Mapping) else None
            series = item.get("seriesCode") if isinstance(item, Mapping) else None
            if not isinstance(dataset, str) or not isinstance(series, str):
                self.problems.append(f"inputs[{index}]: must have string datasetId and seriesCode")
                continue
            found[series] = dataset
        return found

    def _catalog(self) -> dict[str, DatasetVersion]:
        catalog = self.document.get("catalog")
        entries = catalog.get("datasets") if isinstance(catalog, Mapping) else None
        if not isinstance(entries, Mapping):
            self.problems.append("catalog.datasets: must be an object")
            return {}
        datasets = {}
        for dataset_id, entry in entries.items():
            version = self._dataset_version(str(dataset_id), entry)
            if version is not None:
                datasets[version.dataset_id] = version
        return datasets

    def _dataset_version(self, dataset_id: str, entry: object) -> DatasetVersion | None:
        path = f"catalog.datasets.{dataset_id}"
        if not isinstance(entry, Mapping):
            self.problems.append(f"{path}: must be an object")
            return None
        fields = {name: entry.get(name) for name in ("bucket", "manifestPath", "projectionsPath")}
        bad = [name for name, value in fields.items() if not isinstance(value, str) or not value]
        self.problems += [f"{path}.{name}: must be a non-empty string" for name in bad]
        kind = self._kind(entry, path)
        origin = self._origin(entry, path) if kind == METRIC_OUTPUT_KIND else (None, None)
        if bad or kind is None or origin is None:
            return None
        bucket = str(fields["bucket"])
        try:
            return DatasetVersion(
                dataset_id=dataset_id,
                bucket=bucket,
                manifest=locate(str(fields["manifestPath"]), bucket),
                projections=locate(str(fields["projectionsPath"]), bucket),
                kind=kind,
                metric_code=origin[0],
                run_id=origin[1],
            )
        except ValueError as exc:
            self.problems.append(f"{path}: {exc}")
            return None

    def _kind(self, entry: Mapping[str, Any], path: str) -> str | None:
        """The entry's `kind`; an entry without one is projections (every request before §8)."""
        kind = entry.get("kind", PROJECTION_KIND)
        if kind in _KINDS:
            return str(kind)
        # A kind this worker cannot read: refused now rather than read as something it is not.
        self.problems.append(
            f"{path}.kind: must be one of {', '.join(_KINDS)} (got {_shown(kind)})"
        )
        return None

    def _origin(self, entry: Mapping[str, Any], path: str) -> tuple[str | None, str | None] | None:
        """A metric output's `metricCode` and `runId` (each optional; checked when given)."""
        code, run_id = entry.get("metricCode"), entry.get("runId")
        problems = []
        if code is not None and (problem := identifier_problem(code)) is not None:
            problems.append(f"{path}.metricCode: {problem}")
        if run_id is not None and not (isinstance(run_id, str) and _is_uuid(run_id)):
            problems.append(f"{path}.runId: must be a UUID (got {_shown(run_id)})")
        self.problems += problems
        if problems:
            return None
        return (
            code if isinstance(code, str) else None,
            run_id if isinstance(run_id, str) else None,
        )

    def _output(self) -> S3Location | None:
        output = self.document.get("output")
        base = output.get("basePath") if isinstance(output, Mapping) else None
        if not isinstance(base, str):
            self.problems.append("output.basePath: must be an s3:// URI")
            return None
        try:
            location = parse_s3_uri(base)
        except ValueError as exc:
            self.problems.append(f"output.basePath: {exc}")
            return None
        if location.key and not location.key.endswith("/"):
            location = S3Location(location.bucket, f"{location.key}/")
        # Every output URI (the reported outputManifest among them) must stay a valid S3 key
        # and within what the control plane accepts.
        longest = MAX_LABEL_LENGTH - _LONGEST_OUTPUT_SUFFIX
        if len(location.uri) > longest:
            self.problems.append(
                f"output.basePath: must be at most {longest} characters (got {len(location.uri):,})"
            )
            return None
        return location

    def _check_coverage(
        self,
        expression: Expression,
        series_datasets: Mapping[str, str],
        datasets: Mapping[str, DatasetVersion],
    ) -> None:
        for code in expression.series_codes():
            dataset = series_datasets.get(code)
            if dataset is None:
                self.problems.append(f"inputs: no entry for series {code}")
            elif dataset not in datasets:
                self.problems.append(f"catalog.datasets: no update for dataset {dataset}")
        # `{"metric_code": X}` means X's output (SPEC §8): never a dataset's projections.
        for code in expression.metric_codes():
            found = datasets.get(series_datasets.get(code, ""))
            if found is not None and not found.is_metric_output:
                self.problems.append(
                    f"catalog.datasets.{found.dataset_id}: metric {code}'s output must be "
                    f'an entry of kind "{METRIC_OUTPUT_KIND}" (got "{found.kind}")'
                )
