"""Where an object is in S3: the `s3://` URIs and catalog paths of a run request (SPEC §4.3).
Standard library only."""

from __future__ import annotations

from dataclasses import dataclass


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
