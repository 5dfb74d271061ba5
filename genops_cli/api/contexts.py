"""The objects `track_pipeline` and `track_session` yield, and the context variables that find them."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.api.results import HaystackComponentResult, HaystackPipelineResult
from genops_cli.config import parse_money
from genops_cli.models import CallRecord, RunRecord, quantize_money, utcnow

if TYPE_CHECKING:
    from genops_cli.api.adapter import GenOpsHaystackAdapter


# -- contexts -----------------------------------------------------------------------------------------------

_active_pipeline: ContextVar[HaystackPipelineContext | None] = ContextVar("genops_api_pipeline", default=None)
_active_session: ContextVar[HaystackSessionContext | None] = ContextVar("genops_api_session", default=None)


class HaystackPipelineContext:
    """Yielded by `track_pipeline`: the run being tracked (`pipeline_id` is its ledger run id)."""

    def __init__(self, adapter: GenOpsHaystackAdapter, run: RunRecord, capture: Any) -> None:
        self.adapter = adapter
        self.run = run
        self.capture = capture
        self.custom_metrics: dict[str, Any] = {}
        self.estimated_cost: Decimal | None = None
        self._extra_calls: list[CallRecord] = []

    @property
    def pipeline_id(self) -> str:
        return self.run.run_id

    @property
    def pipeline_name(self) -> str:
        return self.run.pipeline_name

    def get_metrics(self) -> HaystackPipelineResult:
        """Metrics so far (inside the block) or final (after it)."""
        calls = self.run.calls if self.run.ended_at is not None else self.capture.sorted_calls()
        return HaystackPipelineResult.from_run(self.run, calls, self.custom_metrics, self.estimated_cost)

    def add_custom_metric(self, name: str, value: Any) -> None:
        """Attach a metric to the run; it is recorded with the run as tag `metric.<name>`."""
        self.custom_metrics[name] = value
        self.run.attribution.tags[f"metric.{name}"] = str(value)

    def add_component_result(self, result: HaystackComponentResult) -> None:
        """Record a component execution the tracer cannot see (code outside Haystack's pipeline loop)."""
        self.capture.add(CallRecord(
            call_id=self.capture.new_call_id(),
            run_id=self.run.run_id,
            seq=self.capture.next_seq(),
            span_kind="component",
            component_name=result.component_name,
            component_type=result.component_type,
            started_at=utcnow() - timedelta(seconds=result.execution_time_seconds),
            latency_ms=result.execution_time_seconds * 1000.0,
            status="ok" if result.success else "error",
            error=result.error_message,
            provider=result.provider_name if result.model_name else None,
            model=result.model_name,
        ))

    def set_estimated_cost(self, amount: Decimal | float | str) -> None:
        """Declare the expected cost of the run: checked against the budgets now (an enforcing policy raises
        BudgetExceededError before the pipeline runs) and kept next to the actual cost (tag `estimated_cost`)."""
        estimate = parse_money(amount, "set_estimated_cost")
        self.estimated_cost = estimate
        self.run.attribution.tags["estimated_cost"] = str(estimate)
        self.adapter._check_estimate(self.run, estimate)


class HaystackSessionContext:
    """Yielded by `track_session`: groups pipeline runs (their ledger `session_id`) and sums them."""

    def __init__(self, name: str, session_id: str) -> None:
        self.session_name = name
        self.session_id = session_id
        self.results: list[HaystackPipelineResult] = []

    def add_pipeline_result(self, result: HaystackPipelineResult) -> None:
        if all(r.pipeline_id != result.pipeline_id or not r.pipeline_id for r in self.results):
            self.results.append(result)

    @property
    def total_cost(self) -> Decimal:
        return quantize_money(sum((r.total_cost for r in self.results), Decimal(0)))

    @property
    def total_pipelines(self) -> int:
        return len(self.results)

    @property
    def pipeline_ids(self) -> list[str]:
        return [r.pipeline_id for r in self.results]
