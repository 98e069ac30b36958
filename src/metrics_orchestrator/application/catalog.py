"""Catalog registration (SPEC §2). Owned by the catalog work; this is its port."""

from __future__ import annotations

from typing import Protocol


class CatalogRepository(Protocol):
    """Persistence of datasets, series, metrics and their dependencies."""
