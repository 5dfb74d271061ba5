"""The guide's insight functions: `get_rag_insights(adapter.monitor, context.pipeline_id)`,
`get_agent_insights(...)` and `analyze_pipeline_costs(adapter, time_period_hours=24)`, read from the ledger.

    insights = get_rag_insights(rag_adapter.monitor, context.pipeline_id)
    insights["documents_retrieved"], insights["retrieval_latency"]       # int, seconds
    insights = get_agent_insights(agent_adapter, "research-step-1")      # a pipeline name: averages per run

`monitor` is an adapter (or its `.monitor`), a Ledger, or a ledger path/URL. `pipeline_id` is a run id
(`context.pipeline_id`, `result.pipeline_id`) or a pipeline name; with a name the figures are averages over its
recorded real runs (`runs` says how many). An identifier that matches nothing raises LookupError naming the
ledger. Money is Decimal; latencies are seconds as floats. The pipeline-wide analysis with percentiles is
`genops_cli.analysis.insights` (`genops analyze --pipeline NAME --insights`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from genops_cli.analysis.insights import AgentInstance, agent_instances, summarize_agent
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import quantize_money

__all__ = ["analyze_pipeline_costs", "get_agent_insights", "get_rag_insights"]

_LLM = "c.model IS NOT NULL AND c.span_kind <> 'embedding'"
_TOP = "c.parent_call_id IS NULL"


def analyze_pipeline_costs(adapter: Any, time_period_hours: float = 24, **filters: Any) -> dict[str, Any]:
    """Cost by provider, component and model over the last `time_period_hours`, with recommendations (keys:
    total_cost, cost_by_provider, cost_by_component, most_expensive_component, recommendations, ...).

    `adapter` is an adapter (its team's and project's runs, unless `team=` / `project=` say otherwise), a
    Ledger or a ledger path/URL (every run); other filters: pipeline, customer."""
    from genops_cli.analysis.api_functions import analyze_pipeline_costs as analyze

    ledger = _ledger_of(adapter, "analyze_pipeline_costs")
    attribution = getattr(getattr(adapter, "settings", None), "attribution", None)
    if attribution is not None:
        filters.setdefault("team", attribution.team)
        filters.setdefault("project", attribution.project)
    return analyze(ledger, time_period_hours, **filters)


def get_rag_insights(monitor: Any, pipeline_id: Any) -> dict[str, Any]:
    """Retrieval vs generation for one run (or the average run of a pipeline): documents_retrieved,
    retrieval_latency, embedding_latency, generation_latency, end_to_end_latency (seconds), generation
    input/output tokens, total_cost and generation_cost (Decimal)."""
    ledger, run_ids, label = _resolve(monitor, pipeline_id, "get_rag_insights")
    with ledger.read() as tx:
        where, params = _runs_in(run_ids)
        docs, retrievals = _row(tx, f"SELECT SUM(c.documents_retrieved), COUNT(*) FROM calls c WHERE {where} "
                                    "AND c.documents_retrieved IS NOT NULL", params)
        retrieval_ms = _row(tx, f"SELECT SUM(c.latency_ms) FROM calls c WHERE {where} "
                                f"AND c.documents_retrieved IS NOT NULL AND {_TOP}", params)[0]
        embedding_ms = _row(tx, f"SELECT SUM(c.latency_ms) FROM calls c WHERE {where} "
                                "AND c.span_kind = 'embedding'", params)[0]
        gen_ms, gen_calls, gen_in, gen_out, gen_cost = _row(
            tx, f"SELECT SUM(CASE WHEN {_TOP} THEN c.latency_ms END), COUNT(*), SUM(c.input_tokens), "
                f"SUM(c.output_tokens), SUM(c.cost) FROM calls c WHERE {where} AND {_LLM}", params)
        totals = _run_totals(tx, run_ids)
    n = len(run_ids)
    return {
        **label, **totals,
        "documents_retrieved": _per_run(docs, n, integer=True),
        "retrievals": _per_run(retrievals, n, integer=True),
        "retrieval_latency": _seconds(retrieval_ms, n),
        "embedding_latency": _seconds(embedding_ms, n),
        "generation_latency": _seconds(gen_ms, n),
        "generation_calls": _per_run(gen_calls, n, integer=True),
        "generation_input_tokens": _per_run(gen_in, n, integer=True),
        "generation_output_tokens": _per_run(gen_out, n, integer=True),
        "generation_cost": _money(gen_cost, n),
    }


def get_agent_insights(monitor: Any, pipeline_id: Any) -> dict[str, Any]:
    """Decisions and tools for one run (or the average run of a pipeline): decisions_made (LLM calls: an
    Agent's steps or generator calls), agent_steps, tools_used (names, in order of first use), tool_calls,
    tool_success_rate (0.0 when no tool was called), tools (per tool: calls, ok), total_cost,
    cost_per_decision; agents (per agent, a nested Agent on its own: runs, steps, exit_reasons, verdict, cost)
    and agent_hit_max_steps."""
    ledger, run_ids, label = _resolve(monitor, pipeline_id, "get_agent_insights")
    with ledger.read() as tx:
        where, params = _runs_in(run_ids)
        decisions, steps, decision_cost = _row(
            tx, f"SELECT COUNT(*), SUM(CASE WHEN c.span_kind = 'agent_llm' THEN 1 ELSE 0 END), SUM(c.cost) "
                f"FROM calls c WHERE {where} AND {_LLM}", params)
        tools = tx.query(
            f"SELECT COALESCE(c.tool_name, c.component_name), COUNT(*), "
            f"SUM(CASE WHEN c.status = 'ok' THEN 1 ELSE 0 END), MIN(c.seq) "
            f"FROM calls c WHERE {where} AND c.span_kind = 'tool' GROUP BY 1 ORDER BY MIN(c.started_at), 4",
            params)
        totals = _run_totals(tx, run_ids)
        instances = agent_instances(tx, where.replace("c.run_id", "r.run_id", 1), params)
    n = len(run_ids)
    by_agent: dict[str, list[AgentInstance]] = {}
    for instance in instances:
        by_agent.setdefault(instance.path, []).append(instance)
    tool_calls = sum(int(calls) for _, calls, _, _ in tools)
    tool_ok = sum(int(ok or 0) for _, _, ok, _ in tools)
    decisions = int(decisions or 0)
    return {
        **label, **totals,
        "decisions_made": _per_run(decisions, n, integer=True),
        "agent_steps": _per_run(steps, n, integer=True),
        "tools_used": [name for name, _, _, _ in tools],
        "tool_calls": _per_run(tool_calls, n, integer=True),
        "tool_success_rate": round(tool_ok / tool_calls, 4) if tool_calls else 0.0,
        "tools": {name: {"calls": int(calls), "ok": int(ok or 0)} for name, calls, ok, _ in tools},
        "cost_per_decision": quantize_money(Decimal(decision_cost) / decisions) if decisions else None,
        "agents": [summarize_agent(path, group) for path, group in sorted(by_agent.items())],
        "agent_hit_max_steps": any(i.exit_reason == "max_agent_steps" for i in instances),
    }


# -- identifiers ----------------------------------------------------------------------------------------------

def _resolve(monitor: Any, pipeline_id: Any, caller: str) -> tuple[Ledger, list[str], dict[str, Any]]:
    """(ledger, run ids, identifying keys) for a monitor and a run id or pipeline name."""
    ledger = _ledger_of(monitor, caller)
    ident = getattr(pipeline_id, "pipeline_id", pipeline_id)  # a context or result object works too
    if not isinstance(ident, str) or not ident:
        raise TypeError(f"{caller}: pipeline_id must be a run id (context.pipeline_id) or a pipeline name, "
                        f"got {type(pipeline_id).__name__}")
    with ledger.read() as tx:
        row = tx.query("SELECT pipeline_name FROM runs WHERE run_id = ?", [ident])
        if row:
            return ledger, [ident], {"pipeline_id": ident, "pipeline_name": row[0][0], "runs": 1}
        ids = [r[0] for r in tx.query("SELECT run_id FROM runs WHERE pipeline_name = ? AND simulated = FALSE "
                                      "ORDER BY started_at", [ident])]
    if not ids:
        raise LookupError(f"{caller}: no run with id or pipeline name {ident!r} in ledger {ledger.location} "
                          "(runs tracked just now are in it once the adapter has flushed)")
    return ledger, ids, {"pipeline_id": None, "pipeline_name": ident, "runs": len(ids)}


def _ledger_of(monitor: Any, caller: str) -> Ledger:
    from genops_cli.analysis.insights import as_ledger

    return as_ledger(monitor, caller)


# -- figures --------------------------------------------------------------------------------------------------

def _runs_in(run_ids: list[str]) -> tuple[str, list[Any]]:
    return f"c.run_id IN ({', '.join('?' for _ in run_ids)})", list(run_ids)


def _row(tx: Tx, sql: str, params: list[Any]) -> tuple[Any, ...]:
    return tuple(tx.query(sql, params)[0])


def _run_totals(tx: Tx, run_ids: list[str]) -> dict[str, Any]:
    """Cost and wall-clock time (run start to end) per run, averaged over the runs."""
    marks = ", ".join("?" for _ in run_ids)
    rows = tx.query(f"SELECT total_cost, started_at, ended_at FROM runs WHERE run_id IN ({marks})", run_ids)
    cost = sum((Decimal(r[0] or 0) for r in rows), Decimal(0))
    seconds = sum((r[2] - r[1]).total_seconds() for r in rows if r[1] is not None and r[2] is not None)
    n = len(rows) or 1
    return {"total_cost": quantize_money(cost / n), "end_to_end_latency": round(seconds / n, 6)}


def _per_run(value: Any, runs: int, integer: bool = False) -> float | int:
    total = value or 0
    if runs == 1 and integer:
        return int(total)
    return round(float(total) / runs, 3)


def _seconds(milliseconds: Any, runs: int) -> float:
    return round(float(milliseconds or 0) / 1000.0 / runs, 6)


def _money(value: Any, runs: int) -> Decimal:
    return quantize_money(Decimal(value or 0) / runs)
