"""`genops analyze` and the analysis library on ledgers made by real runs against loopback providers.

Prices (USD per 1M tokens): gpt-4o-mini 0.15 in / 0.60 out / 0.075 cached; gpt-4o 2.50 / 10.00. With the fake
server's fixed usage of 1000 input and 500 output tokens, a gpt-4o-mini call costs 0.00045 and gpt-4o 0.0075.
"""

from __future__ import annotations

import csv
import io
import json
import os
from decimal import Decimal

import pytest
from conftest import cli, json_lines, sample

MINI = Decimal("0.00045")
FOURO = Decimal("0.0075")
RAG_LINES = 8


def _run(*args: str) -> list[dict]:
    result = cli("run", *args, "--json")
    assert result.exit_code in (0, 1), result.stderr
    return json_lines(result.stdout)


@pytest.fixture
def ledger_with_runs(openai_server):
    """8 RAG runs for team ml (gpt-4o-mini), 1 chain run for team ops / customer acme (gpt-4o-mini + gpt-4o),
    and 1 simulated RAG run."""
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    _run(sample("rag"), "--inputs", sample("rag", "batch.jsonl"), "--documents", sample("rag", "corpus.jsonl"),
         "--team", "ml")
    _run(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--team", "ops", "--customer", "acme")
    _run(sample("rag"), "--inputs", sample("rag", "inputs.json"), "--documents", sample("rag", "corpus.jsonl"),
         "--simulate", "--team", "ml")
    return openai_server


def _analyze(*args: str) -> dict:
    result = cli("analyze", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_by_component_exact_totals_shares_and_most_expensive(ledger_with_runs):
    out = _analyze("--by", "component")
    total = RAG_LINES * MINI + MINI + FOURO
    assert Decimal(out["total_cost"]) == total
    assert out["total_cost"] == "0.01155"
    assert (out["runs"], out["calls"]) == (RAG_LINES + 1, RAG_LINES + 2)
    groups = {g["key"]: g for g in out["groups"]}
    assert Decimal(groups["reviewer"]["cost"]) == FOURO
    assert Decimal(groups["llm"]["cost"]) == RAG_LINES * MINI
    assert Decimal(groups["drafter"]["cost"]) == MINI
    assert groups["llm"]["runs"] == RAG_LINES and groups["llm"]["calls"] == RAG_LINES
    assert (groups["llm"]["input_tokens"], groups["llm"]["output_tokens"]) == (RAG_LINES * 1000, RAG_LINES * 500)
    assert groups["reviewer"]["share"] == round(float(FOURO / total), 4)
    assert groups["retriever"]["calls"] == 0 and Decimal(groups["retriever"]["cost"]) == 0
    assert groups["llm"]["failure_rate"] == 0.0
    assert groups["llm"]["latency_p50_ms"] > 0 and groups["llm"]["latency_p95_ms"] >= groups["llm"]["latency_p50_ms"]
    assert [g["key"] for g in out["groups"]][:2] == ["reviewer", "llm"]  # most expensive first
    assert out["most_expensive_component"] == "reviewer"
    assert out["unpriced_calls"] == 0
    assert out["simulated_excluded"] == 1


@pytest.mark.parametrize("by, expected", [
    ("team", {"ml": RAG_LINES * MINI, "ops": MINI + FOURO}),
    ("model", {"gpt-4o-mini": (RAG_LINES + 1) * MINI, "gpt-4o": FOURO}),
    ("provider", {"openai": RAG_LINES * MINI + MINI + FOURO}),
    ("pipeline", {"rag": RAG_LINES * MINI, "chain": MINI + FOURO}),
    ("customer", {None: RAG_LINES * MINI, "acme": MINI + FOURO}),
])
def test_by_dimension_exact(ledger_with_runs, by, expected):
    out = _analyze("--by", by)
    assert {g["key"]: Decimal(g["cost"]) for g in out["groups"]} == expected
    assert Decimal(out["total_cost"]) == sum(expected.values())


def test_by_day_and_run_level_counts(ledger_with_runs):
    out = _analyze("--by", "day")
    [day] = out["groups"]
    assert Decimal(day["cost"]) == RAG_LINES * MINI + MINI + FOURO
    assert (day["runs"], day["calls"]) == (RAG_LINES + 1, RAG_LINES + 2)
    assert day["failure_rate"] == 0.0


def test_filters_and_simulated_runs(ledger_with_runs):
    ml = _analyze("--team", "ml")
    assert Decimal(ml["total_cost"]) == RAG_LINES * MINI
    assert ml["runs"] == RAG_LINES and ml["filters"] == {"team": "ml"}
    chain = _analyze("--pipeline", "chain", "--customer", "acme")
    assert Decimal(chain["total_cost"]) == MINI + FOURO
    with_sim = _analyze("--team", "ml", "--include-simulated")
    assert with_sim["runs"] == RAG_LINES + 1
    assert with_sim["simulated_excluded"] == 0
    assert Decimal(with_sim["total_cost"]) > RAG_LINES * MINI  # the simulated run's (real-price) cost is added
    empty = _analyze("--from", "2000-01-01", "--to", "2000-01-31")
    assert (empty["total_cost"], empty["runs"], empty["groups"]) == ("0", 0, [])
    assert empty["period"]["from"] == "2000-01-01T00:00:00Z" and empty["period"]["to"] == "2000-02-01T00:00:00Z"


def test_csv_and_table_output(ledger_with_runs):
    result = cli("analyze", "--by", "model", "--format", "csv")
    assert result.exit_code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["model"]: Decimal(r["cost"]) for r in rows} == {"gpt-4o-mini": 9 * MINI, "gpt-4o": FOURO}
    table = cli("analyze")
    assert table.exit_code == 0, table.stderr
    assert "reviewer" in table.stdout and "$0.011550" in table.stdout
    assert "cost per day" in table.stdout and "1 simulated run(s) excluded" in table.stdout


@pytest.mark.parametrize("args, message", [
    (["--by", "colour"], "--by 'colour'"),
    (["--since", "7x"], "--since '7x'"),
    (["--since", "7d", "--from", "2026-01-01"], "--since cannot be combined"),
    (["--from", "01/02/2026"], "--from '01/02/2026'"),
    (["--format", "xml"], "--format 'xml'"),
    (["--insights"], "--insights needs --pipeline"),
])
def test_bad_flags_exit_2_with_one_line(args, message):
    result = cli("analyze", *args)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_failure_rate_counts_failed_visits(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    openai_server.failures = [{"status": 400, "message": "bad request"}]
    _run(sample("chain"), "--inputs", sample("chain", "inputs.json"))
    _run(sample("chain"), "--inputs", sample("chain", "inputs.json"))
    groups = {g["key"]: g for g in _analyze()["groups"]}
    assert groups["drafter"]["failure_rate"] == 0.5
    assert groups["reviewer"]["failure_rate"] == 0.0 and groups["reviewer"]["runs"] == 1
    pipelines = {g["key"]: g for g in _analyze("--by", "pipeline")["groups"]}
    assert pipelines["chain"]["failure_rate"] == 0.5 and pipelines["chain"]["runs"] == 2


def test_performance_cache_savings_from_stored_prices(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500, "cached_tokens": 400}
    _run(sample("rag"), "--inputs", sample("rag", "batch.jsonl"), "--documents", sample("rag", "corpus.jsonl"))
    out = _analyze("--performance")
    perf = out["performance"]
    # 400 cached tokens per call x (0.15 - 0.075) per 1M = 0.00003 per call
    assert Decimal(perf["prompt_cache"]["saved"]) == RAG_LINES * Decimal("0.00003")
    [llm] = perf["prompt_cache"]["by_component"]
    assert (llm["component"], llm["token_hit_rate"], llm["call_hit_rate"]) == ("llm", 0.4, 1.0)
    # cost: 600 x 0.15 + 400 x 0.075 + 500 x 0.60 per 1M = 0.00042
    assert Decimal(out["total_cost"]) == RAG_LINES * Decimal("0.00042")
    comps = {c["component"]: c for c in perf["components"]}
    assert set(comps) == {"retriever", "prompt_builder", "llm"}
    assert round(sum(c["share_of_run_time"] for c in comps.values()), 2) == 1.0
    assert all(c["success_rate"] == 1.0 and c["visits"] == RAG_LINES for c in comps.values())
    assert {b["component"] for b in perf["bottlenecks"]} == {c for c, v in comps.items()
                                                             if v["share_of_run_time"] > 0.4}
    assert perf["result_cache"] == {"runs": RAG_LINES, "hits": 0, "hit_rate": 0.0, "saved": "0"}


def test_bottleneck_is_the_slow_component(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    openai_server.latency = 0.2
    _run(sample("rag"), "--inputs", sample("rag", "inputs.json"), "--documents", sample("rag", "corpus.jsonl"))
    perf = _analyze("--performance")["performance"]
    assert [(b["pipeline"], b["component"]) for b in perf["bottlenecks"]] == [("rag", "llm")]


def test_rag_insights(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    _run(sample("rag"), "--inputs", sample("rag", "batch.jsonl"), "--documents", sample("rag", "corpus.jsonl"))
    result = cli("analyze", "--pipeline", "rag", "--insights", "--format", "json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    rag = out["rag"]
    assert out["agent"] is None and rag["runs"] == RAG_LINES
    assert rag["documents_retrieved"] == {"total": 3 * RAG_LINES, "retrievals": RAG_LINES, "per_retrieval": 3.0,
                                          "per_run": 3.0}
    assert rag["generation"]["calls"] == RAG_LINES and Decimal(rag["generation"]["cost"]) == RAG_LINES * MINI
    assert (rag["generation"]["avg_input_tokens"], rag["generation"]["avg_output_tokens"]) == (1000.0, 500.0)
    assert Decimal(rag["cost_per_run"]) == MINI
    assert rag["retrieval"]["calls"] == RAG_LINES and rag["retrieval"]["p50_ms"] is not None
    assert rag["end_to_end"]["p50_ms"] >= rag["generation"]["p50_ms"]
    table = cli("analyze", "--pipeline", "rag", "--insights")
    assert "retrieval: 24 documents in 8 retrievals" in table.stdout


def test_agent_insights_steps_tools_and_cost_per_step(openai_server):
    from fakeproviders import tool_call

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    openai_server.script = [tool_call("search_model_catalog", {"query": "restricted"}),
                            tool_call("search_model_catalog", {"query": "o3-mini"}), "Use the approved ones."]
    _run(sample("agent"), "--inputs", sample("agent", "inputs.json"), "--documents", sample("agent", "corpus.jsonl"))
    from genops_cli.analysis.insights import get_agent_insights
    from genops_cli.ledger.store import open_ledger

    insights = get_agent_insights(open_ledger(os.environ["GENOPS_LEDGER"]), "agent")
    [agent] = insights["agents"]
    assert (agent["component"], agent["runs"], agent["steps"], agent["max_steps"]) == ("agent", 1, 3, 3)
    assert agent["tool_calls_per_run"] == 2.0
    assert agent["cost"] == 3 * MINI and agent["cost_per_step"] == MINI
    assert insights["tools"] == [{"component": "agent", "tool": "search_model_catalog", "calls": 2, "ok": 2,
                                  "success_rate": 1.0, "avg_latency_ms": insights["tools"][0]["avg_latency_ms"]}]
    assert [s["step"] for s in insights["steps"]] == [0, 1, 2]
    assert insights["llm_calls_per_run"] == 3.0


def test_python_api_analyze_pipeline_costs(ledger_with_runs):
    from genops_cli.analysis.api_functions import analyze_pipeline_costs
    from genops_cli.ledger.store import open_ledger

    class Adapter:
        ledger = open_ledger(os.environ["GENOPS_LEDGER"])

    report = analyze_pipeline_costs(Adapter(), time_period_hours=24)
    assert report["total_cost"] == RAG_LINES * MINI + MINI + FOURO
    assert report["cost_by_provider"] == {"openai": RAG_LINES * MINI + MINI + FOURO}
    assert report["cost_by_component"] == {"reviewer": FOURO, "llm": RAG_LINES * MINI, "drafter": MINI}
    assert report["most_expensive_component"] == "reviewer"
    rec = next(r for r in report["recommendations"] if r["component"] == "reviewer" and r["kind"] == "model_switch")
    assert set(rec) >= {"component", "current_provider", "current_cost", "recommended_provider", "recommended_cost",
                        "potential_savings", "reasoning"}
    assert rec["current_provider"] == rec["recommended_provider"] == "openai"
    assert rec["potential_savings"] == rec["current_cost"] - rec["recommended_cost"]
    with pytest.raises(TypeError):
        analyze_pipeline_costs(object())


def test_period_parsing():
    from datetime import datetime

    from genops_cli.analysis.periods import parse_period

    now = datetime(2026, 5, 10, 12, 0)
    assert parse_period("24h", now=now).start == datetime(2026, 5, 9, 12, 0)
    assert parse_period("2w", now=now).start == datetime(2026, 4, 26, 12, 0)
    p = parse_period(from_="2026-05-01", to="2026-05-03", now=now)
    assert (p.start, p.end) == (datetime(2026, 5, 1), datetime(2026, 5, 4))
    assert parse_period(from_="2026-05-01T10:00:00+02:00", now=now).start == datetime(2026, 5, 1, 8, 0)
    assert parse_period(now=now, default=None).start is None


def test_percentile_dialect():
    from genops_cli.analysis.dialect import percentile

    assert percentile("duckdb", 0.95, "x") == "quantile_cont(x, 0.95)"
    assert percentile("postgresql", 0.5, "x") == "percentile_cont(0.5) WITHIN GROUP (ORDER BY x)"


@pytest.mark.postgres
@pytest.mark.skipif(not os.environ.get("GENOPS_TEST_POSTGRES_URL"), reason="GENOPS_TEST_POSTGRES_URL is not set")
def test_same_figures_on_postgresql(openai_server, monkeypatch):
    """Every analysis query runs unchanged on PostgreSQL (percentiles through the dialect helper)."""
    import uuid

    import psycopg
    from fakeproviders import tool_call

    base = os.environ["GENOPS_TEST_POSTGRES_URL"]
    schema = f"genops_test_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("GENOPS_LEDGER", f"{base}{'&' if '?' in base else '?'}schema={schema}")
    try:
        openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
        _run(sample("rag"), "--inputs", sample("rag", "batch.jsonl"), "--documents", sample("rag", "corpus.jsonl"),
             "--team", "ml")
        _run(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--team", "ops")
        openai_server.script = [tool_call("search_model_catalog", {"query": "x"}), "done"]
        _run(sample("agent"), "--inputs", sample("agent", "inputs.json"),
             "--documents", sample("agent", "corpus.jsonl"))
        total = RAG_LINES * MINI + MINI + FOURO + 2 * MINI
        for by in ("component", "model", "team", "day", "pipeline"):
            out = _analyze("--by", by, "--performance")
            assert Decimal(out["total_cost"]) == total, by
        teams = {g["key"]: Decimal(g["cost"]) for g in _analyze("--by", "team")["groups"]}
        assert teams == {"ml": RAG_LINES * MINI, "ops": MINI + FOURO, None: 2 * MINI}
        for pipeline in ("rag", "agent"):
            result = cli("analyze", "--pipeline", pipeline, "--insights", "--format", "json")
            assert result.exit_code == 0, result.stderr
        agent = json.loads(result.stdout)["agent"]
        assert agent["tools"][0]["calls"] == 1 and agent["agents"][0]["steps"] == 2
        recs = json.loads(cli("recommend", "--format", "json").stdout)["recommendations"]
        assert any(r["kind"] == "model_switch" and r["component"] == "reviewer" for r in recs)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
