"""The DuckDB ledger: schema and migrations, idempotent ingest, spool recovery, exit 4, start-up cost."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from conftest import cli, genops_subprocess, json_lines, ledger_rows, sample

from genops_cli.ledger.records import drain, record_run
from genops_cli.ledger.schema import CURRENT_VERSION, MIGRATIONS, SCHEMA_VERSION_DDL
from genops_cli.ledger.spool import Spool
from genops_cli.ledger.store import DuckDBLedger
from genops_cli.models import CallRecord, RunRecord, TokenUsage, utcnow


def _run(run_id: str, cost: str = "0.0012345678") -> RunRecord:
    run = RunRecord(run_id=run_id, pipeline_name="p", pipeline_hash="h", started_at=utcnow())
    run.calls.append(CallRecord(call_id=f"{run_id}-c1", run_id=run_id, seq=1, span_kind="component",
                                component_name="llm", component_type="OpenAIChatGenerator", started_at=utcnow(),
                                provider="openai", model="gpt-4o-mini", cost=Decimal(cost),
                                usage=TokenUsage(input_tokens=10, output_tokens=2, source="reported")))
    run.recompute_total()
    return run


def test_recording_is_idempotent_by_run_id(ledger_path: Path):
    ledger = DuckDBLedger(ledger_path)
    first = record_run(ledger, _run("r1"))
    second = record_run(ledger, _run("r1"))
    assert first.inserted == ["r1"] and second.duplicates == ["r1"]
    assert ledger_rows("SELECT COUNT(*), SUM(total_cost) FROM runs") == [(1, Decimal("0.0012345678"))]
    assert ledger_rows("SELECT COUNT(*) FROM calls") == [(1,)]
    assert not Spool(ledger.spool_dir()).pending()


def test_money_is_exact_decimal_18_10(ledger_path: Path):
    ledger = DuckDBLedger(ledger_path)
    for i in range(3):
        record_run(ledger, _run(f"r{i}", "0.1000000001"))
    [(total,)] = ledger_rows("SELECT SUM(cost) FROM calls")
    assert total == Decimal("0.3000000003")


def test_old_schema_is_migrated_on_open(ledger_path: Path):
    conn = duckdb.connect(str(ledger_path))
    conn.execute(SCHEMA_VERSION_DDL)
    for statement in MIGRATIONS[0][1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, now()::TIMESTAMP)")
    conn.close()
    record_run(DuckDBLedger(ledger_path), _run("r1"))
    assert ledger_rows("SELECT MAX(version) FROM schema_version") == [(CURRENT_VERSION,)]


def test_unwritable_ledger_exits_4_and_the_next_run_drains_the_spool(tmp_path: Path, monkeypatch):
    spool = tmp_path / "spool"
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the ledger's folder should be")
    monkeypatch.setenv("GENOPS_SPOOL_DIR", str(spool))
    monkeypatch.setenv("GENOPS_LEDGER", str(blocker / "ledger.duckdb"))
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")
    assert result.exit_code == 4, result.stderr
    [out] = json_lines(result.stdout)
    assert Spool(spool).pending_run_ids() == [out["run_id"]]
    assert "spool" in result.stderr
    good = tmp_path / "good.duckdb"
    monkeypatch.setenv("GENOPS_LEDGER", str(good))
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")
    assert result.exit_code == 0, result.stderr
    ids = {row[0] for row in ledger_rows("SELECT run_id FROM runs")}
    assert out["run_id"] in ids and len(ids) == 2
    assert Spool(spool).pending_run_ids() == []


def test_corrupt_ledger_file_is_a_one_line_exit_4(ledger_path: Path):
    ledger_path.write_bytes(b"this is not a duckdb file" * 100)
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")
    assert result.exit_code == 4
    assert "Traceback" not in result.stderr and str(ledger_path) in result.stderr


@pytest.mark.parametrize("name, content", [("notes.json", b'{"a": 1}\n' * 200), ("tiny.csv", b"a\n"),
                                           ("data.parquet", b"PAR1")])
def test_a_ledger_path_holding_another_kind_of_file_keeps_the_run_in_the_spool(tmp_path: Path, name: str,
                                                                              content: bytes):
    """DuckDB opens a .json/.csv/.parquet path as an in-memory database over the file: written runs would vanish
    at close. genops refuses the file (exit 4, the run kept in the spool) and leaves it as it was."""
    path = tmp_path / name
    path.write_bytes(content)
    env = {"GENOPS_LEDGER": str(path), "NO_COLOR": "1"}
    done = genops_subprocess("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate",
                             "--json", env=env)
    assert done.returncode == 4, done.stderr
    assert "not a DuckDB database" in done.stderr and "Traceback" not in done.stderr
    assert path.read_bytes() == content
    spooled = [line for seg in (tmp_path / f"{name}.spool").glob("seg-*.jsonl")
               for line in seg.read_text().splitlines()]
    assert [json.loads(line)["run_id"] for line in spooled] == [json.loads(done.stdout)["run_id"]]
    reader = genops_subprocess("runs", env=env)
    assert reader.returncode == 2 and "not a DuckDB database" in reader.stderr


def test_concurrent_writers_in_threads_lose_nothing(ledger_path: Path):
    ledger = DuckDBLedger(ledger_path)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(10):
                result = record_run(ledger, _run(f"t{n}-{i}"))
                assert result.ok, result.error
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert ledger_rows("SELECT COUNT(*) FROM runs") == [(40,)]


def test_unreadable_spool_file_is_kept_and_reported(ledger_path: Path):
    ledger = DuckDBLedger(ledger_path)
    spool = Spool(ledger.spool_dir())
    spool.directory.mkdir(parents=True)
    (spool.directory / "broken.1.json").write_text("{not json")
    result = drain(ledger)
    assert result.unreadable == ["broken.1.json"]
    assert (spool.directory / "broken.1.json").exists()


def test_help_and_ledger_reads_do_not_import_haystack():
    code = ("import sys; from genops_cli.cli.app import app; "
            "assert not [m for m in sys.modules if m.split('.')[0] == 'haystack'], 'haystack imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    exe = Path(sys.executable).with_name("genops")
    proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "run" in proc.stdout


def test_ledger_info_reports_counts(ledger_path: Path):
    record_run(DuckDBLedger(ledger_path), _run("r1"))
    result = cli("ledger", "info", "--json")
    assert result.exit_code == 0
    [info] = json_lines(result.stdout)
    assert (info["backend"], info["runs"], info["calls"], info["spool_pending"]) == ("duckdb", 1, 1, 0)
    assert info["schema_version"] == CURRENT_VERSION


def test_budget_commands_ingest_leftover_spool_first(ledger_path: Path):
    ledger = DuckDBLedger(ledger_path)
    Spool(ledger.spool_dir()).write(_run("left-behind"))
    result = cli("budget", "set", "team:ml", "--daily", "5")
    assert result.exit_code == 0, result.stderr
    assert ledger_rows("SELECT run_id FROM runs") == [("left-behind",)]
    assert not Spool(ledger.spool_dir()).pending()


def test_a_reader_catching_up_does_not_count_runs_spooled_while_it_ingests(ledger_path: Path):
    """A busy service keeps spooling while a report ingests what was waiting: those newer runs are not "pending
    runs the ledger lacks" (a bill would refuse), and the runs that were waiting are all ingested."""
    from genops_cli.ledger.hooks import REGISTRY, RunHook
    from genops_cli.ledger.recorder import catch_up

    ledger = DuckDBLedger(ledger_path)
    record_run(ledger, _run("first"))  # the ledger exists
    spool = Spool(ledger.spool_dir())
    for i in range(3):
        spool.hand_off(_run(f"waiting-{i}"))

    class ArrivesMeanwhile(RunHook):
        name = "arrives-meanwhile"

        def on_insert(self, batch: Any) -> None:
            Spool(ledger.spool_dir()).write(_run(f"newer-{len(batch.inserted)}"))

    REGISTRY.register(ArrivesMeanwhile())
    try:
        result = catch_up(ledger)
    finally:
        REGISTRY.unregister("arrives-meanwhile")
    assert (result.ingested, result.pending, result.reason) == (3, 0, None)
    assert len(spool) == 1  # the newer run waits for the next ingestion
    assert catch_up(ledger).ingested == 1
    assert ledger_rows("SELECT COUNT(*) FROM runs") == [(5,)]
