"""genops: governance runner and analyzer for Haystack pipelines (CLI `genops`, and this Python API).

    from genops_cli import auto_instrument
    auto_instrument(team="ml", project="search")          # every Pipeline.run is tracked and recorded

    from genops_cli import GenOpsHaystackAdapter
    adapter = GenOpsHaystackAdapter(team="ml", project="qa", daily_budget_limit=50, governance_policy="enforcing")
    with adapter.track_pipeline("qa", customer_id="acme") as ctx:
        pipeline.run({...})
    ctx.get_metrics().total_cost

Names are resolved lazily (module `__getattr__`), so `import genops_cli` and `genops --help` stay cheap: Haystack
and DuckDB load only when an API object is first used.
"""

from __future__ import annotations

import importlib
from typing import Any

#: public name -> module that defines it
_EXPORTS = {
    "auto_instrument": "genops_cli.api",
    "uninstrument": "genops_cli.api",
    "flush": "genops_cli.api",
    "GenOpsHaystackAdapter": "genops_cli.api",
    "HaystackPipelineResult": "genops_cli.api",
    "HaystackComponentResult": "genops_cli.api",
    "HaystackPipelineContext": "genops_cli.api",
    "HaystackSessionContext": "genops_cli.api",
    "create_rag_adapter": "genops_cli.api",
    "create_agent_adapter": "genops_cli.api",
    "GenOpsComponentMixin": "genops_cli.api",
    "ComponentExecutionContext": "genops_cli.api",
    "validate_haystack_setup": "genops_cli.validation",
    "print_validation_result": "genops_cli.validation",
    "ValidationResult": "genops_cli.validation",
    "ValidationIssue": "genops_cli.validation",
    "BudgetExceededError": "genops_cli.errors",
    "PolicyViolationError": "genops_cli.errors",
    "analyze_pipeline_costs": "genops_cli.api",
    "get_rag_insights": "genops_cli.api",
    "get_agent_insights": "genops_cli.api",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'genops_cli' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
