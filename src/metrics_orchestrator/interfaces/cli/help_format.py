"""Two corrections to how typer renders help, applied once when the CLI is imported.

The typer release this project runs prints a type after every option, `<bool>` even after
`--help` and on/off flags, and writes required arguments as `{file}` in usage lines. Neither
helps anyone: a flag takes no value, and usage lines conventionally name arguments `FILE`.
These are typer internals, so the patch checks they exist and leaves typer alone otherwise;
tests/unit/test_cli_help.py fails if an upgrade brings the old rendering back.
"""

from __future__ import annotations

from typing import Any

from typer import core


def _flag_without_type(original: Any) -> Any:
    def display_type_rich(self: Any, ctx: Any) -> str | None:
        if getattr(self, "is_flag", False) and getattr(self, "metavar", None) is None:
            return None
        result: str | None = original(self, ctx)
        return result

    return display_type_rich


def _usage_name(self: Any) -> str:
    name = str(self.metavar or self.name).upper()
    if not self.required:
        name = f"[{name}]"
    return name + ("..." if self.nargs != 1 else "")


def apply() -> None:
    option: Any = getattr(core, "TyperOption", None)
    argument: Any = getattr(core, "TyperArgument", None)
    patchable = hasattr(option, "display_type_rich")
    if patchable and not getattr(option, "_mo_patched", False):
        option.display_type_rich = _flag_without_type(option.display_type_rich)
        option._mo_patched = True
    if hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = _usage_name
