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


#: json.dumps(value, sort_keys=True, default=str), without building an encoder per call.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, default=str)


def _canonical(row: dict[str, Any]) -> str:
    return _CANONICAL_JSON.encode(row)


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


@functools.cache
def _stored_norms(table: str) -> dict[str, Any]:
    """Per column: `stored_form`'s coercion followed by `_norm`, as one function (ingestion's hot path)."""
    def chain(convert: Any) -> Any:
        return lambda value: _norm(convert(value))

    out: dict[str, Any] = {}
    for column, convert in _converters(table).items():
        if convert in (_to_int, bool, _to_text):
            out[column] = convert  # _norm leaves ints, bools and text as they are
        else:
            out[column] = chain(convert)
    return out


class _Payload(list):  # type: ignore[type-arg]
    """A payload whose digest was computed from the canonical text of its rows while it was built."""

    digest: str


def inserted_payload(kind: str, rows: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The payload `subject_payload` would read back for a subject whose rows (table -> column dicts) were
    just inserted in this transaction: the same normalization (`_norm_row`) and order, without reading them.
    Used by bulk ingestion (`records.insert_runs`); tests check it against `verify` on both engines."""
    out = _Payload()
    texts: list[str] = []
    for table, _key in SUBJECTS[kind]:
        norms = _stored_norms(table)
        found = [(_canonical(row), row) for row in (
            {"table": table, **{c: norms.get(c, _to_text)(v) for c, v in r.items() if v is not None}}
            for r in rows.get(table, []))]
        if len(found) > 1:
            found.sort(key=lambda pair: pair[0])
        texts.extend(text for text, _row in found)
        out.extend(row for _text, row in found)
    # The text json.dumps(out, sort_keys=True) would give: its rows' canonical texts in a JSON list.
    out.digest = hashlib.sha256(("[" + ", ".join(texts) + "]").encode()).hexdigest()
    return out


def payload_digest(rows: list[dict[str, Any]]) -> str:
    digest = getattr(rows, "digest", None)
    if digest is not None:
        return str(digest)
    return hashlib.sha256(_CANONICAL_JSON.encode(rows).encode()).hexdigest()


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


def _groups(rows: Iterator[dict[str, Any]], key: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Consecutive rows with the same `key` value (the stream is sorted by it)."""
    current: str | None = None
    bucket: list[dict[str, Any]] = []
    for row in rows:
        value = str(row[key])
        if value != current:
            if current is not None:
                yield current, bucket
            current, bucket = value, []
        bucket.append(row)
    if current is not None:
        yield current, bucket


def _merge_by_key(streams: list[Iterator[tuple[str, Any]]]) -> Iterator[tuple[str, list[Any]]]:
    """Merge streams sorted by key: for each key (ascending), the item of each stream with that key, or None."""
    heads: list[tuple[str, Any] | None] = [next(s, None) for s in streams]
    while any(h is not None for h in heads):
        key = min(h[0] for h in heads if h is not None)
        items = []
        for index, head in enumerate(heads):
            if head is not None and head[0] == key:
                items.append(head[1])
                heads[index] = next(streams[index], None)
            else:
                items.append(None)
        yield key, items


def _latest_entries(tx: Tx, table: str, kind: str, extra: str = "") -> Iterator[tuple[str, Any]]:
    """(subject, (seq, payload_hash)) of the latest entry per subject of `kind`, sorted by subject."""
    sql = (f"SELECT subject_id, seq, payload_hash FROM (SELECT subject_id, seq, payload_hash, ROW_NUMBER() OVER "
           f"(PARTITION BY subject_id ORDER BY seq DESC) AS rn FROM {table} WHERE kind = ?{extra}) latest "
           f"WHERE rn = 1 ORDER BY {tx.binary_order('subject_id')}")
    for row in tx.stream(sql, [kind]):
        yield str(row["subject_id"]), (int(row["seq"]), row["payload_hash"])


def _subject_rows(tx: Tx, table: str, key: str) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    rows = tx.stream(f"SELECT * FROM {table} ORDER BY {tx.binary_order(key)}")
    for subject, found in _groups(rows, key):
        yield subject, sorted((_norm_row(table, r) for r in found), key=_canonical)


def _check_chain(tx: Tx, problems: list[VerifyProblem]) -> int:
    """Walk the chain in seq order (constant memory): continuity, links, entry digests, known kinds."""
    prev, expected_seq, checked = GENESIS, 1, 0
    for row in tx.stream(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_log ORDER BY seq"):
        seq, kind, subject_id = int(row["seq"]), row["kind"], row["subject_id"]
        checked += 1
        if seq != expected_seq:
            problems.append(VerifyProblem("chain", "audit_log", str(expected_seq), expected_seq,
                                          f"audit entries {expected_seq}..{seq - 1} are missing (deleted)"))
        expected_seq = seq + 1
        digest = entry_digest(seq, row["recorded_at"], kind, subject_id, row["payload_hash"], row["prev_hash"],
                              row["actor"], row["change"])
        if row["prev_hash"] != prev or digest != row["entry_hash"]:
            problems.append(VerifyProblem("chain", "audit_log", subject_id, seq,
                                          f"audit entry {seq} ({kind} {subject_id}) was altered or the chain "
                                          "broken before it"))
        prev = row["entry_hash"]
        if kind not in SUBJECTS:
            problems.append(VerifyProblem("chain", "audit_log", subject_id, seq,
                                          f"audit entry {seq} has an unknown kind {kind!r}"))
    return checked


def _imported_runs(tx: Tx) -> Iterator[tuple[str, list[tuple[str, str]]]]:
    """(run id, [(source id, payload hash of the run's latest entry in that imported chain)]), sorted by run id;
    only entries up to the head a merge recorded count."""
    sql = ("SELECT subject_id, source_id, payload_hash FROM (SELECT i.subject_id, i.source_id, i.payload_hash, "
           "ROW_NUMBER() OVER (PARTITION BY i.source_id, i.subject_id ORDER BY i.seq DESC) AS rn FROM audit_imports i "
           "WHERE i.kind = 'run' AND i.seq <= (SELECT MAX(m.source_head_seq) FROM ledger_merges m "
           "WHERE m.source_id = i.source_id)) latest "
           f"WHERE rn = 1 ORDER BY {tx.binary_order('subject_id')}, source_id")
    for subject, found in _groups(tx.stream(sql), "subject_id"):
        yield subject, [(str(r["source_id"]), r["payload_hash"]) for r in found]


def _check_subjects(tx: Tx, kind: str, problems: list[VerifyProblem]) -> None:
    """Merge, in subject order, the latest entries of `kind`, the stored rows of each of its tables, its
    tombstones and (runs) the imported chains' entries: one subject in memory at a time."""
    tables = SUBJECTS[kind]
    primary_table = tables[0][0]
    streams: list[Iterator[tuple[str, Any]]] = [_latest_entries(tx, "audit_log", kind)]
    streams += [_subject_rows(tx, table, key) for table, key in tables]
    streams.append((str(r["subject_id"]), True) for r in tx.stream(
        f"SELECT subject_id FROM purged_subjects WHERE kind = ? GROUP BY subject_id "
        f"ORDER BY {tx.binary_order('subject_id')}",
        [kind]))
    if kind == "run":
        streams.append(_imported_runs(tx))
    for subject_id, items in _merge_by_key(streams):
        latest, row_sets, purged = items[0], items[1:1 + len(tables)], items[1 + len(tables)]
        imported = items[2 + len(tables)] if kind == "run" else None
        exists = row_sets[0] is not None
        rows = [r for found in row_sets if found for r in found]
        if latest is None:
            if rows:
                table = rows[0]["table"]
                what = f"{kind} {subject_id}" if table == primary_table else f"{table} rows of {kind} {subject_id}"
                problems.append(VerifyProblem("inserted", table, subject_id, None,
                                              f"{what} has no audit entry (inserted outside genops)"))
            continue
        seq, p_hash = latest
        if not exists and purged:
            continue  # removed by a recorded purge (its tombstone is itself covered by the chain)
        if not exists and kind not in _REMOVABLE:
            problems.append(VerifyProblem("deleted", primary_table, subject_id, seq,
                                          f"{kind} {subject_id} was deleted from {primary_table} (audit entry {seq})"))
        elif payload_digest(rows) != p_hash:
            found_tables = sorted({r["table"] for r in rows}) or [primary_table]
            problems.append(VerifyProblem("altered", primary_table, subject_id, seq,
                                          f"{kind} {subject_id} was altered after audit entry {seq} "
                                          f"(rows in {', '.join(found_tables)} differ from what was recorded)"))
        if imported and exists:
            current = payload_digest(rows)
            for source_id, imported_hash in imported:
                if imported_hash != current:
                    problems.append(VerifyProblem("altered", "runs", subject_id, None,
                                                  f"run {subject_id} differs from the history imported from "
                                                  f"{source_id[:12]}"))


def verify(tx: Tx) -> tuple[int, list[VerifyProblem]]:
    """Recompute the chain and every subject's payload. Returns (entries checked, problems in ledger order).

    Problems: `chain` (an audit entry altered, inserted or removed), `altered` (a covered row changed after its
    latest entry), `deleted` (a subject's row is gone), `inserted` (rows that no entry covers).

    Everything is read as sorted streams and merged, so memory stays bounded by one subject (a run and its
    calls), not by the ledger: a 10M-call ledger verifies in the memory of a small one.
    """
    problems: list[VerifyProblem] = []
    checked = _check_chain(tx, problems)
    for kind in sorted(SUBJECTS):
        _check_subjects(tx, kind, problems)
    problems.extend(verify_imported_chains(tx))
    problems.sort(key=lambda p: (p.seq is None, p.seq or 0))
    return checked, problems


def verify_imported_chains(tx: Tx) -> list[VerifyProblem]:
    """Chains imported by `genops ledger migrate` (audit_imports): each must be intact from entry 1 up to every
    head a `ledger_merges` row recorded (that row is covered by this ledger's own chain). That each imported run
    entry still matches the run's rows here is checked with the runs (`_check_subjects`)."""
    problems: list[VerifyProblem] = []
    heads: dict[str, dict[int, str]] = {}
    for source_id, seq, head_hash in tx.query("SELECT source_id, source_head_seq, source_head_hash FROM ledger_merges"):
        heads.setdefault(str(source_id), {})[int(seq)] = str(head_hash)
    for source_id, recorded in sorted(heads.items()):
        short = source_id[:12]
        prev, expected = GENESIS, 1
        top = max(recorded)
        broken = False
        for row in tx.stream(f"SELECT {', '.join(AUDIT_COLUMNS)} FROM audit_imports WHERE source_id = ? AND seq <= ? "
                             "ORDER BY seq", [source_id, top]):
            seq, e_hash = int(row["seq"]), row["entry_hash"]
            digest = entry_digest(seq, row["recorded_at"], row["kind"], row["subject_id"], row["payload_hash"],
                                  row["prev_hash"], row["actor"], row["change"])
            if broken:
                continue
            if seq != expected or row["prev_hash"] != prev or digest != e_hash:
                problems.append(VerifyProblem("chain", "audit_imports", row["subject_id"], None,
                                              f"imported chain {short} is broken at its entry {expected}"))
                broken = True
                continue
            if recorded.get(seq, e_hash) != e_hash:
                problems.append(VerifyProblem("chain", "audit_imports", row["subject_id"], None,
                                              f"imported chain {short}: entry {seq} is not the head recorded "
                                              "when it was merged"))
            prev, expected = e_hash, seq + 1
        if expected <= top and not broken:
            problems.append(VerifyProblem("chain", "audit_imports", source_id, None,
                                          f"imported chain {short} ends at entry {expected - 1}, before the "
                                          f"recorded head {top} (entries deleted)"))
    return problems
