"""The hash-chained audit log: every ledger write appends an entry that covers the written rows and the
previous entry's hash, so `genops compliance verify` can name the first row that was altered, inserted or
deleted.

    with ledger.write() as tx:
        insert_the_rows(tx)
        audit.append(tx, "run", run_id)          # in the same transaction as the rows it covers
    with ledger.read() as tx:
        checked, problems = audit.verify(tx)     # problems in ledger order; [] means intact

Each entry stores `payload_hash` (sha256 of the subject's rows as stored, read back in the same transaction),
the `actor` who made the write (OS user@host, `GENOPS_ACTOR`, or the principal given to the Python API), for
changes of a subject updated in place (budgets) the values `before` and `after` (`change`, JSON), and
`entry_hash` = sha256(seq, time, kind, subject, payload_hash, prev_hash[, actor, change]). Changing a covered
row breaks the payload hash of the subject's latest entry; changing, inserting or deleting an audit entry breaks
the chain; rows without any entry are reported as inserted outside genops.

Design choices:
- Rows are normalized (Decimal at 10 places, naive-UTC ISO timestamps, floats rounded) and sorted by their
  canonical JSON in Python, never by SQL ORDER BY, so DuckDB and PostgreSQL (whose text collation differs) give
  the same digest for the same data.
- NULL columns are left out of the payload: a later migration that adds a nullable column does not invalidate
  older entries, while setting or clearing a value is still a change.
- `append` must run inside `Ledger.write()`: DuckDB writers hold the exclusive file lock and PostgreSQL writers
  the audit-chain advisory lock from the start of the transaction, so concurrent writers cannot fork the chain
  (and `seq` is a primary key: a fork could not even be stored).
- The chain proves internal consistency. Someone able to rewrite the whole table, or delete its newest entries,
  can recompute it: `genops compliance checkpoint` writes the head outside the ledger (a file, a webhook) and
  `verify --checkpoints FILE` proves that every checkpointed head is still in the chain.
- A purge (`genops ledger purge`, erasure or retention) deletes rows and records a tombstone (`purges`,
  `purged_subjects`, itself an audited subject): the purged subjects' entries stay in the chain and verify
  accepts their absence.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import json
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from genops_cli.ledger.schema import column_types
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Tx
from genops_cli.models import quantize_money

GENESIS = "0" * 64

#: kind -> [(table, key column)]; the first table holds the subject itself, the others its child rows.
SUBJECTS: dict[str, list[tuple[str, str]]] = {
    "run": [("runs", "run_id"), ("calls", "run_id")],
    "budget": [("budgets", "scope")],
    "policy": [("policy_events", "event_id")],
    "alert": [("alerts", "alert_id")],
    "merge": [("ledger_merges", "merge_id")],
    "purge": [("purges", "purge_id"), ("purged_subjects", "purge_id")],
    "hold": [("legal_holds", "hold_id")],
    "policy_snapshot": [("policy_snapshots", "policy_hash")],
}

#: Kinds whose subject may legitimately disappear (a removed budget appends an entry after the delete).
_REMOVABLE = {"budget"}

_actor: ContextVar[str | None] = ContextVar("genops_audit_actor", default=None)


@functools.cache
def _process_actor() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no login name (containers with arbitrary uids)
        user = f"uid:{os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def current_actor() -> str:
    """Who is writing: the principal set with `acting_as`, else GENOPS_ACTOR, else OS user@host."""
    return _actor.get() or os.environ.get("GENOPS_ACTOR") or _process_actor()


@contextmanager
def acting_as(principal: str | None) -> Iterator[None]:
    """Attribute the audit entries written inside the block to `principal` (e.g. the API caller's identity)."""
    token = _actor.set(principal or None)
    try:
        yield
    finally:
        _actor.reset(token)


def change_record(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> str:
    """The JSON stored in `audit_log.change`: the subject's rows (normalized) before and after the write."""
    def strip(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "table"} for r in rows]

    return json.dumps({"before": strip(before), "after": strip(after)}, sort_keys=True, default=str)


_LEGACY_MONEY_QUANTUM = Decimal("1E-10")


def _norm(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Amounts that fit the 10 places money had before schema v5 keep that text ("0.0004500000"), so chains
        # written then still verify; finer amounts are hashed exactly.
        exact = quantize_money(value)
        legacy = exact.quantize(_LEGACY_MONEY_QUANTUM)
        return format(legacy if legacy == exact else exact.normalize(), "f")
    if isinstance(value, datetime):
        return to_naive_utc(value).isoformat(timespec="microseconds")  # type: ignore[union-attr]
    if isinstance(value, float):
        return repr(round(value, 6))
    return value


def _norm_row(table: str, row: dict[str, Any]) -> dict[str, Any]:
    return {"table": table, **{k: _norm(v) for k, v in row.items() if v is not None}}


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def subject_payload(tx: Tx, kind: str, subject_id: str) -> list[dict[str, Any]]:
    """The stored rows an audit entry covers, normalized and in canonical order."""
    rows: list[dict[str, Any]] = []
    for table, key in SUBJECTS[kind]:
        found = [_norm_row(table, r) for r in tx.query_dicts(f"SELECT * FROM {table} WHERE {key} = ?", [subject_id])]
        rows.extend(sorted(found, key=_canonical))
    return rows


def _to_int(value: Any) -> int:
    return int(value)


def _to_money(value: Any) -> Decimal:
    return quantize_money(Decimal(value)) + 0  # + 0 turns -0 into 0, as both engines store it


def _to_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _converter(sql_type: str) -> Any:
    if sql_type in ("INTEGER", "BIGINT"):
        return _to_int
    if sql_type == "DOUBLE PRECISION":
        return float
    if sql_type == "BOOLEAN":
        return bool
    if sql_type.startswith("DECIMAL"):
        return _to_money
    if sql_type == "TIMESTAMP":
        return to_naive_utc
    return _to_text


@functools.cache
def _converters(table: str) -> dict[str, Any]:
    return {column: _converter(sql_type) for column, sql_type in column_types(table).items()}


def stored_form(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """A row about to be inserted, as the ledger will hand it back (coerced to each column's SQL type from
    `schema.column_types`): integer columns as int, DOUBLE as float, BOOLEAN as bool, money as Decimal at 10
    places (no negative zero), timestamps naive UTC at microseconds, text as str. Columns the row does not
    name must be NULL once stored (every writer names all non-NULL columns), so they are left out like NULLs."""
    converters = _converters(table)
    return {column: None if value is None else converters.get(column, _to_text)(value)
            for column, value in row.items()}


def inserted_payload(kind: str, rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The payload `subject_payload` would read back for a subject whose rows (table -> column dicts) were
    just inserted in this transaction: the same normalization (`_norm_row`) and order, without reading them.
    Used by bulk ingestion (`records.insert_runs`); tests check it against `verify` on both engines."""
    out: list[dict[str, Any]] = []
    for table, _key in SUBJECTS[kind]:
        found = [_norm_row(table, stored_form(table, r)) for r in rows.get(table, [])]
        out.extend(sorted(found, key=_canonical) if len(found) > 1 else found)
    return out


def payload_digest(rows: list[dict[str, Any]]) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()


def entry_digest(seq: int, at: datetime, kind: str, subject_id: str, payload_hash: str, prev_hash: str,
                 actor: str | None = None, change: str | None = None) -> str:
    fields: list[Any] = [seq, _norm(at), kind, subject_id, payload_hash, prev_hash]
    if actor is not None or change is not None:  # entries written before actors were recorded keep their digest
        fields += [actor, change]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def append(tx: Tx, kind: str, subject_id: str, at: datetime | None = None,
           before: list[dict[str, Any]] | None = None) -> str:
    """Append an entry for `subject_id` (already written in this transaction). Returns the entry hash.

    `before`: the subject's payload read before this write (`subject_payload`), for subjects changed in place or
    removed; the entry then records the values before and after.
    """
    if kind not in SUBJECTS:
        raise ValueError(f"unknown audit kind {kind!r}; expected one of {', '.join(SUBJECTS)}")
    # No lock taken here: every write transaction already holds the chain lock (DuckDB: the exclusive writer
    # flock + process mutex; PostgreSQL: the audit-chain advisory lock taken at the start of the transaction).
    # Both engines store microseconds: truncate now so the digest matches what is read back.
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    last_seq, prev = chain_head(tx)
    seq = last_seq + 1
    payload = subject_payload(tx, kind, subject_id)
    p_hash = payload_digest(payload)
    actor = current_actor()
    change = change_record(before, payload) if before is not None else None
    e_hash = entry_digest(seq, at, kind, subject_id, p_hash, prev, actor, change)
    tx.execute(
        "INSERT INTO audit_log (seq, recorded_at, kind, subject_id, payload_hash, prev_hash, entry_hash, actor, "
        "change) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [seq, at, kind, subject_id, p_hash, prev, e_hash, actor, change],
    )
    return e_hash


AUDIT_COLUMNS = ["seq", "recorded_at", "kind", "subject_id", "payload_hash", "prev_hash", "entry_hash", "actor",
                 "change"]


def append_many(tx: Tx, entries: Sequence[tuple[str, str, list[dict[str, Any]]]
                                         | tuple[str, str, list[dict[str, Any]], str | None]],
                at: datetime | None = None) -> str | None:
    """Append one entry per (kind, subject_id, payload) in order, with ONE read of the chain head and one
    multi-row insert. `payload` is what `subject_payload` returns for the subject (or `inserted_payload` for
    rows inserted in this transaction). Same locking rule as `append`. Returns the last entry hash."""
    if not entries:
        return None
    at = (at or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    seq, prev = chain_head(tx)
    writer = current_actor()
    rows = []
    for entry in entries:
        kind, subject_id, payload = entry[0], entry[1], entry[2]
        actor = (entry[3] if len(entry) > 3 else None) or writer  # an entry may name its own actor (a run's)
        if kind not in SUBJECTS:
            raise ValueError(f"unknown audit kind {kind!r}; expected one of {', '.join(SUBJECTS)}")
        seq += 1
        p_hash = payload_digest(payload)
        e_hash = entry_digest(seq, at, kind, subject_id, p_hash, prev, actor)
        rows.append((seq, at, kind, subject_id, p_hash, prev, e_hash, actor, None))
        prev = e_hash
    tx.insert_rows("audit_log", AUDIT_COLUMNS, rows)
    return prev


def chain_head(tx: Tx) -> tuple[int, str]:
    """(last seq, its entry hash), or (0, GENESIS) for an empty log: the value to anchor elsewhere."""
    last = tx.query("SELECT seq, entry_hash FROM audit_log ORDER BY seq DESC LIMIT 1")
    return (int(last[0][0]), last[0][1]) if last else (0, GENESIS)


@dataclass
class VerifyProblem:
    kind: str  # altered | inserted | deleted | chain
    table: str
    subject_id: str
    seq: int | None
    message: str

    def to_json(self) -> dict[str, Any]:
        return {"problem": self.kind, "table": self.table, "subject_id": self.subject_id, "audit_seq": self.seq,
                "message": self.message}


def _stored_subjects(tx: Tx) -> tuple[dict[tuple[str, str], list[dict[str, Any]]], set[tuple[str, str]]]:
    """Every stored row grouped by audit subject (one query per table), and the subjects whose own row exists."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    primary: set[tuple[str, str]] = set()
    for kind, tables in SUBJECTS.items():
        per_table: list[dict[tuple[str, str], list[dict[str, Any]]]] = []
        for index, (table, key) in enumerate(tables):
            rows: dict[tuple[str, str], list[dict[str, Any]]] = {}
            for row in tx.query_dicts(f"SELECT * FROM {table}"):
                subject = (kind, str(row[key]))
                rows.setdefault(subject, []).append(_norm_row(table, row))
                if index == 0:
                    primary.add(subject)
            per_table.append(rows)
        for rows in per_table:
            for subject, found in rows.items():
                grouped.setdefault(subject, []).extend(sorted(found, key=_canonical))
    return grouped, primary


def verify(tx: Tx) -> tuple[int, list[VerifyProblem]]:
    """Recompute the chain and every subject's payload. Returns (entries checked, problems in ledger order).

    Problems: `chain` (an audit entry altered, inserted or removed), `altered` (a covered row changed after its
    latest entry), `deleted` (a subject's row is gone), `inserted` (rows that no entry covers).
    """
    problems: list[VerifyProblem] = []
    prev = GENESIS
    latest: dict[tuple[str, str], tuple[int, str]] = {}
    entries = tx.query(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log ORDER BY seq")
    expected_seq = 1
    for seq, at, kind, subject_id, p_hash, prev_hash, e_hash, actor, change in entries:
        seq = int(seq)
        if seq != expected_seq:
            problems.append(VerifyProblem("chain", "audit_log", str(expected_seq), expected_seq,
                                          f"audit entries {expected_seq}..{seq - 1} are missing (deleted)"))
        expected_seq = seq + 1
        if prev_hash != prev or entry_digest(seq, at, kind, subject_id, p_hash, prev_hash, actor, change) != e_hash:
            problems.append(VerifyProblem("chain", "audit_log", subject_id, seq,
                                          f"audit entry {seq} ({kind} {subject_id}) was altered or the chain "
                                          "broken before it"))
        prev = e_hash
        if kind in SUBJECTS:
            latest[(kind, subject_id)] = (seq, p_hash)
        else:
            problems.append(VerifyProblem("chain", "audit_log", subject_id, seq,
                                          f"audit entry {seq} has an unknown kind {kind!r}"))
    grouped, primary = _stored_subjects(tx)
    purged = {(str(k), str(s)) for k, s in tx.query("SELECT kind, subject_id FROM purged_subjects")}
    # Only the latest entry of a subject must match what is stored now (budgets are updated in place).
    for (kind, subject_id), (seq, p_hash) in latest.items():
        rows = grouped.get((kind, subject_id), [])
        table = SUBJECTS[kind][0][0]
        if (kind, subject_id) not in primary and (kind, subject_id) in purged:
            continue  # removed by a recorded purge (its tombstone is itself covered by the chain)
        if (kind, subject_id) not in primary and kind not in _REMOVABLE:
            problems.append(VerifyProblem("deleted", table, subject_id, seq,
                                          f"{kind} {subject_id} was deleted from {table} (audit entry {seq})"))
        elif payload_digest(rows) != p_hash:
            tables = sorted({r["table"] for r in rows}) or [table]
            problems.append(VerifyProblem("altered", table, subject_id, seq,
                                          f"{kind} {subject_id} was altered after audit entry {seq} "
                                          f"(rows in {', '.join(tables)} differ from what was recorded)"))
    for (kind, subject_id), rows in sorted(grouped.items()):
        if (kind, subject_id) not in latest:
            table = rows[0]["table"]
            what = f"{kind} {subject_id}" if table == SUBJECTS[kind][0][0] else f"{table} rows of {kind} {subject_id}"
            problems.append(VerifyProblem("inserted", table, subject_id, None,
                                          f"{what} has no audit entry (inserted outside genops)"))
    problems.extend(verify_imported_chains(tx, grouped))
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return len(entries), problems


def verify_imported_chains(tx: Tx, grouped: dict[tuple[str, str], list[dict[str, Any]]]) -> list[VerifyProblem]:
    """Chains imported by `genops ledger migrate` (audit_imports): each must be intact from entry 1 up to every
    head a `ledger_merges` row recorded (that row is covered by this ledger's own chain), and each run entry's
    latest payload must still match the run's rows here, so the target keeps proving the source's history."""
    problems: list[VerifyProblem] = []
    heads: dict[str, dict[int, str]] = {}
    for source_id, seq, head_hash in tx.query("SELECT source_id, source_head_seq, source_head_hash FROM ledger_merges"):
        heads.setdefault(str(source_id), {})[int(seq)] = str(head_hash)
    for source_id, recorded in sorted(heads.items()):
        short = source_id[:12]
        prev, expected, latest_run = GENESIS, 1, {}
        top = max(recorded)
        for batch_names, rows in tx.iter_batches(
                f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_imports WHERE source_id = ? AND seq <= ? ORDER BY seq",
                [source_id, top]):
            del batch_names
            for seq, at, kind, subject_id, p_hash, prev_hash, e_hash, actor, change in rows:
                seq = int(seq)
                if seq != expected or prev_hash != prev or \
                        entry_digest(seq, at, kind, subject_id, p_hash, prev_hash, actor, change) != e_hash:
                    problems.append(VerifyProblem("chain", "audit_imports", subject_id, None,
                                                  f"imported chain {short} is broken at its entry {expected}"))
                    break
                if recorded.get(seq, e_hash) != e_hash:
                    problems.append(VerifyProblem("chain", "audit_imports", subject_id, None,
                                                  f"imported chain {short}: entry {seq} is not the head recorded "
                                                  "when it was merged"))
                if kind == "run":
                    latest_run[subject_id] = p_hash
                prev, expected = e_hash, seq + 1
        if expected <= top and not any(p.table == "audit_imports" for p in problems):
            problems.append(VerifyProblem("chain", "audit_imports", source_id, None,
                                          f"imported chain {short} ends at entry {expected - 1}, before the "
                                          f"recorded head {top} (entries deleted)"))
        for run_id, p_hash in latest_run.items():
            rows = grouped.get(("run", run_id))
            if rows is not None and payload_digest(rows) != p_hash:
                problems.append(VerifyProblem("altered", "runs", run_id, None,
                                              f"run {run_id} differs from the history imported from {short}"))
    return problems
