"""The embedded PostgreSQL (pgserver) used when no database is configured."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from financial.pkg.database import EmbeddedPostgresError, migrate, start_embedded_async

pytestmark = pytest.mark.integration


@pytest.fixture
def data_home() -> Iterator[Path]:
    """A folder outside pytest's private tmp tree: as root, pgserver opens up every parent of the
    data folder to its `pgserver` user, which pytest's 0700 base folder should not undergo."""
    home = Path(tempfile.mkdtemp(prefix="financial-it-embedded-"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


async def test_embedded_server_starts_migrates_and_stops(data_home: Path) -> None:
    server = await start_embedded_async(data_home / "postgres")
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
    data_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "pgserver", None)  # makes `import pgserver` fail

    with pytest.raises(EmbeddedPostgresError, match=r"financial\[embedded\]"):
        await start_embedded_async(data_home / "postgres")
