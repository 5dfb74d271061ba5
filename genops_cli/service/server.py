"""`genops serve`: a small read-only HTTP service over the ledger, for Prometheus and dashboards.

    server = make_server(ledger, settings, host="127.0.0.1", port=9464)
    server.serve_forever()

Endpoints (GET only):
  /health       the process is up
  /ready        the ledger can be read (503 with the reason otherwise)
  /metrics      Prometheus exposition format (see service.metrics)
  /v1/costs     `genops analyze` as JSON: by, since/from/to, team, project, customer, pipeline, environment
  /v1/runs      `genops runs` as JSON: the same filters plus status, tag=K=V, limit

Every answer is computed from a cached read at most once per refresh interval per distinct query, so scrape
storms cost the ledger nothing extra. Nothing is ever written; no secret is ever served (the ledger holds none,
and the location is shown masked).
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from genops_cli.errors import GenopsError, UsageError
from genops_cli.ledger.store import Ledger
from genops_cli.service.metrics import LedgerCollector, SnapshotCache, read_snapshot

#: Query parameters each JSON endpoint accepts (anything else is a 400 naming the parameter).
COST_PARAMS = {"by", "since", "from", "to", "team", "project", "customer", "pipeline", "environment",
               "include_simulated"}
RUN_PARAMS = COST_PARAMS - {"by"} | {"status", "tag", "limit"}
MAX_CACHED_QUERIES = 256


class QueryCache:
    """Answers per distinct query, each reused for `ttl` seconds; least recently used dropped past `size`."""

    def __init__(self, ttl: float, size: int = MAX_CACHED_QUERIES) -> None:
        self.ttl = ttl
        self.size = size
        self._items: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, compute: Callable[[], Any]) -> Any:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key)
            if hit is not None and now - hit[0] < self.ttl:
                self._items.move_to_end(key)
                return hit[1]
        value = compute()
        with self._lock:
            self._items[key] = (now, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


class GenopsService:
    """The service's state: the ledger, the metric registry and the caches (one per process)."""

    def __init__(self, ledger: Ledger, settings: Any, refresh_seconds: float = 15.0) -> None:
        from prometheus_client import CollectorRegistry

        self.ledger = ledger
        self.settings = settings
        self.snapshots = SnapshotCache(lambda: read_snapshot(ledger, settings), refresh_seconds)
        self.queries = QueryCache(refresh_seconds)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(LedgerCollector(self.snapshots))

    def metrics(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def ready(self) -> tuple[bool, str]:
        if not self.ledger.exists():
            return False, f"no ledger at {self.ledger.display}"
        try:
            self.snapshots.get()
        except Exception as exc:  # not ready: say why, masked
            from genops_cli.redact import redact

            return False, redact(f"ledger not readable: {type(exc).__name__}: {exc}") or "ledger not readable"
        return True, "ok"

    def costs(self, params: dict[str, str]) -> dict[str, Any]:
        from genops_cli.analysis.analyze import DIMENSIONS, analyze_costs

        _check_params(params, COST_PARAMS)
        by = params.get("by", "component")
        if by not in DIMENSIONS:
            raise UsageError(f"by={by!r}: use one of {', '.join(DIMENSIONS)}")
        period, filters = _scope(params)
        key = "costs?" + json.dumps(params, sort_keys=True)
        return self.queries.get(key, lambda: analyze_costs(self.ledger, period, filters, by=by).to_json())

    def runs(self, params: dict[str, str]) -> dict[str, Any]:
        from genops_cli.analysis.runs import RunQuery, list_runs

        _check_params(params, RUN_PARAMS)
        period, filters = _scope(params)
        query = RunQuery.from_strings(period=period, filters=filters, status=params.get("status"),
                                      tag=params.get("tag"), limit=params.get("limit"))
        key = "runs?" + json.dumps(params, sort_keys=True)
        return self.queries.get(key, lambda: {"runs": [r.to_json() for r in list_runs(self.ledger, query)]})


def _check_params(params: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise UsageError(f"unknown query parameter {unknown[0]!r}: use {', '.join(sorted(allowed))}")


def _scope(params: dict[str, str]) -> tuple[Any, Any]:
    from genops_cli.analysis.filters import Filters
    from genops_cli.analysis.periods import parse_period

    period = parse_period(params.get("since"), params.get("from"), params.get("to"), default="30d")
    filters = Filters(team=params.get("team"), project=params.get("project"), customer=params.get("customer"),
                      pipeline=params.get("pipeline"), environment=params.get("environment"),
                      include_simulated=params.get("include_simulated", "").lower() in ("1", "true", "yes"))
    return period, filters


class _Handler(BaseHTTPRequestHandler):
    service: GenopsService  # set on the subclass made by make_server
    server_version = "genops"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if url.path == "/metrics":
                body, content_type = self.service.metrics()
                self._send(HTTPStatus.OK, body, content_type)
            elif url.path == "/health":
                self._json(HTTPStatus.OK, {"status": "ok"})
            elif url.path == "/ready":
                ok, reason = self.service.ready()
                self._json(HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
                           {"status": "ready" if ok else "not ready", "reason": reason})
            elif url.path == "/v1/costs":
                self._json(HTTPStatus.OK, self.service.costs(params))
            elif url.path == "/v1/runs":
                self._json(HTTPStatus.OK, self.service.runs(params))
            else:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"no endpoint {url.path}; try /metrics, /health, /ready, "
                                                            "/v1/costs, /v1/runs"})
        except UsageError as exc:
            self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
        except GenopsError as exc:
            self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": str(exc)})

    def _refuse(self) -> None:
        self._json(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "genops serve is read-only: use GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _refuse  # noqa: N815

    def _json(self, status: HTTPStatus, payload: Any) -> None:
        self._send(status, json.dumps(payload, default=str).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        pass  # access logs are the proxy's job; errors are answered in the body


def make_server(ledger: Ledger, settings: Any, host: str = "127.0.0.1", port: int = 9464,
                refresh_seconds: float = 15.0) -> ThreadingHTTPServer:
    """A threaded HTTP server bound to host:port (port 0 picks a free one: see `server.server_address`)."""
    service = GenopsService(ledger, settings, refresh_seconds)
    handler = type("GenopsHandler", (_Handler,), {"service": service})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.service = service  # type: ignore[attr-defined]
    return server


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
