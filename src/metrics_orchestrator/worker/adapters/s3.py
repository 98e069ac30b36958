"""The worker's object store on S3 (boto3), with S3's conditional writes (If-None-Match: *,
If-Match: ETag) for the run's claim and the current manifest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from metrics_orchestrator.domain.s3_locations import S3Location
from metrics_orchestrator.worker.ports import ObjectNotFound, WriteConflict

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})
# 412: the condition did not hold; 409: a concurrent conditional write to the same key won.
_CONFLICT = frozenset({"PreconditionFailed", "412", "ConditionalRequestConflict", "409"})


class S3ObjectStore:
    def __init__(self, client: S3Client) -> None:
        self._client = client

    def get(self, location: S3Location) -> bytes:
        return self.get_tagged(location)[0]

    def get_tagged(self, location: S3Location) -> tuple[bytes, str]:
        try:
            response = self._client.get_object(Bucket=location.bucket, Key=location.key)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise ObjectNotFound(location.uri) from exc
            raise
        return response["Body"].read(), response.get("ETag", "")

    def put(
        self,
        location: S3Location,
        body: bytes,
        content_type: str,
        *,
        if_absent: bool = False,
        if_tag: str | None = None,
    ) -> str:
        conditions: dict[str, Any] = {}
        if if_absent:
            conditions["IfNoneMatch"] = "*"
        if if_tag is not None:
            conditions["IfMatch"] = if_tag
        try:
            response = self._client.put_object(
                Bucket=location.bucket,
                Key=location.key,
                Body=body,
                ContentType=content_type,
                **conditions,
            )
        except ClientError as exc:
            code = _code(exc)
            # If-Match on an object that was deleted meanwhile: also someone else's doing.
            if code in _CONFLICT or (if_tag is not None and code in _NOT_FOUND):
                raise WriteConflict(location.uri) from exc
            raise
        return response.get("ETag", "")


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))
