"""Component-level instrumentation: a mixin for custom components (`track_execution`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from genops_cli.api.adapter import GenOpsHaystackAdapter
from genops_cli.api.contexts import _active_pipeline
from genops_cli.api.instrument import get_auto_adapter
from genops_cli.api.results import metric_text
from genops_cli.config import parse_money
from genops_cli.models import CallRecord, utcnow

# -- component-level instrumentation ------------------------------------------------------------------------

class ComponentExecutionContext:
    """Yielded by `GenOpsComponentMixin.track_execution`: custom metrics and (optionally) the component's output,
    from which usage is read exactly as the tracer reads it."""

    def __init__(self, component_name: str, component_type: str) -> None:
        self.component_name = component_name
        self.component_type = component_type
        self.custom_metrics: dict[str, Any] = {}
        self.output: Any = None
        self.estimated_cost: Decimal | None = None
        self.started_at = utcnow()
        self._t0 = time.perf_counter()

    def add_custom_metric(self, name: str, value: Any) -> None:
        self.custom_metrics[name] = value

    def set_estimated_cost(self, amount: Decimal | float | str) -> None:
        """The component's own estimate of what it cost (work no provider bills per token): recorded with the
        run as the metric `<component>.estimated_cost`, exact (Decimal); the run's total stays the priced cost."""
        self.estimated_cost = parse_money(amount, "set_estimated_cost")
        self.custom_metrics["estimated_cost"] = self.estimated_cost

    def record_output(self, output: Any) -> None:
        """Give the component's output (e.g. `{"replies": [...]}`) so a standalone call is priced from its usage."""
        self.output = output


class GenOpsComponentMixin:
    """Mix into a custom component to track its executions::

        class InstrumentedGenerator(OpenAIChatGenerator, GenOpsComponentMixin):
            def run(self, messages, **kwargs):
                with self.track_execution("InstrumentedGenerator") as ctx:
                    result = super().run(messages, **kwargs)
                    ctx.add_custom_metric("messages", len(messages))
                    ctx.record_output(result)
                    return result

    Inside a tracked pipeline run (track_pipeline or auto_instrument) the tracer already records the component's
    call: the custom metrics join that run as tags `metric.<component>.<name>`. Called on its own, the execution
    becomes a run of its own (one call, priced from the recorded output's usage), attributed with the adapter
    given as `genops_adapter` (attribute) or the auto_instrument adapter.
    """

    genops_adapter: GenOpsHaystackAdapter | None = None

    @contextlib.contextmanager
    def track_execution(self, component_name: str | None = None) -> Iterator[ComponentExecutionContext]:
        cls = type(self)
        ctx = ComponentExecutionContext(component_name or cls.__name__, cls.__name__)
        standalone = _open_standalone(self, ctx)  # raises BudgetExceededError before the call when blocked
        error: BaseException | None = None
        try:
            yield ctx
        except BaseException as exc:
            error = exc
            raise
        finally:
            _finish_component(self, ctx, error, standalone)


def _component_adapter(component: Any) -> GenOpsHaystackAdapter:
    adapter = getattr(component, "genops_adapter", None) or get_auto_adapter()
    if adapter is None:
        adapter = GenOpsHaystackAdapter()
        component.genops_adapter = adapter
    return adapter


def _model_of(component: Any) -> tuple[str | None, str | None]:
    from genops_cli.tracking.usage import provider_for

    cls = type(component)
    model = getattr(component, "model", None)
    model = model if isinstance(model, str) else None
    return model, provider_for(cls.__name__, f"{cls.__module__}.{cls.__name__}", model)


def _open_standalone(component: Any, ctx: ComponentExecutionContext) -> Any:
    """A run session when the execution is a run of its own (not inside a tracked pipeline run), preflighted:
    compliance and budgets with the component's worst case (its max_tokens, else the model's output limit) before
    its provider call. None inside a tracked run (the tracer admits the call there)."""
    from haystack import tracing

    if _active_pipeline.get() is not None or getattr(tracing.tracer.current_span(), "capture", None) is not None:
        return None
    from genops_cli.policy.admission import requested_max_tokens, worst_case_request

    adapter = _component_adapter(component)
    session = adapter._session(ctx.component_name, None, adapter._options({}))
    session.run.started_at = ctx.started_at
    session.open_capture()
    model, provider = _model_of(component)
    max_tokens = requested_max_tokens({"generation_kwargs": getattr(component, "generation_kwargs", None)})

    def estimate() -> Decimal:
        return worst_case_request(session.run.run_id, ctx.component_name, "llm", provider, model, {}, max_tokens,
                                  adapter.settings.max_tokens_cap, tenant=session.run.attribution.customer_id
                                  ).worst_case

    if session.preflight({}, estimate=estimate).result == "BLOCKED":
        adapter._end(session, None)
        raise session.blocked_error()
    return session


def _finish_component(component: Any, ctx: ComponentExecutionContext, error: BaseException | None,
                      standalone: Any) -> None:
    from haystack import tracing

    tags = {f"metric.{ctx.component_name}.{k}": metric_text(v) for k, v in ctx.custom_metrics.items()}
    if standalone is not None:
        _record_standalone(component, ctx, error, tags, standalone)
        return
    active = _active_pipeline.get()
    if active is not None:
        for key, value in ctx.custom_metrics.items():
            active.add_custom_metric(f"{ctx.component_name}.{key}", value)
        return
    capture = getattr(tracing.tracer.current_span(), "capture", None)
    adapter = getattr(component, "genops_adapter", None) or get_auto_adapter()
    session = adapter._orphans.get(capture.run_id) if adapter is not None and capture is not None else None
    if session is not None:
        session.run.attribution.tags.update(tags)


def _record_standalone(component: Any, ctx: ComponentExecutionContext, error: BaseException | None,
                       tags: dict[str, str], session: Any) -> None:
    from genops_cli.execution.session import describe_error
    from genops_cli.models import TokenUsage
    from genops_cli.tracking.usage import extract_usage, provider_for

    cls = type(component)
    configured_model, provider = _model_of(component)
    session.run.attribution.tags.update(tags)
    capture = session.capture
    extracted = extract_usage(ctx.output, provider=provider) if ctx.output is not None else None
    model = (extracted.model if extracted else None) or configured_model
    usage = extracted.usage if extracted is not None else TokenUsage(source="missing")
    capture.add(CallRecord(
        call_id=capture.new_call_id(), run_id=session.run.run_id, seq=capture.next_seq(), span_kind="component",
        component_name=ctx.component_name, component_type=ctx.component_type, started_at=ctx.started_at,
        latency_ms=(time.perf_counter() - ctx._t0) * 1000.0,
        status="ok" if error is None else "error",
        error=None if error is None else describe_error(error),
        provider=provider_for(cls.__name__, f"{cls.__module__}.{cls.__name__}", model) if model else None,
        model=model, usage=usage,
    ))
    session.finish(error if isinstance(error, Exception) else None)
    session.record()
