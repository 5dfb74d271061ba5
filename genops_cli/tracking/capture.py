"""RunCapture: the calls of one pipeline run as the tracer sees them, priced as they finish.

The runner opens a capture around `pipeline.run()`; the tracer finds it through a ContextVar (or through the
parent span, for components that run in worker threads) and appends one CallRecord per finished span.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal

from genops_cli.errors import RunCostCapReached
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


@dataclass
class PipelineProfile:
    name: str
    path: str
    pipeline_hash: str
    components: dict[str, ComponentProfile] = field(default_factory=dict)

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


class SharedBudget:
    """A cost limit shared by the concurrent runs of a batch (`genops run --inputs batch.jsonl --max-cost 5`).

    Every priced call adds to `spent`; once it reaches `limit`, runs stop before their next LLM call and the
    batch starts no new run. Thread-safe.
    """

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit
        self.spent = Decimal(0)
        self._lock = threading.Lock()

    def add(self, cost: Decimal) -> None:
        with self._lock:
            self.spent = quantize_money(self.spent + cost)

    @property
    def exhausted(self) -> bool:
        return self.spent >= self.limit


class RunCapture:
    """Collects CallRecords for one run. Thread-safe: async pipelines finish spans on several threads."""

    def __init__(
        self,
        run_id: str,
        profile: PipelineProfile | None = None,
        pricer: Pricer | None = None,
        max_cost: Decimal | None = None,
        capture_content: bool = False,
        budget: SharedBudget | None = None,
    ) -> None:
        self.run_id = run_id
        self.budget = budget
        self.profile = profile
        self.pricer = pricer
        self.max_cost = max_cost
        self.capture_content = capture_content
        self.calls: list[CallRecord] = []
        self.cost = Decimal(0)
        self.cap_reached = False
        self.pipeline_name: str | None = profile.name if profile else None
        self._seq = 0
        self._lock = threading.Lock()

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
        if self.budget is not None and call.cost:
            self.budget.add(call.cost)

    def before_llm_call(self, component_name: str) -> None:
        """Raise before a provider call once the run's cost cap is reached (the call is not made)."""
        if self.max_cost is not None and self.cost >= self.max_cost:
            self.cap_reached = True
            raise RunCostCapReached(
                f"run cost cap ${self.max_cost} reached (spent ${self.cost}); stopped before {component_name}"
            )
        if self.budget is not None and self.budget.exhausted:
            self.cap_reached = True
            raise RunCostCapReached(
                f"batch cost cap ${self.budget.limit} reached (spent ${self.budget.spent}); "
                f"stopped before {component_name}"
            )

    def profile_for(self, component_name: str | None) -> ComponentProfile | None:
        if self.profile is None or component_name is None:
            return None
        return self.profile.components.get(component_name)

    def sorted_calls(self) -> list[CallRecord]:
        with self._lock:
            return sorted(self.calls, key=lambda c: c.seq)


current_capture: ContextVar[RunCapture | None] = ContextVar("genops_current_capture", default=None)
