"""Agents as the tracer sees them: which generator an Agent (or an Agent nested in an AgentTool) calls, and why
an agent run stopped.

Haystack tags each `haystack.agent.run` span with the Agent's tools (the live Tool objects) but not with its chat
generator. A top-level Agent's generator comes from the pipeline profile; an Agent wrapped in an `AgentTool` (or
any `ComponentTool` around an Agent) is found among the calling agent's tools by the tool's name, an Agent (or
generator) inside a `PipelineTool`'s pipeline by its component name there, and its own `chat_generator` says which
provider and model its calls go to:

    generator_profile_of_tool(outer_tools, "search_agent")   # ComponentProfile(provider="anthropic", ...)

Exit reasons, one vocabulary for every output (`EXIT_REASONS`): Haystack's `exit_reason` state value, or the
exception that ended the run, normalized by `exit_reason()`.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from genops_cli.errors import RunCostCapReached
from genops_cli.models import CallRecord
from genops_cli.money import money_json
from genops_cli.tracking.capture import ComponentProfile
from genops_cli.tracking.usage import (
    endpoint_of,
    is_embedder,
    is_llm_component,
    live_init_parameters,
    max_tokens_of,
    model_of,
    provider_for,
)

#: Why an agent run stopped.
FINAL_ANSWER = "final_answer"  # a reply without tool calls (Haystack: "text")
EXIT_CONDITION = "exit_condition"  # a tool named in exit_conditions ran (its name is kept in tool_name)
MAX_AGENT_STEPS = "max_agent_steps"  # the step cap ran out before an exit condition
OUTPUT_LIMIT = "output_limit"  # the model stopped at its output limit (Haystack: "length")
CONTENT_FILTER = "content_filter"  # the provider's content filter stopped the reply
HOOK_STOP = "hook_stop"  # a hook set `stop_run` with its own reason
TOOL_ERROR = "tool_error"  # a tool failed and the Agent raises on tool failures
BUDGET_STOP = "budget_stop"  # a budget or cost cap denied the next LLM call
ERROR = "error"  # anything else raised inside the agent (provider error, ...)
EXIT_REASONS = (FINAL_ANSWER, EXIT_CONDITION, MAX_AGENT_STEPS, OUTPUT_LIMIT, CONTENT_FILTER, HOOK_STOP, TOOL_ERROR,
                BUDGET_STOP, ERROR)

_HAYSTACK_REASONS = {"text": FINAL_ANSWER, "max_agent_steps": MAX_AGENT_STEPS, "length": OUTPUT_LIMIT,
                     "content_filter": CONTENT_FILTER}



def exit_reason(raw: Any, exit_conditions: Iterable[str] | None, error: BaseException | None,
                steps: int | None = None, max_steps: int | None = None) -> str | None:
    """The normalized reason an agent run stopped (see `EXIT_REASONS`), None when nothing tells.

        exit_reason("text", ["text"], None)                 # 'final_answer'
        exit_reason("save_result", ["save_result"], None)   # 'exit_condition'
        exit_reason(None, None, CallBlocked(...))           # 'budget_stop'
        exit_reason(None, ["text"], None, steps=5, max_steps=5)   # 'max_agent_steps' (Haystack 2.x)
    """
    if error is not None:
        return _error_reason(error)
    if not isinstance(raw, str) or not raw:
        # Haystack 2.x keeps no exit reason: all steps used means the cap stopped it; fewer steps with the
        # default exit condition ("text") means a final answer.
        if steps is not None and max_steps is not None and steps >= max_steps:
            return MAX_AGENT_STEPS
        if steps is not None and list(exit_conditions or ["text"]) == ["text"]:
            return FINAL_ANSWER
        return None
    if raw in _HAYSTACK_REASONS:
        return _HAYSTACK_REASONS[raw]
    if raw in set(exit_conditions or ()):
        return EXIT_CONDITION
    return HOOK_STOP


def _error_reason(error: BaseException) -> str:
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RunCostCapReached):
            return BUDGET_STOP
        if any(cls.__name__ == "ToolInvocationError" for cls in type(current).__mro__):
            return TOOL_ERROR
        current = current.__cause__ or current.__context__
    return ERROR


# -- the generator behind an agent -------------------------------------------------------------------------------

_live_profiles: weakref.WeakKeyDictionary[Any, ComponentProfile] = weakref.WeakKeyDictionary()


def live_generator_profile(name: str, generator: Any) -> ComponentProfile:
    """What a live chat generator calls: provider from its class and init parameters, model, max_tokens."""
    try:
        cached = _live_profiles.get(generator)
    except TypeError:  # unhashable instance: profile it every time
        cached = None
    if cached is not None:
        return cached
    cls = type(generator)
    type_path = f"{cls.__module__}.{cls.__name__}"
    params = live_init_parameters(generator)
    model = model_of(params)
    profile = ComponentProfile(
        name=name, type_name=cls.__name__, fully_qualified_type=type_path,
        provider=provider_for(cls.__name__, type_path, model, params), model=model,
        max_tokens=max_tokens_of(params), endpoint=endpoint_of(params),
        is_llm=is_llm_component(cls.__name__, type_path),
        is_embedder=is_embedder(cls.__name__, type_path),
        streaming=getattr(generator, "streaming_callback", None) is not None,
    )
    try:
        _live_profiles[generator] = profile
    except TypeError:
        pass
    return profile


def _find_tool(tools: Any, tool_name: str | None) -> Any | None:
    if not tool_name or tools is None:
        return None
    return next((t for t in _flatten_tools(tools) if getattr(t, "name", None) == tool_name), None)


def agent_of_tool(tools: Any, tool_name: str | None) -> Any | None:
    """The Agent a tool named `tool_name` wraps (AgentTool, or a ComponentTool around an Agent), else None."""
    tool = _find_tool(tools, tool_name)
    component = getattr(tool, "_component", None) if tool is not None else None
    return component if getattr(component, "chat_generator", None) is not None else None


def agent_in_tool_pipeline(tools: Any, tool_name: str | None, component_name: str | None) -> Any | None:
    """The Agent component `component_name` of the pipeline a tool runs, else None."""
    component = component_in_tool_pipeline(tools, tool_name, component_name)
    return component if getattr(component, "chat_generator", None) is not None else None


def component_in_tool_pipeline(tools: Any, tool_name: str | None, component_name: str | None) -> Any | None:
    """The component `component_name` of the pipeline a tool runs (PipelineTool, or a ComponentTool around a
    SuperComponent), else None."""
    tool = _find_tool(tools, tool_name)
    if tool is None or not component_name:
        return None
    for holder in (tool, getattr(tool, "_component", None)):
        pipeline = getattr(holder, "_pipeline", None) or getattr(holder, "pipeline", None)
        get_component = getattr(pipeline, "get_component", None)
        if not callable(get_component):
            continue
        try:
            return get_component(component_name)
        except Exception:  # not a component of that pipeline
            continue
    return None


def _flatten_tools(tools: Any) -> list[Any]:
    """Tools and Toolsets (which iterate over their tools) as one list."""
    if isinstance(tools, str | bytes | Mapping):
        return []
    try:
        items = list(tools)
    except TypeError:
        return []
    flat: list[Any] = []
    for item in items:
        if getattr(item, "name", None) is not None and not isinstance(item, str):
            flat.append(item)
        elif not isinstance(item, str):
            flat.extend(_flatten_tools(item))
    return flat


def generator_profile_of_tool(tools: Any, tool_name: str | None) -> ComponentProfile | None:
    """The profile of the chat generator of the Agent behind tool `tool_name`, None when it wraps no Agent."""
    agent = agent_of_tool(tools, tool_name)
    if agent is None:
        return None
    return live_generator_profile(tool_name or "agent", agent.chat_generator)


# -- outcomes of the agent runs of one pipeline run ---------------------------------------------------------------


@dataclass
class AgentOutcome:
    """One agent run (an Agent component's run, or a nested Agent's run inside a tool call) as recorded."""

    instance: str  # the container record's call id
    name: str
    path: str | None
    steps: int | None
    max_steps: int | None
    exit_reason: str | None
    exit_tool: str | None
    llm_calls: int
    cost: Decimal  # its own LLM calls; a nested agent's calls count for the nested agent only
    status: str

    @property
    def hit_cap(self) -> bool:
        """Stopped by max_agent_steps before an exit condition: a loop or a too-tight cap."""
        return self.exit_reason == MAX_AGENT_STEPS

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance, "name": self.name, "path": self.path, "steps": self.steps,
            "max_steps": self.max_steps, "exit_reason": self.exit_reason, "exit_tool": self.exit_tool,
            "hit_max_steps": self.hit_cap, "llm_calls": self.llm_calls, "cost": money_json(self.cost),
            "status": self.status,
        }


def agent_outcomes(calls: Iterable[CallRecord]) -> list[AgentOutcome]:
    """The agent runs among a run's records, in the order they started."""
    calls = sorted(calls, key=lambda c: c.seq)
    own: dict[str, list[CallRecord]] = {}
    for call in calls:
        if call.agent_instance and call.agent_instance != call.call_id and call.model is not None:
            own.setdefault(call.agent_instance, []).append(call)
    out = []
    for call in calls:
        if call.agent_instance != call.call_id:
            continue
        llm = own.get(call.call_id, [])
        out.append(AgentOutcome(
            instance=call.call_id, name=call.component_name, path=call.component_path, steps=call.agent_steps,
            max_steps=call.agent_max_steps, exit_reason=call.exit_reason,
            exit_tool=call.tool_name if call.exit_reason == EXIT_CONDITION else None, llm_calls=len(llm),
            cost=sum((c.cost for c in llm), Decimal(0)), status=call.status,
        ))
    return out


def capped_agents(calls: Iterable[CallRecord]) -> list[AgentOutcome]:
    """Agent runs stopped by max_agent_steps."""
    return [o for o in agent_outcomes(calls) if o.hit_cap]


def cap_message(outcomes: list[AgentOutcome]) -> str:
    """One line naming the agents that hit their step cap and what to do about it."""
    names = ", ".join(f"'{o.path or o.name}' ({o.steps}/{o.max_steps} steps)" for o in outcomes)
    return (f"agent stopped by max_agent_steps before an answer: {names}; raise max_agent_steps or fix the loop "
            "(its tool results or exit_conditions)")


def fail_run_on_agent_cap(run: Any) -> bool:
    """`agents.fail_on_cap` / `--fail-on-agent-cap`: an ok run (a RunRecord) whose agent stopped at
    max_agent_steps becomes a failed run (exit 1), its records kept. Returns whether it did."""
    if run.status != "ok":
        return False
    capped = capped_agents(run.calls)
    if not capped:
        return False
    run.status = "error"
    run.error = cap_message(capped)
    return True
