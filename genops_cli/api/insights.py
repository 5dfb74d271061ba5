"""Cost analysis and RAG/agent insights of the guide, read from the ledger."""

from __future__ import annotations

from genops_cli.analysis.api_functions import analyze_pipeline_costs, get_agent_insights, get_rag_insights

__all__ = ["analyze_pipeline_costs", "get_agent_insights", "get_rag_insights"]
