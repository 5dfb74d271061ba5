"""RunCapture: the calls of one pipeline run as the tracer sees them, priced as they finish.

The run session opens a capture around `pipeline.run()`; the tracer finds it through a ContextVar (or through the
parent span, for components that run in worker threads), asks it before every LLM/embedding call
(`before_llm_call`: per-call admission) and appends one CallRecord per finished span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from genops_cli.ids import new_id
from genops_cli.models import CallRecord, quantize_money


@dataclass
class ComponentProfile:
    """What the loader learned about a component before it was built (no secrets, no content)."""

    name: str
    type_name: str
    fully_qualified_type: str
    provider: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    is_llm: bool = False
    is_embedder: bool = False
    is_retriever: bool = False
    top_k: int | None = None
    #: For an Agent: the profile of its chat generator.
    inner: ComponentProfile | None = None
    streaming: bool = False
    #: The endpoint the component calls when it sets one (api_base_url, azure_endpoint, ...): residency rules.
    endpoint: str | None = None


@dataclass
class PipelineProfile:
    name: str
    path: str
    pipeline_hash: str
    components: dict[str, ComponentProfile] = field(default_factory=dict)
    #: A pipeline built in code: its serialized form (components with init parameters, connections), from which
    #: the estimate builds its simulated copy (a YAML pipeline's is `LoadedPipeline.data`).
    serialized: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def llm_components(self) -> list[ComponentProfile]:
        out = []
        for c in self.components.values():
            if c.is_llm or c.is_embedder:
                out.append(c)
            elif c.inner is not None:
                out.append(c.inner)
        return out


#: Prices a finished call in place (sets cost, unit_prices, priced, price_snapshot).
Pricer = Callable[[CallRecord], None]


class CallGate(Protocol):
    """Per-call admission of a run (policy.admission.RunAdmission), as the capture sees it."""

    @property
    def active(self) -> bool: ...

    def admit(self, request: Any) -> Any: ...

    def spend(self, cost: Decimal) -> None: ...

    def release(self, ticket: Any) -> None: ...


#: Called when a root pipeline run starts inside the capture, with the tags of its span (input data, metadata):
#: the run session profiles a pipeline it did not know and reserves its worst case with the real inputs.
PipelineStartHandler = Callable[[dict[str, Any]], None]


class RunCapture:
    """Collects CallRecords for one run. Thread-safe: async pipelines finish spans on several threads."""

    def __init__(
        self,
        run_id: str,
        profile: PipelineProfile | None = None,
        pricer: Pricer | None = None,
        capture_content: bool = False,
        admission: CallGate | None = None,
        tenant: str | None = None,
        max_tokens_cap: int = 4096,
        on_pipeline_start: PipelineStartHandler | None = None,
        stand_in: Callable[[Any], Any] | None = None,
    ) -> None:
        self.run_id = run_id
        self.profile = profile
        self.pricer = pricer
        self.capture_content = capture_content
        self.admission = admission
        self.tenant = tenant
        self.max_tokens_cap = max_tokens_cap
        self.on_pipeline_start = on_pipeline_start
        #: A simulated run's source of stand-ins: given a real generator or embedder called directly (e.g. by a
        #: custom component that built it), the stand-in that answers in its place; None runs it for real.
        self.stand_in = stand_in
        self.calls: list[CallRecord] = []
        #: LLM spans whose request is being made (input known, span not finished): what a run interrupted by a
        #: signal had in flight (`in_flight_calls`).
        self.in_flight: dict[int, Any] = {}
        self.cost = Decimal(0)
        self.cap_reached = False
        self.pipeline_name: str | None = profile.name if profile else None
        self._seq = 0
        self._lock = threading.Lock()
        # component -> (model, provider) of its last recorded call: the model of a component the profile does
        # not know (a nested pipeline's, an AgentTool's agent) for the worst case of its next call.
        self._models: dict[str, tuple[str, str | None]] = {}

    def next_seq(self) -> int:
        with self._lock:
            self._seq += 1
            return self._seq

    def new_call_id(self) -> str:
        return new_id()  # no syscall per call id (uuid4 reads os.urandom each time)

    def add(self, call: CallRecord) -> None:
        if self.pricer is not None and call.model:
            self.pricer(call)
        with self._lock:
            self.calls.append(call)
            self.cost = quantize_money(self.cost + call.cost)
            if call.model:
                self._models[call.component_path or call.component_name] = (call.model, call.provider)
        if self.admission is not None and call.cost:
            self.admission.spend(call.cost)

    def before_llm_call(self, component_name: str, *, kind: str = "llm", provider: str | None = None,
                        model: str | None = None, inputs: Any = None, max_tokens: int | None = None) -> Any:
        """Per-call admission before a provider call: raises (policy.admission.CallBlocked) when an enforcing
        limit denies the call's worst case; returns a ticket for `after_llm_call`, or None when no limit
        applies (then nothing is counted)."""
        gate = self.admission
        if gate is None or not gate.active:
            return None
        from genops_cli.policy.admission import CallBlocked, requested_model, worst_case_request

        if model is None and component_name in self._models:
            model, provider = self._models[component_name]
        model = requested_model(inputs) or model  # generation_kwargs.model replaces the configured model
        profile = self.profile_for(component_name)
        request = worst_case_request(self.run_id, component_name, kind, provider, model, inputs, max_tokens,
                                     self.max_tokens_cap, tenant=self.tenant,
                                     endpoint=profile.endpoint if profile is not None else None)
        try:
            return gate.admit(request)
        except CallBlocked:
            self.cap_reached = True
            raise

    def after_llm_call(self, ticket: Any) -> None:
        """The admitted call ended and its cost was added: its worst case no longer counts."""
        if ticket is not None and self.admission is not None:
            self.admission.release(ticket)

    def in_flight_calls(self, reason: str) -> list[CallRecord]:
        """The provider calls in flight when the run was cut short (a signal), as failed calls with the input
        they sent, counted offline and priced (`estimated`): the provider processes, and bills, a request it
        received whether or not the answer is read. Read without the lock (a signal handler may run while this
        thread holds it)."""
        calls = []
        for span in list(self.in_flight.values()):
            call = span.interrupted_call(reason)
            if call is not None:
                if self.pricer is not None and call.model:
                    self.pricer(call)
                calls.append(call)
        return calls

    def profile_for(self, component_name: str | None) -> ComponentProfile | None:
        if self.profile is None or component_name is None:
            return None
        return self.profile.components.get(component_name)

    def sorted_calls(self) -> list[CallRecord]:
        with self._lock:
            return sorted(self.calls, key=lambda c: c.seq)


current_capture: ContextVar[RunCapture | None] = ContextVar("genops_current_capture", default=None)
#: The genops span current in this context (a tracer.GenopsSpan; set by the tracer, read by direct-call tracing).
current_span: ContextVar[Any] = ContextVar("genops_current_span", default=None)
