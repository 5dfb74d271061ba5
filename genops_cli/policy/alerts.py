"""Budget alerts: each threshold (default 50, 80, 95, 100 % of a limit) fires once per scope, period and
period key.

Two halves, so the ledger lock is never held during network I/O:
1. `AlertsHook` (a ledger hook registered at start-up by `startup.install_hooks`) runs inside the run's write
   transaction, whichever process records the run (the CLI, a batch, the Python API, a spool drain): for
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
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.ledger import audit
from genops_cli.ledger.hooks import InsertBatch, RunHook
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import Budget, RunRecord, quantize_money, utcnow
from genops_cli.money import money_json
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
    #: where this alert is posted: the budget's own webhook, else the configured one (None: stderr only)
    webhook_url: str | None = None
    webhook_format: str = "generic"

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
            "spent": money_json(self.spent),
            "limit": money_json(self.limit),
            "utilization": str(self.utilization) if self.utilization is not None else None,
            "currency": "USD",
            "policy": self.policy,
            "run_id": self.run_id,
            "fired_at": self.fired_at.isoformat(),
        }

    def line(self, also: Sequence[int] = ()) -> str:
        """The stderr line; `also`: lower thresholds of the same budget and period crossed by the same run."""
        from genops_cli.policy.budgets import usd

        used = f"{self.utilization}%" if self.utilization is not None else "over a zero limit"
        crossed = f" (and {', '.join(f'{t}%' for t in sorted(also))})" if also else ""
        return (f"genops alert: {self.scope} {self.period} budget ({self.period_key}) reached {self.threshold}% "
                f"threshold{crossed}: {usd(self.spent)} of {usd(self.limit)} spent ({used})")

    def notice(self) -> Notice:
        from genops_cli.policy.budgets import usd

        used = f"{self.utilization}%" if self.utilization is not None else "over a zero limit"
        return Notice(
            title=f"genops: {self.scope} {self.period} budget at {self.threshold}%",
            text=f"{usd(self.spent)} of {usd(self.limit)} spent ({used}) in {self.period_key}.",
            facts=[("Scope", self.scope), ("Period", f"{self.period} {self.period_key}"),
                   ("Spent", usd(self.spent)), ("Limit", usd(self.limit)), ("Used", used),
                   ("Policy", self.policy), ("Run", self.run_id or "-")],
            critical=self.threshold >= 100,
            event=self.payload(),
        )


#: Webhook body formats: generic JSON (the event itself), Slack (incoming webhook: text + Block Kit), Microsoft
#: Teams (Workflows webhook: an Adaptive Card message) and Teams' legacy Office 365 connector (MessageCard).
WEBHOOK_FORMATS = ("generic", "slack", "teams", "teams-messagecard")


def check_webhook_format(value: str, where: str) -> str:
    from genops_cli.errors import ConfigError

    fmt = value.strip().lower()
    if fmt not in WEBHOOK_FORMATS:
        raise ConfigError(f"{where}: unknown webhook format {value!r}; use one of {', '.join(WEBHOOK_FORMATS)}")
    return fmt


@dataclass
class Notice:
    """A message for people, rendered in the format of the channel that reads it (`render_webhook`)."""

    title: str
    text: str
    facts: list[tuple[str, str]]
    critical: bool
    event: dict[str, Any]  # the machine-readable event: the generic format's body

    @property
    def summary(self) -> str:
        return f"{self.title}: {self.text}"


def render_webhook(notice: Notice, fmt: str) -> dict[str, Any]:
    """The JSON body to POST for `fmt` (one of WEBHOOK_FORMATS)."""
    if fmt == "slack":
        fields = [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in notice.facts[:10]]
        return {
            "text": notice.summary,  # notifications and clients without blocks show this
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": notice.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": notice.text}},
                {"type": "section", "fields": fields},
            ],
        }
    if fmt == "teams":
        return {
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": True,
                         "color": "Attention" if notice.critical else "Warning", "text": notice.title},
                        {"type": "TextBlock", "wrap": True, "text": notice.text},
                        {"type": "FactSet", "facts": [{"title": n, "value": v} for n, v in notice.facts]},
                    ],
                },
            }],
        }
    if fmt == "teams-messagecard":
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": notice.summary[:200],
            "themeColor": "D13438" if notice.critical else "FFAA44",
            "title": notice.title,
            "text": notice.text,
            "sections": [{"facts": [{"name": n, "value": v} for n, v in notice.facts]}],
        }
    return notice.event


# Runs this process checked, by run id and reservation id -> the settings (config budgets, webhook) and ledger
# their alerts are evaluated and delivered with. A run recorded without a preflight in this process (a spool
# leftover, a cache hit) is evaluated against the ledger's budgets only and its alerts are stored, not sent.
_context: dict[str, tuple[Settings, Ledger]] = {}
_threads: list[threading.Thread] = []
_lock = threading.Lock()


class AlertsHook(RunHook):
    """Ledger hook (registered at start-up with the process's settings): evaluates every inserted run's budgets
    and delivers what fired. A run checked by this process uses the settings its check used (`track`); any other
    run (a spool leftover, a run ingested by another command) uses the start-up settings, so it raises the same
    alerts as if it had been recorded directly."""

    name = "alerts"

    def __init__(self, settings: Settings | None) -> None:
        self.settings = settings

    def on_insert(self, batch: InsertBatch) -> None:
        for run in batch.runs:
            after_insert(batch.tx, run, self.settings, batch.ledger)


def track(run_id: str, reservation_id: str | None, settings: Settings, ledger: Ledger) -> None:
    """Remember which settings and ledger the alerts of a run use (called by the budget check)."""
    with _lock:
        _context[run_id] = (settings, ledger)
        if reservation_id:  # batch runs may be re-keyed at insert; the reservation id is stable
            _context[reservation_id] = (settings, ledger)


def _pop_context(run: RunRecord) -> tuple[Settings, Ledger] | None:
    with _lock:
        by_id = _context.pop(run.run_id, None)
        by_reservation = _context.pop(run.policy.reservation_id, None) if run.policy.reservation_id else None
    return by_id or by_reservation


def snapshot_budgets(run: RunRecord, known: set[str]) -> list[Budget]:
    """Config budgets the recording process applied to the run (its policy snapshot), for scopes this process
    does not know: a budget given to the Python API in code (`daily_budget_limit=...`) alerts whichever process
    ingests the run. Their webhook URLs are not in the snapshot: those alerts are stored and printed only."""
    if not run.policy.snapshot:
        return []
    try:
        entries = json.loads(run.policy.snapshot).get("budgets") or []
        return [Budget(scope=e["scope"], policy=e.get("policy") or "advisory",
                       alert_at=tuple(int(x) for x in e.get("alert_at") or ()), timezone=e.get("timezone") or "UTC",
                       source="config", **{p: Decimal(e[p]) if e.get(p) is not None else None
                                           for p in ("daily", "weekly", "monthly")})
                for e in entries if e.get("source") == "config" and e.get("scope") not in known]
    except (ValueError, KeyError, TypeError, ArithmeticError):  # an unreadable snapshot: the known budgets only
        return []


def evaluate(tx: Tx, run: RunRecord, settings: Settings | None, now: datetime | None = None) -> list[Alert]:
    """Insert an alert row for every threshold the run's budgets have crossed in the run's period and that has
    not fired yet; returns the alerts this call inserted."""
    from genops_cli.policy.budgets import applicable, effective_budgets, memo_ledger_budgets, spent

    if run.simulated:
        return []
    now = now or utcnow()
    # The budgets table is read once per insertion group (a grouped ingest evaluates 200 runs in one transaction).
    scopes = scopes_for_run(run.attribution, run.pipeline_name)
    budgets = applicable(effective_budgets(tx, settings, memo_ledger_budgets(tx)), scopes)
    budgets += snapshot_budgets(run, known={b.scope for b in budgets})
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
                              run.run_id, budget.policy, *_webhook_for(budget, settings))
                tx.execute(
                    "INSERT INTO alerts (alert_id, scope, period, period_key, threshold, spent, limit_amount, "
                    "fired_at, run_id, webhook_status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (scope, period, period_key, threshold) DO NOTHING",
                    [alert.alert_id, alert.scope, period, w.key, threshold, quantize_money(amount),
                     quantize_money(limit), to_naive_utc(now), run.run_id,
                     "pending" if alert.webhook_url else None],
                )
                if tx.scalar("SELECT COUNT(*) FROM alerts WHERE alert_id = ?", [alert.alert_id]):
                    audit.append(tx, "alert", alert.alert_id)
                    fired.append(alert)
    return fired


def _webhook_for(budget: Budget, settings: Settings | None) -> tuple[str | None, str]:
    """(url, format) an alert of `budget` is posted to: the budget's own webhook wins over the configured one."""
    if budget.webhook_url:
        return budget.webhook_url, budget.webhook_format or "generic"
    if settings is not None and settings.webhook_url:
        return settings.webhook_url, settings.webhook_format
    return None, "generic"


def after_insert(tx: Tx, run: RunRecord, default_settings: Settings | None = None,
                 default_ledger: Ledger | None = None) -> None:
    """Runs in the run's write transaction; delivery starts on a thread that first waits for the transaction to
    end (the ledger's writer lock), so no network I/O happens under the lock."""
    context = _pop_context(run)
    settings, ledger = context if context is not None else (default_settings, default_ledger)
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

    from genops_cli.redact import redact_obj

    request = urllib.request.Request(url, data=json.dumps(redact_obj(payload)).encode(), method="POST",
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
    delivered = [alert for alert in alerts if alert.alert_id in stored]
    # One line per budget period on the terminal (a run that crosses 50, 80, 95 and 100 % at once is one event);
    # each threshold keeps its own row and webhook post (receivers route by threshold).
    crossed: dict[tuple[str, str, str], list[int]] = {}
    for alert in delivered:
        crossed.setdefault((alert.scope, alert.period, alert.period_key), []).append(alert.threshold)
    for alert in delivered:
        thresholds = crossed[(alert.scope, alert.period, alert.period_key)]
        if alert.threshold == max(thresholds):
            print(alert.line([t for t in thresholds if t != alert.threshold]), file=sys.stderr, flush=True)
    for alert in delivered:
        if alert.webhook_url:
            body = render_webhook(alert.notice(), alert.webhook_format)
            statuses[alert.alert_id] = post_webhook(alert.webhook_url, body, settings.webhook_timeout)
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


# -- runs left in the spool ---------------------------------------------------------------------------------------

_STALE_MARKER = ".stale-alerted"


@dataclass
class StaleSpool:
    """Spool files older than the configured minutes: runs that happened but are not in the ledger (not billed,
    not in any report) because the ledger could not be written when they ended."""

    directory: str
    runs: int
    files: list[str]
    oldest_minutes: int
    threshold_minutes: int

    def line(self) -> str:
        return (f"genops alert: {self.runs} run(s) waiting in the spool {self.directory} for up to "
                f"{self.oldest_minutes} min (over {self.threshold_minutes} min): they are not in the ledger yet; "
                "fix the ledger, then run: genops ledger drain")

    def notice(self) -> Notice:
        return Notice(
            title=f"genops: {self.runs} run(s) stuck in the spool",
            text=(f"Runs older than {self.threshold_minutes} min are waiting in {self.directory} and are not in "
                  "the ledger (not billed, not in reports). Fix the ledger, then run `genops ledger drain`."),
            facts=[("Runs", str(self.runs)), ("Oldest", f"{self.oldest_minutes} min"), ("Spool", self.directory)],
            critical=True,
            event={"event": "genops.spool.stale", "spool": self.directory, "runs": self.runs,
                   "oldest_minutes": self.oldest_minutes, "threshold_minutes": self.threshold_minutes,
                   "files": self.files},
        )


def stale_spool(ledger: Ledger, minutes: int, now: float | None = None) -> StaleSpool | None:
    """The spool's files older than `minutes` (None when there are none)."""
    from genops_cli.ledger.spool import Spool

    spool = Spool(ledger.spool_dir())
    now = time.time() if now is None else now
    old: list[tuple[float, Any]] = []
    for path in spool.pending():
        try:
            age = now - path.stat().st_mtime
        except OSError:  # ingested meanwhile
            continue
        if age >= minutes * 60:
            old.append((age, path))
    if not old:
        return None
    runs = sum(spool.runs_in(p) for _age, p in old)
    return StaleSpool(str(spool.directory), runs, sorted(p.name for _a, p in old), int(max(a for a, _p in old) // 60),
                      minutes)



def check_stale_spool(ledger: Ledger, settings: Settings) -> StaleSpool | None:
    """Raised by every command that opens the ledger: a line on stderr each time, and the configured webhook once
    per set of stale files (a marker in the spool remembers which were announced)."""
    if settings.spool_alert_minutes <= 0:
        return None
    try:
        found = stale_spool(ledger, settings.spool_alert_minutes)
    except OSError:
        return None
    if found is None:
        return None
    print(found.line(), file=sys.stderr, flush=True)
    if settings.webhook_url:
        marker = ledger.spool_dir() / _STALE_MARKER
        try:
            announced = set(json.loads(marker.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            announced = set()
        if not set(found.files) <= announced:
            status = post_webhook(settings.webhook_url, render_webhook(found.notice(), settings.webhook_format),
                                  settings.webhook_timeout)
            if status.startswith("http 2"):
                try:
                    marker.write_text(json.dumps(sorted(announced | set(found.files))), encoding="utf-8")
                except OSError:
                    pass
            else:
                print(f"warning: spool alert webhook failed ({status})", file=sys.stderr)
    return found
