"""The control plane's S3 reader: run output manifests and their Parquet data (boto3).

Parquet is decoded with polars, which comes with the `[worker]` extra; it is imported only when
an output is read, so a control plane installed without it still starts, and reading an output
then reports what is missing instead of failing at import.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from metrics_orchestrator.application.outputs import (
    OutputObjectMissing,
    OutputPoint,
    OutputUnavailable,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})


class S3OutputReader:
    """`client` is built on first use: most processes (CLI commands, tests) never read one."""

    def __init__(self, client: Callable[[], S3Client]) -> None:
        self._factory = client
        self._client: S3Client | None = None
        self._lock = threading.Lock()

    def _s3(self) -> S3Client:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def read_json(self, uri: str) -> dict[str, Any]:
        raw = self._get(uri)
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise OutputUnavailable(f"{uri} is not JSON: {exc}") from exc
        if not isinstance(document, dict):
            raise OutputUnavailable(f"{uri} is not a JSON object")
        return document

    def read_points(self, uri: str) -> list[OutputPoint]:
        raw = self._get(uri)
        try:
            import polars as pl
        except ImportError as exc:
            raise OutputUnavailable(
                "reading Parquet outputs needs polars: pip install 'metrics-orchestrator[worker]'"
            ) from exc
        try:
            frame = pl.read_parquet(io.BytesIO(raw), columns=["obs_time", "value"])
        except Exception as exc:  # polars raises several families for a bad file
            raise OutputUnavailable(f"{uri} is not a readable output file: {exc}") from exc
        return [OutputPoint(t, v) for t, v in frame.iter_rows()]

    def _get(self, uri: str) -> bytes:
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            return self._s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in _NOT_FOUND:
                raise OutputObjectMissing(uri) from exc
            raise OutputUnavailable(f"S3 refused to read {uri}: {code or exc}") from exc
        except BotoCoreError as exc:
            raise OutputUnavailable(f"S3 could not be reached to read {uri}: {exc}") from exc
