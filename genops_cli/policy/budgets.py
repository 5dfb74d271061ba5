"""Budgets per scope and period, checked and reserved atomically before a run spends.

Where budgets come from, and how they combine:
- `genops budget set SCOPE ...` writes the `budgets` table (source 'cli'), with an audit entry.
- `.genops.yml` (`haystack.daily_budget_limit`, `budgets.scopes`, ...) and the environment
  (`GENOPS_DAILY_BUDGET_LIMIT`, `GENOPS_MONTHLY_BUDGET_LIMIT`, `GENOPS_GOVERNANCE_POLICY`) give budgets with
  source 'config'. They are evaluated alongside the ledger's, not copied into it: the file stays the single
  source for them (edit the file to change them; `budget remove` refuses them).
- For the same scope, the ledger (CLI) budget wins over the config one, whole (limits, policy, thresholds).

Spend counts every non-simulated run started in the period (`runs.total_cost`), plus the active reservations
of runs still in flight. A run is admitted when, for every applicable budget and period,
`spent + reserved + this run's worst-case estimate <= limit`; otherwise the policy decides: enforcing ->
BLOCKED (no provider call, exit 3), advisory -> WARNING (runs), monitoring -> ALLOWED (recorded only).
`RunOptions.policy_mode` (`genops run --policy`) overrides the budget's policy for one run.

Library use (`ctx` is anything with `settings` and `ledger`: the engine, the Python API's adapter):

    decision = check_budget(ctx, run, Decimal("0.02"))      # check + reserve, one ledger transaction
    raise_if_blocked(decision)                               # BudgetExceededError ("... budget limit ...")
    hold = LedgerBudgetHold(ctx, run)                        # per-call admission grows the run's reservation

The check and the reservation insert happen in ONE write transaction, after `tx.lock_scopes(scopes)`: DuckDB
writers hold the exclusive file lock, PostgreSQL takes per-scope advisory locks, so concurrent runs from any
shell or cron job see each other's reservations and cannot race past a limit.

Whether a run or a call needs that check at all is decided without a ledger read per call: config budgets are in
memory and the ledger's budget list is cached per ledger (`cached_ledger_budgets`). On DuckDB the copy is
re-read when the ledger's budget stamp file (`<ledger>.budgets`, touched after every `set_budget` /
`remove_budget` commit) changes, so a budget set by any process applies to the next call; on other backends the
copy is at most BUDGET_CACHE_SECONDS (1 s) old. The check itself always re-reads budgets inside its write
transaction.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from genops_cli.config import Settings, normalize_policy, parse_money
from genops_cli.errors import BudgetExceededError, ConfigError, LedgerError
from genops_cli.ledger import audit
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import Budget, PolicyDecision, PolicyEvent, RunRecord, quantize_money, utcnow
from genops_cli.money import money_json
from genops_cli.policy import reservations
from genops_cli.policy.admission import Denial
from genops_cli.policy.periods import Window, elapsed_fraction, window
from genops_cli.policy.scopes import SCOPE_COLUMNS, parse_scope, scopes_for_run

REASON = "BUDGET_EXCEEDED"
RESERVATION_FAILED = "BUDGET_RESERVATION_FAILED"

_log = logging.getLogger("genops")


class Governed(Protocol):
    """What budget checks need from their caller: the settings and the ledger (the engine, the API adapter)."""

    settings: Settings
    ledger: Ledger


def usd(value: Decimal) -> str:
    """Exact money for policy messages: $0.00034245 (the amount a limit was compared with, never rounded)."""
    return f"${money_json(value)}"


# -- reading and writing budgets --------------------------------------------------------------------------------


def ledger_budgets(tx: Tx) -> list[Budget]:
    rows = tx.query_dicts("SELECT * FROM budgets ORDER BY scope")
    return [
        Budget(
            scope=r["scope"],
            daily=_dec(r["daily_limit"]),
            weekly=_dec(r["weekly_limit"]),
            monthly=_dec(r["monthly_limit"]),
            policy=r["policy"],
            alert_at=tuple(int(t) for t in str(r["alert_thresholds"]).split(",") if t.strip()),
            timezone=r["timezone"],
            source=r["source"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            webhook_url=r.get("webhook_url"),
            webhook_format=r.get("webhook_format"),
        )
        for r in rows
    ]


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(value)


def config_budgets(settings: Settings) -> list[Budget]:
    """Budgets from .genops.yml and GENOPS_* (already parsed into settings.budgets.scopes)."""
    return [
        replace(budget, alert_at=tuple(budget.alert_at), timezone=settings.budgets.timezone, source="config")
        for budget in settings.budgets.scopes
    ]


def memo_ledger_budgets(tx: Tx) -> list[Budget]:
    """`ledger_budgets(tx)` read once per insertion group: kept in `tx.memo`, which `records.insert_run` and
    `records.insert_runs` clear at their start, so per-run hooks (alerts) of a group of 200 runs read the
    budgets table once, inside the same write transaction (always current)."""
    found = tx.memo.get("ledger_budgets")
    if found is None:
        found = tx.memo["ledger_budgets"] = ledger_budgets(tx)
    return found


def effective_budgets(tx: Tx | None, settings: Settings | None,
                      stored: Sequence[Budget] | None = None) -> list[Budget]:
    """The one rule for which budget a scope has: the ledger's (`genops budget set`) wins, whole, over the
    config's for the same scope; config budgets apply to the scopes the ledger does not set.
    `stored`: the ledger's budgets when the caller already has them (this transaction's, or the cached copy)."""
    budgets = {b.scope: b for b in (config_budgets(settings) if settings is not None else [])}
    if stored is None:
        if tx is None:
            raise ValueError("effective_budgets: give a transaction or the stored budgets")
        stored = ledger_budgets(tx)
    budgets.update({b.scope: b for b in stored})
    return [budgets[s] for s in sorted(budgets)]


def applicable(budgets: Sequence[Budget], scopes: Sequence[str]) -> list[Budget]:
    wanted = set(scopes)
    return [b for b in budgets if b.scope in wanted and b.limits()]


#: Passed for a limit to clear it (`genops budget set team:ml --weekly none`).
CLEAR = "clear"


def set_budget(ledger: Ledger, settings: Settings, scope: str, *, daily: Decimal | str | None = None,
               weekly: Decimal | str | None = None, monthly: Decimal | str | None = None, policy: str | None = None,
               alert_at: Sequence[int] | None = None, timezone: str | None = None,
               webhook_url: str | None = None, webhook_format: str | None = None,
               now: datetime | None = None) -> Budget:
    """Create or update the ledger budget of `scope`; only the given fields change. Appends an audit entry.

    A new budget starts from the config budget of the same scope if there is one (so `budget set global
    --policy enforcing` keeps the file's limits), else from the configured defaults.
    """
    parse_scope(scope)
    if policy is not None:
        policy = normalize_policy(policy, "policy")
    if timezone is not None:
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"timezone {timezone!r}: unknown; use an IANA name like Europe/Berlin") from None
    now = now or utcnow()
    with ledger.write() as tx:
        before = audit.subject_payload(tx, "budget", scope)
        existing = next((b for b in ledger_budgets(tx) if b.scope == scope), None)
        if existing is None:
            base = next((b for b in config_budgets(settings) if b.scope == scope), None)
            existing = base or Budget(scope=scope, policy=settings.budgets.default_policy,
                                      alert_at=tuple(settings.budgets.alert_at),
                                      timezone=settings.budgets.timezone)
            existing.created_at = now
        for period, value in (("daily", daily), ("weekly", weekly), ("monthly", monthly)):
            if value is not None:
                setattr(existing, period, None if value == CLEAR else parse_money(value, f"--{period}"))
        if policy is not None:
            existing.policy = policy
        if alert_at is not None:
            existing.alert_at = tuple(alert_at)
        if timezone is not None:
            existing.timezone = timezone
        if webhook_url is not None:  # CLEAR removes the budget's own webhook (the configured one applies again)
            existing.webhook_url = None if webhook_url == CLEAR else _webhook_url(webhook_url)
        if webhook_format is not None:
            from genops_cli.policy.alerts import check_webhook_format

            existing.webhook_format = check_webhook_format(webhook_format, "--webhook-format")
        if not existing.limits():
            raise ConfigError(f"budget set {scope}: give at least one limit (--daily, --weekly or --monthly USD)")
        existing.source = "cli"
        existing.updated_at = now
        tx.execute(
            "INSERT INTO budgets (scope, daily_limit, weekly_limit, monthly_limit, policy, alert_thresholds, "
            "timezone, source, created_at, updated_at, webhook_url, webhook_format) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, 'cli', ?, ?, ?, ?) "
            "ON CONFLICT (scope) DO UPDATE SET daily_limit = EXCLUDED.daily_limit, "
            "weekly_limit = EXCLUDED.weekly_limit, monthly_limit = EXCLUDED.monthly_limit, "
            "policy = EXCLUDED.policy, alert_thresholds = EXCLUDED.alert_thresholds, "
            "timezone = EXCLUDED.timezone, source = EXCLUDED.source, updated_at = EXCLUDED.updated_at, "
            "webhook_url = EXCLUDED.webhook_url, webhook_format = EXCLUDED.webhook_format",
            [scope, _q(existing.daily), _q(existing.weekly), _q(existing.monthly), existing.policy,
             ",".join(str(t) for t in existing.alert_at), existing.timezone,
             to_naive_utc(existing.created_at or now), to_naive_utc(now), existing.webhook_url,
             existing.webhook_format if existing.webhook_url else None],
        )
        audit.append(tx, "budget", scope, before=before)
    budgets_changed(ledger)
    return existing


def _webhook_url(value: str) -> str:
    url = value.strip()
    if not url.startswith(("http://", "https://")):
        raise ConfigError("--webhook: must be an http(s) URL (e.g. a Slack or Teams incoming webhook); "
                          "'none' removes it")
    return url


def _q(value: Decimal | None) -> Decimal | None:
    return quantize_money(value) if value is not None else None


def remove_budget(ledger: Ledger, settings: Settings, scope: str) -> bool:
    """Delete the ledger budget of `scope` (audit entry). Config budgets live in the file and are not removed
    here; after removing a CLI budget, a config budget for the same scope (if any) applies again."""
    parse_scope(scope)
    with ledger.write() as tx:
        if not tx.scalar("SELECT COUNT(*) FROM budgets WHERE scope = ?", [scope]):
            if any(b.scope == scope for b in config_budgets(settings)):
                where = settings.config_path or "the environment (GENOPS_*_BUDGET_LIMIT)"
                raise ConfigError(f"budget remove {scope}: this budget is set in {where}; remove it there")
            return False
        before = audit.subject_payload(tx, "budget", scope)
        tx.execute("DELETE FROM budgets WHERE scope = ?", [scope])
        audit.append(tx, "budget", scope, before=before)
    budgets_changed(ledger)
    return True


# -- spend -----------------------------------------------------------------------------------------------------


def _spent_sql(scope: str, start: datetime, end: datetime) -> tuple[str, list[Any]]:
    kind, name = parse_scope(scope)
    sql = ("SELECT COALESCE(SUM(total_cost), 0) FROM runs WHERE NOT simulated AND started_at >= ? "
           "AND started_at < ?")
    params: list[Any] = [to_naive_utc(start), to_naive_utc(end)]
    if kind != "global":
        sql += f" AND {SCOPE_COLUMNS[kind]} = ?"
        params.append(name)
    return sql, params


def spent(tx: Tx, scope: str, start: datetime, end: datetime) -> Decimal:
    """Recorded cost of non-simulated runs in `scope` started in [start, end)."""
    sql, params = _spent_sql(scope, start, end)
    return Decimal(tx.scalar(sql, params) or 0)


def spent_and_reserved(tx: Tx, scope: str, start: datetime, end: datetime, now: datetime,
                       exclude_run_id: str | None = None) -> tuple[Decimal, Decimal]:
    """Spend and active holds in ONE statement: recording a run inserts its cost and releases its reservation
    in one transaction, and a single snapshot sees either the hold or the cost, never neither."""
    spent_q, spent_p = _spent_sql(scope, start, end)
    held_q, held_p = reservations.active_sql(scope, start, end, now, exclude_run_id)
    row = tx.query(f"SELECT ({spent_q}), ({held_q})", [*spent_p, *held_p])[0]
    return Decimal(row[0] or 0), Decimal(row[1] or 0)


@dataclass
class BudgetCheck:
    """One budget x period evaluated for one run."""

    budget: Budget
    period: str
    window: Window
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    estimate: Decimal
    policy: str

    @property
    def projected(self) -> Decimal:
        return self.spent + self.reserved + self.estimate

    @property
    def exceeded(self) -> bool:
        return self.projected > self.limit

    @property
    def result(self) -> str:
        if not self.exceeded or self.policy == "monitoring":
            return "ALLOWED"
        return "BLOCKED" if self.policy == "enforcing" else "WARNING"

    @property
    def rule(self) -> str:
        return f"budget:{self.budget.scope}:{self.period}"

    def message(self) -> str:
        verb = "would be exceeded" if self.exceeded else "holds"
        return (f"{self.budget.scope} {self.period} budget limit {usd(self.limit)} ({self.window.key}) {verb}: "
                f"spent {usd(self.spent)} + reserved {usd(self.reserved)} + this run's worst case "
                f"{usd(self.estimate)} (policy {self.policy})")


def evaluate(tx: Tx, budgets: Sequence[Budget], estimate: Decimal, now: datetime,
             policy_mode: str | None = None, run_id: str | None = None) -> list[BudgetCheck]:
    """Check every period of every budget against spend + other runs' active reservations + `estimate`."""
    checks = []
    for budget in budgets:
        for period, limit in budget.limits():
            w = window(period, now, budget.timezone)
            amount, held = spent_and_reserved(tx, budget.scope, w.start, w.end, now, run_id)
            checks.append(BudgetCheck(budget=budget, period=period, window=w, limit=limit, spent=amount,
                                      reserved=held, estimate=estimate, policy=policy_mode or budget.policy))
    return checks


_RANK = {"ALLOWED": 0, "WARNING": 1, "BLOCKED": 2}


def decide(checks: Sequence[BudgetCheck], run: RunRecord) -> PolicyDecision:
    """The run's budget decision (the strictest check), with one PolicyEvent per check appended to the run."""
    decision = PolicyDecision(result="ALLOWED")
    deciding: BudgetCheck | None = None
    for check in checks:
        run.policy_events.append(PolicyEvent(
            event_id=str(uuid.uuid4()), rule=check.rule, result=check.result,  # type: ignore[arg-type]
            reason_code=REASON if check.exceeded else None, message=check.message(),
            enforced=check.result == "BLOCKED",
        ))
        if check.exceeded and (deciding is None or _RANK[check.result] > _RANK[deciding.result]):
            deciding = check
    if deciding is not None:
        decision.budget_scope = deciding.budget.scope
        decision.message = deciding.message()
        if deciding.result != "ALLOWED":
            decision.result = deciding.result  # type: ignore[assignment]
            decision.reason_code = REASON
    return decision


def check_budget(engine: Governed, run: RunRecord, estimate: Decimal, *, policy_mode: str | None = None,
                 reserve: bool = True, now: datetime | None = None) -> PolicyDecision:
    """Check `run` (its attribution and pipeline give the scopes) against every applicable budget and, unless
    blocked, reserve `estimate` for it, in one ledger write transaction:

        run = engine.new_record(loaded, options)
        decision = check_budget(engine, run, estimate)      # PolicyDecision; run.policy_events filled
        raise_if_blocked(decision)                         # BudgetExceededError in enforcing mode
        run.policy = decision                              # insert_run releases the reservation later

    Simulated runs never reserve and are never blocked. Ledger trouble -> BLOCKED (reason
    BUDGET_RESERVATION_FAILED) when an applicable config budget is enforcing, else WARNING.
    """
    from genops_cli.policy import alerts

    if run.simulated:
        return PolicyDecision(result="ALLOWED")
    scopes = scopes_for_run(run.attribution, run.pipeline_name)
    now = now or utcnow()
    try:
        with engine.ledger.write() as tx:
            tx.lock_scopes(scopes)
            budgets = applicable(effective_budgets(tx, engine.settings), scopes)
            if not budgets:
                return PolicyDecision(result="ALLOWED")
            decision = decide(evaluate(tx, budgets, estimate, now, policy_mode, run.run_id), run)
            if decision.result != "BLOCKED" and reserve:
                decision.reservation_id = reservations.insert(
                    tx, run.run_id, scopes, estimate, created_at=run.started_at, now=now,
                    ttl_minutes=engine.settings.reservation_ttl_minutes)
                decision.reserved_cost = quantize_money(estimate)
        alerts.track(run.run_id, decision.reservation_id, engine.settings, engine.ledger)
        return decision
    except LedgerError as exc:
        return _unreachable(engine.settings, scopes, policy_mode, str(exc), run)


def _unreachable(settings: Settings, scopes: Sequence[str], policy_mode: str | None, error: str,
                 run: RunRecord) -> PolicyDecision:
    """The ledger cannot be written: the reservation cannot be made, so an enforcing budget must not run."""
    known = applicable(config_budgets(settings), scopes)
    enforcing = policy_mode == "enforcing" or (policy_mode is None and any(b.policy == "enforcing" for b in known))
    result = "BLOCKED" if enforcing else "WARNING"
    message = f"budget limit could not be checked (reservation failed: {error})"
    run.policy_events.append(PolicyEvent(event_id=str(uuid.uuid4()), rule="budget:reservation", result=result,
                                         reason_code=RESERVATION_FAILED, message=message,
                                         enforced=enforcing))
    return PolicyDecision(result=result, reason_code=RESERVATION_FAILED, message=message)  # type: ignore[arg-type]


def raise_if_blocked(decision: PolicyDecision) -> None:
    """BudgetExceededError (message contains "budget limit") when a budget blocked the run."""
    if decision.result == "BLOCKED" and decision.reason_code in (REASON, RESERVATION_FAILED):
        raise BudgetExceededError(decision.message or "budget limit exceeded", decision.reason_code or REASON)


#: How long a process trusts its copy of a ledger's budget list when the ledger has no budget stamp file.
BUDGET_CACHE_SECONDS = 1.0
#: With a stamp file (DuckDB), the copy is re-read when the stamp changes, and at least this often.
STAMPED_CACHE_SECONDS = 60.0

# ledger location -> (monotonic time read, stamp when read, the ledger's budgets). Guarded: batch workers share it.
_ledger_budget_cache: dict[str, tuple[float, Any, list[Budget]]] = {}
_ledger_budget_guard = threading.Lock()
# ledger location -> the lock of the one thread re-reading its budget list
_refresh_locks: dict[str, threading.Lock] = {}


def _stamp_path(ledger: Ledger) -> str | None:
    """`<ledger>.budgets` next to a DuckDB file; None for a server ledger (other machines cannot see a file)."""
    path = getattr(ledger, "path", None)
    return _stamp_path_of(str(path)) if isinstance(path, Path) else None


@functools.lru_cache(maxsize=64)
def _stamp_path_of(path: str) -> str:
    return f"{path}.budgets"  # asked before every call of every run: a plain string, built once per ledger


def _stamp(path: str | None) -> Any:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return 0
    return st.st_mtime_ns, st.st_size, st.st_ino


#: The stamp file is stat()ed at most this often per process: every system call on a run's thread hands the GIL
#: to another thread (up to the 5 ms switch interval under load), and a batch asks several times per run.
STAMP_CHECK_SECONDS = 0.2
_stamps_seen: dict[str, tuple[float, Any]] = {}


def _recent_stamp(path: str | None, now: float) -> Any:
    if path is None:
        return None
    seen = _stamps_seen.get(path)
    if seen is not None and now - seen[0] < STAMP_CHECK_SECONDS:
        return seen[1]
    stamp = _stamp(path)
    _stamps_seen[path] = (now, stamp)
    return stamp


def budgets_changed(ledger: Ledger) -> None:
    """After a committed change to the budgets table: other processes re-read it at their next call (stamp),
    this process at once."""
    path = _stamp_path(ledger)
    if path is not None:
        try:
            # A new file each time (new inode): a change is seen even within the file system's mtime resolution.
            tmp = Path(f"{path}.{os.getpid()}.{threading.get_ident()}")
            tmp.write_text(f"{time.time_ns()}\n")
            os.replace(tmp, path)
        except OSError as exc:  # the stamp only speeds up propagation; the 60 s re-read still applies
            _log.warning("genops: cannot write budget stamp %s (%s)", path, exc)
    forget_ledger_budgets(ledger)


def cached_ledger_budgets(ledger: Ledger, max_age: float | None = None) -> list[Budget]:
    """The ledger's budgets, from a per-process copy.

    Used only to decide whether a run or a call needs a budget check at all (and whether a recorded run can
    cross an alert threshold), so a call without budgets costs no ledger read (on DuckDB, one stat of the stamp
    file). A budget set or removed by ANOTHER process is seen at the next call on DuckDB (stamp changed), within
    BUDGET_CACHE_SECONDS elsewhere; this process's own set/remove at once. The check itself (`check_budget`,
    `LedgerBudgetHold.ensure`) always re-reads the budgets inside its write transaction.

        if applicable(cached_ledger_budgets(ctx.ledger), scopes): ...
    """
    now = time.monotonic()
    stamp_path = _stamp_path(ledger)
    stamp = _recent_stamp(stamp_path, now)
    if max_age is None:
        # A DuckDB ledger with no stamp file yet has had no budget set since stamps exist: the first `budget set`
        # creates the file, and that change of stamp is seen at the next call, as any other.
        max_age = STAMPED_CACHE_SECONDS if stamp_path is not None else BUDGET_CACHE_SECONDS
    with _ledger_budget_guard:
        hit = _ledger_budget_cache.get(ledger.location)
        refreshing = _refresh_locks.setdefault(ledger.location, threading.Lock())
    if hit is not None and now - hit[0] < max_age and hit[1] == stamp:
        return hit[2]
    # One thread re-reads; the others wait for its copy. A budget change seen by a busy service's 100 request
    # threads at once would otherwise make 100 ledger reads, queued behind the ledger lock (seconds of stall).
    with refreshing:
        with _ledger_budget_guard:
            hit = _ledger_budget_cache.get(ledger.location)
        if hit is not None and now - hit[0] < max_age and hit[1] == stamp:
            return hit[2]  # another thread read it while this one waited (under the stamp this one saw)
        read_at = time.monotonic()
        if not ledger.exists():
            budgets: list[Budget] = []
        else:
            with ledger.read() as tx:
                budgets = ledger_budgets(tx)
        with _ledger_budget_guard:
            _ledger_budget_cache[ledger.location] = (read_at, stamp, budgets)
    return budgets


def forget_ledger_budgets(ledger: Ledger | None = None) -> None:
    """Drop the cached budget list of `ledger` (all ledgers when None): this process changed its budgets."""
    with _ledger_budget_guard:
        _stamps_seen.clear()
        if ledger is None:
            _ledger_budget_cache.clear()
        else:
            _ledger_budget_cache.pop(ledger.location, None)


def has_budgets(ctx: Governed, scopes: Sequence[str]) -> bool:
    """Whether any budget applies to these scopes: config budgets (in memory) or the ledger's (cached copy,
    see `cached_ledger_budgets`)."""
    wanted = set(scopes)
    if any(b.scope in wanted and b.limits() for b in ctx.settings.budgets.scopes):  # config budgets, in memory
        return True
    try:
        stored = cached_ledger_budgets(ctx.ledger)
    except LedgerError:
        return True  # let check_budget decide how to fail
    if not stored:
        return False
    # Asked before every call of every run: the answer is kept per copy of the budget list (a new copy is a
    # new list object, so a budget set or removed is seen as soon as the copy is re-read).
    key = (id(stored), frozenset(wanted))
    hit = _applies_memo.get(key)
    if hit is not None and hit[0] is stored:
        return hit[1]
    answer = bool(applicable(stored, scopes))
    if len(_applies_memo) > 1024:
        _applies_memo.clear()
    _applies_memo[key] = (stored, answer)
    return answer


# (id of a cached budget list, scopes) -> (that list, whether a budget of it applies to the scopes)
_applies_memo: dict[tuple[int, frozenset[str]], tuple[list[Budget], bool]] = {}


def check_and_reserve(ctx: Governed, run: RunRecord, estimate: Callable[[], Decimal],
                      policy_mode: str | None = None, hold: Any = None) -> PolicyDecision:
    """Preflight: estimate the run's worst case (only when a budget applies), then `check_budget`.

    `estimate` is called before the write transaction, so the ledger lock is held only for the check and the
    insert. The run's reservation is released when the run is recorded, or expires after
    reservation.ttl_minutes if the process died first. With `hold` (a process lease, `policy.leases`), the worst
    case is drawn from the process's lease instead: in memory while it has room.
    """
    if run.simulated:
        return PolicyDecision(result="ALLOWED")
    if not has_budgets(ctx, scopes_for_run(run.attribution, run.pipeline_name)):
        return PolicyDecision(result="ALLOWED")
    if hold is None:
        return check_budget(ctx, run, estimate(), policy_mode=policy_mode)
    denial = hold.ensure(hold.worst_case(estimate))
    if denial is not None:
        return PolicyDecision(result="BLOCKED", reason_code=denial.reason_code, message=denial.message,
                              budget_scope=run.policy.budget_scope)
    noted = run.policy  # an advisory budget the draw exceeds made it WARNING
    return PolicyDecision(result=noted.result, reason_code=noted.reason_code, message=noted.message,
                          reserved_cost=quantize_money(hold.reserved))


class LedgerBudgetHold:
    """A run's reservation against its ledger budgets, grown call by call by per-call admission.

    `ensure(total)` re-checks every applicable budget with the run's new total hold (spent + other runs' holds +
    `total` <= limit) and raises the reservation to `total`, in one write transaction under the scope locks, so
    concurrent processes never admit more than a limit in sum. Enforcing budgets deny; advisory ones log a
    warning once per run; monitoring ones only hold.
    """

    def __init__(self, ctx: Governed, run: RunRecord, policy_mode: str | None = None) -> None:
        self.ctx = ctx
        self.run = run
        self.policy_mode = policy_mode
        self.scopes = scopes_for_run(run.attribution, run.pipeline_name)
        self._warned = False

    @property
    def reserved(self) -> Decimal:
        return self.run.policy.reserved_cost if self.run.policy.reservation_id else Decimal(0)

    def applies(self) -> bool:
        return not self.run.simulated and has_budgets(self.ctx, self.scopes)

    def ensure(self, total: Decimal, ahead: Decimal = Decimal(0)) -> Denial | None:
        """Hold `total` (and `ahead` more when that fits every budget without exceeding any: the run's next
        calls are then admitted in memory instead of one ledger transaction each)."""
        now = utcnow()
        try:
            with self.ctx.ledger.write() as tx:
                tx.lock_scopes(self.scopes)
                budgets = applicable(effective_budgets(tx, self.ctx.settings), self.scopes)
                if not budgets:
                    return None
                if ahead > 0:  # only when as much again stays free for other runs
                    roomy = evaluate(tx, budgets, total + 2 * ahead, now, self.policy_mode, self.run.run_id)
                    if not any(c.exceeded for c in roomy):
                        self._hold(tx, total + ahead, now)
                        return None
                checks = evaluate(tx, budgets, total, now, self.policy_mode, self.run.run_id)
                blocking = next((c for c in checks if c.result == "BLOCKED"), None)
                if blocking is not None:
                    return self._deny(blocking)
                self._hold(tx, total, now)
            from genops_cli.policy import alerts

            alerts.track(self.run.run_id, self.run.policy.reservation_id, self.ctx.settings, self.ctx.ledger)
        except LedgerError as exc:
            decision = _unreachable(self.ctx.settings, self.scopes, self.policy_mode, str(exc), self.run)
            if decision.result == "BLOCKED":
                return Denial(RESERVATION_FAILED, decision.message or "reservation failed", "budget:reservation")
            return None
        warning = next((c for c in checks if c.result == "WARNING"), None)
        if warning is not None and not self._warned:
            self._warned = True
            self._event(warning, enforced=False)
            _log.warning("genops: %s", warning.message().replace("this run's worst case", "this run's hold"))
        return None

    def cover(self, total: Decimal) -> None:
        try:
            with self.ctx.ledger.write() as tx:
                self._hold(tx, total, utcnow())
        except LedgerError as exc:  # the run is still recorded with its cost; only the early hold is missing
            _log.warning("genops: budget reservation of run %s not raised to its spend (%s)", self.run.run_id, exc)

    def _hold(self, tx: Tx, total: Decimal, now: datetime) -> None:
        policy = self.run.policy
        ttl = self.ctx.settings.reservation_ttl_minutes
        if policy.reservation_id:
            tx.execute("UPDATE reservations SET amount = ?, expires_at = ? WHERE reservation_id = ? "
                       "AND released_at IS NULL",
                       [quantize_money(total), to_naive_utc(now + timedelta(minutes=ttl)), policy.reservation_id])
        else:
            policy.reservation_id = reservations.insert(tx, self.run.run_id, self.scopes, total,
                                                        created_at=self.run.started_at, now=now, ttl_minutes=ttl)
        policy.reserved_cost = quantize_money(total)

    def _deny(self, check: BudgetCheck) -> Denial:
        message = check.message().replace("this run's worst case", "this run's spend, calls in flight and the "
                                          "next call's worst case")
        self._event(check, enforced=True, message=message)
        self.run.policy.budget_scope = check.budget.scope
        return Denial(REASON, f"budget limit reached before the next call: {message}", check.rule)

    def _event(self, check: BudgetCheck, enforced: bool, message: str | None = None) -> None:
        self.run.policy_events.append(PolicyEvent(
            event_id=str(uuid.uuid4()), rule=check.rule, result=check.result,  # type: ignore[arg-type]
            reason_code=REASON, message=message or check.message(), enforced=enforced))


# -- status ----------------------------------------------------------------------------------------------------


@dataclass
class BudgetStatus:
    """One budget x period now: spend, holds, projection to the period's end, alerts fired."""

    budget: Budget
    period: str
    window: Window
    limit: Decimal
    spent: Decimal
    reserved: Decimal
    active_reservations: int
    elapsed: float
    alerts_fired: list[dict[str, Any]] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        return self.limit - self.spent - self.reserved

    @property
    def utilization(self) -> Decimal | None:
        """Percent of the limit spent (None for a zero limit)."""
        if self.limit == 0:
            return None
        return (self.spent * 100 / self.limit).quantize(Decimal("0.01"))

    @property
    def projected(self) -> Decimal | None:
        """Burn-rate projection: spend so far scaled to the whole period (None right at the period's start)."""
        if self.elapsed <= 0:
            return None
        return quantize_money(self.spent / Decimal(str(self.elapsed)))

    @property
    def projected_utilization(self) -> Decimal | None:
        projected = self.projected
        if projected is None or self.limit == 0:
            return None
        return (projected * 100 / self.limit).quantize(Decimal("0.01"))

    def to_json(self) -> dict[str, Any]:
        def m(v: Decimal | None) -> str | None:
            return money_json(v)

        return {
            "scope": self.budget.scope,
            "period": self.period,
            "period_key": self.window.key,
            "period_start": self.window.start.isoformat(),
            "period_end": self.window.end.isoformat(),
            "timezone": self.window.timezone,
            "policy": self.budget.policy,
            "source": self.budget.source,
            "limit": m(self.limit),
            "spent": m(self.spent),
            "reserved": m(self.reserved),
            "active_reservations": self.active_reservations,
            "remaining": m(self.remaining),
            "utilization": str(self.utilization) if self.utilization is not None else None,
            "projected": m(self.projected),
            "projected_utilization": (str(self.projected_utilization)
                                      if self.projected_utilization is not None else None),
            "exceeded": self.spent > self.limit,
            "alerts_fired": self.alerts_fired,
        }


def status(ledger: Ledger, settings: Settings, scope: str | None = None,
           now: datetime | None = None) -> list[BudgetStatus]:
    """Every budget (or one scope) for its current periods: three statements in one read snapshot whatever the
    number of budgets (spend grouped per scope column and window, the active holds, the alerts fired)."""
    if scope is not None:
        parse_scope(scope)
    now = now or utcnow()
    with ledger.read() as tx:
        pairs = [(budget, period, limit, window(period, now, budget.timezone))
                 for budget in effective_budgets(tx, settings) if scope is None or budget.scope == scope
                 for period, limit in budget.limits()]
        if not pairs:
            return []
        spent_by = _spent_by_window(tx, [(b.scope, w) for b, _p, _l, w in pairs])
        holds = _active_holds(tx, [w for *_rest, w in pairs], now)
        fired = _alerts_fired(tx, {b.scope for b, *_rest in pairs})
    out: list[BudgetStatus] = []
    for budget, period, limit, w in pairs:
        start, end = to_naive_utc(w.start), to_naive_utc(w.end)
        key = reservations.encode_scopes([budget.scope])
        mine = [amount for scopes, created, amount in holds if key in scopes and start <= created < end]
        out.append(BudgetStatus(
            budget=budget, period=period, window=w, limit=limit,
            spent=spent_by.get((budget.scope, start, end), Decimal(0)),
            reserved=sum(mine, Decimal(0)), active_reservations=len(mine), elapsed=elapsed_fraction(w, now),
            alerts_fired=[{"threshold": int(a["threshold"]), "spent": money_json(a["spent"]),
                           "fired_at": a["fired_at"].isoformat() if a["fired_at"] else None,
                           "run_id": a["run_id"], "webhook_status": a["webhook_status"]}
                          for a in fired.get((budget.scope, period, w.key), [])],
        ))
    return out


def _spent_by_window(tx: Tx, wanted: list[tuple[str, Window]]) -> dict[tuple[str, Any, Any], Decimal]:
    """(scope, naive start, naive end) -> recorded cost of its non-simulated runs (what `spent` returns), from
    one UNION ALL statement with a branch per scope kind and window, grouped by the scope's column."""
    branches: dict[tuple[str, Any, Any], set[str]] = {}
    for scope, w in wanted:
        kind, name = parse_scope(scope)
        branches.setdefault((kind, to_naive_utc(w.start), to_naive_utc(w.end)), set()).add(name or "")
    keys = list(branches)
    parts: list[str] = []
    params: list[Any] = []
    for i, (kind, start, end) in enumerate(keys):
        base = "FROM runs WHERE NOT simulated AND started_at >= ? AND started_at < ?"
        params += [start, end]
        if kind == "global":
            parts.append(f"SELECT {i}, CAST(NULL AS VARCHAR), SUM(total_cost) {base}")
            continue
        column = SCOPE_COLUMNS[kind]
        names = sorted(branches[(kind, start, end)])
        parts.append(f"SELECT {i}, {column}, SUM(total_cost) {base} "
                     f"AND {column} IN ({', '.join('?' for _ in names)}) GROUP BY {column}")
        params += names
    out: dict[tuple[str, Any, Any], Decimal] = {}
    for i, name, amount in tx.query(" UNION ALL ".join(parts), params):
        kind, start, end = keys[int(i)]
        out[(kind if kind == "global" else f"{kind}:{name}", start, end)] = Decimal(amount or 0)
    return out


def _active_holds(tx: Tx, windows: list[Window], now: datetime) -> list[tuple[str, datetime, Decimal]]:
    """Active, non-simulated reservations created within the windows (few: the runs in flight), matched to each
    scope in memory on the same `|scope|` encoding `reservations.active_sql` matches with strpos."""
    rows = tx.query("SELECT scopes, created_at, amount FROM reservations WHERE released_at IS NULL "
                    "AND expires_at > ? AND NOT simulated AND created_at >= ? AND created_at < ?",
                    [to_naive_utc(now), min(to_naive_utc(w.start) for w in windows),
                     max(to_naive_utc(w.end) for w in windows)])
    return [(str(s), c, Decimal(a or 0)) for s, c, a in rows]


def _alerts_fired(tx: Tx, scopes: set[str]) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
    """(scope, period, period key) -> the alerts fired, lowest threshold first."""
    names = sorted(scopes)
    out: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for a in tx.query_dicts(
            "SELECT scope, period, period_key, threshold, spent, fired_at, run_id, webhook_status FROM alerts "
            f"WHERE scope IN ({', '.join('?' for _ in names)}) ORDER BY threshold", names):
        out.setdefault((a["scope"], a["period"], a["period_key"]), []).append(a)
    return out
