"""How versions are linked and shown in lists (interfaces/web/presenters.py)."""

from __future__ import annotations

from uuid import UUID

from metrics_orchestrator.interfaces.web.presenters import SHORT_PATH, short_path, version_href

UPDATE = UUID("6e817428-f82d-4913-8f7f-10a8baa083c9")


def test_a_version_page_is_under_its_dataset() -> None:
    assert version_href("fx_daily", UPDATE) == f"/ui/datasets/fx_daily/versions/{UPDATE}"


def test_a_metric_output_version_quotes_the_colon_so_the_id_stays_one_segment() -> None:
    assert (
        version_href("metric:a.base", UPDATE) == f"/ui/datasets/metric%3Aa.base/versions/{UPDATE}"
    )


def test_a_short_path_is_shown_whole() -> None:
    path = "datasets/fx_daily/versions/v1/manifest.json"

    assert short_path(path) == path


def test_a_long_path_keeps_its_end_where_the_version_is_named() -> None:
    path = "datasets/a_rather_long_dataset_name/projections/2026/01/31/versions/v1234/manifest.json"

    shown = short_path(path)

    assert len(shown) == SHORT_PATH
    assert shown.startswith("…")
    assert shown.endswith("/versions/v1234/manifest.json")
    assert path.endswith(shown[1:])
