"""The objects `track_pipeline` and `track_session` yield, and the context variables that find them."""

from __future__ import annotations

from contextvars import ContextVar
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.api.results import HaystackComponentResult, HaystackPipelineResult, metric_text
from genops_cli.config import CLASSIFICATIONS, parse_money
from genops_cli.models import CallRecord, RunRecord, quantize_money, utcnow

if TYPE_CHECKING:
    from genops_cli.api.adapter import GenOpsHaystackAdapter


# -- contexts -----------------------------------------------------------------------------------------------

#: Attribution fields a context exposes as attributes (data_classification is a property of its own).
GOVERNANCE_FIELDS = ("team", "project", "environment", "customer_id", "feature", "cost_center", "user_id")

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

    @property
    def governance_attributes(self) -> dict[str, Any]:
        """The run's attribution (team, project, customer_id, user_id, ...) and its tags, as recorded."""
        a = self.run.attribution
        fields = {name: getattr(a, name) for name in (*GOVERNANCE_FIELDS, "data_classification")}
        return {**{k: v for k, v in fields.items() if v is not None}, **a.tags}

    @property
    def data_classification(self) -> str | None:
        return self.run.attribution.data_classification

    @data_classification.setter
    def data_classification(self, value: str) -> None:
        """Classify the run's data (public | internal | confidential | restricted); recorded with the run."""
        if value not in CLASSIFICATIONS:
            raise ValueError(f"data_classification: {value!r} is not one of {', '.join(CLASSIFICATIONS)}")
        self.run.attribution.data_classification = value

    def __getattr__(self, name: str) -> Any:
        """Governance attributes read as attributes: `context.customer_id`, `context.user_id`, and keywords
        given to track_pipeline (`context.tenant_id`). Unknown names raise AttributeError as usual."""
        run = self.__dict__.get("run")
        if run is not None and not name.startswith("_"):
            if name in GOVERNANCE_FIELDS and getattr(run.attribution, name) is not None:
                return getattr(run.attribution, name)
            if name in run.attribution.tags:
                return run.attribution.tags[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def get_metrics(self) -> HaystackPipelineResult:
        """Metrics so far (inside the block) or final (after it)."""
        calls = self.run.calls if self.run.ended_at is not None else self.capture.sorted_calls()
        return HaystackPipelineResult.from_run(self.run, calls, self.custom_metrics, self.estimated_cost)

    def add_custom_metric(self, name: str, value: Any) -> None:
        """Attach a metric to the run; it is recorded with the run as tag `metric.<name>`."""
        self.custom_metrics[name] = value
        self.run.attribution.tags[f"metric.{name}"] = metric_text(value)

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
    """Yielded by `track_session`: groups pipeline runs (their ledger `session_id`) and sums them.

    Runs tracked inside the block join the session by themselves; `add_pipeline_result` (as the guide calls it)
    is idempotent per run. `add_step_result` keeps a workflow step's output for `get_final_results`."""

    def __init__(self, name: str, session_id: str, attributes: dict[str, Any] | None = None) -> None:
        self.session_name = name
        self.session_id = session_id
        self.attributes: dict[str, Any] = dict(attributes or {})
        self.results: list[HaystackPipelineResult] = []
        self.step_results: dict[str, Any] = {}

    def add_pipeline_result(self, result: HaystackPipelineResult) -> None:
        for i, known in enumerate(self.results):
            if result.pipeline_id and known.pipeline_id == result.pipeline_id:
                self.results[i] = result  # the later metrics of the same run (final rather than partial)
                return
        self.results.append(result)

    def add_step_result(self, step_name: str, result: Any) -> None:
        """Keep the output of one workflow step (a pipeline's result, an API response...) under its name."""
        self.step_results[step_name] = result

    def get_step_result(self, step_name: str) -> Any:
        """The output kept for `step_name` (KeyError naming the known steps otherwise)."""
        if step_name not in self.step_results:
            raise KeyError(f"no step {step_name!r} in session {self.session_name!r}; steps: "
                           f"{', '.join(self.step_results) or 'none'}")
        return self.step_results[step_name]

    def get_final_results(self) -> dict[str, Any]:
        """The session's outcome: step outputs by name, the pipeline runs' metrics, and their exact totals."""
        return {
            "session_id": self.session_id,
            "session_name": self.session_name,
            "step_results": dict(self.step_results),
            "pipeline_results": list(self.results),
            "pipeline_ids": self.pipeline_ids,
            "total_pipelines": self.total_pipelines,
            "total_cost": self.total_cost,
            "success": all(r.success for r in self.results),
        }

    @property
    def total_cost(self) -> Decimal:
        return quantize_money(sum((r.total_cost for r in self.results), Decimal(0)))

    @property
    def total_pipelines(self) -> int:
        return len(self.results)

    @property
    def pipeline_ids(self) -> list[str]:
        return [r.pipeline_id for r in self.results]
