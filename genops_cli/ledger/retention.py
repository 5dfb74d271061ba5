"""Retention and erasure: purge runs from the ledger while the audit chain stays verifiable, and legal holds that
stop a purge.

    hold = place_hold(ledger, "customer:acme-corp", reason="litigation 2026-114")
    purge(ledger, PurgeCriteria(customer="acme-corp"), reason="erasure request #88")   # refused: held
    release_hold(ledger, hold.hold_id)
    result = purge(ledger, PurgeCriteria(before=datetime(2025, 1, 1, tzinfo=timezone.utc)))

A purge deletes the matching runs with their calls and policy events (and, for a customer, the alerts of the
`customer:ID` scope), and records a tombstone in the same transaction: a `purges` row and one `purged_subjects`
row per removed audit subject, covered by a `purge` entry of the audit chain. `compliance verify` accepts the
absence of tombstoned subjects and still detects any other deletion. The tombstone names no customer: the
criteria keep a SHA-256 of the customer id, so an erasure erases the name too (the chain holds only ids and
hashes). Reservations of purged runs are removed without an entry (they are not audited).

Holds use budget scope syntax (`global`, `customer:ID`, `team:NAME`, ...): a purge that would remove any run a
placed hold covers is refused as a whole, naming the hold.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from genops_cli.errors import GenopsError, UsageError
from genops_cli.ledger import audit
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import utcnow
from genops_cli.policy.scopes import SCOPE_COLUMNS, parse_scope


class HeldError(GenopsError):
    """A purge would remove runs under a legal hold (exit 3: blocked by policy)."""

    exit_code = 3


@dataclass(frozen=True)
class PurgeCriteria:
    customer: str | None = None
    before: datetime | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, params = [], []
        if self.customer is not None:
            clauses.append("customer_id = ?")
            params.append(self.customer)
        if self.before is not None:
            clauses.append("started_at < ?")
            params.append(to_naive_utc(self.before))
        if not clauses:
            raise UsageError("purge: give --customer ID and/or --before DATE (nothing is purged without criteria)")
        return " AND ".join(clauses), params

    def describe(self) -> str:
        """For the tombstone: the customer only as a hash, so an erasure keeps no name."""
        parts = []
        if self.customer is not None:
            parts.append("customer=sha256:" + hashlib.sha256(self.customer.encode()).hexdigest())
        if self.before is not None:
            parts.append(f"before={to_naive_utc(self.before).isoformat()}")  # type: ignore[union-attr]
        return " ".join(parts)


@dataclass
class Hold:
    hold_id: str
    scope: str
    reason: str
    placed_at: datetime
    released_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        return {"hold_id": self.hold_id, "scope": self.scope, "reason": self.reason,
                "placed_at": self.placed_at.isoformat(),
                "released_at": self.released_at.isoformat() if self.released_at else None}


@dataclass
class PurgeResult:
    purge_id: str | None
    criteria: str
    runs: int
    rows: dict[str, int] = field(default_factory=dict)
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"purge_id": self.purge_id, "criteria": self.criteria, "runs_removed": self.runs,
                "rows_removed": self.rows, "dry_run": self.dry_run}


def _holds(tx: Tx, active_only: bool = True) -> list[Hold]:
    sql = "SELECT hold_id, scope, reason, placed_at, released_at FROM legal_holds"
    if active_only:
        sql += " WHERE released_at IS NULL"
    return [Hold(*row) for row in tx.query(sql + " ORDER BY placed_at, hold_id")]


def list_holds(ledger: Ledger, include_released: bool = False) -> list[Hold]:
    if not ledger.exists():
        return []
    with ledger.read() as tx:
        return _holds(tx, active_only=not include_released)


def place_hold(ledger: Ledger, scope: str, reason: str) -> Hold:
    """Place a legal hold on a scope (`global`, `customer:ID`, ...); audited with its actor."""
    parse_scope(scope, "hold SCOPE")
    if not reason.strip():
        raise UsageError("--reason: say why the hold is placed (case, request or regulation)")
    hold = Hold(hold_id=str(uuid.uuid4()), scope=scope, reason=reason.strip(), placed_at=utcnow())
    with ledger.write() as tx:
        tx.execute("INSERT INTO legal_holds (hold_id, scope, reason, placed_at) VALUES (?, ?, ?, ?)",
                   [hold.hold_id, hold.scope, hold.reason, to_naive_utc(hold.placed_at)])
        audit.append(tx, "hold", hold.hold_id)
    return hold


def release_hold(ledger: Ledger, hold_id_or_scope: str) -> list[Hold]:
    """Release the active hold with this id (a unique prefix is enough) or every active hold on this scope."""
    with ledger.write() as tx:
        found = [h for h in _holds(tx) if h.scope == hold_id_or_scope or h.hold_id.startswith(hold_id_or_scope)]
        if not found:
            raise UsageError(f"hold {hold_id_or_scope!r}: no active hold with that id or scope "
                             "(genops ledger hold list)")
        now = to_naive_utc(utcnow())
        for hold in found:
            before = audit.subject_payload(tx, "hold", hold.hold_id)
            tx.execute("UPDATE legal_holds SET released_at = ? WHERE hold_id = ?", [now, hold.hold_id])
            audit.append(tx, "hold", hold.hold_id, before=before)
            hold.released_at = now
    return found


def _held_runs(tx: Tx, where: str, params: list[Any]) -> tuple[Hold, int] | None:
    for hold in _holds(tx):
        kind, name = parse_scope(hold.scope)
        if kind == "global":
            clause, extra = where, params
        else:
            clause, extra = f"{where} AND {SCOPE_COLUMNS[kind]} = ?", [*params, name]
        count = tx.scalar(f"SELECT COUNT(*) FROM runs WHERE {clause}", extra)
        if count:
            return hold, int(count)
    return None


def _ids(tx: Tx, sql: str, params: Sequence[Any]) -> list[str]:
    return [str(r[0]) for r in tx.query(sql, params)]


def purge(ledger: Ledger, criteria: PurgeCriteria, reason: str | None = None, dry_run: bool = False) -> PurgeResult:
    """Delete the runs matching `criteria` (see the module docstring). `dry_run` counts without deleting."""
    where, params = criteria.where()
    if not ledger.exists():
        raise UsageError(f"no ledger at {ledger.display}")
    with ledger.write() as tx:
        held = _held_runs(tx, where, params)
        if held is not None:
            hold, count = held
            raise HeldError(f"purge refused: {count} matching run(s) are under legal hold {hold.hold_id[:8]} on "
                            f"{hold.scope} ({hold.reason}); release it first (genops ledger hold release)")
        run_ids = _ids(tx, f"SELECT run_id FROM runs WHERE {where} ORDER BY run_id", params)
        subjects: dict[str, list[str]] = {"run": run_ids, "policy": [], "alert": []}
        rows: dict[str, int] = {}
        for start in range(0, len(run_ids), 500):
            chunk = run_ids[start:start + 500]
            marks = ", ".join("?" for _ in chunk)
            subjects["policy"] += _ids(tx, f"SELECT event_id FROM policy_events WHERE run_id IN ({marks})", chunk)
            for table in ("calls", "reservations"):
                rows[table] = rows.get(table, 0) + int(tx.scalar(
                    f"SELECT COUNT(*) FROM {table} WHERE run_id IN ({marks})", chunk))
        if criteria.customer is not None:
            subjects["alert"] = _ids(tx, "SELECT alert_id FROM alerts WHERE scope = ?",
                                     [f"customer:{criteria.customer}"])
        rows.update({"runs": len(run_ids), "policy_events": len(subjects["policy"]),
                     "alerts": len(subjects["alert"])})
        if dry_run or not run_ids:
            return PurgeResult(None, criteria.describe(), len(run_ids), rows, dry_run=True)
        _delete(tx, run_ids, subjects)
        purge_id = str(uuid.uuid4())
        tombstone = {"purge_id": purge_id, "purged_at": to_naive_utc(utcnow()), "criteria": criteria.describe(),
                     "reason": reason, "runs_removed": len(run_ids), "rows_removed": sum(rows.values())}
        tx.insert_rows("purges", list(tombstone), [list(tombstone.values())])
        purged = [{"purge_id": purge_id, "kind": kind, "subject_id": sid}
                  for kind, ids in subjects.items() for sid in ids]
        tx.insert_rows("purged_subjects", ["purge_id", "kind", "subject_id"],
                       [[r["purge_id"], r["kind"], r["subject_id"]] for r in purged])
        audit.append_many(tx, [("purge", purge_id, audit.inserted_payload(
            "purge", {"purges": [tombstone], "purged_subjects": purged}))])
    return PurgeResult(purge_id, criteria.describe(), len(run_ids), rows)


def _delete(tx: Tx, run_ids: list[str], subjects: dict[str, list[str]]) -> None:
    for start in range(0, len(run_ids), 500):
        chunk = run_ids[start:start + 500]
        marks = ", ".join("?" for _ in chunk)
        for table in ("calls", "policy_events", "reservations", "runs"):
            tx.execute(f"DELETE FROM {table} WHERE run_id IN ({marks})", chunk)
    alerts = subjects["alert"]
    for start in range(0, len(alerts), 500):
        chunk = alerts[start:start + 500]
        tx.execute(f"DELETE FROM alerts WHERE alert_id IN ({', '.join('?' for _ in chunk)})", chunk)
