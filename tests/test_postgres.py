"""The PostgreSQL ledger against the real server of this machine (GENOPS_TEST_POSTGRES_URL; `.ci/run` sets it).

Each test gets its own schema (`?schema=genops_test_<random>`), dropped afterwards; HOME points into the
test's tmp dir so the per-URL spool (~/.genops/spool/<hash>/) stays inside it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from conftest import cli, genops_subprocess, json_lines, sample

PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="GENOPS_TEST_POSTGRES_URL is not set "
                                          "(e.g. postgresql://postgres@127.0.0.1:5432/postgres)"),
]


def admin() -> object:
    import psycopg

    return psycopg.connect(PG_URL, autocommit=True)


def url_with(base: str, schema: str | None = None, database: str | None = None, password: str | None = None) -> str:
    parts = urlsplit(base)
    netloc = parts.netloc
    if password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':')[0]}:{password}@{host}"
    path = f"/{database}" if database else parts.path
    query = "&".join(q for q in [parts.query, f"schema={schema}" if schema else ""] if q)
    return urlunsplit((parts.scheme, netloc, path, query, ""))


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """A fresh schema on the test server, selected through GENOPS_LEDGER; dropped after the test."""
    schema = f"genops_test_{uuid.uuid4().hex[:12]}"
    url = url_with(PG_URL or "", schema=schema)
    monkeypatch.setenv("GENOPS_LEDGER", url)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield url
    with admin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def schema_of(url: str) -> str:
    from genops_cli.ledger.postgres import parse_url

    return parse_url(url)[1]


def pg_rows(url: str, sql: str, params: list | None = None) -> list[tuple]:
    from genops_cli.ledger.store import open_ledger

    with open_ledger(url).read() as tx:
        return tx.query(sql, params or [])


def make_run(team: str, calls: int = 2, cost: str = "0.0004500000") -> object:
    """A synthetic finished run with exact Decimal costs (what the runner hands to record_run)."""
    from genops_cli.models import Attribution, CallRecord, RunRecord, TokenUsage

    run_id = str(uuid.uuid4())
    now = datetime.now(timezone.utc)
    run = RunRecord(run_id=run_id, pipeline_name="p", pipeline_hash="h", started_at=now,
                    attribution=Attribution(team=team), ended_at=now + timedelta(milliseconds=5))
    for seq in range(1, calls + 1):
        run.calls.append(CallRecord(call_id=str(uuid.uuid4()), run_id=run_id, seq=seq, span_kind="component",
                                    component_name=f"llm{seq}", component_type="OpenAIGenerator",
                                    started_at=now, provider="openai", model="gpt-4o-mini",
                                    usage=TokenUsage(input_tokens=1000, output_tokens=500, source="provider"),
                                    cost=Decimal(cost), list_cost=Decimal(cost)))
    run.total_cost = sum((c.cost for c in run.calls), Decimal(0))
    return run


def test_schema_created_on_first_use_in_the_configured_schema(pg_url):
    from genops_cli.ledger.schema import CURRENT_VERSION, TABLES
    from genops_cli.ledger.store import open_ledger

    schema = schema_of(pg_url)
    ledger = open_ledger(pg_url)
    assert ledger.backend == "postgresql"
    with ledger.write():
        pass
    with admin() as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])}
        money = conn.execute("SELECT data_type, numeric_precision, numeric_scale FROM information_schema.columns "
                             "WHERE table_schema = %s AND table_name = 'calls' AND column_name = 'cost'",
                             [schema]).fetchone()
        started = conn.execute("SELECT data_type FROM information_schema.columns WHERE table_schema = %s AND "
                               "table_name = 'runs' AND column_name = 'started_at'", [schema]).fetchone()
    assert tables == {*TABLES, "schema_version"}
    assert money == ("numeric", 38, 18)  # exact for token prices down to 1e-12 USD
    assert started == ("timestamp without time zone",)
    assert pg_rows(pg_url, "SELECT MAX(version) FROM schema_version") == [(CURRENT_VERSION,)]


def test_concurrent_first_use_migrates_exactly_once(pg_url):
    from genops_cli.ledger.postgres import PostgresLedger
    from genops_cli.ledger.schema import MIGRATIONS

    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def first_use() -> None:
        ledger = PostgresLedger(pg_url)  # one instance per "machine"
        barrier.wait()
        try:
            with ledger.write() as tx:
                tx.execute("SELECT 1")
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            ledger.close()

    threads = [threading.Thread(target=first_use) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert pg_rows(pg_url, "SELECT version FROM schema_version ORDER BY version") == [(v,) for v, _ in MIGRATIONS]


def test_run_recorded_exactly_with_decimal_money_and_naive_utc_timestamps(pg_url):
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json",
                 "--team", "ml")
    assert result.exit_code == 0, result.stderr
    out = json_lines(result.stdout)[0]
    [(run_id, total, started, simulated)] = pg_rows(
        pg_url, "SELECT run_id, total_cost, started_at, simulated FROM runs")
    assert run_id == out["run_id"]
    assert isinstance(total, Decimal) and total == Decimal(out["total_cost"]) and total > 0
    assert started.tzinfo is None and abs(datetime.now(timezone.utc).replace(tzinfo=None) - started) < timedelta(
        minutes=5)
    assert simulated is True
    assert pg_rows(pg_url, "SELECT SUM(cost) FROM calls") == [(total,)]
    # SUM of an integer column is an int on PostgreSQL too (as DuckDB's HUGEINT), money stays Decimal.
    [(tokens,)] = pg_rows(pg_url, "SELECT SUM(input_tokens) FROM calls")
    assert isinstance(tokens, int)


def test_idempotent_ingestion_by_run_id(pg_url):
    from genops_cli.ledger.records import drain, insert_run, record_run
    from genops_cli.ledger.spool import Spool
    from genops_cli.ledger.store import open_ledger

    ledger = open_ledger(pg_url)
    run = make_run("ml")
    first = record_run(ledger, run)
    assert first.inserted == [run.run_id] and first.ok
    with ledger.write() as tx:
        assert insert_run(tx, run) is False
    # The same spool file ingested again (a crash between commit and unlink) is a duplicate, not a new row.
    spool = Spool(ledger.spool_dir())
    spool.write(run)
    again = drain(ledger)
    assert again.duplicates == [run.run_id] and again.inserted == []
    assert pg_rows(pg_url, "SELECT COUNT(*), SUM(total_cost) FROM runs") == [(1, Decimal("0.0009000000"))]
    assert pg_rows(pg_url, "SELECT COUNT(*) FROM calls") == [(2,)]
    assert len(spool) == 0


def test_concurrent_writers_keep_the_audit_chain_valid(pg_url):
    from genops_cli.ledger import audit
    from genops_cli.ledger.postgres import PostgresLedger
    from genops_cli.ledger.records import insert_run

    writers, per_writer = 8, 12
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []
    with PostgresLedger(pg_url).write():
        pass  # schema first, so every writer races on the chain rather than on CREATE

    def writer(index: int) -> None:
        ledger = PostgresLedger(pg_url)
        barrier.wait()
        try:
            for _ in range(per_writer):
                with ledger.write() as tx:
                    insert_run(tx, make_run(f"team{index}", calls=1))
        except BaseException as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)
        finally:
            ledger.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    total = writers * per_writer
    assert pg_rows(pg_url, "SELECT COUNT(*), MIN(seq), MAX(seq), COUNT(DISTINCT prev_hash) FROM audit_log") == [
        (total, 1, total, total)]
    from genops_cli.ledger.store import open_ledger

    with open_ledger(pg_url).read() as tx:
        checked, problems = audit.verify(tx)
    assert checked == total
    assert problems == []


@pytest.mark.slow
def test_concurrent_genops_run_processes_are_all_recorded(pg_url, openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    lines = Path(sample("chain", "batch.jsonl")).read_text().splitlines()[:3]
    procs = []
    import subprocess

    exe = Path(sys.executable).with_name("genops")
    for index in range(4):
        batch = tmp_path / f"batch{index}.jsonl"
        batch.write_text("\n".join(line.replace('"request": "', f'"request": "[worker {index}] ')
                                   for line in lines) + "\n")
        procs.append(subprocess.Popen(
            [str(exe), "--ledger", pg_url, "run", sample("chain"), "--inputs", str(batch), "--json",
             "--team", f"team{index}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=180)
        assert proc.returncode == 0, stderr
        outputs.extend(o for o in json_lines(stdout) if "run_id" in o)
    assert len(outputs) == 12
    expected_total = sum((Decimal(o["total_cost"]) for o in outputs), Decimal(0))
    assert expected_total > 0
    assert sorted(r[0] for r in pg_rows(pg_url, "SELECT run_id FROM runs")) == sorted(o["run_id"] for o in outputs)
    assert pg_rows(pg_url, "SELECT SUM(total_cost) FROM runs") == [(expected_total,)]
    assert pg_rows(pg_url, "SELECT COUNT(*) FROM calls WHERE model IS NOT NULL") == [
        (openai_server.count("/chat/completions"),)]
    assert pg_rows(pg_url, "SELECT team, COUNT(*) FROM runs GROUP BY team ORDER BY team") == [
        (f"team{i}", 3) for i in range(4)]
    from genops_cli.ledger import audit
    from genops_cli.ledger.store import open_ledger

    with open_ledger(pg_url).read() as tx:
        assert audit.verify(tx)[1] == []


@pytest.mark.slow
def test_unreachable_ledger_exits_4_keeps_the_spool_and_next_run_drains(tmp_path, monkeypatch):
    """The database does not exist yet (a real connection failure); once it does, the next run ingests."""
    from genops_cli.ledger.spool import Spool

    database = f"genops_test_{uuid.uuid4().hex[:10]}"
    url = url_with(PG_URL or "", database=database, password="s3cret-pw")
    home = tmp_path / "home"
    env = {"HOME": str(home), "GENOPS_LEDGER": url}
    try:
        failed = genops_subprocess("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate",
                                   "--json", env=env)
        assert failed.returncode == 4, failed.stderr
        assert "Traceback" not in failed.stderr
        assert "s3cret-pw" not in failed.stderr + failed.stdout
        assert "postgres:***@" in failed.stderr and "spool" in failed.stderr
        spooled_run = json_lines(failed.stdout)[0]["run_id"]
        no_password = url.replace(":s3cret-pw@", "@")
        spool = home / ".genops" / "spool" / hashlib.sha256(no_password.encode()).hexdigest()[:16]
        assert Spool(spool).pending_run_ids() == [spooled_run]
        assert "s3cret-pw" not in str(spool)

        info = genops_subprocess("ledger", "info", env=env)
        assert info.returncode == 4 and info.stderr.startswith("error: ledger postgresql://postgres:***@")
        assert len(info.stderr.strip().splitlines()) == 1 and "s3cret-pw" not in info.stderr

        with admin() as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        ok = genops_subprocess("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate",
                               "--json", env=env)
        assert ok.returncode == 0, ok.stderr
        new_run = json_lines(ok.stdout)[0]["run_id"]
        assert sorted(r[0] for r in pg_rows(url, "SELECT run_id FROM runs")) == sorted([spooled_run, new_run])
        assert Spool(spool).pending_run_ids() == []
    finally:
        with admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def test_ledger_info_on_postgres_masks_the_password(pg_url):
    url = url_with(pg_url, password="hunter2")  # trust auth ignores it; it must never be printed
    assert cli("--ledger", url, "run", sample("chain"), "--inputs", sample("chain", "inputs.json"),
               "--simulate", "--quiet").exit_code == 0
    result = cli("--ledger", url, "ledger", "info", "--json")
    assert result.exit_code == 0, result.stderr
    info = json.loads(result.stdout)
    assert "hunter2" not in result.stdout
    assert info["backend"] == "postgresql" and info["schema"] == schema_of(pg_url)
    assert info["location"].startswith("postgresql://postgres:***@")
    assert info["runs"] == 1 and info["schema_version"] == info["current_schema_version"]
    assert info["size_bytes"] > 0 and info["spool_pending"] == 0


def test_url_parsing_masking_and_spool_dir(monkeypatch, tmp_path):
    from genops_cli.errors import ConfigError
    from genops_cli.ledger.postgres import DEFAULT_SCHEMA, PostgresLedger, mask_url, parse_url

    assert mask_url("postgresql://u:p%40ss@db:5432/x?schema=a") == "postgresql://u:***@db:5432/x?schema=a"
    assert mask_url("postgresql://u@db/x") == "postgresql://u@db/x"
    assert parse_url("postgresql://u@db/x?schema=team_a&sslmode=require") == (
        "postgresql://u@db/x?sslmode=require", "team_a")
    assert parse_url("postgresql://u@db/x?options=-csearch_path%3Dledger2")[1] == "ledger2"
    assert parse_url("postgresql://u@db/x")[1] == DEFAULT_SCHEMA
    with pytest.raises(ConfigError, match="schema"):
        parse_url("postgresql://u@db/x?schema=a;drop")
    monkeypatch.setenv("HOME", str(tmp_path))
    a, b = PostgresLedger("postgresql://u:one@db/x"), PostgresLedger("postgresql://u:two@db/x")
    assert a.spool_dir() == b.spool_dir()  # the password is not part of the ledger's identity
    assert a.spool_dir().parent == tmp_path / ".genops" / "spool"
    monkeypatch.setenv("GENOPS_SPOOL_DIR", str(tmp_path / "elsewhere"))
    assert a.spool_dir() == tmp_path / "elsewhere"


def test_bad_schema_in_url_is_a_usage_error():
    result = cli("--ledger", "postgresql://postgres@127.0.0.1/postgres?schema=bad-name", "ledger", "info")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ledger URL") and "?schema=" in result.stderr


def test_missing_psycopg_names_the_extra(monkeypatch):
    from genops_cli.errors import ConfigError
    from genops_cli.ledger.store import open_ledger

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on an install without the postgres extra
    with pytest.raises(ConfigError, match=r"genops-cli\[postgres\]"):
        with open_ledger("postgresql://postgres@127.0.0.1/postgres").write():
            pass


@pytest.mark.slow
def test_budget_race_between_processes_never_overspends(pg_url, openai_server):
    """Several `genops run --ledger URL` processes against one enforcing budget: the check and reservation are
    serialized per scope on PostgreSQL, so the admitted runs never spend more than the limit."""
    import subprocess

    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 50}  # actual cost below the estimate
    run_args = ["run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--team", "race", "--json"]
    assert cli("budget", "set", "team:race", "--daily", "100", "--policy", "enforcing").exit_code == 0
    prime = cli(*run_args)
    assert prime.exit_code == 0, prime.stderr
    [(spent, estimate)] = pg_rows(pg_url, "SELECT total_cost, reserved_cost FROM runs")
    assert Decimal(0) < spent < estimate
    limit = spent + 2 * estimate + Decimal("0.0000000001")  # room for exactly two in-flight reservations
    assert cli("budget", "set", "team:race", "--daily", str(limit)).exit_code == 0
    openai_server.latency = 3.0  # admitted runs hold their reservation while the others check
    exe = Path(sys.executable).with_name("genops")
    procs = [subprocess.Popen([str(exe), "--ledger", pg_url, *run_args], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    codes = []
    for proc in procs:
        _, stderr = proc.communicate(timeout=180)
        codes.append(proc.returncode)
        assert proc.returncode in (0, 3), stderr
    admitted, blocked = codes.count(0), codes.count(3)
    assert admitted >= 2 and blocked >= 1, codes
    [(total,)] = pg_rows(pg_url, "SELECT SUM(total_cost) FROM runs WHERE team = 'race' AND status = 'ok'")
    assert total <= limit
    assert pg_rows(pg_url, "SELECT COUNT(*) FROM runs WHERE status = 'blocked'") == [(blocked,)]
    assert openai_server.count("/chat/completions") == 2 * (1 + admitted)  # blocked runs never called out


def test_report_work_mem_is_configurable_and_a_bad_value_is_a_one_line_error(pg_url, monkeypatch):
    assert cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate",
               "--quiet").exit_code == 0
    monkeypatch.setenv("GENOPS_PG_READ_WORK_MEM", "lots")
    bad = cli("analyze", "--include-simulated", "--json")
    assert bad.exit_code == 2 and bad.stdout == ""
    assert bad.stderr.strip().splitlines() == [
        "error: GENOPS_PG_READ_WORK_MEM='lots' is not a PostgreSQL memory size; use e.g. 64MB or 256MB, or unset it"]
    monkeypatch.setenv("GENOPS_PG_READ_WORK_MEM", "256MB")
    good = cli("analyze", "--include-simulated", "--json")
    assert good.exit_code == 0, good.stderr
    assert json.loads(good.stdout)["runs"] == 1
