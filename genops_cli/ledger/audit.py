"""The hash-chained audit log: every ledger write appends an entry that covers the written rows and the
previous entry's hash, so `genops compliance verify` can name the first row that was altered, inserted or
deleted.

The payload hash is computed from the rows as stored (read back in the same transaction), normalized so
DuckDB and PostgreSQL give the same digest for the same data.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from genops_cli.ledger.store import Tx

GENESIS = "0" * 64

#: kind -> (table, key column, order-by for child rows)
SUBJECTS: dict[str, list[tuple[str, str, str]]] = {
    "run": [("runs", "run_id", "run_id"), ("calls", "run_id", "seq, call_id")],
    "budget": [("budgets", "scope", "scope")],
    "policy": [("policy_events", "event_id", "event_id")],
    "alert": [("alerts", "alert_id", "alert_id")],
}


def _norm(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.quantize(Decimal("0.0000000001")), "f")
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(timespec="microseconds")
    if isinstance(value, float):
        return repr(round(value, 6))
    return value


def subject_payload(tx: Tx, kind: str, subject_id: str) -> list[dict[str, Any]]:
    """The stored rows an audit entry covers, normalized for hashing."""
    rows: list[dict[str, Any]] = []
    for table, key, order in SUBJECTS[kind]:
        for row in tx.query_dicts(f"SELECT * FROM {table} WHERE {key} = ? ORDER BY {order}", [subject_id]):
            rows.append({"table": table, **{k: _norm(v) for k, v in sorted(row.items())}})
    return rows


def payload_digest(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def entry_digest(seq: int, at: datetime, kind: str, subject_id: str, payload_hash: str, prev_hash: str) -> str:
    body = json.dumps([seq, _norm(at), kind, subject_id, payload_hash, prev_hash])
    return hashlib.sha256(body.encode()).hexdigest()


def append(tx: Tx, kind: str, subject_id: str, at: datetime | None = None) -> str:
    """Append an entry for `subject_id` (already written in this transaction). Returns the entry hash."""
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    at = at.replace(microsecond=at.microsecond)  # stored at microsecond precision by both engines
    last = tx.query("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    seq, prev = (last[0][0] + 1, last[0][1]) if last else (1, GENESIS)
    p_hash = payload_digest(subject_payload(tx, kind, subject_id))
    e_hash = entry_digest(seq, at, kind, subject_id, p_hash, prev)
    tx.execute(
        "INSERT INTO audit_log (seq, recorded_at, kind, subject_id, payload_hash, prev_hash, entry_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [seq, at, kind, subject_id, p_hash, prev, e_hash],
    )
    return e_hash


@dataclass
class VerifyProblem:
    kind: str  # altered | inserted | deleted | chain
    table: str
    subject_id: str
    seq: int | None
    message: str


def verify(tx: Tx) -> tuple[int, list[VerifyProblem]]:
    """Recompute the chain. Returns (entries checked, problems in ledger order)."""
    problems: list[VerifyProblem] = []
    prev = GENESIS
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    entries = tx.query(
        "SELECT seq, recorded_at, kind, subject_id, payload_hash, prev_hash, entry_hash FROM audit_log ORDER BY seq"
    )
    expected_seq = 1
    for seq, at, kind, subject_id, p_hash, prev_hash, e_hash in entries:
        if seq != expected_seq:
            problems.append(VerifyProblem("chain", "audit_log", str(expected_seq), expected_seq,
                                          f"audit entry {expected_seq} is missing (next is {seq})"))
        expected_seq = seq + 1
        if prev_hash != prev or entry_digest(seq, at, kind, subject_id, p_hash, prev_hash) != e_hash:
            problems.append(VerifyProblem("chain", "audit_log", subject_id, seq,
                                          f"audit entry {seq} ({kind} {subject_id}) was altered or the chain broken"))
        prev = e_hash
        latest[(kind, subject_id)] = (seq, p_hash)
    # Only the latest entry of a subject must match what is stored now (budgets are updated in place).
    for (kind, subject_id), (seq, p_hash) in sorted(latest.items(), key=lambda kv: kv[1][0]):
        rows = subject_payload(tx, kind, subject_id)
        if not rows and kind != "budget":
            problems.append(VerifyProblem("deleted", SUBJECTS[kind][0][0], subject_id, seq,
                                          f"{kind} {subject_id} was deleted (audit entry {seq})"))
        elif payload_digest(rows) != p_hash:
            problems.append(VerifyProblem("altered", SUBJECTS[kind][0][0], subject_id, seq,
                                          f"{kind} {subject_id} was altered after audit entry {seq}"))
    covered = {(k, s) for (k, s) in latest}
    for kind, tables in SUBJECTS.items():
        table, key, _ = tables[0]
        for (subject_id,) in tx.query(f"SELECT {key} FROM {table} ORDER BY {key}"):
            if (kind, subject_id) not in covered:
                problems.append(VerifyProblem("inserted", table, subject_id, None,
                                              f"{kind} {subject_id} has no audit entry (inserted outside genops)"))
        if len(tables) > 1:
            child, child_key, _ = tables[1]
            for (subject_id,) in tx.query(f"SELECT DISTINCT {child_key} FROM {child} ORDER BY {child_key}"):
                if (kind, subject_id) not in covered:
                    problems.append(VerifyProblem("inserted", child, subject_id, None,
                                                  f"{child} rows of {kind} {subject_id} have no audit entry"))
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return len(entries), problems
