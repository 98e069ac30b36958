"""How error messages name the type of a JSON value that is not what was expected."""

from __future__ import annotations

from collections.abc import Mapping


def json_type(value: object, *, array: str = "an array") -> str:
    """'null', 'a boolean', 'a number', 'a string', `array` or 'an object'.

    `array` names a list: the expression language calls it "an array", while the catalog
    document, whose messages ask for "a list" of things, calls it "a list".
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return array
    return "an object" if isinstance(value, Mapping) else type(value).__name__
