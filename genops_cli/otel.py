"""OpenTelemetry export of recorded runs (optional extra: `pip install 'genops-cli[otel]'`).

Each recorded run becomes one root span (`invoke_workflow <pipeline>`) with one child span per recorded call,
placed at the call's recorded start time and latency, plus the GenAI client metrics
`gen_ai.client.token.usage` and `gen_ai.client.operation.duration` and a `genops.cost` counter. Attributes follow
the OpenTelemetry GenAI semantic conventions (no deprecated names) and the GenOps spec (`genops.*`).

Export is switched on by an OTLP endpoint: `observability.otlp_endpoint` in `.genops.yml`, or the standard
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP over HTTP/protobuf; other standard
`OTEL_*` variables such as headers and timeouts are read by the OpenTelemetry exporter itself). The engine calls
`ensure_configured(settings)` at start-up (`startup.install_hooks`); the exporter is a ledger hook, so every run is
exported once its ingestion committed, whichever process ingests it (`genops run`, batches, the Python API, a
spool drain).

    from genops_cli.otel import OtelRunExporter
    exporter = OtelRunExporter(tracer_provider, meter_provider)   # e.g. with an InMemorySpanExporter in tests
    exporter.export(run)                                          # or REGISTRY.register(exporter)

Importing this module is cheap: opentelemetry is imported only when an exporter is built.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from genops_cli.ledger.hooks import RunHook
from genops_cli.redact import redact, redact_obj

if TYPE_CHECKING:
    from genops_cli.config import Settings
    from genops_cli.models import CallRecord, RunRecord

#: GenOps spec version the `genops.*` attributes follow.
SPEC_VERSION = "0.1"
INSTRUMENTATION_NAME = "genops_cli"

#: genops/genai-prices provider ids -> `gen_ai.provider.name` well-known values.
GENAI_PROVIDER_NAMES = {
    "openai": "openai",
    "azure": "azure.ai.openai",
    "anthropic": "anthropic",
    "aws": "aws.bedrock",
    "bedrock": "aws.bedrock",
    "google": "gcp.gen_ai",
    "google-vertex": "gcp.vertex_ai",
    "cohere": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "x-ai": "x_ai",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "ibm": "ibm.watsonx.ai",
}

_log = logging.getLogger("genops.otel")
_lock = threading.Lock()
_configured: dict[str, OtelRunExporter] = {}
_missing_warned = False


def otlp_traces_endpoint(settings: Settings | None) -> str | None:
    """The OTLP/HTTP traces URL: `.genops.yml` observability.otlp_endpoint (a base URL, like the standard
    variable), else OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is), else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces."""
    base = settings.otlp_endpoint if settings is not None else None
    if not base:
        full = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        if full:
            return full
        base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not base:
        return None
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


def ensure_configured(settings: Settings | None) -> OtelRunExporter | None:
    """Register an OTLP exporter with the engine once per endpoint when one is configured (else do nothing)."""
    global _missing_warned
    endpoint = otlp_traces_endpoint(settings)
    if not endpoint:
        return None
    with _lock:
        existing = _configured.get(endpoint)
        if existing is not None:
            return existing
        try:
            exporter = OtelRunExporter.for_endpoint(endpoint, settings)
        except ImportError:
            if not _missing_warned:
                _missing_warned = True
                _log.warning("OTLP endpoint %s configured but opentelemetry is not installed; "
                             "pip install 'genops-cli[otel]'", endpoint)
            return None
        from genops_cli.ledger.hooks import REGISTRY

        exporter.name = f"otel:{endpoint}"
        _configured[endpoint] = exporter
        REGISTRY.register(exporter)
        atexit.register(_shutdown_at_exit, exporter)
        return exporter


def _shutdown_at_exit(exporter: OtelRunExporter) -> None:
    # atexit runs handlers last-registered first: this one may run before the recorders' flush, so flush them
    # here (their runs are exported on the way) before the providers shut down.
    import sys

    recorder = sys.modules.get("genops_cli.ledger.recorder")
    if recorder is not None:
        recorder.close_all()
    exporter.shutdown()


def _ns(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1_000_000_000)


def _clean(attrs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if v is not None and v != ""}


def provider_name(provider: str | None) -> str | None:
    if not provider:
        return None
    return GENAI_PROVIDER_NAMES.get(provider.lower(), provider.lower())


def operation_name(call: CallRecord) -> str | None:
    """The GenAI operation of a call, or None for plain components (builders, routers...)."""
    if call.span_kind in ("agent_llm", "chat_generator"):
        return "chat"
    if call.span_kind == "embedding":
        return "embeddings"
    if call.span_kind == "tool":
        return "execute_tool"
    if call.model:
        return "chat"
    if "Retriever" in call.component_type:
        return "retrieval"
    if call.component_type.endswith("Agent"):
        return "invoke_agent"
    return None


def run_attributes(run: RunRecord) -> dict[str, Any]:
    a = run.attribution
    usage_in = sum(c.usage.input_tokens for c in run.calls)
    usage_out = sum(c.usage.output_tokens for c in run.calls)
    return _clean({
        "gen_ai.operation.name": "invoke_workflow",
        "genops.spec.version": SPEC_VERSION,
        "genops.operation.name": run.pipeline_name,
        "genops.operation.type": "pipeline",
        "genops.run_id": run.run_id,
        "genops.pipeline.hash": run.pipeline_hash,
        "genops.session_id": run.session_id,
        "genops.batch_id": run.batch_id,
        "genops.team": a.team,
        "genops.project": a.project,
        "genops.environment": a.environment,
        "genops.customer_id": a.customer_id,
        "genops.feature": a.feature,
        "genops.cost_center": a.cost_center,
        "genops.data_classification": a.data_classification,
        "genops.policy.result": run.policy.result,
        "genops.policy.reason_code": run.policy.reason_code,
        "genops.accounting.reserved": float(run.policy.reserved_cost),
        "genops.accounting.actual": float(run.total_cost),
        "genops.accounting.unit": run.currency,
        "genops.cost.total": float(run.total_cost),
        "genops.cost.currency": run.currency,
        "genops.tokens.input": usage_in,
        "genops.tokens.output": usage_out,
        "genops.tokens.total": usage_in + usage_out,
        "genops.simulated": run.simulated,
        "genops.run.status": run.status,
    })


def call_attributes(run: RunRecord, call: CallRecord) -> dict[str, Any]:
    a = run.attribution
    op = operation_name(call)
    billable = call.model is not None
    attrs: dict[str, Any] = {
        "gen_ai.operation.name": op,
        "gen_ai.provider.name": provider_name(call.provider),
        # The ledger keeps the model the provider answered with; it is also the best request-model value known.
        "gen_ai.request.model": call.model,
        "gen_ai.response.model": call.model,
        "gen_ai.request.max_tokens": call.max_tokens,
        "gen_ai.tool.name": call.tool_name,
        "gen_ai.agent.name": call.component_name if call.span_kind in ("agent_llm", "tool") or op == "invoke_agent"
        else None,
        "genops.spec.version": SPEC_VERSION,
        "genops.operation.name": call.component_name,
        "genops.operation.type": call.span_kind,
        "genops.component.type": call.component_type,
        "genops.team": a.team,
        "genops.project": a.project,
        "genops.environment": a.environment,
        "genops.customer_id": a.customer_id,
        "genops.feature": a.feature,
        "genops.cost_center": a.cost_center,
        "genops.policy.result": run.policy.result,
    }
    if billable:
        attrs.update({
            "gen_ai.usage.input_tokens": call.usage.input_tokens,
            "gen_ai.usage.output_tokens": call.usage.output_tokens,
            "gen_ai.usage.cache_read.input_tokens": call.usage.cache_read_tokens,
            "gen_ai.usage.cache_creation.input_tokens": call.usage.cache_write_tokens,
            "gen_ai.usage.reasoning.output_tokens": call.usage.reasoning_tokens,
            "genops.usage.source": call.usage.source,
            "genops.cost.total": float(call.cost),
            "genops.cost.currency": run.currency,
            "genops.cost.provider": call.provider,
            "genops.cost.model": call.model,
            "genops.cost.priced": call.priced,
            "genops.accounting.actual": float(call.cost),
            "genops.accounting.unit": run.currency,
            "genops.tokens.input": call.usage.input_tokens,
            "genops.tokens.output": call.usage.output_tokens,
            "genops.tokens.total": call.usage.total_tokens,
        })
    attrs["error.type"] = _error_type(call)
    return _clean(attrs)


def _error_type(call: CallRecord) -> str | None:
    """`error.type` of a failed call: the exception class name that starts its one-line error."""
    return call.error.split(":", 1)[0][:100] if call.status != "ok" and call.error else None


def span_name(call: CallRecord) -> str:
    op = operation_name(call)
    if op in ("chat", "embeddings") and call.model:
        return f"{op} {call.model}"
    if op == "execute_tool":
        return f"execute_tool {call.tool_name or call.component_name}"
    if op is not None:
        return f"{op} {call.component_name}"
    return call.component_name


class OtelRunExporter(RunHook):
    """Turns recorded RunRecords into spans and metrics on the given providers; as a ledger hook, exports each
    run once its ingestion committed."""

    def __init__(self, tracer_provider: Any, meter_provider: Any | None = None, name: str = "otel") -> None:
        from genops_cli.versions import genops_version

        self.name = name
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracer = tracer_provider.get_tracer(INSTRUMENTATION_NAME, genops_version())
        self.token_usage = self.duration = self.cost = None
        if meter_provider is not None:
            meter = meter_provider.get_meter(INSTRUMENTATION_NAME, genops_version())
            self.token_usage = meter.create_histogram(
                "gen_ai.client.token.usage", unit="{token}", description="Number of input and output tokens used")
            self.duration = meter.create_histogram(
                "gen_ai.client.operation.duration", unit="s", description="GenAI operation duration")
            self.cost = meter.create_counter("genops.cost", unit="USD", description="Cost of GenAI calls")

    @classmethod
    def for_endpoint(cls, traces_endpoint: str, settings: Settings | None = None) -> OtelRunExporter:
        """An exporter sending OTLP/HTTP protobuf to `traces_endpoint` (metrics to the sibling /v1/metrics)."""
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        service = (settings.service_name if settings is not None else None) or "genops"
        resource = Resource.create({"service.name": service})
        tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_endpoint)))
        metrics_endpoint = traces_endpoint[: -len("/v1/traces")] + "/v1/metrics" \
            if traces_endpoint.endswith("/v1/traces") else None
        meter_provider = None
        if metrics_endpoint is not None:
            reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=metrics_endpoint),
                                                   export_interval_millis=60_000)
            meter_provider = MeterProvider(resource=resource, metric_readers=[reader], shutdown_on_exit=False)
        return cls(tracer_provider, meter_provider)

    def __call__(self, run: RunRecord) -> None:
        self.export(run)

    def after_commit(self, runs: Sequence[RunRecord]) -> None:
        for run in runs:
            self.export(run)

    def export(self, run: RunRecord) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        started = run.started_at
        ended = run.ended_at or started
        root = self.tracer.start_span(f"invoke_workflow {run.pipeline_name}", kind=SpanKind.INTERNAL,
                                      start_time=_ns(started), attributes=redact_obj(run_attributes(run)))
        if run.status != "ok":
            root.set_status(Status(StatusCode.ERROR, redact(run.error) or run.status))
        spans: dict[str, Any] = {}
        for call in sorted(run.calls, key=lambda c: c.seq):
            parent = spans.get(call.parent_call_id or "", root)
            kind = SpanKind.CLIENT if call.model or call.span_kind == "tool" else SpanKind.INTERNAL
            span = self.tracer.start_span(span_name(call), context=trace.set_span_in_context(parent), kind=kind,
                                          start_time=_ns(call.started_at),
                                          attributes=redact_obj(call_attributes(run, call)))
            if call.status != "ok":
                span.set_status(Status(StatusCode.ERROR, redact(call.error) or call.status))
            spans[call.call_id] = span
        for call in run.calls:
            end = call.started_at + timedelta(milliseconds=call.latency_ms)
            spans[call.call_id].end(end_time=_ns(end))
        root.end(end_time=_ns(max(ended, started)))
        self._metrics(run)

    def _metrics(self, run: RunRecord) -> None:
        if self.token_usage is None:
            return
        for call in run.calls:
            op = operation_name(call)
            if op is None:
                continue
            base = _clean({
                "gen_ai.operation.name": op,
                "gen_ai.provider.name": provider_name(call.provider),
                "gen_ai.request.model": call.model,
                "gen_ai.response.model": call.model,
                "error.type": _error_type(call),
            })
            self.duration.record(call.latency_ms / 1000.0, base)
            if call.model is None:
                continue
            self.token_usage.record(call.usage.input_tokens, {**base, "gen_ai.token.type": "input"})
            self.token_usage.record(call.usage.output_tokens, {**base, "gen_ai.token.type": "output"})
            if call.cost:
                self.cost.add(float(call.cost), _clean({
                    **base, "genops.team": run.attribution.team, "genops.project": run.attribution.project,
                    "genops.customer_id": run.attribution.customer_id, "genops.cost.currency": run.currency}))

    def force_flush(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if callable(flush):
                flush()

    def shutdown(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            stop = getattr(provider, "shutdown", None)
            if callable(stop):
                try:
                    stop()
                except Exception as exc:  # at exit: report, never raise
                    _log.warning("OpenTelemetry shutdown failed: %s", exc)


def reset() -> None:
    """Forget configured exporters (tests)."""
    from genops_cli.ledger.hooks import REGISTRY

    with _lock:
        for exporter in _configured.values():
            REGISTRY.unregister(exporter.name)
            exporter.shutdown()
        _configured.clear()
