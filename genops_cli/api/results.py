"""Run and component results of the Python API (money is Decimal, exact to the ledger's 10 places)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from genops_cli.models import CallRecord, RunRecord, quantize_money, utcnow
from genops_cli.tracking.agents import AgentOutcome, agent_outcomes
from genops_cli.tracking.usage import UsageSourceShare, usage_source_share

# -- results ------------------------------------------------------------------------------------------------

@dataclass
class HaystackComponentResult:
    """One recorded call of a component (a component visit, an agent LLM step, a tool call)."""

    component_name: str
    component_type: str
    execution_time_seconds: float
    cost: Decimal
    provider_name: str
    model_name: str | None = None
    tokens_used: int | None = None
    success: bool = True
    error_message: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    priced: bool = True

    @classmethod
    def from_call(cls, call: CallRecord) -> HaystackComponentResult:
        return cls(
            component_name=call.component_name,
            component_type=call.component_type,
            execution_time_seconds=call.latency_ms / 1000.0,
            cost=call.cost,
            provider_name=call.provider or "none",
            model_name=call.model,
            tokens_used=call.usage.total_tokens if call.model else None,
            success=call.status == "ok",
            error_message=call.error,
            input_tokens=call.usage.input_tokens,
            output_tokens=call.usage.output_tokens,
            priced=call.priced,
        )


@dataclass
class HaystackPipelineResult:
    """The metrics of one tracked pipeline run (money is Decimal, exact to the ledger's 10 places)."""

    pipeline_name: str
    total_cost: Decimal
    total_components: int
    total_execution_time_seconds: float
    cost_by_provider: dict[str, Decimal]
    cost_by_component: dict[str, Decimal]
    start_time: datetime
    end_time: datetime
    success: bool = True
    error_message: str | None = None
    pipeline_id: str = ""
    component_results: list[HaystackComponentResult] = field(default_factory=list)
    custom_metrics: dict[str, Any] = field(default_factory=dict)
    estimated_cost: Decimal | None = None
    policy_result: str = "ALLOWED"
    policy_reason_code: str | None = None
    unpriced_models: list[str] = field(default_factory=list)
    #: Each agent run (nested agents too): steps, cap, exit reason (final_answer, max_agent_steps, ...), cost.
    agents: list[AgentOutcome] = field(default_factory=list)
    #: How much of the cost rests on usage genops estimated (a stream without usage), not measured.
    usage_sources: UsageSourceShare = field(default_factory=UsageSourceShare)

    @property
    def agent_hit_max_steps(self) -> bool:
        """An agent of this run stopped at max_agent_steps before an answer."""
        return any(a.hit_cap for a in self.agents)

    @classmethod
    def from_run(cls, run: RunRecord, calls: list[CallRecord] | None = None,
                 custom_metrics: dict[str, Any] | None = None,
                 estimated_cost: Decimal | None = None) -> HaystackPipelineResult:
        calls = run.calls if calls is None else calls
        by_provider: dict[str, Decimal] = {}
        by_component: dict[str, Decimal] = {}
        for call in calls:
            if call.model:
                key = call.provider or "unknown"
                by_provider[key] = by_provider.get(key, Decimal(0)) + call.cost
            by_component[call.component_name] = by_component.get(call.component_name, Decimal(0)) + call.cost
        end = run.ended_at or utcnow()
        total = quantize_money(sum((c.cost for c in calls), Decimal(0)))
        return cls(
            pipeline_name=run.pipeline_name,
            total_cost=total,
            total_components=len({c.component_name for c in calls}),
            total_execution_time_seconds=max(0.0, (end - run.started_at).total_seconds()),
            cost_by_provider={k: quantize_money(v) for k, v in by_provider.items()},
            cost_by_component={k: quantize_money(v) for k, v in by_component.items()},
            start_time=run.started_at,
            end_time=end,
            success=run.status == "ok",
            error_message=run.error,
            pipeline_id=run.run_id,
            component_results=[HaystackComponentResult.from_call(c) for c in calls],
            custom_metrics=dict(custom_metrics or {}),
            estimated_cost=estimated_cost,
            policy_result=run.policy.result,
            policy_reason_code=run.policy.reason_code,
            unpriced_models=sorted({f"{c.provider or '?'}:{c.model}" for c in calls if c.model and not c.priced}),
            agents=agent_outcomes(calls),
            usage_sources=usage_source_share(calls),
        )


def metric_text(value: Any) -> str:
    """A custom metric as its run tag: booleans, numbers and None in JSON (`true`, `0.5`, `null`) so that
    they read back as the same values; anything else as its text."""
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return str(value)


def metric_value(text: str) -> Any:
    """The inverse of `metric_text` for metrics read back from the ledger."""
    if text in ("true", "false", "null"):
        return json.loads(text)
    try:
        number = json.loads(text)
    except ValueError:
        return text
    return number if isinstance(number, (int, float)) else text
