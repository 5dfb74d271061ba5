"""Reservations: a run's worst-case cost held against its budgets from preflight until it is recorded.

A reservation is inserted in the same write transaction as the budget check (so concurrent runs see each
other), released by `ledger.records.insert_run` when the run is recorded (released_at, actual_cost), and
expires on its own `expires_at` when the process died before recording (crashed runs do not hold budget forever).

    rid = insert(tx, run_id, ["global", "team:ml"], Decimal("0.0123"), created_at=run.started_at, now=now, ttl=60)
    held = active_amount(tx, "team:ml", window.start_naive, window.end_naive, now)

Active means: released_at IS NULL AND expires_at > now. Reservations are counted in the period that contains
their run's start (created_at is the run's start time), the same period the run's cost will count in.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Tx
from genops_cli.models import quantize_money

SEPARATOR = "|"


def encode_scopes(scopes: Sequence[str]) -> str:
    """'|global|team:ml|' so one scope is matched with strpos on both backends (no LIKE wildcards)."""
    return SEPARATOR + SEPARATOR.join(scopes) + SEPARATOR


def insert(tx: Tx, run_id: str, scopes: Sequence[str], amount: Decimal, created_at: datetime, now: datetime,
           ttl_minutes: int) -> str:
    """Hold `amount` for `run_id` against `scopes`; returns the reservation id."""
    reservation_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO reservations (reservation_id, run_id, scopes, amount, simulated, created_at, expires_at) "
        "VALUES (?, ?, ?, ?, FALSE, ?, ?)",
        [reservation_id, run_id, encode_scopes(scopes), quantize_money(amount), to_naive_utc(created_at),
         to_naive_utc(now + timedelta(minutes=ttl_minutes))],
    )
    return reservation_id


def active_sql(scope: str, start: datetime, end: datetime, now: datetime,
               exclude_run_id: str | None = None) -> tuple[str, list[object]]:
    """(SQL, params) summing the active reservations held against `scope` for runs started in [start, end),
    other than `exclude_run_id`'s own (a run re-checked against its budgets does not compete with itself).
    A subquery, so the budget check reads spend and holds from one snapshot (PostgreSQL READ COMMITTED)."""
    sql = ("SELECT COALESCE(SUM(amount), 0) FROM reservations WHERE released_at IS NULL AND expires_at > ? "
           "AND NOT simulated AND created_at >= ? AND created_at < ? AND strpos(scopes, ?) > 0 AND run_id <> ?")
    return sql, [to_naive_utc(now), to_naive_utc(start), to_naive_utc(end), SEPARATOR + scope + SEPARATOR,
                 exclude_run_id or ""]


def active_amount(tx: Tx, scope: str, start: datetime, end: datetime, now: datetime,
                  exclude_run_id: str | None = None) -> Decimal:
    """Sum of the active reservations held against `scope` for runs started in [start, end)."""
    sql, params = active_sql(scope, start, end, now, exclude_run_id)
    return Decimal(tx.scalar(sql, params) or 0)


def active_count(tx: Tx, scope: str, start: datetime, end: datetime, now: datetime) -> int:
    value = tx.scalar(
        "SELECT COUNT(*) FROM reservations WHERE released_at IS NULL AND expires_at > ? "
        "AND NOT simulated AND created_at >= ? AND created_at < ? AND strpos(scopes, ?) > 0",
        [to_naive_utc(now), to_naive_utc(start), to_naive_utc(end), SEPARATOR + scope + SEPARATOR],
    )
    return int(value or 0)
