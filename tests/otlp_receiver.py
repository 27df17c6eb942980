"""A small OTLP/HTTP trace receiver for the test suites and `make demo`.

It stands in for an OpenTelemetry collector: it accepts `POST /v1/traces` with an
`ExportTraceServiceRequest` in protobuf, decodes it with the `opentelemetry-proto`
package, and keeps the spans as plain dictionaries that the Erlang side fetches with
`py:call(otlp_receiver, spans, [Port])`.

The server runs on 127.0.0.1, on a port the OS picks, in a thread of the interpreter
that runs it, so it ends with the VM at the latest; `stop/1` ends it earlier.
"""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

TRACES_PATH = "/v1/traces"
# A request body larger than this is refused (413) rather than read.
MAX_BODY = 64 * 1024 * 1024

_STATUS = {
    Status.STATUS_CODE_UNSET: "unset",
    Status.STATUS_CODE_OK: "ok",
    Status.STATUS_CODE_ERROR: "error",
}


class _Store:
    """What one receiver got: its spans in arrival order and how many requests."""

    def __init__(self, delay: float) -> None:
        self.lock = threading.Lock()
        self.spans: list[dict[str, Any]] = []
        self.requests = 0
        self.delay = delay


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    store: _Store


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
        if self.path != TRACES_PATH:
            self._answer(404, b"")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(413, b"")
            return
        body = self.rfile.read(length)
        if self.headers.get("Content-Type") != "application/x-protobuf":
            self._answer(415, b"")
            return
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except Exception:  # a malformed body is the sender's fault: 400
            self._answer(400, b"")
            return
        spans = list(_decode(request))
        store = self.server.store
        if store.delay:
            time.sleep(store.delay)
        with store.lock:
            store.spans.extend(spans)
            store.requests += 1
        self._answer(200, ExportTraceServiceResponse().SerializeToString())

    def _answer(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet: the tests look at the spans, not at an access log."""


_servers: dict[int, tuple[_Server, threading.Thread]] = {}


def start(delay: float = 0.0) -> int:
    """Start a receiver and answer its port. `delay` (seconds) holds every answer back,
    to play a slow collector."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.store = _Store(delay)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05},
        name="otlp-receiver", daemon=True)
    thread.start()
    port = server.server_address[1]
    _servers[port] = (server, thread)
    return port


def stop(port: int) -> bool:
    """Stop the receiver on `port`; False when none runs there."""
    entry = _servers.pop(port, None)
    if entry is None:
        return False
    server, thread = entry
    server.shutdown()
    server.server_close()
    thread.join()
    return True


def stop_all() -> int:
    """Stop every receiver; answers how many ran."""
    ports = list(_servers)
    for port in ports:
        stop(port)
    return len(ports)


def spans(port: int) -> list[dict[str, Any]]:
    """The spans received so far, in arrival order."""
    store = _servers[port][0].store
    with store.lock:
        return list(store.spans)


def requests(port: int) -> int:
    """How many export requests were answered."""
    store = _servers[port][0].store
    with store.lock:
        return store.requests


def wait_for(port: int, count: int, timeout: float) -> list[dict[str, Any]]:
    """The spans once at least `count` arrived, or those there are after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        got = spans(port)
        if len(got) >= count or time.monotonic() >= deadline:
            return got
        time.sleep(0.02)


def clear(port: int) -> None:
    store = _servers[port][0].store
    with store.lock:
        store.spans.clear()


def _decode(request: ExportTraceServiceRequest) -> Any:
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                decoded = _span(span, resource, scope_spans.scope.name)
                # The request spans of the calls that fetch spans from here would
                # otherwise be among the spans they fetch.
                if decoded["attributes"].get("py.module") != __name__:
                    yield decoded


def _span(span: Span, resource: dict[str, Any], scope: str) -> dict[str, Any]:
    return {
        "name": span.name,
        "trace_id": span.trace_id.hex(),
        "span_id": span.span_id.hex(),
        "parent_span_id": span.parent_span_id.hex() or None,
        "kind": Span.SpanKind.Name(span.kind),
        "start_ns": span.start_time_unix_nano,
        "end_ns": span.end_time_unix_nano,
        "duration_us": (span.end_time_unix_nano - span.start_time_unix_nano) // 1000,
        "status": _STATUS.get(span.status.code, "unset"),
        "status_message": span.status.message,
        "attributes": _attributes(span.attributes),
        "events": [
            {"name": e.name, "attributes": _attributes(e.attributes)}
            for e in span.events
        ],
        "resource": resource,
        "scope": scope,
    }


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


def _value(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which == "array_value":
        return [_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return _attributes(v.kvlist_value.values)
    if which is None:
        return None
    return getattr(v, which)
