"""OpenTelemetry export: spans and metrics with the GenAI conventions and genops.* attributes, from recorded runs;
in memory and over OTLP/HTTP to a loopback receiver."""

from __future__ import annotations

import gzip
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import cli, genops_subprocess, json_lines, sample

pytest.importorskip("opentelemetry.sdk")

DEPRECATED = {"gen_ai.system", "gen_ai.usage.prompt_tokens", "gen_ai.usage.completion_tokens"}


@pytest.fixture
def memory_exporter():
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from genops_cli.ledger.hooks import REGISTRY
    from genops_cli.otel import OtelRunExporter

    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], shutdown_on_exit=False)
    exporter = OtelRunExporter(tracer_provider, meter_provider, name="otel:test-memory")
    REGISTRY.register(exporter)
    try:
        yield spans, reader
    finally:
        REGISTRY.unregister(exporter.name)


def test_run_becomes_root_span_with_one_child_per_call(openai_server, memory_exporter):
    spans, reader = memory_exporter
    openai_server.model_map = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500, "cached_tokens": 200,
                           "reasoning_tokens": 40}
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--team", "ml",
                 "--project", "comms", "--customer", "acme-corp", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    finished = spans.get_finished_spans()
    roots = [s for s in finished if s.parent is None]
    assert len(roots) == 1
    root = roots[0]
    assert root.name == "invoke_workflow chain"
    a = root.attributes
    assert a["gen_ai.operation.name"] == "invoke_workflow"
    assert (a["genops.team"], a["genops.project"], a["genops.customer_id"]) == ("ml", "comms", "acme-corp")
    assert a["genops.policy.result"] == "ALLOWED"
    assert a["genops.accounting.unit"] == "USD" and a["genops.cost.currency"] == "USD"
    assert Decimal(str(a["genops.cost.total"])) == Decimal(out["total_cost"])
    assert a["genops.spec.version"] == "0.1"
    children = [s for s in finished if s.parent is not None]
    assert len(children) == len(out["components"])
    assert all(s.parent.span_id == root.context.span_id and s.context.trace_id == root.context.trace_id
               for s in children)
    llm = {s.attributes["genops.operation.name"]: s for s in children if s.attributes.get("gen_ai.request.model")}
    drafter = llm["drafter"]
    assert drafter.name == "chat gpt-4o-mini-2024-07-18"
    d = drafter.attributes
    assert d["gen_ai.operation.name"] == "chat" and d["gen_ai.provider.name"] == "openai"
    assert d["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert (d["gen_ai.usage.input_tokens"], d["gen_ai.usage.output_tokens"]) == (1000, 500)
    assert d["gen_ai.usage.cache_read.input_tokens"] == 200
    assert d["gen_ai.usage.reasoning.output_tokens"] == 40
    assert d["gen_ai.request.max_tokens"] == 512
    component = next(c for c in out["components"] if c["name"] == "drafter")
    assert Decimal(str(d["genops.cost.total"])) == Decimal(component["cost"])
    # timing is the recorded one: child inside the root, duration = recorded latency
    assert root.start_time <= drafter.start_time <= drafter.end_time <= root.end_time
    assert abs((drafter.end_time - drafter.start_time) / 1e6 - component["latency_ms"]) < 1
    for s in finished:
        assert not DEPRECATED & set(s.attributes)
    metrics = reader.get_metrics_data()
    names = {m.name: m for rm in metrics.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= set(names)
    points = names["gen_ai.client.token.usage"].data.data_points
    inputs = sum(p.sum for p in points if p.attributes["gen_ai.token.type"] == "input")
    outputs = sum(p.sum for p in points if p.attributes["gen_ai.token.type"] == "output")
    assert (inputs, outputs) == (2000, 1000)


def test_failed_call_span_has_error_status(openai_server, memory_exporter):
    from opentelemetry.trace import StatusCode

    spans, _ = memory_exporter
    openai_server.failures = [{"status": 400, "message": "bad request from test"}]
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json")
    assert result.exit_code == 1
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.parent is None)
    assert root.status.status_code == StatusCode.ERROR
    assert any(s.status.status_code == StatusCode.ERROR and s.attributes.get("error.type") for s in finished
               if s.parent is not None)


class _Receiver:
    """A loopback OTLP/HTTP receiver: POST /v1/traces and /v1/metrics, protobuf bodies kept for the test."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = {"/v1/traces": [], "/v1/metrics": []}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                receiver.bodies.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> _Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_genops_run_exports_to_otlp_http_endpoint(openai_server, tmp_path):
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    with _Receiver() as receiver:
        proc = genops_subprocess("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--team", "ml",
                                 "--json", env={"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
        assert proc.returncode == 0, proc.stderr
        [out] = json_lines(proc.stdout)
    spans = []
    for body in receiver.bodies["/v1/traces"]:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for rs in request.resource_spans:
            service = {kv.key: kv.value.string_value for kv in rs.resource.attributes}["service.name"]
            assert service == "genops"
            for ss in rs.scope_spans:
                spans.extend(ss.spans)
    assert len(spans) == 1 + len(out["components"])
    attrs = {s.name: {kv.key: kv.value for kv in s.attributes} for s in spans}
    root = attrs["invoke_workflow chain"]
    assert root["genops.team"].string_value == "ml"
    assert root["genops.run_id"].string_value == out["run_id"]
    chat = [a for name, a in attrs.items() if name.startswith("chat ")]
    assert sorted(a["gen_ai.usage.input_tokens"].int_value for a in chat) == [1000, 1000]
    metric_names = set()
    for body in receiver.bodies["/v1/metrics"]:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        metric_names |= {m.name for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert {"gen_ai.client.token.usage", "gen_ai.client.operation.duration"} <= metric_names


def test_endpoint_resolution(monkeypatch):
    from genops_cli.config import Settings
    from genops_cli.otel import otlp_traces_endpoint

    assert otlp_traces_endpoint(Settings()) is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    assert otlp_traces_endpoint(Settings()) == "http://collector:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4318/custom")
    assert otlp_traces_endpoint(Settings()) == "http://traces:4318/custom"
    assert otlp_traces_endpoint(Settings(otlp_endpoint="http://yml:4318")) == "http://yml:4318/v1/traces"
