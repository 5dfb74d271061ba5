"""The read commands give the same answer on DuckDB and PostgreSQL for the same ledger rows: analyze by every
dimension (whole-ledger and narrow filters take different query plans), recommend, tenant bills, the compliance
report and budget status; money exact to the 18th place."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from genops_cli.analysis import billing
from genops_cli.analysis.analyze import DIMENSIONS, analyze_costs
from genops_cli.analysis.compliance_report import compliance_report
from genops_cli.analysis.filters import Filters
from genops_cli.analysis.periods import Period
from genops_cli.analysis.recommend import recommend
from genops_cli.config import Settings
from genops_cli.ledger.store import Ledger, open_ledger
from genops_cli.policy.budgets import set_budget, status

PG_URL = os.environ.get("GENOPS_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not PG_URL, reason="GENOPS_TEST_POSTGRES_URL is not set")

NOW = datetime(2026, 5, 20, 12, 0)
WINDOW = Period(datetime(2026, 5, 1), NOW, "May")
MINI = '{"input_mtok": "0.15", "output_mtok": "0.6"}'

RUNS = [  # run_id, pipeline, started, status, team, customer, simulated
    ("r1", "rag", datetime(2026, 5, 2, 9), "ok", "ml", "acme", False),
    ("r2", "rag", datetime(2026, 5, 2, 23, 59), "error", "ml", "globex", False),
    ("r3", "agent", datetime(2026, 5, 10, 1), "ok", "data", "acme", False),
    ("r4", "agent", datetime(2026, 5, 11, 1), "ok", "data", None, False),      # no calls at all
    ("r5", "rag", datetime(2026, 5, 12, 1), "ok", "ml", "acme", True),        # simulated
    ("r6", "rag", datetime(2026, 4, 30, 23), "ok", "ml", "acme", False),      # before the window
    ("r7", "chain", datetime(2026, 5, 19, 8), "ok", None, "acme", False),
]
CALLS = [  # call_id, run_id, parent, kind, component, provider, model, in, out, source, cost, priced, ms, status
    ("c1", "r1", None, "component", "retriever", None, None, 0, 0, "missing", "0", True, 12.5, "ok"),
    ("c2", "r1", None, "component", "llm", "openai", "gpt-4o-mini", 1200, 300, "reported",
     "0.000000360000000001", True, 800.25, "ok"),
    ("c3", "r1", None, "component", "llm", "openai", "gpt-4o-mini", 1100, 50, "estimated", "0.000195", True, 400, "ok"),
    ("c4", "r2", None, "component", "llm", "openai", "gpt-4o-mini", 900, 0, "reported", "0.000135", True, 30,
     "error"),
    ("c5", "r2", None, "component", "judge", "acme-ai", "mystery-1", 50, 5, "reported", "0", False, 10, "ok"),
    ("c6", "r3", None, "component", "agent", None, None, 0, 0, "missing", "0", True, 2000, "ok"),
    ("c7", "r3", "c6", "agent_llm", "agent", "openai", "gpt-4o-mini", 3000, 700, "reported", "0.00087", True,
     900, "ok"),
    ("c8", "r3", None, "embedding", "embedder", "openai", "text-embedding-3-small", 400, 0, "reported",
     "0.000008", True, 20, "ok"),
    ("c9", "r5", None, "component", "llm", "openai", "gpt-4o-mini", 5000, 5000, "reported", "0.00375", True, 1, "ok"),
    ("c10", "r6", None, "component", "llm", "openai", "gpt-4o-mini", 100, 100, "reported", "0.000075", True, 1,
     "ok"),
    ("c11", "r7", None, "component", "llm", "openai", "gpt-4o-mini", 2000, 10, "missing", "0.000000000000000003",
     True, 55.5, "ok"),
]


def _fill(led: Ledger) -> None:
    with led.write() as tx:
        for run_id, pipeline, started, status_, team, customer, simulated in RUNS:
            total = sum((Decimal(c[10]) for c in CALLS if c[1] == run_id), Decimal(0))
            tx.execute("INSERT INTO runs (run_id, pipeline_name, pipeline_hash, started_at, ended_at, status, team, "
                       "customer_id, simulated, total_cost, environment, project, data_classification, "
                       "policy_result, genops_version) VALUES (?, ?, 'h', ?, ?, ?, ?, ?, ?, ?, 'prod', 'p', "
                       "'internal', 'ALLOWED', 'test')",
                       [run_id, pipeline, started, started, status_, team, customer, simulated, total])
        for seq, (call_id, run_id, parent, kind, component, provider, model, inp, out, source, cost, priced, ms,
                  status_) in enumerate(CALLS):
            started = next(r[2] for r in RUNS if r[0] == run_id)
            tx.execute("INSERT INTO calls (call_id, run_id, seq, parent_call_id, span_kind, component_name, "
                       "component_type, provider, model, input_tokens, output_tokens, usage_source, unit_prices, "
                       "cost, list_cost, priced, started_at, latency_ms, status, error) "
                       "VALUES (?, ?, ?, ?, ?, ?, 'T', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       [call_id, run_id, seq, parent, kind, component, provider, model, inp, out, source,
                        MINI if model == "gpt-4o-mini" else None, Decimal(cost), Decimal(cost), priced, started,
                        ms, status_, "HTTP 429 rate limit" if status_ == "error" else None])


@pytest.fixture
def ledgers(tmp_path: Path) -> Iterator[tuple[Ledger, Ledger]]:
    import psycopg

    duck = open_ledger(str(tmp_path / "ledger.duckdb"))
    schema = f"genops_test_backends_{uuid.uuid4().hex[:10]}"
    pg = open_ledger(f"{PG_URL}{'&' if '?' in (PG_URL or '') else '?'}schema={schema}")
    try:
        for led in (duck, pg):
            _fill(led)
            set_budget(led, Settings(), "customer:acme", monthly="1", now=NOW.replace(tzinfo=timezone.utc))
        yield duck, pg
    finally:
        pg.close()
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _surfaces(led: Ledger) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for by in DIMENSIONS:
        out[by] = analyze_costs(led, WINDOW, Filters(), by=by).to_json()
        out[f"{by}/narrow"] = analyze_costs(led, WINDOW, Filters(team="ml"), by=by).to_json()
    out["tag"] = analyze_costs(led, WINDOW, Filters(include_simulated=True), by="tag:env").to_json()
    out["recommend"] = recommend(led, WINDOW, Filters()).to_json()
    month = billing.month_period(2026, 5)
    with led.read() as tx:
        out["bills"] = [b.to_json() for b in billing.tenant_bills(tx, month)]
        out["compliance"] = compliance_report(tx, period=WINDOW, verify_audit=False).to_json()
    out["budgets"] = [s.to_json() for s in status(led, Settings(), now=NOW.replace(tzinfo=timezone.utc))]
    text = json.dumps(out, sort_keys=True, default=str)
    return json.loads(text)


def _drop_clock(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_clock(v) for k, v in value.items() if k not in ("generated_at", "generated")}
    if isinstance(value, list):
        return [_drop_clock(v) for v in value]
    return value


def test_every_read_surface_agrees_across_backends(ledgers: tuple[Ledger, Ledger]) -> None:
    duck, pg = ledgers
    a, b = _drop_clock(_surfaces(duck)), _drop_clock(_surfaces(pg))
    for name in a:
        assert a[name] == b[name], name
    # Exact money: the window's real runs r1, r2, r3, r4, r7 (not the simulated r5 nor r6 before the window).
    expected = Decimal("0.000000360000000001") + Decimal("0.000195") + Decimal("0.000135") + Decimal("0.00087") \
        + Decimal("0.000008") + Decimal("0.000000000000000003")
    assert Decimal(a["team"]["total_cost"]) == expected
    assert Decimal(a["component"]["total_cost"]) == expected
    assert a["team"]["runs"] == 5 and a["team"]["simulated_excluded"] == 1
    ml = {g["key"]: g for g in a["team/narrow"]["groups"]}
    assert Decimal(ml["ml"]["cost"]) == Decimal("0.000330360000000001") and ml["ml"]["runs"] == 2
    sources = a["pipeline"]["usage_sources"]
    assert sources == a["component"]["usage_sources"] == a["model"]["usage_sources"]
    assert (sources["calls"], sources["estimated_calls"], sources["missing_calls"]) == (7, 1, 1)
    assert a["pipeline"]["most_expensive_component"] == a["provider"]["most_expensive_component"] == "agent"
    acme = next(bill for bill in a["bills"] if bill["tenant"] == "acme")
    assert Decimal(acme["total_cost"]) == Decimal("0.001073360000000004")  # r1, r3 (with its embedding), r7
