"""Adapters preset for RAG and agent workflows (their runs are tagged `workflow=rag|agent`)."""

from __future__ import annotations

from typing import Any

from genops_cli.api.adapter import GenOpsHaystackAdapter
from genops_cli.api.settings import DEFAULT_PROJECT, DEFAULT_TEAM


def create_rag_adapter(team: str = DEFAULT_TEAM, project: str = DEFAULT_PROJECT,
                       enable_retrieval_tracking: bool = True, enable_generation_tracking: bool = True,
                       **kwargs: Any) -> GenOpsHaystackAdapter:
    """An adapter whose runs are tagged `workflow=rag` (other arguments: the adapter's). `get_rag_insights`
    reads retrieval vs generation. enable_retrieval_tracking=False leaves retriever visits out of the records
    (documents_retrieved and retrieval latency then read 0); generation calls carry the cost and are always
    recorded, so enable_generation_tracking cannot be False."""
    _always_on("enable_generation_tracking", enable_generation_tracking, "LLM calls")
    adapter = GenOpsHaystackAdapter(team=team, project=project, workflow="rag", **kwargs)
    adapter.enable_retrieval_tracking = enable_retrieval_tracking
    return adapter


def create_agent_adapter(team: str = DEFAULT_TEAM, project: str = DEFAULT_PROJECT,
                         enable_decision_tracking: bool = True, enable_tool_tracking: bool = True,
                         **kwargs: Any) -> GenOpsHaystackAdapter:
    """An adapter whose runs are tagged `workflow=agent` (other arguments: the adapter's). `get_agent_insights`
    reads decisions and tool calls. enable_tool_tracking=False leaves successful tool calls out of the records;
    decisions are the agent's LLM calls, which carry the cost and are always recorded, so
    enable_decision_tracking cannot be False."""
    _always_on("enable_decision_tracking", enable_decision_tracking, "an agent's LLM calls (its decisions)")
    adapter = GenOpsHaystackAdapter(team=team, project=project, workflow="agent", **kwargs)
    adapter.enable_tool_tracking = enable_tool_tracking
    return adapter


def _always_on(name: str, value: bool, what: str) -> None:
    if not value:
        raise ValueError(f"{name}=False: {what} carry the run's cost and are always recorded; leave it True")
