"""How a run is shown: the `--json` object (a contract, see README "Output and exit codes") and the rich summary table.

    run_to_output(run)            # dict ready for json.dumps (money as decimal strings)
    render_run_table(run, console)
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from genops_cli.models import CallRecord, RunRecord
from genops_cli.money import money_json, quantity, total_text
from genops_cli.tracking.agents import agent_outcomes
from genops_cli.tracking.usage import usage_source_share


def jsonable_outputs(value: Any) -> Any:
    """Pipeline outputs as JSON: ChatMessage/Document via to_dict, embeddings shortened to their size."""
    if isinstance(value, dict):
        return {str(k): jsonable_outputs(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and all(isinstance(v, float) for v in value):
            return {"embedding_dimensions": len(value)}
        return [jsonable_outputs(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    to_dict = getattr(value, "to_dict", None)
    if callable(to_dict):
        try:
            data = to_dict()
            if isinstance(data, dict):
                data.pop("embedding", None)
                data.pop("sparse_embedding", None)
            return jsonable_outputs(data)
        except Exception:
            pass
    return str(value)


def call_to_output(call: CallRecord) -> dict[str, Any]:
    u = call.usage
    return {
        "name": call.component_name,
        "type": call.component_type,
        "span_kind": call.span_kind,
        "path": call.component_path,
        "agent_instance": call.agent_instance,
        "visit": call.visit,
        "agent_step": call.agent_step,
        "tool_name": call.tool_name,
        "provider": call.provider,
        "model": call.model,
        "input_tokens": u.input_tokens,
        "cache_read_tokens": u.cache_read_tokens,
        "cache_write_tokens": u.cache_write_tokens,
        "output_tokens": u.output_tokens,
        "reasoning_tokens": u.reasoning_tokens,
        "usage_source": u.source,
        "cost": money_json(call.cost) if call.priced or not call.model else None,
        "latency_ms": round(call.latency_ms, 3),
        "status": call.status,
        "error": call.error,
        "priced": call.priced,
        **({"agent_steps": call.agent_steps, "agent_max_steps": call.agent_max_steps,
            "exit_reason": call.exit_reason} if call.agent_instance == call.call_id else {}),
    }


def run_to_output(run: RunRecord, include_outputs: bool = True) -> dict[str, Any]:
    a = run.attribution
    out: dict[str, Any] = {
        "run_id": run.run_id,
        "pipeline": run.pipeline_name,
        "pipeline_hash": run.pipeline_hash,
        "status": run.status,
        "error": run.error,
        "total_cost": money_json(run.total_cost),
        "priced": not run.unpriced_models,
        "currency": run.currency,
        "simulated": run.simulated,
        "started_at": run.started_at.isoformat(),
        "ended_at": run.ended_at.isoformat() if run.ended_at else None,
        "policy": {
            "result": run.policy.result,
            "reason_code": run.policy.reason_code,
            "message": run.policy.message,
            "reserved_cost": money_json(run.policy.reserved_cost),
            "policy_hash": run.policy.policy_hash,
            "override": json.loads(run.policy.override) if run.policy.override else None,
        },
        "attribution": {
            "team": a.team, "project": a.project, "environment": a.environment, "customer_id": a.customer_id,
            "feature": a.feature, "cost_center": a.cost_center, "user_id": a.user_id, "tags": a.tags,
            "data_classification": a.data_classification,
        },
        "unpriced_models": run.unpriced_models,
        # How much of the cost rests on usage genops had to estimate (streams without usage, simulation).
        "usage_sources": usage_source_share(run.calls).to_json(),
        "components": [call_to_output(c) for c in run.calls],
    }
    outcomes = agent_outcomes(run.calls)
    if outcomes:
        out["agents"] = [o.to_json() for o in outcomes]
        out["agent_hit_max_steps"] = any(o.hit_cap for o in outcomes)
    if run.batch_line is not None:
        out["batch_line"] = run.batch_line
    if run.cache_hit:
        out["cache_hit"] = True
        out["saved_cost"] = money_json(run.saved_cost)
    if include_outputs:
        out["outputs"] = jsonable_outputs(run.outputs) if run.outputs is not None else None
    return out


def render_run_table(run: RunRecord, console: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from genops_cli.cli.common import money, styled

    title = f"{run.pipeline_name}  run {run.run_id}" + ("  (simulated)" if run.simulated else "")
    table = Table(title=title, title_justify="left", show_lines=False)
    for column, justify in (("component", "left"), ("kind", "left"), ("provider", "left"), ("model", "left"),
                            ("in", "right"), ("cached", "right"), ("out", "right"), ("cost", "right"),
                            ("latency", "right"), ("status", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    totals = [0, 0, 0]
    for c in run.calls:
        u = c.usage
        totals[0] += u.input_tokens
        totals[1] += u.cache_read_tokens
        totals[2] += u.output_tokens
        # Names are user data: escaped, so a tool shown as "[search]" is text, not rich markup that vanishes.
        name = escape(c.component_name + (f" [{c.tool_name}]" if c.tool_name else ""))
        if c.agent_step is not None:
            name += f" #{c.agent_step}"
        cost = money(c.cost) if c.priced else styled("[red]unpriced[/red]")
        table.add_row(
            styled(name), c.span_kind, c.provider or "", c.model or "",
            quantity(u.input_tokens) if c.model else "", quantity(u.cache_read_tokens) if c.model else "",
            quantity(u.output_tokens) if c.model else "", cost if c.model else "",
            f"{c.latency_ms:.0f} ms", c.status if c.status == "ok" else styled(f"[red]{c.status}[/red]"),
        )
    table.add_section()
    unpriced = sum(1 for c in run.calls if c.model and not c.priced)
    table.add_row("total", "", "", "", quantity(totals[0]), quantity(totals[1]), quantity(totals[2]),
                  total_text(run.total_cost, unpriced), "", run.status)
    console.print(table)
    policy = run.policy
    if policy.result != "ALLOWED" or policy.reason_code:
        console.print(f"policy: {policy.result} {policy.reason_code or ''} {policy.message or ''}".rstrip(),
                      markup=False)
    if run.unpriced_models:
        console.print(f"[yellow]unpriced models (cost not included): {escape(', '.join(run.unpriced_models))}"
                      "[/yellow]", markup=True)
    for outcome in agent_outcomes(run.calls):
        flag = " [yellow](hit max_agent_steps)[/yellow]" if outcome.hit_cap else ""
        console.print(f"agent {escape(str(outcome.path or outcome.name))}: {outcome.steps} step(s) of "
                      f"{outcome.max_steps}, exit {escape(str(outcome.exit_reason or '?'))}{flag}", markup=True)
    if run.error:
        console.print(f"[red]error:[/red] {escape(run.error)}", markup=True)
