"""A generated, deterministic sample world in the SPEC §4.4 layout, for demos and local runs.

For every dataset of a catalog document (the bundled ones, or any in the same shape) it writes
one version: `{projectionsPath}/{SERIES}/year=YYYY/month=MM/data.parquet` for each series and
month, and the version manifest; and it returns the `projection_update` events announcing
them. Daily series have about two years of business days (weekends and a fixed set of
Argentine public holidays are gaps, and roughly one point in 250 has a missing value); series
whose frequency is `monthly` (or whose code ends in `_M`) have one point on the first of each
month. Values are random walks seeded by the series code, so the same catalog always gives the
same numbers; only the version id (by default from the time of writing) changes.
"""

from __future__ import annotations

import io
import json
import random
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import polars as pl

from metrics_orchestrator.domain.s3_locations import S3Location
from metrics_orchestrator.worker.adapters.s3 import S3ObjectStore
from metrics_orchestrator.worker.outputs import JSON_TYPE, PARQUET_TYPE

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_BUCKET = "ingestor-datasets"
LAST_DAY = date(2025, 11, 10)
DAYS = 730
MISSING_ONE_IN = 250

# (month, day) holidays observed every year; enough to make the gaps look like the real ones.
HOLIDAYS = frozenset(
    {(1, 1), (3, 24), (4, 2), (5, 1), (5, 25), (6, 20), (7, 9), (8, 17), (12, 8), (12, 25)}
)

# Typical magnitude and daily volatility by code fragment (first match wins).
_LEVELS: Sequence[tuple[str, float, float]] = (
    ("RESERV", 30_000.0, 0.004),
    ("TC_", 900.0, 0.003),
    ("FX_PARALLEL", 1_150.0, 0.008),
    ("FX_", 900.0, 0.003),
    ("BASE_MONETARIA", 20_000.0, 0.006),
    ("LELIQ", 8_000.0, 0.010),
    ("PASES", 5_000.0, 0.012),
    ("CPI", 5_000.0, 0.030),
    ("WAGES", 4_500.0, 0.028),
)


@dataclass(frozen=True, slots=True)
class SampleSeries:
    code: str
    monthly: bool


def write_sample_world(
    s3: S3Client,
    catalog: Mapping[str, Any],
    *,
    version: str | None = None,
    now: datetime | None = None,
    last_day: date = LAST_DAY,
) -> list[dict[str, Any]]:
    """Write one version of every dataset of `catalog`; the projection updates announcing them.

    Buckets that do not exist are created (a local emulator starts empty).
    """
    moment = now or datetime.now(UTC)
    version_id = version or f"v{moment.astimezone(UTC):%Y%m%d_%H%M%S}_sample"
    store = S3ObjectStore(s3)
    frequencies = _frequencies(catalog)
    updates = []
    for dataset in catalog.get("datasets", []):
        bucket = str(dataset.get("bucket") or DEFAULT_BUCKET)
        _ensure_bucket(s3, bucket)
        series = [
            SampleSeries(code, _is_monthly(code, frequencies.get(code)))
            for code in dataset.get("series", [])
        ]
        updates.append(
            _write_dataset(store, str(dataset["id"]), bucket, series, version_id, moment, last_day)
        )
    return updates


def sample_points(series: SampleSeries, last_day: date = LAST_DAY) -> pl.DataFrame:
    """The points of one sample series: (obs_time UTC, value), deterministic by code."""
    rng = random.Random(zlib.crc32(series.code.encode()))
    level, volatility = _level(series.code)
    days = _monthly_days(last_day) if series.monthly else _business_days(last_day)
    times, values = [], []
    value = level * (0.8 + 0.4 * rng.random())
    drift = volatility / 10
    for day in days:
        value *= 1 + rng.gauss(drift, volatility)
        times.append(datetime(day.year, day.month, day.day, tzinfo=UTC))
        values.append(None if rng.randrange(MISSING_ONE_IN) == 0 else round(value, 4))
    return pl.DataFrame(
        {"obs_time": times, "value": values},
        schema={"obs_time": pl.Datetime("us", "UTC"), "value": pl.Float64},
    )


def _write_dataset(
    store: S3ObjectStore,
    dataset_id: str,
    bucket: str,
    series: Iterable[SampleSeries],
    version_id: str,
    moment: datetime,
    last_day: date,
) -> dict[str, Any]:
    projections = f"datasets/{dataset_id}/projections"
    manifest_key = f"datasets/{dataset_id}/versions/{version_id}/manifest.json"
    files: list[str] = []
    partitions: set[str] = set()
    first: datetime | None = None
    last: datetime | None = None
    count = 0
    codes = []
    for one in series:
        codes.append(one.code)
        points = sample_points(one, last_day).with_columns(
            pl.lit(one.code).alias("internal_series_code")
        )
        count += points.height
        earliest, latest = points["obs_time"].min(), points["obs_time"].max()
        if isinstance(earliest, datetime) and isinstance(latest, datetime):
            first = earliest if first is None else min(first, earliest)
            last = latest if last is None else max(last, latest)
        by_month = points.with_columns(
            pl.col("obs_time").dt.strftime("year=%Y/month=%m").alias("_partition")
        )
        for (partition,), part in by_month.group_by("_partition", maintain_order=True):
            relative = f"{one.code}/{partition}/data.parquet"
            files.append(relative)
            partitions.add(str(partition))
            buffer = io.BytesIO()
            part.drop("_partition").write_parquet(buffer)
            store.put(
                S3Location(bucket, f"{projections}/{relative}"), buffer.getvalue(), PARQUET_TYPE
            )
    manifest = {
        "version_id": version_id,
        "dataset_id": dataset_id,
        "created_at": _iso(moment),
        "series_codes": codes,
        "parquet_files": files,
        "partitions": sorted(partitions),
        "date_range": {
            "min_obs_time": _iso(first) if first else None,
            "max_obs_time": _iso(last) if last else None,
        },
        "data_points_count": count,
        "partition_strategy": "series_year_month",
    }
    store.put(S3Location(bucket, manifest_key), json.dumps(manifest).encode(), JSON_TYPE)
    return {
        "event": "projection_update",
        "dataset_id": dataset_id,
        "bucket": bucket,
        "version_manifest_path": manifest_key,
        "projections_path": projections,
        "occurred_at": _iso(moment),
    }


def _business_days(last_day: date) -> list[date]:
    days = (last_day - timedelta(days=n) for n in range(DAYS - 1, -1, -1))
    return [d for d in days if d.weekday() < 5 and (d.month, d.day) not in HOLIDAYS]


def _monthly_days(last_day: date) -> list[date]:
    first = last_day - timedelta(days=DAYS)
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last_day.year, last_day.month):
        months.append(date(year, month, 1))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _frequencies(catalog: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(s.get("code")): str(s.get("frequency", ""))
        for s in catalog.get("series", [])
        if isinstance(s, Mapping)
    }


def _is_monthly(code: str, frequency: str | None) -> bool:
    return frequency == "monthly" or (not frequency and code.endswith("_M"))


def _level(code: str) -> tuple[float, float]:
    for fragment, level, volatility in _LEVELS:
        if fragment in code:
            return level, volatility
    return 100.0, 0.005


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _ensure_bucket(s3: S3Client, bucket: str) -> None:
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", []) if "Name" in b}
    if bucket not in existing:
        region = s3.meta.region_name
        if region in (None, "us-east-1"):
            s3.create_bucket(Bucket=bucket)
        else:
            s3.create_bucket(
                Bucket=bucket,
                CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
            )
