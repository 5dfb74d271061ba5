"""`genops ledger migrate`: ledgers merged into another exactly (DuckDB -> PostgreSQL, PostgreSQL -> PostgreSQL and
DuckDB), verified, safe to re-run, into a target other writers already use; the source's audit chain kept with its
provenance; the same questions answered the same way by both backends afterwards."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli, sample
from test_postgres import PG_URL, admin, make_run, url_with

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not PG_URL, reason="GENOPS_TEST_POSTGRES_URL is not set "
                                          "(e.g. postgresql://postgres@127.0.0.1:5432/postgres)"),
]


@pytest.fixture
def pg_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    """An empty schema to migrate into (the DuckDB ledger of the test stays the configured one)."""
    schema = f"genops_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield url_with(PG_URL or "", schema=schema)
    with admin() as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def populate(ledger_path: Path) -> None:
    """Runs from two teams and tenants (real pipelines against the loopback OpenAI fake) plus a row in every
    other table."""
    for name, team, customer in (("chain", "ml", "acme"), ("rag", "search", "beta")):
        args = ["run", sample(name), "--inputs", sample(name, "batch.jsonl"), "--quiet",
                "--team", team, "--customer", customer]
        if name == "rag":
            args += ["--documents", sample("rag", "corpus.jsonl")]
        assert cli(*args).exit_code == 0
    from genops_cli.ledger import audit
    from genops_cli.ledger.store import open_ledger

    now = datetime(2025, 3, 1, 12, 30, 45, 123456)
    with open_ledger(str(ledger_path)).write() as tx:
        run_id = tx.scalar("SELECT MIN(run_id) FROM runs")
        tx.execute("INSERT INTO budgets (scope, daily_limit, monthly_limit, policy, created_at, updated_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", ["team:ml", Decimal("12.5"), Decimal("300"), "enforcing", now, now])
        audit.append(tx, "budget", "team:ml")
        tx.execute("INSERT INTO reservations (reservation_id, run_id, scopes, amount, created_at, expires_at, "
                   "released_at, actual_cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   ["res-1", run_id, "team:ml", Decimal("0.0123456789"), now, now + timedelta(hours=1), now,
                    Decimal("0.0000012345")])
        tx.execute("INSERT INTO alerts (alert_id, scope, period, period_key, threshold, spent, limit_amount, "
                   "fired_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   ["alert-1", "team:ml", "daily", "2025-03-01", 80, Decimal("10.0000000001"), Decimal("12.5"),
                    now, run_id])
        audit.append(tx, "alert", "alert-1")
        tx.execute("INSERT INTO policy_events (event_id, run_id, recorded_at, rule, result, reason_code, message, "
                   "enforced) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   ["ev-1", run_id, now, "budget:team:ml:daily", "WARNING", "BUDGET_WARNING", "80% used", False])
        audit.append(tx, "policy", "ev-1")


def all_rows(ledger_location: str) -> dict[str, list[tuple]]:
    from genops_cli.ledger.schema import TABLES
    from genops_cli.ledger.store import open_ledger

    out = {}
    with open_ledger(ledger_location).read() as tx:
        for table in TABLES:
            rows = tx.query_dicts(f"SELECT * FROM {table}")
            out[table] = sorted((tuple(sorted(r.items())) for r in rows), key=repr)
    return out


def aggregates(ledger_location: str) -> list[tuple]:
    from genops_cli.ledger.store import open_ledger

    with open_ledger(ledger_location).read() as tx:
        return tx.query(
            "SELECT r.team, r.customer_id, c.model, COUNT(*), SUM(c.cost), SUM(c.input_tokens), "
            "SUM(c.output_tokens), MIN(c.started_at) FROM calls c JOIN runs r ON r.run_id = c.run_id "
            "GROUP BY r.team, r.customer_id, c.model ORDER BY r.team, r.customer_id, c.model")


def verify_chain(location: str) -> tuple[int, list]:
    from genops_cli.ledger import audit
    from genops_cli.ledger.store import open_ledger

    with open_ledger(location).read() as tx:
        return audit.verify(tx)


DATA_TABLES = ["runs", "calls", "budgets", "reservations", "alerts", "policy_events"]


def test_migration_is_exact_and_keeps_the_sources_audit_chain(ledger_path, pg_target, openai_server):
    populate(ledger_path)
    result = cli("ledger", "migrate", "--to", pg_target, "--json")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["verified"] is True and summary["merge_recorded"] is True
    source, target = all_rows(str(ledger_path)), all_rows(pg_target)
    for table in DATA_TABLES:
        assert len(source[table]) > 0, table  # every table is exercised
        assert target[table] == source[table], table  # row for row, Decimal and microsecond exact
    by_table = {t["table"]: t for t in summary["tables"]}
    assert by_table["runs"]["copied"] == len(source["runs"]) == 14
    assert by_table["calls"]["sums"]["cost"]["source"] == by_table["calls"]["sums"]["cost"]["target"]
    from genops_cli.ledger.store import open_ledger

    for location in (str(ledger_path), pg_target):
        with open_ledger(location).read() as tx:
            assert tx.query("SELECT SUM(total_cost) FROM runs") == tx.query("SELECT SUM(cost) FROM calls")
    assert Decimal(by_table["runs"]["sums"]["total_cost"]["target"]) == aggregate_total(pg_target)
    checked, problems = verify_chain(pg_target)
    assert problems == []
    # The target's own chain: one entry per run, budget, alert and event copied, plus the merge record.
    assert checked == summary["audit_entries"] == 14 + 3 + 1
    # The source's chain is kept entry for entry, ending at the head the merge recorded.
    assert len(target["audit_imports"]) == len(source["audit_log"]) == summary["audit_imported"]
    with open_ledger(str(ledger_path)).read() as tx:
        from genops_cli.ledger import audit

        head = audit.chain_head(tx)
    assert (summary["source_head"]["seq"], summary["source_head"]["hash"]) == head


def aggregate_total(location: str) -> Decimal:
    from genops_cli.ledger.store import open_ledger

    with open_ledger(location).read() as tx:
        return tx.scalar("SELECT SUM(total_cost) FROM runs")


def test_second_migration_copies_nothing_and_duplicates_nothing(ledger_path, pg_target, openai_server):
    populate(ledger_path)
    assert cli("ledger", "migrate", "--to", pg_target).exit_code == 0
    before = all_rows(pg_target)
    again = cli("ledger", "migrate", "--to", pg_target, "--json")
    assert again.exit_code == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["copied"] == 0 and summary["verified"] is True and summary["merge_recorded"] is False
    assert all(t["already_present"] == t["source_rows"] for t in summary["tables"])
    assert all_rows(pg_target) == before
    # New runs in the DuckDB ledger later: only they are copied, the chain continues on the target.
    assert cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--quiet").exit_code == 0
    third = json.loads(cli("ledger", "migrate", "--to", pg_target, "--json").stdout)
    assert {t["table"]: t["copied"] for t in third["tables"] if t["copied"]} == {
        "runs": 1, "calls": len(all_rows(str(ledger_path))["calls"]) - len(before["calls"])}
    after, source = all_rows(pg_target), all_rows(str(ledger_path))
    assert all(after[t] == source[t] for t in DATA_TABLES)
    assert verify_chain(pg_target)[1] == []


def test_three_ledgers_consolidate_into_a_used_target(ledger_path, pg_target, openai_server, tmp_path):
    """Two machines' DuckDB ledgers and a PostgreSQL ledger other writers already use, merged into one: exact
    totals, every chain verified, re-running a no-op; then the shared ledger copied back to DuckDB."""
    from genops_cli.ledger.records import record_run
    from genops_cli.ledger.store import open_ledger

    populate(ledger_path)  # machine A
    machine_b = tmp_path / "b.duckdb"
    for customer in ("gamma", "delta"):
        assert cli("--ledger", str(machine_b), "run", sample("chain"), "--inputs", sample("chain", "inputs.json"),
                   "--customer", customer, "--quiet").exit_code == 0
    assert record_run(open_ledger(pg_target), make_run("elsewhere")).ok  # another writer used the target first
    expected = sum((aggregate_total(loc) for loc in (str(ledger_path), str(machine_b), pg_target)), Decimal(0))
    expected_runs = sum(len(all_rows(loc)["runs"]) for loc in (str(ledger_path), str(machine_b), pg_target))
    for source in (str(ledger_path), str(machine_b)):
        result = cli("ledger", "migrate", "--from", source, "--to", pg_target, "--json")
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["verified"] is True
    assert aggregate_total(pg_target) == expected
    assert len(all_rows(pg_target)["runs"]) == expected_runs
    assert verify_chain(pg_target)[1] == []
    before = all_rows(pg_target)
    for source in (str(ledger_path), str(machine_b)):
        again = json.loads(cli("ledger", "migrate", "--from", source, "--to", pg_target, "--json").stdout)
        assert again["copied"] == 0 and again["verified"] is True
    assert all_rows(pg_target) == before
    # PostgreSQL -> DuckDB: the consolidated ledger, with the imported chains, copied for offline analysis.
    offline = tmp_path / "offline.duckdb"
    back = cli("ledger", "migrate", "--from", pg_target, "--to", str(offline), "--json")
    assert back.exit_code == 0, back.stderr
    assert aggregate_total(str(offline)) == expected
    assert verify_chain(str(offline))[1] == []
    assert len(all_rows(str(offline))["audit_imports"]) > len(before["audit_imports"])  # nested chains travel


def test_tampering_with_an_imported_chain_or_a_merged_run_is_detected(ledger_path, pg_target, openai_server):
    from genops_cli.ledger.store import open_ledger

    populate(ledger_path)
    assert cli("ledger", "migrate", "--to", pg_target).exit_code == 0
    with open_ledger(pg_target).write() as tx:
        tx.execute("DELETE FROM audit_imports WHERE seq = (SELECT MAX(seq) FROM audit_imports)")
    problems = verify_chain(pg_target)[1]
    assert any(p.table == "audit_imports" for p in problems)
    result = cli("--ledger", pg_target, "compliance", "verify")
    assert result.exit_code != 0


def test_the_same_questions_get_the_same_answers_on_both_backends(ledger_path, pg_target, openai_server):
    """Raw aggregates (team x tenant x model: calls, Decimal cost, tokens, first call) are equal after
    migration; when `genops analyze` / `genops report` exist, their JSON must be equal too."""
    populate(ledger_path)
    assert cli("ledger", "migrate", "--to", pg_target).exit_code == 0
    duck, pg = aggregates(str(ledger_path)), aggregates(pg_target)
    assert duck == pg and len(duck) >= 2
    assert all(isinstance(row[4], Decimal) for row in pg)
    from genops_cli.cli.app import app

    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    checks = []
    if "analyze" in commands:
        today = datetime.now(timezone.utc).date()
        window = ["--from", str(today - timedelta(days=1)), "--to", str(today + timedelta(days=1))]
        for by in ("team", "model", "customer", "component"):
            checks.append(["analyze", "--by", by, "--format", "json", "--performance", *window])
    if "report" in commands:
        checks += [["report", "--tenant", tenant, "--format", "json"] for tenant in ("acme", "beta")]
    for args in checks:
        on_duck = cli("--ledger", str(ledger_path), *args)
        on_pg = cli("--ledger", pg_target, *args)
        assert on_duck.exit_code == 0, on_duck.stderr
        assert on_pg.exit_code == 0, on_pg.stderr
        assert normalize(json.loads(on_pg.stdout)) == normalize(json.loads(on_duck.stdout)), args


def normalize(doc):
    """Drop what names the ledger itself (its location/backend) and generation timestamps; keep every number."""
    if isinstance(doc, dict):
        return {k: normalize(v) for k, v in doc.items() if k not in {"ledger", "backend", "generated_at",
                                                                       "location"}}
    if isinstance(doc, list):
        return [normalize(v) for v in doc]
    return doc


def test_missing_source_and_self_target_are_usage_errors(tmp_path, ledger_path):
    missing = cli("ledger", "migrate", "--from", str(tmp_path / "none.duckdb"), "--to", url_with(PG_URL or ""))
    assert missing.exit_code == 2 and "--from" in missing.stderr and len(missing.stderr.splitlines()) == 1
    assert cli("budget", "set", "team:ml", "--daily", "1").exit_code == 0
    itself = cli("ledger", "migrate", "--to", str(ledger_path))
    assert itself.exit_code == 2 and itself.stderr.startswith("error: --to")
