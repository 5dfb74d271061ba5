"""The genops Tracer: captures every Haystack span of a run through `haystack.tracing`, no monkeypatching.

    tracer = install_tracer()                 # chains to a tracer already installed (e.g. a connector's)
    with capture_run(RunCapture(run_id, profile, pricer)) as capture:
        pipeline.run(data)
    capture.calls                             # one CallRecord per component visit, agent LLM step, tool call

Usage is read from output content tags at leaf calls only: when a span's descendants reported usage (an Agent,
a SuperComponent, a nested pipeline, an LLMRanker around its generator), its own output repeats theirs and is
not counted again. Content is read for usage and dropped unless content capture is on.

Every record says where it happened: `component_path` joins the spans it sits in ("researcher/chat_generator",
"researcher/tool:search_agent/search_agent/chat_generator" for an Agent nested in an AgentTool), `agent_instance`
is the call id of the agent run it belongs to (its container row: the Agent's component row, or an "agent" row
for a nested Agent), `agent_step` is Haystack's 0-based step counter within that agent run, and provider/model
come from the generator that made the call (a nested Agent's own chat_generator, not the outer one's). Agent
container rows carry `agent_steps`, `agent_max_steps` and `exit_reason` (see tracking/agents.py).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from haystack import tracing
from haystack.tracing import Span, Tracer

from genops_cli.errors import RunCostCapReached
from genops_cli.models import CallRecord, TokenUsage, utcnow
from genops_cli.redact import redact
from genops_cli.tracking import agents, direct
from genops_cli.tracking.capture import ComponentProfile, RunCapture, current_capture, current_span
from genops_cli.tracking.usage import (
    extract_usage,
    is_embedder,
    is_llm_component,
    is_openai_compatible_type,
    provider_for,
    stream_usage_configured,
    with_stream_usage,
)

PIPELINE_RUN = ("haystack.pipeline.run", "haystack.async_pipeline.run")
COMPONENT_RUN = "haystack.component.run"
CHAT_GENERATOR_RUN = "haystack.chat_generator.run"
AGENT_RUN = "haystack.agent.run"
AGENT_STEP = "haystack.agent.step"
AGENT_LLM = "haystack.agent.step.llm"
AGENT_TOOL = "haystack.agent.step.tool"

#: Root spans that start a run of their own under auto_instrument: a pipeline's, or an Agent's run called
#: directly (`agent.run(messages=...)`, no Pipeline around it).
ROOT_RUNS = (*PIPELINE_RUN, AGENT_RUN)

#: The only keys extract_usage reads from an output mapping.
_USAGE_KEYS = frozenset({"replies", "meta", "documents"})

_INPUT_TAGS = {"haystack.component.input", "haystack.agent.step.llm.input"}
_OUTPUT_TAGS = {
    "haystack.component.output",
    "haystack.agent.step.llm.output",
    "haystack.agent.step.tool.output",
    "haystack.pipeline.output_data",
}
#: Spans that add a segment to the component path (pipeline and step spans are transparent).
_PATH_SPANS = frozenset({COMPONENT_RUN, CHAT_GENERATOR_RUN, AGENT_RUN, AGENT_LLM, AGENT_TOOL})


class GenopsSpan(Span):
    """A span that records what genops needs and forwards everything to the chained tracer's span."""

    def __init__(
        self,
        operation_name: str,
        tags: dict[str, Any],
        parent: GenopsSpan | None,
        capture: RunCapture | None,
        inner: Span | None,
    ) -> None:
        self.operation_name = operation_name
        self.parent = parent
        self.capture = capture
        self.inner = inner
        self.tags: dict[str, Any] = {}
        self.component_name: str | None = None
        self.component_type: str | None = None
        self.fully_qualified_type: str | None = None
        self.visits: int | None = None
        self.agent_step: int | None = parent.agent_step if parent else None
        self.tool_name: str | None = None
        self.output_usage = None  # ExtractedUsage from the output content tag
        self.tool_error: str | None = None
        self.descendant_reported_usage = False
        self.content: dict[str, Any] = {}
        self._llm_input: Any = None
        self._llm_output: Any = None
        self.admission_ticket: Any = None
        self.started_at: Any = None  # set by the tracer when the span starts (wall clock, and perf_counter)
        self.t0 = 0.0
        self.call_id: str | None = None
        self.seq = capture.next_seq() if capture else 0
        self._path: str | None = None
        # haystack.agent.run spans: what Haystack tags them with, and how they ended.
        self.agent_tools: Any = None
        self.agent_max_steps: int | None = None
        self.exit_conditions: list[str] | None = None
        self.agent_steps: int | None = None
        self.exit_reason_raw: Any = None
        # Set on the container of an agent run (the Agent's component span, or the nested agent.run span).
        self.exit_reason: str | None = None
        self.exit_tool: str | None = None
        self.is_agent_container = False
        self._generator_profile: ComponentProfile | None = None
        self._generator_profile_known = False
        # is_llm_span()/span_kind() depend only on the operation and the component type: computed once per span
        # (they are asked several times per span), recomputed if a type tag arrives later.
        self._kind_cache: tuple[bool, str | None] | None = None
        for key, value in (tags or {}).items():
            self._remember(key, value)

    # -- Span interface -------------------------------------------------------------------------------------
    def set_tag(self, key: str, value: Any) -> None:
        self._remember(key, value)
        if self.inner is not None:
            self.inner.set_tag(key, value)

    def set_content_tag(self, key: str, value: Any) -> None:
        # Always receives the value (genops overrides Haystack's gate) to read usage; the chained span applies
        # its own content gate.
        if key == "haystack.agent.output" and isinstance(value, Mapping):
            # Why the agent stopped, as Haystack's state says it (its token_usage is never counted).
            self.exit_reason_raw = value.get("exit_reason")
            steps = value.get("step_count")
            if isinstance(steps, int):
                self.agent_steps = steps
        elif key in _OUTPUT_TAGS:
            self._read_output(key, value)
            if self._llm_output is None and self.is_llm_span():
                self._llm_output = value
        elif key in _INPUT_TAGS and self.is_llm_span():
            if self.operation_name == AGENT_LLM and self.capture is not None and isinstance(value, dict):
                # The dict the Agent is about to call its generator with: a stream is asked for its usage.
                ask_stream_usage(_calling_generator(AGENT_LLM), value)
            # Held only until the span ends, to estimate usage a provider did not report (streaming).
            self._llm_input = value
            if self.capture is not None:
                if self.admission_ticket is None:
                    self._admit(value)
                self.capture.in_flight[id(self)] = self  # the request is about to be made
        if self.capture is not None and self.capture.capture_content:
            self.content[key] = value
        if self.inner is not None:
            self.inner.set_content_tag(key, value)

    def raw_span(self) -> Any:
        return self.inner.raw_span() if self.inner is not None else self

    def _admit(self, inputs: Any) -> None:
        """Per-call admission, once the call's rendered input is known and before the provider is called
        (Haystack sets the input content tag right before it runs the component / the agent's LLM step)."""
        assert self.capture is not None
        profile = self._profile()
        model = profile.model if profile is not None else None
        max_tokens = profile.max_tokens if profile is not None else None
        if model is None:  # a nested agent or pipeline the profile does not know: ask the generator itself
            model, max_tokens = _live_generator(self.operation_name)
        self.admission_ticket = self.capture.before_llm_call(
            self.path() or self.operation_name, kind="embedding" if self.span_kind() == "embedding" else "llm",
            provider=self._provider(model), model=model, inputs=inputs, max_tokens=max_tokens) or False

    def get_correlation_data_for_logs(self) -> dict[str, Any]:
        data = self.inner.get_correlation_data_for_logs() if self.inner is not None else {}
        if self.capture is not None:
            data = {**data, "genops.run_id": self.capture.run_id}
        return data

    # -- internals ------------------------------------------------------------------------------------------
    def _remember(self, key: str, value: Any) -> None:
        if key == "haystack.component.name":
            self.component_name = str(value)
        elif key == "haystack.component.type":
            self.component_type = str(value)
            self._kind_cache = None
        elif key == "haystack.component.fully_qualified_type":
            self.fully_qualified_type = str(value)
            self._kind_cache = None
        elif key == "haystack.component.visits":
            self.visits = int(value) if isinstance(value, int | str) and str(value).isdigit() else None
        elif key == "haystack.agent.step":
            self.agent_step = int(value) if str(value).isdigit() else self.agent_step
        elif key == "haystack.tool.name":
            self.tool_name = str(value)
        elif key == "haystack.agent.tools":
            self.agent_tools = value
        elif key in ("haystack.agent.max_steps", "haystack.agent.steps_taken"):
            number = int(value) if str(value).isdigit() else None
            if key == "haystack.agent.max_steps":
                self.agent_max_steps = number
            elif number is not None:
                self.agent_steps = number
        elif key == "haystack.agent.exit_conditions":
            self.exit_conditions = [str(v) for v in value] if isinstance(value, list | tuple) else None
        elif key in ("haystack.pipeline.metadata",) or key.startswith("genops."):
            self.tags[key] = value

    def _read_output(self, key: str, value: Any) -> None:
        if key == "haystack.agent.step.tool.output":
            if isinstance(value, dict) and "error" in value and len(value) == 1:
                self.tool_error = str(value["error"])[:500]
            return
        if key == "haystack.pipeline.output_data":
            return
        if isinstance(value, Mapping) and not _USAGE_KEYS.intersection(value):
            # extract_usage reads only these keys of a mapping: without them it returns None (a PromptBuilder's
            # output, a router's), so skip the provider lookup and the extraction.
            self.output_usage = None
            return
        provider = self._provider(model=None)
        self.output_usage = extract_usage(value, provider=provider)

    def _ancestor_component(self) -> GenopsSpan | None:
        span = self.parent
        while span is not None:
            if span.operation_name == COMPONENT_RUN:
                return span
            span = span.parent
        return None

    # -- where the span sits ---------------------------------------------------------------------------------
    def _nearest(self, operations: frozenset[str] | tuple[str, ...]) -> GenopsSpan | None:
        span = self.parent
        while span is not None:
            if span.operation_name in operations:
                return span
            span = span.parent
        return None

    def agent_run(self) -> GenopsSpan | None:
        """The haystack.agent.run span this span belongs to (itself for an agent.run span)."""
        if self.operation_name == AGENT_RUN:
            return self
        return self._nearest((AGENT_RUN,))

    def agent_container(self) -> GenopsSpan | None:
        """The span whose record stands for this span's agent run: the Agent's component span when the Agent
        is a pipeline component, else the agent.run span itself (an Agent inside an AgentTool)."""
        run = self.agent_run()
        if run is None:
            return None
        parent = run.parent
        return parent if parent is not None and parent.operation_name == COMPONENT_RUN else run

    def agent_name(self) -> str:
        """The agent run's name: its component name, or the name of the tool that wraps it."""
        run = self.agent_run()
        container = run.agent_container() if run is not None else None
        if container is not None and container is not run and container.component_name:
            return container.component_name
        tool = run._nearest((AGENT_TOOL,)) if run is not None else None
        return (tool.tool_name if tool is not None else None) or "agent"

    def path(self) -> str:
        """The component path: outer agent / tool / inner agent / generator (see the module docstring)."""
        if self._path is None:
            self._path = self._compute_path()
        return self._path

    def _compute_path(self) -> str:
        prefix_span = self._nearest(_PATH_SPANS)
        prefix = prefix_span.path() if prefix_span is not None else ""
        op = self.operation_name
        if op == AGENT_RUN:
            container = self.agent_container()
            if container is not None and container is not self:
                return container.path()
            segment = self.agent_name()
        elif op == AGENT_LLM:
            segment = "chat_generator"
        elif op == AGENT_TOOL:
            segment = f"tool:{self.tool_name or '?'}"
        elif op in (COMPONENT_RUN, CHAT_GENERATOR_RUN):
            segment = self.component_name or "?"
        else:
            return prefix
        return f"{prefix}/{segment}" if prefix else segment

    def agent_instance(self) -> str | None:
        """The call id of the container record of the agent run this span belongs to."""
        if self.is_agent_container:
            return self.call_id
        container = self.agent_container()
        return container.call_id if container is not None else None

    def _top_level(self) -> bool:
        """A component of the run's own pipeline (the profile describes only those, by name)."""
        return self.component_name is not None and self.path() == self.component_name

    def generator_profile(self) -> ComponentProfile | None:
        """For an agent.run span: the profile of the chat generator this agent run calls."""
        if not self._generator_profile_known:
            self._generator_profile_known = True
            self._generator_profile = self._find_generator_profile()
        return self._generator_profile

    def _find_generator_profile(self) -> ComponentProfile | None:
        container = self.agent_container()
        if container is not None and container is not self:
            if self.capture is not None and container._top_level():
                profile = self.capture.profile_for(container.component_name)
                if profile is not None:
                    return profile.inner or profile
                return None
            # An Agent component of a pipeline a tool runs (PipelineTool): found in that tool's pipeline.
            found = container._calling_tool()
            if found is None:
                return None
            tools, tool_name = found
            agent = agents.agent_in_tool_pipeline(tools, tool_name, container.component_name)
            if agent is None:
                return None
            return agents.live_generator_profile(container.component_name or "agent", agent.chat_generator)
        # A nested Agent: the calling agent's tools hold the live Agent behind this run's tool.
        found = self._calling_tool()
        return agents.generator_profile_of_tool(*found) if found is not None else None

    def _calling_tool(self) -> tuple[Any, str | None] | None:
        """(the calling agent's tools, the tool's name) of the agent tool span this span runs under, if any."""
        tool = self._nearest((AGENT_TOOL,))
        outer = tool.agent_run() if tool is not None else None
        if tool is None or outer is None:
            return None
        return outer.agent_tools, tool.tool_name

    def _profile(self) -> ComponentProfile | None:
        if self.capture is None:
            return None
        if self.operation_name == AGENT_LLM:
            run = self.agent_run()
            if run is not None:
                return run.generator_profile()
            agent = self._ancestor_component()  # Haystack 2.x shape: the Agent is a component span
            profile = self.capture.profile_for(agent.component_name if agent else None)
            return profile.inner if profile and profile.inner else profile
        if not self._top_level():
            # A component of a nested pipeline (a same-named outer component says nothing of it): profiled
            # live when a tool's pipeline holds it.
            if not self._generator_profile_known:
                self._generator_profile_known = True
                self._generator_profile = self._tool_pipeline_profile()
            return self._generator_profile
        return self.capture.profile_for(self.component_name)

    def _tool_pipeline_profile(self) -> ComponentProfile | None:
        if not self.is_llm_span():
            return None
        found = self._calling_tool()
        if found is None:
            return None
        component = agents.component_in_tool_pipeline(*found, self.component_name)
        return agents.live_generator_profile(self.component_name or "?", component) if component is not None else None

    def _provider(self, model: str | None) -> str | None:
        profile = self._profile()
        if profile is not None and profile.provider:
            return profile.provider
        if self.operation_name in (COMPONENT_RUN, CHAT_GENERATOR_RUN) and self.component_type:
            return provider_for(self.component_type, self.fully_qualified_type, model)
        return provider_for("", None, model) if model else None

    def _kinds(self) -> tuple[bool, str | None]:
        """(is_llm_span, span_kind), computed once per span."""
        if self._kind_cache is None:
            self._kind_cache = self._compute_kinds()
        return self._kind_cache

    def is_llm_span(self) -> bool:
        return self._kinds()[0]

    def span_kind(self) -> str | None:
        return self._kinds()[1]

    def _compute_kinds(self) -> tuple[bool, str | None]:
        if self.operation_name == AGENT_LLM:
            return True, "agent_llm"
        if self.operation_name == CHAT_GENERATOR_RUN:
            return True, "chat_generator"
        if self.operation_name == AGENT_TOOL:
            return False, "tool"
        if self.operation_name == AGENT_RUN:
            # A pipeline Agent's run is recorded on its component row; a nested Agent gets its own row.
            return False, ("agent" if self.agent_container() is self else None)
        if self.operation_name == COMPONENT_RUN:
            if not self.component_type:
                return False, "component"
            if is_embedder(self.component_type, self.fully_qualified_type):
                return True, "embedding"
            return is_llm_component(self.component_type, self.fully_qualified_type), "component"
        return False, None

    def to_call(self, started_at: Any, latency_ms: float, error: BaseException | None) -> CallRecord | None:
        kind = self.span_kind()
        if kind is None or self.capture is None:
            return None
        profile = self._profile()
        name = self.component_name
        ctype = self.component_type
        if kind in ("agent_llm", "tool"):
            if self.agent_run() is not None:
                name = self.agent_name()
            else:
                agent = self._ancestor_component()
                name = agent.component_name if agent else "agent"
            ctype = (profile.type_name if profile and kind == "agent_llm" else None) or (
                "Tool" if kind == "tool" else "ChatGenerator"
            )
        elif kind == "agent":
            name, ctype = self.agent_name(), "Agent"
        extracted = self.output_usage
        usage = TokenUsage(source="none")
        model = None
        documents = None
        counted = extracted is not None and not self.descendant_reported_usage
        if extracted is not None:
            documents = extracted.documents
            if counted:
                usage = extracted.usage
                model = extracted.model
        if self.is_llm_span() and not self.descendant_reported_usage:
            model = model or (profile.model if profile else None)
            if model is not None and usage.source in ("none", "missing"):
                usage = _estimate_usage(self._llm_input, self._llm_output, model, self._provider(model))
        if usage.source == "none":
            # One vocabulary in the ledger: reported | estimated | missing. A failed LLM call, and a record that
            # made no model call at all (builder, tool, agent container), have no usage: missing, zero tokens.
            usage = TokenUsage(source="missing", raw=usage.raw)
        status = "ok"
        error_text = None
        if error is not None:
            status = "blocked" if isinstance(error, RunCostCapReached) else "error"
            error_text = redact(f"{type(error).__name__}: {error}"[:1000])
        elif self.tool_error:
            status, error_text = "error", redact(self.tool_error)
        return CallRecord(
            call_id=self.call_id or self.capture.new_call_id(),
            run_id=self.capture.run_id,
            seq=self.seq,
            span_kind=kind,  # type: ignore[arg-type]
            component_name=name or "unknown",
            component_type=ctype or "unknown",
            started_at=started_at,
            latency_ms=latency_ms,
            status=status,  # type: ignore[arg-type]
            error=error_text,
            visit=self.visits,
            agent_step=self.agent_step if kind in ("agent_llm", "tool") else None,
            tool_name=self.exit_tool if self.is_agent_container else self.tool_name,
            parent_call_id=self._parent_call_id(),
            provider=self._provider(model) if model else None,
            model=model,
            usage=usage,
            documents_retrieved=documents,
            max_tokens=profile.max_tokens if profile is not None and model is not None else None,
            component_path=self.path(),
            agent_instance=self.agent_instance(),
            agent_steps=self.agent_steps if self.is_agent_container else None,
            agent_max_steps=self.agent_max_steps if self.is_agent_container else None,
            exit_reason=self.exit_reason if self.is_agent_container else None,
        )

    def interrupted_call(self, reason: str) -> CallRecord | None:
        """This LLM call as a run cut short while it was in flight records it: status error, the input it sent
        counted offline (`estimated`, no output: none was read)."""
        call = self.to_call(self.started_at or utcnow(), (time.perf_counter() - self.t0) * 1000.0, None)
        if call is None:
            return None
        call.status = "error"
        call.error = redact(f"interrupted ({reason}) while the provider request was in flight")
        if call.model is not None and call.usage.source == "missing":
            call.usage = _estimate_input_usage(self._llm_input, call.model, call.provider)
        return call

    def end_agent_run(self, error: BaseException | None) -> None:
        """At the end of an agent.run span: put its outcome on its container record."""
        container = self.agent_container()
        if container is None:
            return
        reason = agents.exit_reason(self.exit_reason_raw, self.exit_conditions, error, self.agent_steps,
                                    self.agent_max_steps)
        container.is_agent_container = True
        container.exit_reason = reason
        container.exit_tool = self.exit_reason_raw if reason == agents.EXIT_CONDITION else None
        container.agent_steps = self.agent_steps
        container.agent_max_steps = self.agent_max_steps

    def _parent_call_id(self) -> str | None:
        span = self.parent
        while span is not None:
            if span.call_id is not None:
                return span.call_id
            span = span.parent
        return None


def _calling_generator(operation_name: str) -> Any:
    """The generator about to be called, read from the caller's frames: the Agent whose step this is
    (`self.chat_generator`), or the component instance a (nested) pipeline is running. Haystack sets the input
    content tag from those frames, a few levels above the span's own."""
    import sys

    frame = sys._getframe(1)
    for _ in range(10):
        if frame is None:
            break
        local = frame.f_locals
        generator = (getattr(local.get("self"), "chat_generator", None) if operation_name == AGENT_LLM
                     else local.get("instance"))
        model = getattr(generator, "model", None)
        if isinstance(model, str) and model:
            return generator
        frame = frame.f_back
    return None


def _live_generator(operation_name: str) -> tuple[str | None, int | None]:
    """(model, max_tokens) of the generator about to be called (`_calling_generator`)."""
    from genops_cli.policy.admission import requested_max_tokens

    generator = _calling_generator(operation_name)
    if generator is None:
        return None, None
    return generator.model, requested_max_tokens({"generation_kwargs": getattr(generator, "generation_kwargs", None)})


def ask_stream_usage(generator: Any, call_inputs: dict[str, Any]) -> None:
    """A chat-completions stream reports usage only when asked: a streaming call (the generator's own callback,
    or one passed at run time, e.g. `agent.run(..., streaming_callback=...)` or an Agent's) of an OpenAI-compatible
    generator gets `stream_options.include_usage` in this call's generation_kwargs, unless the generator or the
    call already says either way. `call_inputs` are the keyword arguments the generator is called with (changed in
    place); a pipeline's streaming generators are configured at load instead (`request_stream_usage`)."""
    if generator is None or (call_inputs.get("streaming_callback") is None
                             and getattr(generator, "streaming_callback", None) is None):
        return
    cls = type(generator)
    if not is_openai_compatible_type(cls.__name__, f"{cls.__module__}.{cls.__name__}"):
        return
    run_kwargs = call_inputs.get("generation_kwargs")
    if stream_usage_configured(run_kwargs) or stream_usage_configured(getattr(generator, "generation_kwargs", None)):
        return
    call_inputs["generation_kwargs"] = with_stream_usage(run_kwargs)


def _counted_input(inputs: Any, model: str, provider: str | None) -> int | None:
    """Input tokens of a chat call's messages, counted offline; None without messages or when they cannot be."""
    from genops_cli.tokens import estimate_input_tokens

    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    if not messages:
        return None
    try:
        input_tokens, _exact = estimate_input_tokens(list(messages), model, provider)
    except Exception:
        return None
    return input_tokens


def _estimate_usage(inputs: Any, outputs: Any, model: str, provider: str | None) -> TokenUsage:
    """Usage the provider did not report (e.g. OpenAI streaming without include_usage), counted offline from
    the messages sent and the replies received, and labelled `estimated`. `missing` when there is nothing to
    count (e.g. the call failed before a reply)."""
    from genops_cli.tokens import count_text_tokens

    replies = outputs.get("replies") if isinstance(outputs, dict) else None
    input_tokens = _counted_input(inputs, model, provider) if replies else None
    if input_tokens is None:
        return TokenUsage(source="missing")
    try:
        output_tokens = 0
        for reply in replies:
            text = getattr(reply, "text", None) if not isinstance(reply, str) else reply
            output_tokens += count_text_tokens(text or "", model)
            for tool_call in getattr(reply, "tool_calls", None) or []:
                output_tokens += count_text_tokens(f"{tool_call.tool_name}{tool_call.arguments}", model)
    except Exception:
        return TokenUsage(source="missing")
    return TokenUsage(input_tokens=input_tokens, output_tokens=output_tokens, source="estimated",
                      raw={"genops_estimate": "offline token count of messages and replies"})


def _estimate_input_usage(inputs: Any, model: str, provider: str | None) -> TokenUsage:
    """The input of a chat call that never answered, counted offline (`estimated`); `missing` without messages."""
    input_tokens = _counted_input(inputs, model, provider)
    if input_tokens is None:
        return TokenUsage(source="missing")
    return TokenUsage(input_tokens=input_tokens, source="estimated",
                      raw={"genops_estimate": "offline token count of the messages of a call cut short in flight"})


def _capture_and_parent(parent_span: Span | None) -> tuple[RunCapture | None, GenopsSpan | None]:
    """Which run a new span belongs to, and its parent.

    An explicit parent_span (Haystack passes one for components, also on worker threads) decides. Otherwise the
    run opened in this context wins over an ambient span left from another run, which is then not a parent.
    """
    if isinstance(parent_span, GenopsSpan):
        return parent_span.capture, parent_span
    ambient = current_span.get()
    active = current_capture.get()
    if active is None:
        return (ambient.capture if ambient else None), ambient
    if ambient is not None and ambient.capture is not active:
        return active, None
    return active, ambient

#: Called with the root span of a pipeline or agent run that started without a capture (auto_instrument).
OrphanRunHandler = Callable[[GenopsSpan], RunCapture | None]
RunEndHandler = Callable[[RunCapture, BaseException | None], None]


class GenopsTracer(Tracer):
    """Haystack Tracer that turns spans into CallRecords and chains to the previously installed tracer."""

    def __init__(self, inner: Tracer | None = None) -> None:
        self.inner = inner
        self.on_orphan_run: OrphanRunHandler | None = None
        self.on_orphan_run_end: RunEndHandler | None = None
        self.listeners: list[Callable[[GenopsSpan, CallRecord | None], None]] = []

    @contextlib.contextmanager
    def trace(
        self, operation_name: str, tags: dict[str, Any] | None = None, parent_span: Span | None = None
    ) -> Iterator[Span]:
        capture, parent = _capture_and_parent(parent_span)
        orphan = False
        if capture is None and operation_name in ROOT_RUNS and parent is None and self.on_orphan_run:
            probe = GenopsSpan(operation_name, tags or {}, None, None, None)
            capture = self.on_orphan_run(probe)
            orphan = capture is not None
            if orphan:
                direct.install_direct_tracing()  # generators a tool or component calls without a span of their own
        span = GenopsSpan(operation_name, tags or {}, parent, capture, None)
        if span.span_kind() is not None and capture is not None:
            span.call_id = capture.new_call_id()
        if operation_name == AGENT_RUN and capture is not None:
            container = span.agent_container()
            if container is not None:
                container.is_agent_container = True  # rows inside point at it from the start
        inner_cm = (
            self.inner.trace(operation_name, tags=tags, parent_span=parent.inner if parent else None)
            if self.inner is not None
            else contextlib.nullcontext(None)
        )
        with inner_cm as inner_span:
            span.inner = inner_span
            token = current_span.set(span)
            started_at = span.started_at = utcnow()
            t0 = span.t0 = time.perf_counter()
            error: BaseException | None = None
            try:
                if capture is not None and capture.on_pipeline_start is not None and parent is None \
                        and operation_name in ROOT_RUNS:
                    capture.on_pipeline_start(tags or {})  # the run session's preflight; may raise (blocked)
                yield span
            except BaseException as exc:
                error = exc
                raise
            finally:
                latency_ms = (time.perf_counter() - t0) * 1000.0
                current_span.reset(token)
                self._finish(span, started_at, latency_ms, error)
                if orphan and self.on_orphan_run_end is not None and capture is not None:
                    self.on_orphan_run_end(capture, error)

    def _finish(self, span: GenopsSpan, started_at: Any, latency_ms: float, error: BaseException | None) -> None:
        call = None
        if span.operation_name == AGENT_RUN and span.capture is not None:
            span.end_agent_run(error)
        if span.capture is not None:
            span.capture.in_flight.pop(id(span), None)
            call = span.to_call(started_at, latency_ms, error)
            if call is not None:
                if call.usage.source in ("reported", "estimated") and call.model:
                    ancestor = span.parent
                    while ancestor is not None:
                        ancestor.descendant_reported_usage = True
                        ancestor = ancestor.parent
                span.capture.add(call)
            if span.admission_ticket:
                span.capture.after_llm_call(span.admission_ticket)
        for listener in self.listeners:
            try:
                listener(span, call)
            except Exception:  # an exporter must never break a pipeline run
                pass

    def current_span(self) -> Span | None:
        return current_span.get()


_install_lock = threading.Lock()


def install_tracer() -> GenopsTracer:
    """Install the genops tracer (idempotent), keeping a previously installed tracer as the chained inner one."""
    with _install_lock:
        actual = tracing.tracer.actual_tracer
        if isinstance(actual, GenopsTracer):
            return actual
        inner = actual if tracing.is_tracing_enabled() else None
        tracer = GenopsTracer(inner=inner)
        tracing.enable_tracing(tracer)
        return tracer


def ensure_installed_after_load() -> GenopsTracer:
    """After loading a pipeline: a connector in the YAML may have replaced the tracer; chain to it again."""
    with _install_lock:
        actual = tracing.tracer.actual_tracer
        if isinstance(actual, GenopsTracer):
            return actual
    return install_tracer()


@contextlib.contextmanager
def capture_run(capture: RunCapture) -> Iterator[RunCapture]:
    """Make `capture` the current run for spans started in this context (and for direct generator calls)."""
    install_tracer()
    direct.install_direct_tracing()
    token = current_capture.set(capture)
    try:
        yield capture
    finally:
        current_capture.reset(token)
