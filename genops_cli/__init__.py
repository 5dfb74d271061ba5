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
    # Written in genops_cli/analysis (another module owner); resolved when present.
    "analyze_pipeline_costs": "genops_cli.analysis.api_functions",
    "get_rag_insights": "genops_cli.analysis.api_functions",
    "get_agent_insights": "genops_cli.analysis.api_functions",
}

_FALLBACKS = {
    "get_rag_insights": "genops_cli.analysis.insights",
    "get_agent_insights": "genops_cli.analysis.insights",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'genops_cli' has no attribute {name!r}")
    for candidate in (module_name, _FALLBACKS.get(name)):
        if candidate is None:
            continue
        try:
            module = importlib.import_module(candidate)
        except ModuleNotFoundError as exc:
            if exc.name != candidate:
                raise
            continue
        if hasattr(module, name):
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"genops_cli.{name} is not available in this installation ({module_name} not found)")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
