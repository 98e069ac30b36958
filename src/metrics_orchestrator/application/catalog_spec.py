"""The one input model of the catalog (SPEC §2, §3): what a series, a dataset or a metric is
when someone submits it, whether through an HTTP body, a `catalog load` file or the CLI.

Pydantic checks shape and types here, strictly (no silent coercion of "3" to 3); what needs
more than one field or the domain (identifiers, a dataset listing a series twice, the
expression tree) is checked by `catalog_document`. `spec_errors` turns pydantic's errors into
the domain's `FieldError`s, each at its JSON path, with the catalog file's wording.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Annotated, Any, ClassVar, Literal, Self, TypeVar, get_args
from urllib.parse import urlsplit

import idna
import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PrivateAttr,
    WithJsonSchema,
)

from metrics_orchestrator.application.ports.incidents import ChannelSettings
from metrics_orchestrator.domain.durations import (
    LONGEST_OBJECTIVE,
    DurationError,
    format_duration,
    parse_duration,
)
from metrics_orchestrator.domain.errors import FieldError, ValidationError
from metrics_orchestrator.domain.expressions import Expression
from metrics_orchestrator.domain.identifiers import identifier_problem
from metrics_orchestrator.domain.incidents import ChannelFormat, IncidentKind
from metrics_orchestrator.domain.json_values import json_type
from metrics_orchestrator.domain.model import (
    MAX_ATTEMPTS,
    MAX_REQUIRED_DAYS,
    Metric,
    MetricDependency,
    TriggerPolicy,
)
from metrics_orchestrator.domain.staleness import definition_version

MAX_TEXT = 10_000
MAX_KEY = 500
NO_NUL = r"^[^\x00]*$"


def _storable(text: str) -> str:
    """PostgreSQL text holds neither NUL nor lone surrogates; refuse them up front."""
    if "\x00" in text:
        raise ValueError("must not contain NUL characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (no lone surrogates)") from None
    return text


def _storable_json(value: Any) -> Any:
    if isinstance(value, str):
        _storable(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key)
            _storable_json(item)
    elif isinstance(value, list):
        for item in value:
            _storable_json(item)
    return value


Text = Annotated[str, Field(max_length=MAX_TEXT, pattern=NO_NUL), AfterValidator(_storable)]
Key = Annotated[
    str, Field(min_length=1, max_length=MAX_KEY, pattern=NO_NUL), AfterValidator(_storable)
]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


def _duration_text(value: object, *, shortest: timedelta) -> object:
    """An ISO-8601 duration (SPEC §9) as a timedelta, within [shortest, LONGEST_OBJECTIVE].

    A timedelta given in Python (never through JSON or YAML) is held to the same bounds, in
    whole seconds, so that what reaches the database always passes migration 007's CHECKs."""
    try:
        if isinstance(value, timedelta):
            return _bounded(value, shortest)
        return parse_duration(value, shortest=shortest)
    except DurationError as exc:
        raise ValueError(str(exc)) from None


def _bounded(value: timedelta, shortest: timedelta) -> timedelta:
    if value % timedelta(seconds=1) or not shortest <= value <= LONGEST_OBJECTIVE:
        raise DurationError(
            f"must be whole seconds from {format_duration(shortest)} "
            f"to {format_duration(LONGEST_OBJECTIVE)}"
        )
    return value


_DURATION_SCHEMA = WithJsonSchema(
    {"type": "string", "format": "duration", "examples": ["PT6H", "P1D"]}
)
# A freshness objective: PT1S … P366D; a grace: PT0S … P366D (SPEC §9).
Objective = Annotated[
    timedelta,
    BeforeValidator(lambda v: _duration_text(v, shortest=timedelta(seconds=1))),
    PlainSerializer(format_duration, return_type=str),
    _DURATION_SCHEMA,
]
Grace = Annotated[
    timedelta,
    BeforeValidator(lambda v: _duration_text(v, shortest=timedelta(0))),
    PlainSerializer(format_duration, return_type=str),
    _DURATION_SCHEMA,
]
ExpressionType = Literal["series_math", "window_op", "composite"]
TriggerPolicyName = Literal["all_new", "any_new"]


class Spec(BaseModel):
    """Base of every input spec. `_messages` words a field's every error in one sentence
    (`{got}` is the JSON type of the value, `{shown}` the value itself when a string)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    _messages: ClassVar[dict[str, str]] = {}

    @classmethod
    def checked(cls, values: Mapping[str, object]) -> Self:
        """`values` as this spec, or the domain's ValidationError naming every problem in the
        catalog's wording: for a spec built in Python from values not known to be valid (the
        plain constructor raises pydantic's error instead)."""
        errors: list[FieldError] = []
        spec = validate_spec(cls, values, "", errors)
        if errors or spec is None:
            raise ValidationError(errors)
        return spec


class SeriesSpec(Spec):
    code: Key
    name: Text = ""
    description: Text = ""
    unit: Text = ""
    frequency: Text = ""


class DatasetSpec(Spec):
    """A dataset and the complete set of series it provides (the set is replaced)."""

    id: Key
    name: Text = ""
    description: Text = ""
    bucket: Text = ""
    enabled: bool | None = Field(default=None, description="Omit to keep the current value.")
    series: list[Key] = Field(
        description="Codes of every series the dataset provides (replaces the stored list)."
    )
    expected_every: Objective | None = Field(
        default=None, description="SPEC §9: a new version is expected this often (ISO-8601)."
    )
    grace: Grace | None = Field(
        default=None, description="Slack after expected_every before the dataset is late."
    )

    _messages: ClassVar[dict[str, str]] = {"series": "must be a list of series codes, got {got}"}


# A grace is slack after `expected_every`: alone it means nothing. Checked where the other
# fields are known (catalog_document for a registration, the catalog service for a PATCH), not
# by a pydantic validator, which cannot tell an objective left out from one that was invalid.
GRACE_NEEDS_OBJECTIVE = "grace needs expected_every (it is slack after the expected interval)"


class DatasetSettings(Spec):
    """An operational change of a dataset (PATCH): a field left out keeps the stored value;
    `expected_every: null` removes the objective (and its grace), `grace: null` resets the
    grace to PT0S."""

    enabled: bool | None = None
    expected_every: Objective | None = None
    grace: Grace | None = None

    @property
    def removes_objective(self) -> bool:
        return "expected_every" in self.model_fields_set and self.expected_every is None

    @property
    def resets_grace(self) -> bool:
        return "grace" in self.model_fields_set and self.grace is None


_POLICY_MESSAGE = "unknown trigger policy {shown}; expected one of " + ", ".join(TriggerPolicy)


# A metric's freshness window and attempts, as every input document takes them (catalog file,
# POST /metrics, PATCH, the settings' `default_required_days`): each range written once, here.
RequiredDays = Annotated[int, Field(ge=1, le=MAX_REQUIRED_DAYS)]
Attempts = Annotated[int, Field(ge=1, le=MAX_ATTEMPTS)]


def _range_words(bounded: object) -> str:
    """The catalog's sentence for a value outside `bounded`'s range, read from the rule itself
    so that the range is not written a second time in words."""
    rule = get_args(bounded)[1]
    limits = {
        name: getattr(bound, name)
        for bound in rule.metadata
        for name in ("ge", "le")
        if hasattr(bound, name)
    }
    return f"must be an integer between {limits['ge']} and {limits['le']}"


class MetricSettings(Spec):
    """An operational change of a metric (not its definition); None keeps the stored value.

    Validated once, where it is built (the PATCH body by FastAPI); the catalog service and the
    repository take it as it is."""

    enabled: bool | None = None
    required_days: RequiredDays | None = None
    max_attempts: Attempts | None = None
    trigger_policy: TriggerPolicyName | None = None
    # SPEC §9; `null` given explicitly removes the objective
    max_data_age: Objective | None = None

    _messages: ClassVar[dict[str, str]] = {
        "required_days": _range_words(RequiredDays),
        "max_attempts": _range_words(Attempts),
        "trigger_policy": _POLICY_MESSAGE,
    }

    @property
    def removes_max_data_age(self) -> bool:
        return "max_data_age" in self.model_fields_set and self.max_data_age is None


class MetricSpec(Spec):
    """A metric as submitted. `expression` is raw JSON: the domain parses it (§3), and
    `with_expression` keeps the parsed tree beside its canonical form."""

    id: Key
    code: Key
    expression_type: ExpressionType
    expression: JsonObject = Field(description="The expression tree (SPEC §3).")
    frequency: Text = ""
    unit: Text = ""
    description: Text = ""
    required_days: RequiredDays | None = Field(
        default=None, description="Omit for the configured default."
    )
    trigger_policy: TriggerPolicyName = "all_new"
    max_attempts: Attempts = 3
    enabled: bool | None = Field(default=None, description="Omit to keep the current value.")
    max_data_age: Objective | None = Field(
        default=None, description="SPEC §9: the data behind the metric is never older (ISO-8601)."
    )

    _messages: ClassVar[dict[str, str]] = MetricSettings._messages
    # Reported by the domain's expression parser, which knows the language (§3).
    delegated: ClassVar[tuple[str, ...]] = ("expression_type", "expression")
    _parsed: Expression | None = PrivateAttr(default=None)

    @property
    def policy(self) -> TriggerPolicy:
        return TriggerPolicy(self.trigger_policy)

    @property
    def parsed_expression(self) -> Expression:
        if self._parsed is None:
            raise ValueError(f"metric '{self.id}': expression not parsed yet")
        return self._parsed

    def with_expression(self, expression: Expression) -> MetricSpec:
        """This spec with its expression parsed and in canonical form."""
        copy = self.model_copy(update={"expression": expression.canonical})
        copy._parsed = expression
        return copy

    def to_metric(
        self, default_required_days: int, dependencies: Sequence[MetricDependency] = ()
    ) -> Metric:
        """The metric this spec defines, as the catalog stores it: the canonical expression,
        the configured freshness window where the spec gives none, the resolved dependencies.

        `enabled` left out reads True (what a new metric gets); whether an existing metric
        keeps its stored value instead is the plan's to say (`Plan.keeps_enabled`)."""
        return Metric(
            id=self.id,
            code=self.code,
            expression_type=self.expression_type,
            expression_json=self.parsed_expression.canonical,
            required_days=(
                default_required_days if self.required_days is None else self.required_days
            ),
            frequency=self.frequency,
            unit=self.unit,
            description=self.description,
            trigger_policy=self.policy,
            max_attempts=self.max_attempts,
            enabled=True if self.enabled is None else self.enabled,
            dependencies=tuple(dependencies),
            definition_version=definition_version(
                self.expression_type, self.parsed_expression.canonical, dependencies
            ),
            max_data_age=self.max_data_age,
        )


# --- notification channels (SPEC §9) -----------------------------------------------------------

MAX_URL = 2048
MAX_SECRET = 512
MAX_GLOBS = 100
IncidentKindName = Literal[
    "run_failed", "dispatch_failed", "metric_overdue", "dataset_late", "event_rejected"
]
Glob = Annotated[
    str, Field(min_length=1, max_length=128, pattern=NO_NUL), AfterValidator(_storable)
]


_URL_WORDS = "must be an http or https URL with a host (and no spaces or control characters)"
_HOST_WORDS = "must name a host an HTTP client can post to (its IDNA form is invalid)"


def _http_url(url: str) -> str:
    """SPEC §9: http or https only, and a URL the notifier can post to (a bad port or a stray
    control character would only fail at delivery time, long after the catalog was loaded)."""
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise ValueError(_URL_WORDS)
    try:
        parts = urlsplit(url)
        port = parts.port  # a port that is no number or out of range raises ValueError
    except ValueError:
        raise ValueError(_URL_WORDS) from None
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise ValueError(_URL_WORDS)
    if not _idna_valid(parts.hostname):
        raise ValueError(_HOST_WORDS)
    # urlsplit lowers the scheme: store it so (`HTTPS://…` is the same URL, and migration
    # 007's CHECK reads the scheme in lower case)
    return parts.scheme + url[len(parts.scheme) :]


def _idna_valid(host: str) -> bool:
    """Whether an HTTP client can name this host: a host in Unicode must have an IDNA 2008
    form, and an ASCII one's `xn--` labels must decode (`http://xn--a/` would otherwise only
    fail at delivery time). IP literals and plain ASCII names pass as they are."""
    if host.startswith("[") or (host.isascii() and "xn--" not in host):
        return True
    try:
        if host.isascii():
            idna.decode(host)
        else:
            idna.encode(host)
    except (idna.IDNAError, UnicodeError, ValueError):
        return False
    return True


def _channel_name(name: str) -> str:
    problem = identifier_problem(name)
    if problem is not None:
        raise ValueError(problem)
    return name


class ChannelSpec(Spec):
    """A notification channel as declared (catalog file `notifications:` or the API)."""

    name: Annotated[Key, AfterValidator(_channel_name)]
    url: Annotated[
        str,
        Field(min_length=1, max_length=MAX_URL, pattern=NO_NUL),
        AfterValidator(_storable),
        AfterValidator(_http_url),
    ]
    format: Literal["json", "slack"] = "json"
    # signs each body; never shown back, never in a repr or a log line
    secret: (
        Annotated[
            str,
            Field(min_length=1, max_length=MAX_SECRET, pattern=NO_NUL),
            AfterValidator(_storable),
        ]
        | None
    ) = Field(default=None, repr=False)
    kinds: list[IncidentKindName] | None = None
    metrics: Annotated[list[Glob], Field(max_length=MAX_GLOBS)] | None = None
    enabled: bool = True

    _messages: ClassVar[dict[str, str]] = {
        "format": "unknown format {shown}; expected json or slack",
        # one sentence for every problem, and never the value: it is a secret
        "secret": f"must be a string of 1 to {MAX_SECRET} characters (text, no NUL)",
    }

    def to_settings(self) -> ChannelSettings:
        return ChannelSettings(
            name=self.name,
            url=self.url,
            format=ChannelFormat(self.format),
            secret=self.secret,
            kinds=None if self.kinds is None else tuple(IncidentKind(k) for k in self.kinds),
            metrics=None if self.metrics is None else tuple(self.metrics),
            enabled=self.enabled,
        )


S = TypeVar("S", bound=Spec)


def at_path(path: str, key: object) -> str:
    """The JSON path of `key` inside the object at `path` ("" is the top level)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def validate_spec(
    model: type[S], raw: Mapping[Any, object], path: str, errors: list[FieldError]
) -> S | None:
    """`raw` as a `model`, every problem appended to `errors` at its JSON path under `path`.

    A missing or null key takes its default, as in a catalog file. When only optional fields
    are wrong the spec is still returned, with defaults in those fields, so that checks
    against the rest of the catalog run too; the errors make sure it is never written.
    """
    present = {key: value for key, value in raw.items() if value is not None}
    try:
        return model.model_validate(present)
    except pydantic.ValidationError as exc:
        problems = exc.errors()
    errors.extend(spec_errors(model, problems, path))
    wrong = {problem["loc"][0] for problem in problems if problem["loc"]}
    required = {name for name, info in model.model_fields.items() if info.is_required()}
    if wrong & required or not all(isinstance(key, str) for key in wrong):
        return None
    kept = {key: value for key, value in present.items() if key not in wrong}
    try:
        return model.model_validate(kept)
    except pydantic.ValidationError:
        return None


def spec_errors(model: type[Spec], problems: list[Any], path: str) -> list[FieldError]:
    """Pydantic's errors as FieldErrors: one per field, in the catalog file's wording."""
    found: dict[str, FieldError] = {}
    delegated: tuple[str, ...] = getattr(model, "delegated", ())
    for problem in problems:
        loc = tuple(problem["loc"])
        # The parser words shape errors of the expression; storability is checked here only.
        if loc and loc[0] in delegated and problem["type"] != "value_error":
            continue
        where = path
        for part in loc:
            where = at_path(where, part)
        message = _message(model, problem, loc)
        found.setdefault(where, FieldError(where, message))
    return list(found.values())


def _message(model: type[Spec], problem: Any, loc: tuple[Any, ...]) -> str:
    kind, value = problem["type"], problem.get("input")
    if kind == "extra_forbidden":
        return f"unknown key; expected {', '.join(model.model_fields)}"
    if kind == "missing":
        return "is required" + (" (a list of series codes)" if loc == ("series",) else "")
    if len(loc) == 2 and loc[0] == "series" and kind in {"string_type", "string_too_short"}:
        return f"must be a series code, got {_got(value)}"
    if len(loc) == 1 and loc[0] in model._messages:
        shown = repr(value) if isinstance(value, str) else _got(value)
        return model._messages[loc[0]].format(got=_got(value), shown=shown)
    if kind == "string_type":
        return f"must be a string, got {_got(value)}"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_pattern_mismatch":  # NO_NUL is the specs' only pattern
        return "must not contain NUL characters"
    if kind == "string_unicode":
        return "must be valid Unicode (no lone surrogates)"
    if kind == "bool_type":
        return f"must be true or false, got {_got(value)}"
    return str(problem["msg"]).removeprefix("Value error, ")


def _got(value: object) -> str:
    return json_type(value, array="a list")
