"""Helpers for the tests of JSON log lines: a configured stream and the lines written to it."""

from __future__ import annotations

import io
import json
from typing import Any

from financial.pkg.observability.logging import configure_logging

SECRET = "hunter2-s3cr3t"


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def configured(level: str = "INFO", fmt: str = "json") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, fmt, stream)
    return stream
