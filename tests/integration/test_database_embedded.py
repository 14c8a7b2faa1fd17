"""The embedded PostgreSQL (pgserver) used when no database is configured."""

from __future__ import annotations

import sys
from pathlib import Path

import asyncpg
import pytest

from financial.pkg.database import EmbeddedPostgresError, migrate, start_embedded_async

pytestmark = pytest.mark.integration


async def test_embedded_server_starts_migrates_and_stops(open_tmp_path: Path) -> None:
    server = await start_embedded_async(open_tmp_path / "postgres")
    try:
        assert server.dsn.startswith("postgresql://")
        conn = await asyncpg.connect(server.dsn)
        try:
            assert len(await migrate(conn)) >= 3
        finally:
            await conn.close()
    finally:
        server.stop()
        server.stop()  # idempotent

    with pytest.raises((OSError, asyncpg.PostgresError)):
        await asyncpg.connect(server.dsn, timeout=3)


async def test_missing_pgserver_says_how_to_install_it(
    open_tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail

    with pytest.raises(EmbeddedPostgresError, match=r"financial\[embedded\]"):
        await start_embedded_async(open_tmp_path / "postgres")
