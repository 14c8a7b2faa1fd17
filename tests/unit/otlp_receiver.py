"""A real OTLP/HTTP receiver on loopback: it decodes what exporters send (protobuf, as a
collector would) and keeps it for a test to read. Not a mock: the exporter under test speaks HTTP
to it exactly as it would to an OpenTelemetry Collector."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    """What the receiver was sent, decoded, by path."""

    url: str
    metrics: list[ExportMetricsServiceRequest] = field(default_factory=list)
    traces: list[ExportTraceServiceRequest] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


@contextmanager
def otlp_receiver() -> Iterator[Received]:
    """Serve on 127.0.0.1 (a free port) until the block ends; `url` is the base URL."""
    received = Received(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            received.paths.append(self.path)
            received.content_types.append(self.headers.get("Content-Type", ""))
            if self.path.endswith("/v1/metrics") or self.path.endswith("/ingest/metrics"):
                received.metrics.append(ExportMetricsServiceRequest.FromString(body))
            elif self.path.endswith("/v1/traces"):
                received.traces.append(ExportTraceServiceRequest.FromString(body))
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test's output stays the test's

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="otlp-receiver", daemon=True
    )
    thread.start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
