"""Where the embedded PostgreSQL is not installed (pgserver has no build for Python 3.13), the
worker says so in one line and what to do, rather than failing at install or with a traceback."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from financial.pkg.database.embedded import (
    EmbeddedPostgresError,
    EmbeddedPostgresMissing,
    missing_pgserver,
    start_embedded,
)


def test_on_a_python_pgserver_has_no_build_for_the_message_says_so() -> None:
    message = missing_pgserver((3, 13), ModuleNotFoundError("No module named 'pgserver'"))

    assert "has no build for Python 3.13" in message
    assert "set DATABASE_URL" in message
    assert "Python 3.12 or older" in message


def test_where_it_has_a_build_the_message_says_how_to_install_it() -> None:
    message = missing_pgserver((3, 11), ModuleNotFoundError("No module named 'pgserver'"))

    assert "pip install 'financial[embedded]'" in message
    assert "set DATABASE_URL" in message


def test_starting_it_without_pgserver_is_a_missing_embedded_database(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # as on Python 3.13: not installed

    with pytest.raises(EmbeddedPostgresMissing) as missing:
        start_embedded(tmp_path / "postgres")

    assert isinstance(missing.value, EmbeddedPostgresError)  # what callers already catch
    assert isinstance(missing.value.__cause__, ImportError)
    assert str(missing.value) == missing_pgserver(sys.version_info[:2], missing.value.__cause__)


@pytest.mark.skipif(sys.version_info < (3, 13), reason="pgserver installs below 3.13")
def test_the_lock_for_this_python_has_no_pgserver() -> None:
    with pytest.raises(ImportError):
        import pgserver  # type: ignore[import-untyped, unused-ignore]  # noqa: F401
