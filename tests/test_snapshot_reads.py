"""Reports read one snapshot: on PostgreSQL a bill produced while writers commit never lists N runs and bills the
cost of N-1 (REPEATABLE READ, READ ONLY, DEFERRABLE read transactions)."""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from ledger_factory import at, make_run

from genops_cli.analysis import billing
from genops_cli.ledger.records import insert_runs
from genops_cli.ledger.store import open_ledger

PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="GENOPS_TEST_POSTGRES_URL is not set")


@pytest.fixture
def pg_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    import psycopg

    schema = f"genops_snap_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in (PG_URL or "") else "?"
    url = f"{PG_URL}{sep}schema={schema}"
    monkeypatch.setenv("GENOPS_LEDGER", url)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    yield url
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_reads_are_repeatable_read_only_snapshots(pg_url):
    ledger = open_ledger(pg_url)
    with ledger.read() as tx:
        assert tx.scalar("SHOW transaction_isolation") == "repeatable read"
        assert tx.scalar("SHOW transaction_read_only") == "on"


def test_bills_stay_consistent_while_a_writer_commits(pg_url):
    call = [{"model": "gpt-4o-mini", "input": 1000, "output": 100}]  # 0.00021 a run
    per_run = make_run("acme", at("2026-05-03"), call).total_cost
    writer_ledger = open_ledger(pg_url)
    with writer_ledger.write() as tx:
        insert_runs(tx, [make_run("acme", at("2026-05-03"), call) for _ in range(20)])
    stop = threading.Event()
    written = [0]

    def writer() -> None:
        while not stop.is_set() and written[0] < 2000:
            with writer_ledger.write() as tx:
                insert_runs(tx, [make_run("acme", at("2026-05-03"), call)])
            written[0] += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    reader = open_ledger(pg_url)
    period = billing.parse_billing_period("2026-05")
    try:
        seen = set()
        for _ in range(25):
            with reader.read() as tx:
                bill = billing.tenant_bill(tx, "acme", period)
            # The runs counted and the calls billed come from the same moment.
            assert bill.total_cost == per_run * bill.runs, (bill.runs, bill.total_cost)
            assert sum((line.cost for line in bill.lines), Decimal(0)) == bill.total_cost
            seen.add(bill.runs)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert written[0] > 0 and len(seen) > 1  # the writer really committed between the bills
