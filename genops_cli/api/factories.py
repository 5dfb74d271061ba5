"""Adapters preset for RAG and agent workflows (their runs are tagged `workflow=rag|agent`)."""

from __future__ import annotations

from typing import Any

from genops_cli.api.adapter import GenOpsHaystackAdapter


def create_rag_adapter(team: str | None = None, project: str | None = None,
                       enable_retrieval_tracking: bool = True, enable_generation_tracking: bool = True,
                       **kwargs: Any) -> GenOpsHaystackAdapter:
    """An adapter whose runs are tagged `workflow=rag`; `get_rag_insights` reads retrieval vs generation."""
    adapter = GenOpsHaystackAdapter(team=team, project=project, workflow="rag", **kwargs)
    adapter.enable_retrieval_tracking = enable_retrieval_tracking  # type: ignore[attr-defined]
    adapter.enable_generation_tracking = enable_generation_tracking  # type: ignore[attr-defined]
    return adapter


def create_agent_adapter(team: str | None = None, project: str | None = None,
                         enable_decision_tracking: bool = True, enable_tool_tracking: bool = True,
                         **kwargs: Any) -> GenOpsHaystackAdapter:
    """An adapter whose runs are tagged `workflow=agent`; `get_agent_insights` reads steps and tool calls."""
    adapter = GenOpsHaystackAdapter(team=team, project=project, workflow="agent", **kwargs)
    adapter.enable_decision_tracking = enable_decision_tracking  # type: ignore[attr-defined]
    adapter.enable_tool_tracking = enable_tool_tracking  # type: ignore[attr-defined]
    return adapter
