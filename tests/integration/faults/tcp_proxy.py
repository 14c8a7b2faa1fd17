"""A small TCP proxy of the tests, to cut a worker off from PostgreSQL or RabbitMQ.

It listens on 127.0.0.1 (a free port) and forwards each connection to a TCP address or a Unix
socket path, on an event loop of its own in a background thread, so a blocking test drives it.

- `forward()`: bytes pass both ways (the starting mode).
- `blackhole()`: every connection stays open and new ones are accepted, but nothing is forwarded
  in either direction: what the peers send is read and dropped, so they see no answer, no reset,
  no end of file; a network partition as a client sees it until its own timeouts fire.
- `forward()` again: new connections work at once; the connections that lived through the black
  hole are closed (their streams lost bytes, so they could not be trusted again), which the
  client sees as a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

Target = tuple[str, int] | Path

# Bounds on the proxy's own steps, so a test never hangs on the proxy itself.
CONTROL_TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 5.0
CHUNK = 65536


class Mode(enum.Enum):
    """What the proxy does with the bytes of its connections."""

    FORWARD = "forward"
    BLACKHOLE = "blackhole"


@dataclass(eq=False)
class _Link:
    """One client connection and, when it was forwarded, its upstream twin."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    # Set once the link lived through a black hole: it forwards nothing more and is closed at
    # the next `forward()`.
    held: bool = False
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def abort(self) -> None:
        for task in self.tasks:
            task.cancel()
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()


class TcpProxy:
    """A forward/black-hole proxy on 127.0.0.1; use as a context manager or `start`/`close`."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.port = 0
        self.mode = Mode.FORWARD
        self.accepted = 0
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def address(self) -> str:
        """`127.0.0.1:<port>`, for a URL."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen on a free loopback port (`self.port`)."""
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]

    def blackhole(self) -> None:
        """Forward nothing more, on current and new connections, and close none of them."""
        self._call(self._set_blackhole())

    def forward(self) -> None:
        """Forward again: close the connections held through the black hole; new ones pass."""
        self._call(self._set_forward())

    @property
    def open_connections(self) -> int:
        """Client connections open right now."""
        return self._call(self._count())

    def close(self) -> None:
        """Stop listening, close every connection and stop the proxy's thread."""
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=CONTROL_TIMEOUT_S)
        self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CONTROL_TIMEOUT_S)

    async def _count(self) -> int:
        return len(self._links)

    async def _set_blackhole(self) -> None:
        self.mode = Mode.BLACKHOLE
        for link in self._links:
            link.held = True

    async def _set_forward(self) -> None:
        self.mode = Mode.FORWARD
        for link in [link for link in self._links if link.held]:
            link.abort()
            self._links.discard(link)

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.abort()
        self._links.clear()
        # Connection handlers and pumps end here, not destroyed pending with the loop.
        others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(client=writer, held=self.mode is Mode.BLACKHOLE)
        self._links.add(link)
        try:
            if link.held:
                # Accepted during the black hole: never connected upstream, never answered.
                link.tasks = [asyncio.create_task(self._swallow(reader))]
                await asyncio.wait(link.tasks)
                return
            try:
                up_reader, upstream = await asyncio.wait_for(
                    self._open_upstream(), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                return  # the target is down: the client sees its connection closed
            link.upstream = upstream
            link.tasks = [
                asyncio.create_task(self._pump(reader, upstream, link)),
                asyncio.create_task(self._pump(up_reader, writer, link)),
            ]
            await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            pass
        finally:
            if link in self._links and not (link.held and self.mode is Mode.BLACKHOLE):
                # One side closed while forwarding: close the other (a held link stays open
                # until `forward()`, as a partition keeps it).
                self._links.discard(link)
                link.abort()

    async def _open_upstream(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if isinstance(self.target, Path):
            return await asyncio.open_unix_connection(str(self.target))
        host, port = self.target
        return await asyncio.open_connection(host, port)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: _Link
    ) -> None:
        try:
            while data := await reader.read(CHUNK):
                if link.held:
                    continue  # the black hole: read and drop, so the sender never blocks on us
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            return  # a side reset its connection: the handler closes the other side
        if link.held:
            # The peer gave up during the black hole: its end of file is not passed on either.
            await asyncio.Event().wait()

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(CHUNK):
                pass
        await asyncio.Event().wait()
