"""Acceptance suites: the product end to end (processes, browser, outages).

They share the integration suites' fixtures; the database ones are in tests/conftest.py.
"""

from __future__ import annotations

from tests.integration.conftest import catalog_path, clock, conn

__all__ = ["catalog_path", "clock", "conn"]
