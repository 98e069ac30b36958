"""Catalogs of metrics over metrics (SPEC §8) for the dashboard's tests: a chain and a
500-metric layered tree."""

from __future__ import annotations

from typing import Any

BUCKET = "ingestor-datasets"


def chain_catalog() -> dict[str, Any]:
    """fx_daily -> A -> B -> C: A over a series, B over A's output, C over B's and A's."""
    return {
        "series": [{"code": "FX_D", "name": "FX", "frequency": "daily"}],
        "datasets": [{"id": "fx_daily", "name": "FX", "bucket": BUCKET, "series": ["FX_D"]}],
        "metrics": [
            _metric(
                "chain.a",
                "window_op",
                {"op": "sma", "series": {"series_code": "FX_D"}, "window": 2},
            ),
            _metric(
                "chain.b",
                "window_op",
                {"op": "sma", "series": {"metric_code": "chain.a"}, "window": 2},
            ),
            _metric(
                "chain.c",
                "series_math",
                {
                    "op": "ratio",
                    "left": {"metric_code": "chain.b"},
                    "right": {"metric_code": "chain.a"},
                },
            ),
        ],
    }


def _metric(code: str, expression_type: str, expression: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"m-{code}",
        "code": code,
        "expression_type": expression_type,
        "expression": expression,
        "required_days": 7,
    }


WIDTH = 32  # metrics per depth in the big catalog: 500 / 32 -> 16 depths, the longest chain


def tree_catalog(metrics: int = 500, datasets: int = 20) -> dict[str, Any]:
    """`metrics` metrics: the first `WIDTH` read a dataset's series, every later one the outputs
    of the metrics `WIDTH` and `WIDTH + 1` before it (a layered tree of depth 15)."""
    series = [f"TREE_S_{d:02d}" for d in range(datasets)]
    entries = []
    for i in range(metrics):
        code = f"tree.m_{i:03d}"
        if i < WIDTH:
            expression = {"op": "sma", "series": {"series_code": series[i % datasets]}, "window": 2}
            entries.append(_metric(code, "window_op", expression))
        else:
            left = {"metric_code": f"tree.m_{i - WIDTH:03d}"}
            right = {"metric_code": f"tree.m_{max(i - WIDTH - 1, 0):03d}"}
            entries.append(
                _metric(code, "series_math", {"op": "ratio", "left": left, "right": right})
            )
    return {
        "series": [{"code": s, "name": s, "frequency": "daily"} for s in series],
        "datasets": [
            {"id": f"tree_ds_{d:02d}", "name": "tree", "bucket": BUCKET, "series": [series[d]]}
            for d in range(datasets)
        ],
        "metrics": entries,
    }
