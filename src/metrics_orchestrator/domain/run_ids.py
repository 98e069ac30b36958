"""Run ids as people type them at a terminal (SPEC §6.1): a unique prefix, as git accepts.

Pure. A prefix is at least MIN_PREFIX hex digits, hyphens optional (`runs list` shows
`02b2542c…`, a UUID is written `02b2542c-1f…`). Its runs are those whose id lies between the
prefix padded with 0s and the prefix padded with fs: an index range scan of the primary key,
however many runs there are.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from metrics_orchestrator.domain.errors import FieldError, NotFound, ValidationError

MIN_PREFIX = 4
UUID_HEX_DIGITS = 32
# how many matches an ambiguous prefix lists
SHOWN_MATCHES = 10
_HEX = frozenset(string.hexdigits)


@dataclass(frozen=True, slots=True)
class RunIdPrefix:
    """The hex digits typed, lower case, and the range of ids that start with them."""

    digits: str

    @property
    def lowest(self) -> UUID:
        return UUID(self.digits.ljust(UUID_HEX_DIGITS, "0"))

    @property
    def highest(self) -> UUID:
        return UUID(self.digits.ljust(UUID_HEX_DIGITS, "f"))


def parse_run_id_prefix(text: str, *, field: str = "ID") -> RunIdPrefix:
    """`text` as a run id prefix; ValidationError naming `field` when it cannot be one."""
    digits = text.strip().replace("-", "").lower()
    if not digits or not set(digits) <= _HEX:
        problem = "must be a run id or a prefix of one (hexadecimal digits, hyphens optional)"
    elif len(digits) < MIN_PREFIX:
        problem = f"a run id prefix needs at least {MIN_PREFIX} hex digits"
    elif len(digits) > UUID_HEX_DIGITS:
        problem = f"a run id has {UUID_HEX_DIGITS} hex digits; {len(digits)} given"
    else:
        return RunIdPrefix(digits)
    raise ValidationError([FieldError(field, problem)])


def the_one_match(text: str, matches: Sequence[UUID], *, more: bool = False) -> UUID:
    """The single run `text` names; NotFound for none, ValidationError listing an ambiguity.

    `matches` are (up to SHOWN_MATCHES of) the runs whose id starts with the prefix; `more`
    says that there are others besides.
    """
    if not matches:
        raise NotFound(f"unknown run {text.strip()}: no run id starts with it")
    if len(matches) == 1 and not more:
        return matches[0]
    listed = ", ".join(str(m) for m in matches[:SHOWN_MATCHES])
    others = " and more" if more or len(matches) > SHOWN_MATCHES else ""
    raise ValidationError(
        [FieldError("ID", f"{text.strip()!r} is ambiguous: it begins {listed}{others}")]
    )
