"""Copy a DuckDB ledger into a PostgreSQL ledger exactly, verified, safe to re-run.

    result = migrate_ledger(DuckDBLedger("~/.genops/ledger.duckdb"), PostgresLedger("postgresql://.../db"))
    result.tables[0].copied, result.audit_entries

Everything happens in ONE target transaction that holds the audit-chain lock (PostgreSQL writers wait for it):
each table is streamed from DuckDB in batches, COPYed into a temporary staging table and inserted with
ON CONFLICT DO NOTHING on its primary key, so a second run copies nothing new and never duplicates. Before
commit the copy is verified: per table, the rows carrying the source's keys must be as many as in the source and
every money column must sum to the same Decimal; the audit chain must verify on the target. Any difference
rolls the whole copy back. A target whose audit chain already diverges from the source's (other writers used
it first) is refused: the chains cannot be merged without breaking them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.errors import LedgerError, UsageError
from genops_cli.ledger import audit
from genops_cli.ledger.schema import TABLES
from genops_cli.ledger.store import Ledger, Tx

BATCH_ROWS = 5000


@dataclass
class TableCopy:
    table: str
    source_rows: int = 0
    copied: int = 0  # inserted by this run (the rest were already there)
    target_rows: int = 0  # target rows with a source key, after the copy
    sums: dict[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # money column -> (source, target)

    @property
    def verified(self) -> bool:
        return self.source_rows == self.target_rows and all(s == t for s, t in self.sums.values())

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "source_rows": self.source_rows, "copied": self.copied,
                "already_present": self.source_rows - self.copied, "target_rows": self.target_rows,
                "sums": {c: {"source": str(s), "target": str(t)} for c, (s, t) in self.sums.items()},
                "verified": self.verified}


@dataclass
class MigrationResult:
    source: str
    target: str
    tables: list[TableCopy] = field(default_factory=list)
    audit_entries: int = 0
    audit_problems_source: int = 0
    audit_problems_target: list[str] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "target": self.target, "copied": self.copied,
                "tables": [t.to_dict() for t in self.tables], "audit_entries": self.audit_entries,
                "audit_problems_source": self.audit_problems_source,
                "audit_problems_target": self.audit_problems_target,
                "verified": all(t.verified for t in self.tables) and not self.audit_problems_target}


def _money_columns(src: Tx, table: str) -> list[str]:
    rows = src.query("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
                     "ORDER BY ordinal_position", [table])
    return [name for name, dtype in rows if str(dtype).upper().startswith(("DECIMAL", "NUMERIC"))]


def _primary_key(dst: Tx, table: str) -> list[str]:
    rows = dst.query(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = to_regclass(?) AND i.indisprimary ORDER BY a.attnum",
        [table],
    )
    if not rows:
        raise LedgerError(f"target table {table} has no primary key; was its schema created by genops?")
    return [r[0] for r in rows]


def _target_columns(dst: Tx, table: str) -> set[str]:
    return {r[0] for r in dst.query(
        "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped",
        [table])}


def _copy_table(src: Tx, dst: Tx, table: str, report: Callable[[str], None]) -> TableCopy:
    result = TableCopy(table)
    key = _primary_key(dst, table)
    names = [d[0] for d in src.conn.execute(f"SELECT * FROM {table} LIMIT 0").description]
    missing = [n for n in names if n not in _target_columns(dst, table)]
    if missing:
        raise LedgerError(f"target table {table} lacks column(s) {', '.join(missing)}: upgrade genops on the "
                          "machines that use the target, then re-run migrate")
    cols = ", ".join(names)
    key_cols = ", ".join(key)
    dst.execute(f"CREATE TEMP TABLE _genops_stage (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DROP")
    dst.execute(f"CREATE TEMP TABLE _genops_keys AS SELECT {key_cols} FROM {table} WITH NO DATA")
    with dst.conn.cursor() as cur:
        for _, rows in src.iter_batches(f"SELECT {cols} FROM {table} ORDER BY {key_cols}", size=BATCH_ROWS):
            if not rows:
                continue
            with cur.copy(f"COPY _genops_stage ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            if table == "audit_log":
                _check_chain_compatible(cur)
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM _genops_stage ON CONFLICT DO NOTHING")
            result.copied += max(cur.rowcount, 0)
            cur.execute(f"INSERT INTO _genops_keys SELECT {key_cols} FROM _genops_stage")
            cur.execute("TRUNCATE _genops_stage")
            result.source_rows += len(rows)
            report(f"{table}: {result.source_rows} rows read, {result.copied} copied")
    money = _money_columns(src, table)
    join = " AND ".join(f"t.{k} = k.{k}" for k in key)
    sums = ", ".join(f"SUM(t.{c})" for c in money)
    row = dst.query(f"SELECT COUNT(*){', ' + sums if sums else ''} FROM {table} t JOIN _genops_keys k ON {join}")[0]
    result.target_rows = int(row[0])
    source_row = src.query(f"SELECT COUNT(*){', ' + sums.replace('t.', '') if sums else ''} FROM {table}")[0]
    for i, column in enumerate(money, start=1):
        result.sums[column] = (source_row[i] or Decimal(0), row[i] or Decimal(0))
    dst.execute("DROP TABLE _genops_stage")
    dst.execute("DROP TABLE _genops_keys")
    return result


def _check_chain_compatible(cur: Any) -> None:
    """The staged source entries must equal the target's entries with the same seq (or be absent there)."""
    cur.execute("SELECT s.seq FROM _genops_stage s JOIN audit_log t ON t.seq = s.seq "
                "WHERE t.entry_hash <> s.entry_hash ORDER BY s.seq LIMIT 1")
    clash = cur.fetchone()
    if clash:
        raise LedgerError(
            f"the target's audit chain differs from the source's at entry {clash[0]} (other writers used the "
            "target first); migrate into an empty schema (add ?schema=NEW to the URL) so both chains stay valid"
        )


def _precheck_chain(src: Tx, dst: Tx) -> None:
    """Fail before copying anything when the chains visibly diverge (the per-batch check stays the proof)."""
    target_max = dst.scalar("SELECT MAX(seq) FROM audit_log")
    source_max = src.scalar("SELECT MAX(seq) FROM audit_log")
    if not target_max or not source_max:
        return
    for seq in sorted({1, min(int(target_max), int(source_max))}):
        theirs = dst.scalar("SELECT entry_hash FROM audit_log WHERE seq = ?", [seq])
        ours = src.scalar("SELECT entry_hash FROM audit_log WHERE seq = ?", [seq])
        if theirs != ours:
            raise LedgerError(
                f"the target's audit chain differs from the source's at entry {seq} (other writers used the "
                "target first); migrate into an empty schema (add ?schema=NEW to the URL) so both chains stay valid"
            )


def migrate_ledger(source: Ledger, target: Ledger, report: Callable[[str], None] = lambda _m: None
                   ) -> MigrationResult:
    """Copy every ledger table from `source` (DuckDB) into `target` (PostgreSQL); see the module docstring."""
    if source.backend != "duckdb":
        raise LedgerError(f"migrate reads a DuckDB ledger; {source.display} is {source.backend}")
    if target.backend != "postgresql":
        raise LedgerError(f"migrate writes a PostgreSQL ledger; {target.display} is {target.backend}")
    if not source.exists():
        raise UsageError(f"--from {source.display}: no DuckDB ledger there; pass --from PATH of an existing ledger")
    result = MigrationResult(source=source.display, target=target.display)
    with source.read() as src:
        _, source_problems = audit.verify(src)
        result.audit_problems_source = len(source_problems)
        source_known = {(p.kind, p.subject_id) for p in source_problems}
        with target.write() as dst:
            _precheck_chain(src, dst)
            for table in TABLES:
                result.tables.append(_copy_table(src, dst, table, report))
            entries, problems = audit.verify(dst)
            result.audit_entries = entries
            # A chain already broken in the source stays as broken; anything new is a copy error.
            result.audit_problems_target = [p.message for p in problems if (p.kind, p.subject_id) not in source_known]
            bad = [t for t in result.tables if not t.verified]
            if bad or result.audit_problems_target:
                detail = "; ".join(
                    [f"{t.table}: {t.source_rows} source rows vs {t.target_rows} in target" +
                     "".join(f", {c} {s} vs {v}" for c, (s, v) in t.sums.items() if s != v) for t in bad]
                    + result.audit_problems_target[:3])
                raise LedgerError(f"migration not verified, nothing committed ({detail}); rows with the same keys "
                                  "were changed in the target since an earlier migrate?")
    return result
