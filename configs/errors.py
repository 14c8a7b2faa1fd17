"""Turn pydantic's validation errors into one line an operator can act on.

`WORKER_MAX_CONCURRENT_JOBS='ten': expected an integer >= 1`: the environment variable (not the
Python field), the value as given with secrets masked, and what would have been accepted.
"""

from __future__ import annotations

import re
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = [
    "SettingsError",
    "connection_problem",
    "describe_field",
    "problem_from_source_error",
    "problems_from_validation",
]

SECRET_MASK = "***"


class SettingsError(Exception):
    """A setting that cannot be used; `str()` is one line, secrets masked.

    `problems` holds one message per bad variable; the message joins them with `'; '`.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("; ".join(self.problems))


def _mask(text: str) -> str:
    # Imported late: configs must not pull the logging stack (and whatever observability's
    # package init grows to import) in at import time, nor risk an import cycle with it.
    from financial.pkg.observability.logging import mask_secrets

    return mask_secrets(text)


def _strip_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _bounds(metadata: Iterable[Any]) -> list[str]:
    bounds: list[str] = []
    for item in metadata:
        for attr, symbol in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
            if isinstance(item, annotated_types.BaseMetadata) and hasattr(item, attr):
                bounds.append(f"{symbol} {getattr(item, attr)}")
    return bounds


def describe_field(field: FieldInfo) -> str:
    """What a field accepts, in words: `an integer >= 1`, `a boolean (true or false)`, ..."""
    annotation = _strip_optional(field.annotation)
    origin = get_origin(annotation)
    if annotation is bool:
        return "a boolean (true or false)"
    if annotation is int or annotation is float:
        noun = "an integer" if annotation is int else "a number"
        bounds = _bounds(field.metadata)
        return f"{noun} {' and '.join(bounds)}" if bounds else noun
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in get_args(annotation))
    if origin is list:
        return "a comma-separated list"
    if origin is dict:
        return (
            "per-job settings as WORKER_JOBS__<JOB>__SCHEDULE, __ENABLED, __TIMEOUT_SECONDS, "
            "__CALENDAR, __ON_HOLIDAY or __ALERT_AFTER_SECONDS"
        )
    if annotation is Path:
        return "a path"
    if any(isinstance(m, annotated_types.MinLen) for m in field.metadata):
        return "a non-empty string"
    return "a string"


def _is_secret(field: FieldInfo | None) -> bool:
    if field is None:
        return False
    return _strip_optional(field.annotation) is SecretStr


def _shown_value(name: str, field: FieldInfo | None, value: Any) -> str:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if _is_secret(field):
        # A URL keeps its scheme, user and host, which is what one needs to spot the mistake;
        # anything else secret is hidden whole.
        if name.endswith("_url") and isinstance(value, str) and "://" in value:
            return repr(_mask(value))
        return repr(SECRET_MASK)
    return repr(_mask(value)) if isinstance(value, str) else _mask(repr(value))


def _expected(error: ErrorDetails, field: FieldInfo | None) -> str:
    kind = error["type"]
    if kind in ("value_error", "assertion_error"):
        # Our validators phrase their message as what they expected.
        return str(error.get("ctx", {}).get("error", error["msg"]))
    if kind == "extra_forbidden":
        return (
            "one of the per-job settings SCHEDULE, ENABLED, TIMEOUT_SECONDS, CALENDAR, "
            "ON_HOLIDAY, ALERT_AFTER_SECONDS"
        )
    if field is not None:
        return describe_field(field)
    msg = error["msg"]
    return msg.removeprefix("Input should be ") if msg.startswith("Input should be ") else msg


def _field_for(loc: tuple[int | str, ...], fields: Mapping[str, FieldInfo]) -> FieldInfo | None:
    field = fields.get(str(loc[0]))
    if field is None or len(loc) <= 2:
        # (worker_jobs, <job>) is described by the whole mapping's field.
        return field
    # Nested per-job settings: (worker_jobs, <job>, <setting>).
    nested = _strip_optional(field.annotation)
    value_type = get_args(nested)[-1] if get_origin(nested) is dict else None
    if len(loc) == 3 and isinstance(value_type, type) and issubclass(value_type, BaseModel):
        return value_type.model_fields.get(str(loc[2]))
    return None


def problems_from_validation(
    errors: Iterable[ErrorDetails], fields: Mapping[str, FieldInfo]
) -> list[str]:
    """One line per validation error, naming the environment variable, value and expectation."""
    problems: list[str] = []
    for error in errors:
        loc = tuple(error["loc"])
        if not loc:
            # Errors across fields come from a model validator that already wrote the message.
            problems.append(_mask(str(error.get("ctx", {}).get("error", error["msg"]))))
            continue
        variable = "__".join(str(part).upper() for part in loc)
        field = _field_for(loc, fields)
        value = _shown_value(str(loc[0]), field, error.get("input"))
        problems.append(f"{variable}={value}: expected {_expected(error, field)}")
    return problems


_SOURCE_ERROR = re.compile(r'field "(?P<field>\w+)"')


def problem_from_source_error(message: str, fields: Mapping[str, FieldInfo]) -> str:
    """A pydantic-settings source error (a value it could not even decode), as one line."""
    match = _SOURCE_ERROR.search(message)
    if match and match["field"] in fields:
        variable = match["field"].upper()
        return f"{variable}: expected {describe_field(fields[match['field']])}"
    return _mask(" ".join(message.split()))


def connection_problem(variable: str, value: str | None, expected: str, cause: str) -> str:
    """One line for a setting found wrong only when connecting with it, as a validation error
    reads: `DATABASE_URL='postgresql://u:***@db/x?sslmode=bogus': expected ...; rejected: ...`.

    `value` is shown masked (a URL keeps its user and host, not its password); `cause` is what
    the driver or the server said, masked too.
    """
    shown = f"={_mask(value)!r}" if value is not None else ""
    return f"{variable}{shown}: expected {expected}; rejected: {_mask(cause)}"
