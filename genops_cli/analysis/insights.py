"""RAG and agent insights for one pipeline, from the ledger only (library functions; `genops analyze
--pipeline NAME --insights` renders them).

    from genops_cli.analysis.insights import get_rag_insights, get_agent_insights
    rag = get_rag_insights(ledger, "rag", period)       # retrieval vs generation vs end-to-end latency, documents
    agent = get_agent_insights(ledger, "agent", period)  # steps per run, tools with success rates, cost per step

Both return plain dicts (money as `Decimal`, ratios as rounded floats) so callers can serialize them as they
like; `None` marks a figure with no data behind it. `ledger` may be a Ledger or any object with `.ledger`.
"""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from genops_cli.analysis.analyze import ZERO, ratio
from genops_cli.analysis.dialect import percentile
from genops_cli.analysis.filters import Filters, build_where
from genops_cli.analysis.periods import Period
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import quantize_money


def as_ledger(source: Any) -> Ledger:
    """A Ledger, or the `.ledger` of an adapter/engine object."""
    if isinstance(source, Ledger):
        return source
    ledger = getattr(source, "ledger", None)
    if isinstance(ledger, Ledger):
        return ledger
    raise TypeError(f"expected a genops Ledger or an object with a .ledger attribute, got {type(source).__name__}")


def _r(value: Any, places: int = 3) -> float | None:
    return round(float(value), places) if value is not None else None


def pipeline_where(pipeline: str, period: Period | None, filters: Filters | None) -> tuple[str, list[Any]]:
    """WHERE text and parameters for the runs of `pipeline` in `period` matching the other `filters`."""
    return build_where(replace(filters or Filters(), pipeline=pipeline), period, "r")


def _latency(tx: Tx, where: str, params: list[Any], condition: str) -> dict[str, Any]:
    b = tx.backend
    count, avg, p50, p95 = tx.query(
        f"""SELECT COUNT(*), AVG(c.latency_ms), {percentile(b, 0.5, 'c.latency_ms')},
                   {percentile(b, 0.95, 'c.latency_ms')}
            FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {where} AND {condition}""",
        params,
    )[0]
    return {"calls": int(count or 0), "avg_ms": _r(avg), "p50_ms": _r(p50), "p95_ms": _r(p95)}


def run_totals(tx: Tx, where: str, params: list[Any]) -> dict[str, Any]:
    """Runs, cost and end-to-end latency (sum of each run's top-level component visits)."""
    b = tx.backend
    runs, cost = tx.query(f"SELECT COUNT(*), SUM(r.total_cost) FROM runs r WHERE {where}", params)[0]
    p50, p95, avg = tx.query(
        f"""SELECT {percentile(b, 0.5, 'rt.ms')}, {percentile(b, 0.95, 'rt.ms')}, AVG(rt.ms) FROM (
                SELECT c.run_id, SUM(c.latency_ms) AS ms FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.parent_call_id IS NULL GROUP BY c.run_id) rt""",
        params,
    )[0]
    runs = int(runs or 0)
    cost = cost if cost is not None else ZERO
    return {
        "runs": runs,
        "total_cost": cost,
        "cost_per_run": quantize_money(cost / runs) if runs else None,
        "end_to_end": {"avg_ms": _r(avg), "p50_ms": _r(p50), "p95_ms": _r(p95)},
    }


def context_tokens_per_document(tx: Tx, where: str, params: list[Any]) -> dict[str, Any] | None:
    """How many generator input tokens one retrieved document adds, by least squares over runs.

    Per run: x = documents retrieved, y = input tokens of the run's generation calls. Needs at least 3 runs with
    at least 2 different document counts; otherwise there is no data to tell context from prompt (None).
    """
    rows = tx.query(
        f"""SELECT c.run_id,
                   SUM(CASE WHEN c.documents_retrieved IS NOT NULL THEN c.documents_retrieved ELSE 0 END),
                   SUM(CASE WHEN c.model IS NOT NULL AND c.span_kind <> 'embedding' THEN c.input_tokens ELSE 0 END),
                   SUM(CASE WHEN c.documents_retrieved IS NOT NULL THEN 1 ELSE 0 END)
            FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {where}
            GROUP BY c.run_id""",
        params,
    )
    points = [(int(d), int(t)) for _run, d, t, retrievals in rows if retrievals and t]
    if len(points) < 3 or len({d for d, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(d for d, _ in points) / n
    mean_y = sum(t for _, t in points) / n
    sxx = sum((d - mean_x) ** 2 for d, _ in points)
    slope = sum((d - mean_x) * (t - mean_y) for d, t in points) / sxx
    if slope <= 0:
        return None
    return {
        "runs": n,
        "tokens_per_document": round(slope, 1),
        "avg_documents": round(mean_x, 3),
        "avg_generation_input_tokens": round(mean_y, 1),
        # Share of generation input tokens explained by retrieved documents, at the average document count.
        "context_share": round(min(1.0, slope * mean_x / mean_y), 4) if mean_y else None,
    }


def get_rag_insights(ledger: Any, pipeline: str, period: Period | None = None,
                     filters: Filters | None = None) -> dict[str, Any]:
    """Retrieval, generation and end-to-end figures for a RAG pipeline's recorded runs."""
    where, params = pipeline_where(pipeline, period, filters)
    with as_ledger(ledger).read() as tx:
        totals = run_totals(tx, where, params)
        calls, docs, runs_with = tx.query(
            f"""SELECT COUNT(*), SUM(c.documents_retrieved), COUNT(DISTINCT c.run_id)
                FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.documents_retrieved IS NOT NULL""",
            params,
        )[0]
        gen_cost, gen_in, gen_out = tx.query(
            f"""SELECT SUM(c.cost), SUM(c.input_tokens), SUM(c.output_tokens)
                FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.model IS NOT NULL AND c.span_kind <> 'embedding'""",
            params,
        )[0]
        emb_cost = tx.scalar(
            f"""SELECT SUM(c.cost) FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.span_kind = 'embedding'""",
            params,
        )
        retrieval = _latency(tx, where, params, "c.documents_retrieved IS NOT NULL AND c.parent_call_id IS NULL")
        generation = _latency(tx, where, params,
                              "c.model IS NOT NULL AND c.span_kind <> 'embedding' AND c.parent_call_id IS NULL")
        embedding = _latency(tx, where, params, "c.span_kind = 'embedding'")
        context = context_tokens_per_document(tx, where, params)
    docs = int(docs or 0)
    gen_calls = generation["calls"]
    return {
        "pipeline": pipeline,
        "period": period.to_json() if period else None,
        **totals,
        "documents_retrieved": {
            "total": docs,
            "retrievals": int(calls or 0),
            "per_retrieval": round(docs / int(calls), 3) if calls else None,
            "per_run": round(docs / int(runs_with), 3) if runs_with else None,
        },
        "retrieval": retrieval,
        "embedding": {**embedding, "cost": emb_cost if emb_cost is not None else ZERO},
        "generation": {
            **generation,
            "cost": gen_cost if gen_cost is not None else ZERO,
            "avg_input_tokens": round(int(gen_in or 0) / gen_calls, 1) if gen_calls else None,
            "avg_output_tokens": round(int(gen_out or 0) / gen_calls, 1) if gen_calls else None,
        },
        "context": context,
    }


def get_agent_insights(ledger: Any, pipeline: str, period: Period | None = None,
                       filters: Filters | None = None) -> dict[str, Any]:
    """Agent steps (LLM decisions) per run, tools used with counts and success rates, cost per step."""
    where, params = pipeline_where(pipeline, period, filters)
    with as_ledger(ledger).read() as tx:
        totals = run_totals(tx, where, params)
        agents = tx.query(
            f"""SELECT s.component_name, COUNT(*), SUM(s.steps), MAX(s.steps), SUM(s.cost), SUM(s.tools)
                FROM (SELECT c.component_name, c.run_id,
                             SUM(CASE WHEN c.span_kind = 'agent_llm' THEN 1 ELSE 0 END) AS steps,
                             SUM(CASE WHEN c.span_kind = 'agent_llm' THEN c.cost ELSE 0 END) AS cost,
                             SUM(CASE WHEN c.span_kind = 'tool' THEN 1 ELSE 0 END) AS tools
                      FROM calls c JOIN runs r ON r.run_id = c.run_id
                      WHERE {where} AND c.span_kind IN ('agent_llm', 'tool')
                      GROUP BY c.component_name, c.run_id) s
                GROUP BY s.component_name ORDER BY s.component_name""",
            params,
        )
        tools = tx.query(
            f"""SELECT c.component_name, COALESCE(c.tool_name, '(unnamed)'), COUNT(*),
                       SUM(CASE WHEN c.status = 'ok' THEN 1 ELSE 0 END), AVG(c.latency_ms)
                FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.span_kind = 'tool'
                GROUP BY c.component_name, COALESCE(c.tool_name, '(unnamed)')
                ORDER BY COUNT(*) DESC, 2""",
            params,
        )
        steps = tx.query(
            f"""SELECT c.agent_step, COUNT(*), SUM(c.cost), AVG(c.input_tokens), AVG(c.output_tokens)
                FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.span_kind = 'agent_llm'
                GROUP BY c.agent_step ORDER BY c.agent_step""",
            params,
        )
        llm_calls = tx.scalar(
            f"""SELECT COUNT(*) FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.model IS NOT NULL AND c.span_kind <> 'embedding'""",
            params,
        )
    runs = totals["runs"]
    return {
        "pipeline": pipeline,
        "period": period.to_json() if period else None,
        **totals,
        "llm_calls_per_run": round(int(llm_calls or 0) / runs, 3) if runs else None,
        "agents": [
            {
                "component": name,
                "runs": int(n),
                "steps": int(total_steps or 0),
                "steps_per_run": round(int(total_steps or 0) / int(n), 3),
                "max_steps": int(max_steps or 0),
                "tool_calls_per_run": round(int(tool_calls or 0) / int(n), 3),
                "cost": cost if cost is not None else ZERO,
                "cost_per_step": quantize_money(cost / int(total_steps)) if total_steps else None,
            }
            for name, n, total_steps, max_steps, cost, tool_calls in agents
        ],
        "tools": [
            {"component": comp, "tool": tool, "calls": int(n), "ok": int(ok or 0),
             "success_rate": ratio(int(ok or 0), int(n)), "avg_latency_ms": _r(avg)}
            for comp, tool, n, ok, avg in tools
        ],
        "steps": [
            {"step": step, "calls": int(n), "cost": cost if cost is not None else Decimal(0),
             "avg_input_tokens": _r(avg_in, 1), "avg_output_tokens": _r(avg_out, 1)}
            for step, n, cost, avg_in, avg_out in steps
        ],
    }
