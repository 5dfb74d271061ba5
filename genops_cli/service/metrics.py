"""What `genops serve` exposes on `/metrics`: a snapshot of the ledger, read with a bounded number of grouped
queries, rendered in the Prometheus exposition format by prometheus_client.

    snapshot = read_snapshot(ledger, settings)       # ~8 grouped queries, whatever the ledger's size
    registry = CollectorRegistry(); registry.register(LedgerCollector(cache))

Spend counters are sums over the whole ledger, which only grows, so they stay monotonic across restarts of the
server (Prometheus' `rate()` and `increase()` work on them). Simulated runs never count toward spend; they are
counted in `genops_runs_total{simulated="true"}`. Money is exact in the ledger; Prometheus samples are floats,
written with the shortest representation that round-trips (the Decimal sum's text for any sum under 16
significant digits).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.ledger.spool import Spool
from genops_cli.ledger.store import Ledger, Tx

#: Run-level dimensions exported as spend counters: metric label -> runs column.
SPEND_DIMENSIONS = {
    "customer": "customer_id",
    "team": "team",
    "project": "project",
    "pipeline": "pipeline_name",
}


@dataclass
class BudgetGauge:
    scope: str
    period: str
    policy: str
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    utilization: Decimal | None  # percent of the limit; None for a zero limit


@dataclass
class LedgerSnapshot:
    """The ledger's totals at one moment (all money exact Decimal)."""

    taken_at: float
    spend: dict[str, list[tuple[str, Decimal]]] = field(default_factory=dict)  # dimension -> [(value, cost)]
    spend_by_model: list[tuple[str, str, Decimal]] = field(default_factory=list)  # (provider, model, cost)
    runs_by_status: list[tuple[str, bool, int]] = field(default_factory=list)  # (status, simulated, count)
    calls_total: int = 0
    unpriced_calls: int = 0
    blocked_runs: int = 0
    budgets: list[BudgetGauge] = field(default_factory=list)
    spool_depth: int = 0
    oldest_spool_age: float = 0.0
    last_run_ended_at: float | None = None
    query_seconds: float = 0.0


def _spend_by(tx: Tx, column: str) -> list[tuple[str, Decimal]]:
    rows = tx.query(f"SELECT COALESCE({column}, ''), SUM(total_cost) FROM runs WHERE NOT simulated "
                    f"GROUP BY COALESCE({column}, '') ORDER BY 1")
    return [(str(key), Decimal(cost or 0)) for key, cost in rows]


def _read_totals(tx: Tx, snap: LedgerSnapshot) -> None:
    for label, column in SPEND_DIMENSIONS.items():
        snap.spend[label] = _spend_by(tx, column)
    snap.spend_by_model = [
        (str(p), str(m), Decimal(c or 0)) for p, m, c in tx.query(
            "SELECT COALESCE(c.provider, ''), COALESCE(c.model, ''), SUM(c.cost) FROM calls c "
            "JOIN runs r ON r.run_id = c.run_id WHERE NOT r.simulated AND c.model IS NOT NULL "
            "GROUP BY 1, 2 ORDER BY 1, 2")]
    snap.runs_by_status = [(str(s), bool(sim), int(n)) for s, sim, n in tx.query(
        "SELECT status, simulated, COUNT(*) FROM runs GROUP BY status, simulated ORDER BY 1, 2")]
    snap.blocked_runs = sum(n for s, _sim, n in snap.runs_by_status if s == "blocked")
    total, unpriced = tx.query(
        "SELECT COUNT(*), COALESCE(SUM(CASE WHEN c.priced THEN 0 ELSE 1 END), 0) FROM calls c "
        "WHERE c.model IS NOT NULL")[0]
    snap.calls_total, snap.unpriced_calls = int(total), int(unpriced)
    last = tx.scalar("SELECT MAX(ended_at) FROM runs")
    if last is not None:
        from datetime import timezone

        snap.last_run_ended_at = last.replace(tzinfo=timezone.utc).timestamp()


def _read_budgets(ledger: Ledger, settings: Any) -> list[BudgetGauge]:
    from genops_cli.policy.budgets import status

    return [BudgetGauge(scope=s.budget.scope, period=s.period, policy=s.budget.policy, limit=s.limit,
                        spent=s.spent, reserved=s.reserved, utilization=s.utilization)
            for s in status(ledger, settings)]


def read_snapshot(ledger: Ledger, settings: Any) -> LedgerSnapshot:
    """Read every metric's value from the ledger and the spool (read-only)."""
    started = time.perf_counter()
    snap = LedgerSnapshot(taken_at=time.time())
    spool = Spool(ledger.spool_dir())
    pending = spool.pending()
    snap.spool_depth = len(pending)
    ages = []
    for path in pending:
        try:
            ages.append(snap.taken_at - path.stat().st_mtime)
        except OSError:  # ingested between listing and stat
            continue
    snap.oldest_spool_age = max(ages, default=0.0)
    if ledger.exists():
        with ledger.read() as tx:
            _read_totals(tx, snap)
        snap.budgets = _read_budgets(ledger, settings)
    snap.query_seconds = time.perf_counter() - started
    return snap


class SnapshotCache:
    """At most one ledger read per `refresh_seconds`, however many scrapes arrive; concurrent scrapes during a
    refresh get the previous snapshot rather than queueing more queries."""

    def __init__(self, reader: Callable[[], LedgerSnapshot], refresh_seconds: float = 15.0) -> None:
        self.reader = reader
        self.refresh_seconds = refresh_seconds
        self._snapshot: LedgerSnapshot | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()
        self.refreshes = 0
        self.last_error: str | None = None

    def get(self) -> LedgerSnapshot:
        fresh = self._snapshot is not None and time.monotonic() - self._read_at < self.refresh_seconds
        if fresh:
            return self._snapshot  # type: ignore[return-value]
        if not self._lock.acquire(blocking=self._snapshot is None):
            return self._snapshot  # type: ignore[return-value]
        try:
            if self._snapshot is None or time.monotonic() - self._read_at >= self.refresh_seconds:
                try:
                    self._snapshot = self.reader()
                    self.last_error = None
                except Exception as exc:  # a ledger hiccup must not take the endpoint down: serve the last one
                    from genops_cli.redact import redact

                    self.last_error = redact(f"{type(exc).__name__}: {exc}")
                    if self._snapshot is None:
                        raise
                self._read_at = time.monotonic()
                self.refreshes += 1
            return self._snapshot
        finally:
            self._lock.release()


def _f(value: Decimal) -> float:
    return float(value)


class LedgerCollector:
    """A prometheus_client collector over a `SnapshotCache` (registered once; collects on every scrape)."""

    def __init__(self, cache: SnapshotCache) -> None:
        self.cache = cache

    def describe(self) -> list[Any]:
        return []  # collected lazily: nothing is read from the ledger at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self.cache.get()
        for label, rows in snap.spend.items():
            family = CounterMetricFamily(f"genops_spend_{label}_usd", f"Recorded spend (USD) per {label}, real "
                                         "runs only", labels=[label])
            for key, cost in rows:
                family.add_metric([key], _f(cost))
            yield family
        model = CounterMetricFamily("genops_spend_model_usd", "Recorded spend (USD) per provider and model",
                                    labels=["provider", "model"])
        for provider, name, cost in snap.spend_by_model:
            model.add_metric([provider, name], _f(cost))
        yield model
        runs = CounterMetricFamily("genops_runs", "Recorded runs by status", labels=["status", "simulated"])
        for status, simulated, count in snap.runs_by_status:
            runs.add_metric([status, "true" if simulated else "false"], count)
        yield runs
        yield CounterMetricFamily("genops_blocked_runs", "Runs blocked by a budget or policy", value=snap.blocked_runs)
        yield CounterMetricFamily("genops_llm_calls", "Recorded LLM and embedding calls", value=snap.calls_total)
        yield CounterMetricFamily("genops_unpriced_calls", "Calls genops could not price (cost unknown, not zero)",
                                  value=snap.unpriced_calls)
        yield from self._budget_families(snap)
        yield GaugeMetricFamily("genops_spool_depth", "Spool files waiting to be ingested into the ledger",
                                value=snap.spool_depth)
        yield GaugeMetricFamily("genops_ledger_lag_seconds", "Age of the oldest spool file not yet in the ledger "
                                "(0 when the ledger is up to date)", value=snap.oldest_spool_age)
        if snap.last_run_ended_at is not None:
            yield GaugeMetricFamily("genops_last_run_timestamp_seconds", "End time of the newest recorded run",
                                    value=snap.last_run_ended_at)
        yield GaugeMetricFamily("genops_snapshot_query_seconds", "Time the last ledger read took",
                                value=snap.query_seconds)

    @staticmethod
    def _budget_families(snap: LedgerSnapshot) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        labels = ["scope", "period", "policy"]
        limit = GaugeMetricFamily("genops_budget_limit_usd", "Budget limit per scope and period", labels=labels)
        spent = GaugeMetricFamily("genops_budget_spent_usd", "Spend in the budget's current period", labels=labels)
        reserved = GaugeMetricFamily("genops_budget_reserved_usd", "Active reservations in the current period",
                                     labels=labels)
        utilization = GaugeMetricFamily("genops_budget_utilization_ratio", "Spent / limit in the current period",
                                        labels=labels)
        for b in snap.budgets:
            key = [b.scope, b.period, b.policy]
            limit.add_metric(key, _f(b.limit))
            spent.add_metric(key, _f(b.spent))
            reserved.add_metric(key, _f(b.reserved))
            if b.limit:
                utilization.add_metric(key, _f(b.spent / b.limit))
        yield from (limit, spent, reserved, utilization)
