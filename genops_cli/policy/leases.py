"""Process leases: one budget hold per process and scope set, shared by the process's runs (the Python API).

A service tracking requests through the API would otherwise write one ledger transaction per request (its run's
reservation) and one per call that outgrows it: on a DuckDB ledger that is tens of milliseconds on the request's
thread, behind the ingester's writer lock. Instead the process holds one reservation row for the scopes its runs
count toward (`run_id` = `lease:<uuid>`), sized to what its runs hold plus room for a few more, and runs draw on
it in memory:

    hold = LeaseBudgetHold(lease_for(ctx, run), run)   # a BudgetHold for per-call admission and preflight
    hold.ensure(total)         # in memory while the lease has room; else the lease grows (one checked transaction)
    hold.finished(run.total_cost)   # the run's unused hold goes back; its cost stays held until it is ingested

Accounting (the same sums as per-run reservations, race-free across processes):
- the lease row holds: calls in flight + costs of this process's runs not yet in the ledger + spare room. Other
  processes see spent (ingested runs) + this row, never less than this process may have spent;
- growing the lease is checked like any reservation: spent + other holds + the lease's new amount <= limit, under
  the scope locks, in one write transaction. The same transaction drops from the lease the costs of runs that
  have been ingested since (they now count as spent), so the row shrinks back;
- a lease belongs to one daily window of every applicable budget (reservations count in the period of their
  `created_at`): a run started in a new day draws on a new lease;
- a budget changed anywhere (the budget stamp / cached list changes) makes the next draw re-check in the ledger;
- the row expires `LEASE_TTL_MINUTES` after its last growth if the process dies; at exit it is released once the
  recorder has ingested what it held.
"""

from __future__ import annotations

import atexit
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.errors import LedgerError
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.models import PolicyEvent, RunRecord, quantize_money, utcnow
from genops_cli.policy.admission import Denial

if TYPE_CHECKING:
    from genops_cli.ledger.store import Tx
    from genops_cli.policy.budgets import BudgetCheck, Governed

LEASE_TTL_MINUTES = 10
#: When a lease grows it also takes room for this many more draws like the current one, if that and as much again
#: for other processes fit every budget (then the next runs draw in memory); if not, exactly what is needed.
#: A busy process doubles the room at each growth, up to LEASE_ROOM_MAX draws: one ledger transaction (tens of
#: milliseconds on DuckDB) per a few hundred runs instead of one per four.
LEASE_ROOM = 4
LEASE_ROOM_MAX = 256
#: A pipeline's runs drawing on a roomy lease are estimated (a simulated pass) once per this many runs.
ESTIMATE_EVERY = 64
#: A growth the budgets denied answers draws needing at least as much, under the same budgets, for this long
#: without another ledger transaction: once a limit is reached, every request of a busy service would otherwise
#: queue for the ledger's writer lock only to be told no (10 blocked requests a second instead of hundreds).
#: A budget changed anywhere, or the lease's own runs ending (a smaller need), ends it at once.
DENIAL_MEMO_SECONDS = 0.25


@dataclass
class BudgetLease:
    """One process's hold for one scope set and one day. Thread-safe."""

    ctx: Governed
    scopes: tuple[str, ...]
    day: tuple[str, ...]  # the daily window key of every budget timezone in force when it was made
    lease_run_id: str = field(default_factory=lambda: f"lease:{uuid.uuid4()}")
    reservation_id: str | None = None
    granted: Decimal = Decimal(0)
    used: Decimal = Decimal(0)
    budgets_seen: object = None  # the budgets (ledger list, config limits) this lease was last checked against
    pending: dict[str, Decimal] = field(default_factory=dict)  # finished runs' costs, until they are ingested
    #: advisory budgets at the last growth: (what this lease may use before one is exceeded, that budget's check)
    warn_above: tuple[Decimal, BudgetCheck] | None = None
    written_at: float = 0.0  # monotonic time of the last write (its expiry is LEASE_TTL_MINUTES after)
    growths: int = 0  # how often it grew: the room it takes doubles with each growth
    #: pipeline hash -> (largest up-front worst case estimated for its runs, runs since that pipeline's last estimate)
    worst_cases: dict[str, tuple[Decimal, int]] = field(default_factory=dict)
    #: the last denied growth: (what the lease needed, the budgets it was checked against, when, the blocking check)
    denied: tuple[Decimal, object, float, BudgetCheck] | None = None
    lock: threading.RLock = field(default_factory=threading.RLock)

    def take(self, run: RunRecord, amount: Decimal, policy_mode: str | None, ahead: Decimal) -> Denial | None:
        """Hold `amount` more for `run`: in memory while the lease has room and no budget changed. An advisory
        budget this would exceed is noted on the run (a WARNING event)."""
        denial = self._take(run, amount, policy_mode, ahead)
        warn = self.warn_above
        if denial is None and warn is not None and self.used > warn[0]:
            _warn(run, warn[1])
        return denial

    def _take(self, run: RunRecord, amount: Decimal, policy_mode: str | None, ahead: Decimal) -> Denial | None:
        from genops_cli.policy.budgets import cached_ledger_budgets

        with self.lock:
            try:
                stored: object = id(cached_ledger_budgets(self.ctx.ledger))  # a new list when re-read
            except LedgerError:
                stored = None
            current = (stored, tuple((x.scope, x.daily, x.weekly, x.monthly, x.policy)
                                     for x in self.ctx.settings.budgets.scopes))
            fresh = time.monotonic() - self.written_at < LEASE_TTL_MINUTES * 30  # renewed well before it expires
            if self.used + amount <= self.granted and current == self.budgets_seen and fresh:
                self.used += amount
                return None
            denied = self.denied
            if (denied is not None and denied[1] == current and self.used + amount >= denied[0]
                    and time.monotonic() - denied[2] < DENIAL_MEMO_SECONDS):
                return _deny(run, denied[3])
            room = min(LEASE_ROOM * 2 ** self.growths, LEASE_ROOM_MAX)
            self.growths += 1
            denial, blocking = self._grow(run, amount, policy_mode, max(ahead, amount * room))
            if denial is None:
                self.used += amount
                self.budgets_seen = current
                self.denied = None
            elif blocking is not None:
                self.denied = (self.used + amount, current, time.monotonic(), blocking)
            return denial

    def force(self, amount: Decimal) -> None:
        """Hold `amount` more without a check: money already spent (a call that cost more than its worst case)."""
        with self.lock:
            self.used += amount
            if self.used > self.granted:
                try:
                    with self.ctx.ledger.write() as tx:
                        self._settle(tx)
                        self._write(tx, self.used, utcnow())
                except LedgerError:  # the run is still recorded with its cost; only the early hold is missing
                    pass

    def finished(self, run_id: str, held: Decimal, cost: Decimal) -> None:
        """A run drawing `held` finished having spent `cost`: the rest goes back; the cost stays until ingested."""
        kept = min(cost, held)  # only what the run drew is in `used` (a run that drew nothing holds nothing)
        with self.lock:
            self.used -= held - kept
            if kept:
                self.pending[run_id] = self.pending.get(run_id, Decimal(0)) + kept

    def _grow(self, run: RunRecord, amount: Decimal, policy_mode: str | None, ahead: Decimal
              ) -> tuple[Denial | None, BudgetCheck | None]:
        """(None, None) when the lease grew; else the denial and the budget check that blocked it (None when the
        ledger could not be reached)."""
        from genops_cli.policy import budgets as b

        now = utcnow()
        try:
            with self.ctx.ledger.write() as tx:
                tx.lock_scopes(self.scopes)
                applicable = b.applicable(b.effective_budgets(tx, self.ctx.settings), self.scopes)
                self._settle(tx)
                self._settle_siblings(tx)
                need = self.used + amount
                if not applicable:
                    self._write(tx, need, now)
                    return None, None
                for target in (need + ahead, need) if ahead > 0 else (need,):
                    # Spare room is taken only when as much again stays free for other processes.
                    probe = target + (target - need)
                    checks = b.evaluate(tx, applicable, probe, now, policy_mode, self.lease_run_id)
                    blocking = next((c for c in checks if c.result == "BLOCKED"), None)
                    if blocking is None and (target == need or not any(c.exceeded for c in checks)):
                        self._write(tx, target, now)
                        soft = [(c.limit - c.spent - c.reserved, c) for c in checks if c.policy != "enforcing"]
                        self.warn_above = min(soft, key=lambda item: item[0]) if soft else None
                        return None, None
                assert blocking is not None
                return _deny(run, blocking), blocking
        except LedgerError as exc:
            decision = b._unreachable(self.ctx.settings, self.scopes, policy_mode, str(exc), run)
            if decision.result == "BLOCKED":
                return Denial(b.RESERVATION_FAILED, decision.message or "reservation failed",
                              "budget:reservation"), None
            return None, None

    def _settle(self, tx: Tx) -> None:
        """Drop from the lease the costs of this process's runs that the ledger now holds (spent): from what it
        uses AND from what it was granted (the row shrinks in this transaction). Were only `used` lowered, the
        room kept in memory would grow by money the ledger now counts as spent, and runs drawing on it in memory
        would be admitted twice on it."""
        if not self.pending:
            return
        ids = list(self.pending)
        placeholders = ", ".join("?" for _ in ids)
        dropped = Decimal(0)
        for (run_id,) in tx.query(f"SELECT run_id FROM runs WHERE run_id IN ({placeholders})", ids):
            dropped += self.pending.pop(run_id, Decimal(0))
        if dropped:
            self.used -= dropped
            self._write(tx, self.granted - dropped, utcnow())

    def _settle_siblings(self, tx: Tx) -> None:
        """Settle the process's other leases on this ledger too (those not busy growing themselves). A lease is
        per scope set, and the scopes name the pipeline: the lease of a pipeline name that runs no more would keep
        holding its ingested runs' costs, counted a second time as spent, and its spare room, until the process
        exits or the row expires, denying other pipelines' calls that fit the budget. An idle sibling (no run
        draws on it) gives its room back; it grows again when its pipeline runs again."""
        with _leases_guard:
            siblings = [lease for lease in _leases.values() if lease is not self and (lease.pending or lease.granted)
                        and lease.ctx.ledger.location == self.ctx.ledger.location]
        for lease in siblings:
            if lease.lock.acquire(blocking=False):  # never wait for another lease's lock while holding ours
                try:
                    lease._settle(tx)
                    if not lease.used and lease.granted:  # idle: its spare room goes back to the budgets
                        lease._write(tx, Decimal(0), utcnow())
                finally:
                    lease.lock.release()

    def _write(self, tx: Tx, amount: Decimal, now: datetime) -> None:
        from genops_cli.policy import reservations

        expires = to_naive_utc(now + timedelta(minutes=LEASE_TTL_MINUTES))
        if self.reservation_id is None:
            self.reservation_id = reservations.insert(tx, self.lease_run_id, self.scopes, amount, created_at=now,
                                                      now=now, ttl_minutes=LEASE_TTL_MINUTES)
        else:
            tx.execute("UPDATE reservations SET amount = ?, expires_at = ? WHERE reservation_id = ?",
                       [quantize_money(amount), expires, self.reservation_id])
        self.granted = amount
        self.written_at = time.monotonic()

    def release(self) -> None:
        """At exit, once the recorder flushed: nothing of this process is in flight any more."""
        with self.lock:
            if self.reservation_id is None:
                return
            try:
                with self.ctx.ledger.write() as tx:
                    self._settle(tx)
                    if self.pending:  # runs left in the spool: keep holding their cost until the row expires
                        self._write(tx, sum(self.pending.values(), Decimal(0)), utcnow())
                    else:
                        tx.execute("UPDATE reservations SET released_at = ?, actual_cost = 0 WHERE reservation_id = ?",
                                   [to_naive_utc(utcnow()), self.reservation_id])
            except LedgerError:
                pass  # the row expires on its own


def _warn(run: RunRecord, check: BudgetCheck) -> None:
    """An advisory (or monitoring) budget exceeded by a run drawing on the lease: the run says so, once."""
    if any(e.rule == check.rule for e in run.policy_events):
        return
    result = "WARNING" if check.policy == "advisory" else "ALLOWED"
    message = check.message().replace("holds", "would be exceeded")
    run.policy_events.append(PolicyEvent(event_id=str(uuid.uuid4()), rule=check.rule, result=result,  # type: ignore[arg-type]
                                         reason_code="BUDGET_EXCEEDED", message=message, enforced=False))
    if result == "WARNING" and run.policy.result == "ALLOWED":
        run.policy.result, run.policy.reason_code, run.policy.message = "WARNING", "BUDGET_EXCEEDED", message


def _deny(run: RunRecord, check: BudgetCheck) -> Denial:
    message = check.message().replace("this run's worst case", "this call's worst case with the process's holds")
    run.policy_events.append(PolicyEvent(event_id=str(uuid.uuid4()), rule=check.rule, result=check.result,  # type: ignore[arg-type]
                                         reason_code="BUDGET_EXCEEDED", message=message, enforced=True))
    run.policy.budget_scope = check.budget.scope
    return Denial("BUDGET_EXCEEDED", f"budget limit reached before the next call: {message}", check.rule)


_leases: dict[tuple[str, tuple[str, ...], tuple[str, ...], int], BudgetLease] = {}
_leases_guard = threading.Lock()


def lease_for(ctx: Governed, run: RunRecord) -> BudgetLease:
    """The process's lease for the run's scopes and day (created on first use, released at exit)."""
    from genops_cli.policy.budgets import cached_ledger_budgets
    from genops_cli.policy.periods import window
    from genops_cli.policy.scopes import scopes_for_run

    scopes = tuple(scopes_for_run(run.attribution, run.pipeline_name))
    try:
        stored = cached_ledger_budgets(ctx.ledger)
    except LedgerError:
        stored = []
    # Asked once per run: the last answer for these scopes serves while the run starts inside the same day in
    # every zone and the budget list (its timezones) is the same copy.
    zone = ctx.settings.budgets.timezone
    # Per governed context too: config budgets (an adapter's daily_budget_limit) are its own, so two adapters of
    # one process hold separate leases, as two processes would (the lease keeps its context alive, so an id is
    # never reused while its lease is kept).
    memo_key = (ctx.ledger.location, scopes, zone, id(ctx))
    memo = _lease_memo.get(memo_key)
    if memo is not None and memo[0] is stored and memo[1] <= run.started_at < memo[2]:
        return memo[3]
    # Every budget's own timezone: a lease made before midnight in one of them must not serve runs after it.
    zones = sorted({zone, "UTC", *(b.timezone for b in stored if b.timezone)})
    days = [window("daily", run.started_at, tz) for tz in zones]
    day = tuple(w.key for w in days)
    key = (ctx.ledger.location, scopes, day, id(ctx))
    with _leases_guard:
        lease = _leases.get(key)
        if lease is None:
            lease = _leases[key] = BudgetLease(ctx, scopes, day)
        if len(_lease_memo) > 1024:
            _lease_memo.clear()
        _lease_memo[memo_key] = (stored, max(w.start for w in days), min(w.end for w in days), lease)
        return lease


# (ledger, scopes, default timezone, context) -> (budget list copy, valid from, valid until, the lease): lease_for's
# answer
_lease_memo: dict[tuple[str, tuple[str, ...], str, int], tuple[Any, Any, Any, BudgetLease]] = {}


class LeaseBudgetHold:
    """A run's view of its process's lease: the `BudgetHold` per-call admission and preflight use."""

    def __init__(self, lease: BudgetLease, run: RunRecord, policy_mode: str | None = None) -> None:
        self.lease = lease
        self.run = run
        self.policy_mode = policy_mode
        self.reserved = Decimal(0)

    def applies(self) -> bool:
        from genops_cli.policy.budgets import has_budgets

        return not self.run.simulated and has_budgets(self.lease.ctx, self.lease.scopes)

    def worst_case(self, estimate: Callable[[], Decimal]) -> Decimal:
        """The run's up-front hold. `estimate()` is a simulated pass of the pipeline (about as costly as a run):
        while the lease has room, in memory, for the largest worst case estimated for this pipeline's runs, that
        largest one is held instead, re-estimated every ESTIMATE_EVERY runs. Nothing can be overspent by it:
        every call is still admitted on its own worst case before it is made (a bigger run tops its hold up)."""
        lease, key = self.lease, self.run.pipeline_hash
        with lease.lock:
            known, since = lease.worst_cases.get(key, (None, 0))
            if known is not None and since < ESTIMATE_EVERY and lease.granted - lease.used >= known:
                lease.worst_cases[key] = (known, since + 1)
                return known
        value = estimate()
        with lease.lock:
            known, _since = lease.worst_cases.get(key, (None, 0))
            lease.worst_cases[key] = (max(value, known) if known is not None else value, 0)
        return value

    def ensure(self, total: Decimal, ahead: Decimal = Decimal(0)) -> Denial | None:
        denial = self.lease.take(self.run, total - self.reserved, self.policy_mode, ahead)
        if denial is None:
            self.reserved = total
            self.run.policy.reserved_cost = quantize_money(total)
        return denial

    def cover(self, total: Decimal) -> None:
        if total > self.reserved:
            self.lease.force(total - self.reserved)
            self.reserved = total
            self.run.policy.reserved_cost = quantize_money(total)

    def finished(self, cost: Decimal) -> None:
        self.lease.finished(self.run.run_id, self.reserved, cost)


def release_all() -> None:
    """At exit: flush the recorders (the runs a lease covers reach the ledger), then release the leases."""
    from genops_cli.ledger.recorder import flush_all

    with _leases_guard:
        if not _leases:
            return
    try:
        flush_all(timeout=20.0)
    except Exception:  # noqa: S110 - at exit: the leases then keep holding until they expire
        pass
    with _leases_guard:
        leases = list(_leases.values())
        _leases.clear()
        _lease_memo.clear()
    for lease in leases:
        lease.release()


atexit.register(release_all)
