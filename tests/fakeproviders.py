"""Loopback fakes of the OpenAI and Anthropic HTTP APIs for tests.

Real, unmodified clients (the ``openai`` and ``anthropic`` SDKs, and the Haystack components built on them) talk
to these servers when pointed at them with environment variables::

    with FakeOpenAI() as oai, FakeAnthropic() as ant:
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("OPENAI_BASE_URL", oai.base_url)          # http://127.0.0.1:PORT/v1
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
        monkeypatch.setenv("ANTHROPIC_BASE_URL", ant.base_url)       # http://127.0.0.1:PORT
        oai.model_map = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
        oai.usage = {"prompt_tokens": 100, "completion_tokens": 20, "cached_tokens": 30, "reasoning_tokens": 5}
        oai.script = [tool_call("get_weather", {"city": "Paris"}), "It is sunny."]
        oai.failures = [{"status": 429, "retry_after": 0.01}]
        ...

Only the standard library is used (``http.server`` with ``ThreadingHTTPServer``). Every server binds
``127.0.0.1`` on an ephemeral port, serves each connection on a daemon thread, keeps connections alive like the
real APIs (streams are sent with chunked transfer encoding) and shuts down promptly, even with idle keep-alive
connections or requests still sleeping in an injected delay.

Endpoints
---------
FakeOpenAI: ``POST /v1/chat/completions`` (plain and SSE streaming, ``n`` choices, ``stream_options.include_usage``),
``POST /v1/responses`` (plain and SSE streaming), ``POST /v1/embeddings`` (float or base64), ``GET /v1/models``.
FakeAnthropic: ``POST /v1/messages`` (plain and SSE streaming), ``GET /v1/models``.

Replies
-------
Each chat request (chat completions, responses, messages) takes the next item of ``script``. An item is a string
(text reply), a :class:`ScriptedReply` (see :func:`reply` and :func:`tool_call`), a dict with the keys of
:class:`ScriptedReply` (``text``, ``tool_calls``/``tool_call``, ``usage``, ``finish_reason``), or a callable that
receives the parsed request body and returns one of those. When the script is empty, ``responder`` (if set) is
called with the request body; otherwise the reply is ``"fake reply to: <first 40 chars of last user message>"``.
For tool-calling agents, :class:`ToolLoop` is a responder that calls a named tool N times (or forever) and then
answers, deciding from each request's own history; :func:`route_by_tools` picks a responder by the tools a request
offers (the outer and the inner agent of a nested pair on one server).

Usage
-----
Usage is deterministic. Unless configured, token counts are estimated as ``ceil(chars / 4)`` of the request's text
and of the reply. Values set in ``usage`` (all models), ``model_usage[model]`` (one model; the request model or
the response model) and a scripted item's ``usage`` override the estimate, in that order.
OpenAI keys: ``prompt_tokens`` (alias ``input_tokens``; includes cached tokens, as in the real API),
``completion_tokens`` (alias ``output_tokens``; includes reasoning), ``cached_tokens``, ``reasoning_tokens``,
``cache_write_tokens``. Anthropic keys: ``input_tokens`` (net of cache, as in the real API), ``output_tokens``,
``cache_read_input_tokens``, ``cache_creation_input_tokens``. Embeddings take ``prompt_tokens`` from
``model_usage[model]``, else ``embedding_tokens``, else the estimate (``usage`` is for chat only).

Failures
--------
``failures`` is consumed one item per request (the first item whose optional ``path`` is a suffix of the request
path). Keys: ``status`` (error status with the provider's real error JSON), ``retry_after`` (seconds, sent as
``retry-after-ms`` and ``retry-after``), ``message``, ``type``, ``code``, ``headers``, ``body`` (raw JSON body to
send instead), ``delay`` (sleep first; without ``status`` the request is then answered normally, which provokes
client timeouts), ``disconnect`` (close the connection without answering), ``path``, ``echo_key`` (the error
message echoes the API key the request carried, as a careless provider or proxy does: ``"plain"``, ``"base64"``
(as in a Basic auth header), ``"url"`` (URL-encoded) or ``"all"``). ``latency`` adds a sleep to every request.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import math
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

__all__ = [
    "FakeAnthropic",
    "FakeOpenAI",
    "FakeProviderServer",
    "RecordedRequest",
    "ScriptedReply",
    "ToolCallSpec",
    "ToolLoop",
    "offered_tools",
    "reply",
    "route_by_tools",
    "tool_call",
    "tool_calls_in_history",
]

JSON = dict[str, Any]
ScriptItem = Any  # str | ScriptedReply | dict | Callable[[dict], str | ScriptedReply | dict]

_AUTH_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization"})
REDACTED = "<redacted>"


# ----------------------------------------------------------------------------------------------------------------------
# Scripted replies
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class ToolCallSpec:
    """One tool call a scripted reply asks the client to make.

    :param name: Tool (function) name.
    :param arguments: Arguments as a dict (serialized to JSON) or an already serialized JSON string.
    :param id: Optional call id; a deterministic one is generated when omitted.
    """

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the JSON string the APIs send."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments)

    @property
    def arguments_dict(self) -> Any:
        """The arguments as a parsed object (Anthropic sends tool input as a JSON object)."""
        if isinstance(self.arguments, str):
            return json.loads(self.arguments) if self.arguments else {}
        return self.arguments


@dataclass
class ScriptedReply:
    """One scripted model turn: text, tool calls, or both.

    :param text: Assistant text (may be ``None`` for a pure tool-call turn).
    :param tool_calls: Tool calls to return (OpenAI ``tool_calls``; Anthropic ``tool_use`` blocks; Responses
        ``function_call`` items).
    :param usage: Per-reply usage override (same keys as the server's ``usage``).
    :param finish_reason: ``"stop"``, ``"length"``, ``"tool_calls"``, ``"content_filter"`` (mapped to each
        provider's value) or a raw provider value. Defaults to ``tool_calls`` when there are tool calls, else ``stop``.
    """

    text: str | None = None
    tool_calls: list[ToolCallSpec] = field(default_factory=list)
    usage: dict[str, int] | None = None
    finish_reason: str | None = None


def reply(text: str, *, usage: dict[str, int] | None = None, finish_reason: str | None = None) -> ScriptedReply:
    """Build a scripted plain-text reply."""
    return ScriptedReply(text=text, usage=usage, finish_reason=finish_reason)


def tool_call(
    name: str,
    arguments: dict[str, Any] | str | None = None,
    *,
    id: str | None = None,  # noqa: A002 - mirrors the API field name
    text: str | None = None,
    usage: dict[str, int] | None = None,
) -> ScriptedReply:
    """Build a scripted reply that calls one tool (optionally preceded by some text)."""
    return ScriptedReply(text=text, tool_calls=[ToolCallSpec(name=name, arguments=arguments or {}, id=id)], usage=usage)


def _normalize_item(item: ScriptItem, body: JSON) -> ScriptedReply:
    """Turn any accepted script item form into a :class:`ScriptedReply`."""
    if callable(item) and not isinstance(item, ScriptedReply):
        item = item(body)
    if isinstance(item, ScriptedReply):
        return item
    if isinstance(item, str):
        return ScriptedReply(text=item)
    if isinstance(item, dict):
        raw_calls = list(item.get("tool_calls") or [])
        if item.get("tool_call"):
            raw_calls.append(item["tool_call"])
        calls = [c if isinstance(c, ToolCallSpec) else ToolCallSpec(**c) for c in raw_calls]
        return ScriptedReply(
            text=item.get("text"), tool_calls=calls, usage=item.get("usage"), finish_reason=item.get("finish_reason")
        )
    raise TypeError(f"fakeproviders: unsupported script item {item!r}")


def offered_tools(body: JSON) -> set[str]:
    """Names of the tools a chat request offers (OpenAI chat ``tools[].function.name``, Responses and Anthropic
    ``tools[].name``): lets one server tell the conversations of different agents apart."""
    names: set[str] = set()
    for spec in body.get("tools") or []:
        if isinstance(spec, dict):
            name = (spec.get("function") or {}).get("name") if isinstance(spec.get("function"), dict) else None
            name = name or spec.get("name")
            if isinstance(name, str):
                names.add(name)
    return names


def tool_calls_in_history(body: JSON, name: str | None = None) -> int:
    """How many tool calls (named ``name``, or any) the conversation sent in a chat request already holds: OpenAI
    chat assistant ``tool_calls``, Responses ``function_call`` input items, Anthropic ``tool_use`` blocks."""
    count = 0
    for message in body.get("messages") or body.get("input") or []:
        if not isinstance(message, dict):
            continue
        found: list[Any] = []
        if message.get("type") == "function_call":  # Responses input item
            found.append(message.get("name"))
        for call in message.get("tool_calls") or []:  # OpenAI chat
            if isinstance(call, dict):
                found.append((call.get("function") or {}).get("name"))
        content = message.get("content")
        if isinstance(content, list):  # Anthropic blocks
            found += [b.get("name") for b in content if isinstance(b, dict) and b.get("type") == "tool_use"]
        count += sum(1 for n in found if name is None or n == name)
    return count


@dataclass
class ToolLoop:
    """A responder for tool-calling agents: call ``tool`` until the conversation holds ``times`` calls of it, then
    answer ``final``. ``times=None`` loops forever (an agent stopped only by ``max_agent_steps`` or a budget).

    The decision is taken from the request's own history, so it holds per conversation: concurrent or nested
    agents on the same server each get their own loop. Works on chat completions, Responses and Anthropic
    messages, streamed or not::

        oai.responder = ToolLoop("search", times=3, arguments={"q": "x"}, final="found it")   # 4 LLM calls
        ant.responder = ToolLoop("search", times=None)                                          # never stops

    ``arguments`` may be a callable taking the call number (0-based). ``usage`` overrides usage per reply.
    """

    tool: str
    times: int | None = 1
    arguments: dict[str, Any] | Callable[[int], dict[str, Any]] = field(default_factory=dict)
    final: str = "done"
    usage: dict[str, int] | None = None

    def __call__(self, body: JSON) -> ScriptedReply:
        done = tool_calls_in_history(body, self.tool)
        if self.times is not None and done >= self.times:
            return ScriptedReply(text=self.final, usage=self.usage)
        args = self.arguments(done) if callable(self.arguments) else self.arguments
        return ScriptedReply(tool_calls=[ToolCallSpec(name=self.tool, arguments=args)], usage=self.usage)


def route_by_tools(routes: dict[str, Callable[[JSON], ScriptItem]], default: ScriptItem = "done") -> Callable[
        [JSON], ScriptItem]:
    """A responder that picks the responder of the first route whose tool the request offers (so the outer and
    the inner agent of a nested pair, on one server, follow their own scripts); ``default`` otherwise."""

    def respond(body: JSON) -> ScriptItem:
        offered = offered_tools(body)
        for tool, responder in routes.items():
            if tool in offered:
                return responder(body)
        return default(body) if callable(default) else default

    return respond


_FINISH_REASONS: dict[str, tuple[str, str]] = {
    # generic name: (openai, anthropic)
    "stop": ("stop", "end_turn"),
    "length": ("length", "max_tokens"),
    "tool_calls": ("tool_calls", "tool_use"),
    "content_filter": ("content_filter", "refusal"),
}


def _finish_reason(item: ScriptedReply, provider: int) -> str:
    """Resolve the finish reason for ``provider`` (0 = OpenAI, 1 = Anthropic)."""
    generic = item.finish_reason or ("tool_calls" if item.tool_calls else "stop")
    pair = _FINISH_REASONS.get(generic)
    return pair[provider] if pair else generic


# ----------------------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------------------


class RecordedRequest(NamedTuple):
    """A request the server received: path, parsed JSON body (``None`` for GET) and headers.

    Header names are lower-case; the values of authentication headers are replaced by ``"<redacted>"``.
    """

    path: str
    body: Any
    headers: dict[str, str]


def estimate_tokens(text: str) -> int:
    """Deterministic token estimate: ``ceil(len(text) / 4)``, at least 1 for non-empty text."""
    return (len(text) + 3) // 4


def _collect_text(value: Any) -> list[str]:
    """Collect every human-readable string inside a message structure (content strings and ``text`` fields)."""
    if isinstance(value, str):
        return [value]
    out: list[str] = []
    if isinstance(value, list):
        for v in value:
            out.extend(_collect_text(v))
    elif isinstance(value, dict):
        for key in ("content", "text", "input", "output", "arguments", "system", "instructions"):
            if key in value:
                out.extend(_collect_text(value[key]))
        if isinstance(value.get("function"), dict):
            out.extend(_collect_text(value["function"]))
    return out


def _last_user_text(messages: Any) -> str:
    """Text of the last user message in an OpenAI, Responses or Anthropic message list (or a plain string)."""
    if isinstance(messages, str):
        return messages
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return " ".join(t for t in _collect_text(message.get("content")) if t)
    return ""


def _split_text(text: str) -> list[str]:
    """Split text into word-sized streaming deltas that concatenate back to the original."""
    return re.findall(r"\S+\s*|\s+", text) or [""]


def _split_json(payload: str, parts: int = 3) -> list[str]:
    """Split a JSON string into a few partial fragments, as the APIs stream tool arguments."""
    if not payload:
        return [""]
    size = max(1, math.ceil(len(payload) / parts))
    return [payload[i : i + size] for i in range(0, len(payload), size)]


def _embedding(text: str, dim: int) -> list[float]:
    """A deterministic unit-length vector derived from ``text``."""
    values: list[float] = []
    for counter in itertools.count():
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        for i in range(0, len(digest), 4):
            values.append(int.from_bytes(digest[i : i + 4], "little") / 2**31 - 1.0)
        if len(values) >= dim:
            break
    values = values[:dim]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


class _Stop(Exception):
    """Raised inside a handler when the server is stopping or the client went away."""


# ----------------------------------------------------------------------------------------------------------------------
# HTTP plumbing
# ----------------------------------------------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks open connections so ``stop()`` can close idle keep-alive sockets."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, fake: FakeProviderServer) -> None:
        self.fake = fake
        self.open_connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hang up (e.g. resetting an idle keep-alive connection); report anything else."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError) or (
            isinstance(exc, OSError) and self.fake._stopping.is_set()
        ):
            return
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Request handler: reads the body and hands everything to the owning fake server."""

    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    response_started = False

    def setup(self) -> None:
        super().setup()
        # Nagle off: a response's last segment must not wait for the client's delayed ACK (~20-40 ms a response).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.open_connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        finally:
            with self.server.connections_lock:
                self.server.open_connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
        """Silence the default stderr access log."""

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        self.server.fake._dispatch(self, "GET")

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        self.server.fake._dispatch(self, "POST")

    def do_DELETE(self) -> None:  # noqa: N802 - http.server naming
        self.server.fake._dispatch(self, "DELETE")

    def read_body(self) -> bytes:
        """Read the request body (Content-Length or chunked)."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(data)
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        """Send a complete JSON response with Content-Length."""
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        # Headers and body in ONE write (end_headers would send the headers alone first).
        self._headers_buffer.append(b"\r\n" + data)
        self.flush_headers()
        self.response_started = True

    def send_sse(self, events: Iterable[bytes], headers: dict[str, str] | None = None, delay: float = 0.0) -> None:
        """Send a server-sent-events stream with chunked transfer encoding."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.response_started = True
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
            if delay and self.server.fake._stopping.wait(delay):
                raise _Stop
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# ----------------------------------------------------------------------------------------------------------------------
# Base server
# ----------------------------------------------------------------------------------------------------------------------


class FakeProviderServer:
    """Common machinery of the fake provider servers (lifecycle, recording, script, failures, usage).

    Public attributes (plain attributes: assign or mutate them at any time; the server reads them per request):

    - ``script``: list of scripted replies, consumed one per chat request.
    - ``responder``: optional ``callable(body) -> item`` used when the script is empty.
    - ``failures``: list of failure dicts, consumed one per request.
    - ``latency``: seconds to sleep before answering every request.
    - ``chunk_delay``: seconds to sleep between streamed events.
    - ``model_map``: request model -> response model (e.g. a dated snapshot id); unmapped models are echoed.
    - ``usage``: usage override for every chat request; ``model_usage``: per-model overrides.
    - ``models``: ids listed by ``GET /v1/models``.
    - ``expected_api_key``: if set, requests with another key get the provider's 401.
    """

    #: Short provider name, used in ids and messages.
    provider = "fake"

    def __init__(
        self,
        *,
        script: list[ScriptItem] | None = None,
        failures: list[dict[str, Any]] | None = None,
        usage: dict[str, int] | None = None,
        model_usage: dict[str, dict[str, int]] | None = None,
        model_map: dict[str, str] | None = None,
        latency: float = 0.0,
        chunk_delay: float = 0.0,
        models: list[str] | None = None,
        expected_api_key: str | None = None,
        responder: Callable[[JSON], ScriptItem] | None = None,
    ) -> None:
        self.script: list[ScriptItem] = list(script or [])
        self.failures: list[dict[str, Any]] = list(failures or [])
        self.usage: dict[str, int] = dict(usage or {})
        self.model_usage: dict[str, dict[str, int]] = dict(model_usage or {})
        self.model_map: dict[str, str] = dict(model_map or {})
        self.latency = latency
        self.chunk_delay = chunk_delay
        self.models: list[str] = list(models or [])
        self.expected_api_key = expected_api_key
        self.responder = responder
        self._lock = threading.RLock()
        self._requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------------------------------

    def start(self) -> FakeProviderServer:
        """Bind 127.0.0.1 on an ephemeral port and serve on a daemon thread. Returns ``self``."""
        if self._httpd is not None:
            return self
        self._stopping.clear()
        self._httpd = _HTTPServer(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping handlers and close every open connection. Safe to call twice."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        with httpd.connections_lock:
            connections = list(httpd.open_connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        httpd.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the server is started."""
        return self._httpd is not None

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Root URL, ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """The base URL the provider's SDK expects (overridden per provider)."""
        return self.url

    # -- scripting helpers ---------------------------------------------------------------------------------------------

    def add_reply(self, text: str, *, usage: dict[str, int] | None = None, finish_reason: str | None = None) -> None:
        """Append a text reply to the script."""
        with self._lock:
            self.script.append(reply(text, usage=usage, finish_reason=finish_reason))

    def add_tool_call(
        self,
        name: str,
        arguments: dict[str, Any] | str | None = None,
        *,
        id: str | None = None,  # noqa: A002 - mirrors the API field name
        text: str | None = None,
        usage: dict[str, int] | None = None,
    ) -> None:
        """Append a reply calling one tool to the script."""
        with self._lock:
            self.script.append(tool_call(name, arguments, id=id, text=text, usage=usage))

    def add_failure(
        self,
        status: int | None = None,
        *,
        retry_after: float | None = None,
        delay: float | None = None,
        path: str | None = None,
        **extra: Any,
    ) -> None:
        """Append a failure (see the module docstring for the keys)."""
        failure: dict[str, Any] = dict(extra)
        if status is not None:
            failure["status"] = status
        if retry_after is not None:
            failure["retry_after"] = retry_after
        if delay is not None:
            failure["delay"] = delay
        if path is not None:
            failure["path"] = path
        with self._lock:
            self.failures.append(failure)

    # -- recording -----------------------------------------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far (including failed ones), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Number of requests received so far."""
        with self._lock:
            return len(self._requests)

    def count(self, path_suffix: str = "") -> int:
        """Number of requests whose path ends with ``path_suffix`` (e.g. ``"/chat/completions"``)."""
        with self._lock:
            return sum(1 for r in self._requests if r.path.endswith(path_suffix))

    def bodies(self, path_suffix: str = "") -> list[Any]:
        """Parsed bodies of the requests whose path ends with ``path_suffix``."""
        with self._lock:
            return [r.body for r in self._requests if r.path.endswith(path_suffix)]

    def last_request(self, path_suffix: str = "") -> RecordedRequest | None:
        """The most recent request whose path ends with ``path_suffix``, or ``None``."""
        with self._lock:
            for r in reversed(self._requests):
                if r.path.endswith(path_suffix):
                    return r
        return None

    def reset(self) -> None:
        """Clear the script, the failures and the request log (configuration such as usage stays)."""
        with self._lock:
            self.script.clear()
            self.failures.clear()
            self._requests.clear()

    # -- internals shared by providers ---------------------------------------------------------------------------------

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids):06d}"

    def _response_model(self, model: str) -> str:
        return self.model_map.get(model, model)

    def _next_reply(self, body: JSON, messages: Any) -> ScriptedReply:
        with self._lock:
            item = self.script.pop(0) if self.script else None
            responder = self.responder
        if item is None and responder is not None:
            item = responder(body)
        if item is None:
            item = f"fake reply to: {_last_user_text(messages)[:40]}"
        return _normalize_item(item, body)

    def _usage_overrides(self, model: str, response_model: str, item: ScriptedReply | None) -> dict[str, int]:
        merged: dict[str, int] = dict(self.usage)
        merged.update(self.model_usage.get(response_model, {}))
        merged.update(self.model_usage.get(model, {}))
        if item is not None and item.usage:
            merged.update(item.usage)
        return merged

    def _take_failure(self, path: str) -> dict[str, Any] | None:
        with self._lock:
            for i, failure in enumerate(self.failures):
                if path.endswith(failure.get("path", "")):
                    return self.failures.pop(i)
        return None

    def _wait(self, seconds: float) -> None:
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Stop

    def _dispatch(self, handler: _Handler, method: str) -> None:
        """Handle one HTTP request end to end."""
        path = handler.path.split("?", 1)[0]
        handler.response_started = False
        try:
            raw = handler.read_body()
            headers = {k.lower(): (REDACTED if k.lower() in _AUTH_HEADERS else v) for k, v in handler.headers.items()}
            body: Any = None
            parse_error = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError as err:
                    parse_error = str(err)
                    body = raw.decode("utf-8", "replace")
            with self._lock:
                self._requests.append(RecordedRequest(path=path, body=body, headers=headers))

            self._wait(self.latency)
            failure = self._take_failure(path)
            if failure is not None:
                self._wait(float(failure.get("delay") or 0.0))
                if failure.get("disconnect"):
                    handler.close_connection = True
                    handler.connection.shutdown(socket.SHUT_RDWR)
                    return
                if failure.get("status"):
                    self._send_failure(handler, failure)
                    return

            if self.expected_api_key is not None and self._api_key(handler) != self.expected_api_key:
                self._send_error(handler, 401, message="Incorrect API key provided.")
                return
            if parse_error is not None:
                self._send_error(handler, 400, message=f"Invalid JSON body: {parse_error}")
                return
            self._route(handler, method, path, body if isinstance(body, dict) else {})
        except (_Stop, TimeoutError, BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            handler.close_connection = True
        except OSError:
            handler.close_connection = True
        except Exception as err:  # noqa: BLE001 - report bugs in the fake as a 500 the test will see
            handler.close_connection = True
            if handler.response_started:
                return
            try:
                self._send_error(handler, 500, message=f"fakeproviders internal error: {type(err).__name__}: {err}")
            except OSError:
                pass

    def _send_failure(self, handler: _Handler, failure: dict[str, Any]) -> None:
        status = int(failure["status"])
        if failure.get("echo_key"):
            failure = {**failure, "message": self._echo_key_message(handler, str(failure["echo_key"]))}
        headers = dict(failure.get("headers") or {})
        retry_after = failure.get("retry_after")
        if retry_after is not None:
            headers.setdefault("retry-after-ms", str(int(float(retry_after) * 1000)))
            headers.setdefault("retry-after", str(retry_after))
        if "body" in failure:
            headers.update(self._common_headers())
            handler.send_json(status, failure["body"], headers)
            return
        self._send_error(
            handler,
            status,
            message=failure.get("message"),
            type_=failure.get("type"),
            code=failure.get("code"),
            headers=headers,
        )

    def _echo_key_message(self, handler: _Handler, mode: str) -> str:
        from urllib.parse import quote

        key = self._api_key(handler) or ""
        forms = {"plain": key, "base64": base64.b64encode(f"apikey:{key}".encode()).decode(),
                 "url": quote(key + "/", safe="")}
        shown = [forms[m] for m in (("plain", "base64", "url") if mode == "all" else (mode,))]
        return f"Incorrect API key provided: {' | '.join(shown)}. You can find your API key at the dashboard."

    # -- provider hooks ------------------------------------------------------------------------------------------------

    def _api_key(self, handler: _Handler) -> str | None:
        raise NotImplementedError

    def _common_headers(self) -> dict[str, str]:
        return {}

    def _send_error(
        self,
        handler: _Handler,
        status: int,
        *,
        message: str | None = None,
        type_: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        raise NotImplementedError

    def _route(self, handler: _Handler, method: str, path: str, body: JSON) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------------------------------------------------
# OpenAI
# ----------------------------------------------------------------------------------------------------------------------

_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    # status: (type, code, default message)
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-****."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country or region not supported."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    409: ("invalid_request_error", None, "Conflict."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


class FakeOpenAI(FakeProviderServer):
    """Fake of the OpenAI REST API. Point clients at it with ``OPENAI_BASE_URL=<server.base_url>``.

    Extra attributes: ``embedding_dim`` (default vector size when the request has no ``dimensions``, 16) and
    ``embedding_tokens`` (fixed ``prompt_tokens`` for embedding requests, default ``None`` = estimate).
    """

    provider = "openai"

    def __init__(self, *, embedding_dim: int = 16, embedding_tokens: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("models", ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"])
        super().__init__(**kwargs)
        self.embedding_dim = embedding_dim
        self.embedding_tokens = embedding_tokens

    def start(self) -> FakeOpenAI:
        """Start serving; returns ``self``."""
        super().start()
        return self

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, the value for ``OPENAI_BASE_URL``."""
        return f"{self.url}/v1"

    # -- hooks ---------------------------------------------------------------------------------------------------------

    def _api_key(self, handler: _Handler) -> str | None:
        auth = handler.headers.get("Authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else (handler.headers.get("api-key") or None)

    def _common_headers(self) -> dict[str, str]:
        return {"x-request-id": self._next_id("req_fake"), "openai-processing-ms": "1"}

    def _send_error(
        self,
        handler: _Handler,
        status: int,
        *,
        message: str | None = None,
        type_: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_type, default_code, default_message = _OPENAI_ERRORS.get(
            status, ("server_error" if status >= 500 else "invalid_request_error", None, f"HTTP {status}")
        )
        payload = {
            "error": {
                "message": message or default_message,
                "type": type_ or default_type,
                "param": None,
                "code": code if code is not None else default_code,
            }
        }
        handler.send_json(status, payload, {**self._common_headers(), **(headers or {})})

    def _route(self, handler: _Handler, method: str, path: str, body: JSON) -> None:
        if method == "POST" and path == "/v1/chat/completions":
            self._chat_completions(handler, body)
        elif method == "POST" and path == "/v1/responses":
            self._responses(handler, body)
        elif method == "POST" and path == "/v1/embeddings":
            self._embeddings(handler, body)
        elif method == "GET" and path == "/v1/models":
            now = int(time.time())
            data = [{"id": m, "object": "model", "created": now, "owned_by": "openai"} for m in self.models]
            handler.send_json(200, {"object": "list", "data": data}, self._common_headers())
        elif method == "GET" and path.startswith("/v1/models/"):
            model = path.rsplit("/", 1)[1]
            if model not in self.models:
                self._send_error(handler, 404, message=f"The model '{model}' does not exist", code="model_not_found")
                return
            payload = {"id": model, "object": "model", "created": int(time.time()), "owned_by": "openai"}
            handler.send_json(200, payload, self._common_headers())
        else:
            self._send_error(handler, 404, message=f"Invalid URL ({method} {path})", code=None)

    # -- usage ---------------------------------------------------------------------------------------------------------

    def _openai_usage(
        self, model: str, response_model: str, item: ScriptedReply, prompt_text: str, completion_estimate: int
    ) -> dict[str, int]:
        values = {
            "prompt_tokens": estimate_tokens(prompt_text),
            "completion_tokens": completion_estimate,
            "cached_tokens": 0,
            "reasoning_tokens": 0,
            "cache_write_tokens": 0,
        }
        aliases = {"input_tokens": "prompt_tokens", "output_tokens": "completion_tokens"}
        for key, value in self._usage_overrides(model, response_model, item).items():
            key = aliases.get(key, key)
            if key not in values:
                raise ValueError(f"unknown OpenAI usage key {key!r}; use one of {sorted(values)}")
            values[key] = int(value)
        return values

    @staticmethod
    def _chat_usage_json(u: dict[str, int]) -> JSON:
        return {
            "prompt_tokens": u["prompt_tokens"],
            "completion_tokens": u["completion_tokens"],
            "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
            "prompt_tokens_details": {"cached_tokens": u["cached_tokens"], "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": u["reasoning_tokens"],
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    @staticmethod
    def _responses_usage_json(u: dict[str, int]) -> JSON:
        return {
            "input_tokens": u["prompt_tokens"],
            "input_tokens_details": {
                "cached_tokens": u["cached_tokens"],
                "cache_write_tokens": u["cache_write_tokens"],
            },
            "output_tokens": u["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": u["reasoning_tokens"]},
            "total_tokens": u["prompt_tokens"] + u["completion_tokens"],
        }

    @staticmethod
    def _completion_estimate(item: ScriptedReply) -> int:
        text = (item.text or "") + "".join(c.name + c.arguments_json for c in item.tool_calls)
        return max(1, estimate_tokens(text))

    # -- chat completions ----------------------------------------------------------------------------------------------

    def _chat_completions(self, handler: _Handler, body: JSON) -> None:
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            self._send_error(handler, 400, message="you must provide a model parameter", code=None)
            return
        if not isinstance(messages, list) or not messages:
            self._send_error(handler, 400, message="Missing required parameter: 'messages'.", code=None)
            return
        n = int(body.get("n") or 1)
        item = self._next_reply(body, messages)
        response_model = self._response_model(model)
        prompt_text = " ".join(_collect_text(messages))
        usage = self._openai_usage(model, response_model, item, prompt_text, self._completion_estimate(item) * n)
        finish = _finish_reason(item, 0)
        completion_id = self._next_id("chatcmpl-fake")
        created = int(time.time())
        call_ids = [c.id or self._next_id("call_fake") for c in item.tool_calls]

        if not body.get("stream"):
            message: JSON = {"role": "assistant", "content": item.text, "refusal": None, "annotations": []}
            if item.tool_calls:
                message["tool_calls"] = [
                    {"id": cid, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
                    for cid, c in zip(call_ids, item.tool_calls, strict=True)
                ]
            payload = {
                "id": completion_id,
                "object": "chat.completion",
                "created": created,
                "model": response_model,
                "choices": [
                    {"index": i, "message": message, "logprobs": None, "finish_reason": finish} for i in range(n)
                ],
                "usage": self._chat_usage_json(usage),
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
            }
            handler.send_json(200, payload, self._common_headers())
            return

        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

        def chunk(choices: list[JSON], usage_json: JSON | None = None) -> bytes:
            data: JSON = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": response_model,
                "service_tier": "default",
                "system_fingerprint": "fp_fake",
                "choices": choices,
            }
            if include_usage:
                data["usage"] = usage_json
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        def events() -> Iterator[bytes]:
            for i in range(n):

                def choice(delta: JSON, finish_reason: str | None = None, index: int = i) -> JSON:
                    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}

                if item.tool_calls:
                    first = True
                    if item.text:
                        yield chunk([choice({"role": "assistant", "content": "", "refusal": None})])
                        first = False
                        for piece in _split_text(item.text):
                            yield chunk([choice({"content": piece})])
                    for k, (cid, call) in enumerate(zip(call_ids, item.tool_calls, strict=True)):
                        start: JSON = {
                            "tool_calls": [
                                {
                                    "index": k,
                                    "id": cid,
                                    "type": "function",
                                    "function": {"name": call.name, "arguments": ""},
                                }
                            ]
                        }
                        if first:
                            start = {"role": "assistant", "content": None, "refusal": None, **start}
                            first = False
                        yield chunk([choice(start)])
                        for piece in _split_json(call.arguments_json):
                            yield chunk([choice({"tool_calls": [{"index": k, "function": {"arguments": piece}}]})])
                else:
                    yield chunk([choice({"role": "assistant", "content": "", "refusal": None})])
                    for piece in _split_text(item.text or ""):
                        if piece:
                            yield chunk([choice({"content": piece})])
                yield chunk([choice({}, finish)])
            if include_usage:
                yield chunk([], self._chat_usage_json(usage))
            yield b"data: [DONE]\n\n"

        handler.send_sse(events(), self._common_headers(), self.chunk_delay)

    # -- responses -----------------------------------------------------------------------------------------------------

    def _responses(self, handler: _Handler, body: JSON) -> None:
        model = body.get("model")
        if not isinstance(model, str) or not model:
            self._send_error(
                handler, 400, message="Missing required parameter: 'model'.", code="missing_required_parameter"
            )
            return
        inputs = body.get("input")
        item = self._next_reply(body, inputs)
        response_model = self._response_model(model)
        prompt_text = " ".join(_collect_text(inputs) + _collect_text(body.get("instructions") or ""))
        usage = self._openai_usage(model, response_model, item, prompt_text, self._completion_estimate(item))
        finish = _finish_reason(item, 0)
        response_id = self._next_id("resp_fake")
        created = time.time()

        outputs: list[JSON] = []
        if item.text is not None:
            outputs.append(
                {
                    "id": self._next_id("msg_fake"),
                    "type": "message",
                    "status": "completed",
                    "role": "assistant",
                    "content": [{"type": "output_text", "text": item.text, "annotations": [], "logprobs": []}],
                }
            )
        for call in item.tool_calls:
            outputs.append(
                {
                    "id": self._next_id("fc_fake"),
                    "type": "function_call",
                    "status": "completed",
                    "call_id": call.id or self._next_id("call_fake"),
                    "name": call.name,
                    "arguments": call.arguments_json,
                }
            )

        incomplete = finish == "length"

        def response_obj(status: str, output: list[JSON], with_usage: bool) -> JSON:
            return {
                "id": response_id,
                "object": "response",
                "created_at": created,
                "status": status,
                "background": False,
                "error": None,
                "incomplete_details": {"reason": "max_output_tokens"}
                if incomplete and status != "in_progress"
                else None,
                "instructions": body.get("instructions"),
                "max_output_tokens": body.get("max_output_tokens"),
                "max_tool_calls": None,
                "model": response_model,
                "output": output,
                "parallel_tool_calls": body.get("parallel_tool_calls", True),
                "previous_response_id": body.get("previous_response_id"),
                "reasoning": body.get("reasoning") or {"effort": None, "summary": None},
                "service_tier": "default",
                "store": body.get("store", True),
                "temperature": body.get("temperature", 1.0),
                "text": body.get("text") or {"format": {"type": "text"}, "verbosity": "medium"},
                "tool_choice": body.get("tool_choice", "auto"),
                "tools": body.get("tools") or [],
                "top_p": body.get("top_p", 1.0),
                "truncation": body.get("truncation", "disabled"),
                "usage": self._responses_usage_json(usage) if with_usage else None,
                "user": None,
                "metadata": body.get("metadata") or {},
            }

        final_status = "incomplete" if incomplete else "completed"
        if not body.get("stream"):
            handler.send_json(200, response_obj(final_status, outputs, True), self._common_headers())
            return

        def events() -> Iterator[bytes]:
            seq = itertools.count()

            def event(data: JSON) -> bytes:
                data = {**data, "sequence_number": next(seq)}
                return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n".encode()

            yield event({"type": "response.created", "response": response_obj("in_progress", [], False)})
            yield event({"type": "response.in_progress", "response": response_obj("in_progress", [], False)})
            for index, out in enumerate(outputs):
                if out["type"] == "message":
                    text = out["content"][0]["text"]
                    yield event(
                        {
                            "type": "response.output_item.added",
                            "output_index": index,
                            "item": {**out, "status": "in_progress", "content": []},
                        }
                    )
                    part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                    common = {"item_id": out["id"], "output_index": index, "content_index": 0}
                    yield event({"type": "response.content_part.added", **common, "part": part})
                    for piece in _split_text(text):
                        if piece:
                            yield event(
                                {"type": "response.output_text.delta", **common, "delta": piece, "logprobs": []}
                            )
                    yield event({"type": "response.output_text.done", **common, "text": text, "logprobs": []})
                    yield event({"type": "response.content_part.done", **common, "part": {**part, "text": text}})
                else:
                    yield event(
                        {
                            "type": "response.output_item.added",
                            "output_index": index,
                            "item": {**out, "status": "in_progress", "arguments": ""},
                        }
                    )
                    common = {"item_id": out["id"], "output_index": index}
                    for piece in _split_json(out["arguments"]):
                        yield event({"type": "response.function_call_arguments.delta", **common, "delta": piece})
                    yield event(
                        {"type": "response.function_call_arguments.done", **common, "arguments": out["arguments"]}
                    )
                yield event({"type": "response.output_item.done", "output_index": index, "item": out})
            yield event({"type": f"response.{final_status}", "response": response_obj(final_status, outputs, True)})

        handler.send_sse(events(), self._common_headers(), self.chunk_delay)

    # -- embeddings ----------------------------------------------------------------------------------------------------

    def _embeddings(self, handler: _Handler, body: JSON) -> None:
        model = body.get("model")
        raw_input = body.get("input")
        if not isinstance(model, str) or not model:
            self._send_error(handler, 400, message="you must provide a model parameter", code=None)
            return
        if raw_input is None or raw_input == [] or raw_input == "":
            self._send_error(handler, 400, message="'input' : input must be a non-empty string or array", code=None)
            return
        # str | list[str] | list[int] (one token array) | list[list[int]]
        if isinstance(raw_input, str):
            inputs: list[tuple[str, int]] = [(raw_input, estimate_tokens(raw_input))]
        elif isinstance(raw_input, list) and all(isinstance(x, int) for x in raw_input):
            inputs = [(" ".join(map(str, raw_input)), len(raw_input))]
        else:
            inputs = []
            for x in raw_input:
                if isinstance(x, list):
                    inputs.append((" ".join(map(str, x)), len(x)))
                else:
                    inputs.append((str(x), estimate_tokens(str(x))))
        dim = int(body.get("dimensions") or self.embedding_dim)
        b64 = body.get("encoding_format") == "base64"
        data = []
        for i, (text, _) in enumerate(inputs):
            vector = _embedding(text, dim)
            encoded: Any = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if b64 else vector
            data.append({"object": "embedding", "index": i, "embedding": encoded})
        response_model = self._response_model(model)
        tokens = (self.model_usage.get(model) or self.model_usage.get(response_model) or {}).get("prompt_tokens")
        if tokens is None:
            tokens = self.embedding_tokens
        if tokens is None:
            tokens = sum(max(1, t) for _, t in inputs)
        payload = {
            "object": "list",
            "data": data,
            "model": response_model,
            "usage": {"prompt_tokens": int(tokens), "total_tokens": int(tokens)},
        }
        handler.send_json(200, payload, self._common_headers())


# ----------------------------------------------------------------------------------------------------------------------
# Anthropic
# ----------------------------------------------------------------------------------------------------------------------

_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}


class FakeAnthropic(FakeProviderServer):
    """Fake of the Anthropic Messages API. Point clients at it with ``ANTHROPIC_BASE_URL=<server.base_url>``.

    Extra attribute: ``stream_delta_full_usage`` (default ``True``): the streamed ``message_delta`` event repeats the
    cumulative input and cache counts next to ``output_tokens``, as the current API does; set ``False`` to send only
    ``output_tokens`` there, as the API did before.
    """

    provider = "anthropic"

    def __init__(self, *, stream_delta_full_usage: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("models", ["claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"])
        super().__init__(**kwargs)
        self.stream_delta_full_usage = stream_delta_full_usage

    def start(self) -> FakeAnthropic:
        """Start serving; returns ``self``."""
        super().start()
        return self

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, the value for ``ANTHROPIC_BASE_URL`` (the SDK appends ``/v1/...``)."""
        return self.url

    # -- hooks ---------------------------------------------------------------------------------------------------------

    def _api_key(self, handler: _Handler) -> str | None:
        key = handler.headers.get("x-api-key")
        if key:
            return key
        auth = handler.headers.get("Authorization", "")
        return auth[7:] if auth.lower().startswith("bearer ") else None

    def _common_headers(self) -> dict[str, str]:
        return {"request-id": self._next_id("req_fake")}

    def _send_error(
        self,
        handler: _Handler,
        status: int,
        *,
        message: str | None = None,
        type_: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        default_type, default_message = _ANTHROPIC_ERRORS.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"HTTP {status}")
        )
        common = self._common_headers()
        payload = {
            "type": "error",
            "error": {"type": type_ or code or default_type, "message": message or default_message},
            "request_id": common["request-id"],
        }
        handler.send_json(status, payload, {**common, **(headers or {})})

    def _route(self, handler: _Handler, method: str, path: str, body: JSON) -> None:
        if method == "POST" and path == "/v1/messages":
            self._messages(handler, body)
        elif method == "POST" and path == "/v1/messages/count_tokens":
            text = " ".join(_collect_text(body.get("messages")) + _collect_text(body.get("system") or ""))
            handler.send_json(200, {"input_tokens": estimate_tokens(text)}, self._common_headers())
        elif method == "GET" and path == "/v1/models":
            data = [
                {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"} for m in self.models
            ]
            payload = {
                "data": data,
                "has_more": False,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
            }
            handler.send_json(200, payload, self._common_headers())
        else:
            self._send_error(handler, 404, message=f"Not found: {method} {path}")

    # -- usage ---------------------------------------------------------------------------------------------------------

    def _anthropic_usage(
        self, model: str, response_model: str, item: ScriptedReply, prompt_text: str
    ) -> dict[str, int]:
        completion = (item.text or "") + "".join(c.name + c.arguments_json for c in item.tool_calls)
        values = {
            "input_tokens": estimate_tokens(prompt_text),
            "output_tokens": max(1, estimate_tokens(completion)),
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 0,
        }
        for key, value in self._usage_overrides(model, response_model, item).items():
            if key not in values:
                raise ValueError(f"unknown Anthropic usage key {key!r}; use one of {sorted(values)}")
            values[key] = int(value)
        return values

    @staticmethod
    def _usage_json(u: dict[str, int], output_tokens: int | None = None) -> JSON:
        return {
            "input_tokens": u["input_tokens"],
            "cache_creation_input_tokens": u["cache_creation_input_tokens"],
            "cache_read_input_tokens": u["cache_read_input_tokens"],
            "cache_creation": {
                "ephemeral_5m_input_tokens": u["cache_creation_input_tokens"],
                "ephemeral_1h_input_tokens": 0,
            },
            "output_tokens": u["output_tokens"] if output_tokens is None else output_tokens,
            "service_tier": "standard",
        }

    # -- messages ------------------------------------------------------------------------------------------------------

    def _messages(self, handler: _Handler, body: JSON) -> None:
        model = body.get("model")
        messages = body.get("messages")
        if not isinstance(model, str) or not model:
            self._send_error(handler, 400, message="model: Field required")
            return
        if not isinstance(messages, list) or not messages:
            self._send_error(handler, 400, message="messages: Field required")
            return
        item = self._next_reply(body, messages)
        response_model = self._response_model(model)
        prompt_text = " ".join(_collect_text(messages) + _collect_text(body.get("system") or ""))
        usage = self._anthropic_usage(model, response_model, item, prompt_text)
        stop_reason = _finish_reason(item, 1)
        message_id = self._next_id("msg_fake")
        call_ids = [c.id or self._next_id("toolu_fake") for c in item.tool_calls]

        blocks: list[JSON] = []
        if item.text is not None and (item.text or not item.tool_calls):
            blocks.append({"type": "text", "text": item.text})
        for cid, call in zip(call_ids, item.tool_calls, strict=True):
            blocks.append({"type": "tool_use", "id": cid, "name": call.name, "input": call.arguments_dict})

        def message_obj(content: list[JSON], stop: str | None, usage_json: JSON) -> JSON:
            return {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": response_model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage_json,
            }

        if not body.get("stream"):
            handler.send_json(200, message_obj(blocks, stop_reason, self._usage_json(usage)), self._common_headers())
            return

        def event(name: str, data: JSON) -> bytes:
            return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

        def events() -> Iterator[bytes]:
            start = message_obj([], None, self._usage_json(usage, output_tokens=1))
            yield event("message_start", {"type": "message_start", "message": start})
            for index, block in enumerate(blocks):
                if block["type"] == "text":
                    yield event(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                    )
                    if index == 0:
                        yield event("ping", {"type": "ping"})
                    for piece in _split_text(block["text"]):
                        if piece:
                            delta = {"type": "text_delta", "text": piece}
                            yield event(
                                "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                            )
                else:
                    start_block = {**block, "input": {}}
                    yield event(
                        "content_block_start",
                        {"type": "content_block_start", "index": index, "content_block": start_block},
                    )
                    for piece in ["", *_split_json(json.dumps(block["input"]))]:
                        delta = {"type": "input_json_delta", "partial_json": piece}
                        yield event(
                            "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                        )
                yield event("content_block_stop", {"type": "content_block_stop", "index": index})
            if self.stream_delta_full_usage:
                delta_usage: JSON = {
                    "input_tokens": usage["input_tokens"],
                    "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                    "cache_read_input_tokens": usage["cache_read_input_tokens"],
                    "output_tokens": usage["output_tokens"],
                }
            else:
                delta_usage = {"output_tokens": usage["output_tokens"]}
            yield event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": delta_usage,
                },
            )
            yield event("message_stop", {"type": "message_stop"})

        handler.send_sse(events(), self._common_headers(), self.chunk_delay)
