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
COST_PARAMS = {"by", "since", "from", "to", "team", "project", "customer", "pipeline", "environment", "feature",
               "cost_center", "user", "tag", "include_simulated"}
RUN_PARAMS = COST_PARAMS - {"by"} | {"status", "limit"}
MAX_RUNS = 1000
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

    def costs(self, params: dict[str, list[str]]) -> dict[str, Any]:
        from genops_cli.analysis.analyze import analyze_costs, dimension

        _check_params(params, COST_PARAMS)
        by = _one(params, "by") or "component"
        dimension(by)  # a bad value raises UsageError naming it
        period, filters = _scope(params)
        key = "costs?" + json.dumps(params, sort_keys=True)
        return self.queries.get(key, lambda: analyze_costs(self.ledger, period, filters, by=by).to_json())

    def runs(self, params: dict[str, list[str]]) -> dict[str, Any]:
        from genops_cli.analysis.runs import list_runs

        _check_params(params, RUN_PARAMS)
        period, filters = _scope(params, include_simulated_default=True)
        raw_limit = _one(params, "limit") or "50"
        if not raw_limit.isdigit() or not 0 < int(raw_limit) <= MAX_RUNS:
            raise UsageError(f"limit={raw_limit!r}: use a whole number from 1 to {MAX_RUNS}")
        status = _one(params, "status")
        key = "runs?" + json.dumps(params, sort_keys=True)
        return self.queries.get(key, lambda: {"runs": [
            r.to_json() for r in list_runs(self.ledger, period, filters, status=status, limit=int(raw_limit))]})


def _check_params(params: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise UsageError(f"unknown query parameter {unknown[0]!r}: use {', '.join(sorted(allowed))}")


def _one(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise UsageError(f"{name}= given {len(values)} times: give it once")
    return values[0]


def _scope(params: dict[str, list[str]], include_simulated_default: bool = False) -> tuple[Any, Any]:
    """(Period, Filters) from query parameters, with the CLI's vocabulary (`tag=K=V` may repeat)."""
    from genops_cli.analysis.filters import Filters, parse_tag_filters
    from genops_cli.analysis.periods import parse_period

    period = parse_period(_one(params, "since"), _one(params, "from"), _one(params, "to"), default="30d")
    simulated = _one(params, "include_simulated")
    filters = Filters(team=_one(params, "team"), project=_one(params, "project"), customer=_one(params, "customer"),
                      pipeline=_one(params, "pipeline"), environment=_one(params, "environment"),
                      feature=_one(params, "feature"), cost_center=_one(params, "cost_center"),
                      user=_one(params, "user"), tags=parse_tag_filters(params.get("tag") or []),
                      include_simulated=(include_simulated_default if simulated is None
                                         else simulated.lower() in ("1", "true", "yes")))
    return period, filters


class _Handler(BaseHTTPRequestHandler):
    service: GenopsService  # set on the subclass made by make_server
    server_version = "genops"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        url = urlsplit(self.path)
        params = parse_qs(url.query, keep_blank_values=True)
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
