"""The hash-chained audit log: `genops compliance verify` names the first run or row altered, inserted or
deleted, and the chain stays valid under concurrent writers (threads, processes, PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import uuid
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import REPO, cli
from ledger_factory import at, make_run, record

from genops_cli.ledger import audit
from genops_cli.ledger.store import open_ledger


def _runs(n: int = 3) -> list:
    runs = [make_run("acme", at("2026-05-0" + str(i + 1)), [{"model": "gpt-4o-mini", "input": 1000 + i,
                                                             "output": 100}]) for i in range(n)]
    record(*runs)
    return runs


def _raw(sql: str, params: list | None = None) -> None:
    """Tamper with the ledger behind genops' back (raw SQL, as an attacker or a careless admin would)."""
    import duckdb

    conn = duckdb.connect(os.environ["GENOPS_LEDGER"])
    try:
        conn.execute(sql, params or [])
    finally:
        conn.close()


def _verify() -> tuple[int, dict, str]:
    result = cli("compliance", "verify", "--json")
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_untouched_ledger_verifies_with_exit_0():
    _runs(3)
    result = cli("compliance", "verify")
    assert result.exit_code == 0, result.stderr
    assert "audit chain intact: 3 entries verified" in result.stdout
    code, out, _ = _verify()
    assert code == 0 and out["ok"] is True and out["problems"] == [] and out["head_seq"] == 3


def test_altered_call_cost_names_the_run():
    runs = _runs(3)
    _raw("UPDATE calls SET cost = cost + 0.01 WHERE run_id = ?", [runs[1].run_id])
    result = cli("compliance", "verify")
    assert result.exit_code == 1
    assert f"run {runs[1].run_id} was altered" in result.stderr
    assert "calls" in result.stderr
    code, out, _ = _verify()
    assert code == 1
    assert [(p["problem"], p["subject_id"]) for p in out["problems"]] == [("altered", runs[1].run_id)]


def test_deleted_run_is_named_even_when_its_calls_remain():
    runs = _runs(3)
    _raw("DELETE FROM runs WHERE run_id = ?", [runs[0].run_id])
    code, out, _ = _verify()
    assert code == 1
    first = out["problems"][0]
    assert (first["problem"], first["table"], first["subject_id"]) == ("deleted", "runs", runs[0].run_id)
    assert f"run {runs[0].run_id} was deleted" in first["message"]


def test_deleted_run_with_its_calls_is_named():
    runs = _runs(2)
    _raw("DELETE FROM calls WHERE run_id = ?", [runs[1].run_id])
    _raw("DELETE FROM runs WHERE run_id = ?", [runs[1].run_id])
    code, out, _ = _verify()
    assert code == 1
    assert [(p["problem"], p["subject_id"]) for p in out["problems"]] == [("deleted", runs[1].run_id)]


def test_run_inserted_directly_is_named():
    _runs(2)
    forged = str(uuid.uuid4())
    _raw("INSERT INTO runs (run_id, pipeline_name, pipeline_hash, started_at, status, total_cost, customer_id) "
         "VALUES (?, 'rag', 'x', ?, 'ok', 0.5, 'acme')", [forged, datetime(2026, 5, 9)])
    result = cli("compliance", "verify")
    assert result.exit_code == 1
    assert f"run {forged} has no audit entry (inserted outside genops)" in result.stderr


def test_call_rows_inserted_into_a_recorded_run_are_an_alteration():
    runs = _runs(1)
    _raw("INSERT INTO calls (call_id, run_id, seq, span_kind, component_name, component_type, usage_source, cost, "
         "started_at, status) VALUES ('forged', ?, 9, 'component', 'x', 'X', 'reported', 1, ?, 'ok')",
         [runs[0].run_id, datetime(2026, 5, 1)])
    code, out, _ = _verify()
    assert code == 1 and out["problems"][0]["subject_id"] == runs[0].run_id


def test_tampered_audit_entry_breaks_the_chain_at_that_entry():
    runs = _runs(3)
    _raw("UPDATE audit_log SET subject_id = 'someone-else' WHERE seq = 2")
    code, out, stderr = _verify()
    assert code == 1
    first = out["problems"][0]
    assert (first["problem"], first["audit_seq"]) == ("chain", 2)
    # The real run 2 lost its entry, so it is also reported.
    assert any(p["subject_id"] == runs[1].run_id for p in out["problems"])


def test_rewritten_entry_hash_breaks_the_link_to_the_next_entry():
    _runs(3)
    _raw("UPDATE audit_log SET entry_hash = ? WHERE seq = 1", ["f" * 64])
    code, out, _ = _verify()
    assert code == 1
    assert [p["audit_seq"] for p in out["problems"]][:2] == [1, 2]


def test_deleted_audit_entry_is_named():
    _runs(3)
    _raw("DELETE FROM audit_log WHERE seq = 2")
    result = cli("compliance", "verify")
    assert result.exit_code == 1
    assert "audit entries 2..2 are missing" in result.stderr


def test_expect_head_detects_a_truncated_log():
    _runs(2)
    head = _verify()[1]["head_hash"]
    assert cli("compliance", "verify", "--expect-head", head).exit_code == 0
    _raw("DELETE FROM audit_log WHERE seq = 2")
    _raw("DELETE FROM calls WHERE run_id IN (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)")
    _raw("DELETE FROM runs WHERE run_id IN (SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1)")
    result = cli("compliance", "verify", "--expect-head", head)
    assert result.exit_code == 1
    assert "is not the expected" in result.stderr


def test_policy_events_are_covered_by_the_chain():
    from genops_cli.models import PolicyEvent

    run = make_run("acme", at("2026-05-02"), [{"model": "gpt-4o-mini", "input": 10, "output": 1}])
    run.policy_events.append(PolicyEvent(event_id="ev-1", rule="compliance:models", result="WARNING",
                                         reason_code="POLICY_DENY_MODEL", message="m", enforced=False))
    record(run)
    assert _verify()[0] == 0
    _raw("UPDATE policy_events SET enforced = TRUE WHERE event_id = 'ev-1'")
    code, out, _ = _verify()
    assert code == 1 and out["problems"][0]["subject_id"] == "ev-1"


def test_payload_ignores_sql_row_order_and_null_columns():
    """The digest is computed from canonical rows, not from the engine's ORDER BY or NULL columns."""
    rows_a = [{"table": "calls", "call_id": "b", "cost": "1"}, {"table": "calls", "call_id": "a", "cost": "2"}]
    rows_b = list(reversed(rows_a))
    assert audit.payload_digest(sorted(rows_a, key=audit._canonical)) == \
        audit.payload_digest(sorted(rows_b, key=audit._canonical))
    assert audit._norm_row("runs", {"run_id": "r", "error": None}) == {"table": "runs", "run_id": "r"}
    assert audit._norm(Decimal("0.00045")) == "0.0004500000"


def test_concurrent_threads_keep_the_chain_valid():
    runs = [make_run("acme", at("2026-05-03"), [{"model": "gpt-4o-mini", "input": 100 + i, "output": 1}])
            for i in range(12)]
    threads = [threading.Thread(target=record, args=tuple(runs[i::4])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open_ledger(os.environ["GENOPS_LEDGER"]).read() as tx:
        checked, problems = audit.verify(tx)
    assert (checked, problems) == (12, [])


@pytest.mark.slow
def test_concurrent_processes_keep_the_chain_valid(tmp_path: Path):
    script = (
        "import sys; sys.path.insert(0, {tests!r})\n"
        "from ledger_factory import at, make_run, record\n"
        "for i in range(6):\n"
        "    record(make_run('acme', at('2026-05-04'), [{{'model': 'gpt-4o-mini', 'input': 10 + i, 'output': 1}}]))\n"
    ).format(tests=str(REPO / "tests"))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ), cwd=tmp_path) for _ in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    code, out, _ = _verify()
    assert code == 0 and out["entries"] == 18


PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="GENOPS_TEST_POSTGRES_URL is not set")
def test_postgres_chain_verifies_and_names_an_altered_run(monkeypatch, tmp_path):
    import psycopg

    schema = f"genops_audit_{uuid.uuid4().hex[:10]}"
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"
    monkeypatch.setenv("GENOPS_LEDGER", url)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    try:
        runs = _runs(2)
        code, out, _ = _verify()
        assert code == 0 and out["entries"] == 2
        # Same rows, same digest on both engines: the payload hash stored by PostgreSQL matches DuckDB's.
        with open_ledger(url).read() as tx:
            pg_payload = audit.subject_payload(tx, "run", runs[0].run_id)
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'UPDATE "{schema}".calls SET cost = cost * 2 WHERE run_id = %s', [runs[0].run_id])
        code, out, _ = _verify()
        assert code == 1 and out["problems"][0]["subject_id"] == runs[0].run_id
        duck = tmp_path / "copy.duckdb"
        monkeypatch.setenv("GENOPS_LEDGER", str(duck))
        record(runs[0])
        with open_ledger(str(duck)).read() as tx:
            duck_payload = audit.subject_payload(tx, "run", runs[0].run_id)
        assert audit.payload_digest(pg_payload) == audit.payload_digest(duck_payload)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
