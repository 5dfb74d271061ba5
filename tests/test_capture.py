"""Capture through the genops Tracer: leaf-only counting, agents and tools, providers, chaining, threads,
2.x span shapes, privacy. Real Haystack components talk to loopback providers; money is exact."""

from __future__ import annotations

import contextlib
import contextvars
import threading
from decimal import Decimal
from typing import Any

from conftest import cli, json_lines, ledger_rows, sample
from fakeproviders import tool_call
from haystack import tracing
from haystack.tracing import Span, Tracer

from genops_cli.models import utcnow
from genops_cli.tracking.capture import RunCapture, current_capture
from genops_cli.tracking.tracer import capture_run, install_tracer


def test_agent_tool_flow_records_each_llm_step_and_tool_call(openai_server):
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 20}
    openai_server.script = [tool_call("search_model_catalog", {"query": "restricted data"}), "Use model X [mc-001]."]
    result = cli("run", sample("agent"), "--inputs", sample("agent", "inputs.json"),
                 "--documents", sample("agent", "corpus.jsonl"), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    kinds = [(c["span_kind"], c["name"], c["tool_name"], c["agent_step"]) for c in out["components"]]
    llm_steps = [c for c in out["components"] if c["span_kind"] == "agent_llm"]
    tools = [c for c in out["components"] if c["span_kind"] == "tool"]
    assert len(llm_steps) == 2, kinds
    assert [t["tool_name"] for t in tools] == ["search_model_catalog"]
    assert tools[0]["status"] == "ok"
    # gpt-4o-mini: 100 x 0.15 + 20 x 0.60 per 1M = 0.000027 per step, counted at the steps only
    assert all(Decimal(c["cost"]) == Decimal("0.000027") for c in llm_steps)
    agent = next(c for c in out["components"] if c["span_kind"] == "component" and c["name"] == "agent")
    assert agent["model"] is None and Decimal(agent["cost"]) == 0
    assert Decimal(out["total_cost"]) == Decimal("0.000054")
    assert openai_server.count("/chat/completions") == 2


def test_n_replies_are_counted_once(openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 300, "completion_tokens": 90}
    yml = (sample("chain"))
    text = open(yml).read().replace("max_tokens: 512", "max_tokens: 512\n        n: 3", 1)
    path = tmp_path / "chain_n3.yml"
    path.write_text(text)
    result = cli("run", str(path), "--inputs", sample("chain", "inputs.json"), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    drafter = next(c for c in out["components"] if c["name"] == "drafter")
    assert (drafter["input_tokens"], drafter["output_tokens"]) == (300, 90)
    bodies = openai_server.bodies("/chat/completions")
    assert bodies[0].get("n") == 3


def test_anthropic_cache_tokens_normalized_and_priced(anthropic_server):
    anthropic_server.usage = {"input_tokens": 50, "output_tokens": 20, "cache_read_input_tokens": 40,
                              "cache_creation_input_tokens": 10}
    result = cli("run", sample("anthropic_chain"), "--inputs", sample("anthropic_chain", "inputs.json"), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    llm = next(c for c in out["components"] if c["model"])
    assert llm["provider"] == "anthropic"
    assert (llm["input_tokens"], llm["cache_read_tokens"], llm["cache_write_tokens"], llm["output_tokens"]) == (
        100, 40, 10, 20)
    # claude-3-haiku: 50 x 0.25 + 40 x 0.03 + 10 x 0.30 + 20 x 1.25 per 1M
    assert Decimal(llm["cost"]) == Decimal("0.0000417")


def _embedding_rag_with_own_index(tmp_path: Any) -> str:
    """The embedding_rag sample with an index of its own: its store is shared process-wide by index name
    (`shared: true`), and a store that already holds documents is not filled again."""
    import uuid

    text = open(sample("embedding_rag")).read()
    assert "index: ai_gateway_docs" in text
    path = tmp_path / "pipeline.yml"
    path.write_text(text.replace("index: ai_gateway_docs", f"index: test-{uuid.uuid4().hex}"))
    return str(path)


def test_embedding_pipeline_embeds_documents_and_records_both_calls(openai_server, tmp_path):
    openai_server.model_usage = {"text-embedding-3-small": {"prompt_tokens": 1000}}
    openai_server.usage = {"prompt_tokens": 500, "completion_tokens": 100}
    result = cli("run", _embedding_rag_with_own_index(tmp_path), "--inputs", sample("embedding_rag", "inputs.json"),
                 "--documents", sample("embedding_rag", "corpus.jsonl"), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    embeddings = [c for c in out["components"] if c["span_kind"] == "embedding"]
    assert [c["name"] for c in embeddings] == ["genops_document_embedder", "query_embedder"]
    # text-embedding-3-small: 0.02 per 1M tokens
    assert all(Decimal(c["cost"]) == Decimal("0.00002") for c in embeddings)
    retriever = next(c for c in out["components"] if c["name"] == "retriever")
    assert retriever["status"] == "ok"
    [(docs,)] = ledger_rows("SELECT documents_retrieved FROM calls WHERE component_name = 'retriever'")
    assert docs == 3


def test_unknown_model_is_unpriced_and_named(openai_server, tmp_path):
    text = open(sample("rag")).read().replace("model: gpt-4o-mini", "model: acme-private-llm-9")
    path = tmp_path / "p.yml"
    path.write_text(text)
    result = cli("run", str(path), "--inputs", sample("rag", "inputs.json"), "--json")
    assert result.exit_code == 0
    [out] = json_lines(result.stdout)
    assert out["unpriced_models"] == ["openai:acme-private-llm-9"]
    llm = next(c for c in out["components"] if c["model"])
    assert llm["priced"] is False
    assert "acme-private-llm-9" in result.stderr and "unpriced" in result.stderr
    [(priced,)] = ledger_rows("SELECT priced FROM calls WHERE model = 'acme-private-llm-9'")
    assert priced is False


def test_streaming_without_usage_is_estimated_offline_and_labelled(openai_server, tmp_path):
    # Configured not to ask for usage (genops asks by default), so the stream carries none.
    text = open(sample("rag")).read().replace(
        "streaming_callback: null", "streaming_callback: haystack.components.generators.utils.print_streaming_chunk"
    ).replace("max_tokens: 512", "max_tokens: 512\n        stream_options: {include_usage: false}", 1)
    path = tmp_path / "p.yml"
    path.write_text(text)
    result = cli("run", str(path), "--inputs", sample("rag", "inputs.json"), "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout.splitlines()[-1])
    llm = next(c for c in out["components"] if c["model"])
    assert llm["usage_source"] == "estimated"
    assert llm["input_tokens"] > 50 and llm["output_tokens"] > 0 and Decimal(llm["cost"]) > 0


def test_question_text_never_reaches_the_ledger(openai_server):
    result = cli("run", sample("rag"), "--input", "retriever.query=zebra-canary-question",
                 "--input", "prompt_builder.question=zebra-canary-question", "--json")
    assert result.exit_code == 0, result.stderr
    for table in ("runs", "calls", "audit_log"):
        rows = ledger_rows(f"SELECT * FROM {table}")
        assert "zebra-canary" not in repr(rows)


class _RecordingSpan(Span):
    def __init__(self, log: list, name: str) -> None:
        self.log, self.name = log, name

    def set_tag(self, key: str, value: Any) -> None:
        self.log.append((self.name, key))


class _RecordingTracer(Tracer):
    """A tracer installed before genops, as a connector in the YAML would install one."""

    def __init__(self) -> None:
        self.spans: list[str] = []
        self.tags: list[tuple[str, str]] = []

    @contextlib.contextmanager
    def trace(self, operation_name: str, tags: dict | None = None, parent_span: Span | None = None):
        self.spans.append(operation_name)
        self.tags.extend((operation_name, key) for key in tags or {})
        yield _RecordingSpan(self.tags, operation_name)

    def current_span(self) -> Span | None:
        return None


def test_previously_installed_tracer_keeps_receiving_spans(openai_server):
    previous = _RecordingTracer()
    before = tracing.tracer.actual_tracer
    tracing.enable_tracing(previous)
    try:
        result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json")
        assert result.exit_code == 0, result.stderr
        assert previous.spans.count("haystack.component.run") == 3
        assert ("haystack.component.run", "haystack.component.name") in previous.tags
        [out] = json_lines(result.stdout)
        assert sum(1 for c in out["components"] if c["model"]) == 1
    finally:
        tracing.enable_tracing(before)


def _emit(tracer: Any, op: str, tags: dict | None = None, parent: Any = None, output: Any = None,
          output_tag: str = "haystack.component.output"):
    """Open a span the way Haystack does and optionally set its output content tag."""
    cm = tracer.trace(op, tags=tags or {}, parent_span=parent)
    span = cm.__enter__()
    if output is not None:
        span.set_content_tag(output_tag, output)
    return cm, span


def _reply(usage: dict, model: str = "gpt-4o-mini-2024-07-18") -> Any:
    from haystack.dataclasses import ChatMessage

    return ChatMessage.from_assistant("ok", meta={"model": model, "usage": usage})


def test_haystack_2x_agent_shape_counts_the_inner_generator_only():
    """In 2.x an Agent ran its generator as nested haystack.component.run spans: count the leaf once."""
    tracer = install_tracer()
    capture = RunCapture("run-2x", pricer=None)
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    with capture_run(capture):
        pipe_cm, pipe = _emit(tracer, "haystack.pipeline.run")
        agent_tags = {"haystack.component.name": "agent", "haystack.component.type": "Agent",
                      "haystack.component.fully_qualified_type": "haystack.components.agents.agent.Agent"}
        agent_cm, agent = _emit(tracer, "haystack.component.run", agent_tags, parent=pipe)
        gen_tags = {"haystack.component.name": "chat_generator", "haystack.component.type": "OpenAIChatGenerator",
                    "haystack.component.fully_qualified_type":
                        "haystack.components.generators.chat.openai.OpenAIChatGenerator"}
        for _ in range(2):
            gen_cm, _gen = _emit(tracer, "haystack.component.run", gen_tags, parent=agent,
                                 output={"replies": [_reply(usage)]})
            gen_cm.__exit__(None, None, None)
        # The Agent's own output repeats the replies (and an aggregated token_usage): not counted again.
        agent.set_content_tag("haystack.component.output", {"replies": [_reply({"prompt_tokens": 20,
                                                                                 "completion_tokens": 10})]})
        agent_cm.__exit__(None, None, None)
        pipe_cm.__exit__(None, None, None)
    billable = [c for c in capture.calls if c.model]
    assert [(c.component_name, c.usage.input_tokens, c.usage.output_tokens) for c in billable] == [
        ("chat_generator", 10, 5), ("chat_generator", 10, 5)]
    agent_call = next(c for c in capture.calls if c.component_name == "agent")
    assert agent_call.model is None and agent_call.usage.input_tokens == 0


def test_legacy_generator_meta_list_and_async_pipeline_span():
    tracer = install_tracer()
    capture = RunCapture("run-legacy", pricer=None)
    with capture_run(capture):
        pipe_cm, pipe = _emit(tracer, "haystack.async_pipeline.run")
        tags = {"haystack.component.name": "gen", "haystack.component.type": "OpenAIGenerator",
                "haystack.component.fully_qualified_type": "haystack.components.generators.openai.OpenAIGenerator"}
        cm, _ = _emit(tracer, "haystack.component.run", tags, parent=pipe, output={
            "replies": ["hi"], "meta": [{"model": "gpt-4o-mini", "usage": {"prompt_tokens": 7,
                                                                           "completion_tokens": 3}}]})
        cm.__exit__(None, None, None)
        pipe_cm.__exit__(None, None, None)
    [call] = [c for c in capture.calls if c.model]
    assert (call.provider, call.usage.input_tokens, call.usage.output_tokens) == ("openai", 7, 3)


def test_parent_span_routes_spans_from_worker_threads_to_their_run():
    """Async pipelines finish components on other threads; the explicit parent_span decides the run."""
    tracer = install_tracer()
    captures = [RunCapture(f"run-{i}", pricer=None) for i in range(2)]
    contexts = [contextvars.copy_context() for _ in captures]
    roots = []

    def open_root(capture: RunCapture) -> Any:
        token = current_capture.set(capture)
        root = _emit(tracer, "haystack.pipeline.run")
        current_capture.reset(token)
        return root

    for ctx, capture in zip(contexts, captures, strict=True):
        roots.append(ctx.run(open_root, capture))
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            tags = {"haystack.component.name": f"gen{i}", "haystack.component.type": "OpenAIChatGenerator"}
            cm, _ = _emit(tracer, "haystack.component.run", tags, parent=roots[i][1],
                          output={"replies": [_reply({"prompt_tokens": i + 1, "completion_tokens": 1})]})
            cm.__exit__(None, None, None)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for ctx, (cm, _) in zip(contexts, roots, strict=True):
        ctx.run(cm.__exit__, None, None, None)
    assert not errors
    for i, capture in enumerate(captures):
        [call] = [c for c in capture.calls if c.model]
        assert call.component_name == f"gen{i}" and call.usage.input_tokens == i + 1
        assert call.started_at <= utcnow()


def test_max_cost_stops_before_the_next_llm_call(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 1000}
    # The drafter's worst case (gpt-4o-mini, max_tokens 512: ~$0.0003) fits under the cap; after its call, its
    # cost plus the reviewer's worst case (gpt-4o, max_tokens 512: ~$0.005) does not.
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--max-cost", "0.001",
                 "--json")
    assert result.exit_code == 3, result.stderr
    [out] = json_lines(result.stdout)
    assert out["status"] == "blocked"
    drafter = next(c for c in out["components"] if c["name"] == "drafter")
    assert Decimal(drafter["cost"]) == Decimal("0.00075")
    assert Decimal(out["total_cost"]) == Decimal("0.00075")
    assert openai_server.count("/chat/completions") == 1
