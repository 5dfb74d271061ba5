"""`budget status` reads every budget's spend, holds and alerts in a fixed number of grouped statements; each row
must equal what the per-budget functions the admission check uses (`spent_and_reserved`, `active_count`) say,
on DuckDB and PostgreSQL. Also: the v8 read indexes on PostgreSQL (covering scope indexes, active holds)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from genops_cli.config import Settings
from genops_cli.ledger.store import Ledger, open_ledger
from genops_cli.policy import reservations
from genops_cli.policy.budgets import set_budget, spent_and_reserved, status
from genops_cli.policy.periods import window

UTC = timezone.utc
PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")
NOW = datetime(2026, 5, 13, 10, 30, tzinfo=UTC)  # a Wednesday


@pytest.fixture(params=["duckdb", "postgresql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Ledger]:
    if request.param == "duckdb":
        yield open_ledger(str(tmp_path / "ledger.duckdb"))
        return
    if not PG_URL:
        pytest.skip("GENOPS_TEST_POSTGRES_URL is not set")
    import psycopg

    schema = f"genops_test_bstatus_{uuid.uuid4().hex[:10]}"
    led = open_ledger(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}")
    try:
        yield led
    finally:
        led.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _runs(led: Ledger) -> None:
    rows = [  # (cost, started, team, customer, project, simulated)
        ("0.1000000000000001", NOW - timedelta(hours=1), "ml", "acme", "p1", False),
        ("0.25", NOW - timedelta(hours=12), "ml", "acme", None, False),      # yesterday in UTC, today in Tokyo
        ("1.5", NOW - timedelta(days=2), "ml", "globex", "p1", False),      # this week, not today
        ("7", NOW - timedelta(days=20), "data", "acme", "p1", False),       # last month
        ("3", NOW - timedelta(hours=2), "data", None, "p1", False),
        ("100", NOW - timedelta(hours=3), "ml", "acme", "p1", True),         # simulated: never counts
        ("0.000000000000000001", NOW - timedelta(minutes=5), None, "acme", None, False),
    ]
    with led.write() as tx:
        for i, (cost, started, team, customer, project, simulated) in enumerate(rows):
            tx.execute("INSERT INTO runs (run_id, pipeline_name, pipeline_hash, started_at, status, team, "
                       "customer_id, project, total_cost, simulated) VALUES (?, 'rag', 'h', ?, 'ok', ?, ?, ?, ?, ?)",
                       [f"r{i}", started.replace(tzinfo=None), team, customer, project, Decimal(cost), simulated])
        # Holds: two active, one released, one expired, one simulated, one outside every window.
        active = reservations.insert(tx, "h1", ["global", "team:ml", "customer:acme"], Decimal("0.4"),
                                     NOW - timedelta(minutes=1), NOW, 60)
        reservations.insert(tx, "h2", ["global", "team:data"], Decimal("0.05"), NOW - timedelta(minutes=2), NOW, 60)
        released = reservations.insert(tx, "h3", ["global", "team:ml"], Decimal("9"), NOW, NOW, 60)
        tx.execute("UPDATE reservations SET released_at = ? WHERE reservation_id = ?",
                   [NOW.replace(tzinfo=None), released])
        reservations.insert(tx, "h4", ["global", "team:ml"], Decimal("8"), NOW - timedelta(hours=3),
                            NOW - timedelta(hours=3), 60)
        sim = reservations.insert(tx, "h5", ["global"], Decimal("6"), NOW, NOW, 60)
        tx.execute("UPDATE reservations SET simulated = TRUE WHERE reservation_id = ?", [sim])
        reservations.insert(tx, "h6", ["global", "team:ml"], Decimal("5"), NOW - timedelta(days=40), NOW, 60)
        assert active
        alert = ("INSERT INTO alerts (alert_id, scope, period, period_key, threshold, spent, limit_amount, fired_at) "
                 "VALUES (?, 'team:ml', 'daily', ?, ?, ?, 1, ?)")
        tx.execute(alert, ["a1", window("daily", NOW, "Asia/Tokyo").key, 50, Decimal("0.35"), NOW.replace(tzinfo=None)])
        tx.execute(alert, ["a2", "2026-05-01", 80, Decimal(1), NOW.replace(tzinfo=None)])  # another day's


def test_status_equals_the_per_budget_figures(ledger: Ledger) -> None:
    settings = Settings()
    set_budget(ledger, settings, "global", daily="10", monthly="100", now=NOW)
    set_budget(ledger, settings, "team:ml", daily="1", weekly="5", timezone="Asia/Tokyo", now=NOW)
    set_budget(ledger, settings, "team:data", monthly="50", now=NOW)
    set_budget(ledger, settings, "customer:acme", daily="2", monthly="20", timezone="America/New_York", now=NOW)
    set_budget(ledger, settings, "project:p1", weekly="30", now=NOW)
    set_budget(ledger, settings, "customer:nobody", monthly="1", now=NOW)
    _runs(ledger)

    rows = status(ledger, settings, now=NOW)
    assert {(r.budget.scope, r.period) for r in rows} == {
        ("global", "daily"), ("global", "monthly"), ("team:ml", "daily"), ("team:ml", "weekly"),
        ("team:data", "monthly"), ("customer:acme", "daily"), ("customer:acme", "monthly"), ("project:p1", "weekly"),
        ("customer:nobody", "monthly")}
    with ledger.read() as tx:
        for row in rows:
            spent, held = spent_and_reserved(tx, row.budget.scope, row.window.start, row.window.end, NOW)
            count = reservations.active_count(tx, row.budget.scope, row.window.start, row.window.end, NOW)
            assert (row.spent, row.reserved, row.active_reservations) == (spent, held, count), row.budget.scope
    by = {(r.budget.scope, r.period): r for r in rows}
    # Exact money, both backends: the 1e-18 run counts.
    assert by[("global", "daily")].spent == Decimal("3.100000000000000101")
    assert by[("global", "daily")].reserved == Decimal("0.45") and by[("global", "daily")].active_reservations == 2
    assert by[("team:ml", "daily")].spent == Decimal("0.3500000000000001")  # Tokyo's day holds both ml runs
    assert by[("customer:nobody", "monthly")].spent == 0
    assert [a["threshold"] for a in by[("team:ml", "daily")].alerts_fired] == [50]
    assert by[("team:ml", "weekly")].alerts_fired == []
    [one] = status(ledger, settings, "team:data", now=NOW)
    assert (one.spent, one.reserved) == (Decimal("3"), Decimal("0.05"))  # the 7 was spent last month


@pytest.mark.skipif(not PG_URL, reason="GENOPS_TEST_POSTGRES_URL is not set")
def test_postgres_read_indexes(tmp_path: Path) -> None:
    import psycopg

    from genops_cli.ledger.schema import CURRENT_VERSION

    schema = f"genops_test_bidx_{uuid.uuid4().hex[:10]}"
    led = open_ledger(f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}")
    duck = open_ledger(str(tmp_path / "ledger.duckdb"))
    try:
        with led.read() as tx:
            assert tx.scalar("SELECT MAX(version) FROM schema_version") == CURRENT_VERSION
            indexes = dict(tx.query("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = ?", [schema]))
        with duck.read() as tx:
            assert tx.scalar("SELECT MAX(version) FROM schema_version") == CURRENT_VERSION
        assert "INCLUDE (total_cost, simulated)" in indexes["runs_team_started_cost_idx"]
        assert "runs_team_started_idx" not in indexes  # replaced, not doubled
        assert "WHERE (released_at IS NULL)" in indexes["reservations_active_idx"]
        assert "policy_events_run_idx" in indexes
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            conn.execute("SET enable_seqscan = off")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN SELECT COALESCE(SUM(total_cost), 0) FROM runs WHERE NOT simulated AND started_at >= %s "
                "AND started_at < %s AND team = %s", [datetime(2026, 5, 1), datetime(2026, 6, 1), "ml"]))
        assert "Index Only Scan using runs_team_started_cost_idx" in plan, plan
    finally:
        led.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
