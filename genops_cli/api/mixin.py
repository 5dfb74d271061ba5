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
        error: BaseException | None = None
        try:
            yield ctx
        except BaseException as exc:
            error = exc
            raise
        finally:
            _finish_component(self, ctx, error)


def _finish_component(component: Any, ctx: ComponentExecutionContext, error: BaseException | None) -> None:
    from haystack import tracing

    tags = {f"metric.{ctx.component_name}.{k}": metric_text(v) for k, v in ctx.custom_metrics.items()}
    active = _active_pipeline.get()
    if active is not None:
        for key, value in ctx.custom_metrics.items():
            active.add_custom_metric(f"{ctx.component_name}.{key}", value)
        return
    span = tracing.tracer.current_span()
    capture = getattr(span, "capture", None)
    adapter = getattr(component, "genops_adapter", None) or get_auto_adapter()
    if capture is not None:
        entry = adapter._orphans.get(capture.run_id) if adapter is not None else None
        if entry is not None:
            entry[0].attribution.tags.update(tags)
        return
    if adapter is None:
        adapter = GenOpsHaystackAdapter()
        component.genops_adapter = adapter
    _record_standalone(adapter, component, ctx, error, tags)


def _record_standalone(adapter: GenOpsHaystackAdapter, component: Any, ctx: ComponentExecutionContext,
                       error: BaseException | None, tags: dict[str, str]) -> None:
    from genops_cli.execution.runner import describe_error
    from genops_cli.models import TokenUsage
    from genops_cli.tracking.usage import extract_usage, provider_for

    cls = type(component)
    fqt = f"{cls.__module__}.{cls.__name__}"
    options = adapter._options({})
    options.extra_tags.update(tags)
    loaded = adapter._loaded(ctx.component_name, None)
    run = adapter.engine.new_record(loaded, options)
    run.started_at = ctx.started_at
    capture = adapter._capture(run, loaded.profile, options)
    configured_model = getattr(component, "model", None)
    provider = provider_for(cls.__name__, fqt, configured_model if isinstance(configured_model, str) else None)
    extracted = extract_usage(ctx.output, provider=provider) if ctx.output is not None else None
    model = (extracted.model if extracted else None) or (configured_model if isinstance(configured_model, str)
                                                         else None)
    usage = extracted.usage if extracted is not None else TokenUsage(source="missing" if model else "none")
    capture.add(CallRecord(
        call_id=capture.new_call_id(), run_id=run.run_id, seq=capture.next_seq(), span_kind="component",
        component_name=ctx.component_name, component_type=ctx.component_type, started_at=ctx.started_at,
        latency_ms=(time.perf_counter() - ctx._t0) * 1000.0,
        status="ok" if error is None else "error",
        error=None if error is None else describe_error(error),
        provider=provider_for(cls.__name__, fqt, model) if model else None, model=model, usage=usage,
    ))
    adapter._finish(run, capture, error if isinstance(error, Exception) else None)
