"""`RabbitPublisher`: persistent, mandatory, confirmed JSON messages on a durable topic exchange.

One robust connection (aio-pika reconnects it in the background and re-declares the exchange) and
one channel with publisher confirms. A message counts as published only when the broker has
confirmed it; an unroutable one comes back (mandatory) and raises, as does a missing confirm
after the publish timeout. While the connection is down a publish fails at once instead of
waiting for the reconnection, so a relay leaves its events in the outbox and tries again later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

import aio_pika
import aiormq.exceptions
import structlog
from aio_pika.abc import AbstractExchange, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aiormq.exceptions import AMQPError

from financial.pkg.messaging.publisher import (
    JSON_CONTENT_TYPE,
    BrokerUnavailable,
    Publisher,
    PublishError,
    PublishFailure,
    check_publish_args,
    encode_body,
)
from financial.pkg.observability.dependencies import BROKER, came_back, went_away

log = structlog.get_logger()

MASK = "***"
CHANNEL_RESTORE_POLL_S = 0.05


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***; a URL that cannot be parsed is not shown."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        userinfo, hosts = parts.netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{hosts}"))
    except ValueError:
        return "<unparseable URL>"


def describe_url(url: str) -> str:
    """Where an AMQP URL points, as `host:port/vhost`, with no user or password."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    default_port = 5671 if parts.scheme == "amqps" else 5672
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return f"{parts.hostname or 'localhost'}:{port or default_port}/{vhost}"


class BrokerConfigError(ValueError):
    """The broker URL cannot be used as given (a malformed option, a TLS file that is not
    there): trying again cannot help. `url` is the URL with its password masked."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(message)
        self.url = url


# Query parameters of an AMQP URL that aio-pika and aiormq read as numbers.
_NUMERIC_OPTIONS = ("heartbeat", "frame_max", "channel_max", "connection_timeout")
# Query parameters naming TLS files (amqps).
_FILE_OPTIONS = ("cafile", "capath", "certfile", "keyfile")


def url_problem(url: str) -> str | None:
    """What makes `url` unusable whatever the broker's state, or None: checked before the
    first connection, so that a typo stops the worker instead of being retried as an outage."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - urlsplit checks the port only when asked for it
    except ValueError as exc:
        return f"the URL cannot be parsed: {exc}"
    if parts.scheme not in ("amqp", "amqps"):
        return f"scheme {parts.scheme!r}: expected amqp or amqps"
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _NUMERIC_OPTIONS:
            try:
                float(value)
            except ValueError:
                return f"query parameter {key}={value!r}: expected a number"
        elif key in _FILE_OPTIONS and not Path(value).exists():
            return f"query parameter {key}={value!r}: no such file"
    return None


def is_config_error(exc: BaseException) -> bool:
    """Whether connecting failed because of the URL, not because the broker is away: aio-pika
    raises a plain `ValueError`/`TypeError` for an option it cannot read, `FileNotFoundError`
    for a TLS file that is not there; a network fault is an `AMQPError` or `OSError`."""
    if isinstance(exc, FileNotFoundError | IsADirectoryError):
        return True
    return isinstance(exc, ValueError | TypeError) and not isinstance(exc, AMQPError)


def _scrub(text: str, url: str) -> str:
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, MASK) if password else text


class RabbitPublisher(Publisher):
    """Publishes to one durable topic exchange with confirms; see the module docstring.

    Built unconnected: `connect()` opens the connection (raising `BrokerUnavailable`), and a
    publish on a publisher that never connected tries to connect first.
    """

    def __init__(
        self,
        url: str,
        exchange: str,
        *,
        publish_timeout_s: float = 5.0,
        connect_timeout_s: float = 10.0,
        reconnect_interval_s: float = 5.0,
    ) -> None:
        if publish_timeout_s <= 0 or connect_timeout_s <= 0 or reconnect_interval_s <= 0:
            raise ValueError("RabbitPublisher: timeouts and the reconnect interval must be > 0")
        self._url = url
        self._exchange_name = exchange
        self._publish_timeout_s = publish_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._connection: AbstractRobustConnection | None = None
        self._exchange: AbstractExchange | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def target(self) -> str:
        """`host:port/vhost` of the broker, safe to log."""
        return describe_url(self._url)

    @property
    def connected(self) -> bool:
        """Whether the connection is up right now (false while it reconnects)."""
        return self._connection is not None and self._connection.connected.is_set()

    def __repr__(self) -> str:
        return f"RabbitPublisher({mask_url(self._url)!r}, exchange={self._exchange_name!r})"

    async def connect(self) -> None:
        """Connect and declare the exchange (durable, topic). Idempotent.

        Raises `BrokerUnavailable`, naming the broker (never the password), the cause and what
        was expected.
        """
        async with self._lock:
            if self._exchange is not None:
                return
            if self._closed:
                raise BrokerUnavailable("the publisher is closed", target=self.target)
            problem = url_problem(self._url)
            if problem is not None:
                raise BrokerConfigError(_scrub(problem, self._url), url=mask_url(self._url))
            connection: AbstractRobustConnection | None = None
            try:
                async with asyncio.timeout(self._connect_timeout_s):
                    connection = await aio_pika.connect_robust(
                        self._url,
                        timeout=self._connect_timeout_s,
                        reconnect_interval=self._reconnect_interval_s,
                        client_properties={"connection_name": "financial-worker publisher"},
                    )
                    channel = await connection.channel(
                        publisher_confirms=True, on_return_raises=True
                    )
                    exchange = await channel.declare_exchange(
                        self._exchange_name, aio_pika.ExchangeType.TOPIC, durable=True
                    )
            except Exception as exc:
                if connection is not None:
                    await _close_quietly(connection)
                if is_config_error(exc):
                    cause = _scrub(f"{type(exc).__name__}: {exc}", self._url)
                    raise BrokerConfigError(cause, url=mask_url(self._url)) from None
                if not isinstance(exc, (TimeoutError, *CONNECTION_EXCEPTIONS)):
                    raise
                unavailable = self._unavailable(exc)
                went_away(BROKER, unavailable.detail)
                raise unavailable from exc
            self._connection, self._exchange = connection, exchange
            # aio-pika reconnects by itself; these say when the connection goes and comes back.
            connection.close_callbacks.add(self._on_connection_lost)
            connection.reconnect_callbacks.add(self._on_reconnected)
        log.info("broker_connected", target=self.target, exchange=self._exchange_name)
        came_back(BROKER)

    def _on_connection_lost(self, _sender: object, exc: BaseException | None = None) -> None:
        if self._closed:
            return  # our own close
        cause = _scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), self._url) if exc else "closed"
        went_away(BROKER, f"the connection to RabbitMQ at {self.target} was lost: {cause}")

    def _on_reconnected(self, _sender: object) -> None:
        came_back(BROKER)

    def _unavailable(self, exc: BaseException) -> BrokerUnavailable:
        if isinstance(exc, TimeoutError):
            cause = f"no answer within {self._connect_timeout_s:g} s"
        else:
            cause = _scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), self._url)
        detail = (
            f"cannot connect to RabbitMQ at {self.target} (exchange {self._exchange_name!r}): "
            f"{cause}; expected a broker accepting AMQP connections there with the configured "
            "user and password (RABBITMQ_URL), and the exchange absent or a durable topic one"
        )
        return BrokerUnavailable(detail, target=self.target)

    async def publish(
        self,
        routing_key: str,
        body: bytes | Mapping[str, Any],
        *,
        message_id: str,
        headers: Mapping[str, Any] | None = None,
    ) -> None:
        check_publish_args(routing_key, message_id)

        def fail(reason: PublishFailure, detail: str) -> PublishError:
            return PublishError(reason, detail, routing_key=routing_key, message_id=message_id)

        if self._closed:
            raise fail(PublishFailure.CONNECTION, "the publisher is closed")
        if self._exchange is None:
            try:
                await self.connect()
            except BrokerUnavailable as exc:
                raise fail(PublishFailure.CONNECTION, exc.detail) from exc
        exchange = self._exchange
        if exchange is None or not self.connected:
            went_away(BROKER, f"the connection to RabbitMQ at {self.target} is down")
            raise fail(
                PublishFailure.CONNECTION,
                f"the connection to RabbitMQ at {self.target} is down; reconnecting every "
                f"{self._reconnect_interval_s:g} s",
            )
        message = aio_pika.Message(
            encode_body(body),
            content_type=JSON_CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message_id,
            headers=dict(headers) if headers else None,
        )
        try:
            # aio-pika's own timeout covers the confirm only; this one also covers waiting for a
            # channel that is being restored.
            async with asyncio.timeout(self._publish_timeout_s):
                await self._publish_when_channel_ready(exchange, message, routing_key)
            came_back(BROKER)
        except aiormq.exceptions.PublishError as exc:
            delivery = exc.message.delivery if exc.message is not None else None
            reply = getattr(delivery, "reply_text", None) or "NO_ROUTE"
            raise fail(
                PublishFailure.UNROUTABLE,
                f"RabbitMQ returned it ({reply}): no queue is bound to exchange "
                f"{self._exchange_name!r} for this routing key; expected a consumer's queue "
                "bound to it",
            ) from exc
        except aiormq.exceptions.DeliveryError as exc:
            raise fail(
                PublishFailure.NACK,
                f"RabbitMQ refused it ({type(exc.frame).__name__}); the broker may be out of "
                "resources or the queue at its length limit",
            ) from exc
        except TimeoutError as exc:
            if not self.connected:
                went_away(BROKER, f"the connection to RabbitMQ at {self.target} was lost")
                raise fail(
                    PublishFailure.CONNECTION,
                    f"the connection to RabbitMQ at {self.target} was lost during the publish",
                ) from exc
            raise fail(
                PublishFailure.TIMEOUT,
                f"no confirm from RabbitMQ at {self.target} within "
                f"{self._publish_timeout_s:g} s; it may or may not have arrived",
            ) from exc
        except CONNECTION_EXCEPTIONS as exc:
            cause = _scrub(f"{type(exc).__name__}: {exc}".rstrip(": "), self._url)
            went_away(BROKER, f"RabbitMQ at {self.target} is unreachable: {cause}")
            raise fail(
                PublishFailure.CONNECTION, f"RabbitMQ at {self.target} is unreachable: {cause}"
            ) from exc

    async def _publish_when_channel_ready(
        self, exchange: AbstractExchange, message: aio_pika.Message, routing_key: str
    ) -> None:
        while True:
            try:
                await exchange.publish(
                    message, routing_key, mandatory=True, timeout=self._publish_timeout_s
                )
                return
            except aiormq.exceptions.ChannelInvalidStateError:
                # Just after a reconnect the connection is up while its channel is still being
                # restored; nothing was sent, so waiting (inside the publish timeout) and trying
                # again cannot duplicate the message.
                if not self.connected:
                    raise
                await asyncio.sleep(CHANNEL_RESTORE_POLL_S)

    async def close(self) -> None:
        async with self._lock:
            if self._closed:
                return
            self._closed = True
            connection, self._connection, self._exchange = self._connection, None, None
        if connection is not None:
            await _close_quietly(connection)
            log.info("broker_disconnected", target=self.target)


async def _close_quietly(connection: AbstractRobustConnection) -> None:
    try:
        await connection.close()
    except (TimeoutError, *CONNECTION_EXCEPTIONS) as exc:
        # Closing a connection that is already broken may fail; there is nothing left to release.
        log.debug("broker_close_failed", error_type=type(exc).__name__)


async def connect(
    url: str,
    exchange: str,
    publish_timeout_s: float = 5.0,
    *,
    connect_timeout_s: float = 10.0,
    reconnect_interval_s: float = 5.0,
) -> RabbitPublisher:
    """A connected `RabbitPublisher`; raises `BrokerUnavailable` when the broker is not there."""
    publisher = RabbitPublisher(
        url,
        exchange,
        publish_timeout_s=publish_timeout_s,
        connect_timeout_s=connect_timeout_s,
        reconnect_interval_s=reconnect_interval_s,
    )
    await publisher.connect()
    return publisher
