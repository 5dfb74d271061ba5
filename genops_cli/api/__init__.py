"""The Python API of the Haystack guide, on the same engine as `genops run` (tracer, pricing, preflight, ledger).

Also importable as `genops.providers.haystack` (the guide's import path, mapped in pyproject.toml).

Zero code changes: every `Pipeline.run` in the process is tracked, priced and recorded::

    from genops_cli.api import auto_instrument
    auto_instrument(team="ml", project="rag-chatbot", daily_budget_limit=50, governance_policy="enforcing")
    pipeline.run({...})                      # recorded to the ledger by a background writer

Explicit tracking, with budgets enforced before the run and exact Decimal costs after it::

    adapter = GenOpsHaystackAdapter(team="research", project="qa", daily_budget_limit=200,
                                    governance_policy="enforcing")
    with adapter.track_pipeline("document-qa", customer_id="acme-corp") as ctx:
        result = pipeline.run({...})
    ctx.get_metrics().total_cost             # Decimal, from the priced calls
    adapter.get_cost_summary()               # from the ledger

Modules: results (run and component results), contexts (what track_pipeline/track_session yield), adapter,
instrument (auto_instrument), mixin (component-level tracking), factories (RAG/agent adapters).
"""

from __future__ import annotations

from genops_cli.api.adapter import GenOpsHaystackAdapter, build_settings
from genops_cli.api.contexts import HaystackPipelineContext, HaystackSessionContext
from genops_cli.api.factories import create_agent_adapter, create_rag_adapter
from genops_cli.api.insights import analyze_pipeline_costs, get_agent_insights, get_rag_insights
from genops_cli.api.instrument import auto_instrument, flush, get_auto_adapter, uninstrument
from genops_cli.api.mixin import ComponentExecutionContext, GenOpsComponentMixin
from genops_cli.api.results import HaystackComponentResult, HaystackPipelineResult

__all__ = [
    "ComponentExecutionContext",
    "GenOpsComponentMixin",
    "GenOpsHaystackAdapter",
    "HaystackComponentResult",
    "HaystackPipelineContext",
    "HaystackPipelineResult",
    "HaystackSessionContext",
    "analyze_pipeline_costs",
    "auto_instrument",
    "build_settings",
    "create_agent_adapter",
    "create_rag_adapter",
    "flush",
    "get_agent_insights",
    "get_auto_adapter",
    "get_rag_insights",
    "uninstrument",
]
