"""Python API over the analysis modules, with the keys of the original GenOps Haystack integration.

    from genops_cli.analysis.api_functions import analyze_pipeline_costs
    report = analyze_pipeline_costs(adapter, time_period_hours=24)     # adapter.ledger, or a Ledger
    report["total_cost"], report["cost_by_provider"]["openai"], report["most_expensive_component"]
    for rec in report["recommendations"]:
        rec["component"], rec["recommended_provider"], rec["potential_savings"], rec["reasoning"]

Money is `Decimal` throughout (exact sums of the ledger's stored costs). Simulated runs are excluded.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from genops_cli.analysis.analyze import analyze_costs
from genops_cli.analysis.filters import Filters
from genops_cli.analysis.insights import as_ledger, get_agent_insights, get_rag_insights
from genops_cli.analysis.periods import period_from_hours
from genops_cli.analysis.recommend import recommend

__all__ = ["analyze_pipeline_costs", "get_agent_insights", "get_rag_insights"]


def analyze_pipeline_costs(adapter: Any, time_period_hours: float = 24, pipeline: str | None = None,
                           team: str | None = None, customer: str | None = None,
                           project: str | None = None) -> dict[str, Any]:
    """Cost by provider and component over the last `time_period_hours`, with recommendations.

    Keys: total_cost, currency, period, runs, cost_by_provider, cost_by_component, cost_by_model,
    most_expensive_component, recommendations (component, pipeline, kind, current_provider, current_model,
    current_cost, recommended_provider, recommended_model, recommended_cost, potential_savings, confidence,
    reasoning).
    """
    ledger = as_ledger(adapter)
    period = period_from_hours(time_period_hours)
    filters = Filters(pipeline=pipeline, team=team, customer=customer, project=project)
    by_component = analyze_costs(ledger, period, filters, by="component")
    by_provider = analyze_costs(ledger, period, filters, by="provider")
    by_model = analyze_costs(ledger, period, filters, by="model")
    recs = recommend(ledger, period, filters)
    return {
        "total_cost": by_component.total_cost,
        "currency": by_component.currency,
        "period": period.to_json(),
        "runs": by_component.runs,
        "cost_by_provider": {g.key or "unknown": g.cost for g in by_provider.groups},
        "cost_by_component": {g.key or "unknown": g.cost for g in by_component.groups if g.cost > Decimal(0)},
        "cost_by_model": {g.key or "unknown": g.cost for g in by_model.groups},
        "most_expensive_component": by_component.most_expensive_component,
        "recommendations": [
            {
                "kind": r.kind,
                "component": r.component,
                "pipeline": r.pipeline,
                "current_provider": r.provider,
                "current_model": r.current_model,
                "current_cost": r.current_cost,
                # The candidate is always of the same provider family (MODEL_FAMILIES).
                "recommended_provider": r.provider,
                "recommended_model": r.recommended_model,
                "recommended_cost": r.recommended_cost,
                "potential_savings": r.potential_savings,
                "confidence": r.confidence,
                "reasoning": r.reasoning,
            }
            for r in recs.recommendations
        ],
    }
