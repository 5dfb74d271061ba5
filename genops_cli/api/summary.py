"""The one-line cost summary `auto_instrument` logs after each pipeline run (logger `genops.summary`, INFO):

    genops: Pipeline 'rag' cost: $0.002847 | Budget remaining: $99.997153 (daily, team:ml) | Team: ml | Project: qa

Switch it off with `auto_instrument(..., cost_summary=False)` or, from logging configuration, by raising the
level of `genops.summary` (`logging.getLogger("genops.summary").setLevel(logging.WARNING)`). When the
application has configured no logging, the lines go to stderr (never stdout); otherwise they propagate to the
application's handlers like any other logger.

"Budget remaining" is the adapter's daily limit minus the scope's spend today, read from the ledger on a
background thread at most every REFRESH_SECONDS and kept current in between with this process's own runs (so the
pipeline's thread never waits on the ledger, except the very first line of a process, for at most
FIRST_REFRESH_WAIT; another process's spend shows up at the next refresh). Without a daily limit it is left out.
"""

from __future__ import annotations

import logging
import threading
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.logging_setup import StderrHandler
from genops_cli.models import quantize_money, utcnow

if TYPE_CHECKING:
    from genops_cli.api.adapter import GenOpsHaystackAdapter

summary_log = logging.getLogger("genops.summary")
REFRESH_SECONDS = 30.0
FIRST_REFRESH_WAIT = 2.0  # seconds the first line of a process may wait for the first ledger read
_HANDLER_NAME = "genops-summary-stderr"


def enable_summary_logging() -> None:
    """INFO for `genops.summary`; a stderr handler of its own unless the application configured logging."""
    if summary_log.level == logging.NOTSET or summary_log.level > logging.INFO:
        summary_log.setLevel(logging.INFO)
    if logging.getLogger().handlers or any(h.get_name() == _HANDLER_NAME for h in summary_log.handlers):
        return
    handler = StderrHandler()
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(logging.Formatter("genops: %(message)s"))
    summary_log.addHandler(handler)
    summary_log.propagate = False  # its own line on stderr, not a second copy through the root's last resort


class RunSummary:
    """Formats the per-run line for one adapter, with a cheaply maintained "budget remaining"."""

    def __init__(self, adapter: GenOpsHaystackAdapter) -> None:
        self.adapter = adapter
        self._lock = threading.Lock()
        self._baseline: Decimal | None = None  # the scope's spend today in the ledger at the last refresh
        self._refreshed_at = 0.0
        self._refreshing = False
        self._first = threading.Event()  # set once the first refresh is done
        self._window_key: str | None = None
        self._current_window: Any = None
        self._pending: dict[str, Decimal] = {}  # runs of this process not yet seen in the ledger: id -> cost
        self._pending_total = Decimal(0)  # their sum, kept as runs come and go (no per-line sum)
        self._start_refresh()  # at auto_instrument time, so the first run's line rarely waits for it

    def log(self, pipeline_name: str, run_id: str, cost: Decimal) -> None:
        if not summary_log.isEnabledFor(logging.INFO):
            return
        summary_log.info("%s", self.line(pipeline_name, run_id, cost))

    def line(self, pipeline_name: str, run_id: str, cost: Decimal) -> str:
        a = self.adapter
        parts = [f"Pipeline '{pipeline_name}' cost: ${quantize_money(cost).normalize():f}"]
        remaining = self._remaining(run_id, cost)
        if remaining is not None:
            parts.append(f"Budget remaining: ${remaining.normalize():f} (daily, {a.budget_scope})")
        parts.append(f"Team: {a.team or '-'} | Project: {a.project or '-'}")
        return " | ".join(parts)

    def _remaining(self, run_id: str, cost: Decimal) -> Decimal | None:
        budget = self.adapter._budget
        if budget.daily is None:
            return None
        key = self._window().key
        with self._lock:
            if key != self._window_key:
                self._pending.clear()  # a new day: earlier runs count toward the previous one
                self._pending_total = Decimal(0)
                self._window_key = key
                self._refreshed_at = 0.0
            self._pending_total += cost - self._pending.get(run_id, Decimal(0))
            self._pending[run_id] = cost
            stale = time.monotonic() - self._refreshed_at > REFRESH_SECONDS
        if stale:
            self._start_refresh()
        if not self._first.wait(FIRST_REFRESH_WAIT):  # only the first line of a process can wait, briefly
            return None
        with self._lock:
            spent = (self._baseline or Decimal(0)) + self._pending_total
        return quantize_money(budget.daily - spent)

    def _window(self) -> Any:
        """Today's budget window, recomputed only when the day (in the budget's timezone) is over."""
        from genops_cli.policy.periods import window

        now = utcnow()
        current = self._current_window
        if current is None or not current.contains(now):
            budget = self.adapter._budget
            current = window("daily", now, budget.timezone or self.adapter.settings.budgets.timezone)
            self._current_window = current
        return current

    def _start_refresh(self) -> None:
        """Re-read the scope's spend on a background thread: the ledger read (a lock wait, a DuckDB open) never
        runs on the thread of the pipeline run that logs the line."""
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._refresh, name="genops-summary-refresh", daemon=True).start()

    def _refresh(self) -> None:
        """Spend today from the ledger; pending runs already in it are dropped (else they would count twice)."""
        from genops_cli.policy.budgets import spent

        w = self._window()
        ledger = self.adapter.ledger
        baseline, ingested = Decimal(0), set()
        try:
            if ledger.exists():
                with ledger.read() as tx:
                    with self._lock:
                        ids = list(self._pending)
                    baseline = spent(tx, self.adapter.budget_scope, w.start, w.end)
                    if ids:
                        marks = ", ".join("?" for _ in ids)
                        ingested = {r[0] for r in tx.query(f"SELECT run_id FROM runs WHERE run_id IN ({marks})",
                                                           ids)}
        except Exception as exc:  # a summary line never fails a run; the ledger's own errors surface elsewhere
            summary_log.debug("budget remaining not refreshed: %s", exc)
            baseline = self._baseline or Decimal(0)
        with self._lock:
            if w.key == (self._window_key or w.key):
                self._baseline = baseline
                for run_id in ingested:
                    self._pending_total -= self._pending.pop(run_id, Decimal(0))
            self._window_key = w.key
            self._refreshed_at = time.monotonic()
            self._refreshing = False
        self._first.set()
