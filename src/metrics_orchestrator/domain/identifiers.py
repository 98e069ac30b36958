"""Identifiers of the catalog (SPEC §2): one rule for dataset ids, series codes, metric codes/ids.

1-128 characters of `A-Z a-z 0-9 _ . -`: no `:` or `/`, so an event key
`"{dataset_id}:{version_manifest_path}"` is unambiguous, and every metric code is a valid SNS
FIFO `MessageGroupId` (at most 128 characters of letters, digits and punctuation).
"""

from __future__ import annotations

import re

MAX_IDENTIFIER_LENGTH = 128
IDENTIFIER_CHARACTERS = "A-Z a-z 0-9 _ . -"
# Also the regular expression of the CHECK constraints of migration 003 (keep them equal).
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
_IDENTIFIER = re.compile(r"[A-Za-z0-9_.-]{1,128}")
IDENTIFIER_RULE = f"must be 1-{MAX_IDENTIFIER_LENGTH} characters of {IDENTIFIER_CHARACTERS}"


def is_identifier(value: object) -> bool:
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None


def identifier_problem(value: object) -> str | None:
    """Why `value` is not an identifier (the value named, shortened), or None if it is one."""
    if is_identifier(value):
        return None
    return f"{_shown(value)} {IDENTIFIER_RULE}"


def _shown(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"
