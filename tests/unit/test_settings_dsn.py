"""The database DSN: DATABASE_URL, or one built from the DB_* parts with the user and password
quoted, for a TCP host, an IPv6 address or a socket folder."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from tests.unit.settings_env import load

pytestmark = pytest.mark.usefixtures("clean_env")


def test_database_url_wins_over_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres://app:pw@db-a:5432/fin")
    monkeypatch.setenv("DB_HOST", "db-b")
    settings = load()
    assert settings.database_configured is True
    assert settings.database_dsn() == "postgres://app:pw@db-a:5432/fin"


def test_dsn_from_parts_quotes_user_and_password(monkeypatch: pytest.MonkeyPatch) -> None:
    password = "p@ss:/w rd%?#"
    monkeypatch.setenv("DB_HOST", "db.internal")
    monkeypatch.setenv("DB_PORT", "6432")
    monkeypatch.setenv("DB_USER", "app@tenant")
    monkeypatch.setenv("DB_PASSWORD", password)
    monkeypatch.setenv("DB_NAME", "fin")

    settings = load()
    dsn = settings.database_dsn()

    assert settings.database_configured is True
    assert dsn is not None
    parts = urlsplit(dsn)
    assert (parts.scheme, parts.hostname, parts.port, parts.path) == (
        "postgresql",
        "db.internal",
        6432,
        "/fin",
    )
    assert unquote(parts.username or "") == "app@tenant"
    assert unquote(parts.password or "") == password


@pytest.mark.parametrize(
    ("env", "dsn"),
    [
        ({"DB_HOST": "db"}, "postgresql://db:5432/"),
        ({"DB_HOST": "db", "DB_USER": "app"}, "postgresql://app@db:5432/"),
        ({"DB_HOST": "::1", "DB_USER": "app"}, "postgresql://app@[::1]:5432/"),
        (
            {"DB_HOST": "/var/run/postgresql", "DB_NAME": "fin"},
            "postgresql://:5432/fin?host=/var/run/postgresql",
        ),
    ],
)
def test_dsn_shapes(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], dsn: str) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert load().database_dsn() == dsn
