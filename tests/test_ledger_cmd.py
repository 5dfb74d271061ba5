"""`genops ledger info|migrate|export` on the command line (DuckDB here; PostgreSQL where the server is set)."""

from __future__ import annotations

import csv
import json
import os
from decimal import Decimal

import pytest
from conftest import cli, ledger_rows, sample


def record_sample_runs() -> None:
    result = cli("run", sample("chain"), "--inputs", sample("chain", "batch.jsonl"), "--simulate", "--quiet",
                 "--team", "ml")
    assert result.exit_code == 0, result.stderr


def test_info_reports_backend_size_schema_and_spool(ledger_path):
    record_sample_runs()
    result = cli("ledger", "info", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["backend"] == "duckdb" and info["location"] == str(ledger_path)
    assert info["size_bytes"] == ledger_path.stat().st_size
    assert info["schema_version"] == info["current_schema_version"]
    assert info["runs"] == 6 and info["spool_pending"] == 0


def test_export_csv_and_jsonl_keep_money_exact(ledger_path, tmp_path):
    record_sample_runs()
    out_csv, out_jsonl = tmp_path / "calls.csv", tmp_path / "calls.jsonl"
    assert cli("ledger", "export", "--table", "calls", "--format", "csv", "--out", str(out_csv)).exit_code == 0
    assert cli("ledger", "export", "--table", "calls", "--format", "jsonl", "--out", str(out_jsonl)).exit_code == 0
    [(count, total)] = ledger_rows("SELECT COUNT(*), SUM(cost) FROM calls")
    with out_csv.open() as fh:
        rows = list(csv.DictReader(fh))
    lines = [json.loads(line) for line in out_jsonl.read_text().splitlines()]
    assert len(rows) == len(lines) == count
    assert sum(Decimal(r["cost"]) for r in rows) == total == sum(Decimal(r["cost"]) for r in lines)
    assert all(isinstance(r["cost"], str) for r in lines)  # money never becomes a float
    assert rows[0]["priced"] in ("true", "false") and "T" not in rows[0]["started_at"]


def test_export_parquet_reads_back_with_exact_types(ledger_path, tmp_path):
    import duckdb

    record_sample_runs()
    out = tmp_path / "runs.parquet"
    result = cli("ledger", "export", "--table", "runs", "--format", "parquet", "--out", str(out))
    assert result.exit_code == 0, result.stderr
    assert "wrote 6 runs rows" in result.stderr
    [(count, total, dtype)] = duckdb.sql(
        f"SELECT COUNT(*), SUM(total_cost), typeof(ANY_VALUE(total_cost)) FROM '{out}'").fetchall()
    assert (count, total, dtype) == (6, ledger_rows("SELECT SUM(total_cost) FROM runs")[0][0], "DECIMAL(38,18)")


@pytest.mark.parametrize("args, flag", [
    (["--table", "secrets", "--format", "csv"], "--table"),
    (["--table", "runs", "--format", "xml"], "--format"),
])
def test_export_bad_flags_are_one_line_usage_errors(tmp_path, args, flag):
    result = cli("ledger", "export", *args, "--out", str(tmp_path / "x"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {flag}") and len(result.stderr.splitlines()) == 1


def test_export_into_missing_directory_names_it(tmp_path):
    result = cli("ledger", "export", "--table", "runs", "--out", str(tmp_path / "nope" / "runs.csv"))
    assert result.exit_code == 2 and "does not exist" in result.stderr


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("GENOPS_TEST_POSTGRES_URL"), reason="GENOPS_TEST_POSTGRES_URL is not set")
def test_migrate_prints_a_summary_and_exports_match_across_backends(ledger_path, tmp_path, monkeypatch):
    import uuid

    from test_postgres import admin, url_with

    record_sample_runs()
    schema = f"genops_test_{uuid.uuid4().hex[:12]}"
    url = url_with(os.environ["GENOPS_TEST_POSTGRES_URL"], schema=schema)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        result = cli("ledger", "migrate", "--to", url)
        assert result.exit_code == 0, result.stderr
        [(runs,)] = ledger_rows("SELECT COUNT(*) FROM runs")
        [(calls,)] = ledger_rows("SELECT COUNT(*) FROM calls")
        text = " ".join(result.stdout.split())
        assert f"{runs} runs copied ({runs + calls} rows)" in text
        assert f"target chain: {runs + 1} entries verified" in text  # one per run, and the merge record
        for table in ("runs", "calls"):
            for fmt in ("csv", "jsonl"):
                duck, pg = tmp_path / f"duck.{table}.{fmt}", tmp_path / f"pg.{table}.{fmt}"
                assert cli("ledger", "export", "--table", table, "--format", fmt, "--out", str(duck)).exit_code == 0
                assert cli("--ledger", url, "ledger", "export", "--table", table, "--format", fmt,
                           "--out", str(pg)).exit_code == 0
                assert pg.read_bytes() == duck.read_bytes(), (table, fmt)
        import duckdb

        pq = tmp_path / "pg.calls.parquet"
        assert cli("--ledger", url, "ledger", "export", "--table", "calls", "--format", "parquet",
                   "--out", str(pq)).exit_code == 0
        assert duckdb.sql(f"SELECT COUNT(*), SUM(cost) FROM '{pq}'").fetchall() == ledger_rows(
            "SELECT COUNT(*), SUM(cost) FROM calls")
    finally:
        with admin() as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
