"""Ledger housekeeping shared by `genops ledger` and `genops validate`: info and table export.

    ledger_info(ledger)                                   # backend, masked location, size, schema version, spool
    export_table(ledger, "calls", "csv", Path("calls.csv"))   # -> rows written

CSV and JSONL are written by one streaming writer for both backends, so the same data exports to the same bytes
(money as exact decimal text, timestamps as naive UTC `YYYY-MM-DD HH:MM:SS[.ffffff]`, booleans true/false).
Parquet goes through DuckDB's COPY: directly from a DuckDB ledger, and for PostgreSQL through a temporary DuckDB
table created by the same migrations, so column types stay exact (DECIMAL(18,10), TIMESTAMP).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from genops_cli.errors import UsageError
from genops_cli.ledger.schema import CURRENT_VERSION
from genops_cli.ledger.spool import Spool
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.redact import redactor
from genops_cli.safe_output import csv_writer

#: Exportable tables and their stable order (the audit trail and policy decisions too, for auditors).
EXPORT_TABLES = {"runs": "run_id", "calls": "run_id, seq, call_id", "audit_log": "seq",
                 "policy_events": "recorded_at, event_id", "budgets": "scope", "alerts": "fired_at, alert_id",
                 "ledger_merges": "merged_at, merge_id", "purges": "purged_at, purge_id",
                 "legal_holds": "placed_at, hold_id"}
EXPORT_FORMATS = ("csv", "jsonl", "parquet")


def ledger_info(ledger: Ledger) -> dict[str, Any]:
    info: dict[str, Any] = {
        "backend": ledger.backend,
        "location": ledger.display,
        "exists": ledger.exists(),
        "size_bytes": ledger.size_bytes(),
        "schema_version": None,
        "current_schema_version": CURRENT_VERSION,
        "runs": 0,
        "calls": 0,
        "spool_dir": str(ledger.spool_dir()),
        "spool_pending": len(Spool(ledger.spool_dir())),
    }
    if ledger.backend == "postgresql":
        info["schema"] = getattr(ledger, "schema", None)
    if info["exists"]:
        with ledger.read() as tx:
            info["schema_version"] = tx.scalar("SELECT MAX(version) FROM schema_version")
            info["runs"] = tx.scalar("SELECT COUNT(*) FROM runs")
            info["calls"] = tx.scalar("SELECT COUNT(*) FROM calls")
    return info


def _text(value: Any) -> str:
    """One CSV cell, the way DuckDB's COPY writes it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")  # 0.0000000000, never 0E-10
    return str(value)


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")  # money stays exact: a string, never a float
    if isinstance(value, datetime):
        return str(value)
    return value


def _write_rows(tx: Tx, table: str, fmt: str, out: Path, spreadsheet_safe: bool = True) -> int:
    """Stream a table to CSV or JSONL. CSV cells that a spreadsheet would run as formulas are neutralised, except
    for the internal staging file of a Parquet export, which must round-trip exactly."""
    count = 0
    scrub = redactor()  # rows recorded before a secret was known to genops are masked on the way out too
    with out.open("w", encoding="utf-8", newline="") as fh:
        writer = (csv_writer(fh) if spreadsheet_safe else csv.writer(fh, lineterminator="\n")) if fmt == "csv" \
            else None
        for names, rows in tx.iter_batches(f"SELECT * FROM {table} ORDER BY {EXPORT_TABLES[table]}"):
            if writer is not None and count == 0:
                writer.writerow(names)
            for row in rows:
                if writer is not None:
                    writer.writerow([scrub(_text(v)) for v in row])
                else:
                    fh.write(json.dumps({n: scrub(_json_value(v)) for n, v in zip(names, row, strict=True)},
                                        ensure_ascii=False) + "\n")
            count += len(rows)
    return count


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def export_table(ledger: Ledger, table: str, fmt: str, out: Path) -> int:
    """Write every row of `table` (ordered by its key) to `out` as csv, jsonl or parquet; returns the row count."""
    if table not in EXPORT_TABLES:
        raise UsageError(f"--table {table!r}: use one of {', '.join(EXPORT_TABLES)}")
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(EXPORT_FORMATS)}")
    if out.parent and not out.parent.exists():
        raise UsageError(f"--out {out}: directory {out.parent} does not exist")
    if out.is_dir():
        raise UsageError(f"--out {out}: is a directory; pass a file name, e.g. {out / (table + '.' + fmt)}")
    if fmt != "parquet":
        with ledger.read() as tx:
            try:
                return _write_rows(tx, table, fmt, out)
            except OSError as exc:  # a full disk, a read-only folder, a device
                raise UsageError(f"--out {out}: cannot write ({exc.strerror or exc}); choose another file "
                                 "or free some space") from None
    order = EXPORT_TABLES[table]
    if ledger.backend == "duckdb":
        with ledger.read() as tx:
            tx.execute(f"COPY (SELECT * FROM {table} ORDER BY {order}) TO {_sql_string(str(out))} (FORMAT parquet)")
            return int(tx.scalar(f"SELECT COUNT(*) FROM {table}"))
    return _parquet_via_duckdb(ledger, table, out)


def _parquet_via_duckdb(ledger: Ledger, table: str, out: Path) -> int:
    """PostgreSQL -> CSV (the writer above) -> a DuckDB table with the ledger's own DDL -> Parquet."""
    import duckdb

    from genops_cli.ledger.store import _migrate

    with tempfile.TemporaryDirectory(prefix="genops-export-") as tmp:
        staged = Path(tmp) / f"{table}.csv"
        with ledger.read() as tx:
            count = _write_rows(tx, table, "csv", staged, spreadsheet_safe=False)
        conn = duckdb.connect(os.path.join(tmp, "stage.duckdb"))  # a file, so big tables spill to disk
        try:
            _migrate(Tx(conn, "duckdb"))
            conn.execute(f"COPY {table} FROM {_sql_string(str(staged))} (HEADER, NULLSTR '')")
            conn.execute(f"COPY (SELECT * FROM {table} ORDER BY {EXPORT_TABLES[table]}) "
                         f"TO {_sql_string(str(out))} (FORMAT parquet)")
        finally:
            conn.close()
    return count
