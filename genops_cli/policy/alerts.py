"""Budget alerts: each threshold (default 50, 80, 95, 100 % of a limit) fires once per scope, period and
period key.

Two halves, so the ledger lock is never held during network I/O:
1. `after_insert(tx, run)` runs inside the run's write transaction (registered with
   `ledger.records.register_after_insert`, whichever path records the run: Engine, batch writer, drain): for
   each budget the run counts toward it computes the period's spend and inserts an `alerts` row per crossed
   threshold. `UNIQUE(scope, period, period_key, threshold)` makes it once-per-period even across processes and
   PostgreSQL writers; each new row gets an audit entry (kind "alert").
2. A delivery thread (not a daemon, so the CLI's exit waits for it) waits for that transaction to end, then
   prints a line on stderr and, if `alerts.webhook_url` is set, POSTs JSON with `alerts.timeout_seconds`.
   Delivery never fails a run; its outcome is stored in `alerts.webhook_status` (with a new audit entry).

    track(run_id, reservation_id, settings, ledger)   # the budget check does it for every run it evaluates
    flush()                        # wait for deliveries (tests, long-lived API processes)
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.ledger import audit
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import RunRecord, quantize_money, utcnow
from genops_cli.policy.periods import window
from genops_cli.policy.scopes import scopes_for_run

COMMIT_WAIT_SECONDS = 10.0


@dataclass
class Alert:
    alert_id: str
    scope: str
    period: str
    period_key: str
    threshold: int
    spent: Decimal
    limit: Decimal
    fired_at: datetime
    run_id: str | None
    policy: str

    @property
    def utilization(self) -> Decimal | None:
        return None if self.limit == 0 else (self.spent * 100 / self.limit).quantize(Decimal("0.01"))

    def payload(self) -> dict[str, Any]:
        """The webhook body."""
        return {
            "event": "genops.budget.alert",
            "alert_id": self.alert_id,
            "scope": self.scope,
            "period": self.period,
            "period_key": self.period_key,
            "threshold": self.threshold,
            "spent": format(quantize_money(self.spent), "f"),
            "limit": format(quantize_money(self.limit), "f"),
            "utilization": str(self.utilization) if self.utilization is not None else None,
            "currency": "USD",
            "policy": self.policy,
            "run_id": self.run_id,
            "fired_at": self.fired_at.isoformat(),
        }

    def line(self) -> str:
        from genops_cli.policy.budgets import usd

        used = f"{self.utilization}%" if self.utilization is not None else "over a zero limit"
        return (f"genops alert: {self.scope} {self.period} budget ({self.period_key}) reached {self.threshold}% "
                f"threshold: {usd(self.spent)} of {usd(self.limit)} spent ({used})")


# Runs this process checked, by run id and reservation id -> the settings (config budgets, webhook) and ledger
# their alerts are evaluated and delivered with. A run recorded without a preflight in this process (a spool
# leftover, a cache hit) is evaluated against the ledger's budgets only and its alerts are stored, not sent.
_context: dict[str, tuple[Settings, Ledger]] = {}
_threads: list[threading.Thread] = []
_lock = threading.Lock()


def install() -> None:
    """Evaluate alerts after every run this process records (idempotent)."""
    from genops_cli.ledger.records import register_after_insert

    register_after_insert(after_insert)


def track(run_id: str, reservation_id: str | None, settings: Settings, ledger: Ledger) -> None:
    """Remember which settings and ledger the alerts of a run use (called by the budget check)."""
    install()
    with _lock:
        _context[run_id] = (settings, ledger)
        if reservation_id:  # batch runs may be re-keyed at insert; the reservation id is stable
            _context[reservation_id] = (settings, ledger)


def _pop_context(run: RunRecord) -> tuple[Settings, Ledger] | None:
    with _lock:
        by_id = _context.pop(run.run_id, None)
        by_reservation = _context.pop(run.policy.reservation_id, None) if run.policy.reservation_id else None
    return by_id or by_reservation


def evaluate(tx: Tx, run: RunRecord, settings: Settings | None, now: datetime | None = None) -> list[Alert]:
    """Insert an alert row for every threshold the run's budgets have crossed in the run's period and that has
    not fired yet; returns the alerts this call inserted."""
    from genops_cli.policy.budgets import applicable, effective_budgets, memo_ledger_budgets, spent

    if run.simulated:
        return []
    now = now or utcnow()
    # The budgets table is read once per insertion group (a grouped ingest evaluates 200 runs in one transaction).
    budgets = applicable(effective_budgets(tx, settings, memo_ledger_budgets(tx)),
                         scopes_for_run(run.attribution, run.pipeline_name))
    fired: list[Alert] = []
    for budget in budgets:
        for period, limit in budget.limits():
            w = window(period, run.started_at, budget.timezone)
            amount = spent(tx, budget.scope, w.start, w.end)
            for threshold in budget.alert_at:
                crossed = amount > 0 if limit == 0 else amount * 100 >= limit * threshold
                if not crossed:
                    continue
                alert = Alert(str(uuid.uuid4()), budget.scope, period, w.key, threshold, amount, limit, now,
                              run.run_id, budget.policy)
                tx.execute(
                    "INSERT INTO alerts (alert_id, scope, period, period_key, threshold, spent, limit_amount, "
                    "fired_at, run_id, webhook_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (scope, period, period_key, threshold) DO NOTHING",
                    [alert.alert_id, alert.scope, period, w.key, threshold, quantize_money(amount),
                     quantize_money(limit), to_naive_utc(now), run.run_id,
                     "pending" if settings is not None and settings.webhook_url else None],
                )
                if tx.scalar("SELECT COUNT(*) FROM alerts WHERE alert_id = ?", [alert.alert_id]):
                    audit.append(tx, "alert", alert.alert_id)
                    fired.append(alert)
    return fired


def after_insert(tx: Tx, run: RunRecord) -> None:
    """The records hook: runs in the run's write transaction; delivery starts on a thread that first waits for
    the transaction to end (the ledger's writer lock), so no network I/O happens under the lock."""
    context = _pop_context(run)
    settings, ledger = context if context is not None else (None, None)
    fired = evaluate(tx, run, settings)
    if fired and ledger is not None and settings is not None:
        # Explicitly not a daemon (a thread inherits its creator's flag, and batch writers are daemons): the
        # interpreter waits for delivery instead of killing the thread inside DuckDB at exit.
        thread = threading.Thread(target=_deliver, args=(fired, ledger, settings), name="genops-alerts",
                                  daemon=False)
        with _lock:
            _threads.append(thread)
        thread.start()


def post_webhook(url: str, payload: dict[str, Any], timeout: float) -> str:
    """POST JSON; returns a short status ('http 200', 'error: ...'). Never raises; never echoes the URL
    (webhook URLs often carry a token)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "genops"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - user-configured URL
            return f"http {response.status}"
    except urllib.error.HTTPError as exc:
        return f"error: http {exc.code}"
    except Exception as exc:  # timeouts, refused connections, DNS: an alert must never fail the run
        reason = getattr(exc, "reason", None) or exc
        return f"error: {type(exc).__name__}: {str(reason)[:200]}"


def _stored(ledger: Ledger, alerts: list[Alert]) -> set[str]:
    with ledger.read() as tx:
        return {a.alert_id for a in alerts
                if tx.scalar("SELECT COUNT(*) FROM alerts WHERE alert_id = ?", [a.alert_id])}


def _deliver(alerts: list[Alert], ledger: Ledger, settings: Settings) -> None:
    """Print and POST alerts once their transaction committed; record each webhook outcome."""
    deadline = time.monotonic() + COMMIT_WAIT_SECONDS
    stored: set[str] = set()
    while True:
        try:
            # DuckDB: the read waits for the writer lock, i.e. for the run's transaction to end. PostgreSQL: the
            # rows become visible at commit, so poll briefly; a rolled-back transaction's alerts never appear.
            stored = _stored(ledger, alerts)
        except Exception:
            stored = set()
        if stored or ledger.backend == "duckdb" or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    statuses: dict[str, str] = {}
    for alert in alerts:
        if alert.alert_id not in stored:
            continue
        print(alert.line(), file=sys.stderr, flush=True)
        if settings.webhook_url:
            statuses[alert.alert_id] = post_webhook(settings.webhook_url, alert.payload(), settings.webhook_timeout)
    if not statuses:
        return
    try:
        with ledger.write() as tx:
            for alert_id, status in statuses.items():
                tx.execute("UPDATE alerts SET webhook_status = ? WHERE alert_id = ?", [status, alert_id])
                audit.append(tx, "alert", alert_id)
    except Exception as exc:  # the alert itself is stored; only its delivery note is lost
        print(f"warning: could not record webhook status ({type(exc).__name__})", file=sys.stderr)


def flush(timeout: float | None = None) -> None:
    """Wait for alert deliveries started by this process (the CLI's exit waits for them anyway: the threads are
    not daemons; long-lived API processes and tests call this)."""
    with _lock:
        threads = list(_threads)
        _threads.clear()
    for thread in threads:
        thread.join(timeout)
