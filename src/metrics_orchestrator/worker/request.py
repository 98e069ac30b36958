"""The `metric_run_requested` message (SPEC §4.3) as the worker reads it.

`read_message` tells three cases apart: not a run request at all (dropped), a run request that
cannot be executed (answered with a FAILURE naming every problem, so the control plane records
it instead of waiting for a timeout), and a valid request.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from metrics_orchestrator.domain.errors import ValidationError
from metrics_orchestrator.domain.expressions import Expression, parse_expression

RUN_REQUESTED = "metric_run_requested"
INVALID_REQUEST = "INVALID_REQUEST"


@dataclass(frozen=True, slots=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def child(self, relative: str) -> S3Location:
        prefix = self.key if not self.key or self.key.endswith("/") else f"{self.key}/"
        return S3Location(self.bucket, f"{prefix}{relative.lstrip('/')}")


def parse_s3_uri(uri: str) -> S3Location:
    """`s3://bucket/key` -> location; ValueError otherwise."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an s3:// URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {uri!r}")
    return S3Location(bucket, key)


def locate(path: str, default_bucket: str) -> S3Location:
    """A catalog path: a full `s3://` URI, or a key in the dataset's bucket."""
    if path.startswith("s3://"):
        return parse_s3_uri(path)
    return S3Location(default_bucket, path.lstrip("/"))


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    """One entry of the request's `catalog.datasets`: the update this run consumes."""

    dataset_id: str
    bucket: str
    manifest: S3Location
    projections: S3Location


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
        return f"{INVALID_REQUEST}: " + "; ".join(self.problems)


def read_message(body: str) -> RunRequest | InvalidRequest | None:
    """The run request in a queue message body, raw or SNS-enveloped; None if it is not one."""
    document = _json_object(body)
    if document is not None and document.get("Type") == "Notification":
        inner = document.get("Message")
        document = _json_object(inner) if isinstance(inner, str) else None
    if document is None or document.get("type", document.get("event")) != RUN_REQUESTED:
        return None
    run_id = document.get("runId")
    if not isinstance(run_id, str) or not run_id:
        return None
    return _Reader(document, run_id).read()


class _Reader:
    def __init__(self, document: Mapping[str, Any], run_id: str) -> None:
        self.document = document
        self.run_id = run_id
        self.problems: list[str] = []

    def read(self) -> RunRequest | InvalidRequest:
        attempt = self._attempt()
        metric_code = self.document.get("metricCode")
        code = metric_code if isinstance(metric_code, str) and metric_code else None
        if code is None:
            self.problems.append("metricCode: must be a non-empty string")
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
        if bad:
            self.problems += [f"{path}.{name}: must be a non-empty string" for name in bad]
            return None
        bucket = str(fields["bucket"])
        try:
            return DatasetVersion(
                dataset_id=dataset_id,
                bucket=bucket,
                manifest=locate(str(fields["manifestPath"]), bucket),
                projections=locate(str(fields["projectionsPath"]), bucket),
            )
        except ValueError as exc:
            self.problems.append(f"{path}: {exc}")
            return None

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


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
