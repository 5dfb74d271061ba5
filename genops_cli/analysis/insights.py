"""RAG and agent insights for one pipeline, from the ledger only (library functions; `genops analyze
--pipeline NAME --insights` renders them).

    from genops_cli.analysis.insights import get_rag_insights, get_agent_insights
    rag = get_rag_insights(ledger, "rag", period)       # retrieval vs generation vs end-to-end latency, documents
    agent = get_agent_insights(ledger, "agent", period)  # steps per run, tools with success rates, cost per step

Both return plain dicts (money as `Decimal`, ratios as rounded floats) so callers can serialize them as they
like; `None` marks a figure with no data behind it. `ledger` may be a Ledger, an adapter (anything with
`.ledger`, e.g. `adapter.monitor`) or a ledger path/URL; `pipeline` a pipeline name or a run id.

Agents are reported per agent (its component path: an Agent nested in an AgentTool is its own agent, with its own
steps, cost and provider), from each agent run's container record: steps taken, the max_agent_steps cap and the
exit reason. An agent whose runs always stop at max_agent_steps is looping (`verdict`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from genops_cli.analysis.analyze import ZERO, ratio
from genops_cli.analysis.dialect import percentile
from genops_cli.analysis.filters import Filters, build_where
from genops_cli.analysis.periods import Period
from genops_cli.ledger.store import Ledger, Tx
from genops_cli.models import quantize_money


def as_ledger(source: Any, caller: str = "insights") -> Ledger:
    """A Ledger from a Ledger, an adapter (anything with `.ledger`; its queued runs are flushed first) or a
    ledger path/URL. Anything else: TypeError naming what is accepted."""
    from genops_cli.ledger.store import open_ledger, resolve_ledger_location

    if isinstance(source, Ledger):
        return caught_up(source)
    if isinstance(source, str | Path) and str(source).strip():
        return caught_up(open_ledger(resolve_ledger_location(str(source), None)))
    ledger = getattr(source, "ledger", None)
    if isinstance(ledger, Ledger):
        flush = getattr(source, "flush", None)
        if callable(flush):
            flush()  # runs still queued in an adapter's writer belong in the answer
        return ledger
    raise TypeError(f"{caller}: expected a GenOpsHaystackAdapter (or adapter.monitor), a Ledger or a ledger "
                    f"path/URL, got {type(source).__name__}")


def caught_up(ledger: Ledger) -> Ledger:
    """The ledger after ingesting its pending spool files; runs that could not be ingested are named in a
    warning (logger genops), since the answer does not include them."""
    import logging

    from genops_cli.ledger.recorder import catch_up
    from genops_cli.startup import ensure_hooks

    ensure_hooks()  # runs ingested here go through the same hooks as anywhere else
    caught = catch_up(ledger)
    if caught.pending:
        logging.getLogger("genops").warning("genops: %s; this answer does not include them",
                                            caught.message(ledger.spool_dir()))
    return ledger


def _r(value: Any, places: int = 3) -> float | None:
    return round(float(value), places) if value is not None else None


def pipeline_where(pipeline: str, period: Period | None, filters: Filters | None) -> tuple[str, list[Any]]:
    """WHERE text and parameters for the runs of `pipeline` in `period` matching the other `filters`."""
    return build_where(replace(filters or Filters(), pipeline=pipeline), period, "r")


def _scope(ledger: Ledger, pipeline: Any, period: Period | None, filters: Filters | None,
           caller: str) -> tuple[str, list[Any], str]:
    """(where, params, pipeline name) for a pipeline name, or for one run when `pipeline` is a run id (what the
    guide's `context.pipeline_id` holds)."""
    ident = getattr(pipeline, "pipeline_id", pipeline)  # a context or result object works too
    if not isinstance(ident, str) or not ident.strip():
        raise TypeError(f"{caller}: pipeline must be a pipeline name or a run id (context.pipeline_id), got "
                        f"{type(pipeline).__name__}")
    with ledger.read() as tx:
        row = tx.query("SELECT pipeline_name FROM runs WHERE run_id = ?", [ident])
    if row:
        return "r.run_id = ?", [ident], str(row[0][0])
    where, params = pipeline_where(ident, period, filters)
    return where, params, ident


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
    """Retrieval, generation and end-to-end figures for a RAG pipeline's recorded runs (or one run by id)."""
    store = as_ledger(ledger, "get_rag_insights")
    where, params, pipeline = _scope(store, pipeline, period, filters, "get_rag_insights")
    with store.read() as tx:
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


@dataclass
class AgentInstance:
    """One recorded agent run: its container record and its own LLM steps, tool calls and cost."""

    run_id: str
    pipeline: str
    instance: str
    path: str
    name: str
    steps: int
    max_steps: int | None
    exit_reason: str | None
    cost: Decimal
    tool_calls: int
    provider: str | None
    model: str | None


def agent_instances(tx: Tx, where: str, params: list[Any]) -> list[AgentInstance]:
    """Every agent run of the runs matching `where` (alias r), nested agents on their own. Records from before
    agent containers were kept count as one run per agent component and run, with no exit reason."""
    rows = tx.query(
        f"""SELECT a.run_id, r.pipeline_name, a.call_id, COALESCE(a.component_path, a.component_name), a.component_name,
                   a.agent_steps, a.agent_max_steps, a.exit_reason,
                   SUM(CASE WHEN c.span_kind = 'agent_llm' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN c.model IS NOT NULL THEN c.cost ELSE 0 END),
                   SUM(CASE WHEN c.span_kind = 'tool' THEN 1 ELSE 0 END), MAX(c.provider), MAX(c.model)
            FROM calls a JOIN runs r ON r.run_id = a.run_id
            LEFT JOIN calls c ON c.agent_instance = a.call_id AND c.call_id <> a.call_id AND c.run_id = a.run_id
            WHERE {where} AND a.agent_instance = a.call_id
            GROUP BY a.run_id, r.pipeline_name, a.call_id, a.component_path, a.component_name, a.agent_steps,
                     a.agent_max_steps, a.exit_reason""",
        params,
    )
    legacy = tx.query(
        f"""SELECT c.run_id, r.pipeline_name, c.component_name,
                   SUM(CASE WHEN c.span_kind = 'agent_llm' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN c.span_kind = 'agent_llm' THEN c.cost ELSE 0 END),
                   SUM(CASE WHEN c.span_kind = 'tool' THEN 1 ELSE 0 END), MAX(c.provider), MAX(c.model)
            FROM calls c JOIN runs r ON r.run_id = c.run_id
            WHERE {where} AND c.span_kind IN ('agent_llm', 'tool') AND c.agent_instance IS NULL
            GROUP BY c.run_id, r.pipeline_name, c.component_name""",
        params,
    )
    out = [AgentInstance(run_id, pipeline, instance, path, name, int(llm_steps or 0) if steps is None else int(steps),
                         int(cap) if cap is not None else None, reason, cost if cost is not None else ZERO,
                         int(tools or 0), provider, model)
           for run_id, pipeline, instance, path, name, steps, cap, reason, llm_steps, cost, tools, provider, model
           in rows]
    out += [AgentInstance(run_id, pipeline, f"{run_id}:{name}", name, name, int(steps or 0), None, None,
                          cost if cost is not None else ZERO, int(tools or 0), provider, model)
            for run_id, pipeline, name, steps, cost, tools, provider, model in legacy]
    return sorted(out, key=lambda i: (i.path, i.run_id))


def loop_verdict(instances: list[AgentInstance]) -> str:
    """`loops`: every run stopped at max_agent_steps; `sometimes_capped`: some did; `ok`: none did."""
    capped = sum(1 for i in instances if i.exit_reason == "max_agent_steps")
    if capped and capped == len(instances):
        return "loops"
    return "sometimes_capped" if capped else "ok"


def summarize_agent(path: str, instances: list[AgentInstance]) -> dict[str, Any]:
    """Figures for one agent (all its runs): steps per run and their distribution, exit reasons, cost."""
    steps = sorted(i.steps for i in instances)
    total_steps = sum(steps)
    cost = sum((i.cost for i in instances), ZERO)
    caps = sorted({i.max_steps for i in instances if i.max_steps is not None})
    reasons = Counter(i.exit_reason or "unknown" for i in instances)
    n = len(instances)
    return {
        "component": instances[0].name,
        "path": path,
        "provider": instances[0].provider,
        "model": instances[0].model,
        "runs": n,
        "steps": total_steps,
        "steps_per_run": round(total_steps / n, 3),
        "max_steps": steps[-1],
        "median_steps": steps[(n - 1) // 2],
        "step_distribution": {str(k): v for k, v in sorted(Counter(steps).items())},
        "max_agent_steps": caps[-1] if caps else None,
        "exit_reasons": dict(sorted(reasons.items())),
        "hit_max_steps": reasons.get("max_agent_steps", 0),
        "verdict": loop_verdict(instances),
        "tool_calls_per_run": round(sum(i.tool_calls for i in instances) / n, 3),
        "cost": quantize_money(cost),
        "cost_per_step": quantize_money(cost / total_steps) if total_steps else None,
    }


def get_agent_insights(ledger: Any, pipeline: str, period: Period | None = None,
                       filters: Filters | None = None) -> dict[str, Any]:
    """Per agent (nested agents separate): runs, steps per run and their distribution, exit reasons, loop
    verdict, tool calls, cost per step; plus tools with success rates and cost per step number."""
    store = as_ledger(ledger, "get_agent_insights")
    where, params, pipeline = _scope(store, pipeline, period, filters, "get_agent_insights")
    with store.read() as tx:
        totals = run_totals(tx, where, params)
        instances = agent_instances(tx, where, params)
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
            f"""SELECT COALESCE(a.component_path, c.component_name), c.agent_step, COUNT(*), SUM(c.cost),
                       AVG(c.input_tokens), AVG(c.output_tokens)
                FROM calls c JOIN runs r ON r.run_id = c.run_id LEFT JOIN calls a ON a.call_id = c.agent_instance
                WHERE {where} AND c.span_kind = 'agent_llm'
                GROUP BY COALESCE(a.component_path, c.component_name), c.agent_step ORDER BY 1, 2""",
            params,
        )
        llm_calls = tx.scalar(
            f"""SELECT COUNT(*) FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND c.model IS NOT NULL AND c.span_kind <> 'embedding'""",
            params,
        )
    runs = totals["runs"]
    by_path: dict[str, list[AgentInstance]] = {}
    for instance in instances:
        by_path.setdefault(instance.path, []).append(instance)
    return {
        "pipeline": pipeline,
        "period": period.to_json() if period else None,
        **totals,
        "llm_calls_per_run": round(int(llm_calls or 0) / runs, 3) if runs else None,
        "agents": [summarize_agent(path, group) for path, group in sorted(by_path.items())],
        "tools": [
            {"component": comp, "tool": tool, "calls": int(n), "ok": int(ok or 0),
             "success_rate": ratio(int(ok or 0), int(n)), "avg_latency_ms": _r(avg)}
            for comp, tool, n, ok, avg in tools
        ],
        "steps": [
            {"agent": path, "step": step, "calls": int(n), "cost": cost if cost is not None else Decimal(0),
             "avg_input_tokens": _r(avg_in, 1), "avg_output_tokens": _r(avg_out, 1)}
            for path, step, n, cost, avg_in, avg_out in steps
        ],
    }
