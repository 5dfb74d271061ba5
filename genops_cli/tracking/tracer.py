"""The genops Tracer: captures every Haystack span of a run through `haystack.tracing`, no monkeypatching.

    tracer = install_tracer()                 # chains to a tracer already installed (e.g. a connector's)
    with capture_run(RunCapture(run_id, profile, pricer)) as capture:
        pipeline.run(data)
    capture.calls                             # one CallRecord per component visit, agent LLM step, tool call

Usage is read from output content tags at leaf calls only: when a span's descendants reported usage (an Agent,
a SuperComponent, a nested pipeline, an LLMRanker around its generator), its own output repeats theirs and is
not counted again. Content is read for usage and dropped unless content capture is on.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any

from haystack import tracing
from haystack.tracing import Span, Tracer

from genops_cli.errors import RunCostCapReached
from genops_cli.models import CallRecord, TokenUsage, utcnow
from genops_cli.redact import redact
from genops_cli.tracking.capture import RunCapture, current_capture
from genops_cli.tracking.usage import extract_usage, is_embedder, is_llm_component, provider_for

PIPELINE_RUN = ("haystack.pipeline.run", "haystack.async_pipeline.run")
COMPONENT_RUN = "haystack.component.run"
CHAT_GENERATOR_RUN = "haystack.chat_generator.run"
AGENT_RUN = "haystack.agent.run"
AGENT_STEP = "haystack.agent.step"
AGENT_LLM = "haystack.agent.step.llm"
AGENT_TOOL = "haystack.agent.step.tool"

#: The only keys extract_usage reads from an output mapping.
_USAGE_KEYS = frozenset({"replies", "meta", "documents"})

_INPUT_TAGS = {"haystack.component.input", "haystack.agent.step.llm.input"}
_OUTPUT_TAGS = {
    "haystack.component.output",
    "haystack.agent.step.llm.output",
    "haystack.agent.step.tool.output",
    "haystack.pipeline.output_data",
}


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
        self.call_id: str | None = None
        self.seq = capture.next_seq() if capture else 0
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
        if key in _OUTPUT_TAGS:
            self._read_output(key, value)
            if self._llm_output is None and self.is_llm_span():
                self._llm_output = value
        elif key in _INPUT_TAGS and self.is_llm_span():
            # Held only until the span ends, to estimate usage a provider did not report (streaming).
            self._llm_input = value
        if self.capture is not None and self.capture.capture_content:
            self.content[key] = value
        if self.inner is not None:
            self.inner.set_content_tag(key, value)

    def raw_span(self) -> Any:
        return self.inner.raw_span() if self.inner is not None else self

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

    def _profile(self):
        if self.capture is None:
            return None
        if self.operation_name == AGENT_LLM:
            agent = self._ancestor_component()
            profile = self.capture.profile_for(agent.component_name if agent else None)
            return profile.inner if profile and profile.inner else profile
        return self.capture.profile_for(self.component_name)

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
            agent = self._ancestor_component()
            name = agent.component_name if agent else "agent"
            ctype = (profile.type_name if profile and kind == "agent_llm" else None) or (
                "Tool" if kind == "tool" else "ChatGenerator"
            )
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
            tool_name=self.tool_name,
            parent_call_id=self._parent_call_id(),
            provider=self._provider(model) if model else None,
            model=model,
            usage=usage,
            documents_retrieved=documents,
            max_tokens=profile.max_tokens if profile is not None and model is not None else None,
        )

    def _parent_call_id(self) -> str | None:
        span = self.parent
        while span is not None:
            if span.call_id is not None:
                return span.call_id
            span = span.parent
        return None


_current_span: ContextVar[GenopsSpan | None] = ContextVar("genops_current_span", default=None)


def _estimate_usage(inputs: Any, outputs: Any, model: str, provider: str | None) -> TokenUsage:
    """Usage the provider did not report (e.g. OpenAI streaming without include_usage), counted offline from
    the messages sent and the replies received, and labelled `estimated`. `missing` when there is nothing to
    count (e.g. the call failed before a reply)."""
    from genops_cli.tokens import count_text_tokens, estimate_input_tokens

    messages = inputs.get("messages") if isinstance(inputs, dict) else None
    replies = outputs.get("replies") if isinstance(outputs, dict) else None
    if not messages or not replies:
        return TokenUsage(source="missing")
    try:
        input_tokens, _exact = estimate_input_tokens(list(messages), model, provider)
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


def _capture_and_parent(parent_span: Span | None) -> tuple[RunCapture | None, GenopsSpan | None]:
    """Which run a new span belongs to, and its parent.

    An explicit parent_span (Haystack passes one for components, also on worker threads) decides. Otherwise the
    run opened in this context wins over an ambient span left from another run, which is then not a parent.
    """
    if isinstance(parent_span, GenopsSpan):
        return parent_span.capture, parent_span
    ambient = _current_span.get()
    active = current_capture.get()
    if active is None:
        return (ambient.capture if ambient else None), ambient
    if ambient is not None and ambient.capture is not active:
        return active, None
    return active, ambient

#: Called with the capture of a pipeline run that started without one (auto_instrument).
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
        if capture is None and operation_name in PIPELINE_RUN and parent is None and self.on_orphan_run:
            probe = GenopsSpan(operation_name, tags or {}, None, None, None)
            capture = self.on_orphan_run(probe)
            orphan = capture is not None
        span = GenopsSpan(operation_name, tags or {}, parent, capture, None)
        if span.span_kind() is not None and capture is not None:
            span.call_id = capture.new_call_id()
        inner_cm = (
            self.inner.trace(operation_name, tags=tags, parent_span=parent.inner if parent else None)
            if self.inner is not None
            else contextlib.nullcontext(None)
        )
        with inner_cm as inner_span:
            span.inner = inner_span
            token = _current_span.set(span)
            started_at = utcnow()
            t0 = time.perf_counter()
            error: BaseException | None = None
            try:
                if capture is not None and span.is_llm_span():
                    capture.before_llm_call(span.component_name or operation_name)
                yield span
            except BaseException as exc:
                error = exc
                raise
            finally:
                latency_ms = (time.perf_counter() - t0) * 1000.0
                _current_span.reset(token)
                self._finish(span, started_at, latency_ms, error)
                if orphan and self.on_orphan_run_end is not None and capture is not None:
                    self.on_orphan_run_end(capture, error)

    def _finish(self, span: GenopsSpan, started_at: Any, latency_ms: float, error: BaseException | None) -> None:
        call = None
        if span.capture is not None:
            call = span.to_call(started_at, latency_ms, error)
            if call is not None:
                if call.usage.source in ("reported", "estimated") and call.model:
                    ancestor = span.parent
                    while ancestor is not None:
                        ancestor.descendant_reported_usage = True
                        ancestor = ancestor.parent
                span.capture.add(call)
        for listener in self.listeners:
            try:
                listener(span, call)
            except Exception:  # an exporter must never break a pipeline run
                pass

    def current_span(self) -> Span | None:
        return _current_span.get()


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
    """Make `capture` the current run for spans started in this context."""
    install_tracer()
    token = current_capture.set(capture)
    try:
        yield capture
    finally:
        current_capture.reset(token)
