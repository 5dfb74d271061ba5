"""Copy or consolidate one ledger into another, exactly, verified, safe to re-run, on any pair of backends
(DuckDB -> PostgreSQL, PostgreSQL -> PostgreSQL, PostgreSQL -> DuckDB, DuckDB -> DuckDB).

    result = migrate_ledger(open_ledger("~/.genops/ledger.duckdb"), open_ledger("postgresql://.../db"))
    result.runs_copied, result.verified

The target may already be used by other writers (several machines' local ledgers consolidated into one shared
ledger). So the source's rows are merged, never its chain laid over the target's:
- runs (with their calls) are copied in batches of `batch_runs`, each batch in its own target transaction, keyed by
  run id: a run already in the target is skipped, so re-running copies nothing and an interrupted copy resumes.
  Each copied run gets an entry in the TARGET's audit chain, in the same transaction as its rows. Memory stays
  bounded by one batch; other writers wait at most one batch.
- policy events and alerts are merged by id, budgets by scope (a scope the target already has keeps the target's
  limits: reported, never overwritten); released reservations are copied, active ones stay with their machine.
- the source's own audit chain is imported entry for entry into `audit_imports`, and one `ledger_merges` row,
  covered by the target's chain, records the provenance: the source's id (the hash of its first audit entry), its
  location (masked) and its chain head. `compliance verify` on the target then checks the target's chain AND every
  imported chain up to its recorded head, and that each imported run entry still matches the run's rows.
Verification: the source's run count and money sums (runs.total_cost, calls.cost) must equal the target's over the
source's run ids; a difference is an error naming the table and the sums.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from genops_cli.errors import LedgerError, UsageError
from genops_cli.ledger import audit
from genops_cli.ledger.store import Ledger, Tx

BATCH_RUNS = 2000
#: Tables merged by primary key with one audit entry per new subject: table -> (key column, audit kind).
KEYED_SUBJECTS = {"policy_events": ("event_id", "policy"), "alerts": ("alert_id", "alert"),
                  "budgets": ("scope", "budget"), "ledger_merges": ("merge_id", "merge")}


@dataclass
class TableCopy:
    table: str
    source_rows: int = 0
    copied: int = 0  # inserted by this run (the rest were already there, or kept from the target)
    target_rows: int = 0  # target rows carrying a source key, after the copy
    sums: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # money column -> (source, target)
    kept_target: list[str] = field(default_factory=list)  # keys whose target row differs and was kept

    @property
    def verified(self) -> bool:
        return self.source_rows == self.target_rows and all(s == t for s, t in self.sums.values())

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "source_rows": self.source_rows, "copied": self.copied,
                "already_present": self.source_rows - self.copied, "target_rows": self.target_rows,
                "sums": {c: {"source": format(s, "f"), "target": format(t, "f")} for c, (s, t) in self.sums.items()},
                "kept_target": self.kept_target, "verified": self.verified}


@dataclass
class MigrationResult:
    source: str
    target: str
    source_id: str = ""
    source_head: tuple[int, str] = (0, audit.GENESIS)
    tables: list[TableCopy] = field(default_factory=list)
    audit_entries: int = 0
    audit_imported: int = 0
    merge_recorded: bool = False
    audit_problems_source: int = 0
    audit_problems_target: list[str] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    @property
    def runs_copied(self) -> int:
        return next((t.copied for t in self.tables if t.table == "runs"), 0)

    @property
    def verified(self) -> bool:
        return all(t.verified for t in self.tables) and not self.audit_problems_target

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "source_id": self.source_id,
                "source_head": {"seq": self.source_head[0], "hash": self.source_head[1]},
                "copied": self.copied, "runs_copied": self.runs_copied,
                "tables": [t.to_dict() for t in self.tables], "audit_entries": self.audit_entries,
                "audit_imported": self.audit_imported, "merge_recorded": self.merge_recorded,
                "audit_problems_source": self.audit_problems_source,
                "audit_problems_target": self.audit_problems_target, "verified": self.verified}


def source_identity(tx: Tx) -> tuple[str, tuple[int, str]]:
    """(source id, chain head): the id is the hash of the ledger's first audit entry, stable for its lifetime."""
    first = tx.scalar("SELECT entry_hash FROM audit_log WHERE seq = 1")
    return (first or audit.GENESIS), audit.chain_head(tx)


def _columns(tx: Tx, table: str) -> list[str]:
    cur = tx.conn.execute(f"SELECT * FROM {table} LIMIT 0")
    return [d[0] for d in cur.description]


def _check_columns(src: Tx, dst: Tx, table: str) -> list[str]:
    names = _columns(src, table)
    missing = sorted(set(names) - set(_columns(dst, table)))
    if missing:
        raise LedgerError(f"target table {table} lacks column(s) {', '.join(missing)}: upgrade genops on the "
                          "machines that use the target, then re-run migrate")
    return names


def _placeholders(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _run_tables() -> list[tuple[str, str]]:
    return audit.SUBJECTS["run"]


def _copy_run_batch(src: Tx, dst: Tx, rows: list[dict[str, Any]], names: dict[str, list[str]],
                    copies: dict[str, TableCopy]) -> None:
    """Insert the runs of one batch that the target lacks, with their child rows and one audit entry each."""
    ids = [r["run_id"] for r in rows]
    existing = {r[0] for r in dst.query(f"SELECT run_id FROM runs WHERE run_id IN ({_placeholders(ids)})", ids)}
    new = [r for r in rows if r["run_id"] not in existing]
    children: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for table, key in _run_tables()[1:]:
        found = src.query_dicts(f"SELECT * FROM {table} WHERE {key} IN ({_placeholders(ids)})", ids)
        copies[table].source_rows += len(found)
        per_run: dict[str, list[dict[str, Any]]] = {}
        for row in found:
            per_run.setdefault(row[key], []).append(row)
        children[table] = per_run
    if new:
        runs_table = _run_tables()[0][0]
        dst.insert_rows(runs_table, names[runs_table], [[r[c] for c in names[runs_table]] for r in new])
        copies[runs_table].copied += len(new)
        entries = []
        for run in new:
            payload_rows = {runs_table: [run]}
            for table, _key in _run_tables()[1:]:
                child_rows = children[table].get(run["run_id"], [])
                payload_rows[table] = child_rows
                if child_rows:
                    dst.insert_rows(table, names[table], [[r[c] for c in names[table]] for r in child_rows])
                    copies[table].copied += len(child_rows)
            entries.append(("run", run["run_id"], audit.inserted_payload("run", payload_rows)))
        audit.append_many(dst, entries)


def _money_sums(tx: Tx, table: str, key: str, ids: Sequence[str], money: list[str]) -> tuple[int, list[Decimal]]:
    sums = "".join(f", SUM({c})" for c in money)
    row = tx.query(f"SELECT COUNT(*){sums} FROM {table} WHERE {key} IN ({_placeholders(ids)})", list(ids))[0]
    return int(row[0]), [Decimal(v or 0) for v in row[1:]]


def _money_columns(table: str) -> list[str]:
    from genops_cli.ledger.schema import column_types

    return [c for c, t in column_types(table).items() if t.startswith("DECIMAL") and c != "reserved_cost"
            and table in ("runs", "calls")]


def _verify_batch(src: Tx, dst: Tx, ids: list[str], copies: dict[str, TableCopy]) -> None:
    for table, key in _run_tables():
        money = _money_columns(table)
        src_count, src_sums = _money_sums(src, table, key, ids, money)
        dst_count, dst_sums = _money_sums(dst, table, key, ids, money)
        copy = copies[table]
        if table == _run_tables()[0][0]:
            copy.source_rows += src_count
        copy.target_rows += dst_count
        for column, s, t in zip(money, src_sums, dst_sums, strict=True):
            old_s, old_t = copy.sums.get(column, (Decimal(0), Decimal(0)))
            copy.sums[column] = (old_s + s, old_t + t)


def _copy_runs(source: Ledger, target: Ledger, src: Tx, names: dict[str, list[str]], batch_runs: int,
               report: Callable[[str], None]) -> list[TableCopy]:
    copies = {table: TableCopy(table) for table, _key in _run_tables()}
    runs_table = _run_tables()[0][0]
    cols = ", ".join(names[runs_table])
    last = ""
    while True:  # keyset pagination: each batch is its own bounded query and its own target transaction
        rows = src.query_dicts(f"SELECT {cols} FROM {runs_table} WHERE run_id > ? ORDER BY run_id LIMIT ?",
                               [last, batch_runs])
        if not rows:
            break
        last = rows[-1]["run_id"]
        ids = [r["run_id"] for r in rows]
        with target.write() as dst:
            _copy_run_batch(src, dst, rows, names, copies)
            _verify_batch(src, dst, ids, copies)
        report(f"runs: {copies[runs_table].source_rows} read, {copies[runs_table].copied} copied")
    return list(copies.values())


def _copy_keyed(src: Tx, dst: Tx, table: str, names: list[str]) -> TableCopy:
    """Merge a small keyed table (events, alerts, budgets): rows the target lacks are inserted and audited."""
    key, kind = KEYED_SUBJECTS[table]
    copy = TableCopy(table)
    source_rows = src.query_dicts(f"SELECT {', '.join(names)} FROM {table}")
    copy.source_rows = len(source_rows)
    existing = {str(r[0]): r for r in dst.query(f"SELECT {key} FROM {table}")}
    new = [r for r in source_rows if str(r[key]) not in existing]
    if new:
        dst.insert_rows(table, names, [[r[c] for c in names] for r in new])
        audit.append_many(dst, [(kind, str(r[key]), audit.inserted_payload(kind, {table: [r]})) for r in new])
    copy.copied = len(new)
    copy.target_rows = copy.source_rows
    if table == "budgets":
        for row in source_rows:
            if str(row[key]) in existing and audit.subject_payload(dst, kind, str(row[key])) != \
                    audit.inserted_payload(kind, {table: [row]}):
                copy.kept_target.append(str(row[key]))
    return copy


def _copy_reservations(src: Tx, dst: Tx, names: list[str]) -> TableCopy:
    """Released reservations are history and travel; active ones hold budget on their own machine only."""
    copy = TableCopy("reservations")
    rows = src.query_dicts(f"SELECT {', '.join(names)} FROM reservations WHERE released_at IS NOT NULL")
    copy.source_rows = copy.target_rows = len(rows)
    existing = {r[0] for r in dst.query("SELECT reservation_id FROM reservations")}
    new = [r for r in rows if r["reservation_id"] not in existing]
    dst.insert_rows("reservations", names, [[r[c] for c in names] for r in new])
    copy.copied = len(new)
    return copy


def _import_chain(source: Ledger, target: Ledger, src: Tx, source_id: str, report: Callable[[str], None],
                  batch: int) -> int:
    """Copy the source's audit entries (and any chains it imported itself) into the target's audit_imports."""
    imported = 0
    own = [("audit_log", source_id, "")]
    nested = [("audit_imports", str(r[0]), " WHERE source_id = ?")
              for r in src.query("SELECT DISTINCT source_id FROM audit_imports")]
    for table, chain_id, where in own + nested:
        last = 0
        while True:
            params: list[Any] = [chain_id] if where else []
            cond = (where + " AND seq > ?") if where else " WHERE seq > ?"
            rows = src.query(f"SELECT {', '.join(audit.AUDIT_COLUMNS)} FROM {table}{cond} ORDER BY seq LIMIT ?",
                             [*params, last, batch])
            if not rows:
                break
            last = int(rows[-1][0])
            with target.write() as dst:
                dst.insert_rows("audit_imports", ["source_id", *audit.AUDIT_COLUMNS], [[chain_id, *r] for r in rows],
                                on_conflict="(source_id, seq) DO NOTHING")
            imported += len(rows)
        report(f"audit chain {chain_id[:12]}: {imported} entries imported")
    return imported


def _record_merge(dst: Tx, source: Ledger, source_id: str, head: tuple[int, str], runs_copied: int) -> bool:
    merge_id = f"{source_id[:16]}:{head[0]}"
    if dst.scalar("SELECT COUNT(*) FROM ledger_merges WHERE merge_id = ?", [merge_id]):
        return False
    row = {"merge_id": merge_id, "source_id": source_id, "source_location": source.display,
           "source_backend": source.backend, "source_head_seq": head[0], "source_head_hash": head[1],
           "runs_copied": runs_copied, "merged_at": datetime.now(timezone.utc).replace(tzinfo=None)}
    names = list(row)
    dst.insert_rows("ledger_merges", names, [[row[c] for c in names]])
    audit.append_many(dst, [("merge", merge_id, audit.inserted_payload("merge", {"ledger_merges": [row]}))])
    return True


def _same_ledger(source: Ledger, target: Ledger) -> bool:
    return source.backend == target.backend and source.display == target.display


def migrate_ledger(source: Ledger, target: Ledger, report: Callable[[str], None] = lambda _m: None,
                   batch_runs: int = BATCH_RUNS) -> MigrationResult:
    """Merge every ledger table of `source` into `target`; see the module docstring."""
    if not source.exists():
        raise UsageError(f"--from {source.display}: no ledger there; pass --from PATH or URL of an existing ledger")
    if _same_ledger(source, target):
        raise UsageError(f"--to {target.display} is the source itself; pass another ledger")
    result = MigrationResult(source=source.display, target=target.display)
    with source.read() as src:
        _, source_problems = audit.verify(src)
        result.audit_problems_source = len(source_problems)
        result.source_id, result.source_head = source_identity(src)
        with target.write() as dst:  # creates or upgrades the target's schema; checks columns once
            names = {t: _check_columns(src, dst, t) for t in
                     [t for t, _k in _run_tables()] + [*KEYED_SUBJECTS, "reservations"]}
        result.tables = _copy_runs(source, target, src, names, batch_runs, report)
        with target.write() as dst:
            for table in KEYED_SUBJECTS:
                result.tables.append(_copy_keyed(src, dst, table, names[table]))
            result.tables.append(_copy_reservations(src, dst, names["reservations"]))
        result.audit_imported = _import_chain(source, target, src, result.source_id, report, batch_runs * 5)
        with target.write() as dst:
            result.merge_recorded = _record_merge(dst, source, result.source_id, result.source_head,
                                                  result.runs_copied)
    with target.read() as dst:
        result.audit_entries, problems = audit.verify(dst)
    known = {(p.kind, p.subject_id) for p in source_problems}
    result.audit_problems_target = [p.message for p in problems if (p.kind, p.subject_id) not in known]
    bad = [t for t in result.tables if not t.verified]
    if bad or result.audit_problems_target:
        detail = "; ".join(
            [f"{t.table}: {t.source_rows} source rows vs {t.target_rows} in target" +
             "".join(f", {c} {s} vs {v}" for c, (s, v) in t.sums.items() if s != v) for t in bad]
            + result.audit_problems_target[:3])
        raise LedgerError(f"migration not verified ({detail}); rows with the same keys differ between the "
                          "ledgers (changed after an earlier migrate?)")
    return result
