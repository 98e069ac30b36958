"""The worker's object store on S3 (boto3)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from metrics_orchestrator.worker.ports import ObjectNotFound
from metrics_orchestrator.worker.request import S3Location

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


class S3ObjectStore:
    def __init__(self, client: S3Client) -> None:
        self._client = client

    def get(self, location: S3Location) -> bytes:
        try:
            response = self._client.get_object(Bucket=location.bucket, Key=location.key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _NOT_FOUND:
                raise ObjectNotFound(location.uri) from exc
            raise
        return response["Body"].read()

    def put(self, location: S3Location, body: bytes, content_type: str) -> None:
        self._client.put_object(
            Bucket=location.bucket, Key=location.key, Body=body, ContentType=content_type
        )
