"""The Parquet footer reader against files polars writes, whatever their row groups."""

from __future__ import annotations

import io
from itertools import pairwise
from typing import Literal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metrics_orchestrator.infrastructure.aws.parquet_footer import (
    TAIL,
    FooterError,
    footer_length,
    row_groups,
)

Compression = Literal["lz4", "uncompressed", "snappy", "zstd"]


def _file(rows: int, group_rows: int, compression: Compression, statistics: bool) -> bytes:
    frame = pl.DataFrame(
        {"obs_time": pl.int_range(0, rows, eager=True).cast(pl.Datetime("us", "UTC"))}
    ).with_columns(pl.col("obs_time").dt.epoch("us").cast(pl.Float64).alias("value"))
    buffer = io.BytesIO()
    frame.write_parquet(
        buffer, row_group_size=group_rows, compression=compression, statistics=statistics
    )
    return buffer.getvalue()


@settings(max_examples=30, deadline=None)
@given(
    rows=st.integers(1, 5_000),
    group_rows=st.integers(1, 2_000),
    compression=st.sampled_from(["zstd", "snappy", "uncompressed", "lz4"]),
    statistics=st.booleans(),
)
def test_row_groups_cover_every_row_with_disjoint_spans_inside_the_data(
    rows: int, group_rows: int, compression: Compression, statistics: bool
) -> None:
    raw = _file(rows, group_rows, compression, statistics)
    length = footer_length(raw[-TAIL:])

    groups = row_groups(raw[-TAIL - length : -TAIL])

    assert sum(g.rows for g in groups) == rows
    assert [g.first_row for g in groups] == [
        sum(h.rows for h in groups[:i]) for i in range(len(groups))
    ]
    assert all(4 <= g.start < g.end <= len(raw) - TAIL - length for g in groups)
    assert all(a.end <= b.start for a, b in pairwise(groups))


@pytest.mark.parametrize("tail", [b"", b"PAR1", b"\x00\x00\x00\x00NOPE"])
def test_a_file_that_does_not_end_in_par1_is_refused(tail: bytes) -> None:
    with pytest.raises(FooterError):
        footer_length(tail)


def test_truncated_metadata_is_refused() -> None:
    raw = _file(10, 5, "zstd", True)
    length = footer_length(raw[-TAIL:])
    with pytest.raises(FooterError):
        row_groups(raw[-TAIL - length : -TAIL - length // 2])
