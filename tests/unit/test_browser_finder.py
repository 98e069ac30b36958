"""The browser tests find a browser the way a newcomer's machine offers one (issue 19 item 2)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.integration.web_browser_helpers import chromium_executable


class _NoPlaywright:
    """Stands in for Playwright where the search must end before Playwright's own build."""

    @property
    def chromium(self) -> Any:
        raise AssertionError("Playwright's own build was asked for although a browser was found")


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n", encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_chromium_setting_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    browser = _executable(tmp_path / "my-chrome")
    monkeypatch.setenv("CHROMIUM", str(browser))

    assert chromium_executable(_NoPlaywright()) == str(browser)  # type: ignore[arg-type]


def test_a_chromium_setting_that_is_no_browser_fails_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMIUM", str(tmp_path / "missing"))

    with pytest.raises(pytest.fail.Exception, match=r"\$CHROMIUM=.*missing.* is not an executable"):
        chromium_executable(_NoPlaywright())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["chromium", "chromium-browser", "google-chrome"])
def test_a_browser_on_path_is_found(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    browser = _executable(tmp_path / name)
    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert chromium_executable(_NoPlaywright()) == str(browser)  # type: ignore[arg-type]


def test_without_a_browser_playwright_build_is_used_when_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundled = _executable(tmp_path / "playwright-chrome")

    class _Chromium:
        executable_path = str(bundled)

    class _Playwright:
        chromium = _Chromium()

    monkeypatch.delenv("CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", os.devnull)

    assert chromium_executable(_Playwright()) == str(bundled)  # type: ignore[arg-type]
