"""Agents recorded as they happened: tool loops on every API, an Agent nested in an Agent across providers,
exit reasons and step caps, streams with and without usage. Real Haystack Agents talk to the loopback fakes
(scripted with ToolLoop); money is exact."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, json_lines, ledger_rows
from fakeproviders import ToolLoop
from haystack import Pipeline
from haystack.components.agents import Agent
from haystack.components.generators.chat import OpenAIChatGenerator, OpenAIResponsesChatGenerator
from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
from haystack.dataclasses import ChatMessage
from haystack.document_stores.in_memory import InMemoryDocumentStore
from haystack.tools import AgentTool, ComponentTool
from haystack_integrations.components.generators.anthropic import AnthropicChatGenerator

from genops_cli.execution.loading import profile_from_pipeline
from genops_cli.pricing import get_price_book
from genops_cli.tracking.agents import agent_outcomes
from genops_cli.tracking.capture import RunCapture
from genops_cli.tracking.tracer import capture_run

OPENAI_USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}
ANTHROPIC_USAGE = {"input_tokens": 1000, "output_tokens": 100}
# gpt-4o-mini 0.15 / 0.60 per 1M: 1000 x 0.15e-6 + 100 x 0.60e-6
GPT_4O_MINI_STEP = Decimal("0.00021")
# claude-3-5-haiku 0.80 / 4.00 per 1M: 1000 x 0.80e-6 + 100 x 4e-6
HAIKU_STEP = Decimal("0.0012")


def _search_tool(name: str = "web_search") -> ComponentTool:
    return ComponentTool(component=InMemoryBM25Retriever(document_store=InMemoryDocumentStore()), name=name,
                         description="Keyword search.", outputs_to_string={"source": "documents"})


def _pricer(call: Any) -> None:
    get_price_book().price(call.usage, call.model, call.provider, at=call.started_at).apply_to(call)


def _capture(pipeline: Pipeline, data: dict[str, Any]) -> RunCapture:
    capture = RunCapture("run-test", profile_from_pipeline(pipeline, "agents"), pricer=_pricer)
    with capture_run(capture):
        pipeline.run(data)
    return capture


def _messages(text: str = "find it") -> dict[str, Any]:
    return {"messages": [ChatMessage.from_user(text)]}


@pytest.mark.parametrize("generator", ["chat", "responses", "anthropic"])
def test_flat_tool_loop_counts_each_step_once_at_exact_cost(openai_server, anthropic_server, generator):
    openai_server.usage, anthropic_server.usage = dict(OPENAI_USAGE), dict(ANTHROPIC_USAGE)
    loop = ToolLoop("web_search", times=3, arguments={"query": "x"}, final="answer")
    openai_server.responder = anthropic_server.responder = loop
    gen = {"chat": lambda: OpenAIChatGenerator(model="gpt-4o-mini"),
           "responses": lambda: OpenAIResponsesChatGenerator(model="gpt-4o-mini"),
           "anthropic": lambda: AnthropicChatGenerator(model="claude-3-5-haiku-20241022")}[generator]()
    pipeline = Pipeline()
    pipeline.add_component("agent", Agent(chat_generator=gen, tools=[_search_tool()], max_agent_steps=10))
    capture = _capture(pipeline, {"agent": _messages()})

    steps = [c for c in capture.sorted_calls() if c.span_kind == "agent_llm"]
    expected = HAIKU_STEP if generator == "anthropic" else GPT_4O_MINI_STEP
    assert [c.agent_step for c in steps] == [0, 1, 2, 3]
    assert [c.cost for c in steps] == [expected] * 4
    assert {c.component_path for c in steps} == {"agent/chat_generator"}
    assert capture.cost == expected * 4
    [outcome] = agent_outcomes(capture.calls)
    assert (outcome.name, outcome.steps, outcome.max_steps, outcome.exit_reason) == ("agent", 4, 10, "final_answer")


def _nested_pipeline(inner_max_steps: int = 3) -> Pipeline:
    inner = Agent(chat_generator=AnthropicChatGenerator(model="claude-3-5-haiku-20241022"),
                  tools=[_search_tool()], max_agent_steps=inner_max_steps)
    outer = Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"),
                  tools=[AgentTool(agent=inner, name="search_agent", description="Searches the web.")],
                  max_agent_steps=5)
    pipeline = Pipeline()
    pipeline.add_component("researcher", outer)
    return pipeline


def _script_nested(openai_server: Any, anthropic_server: Any, inner_times: int | None = 1) -> None:
    openai_server.usage, anthropic_server.usage = dict(OPENAI_USAGE), dict(ANTHROPIC_USAGE)
    openai_server.responder = ToolLoop("search_agent", times=1,
                                       arguments={"messages": [{"role": "user", "content": "search"}]},
                                       final="Here is the answer.")
    anthropic_server.responder = ToolLoop("web_search", times=inner_times, arguments={"query": "q"},
                                          final="Inner findings.")


def _nested_yaml(tmp_path: Path, inner_max_steps: int = 3) -> str:
    path = tmp_path / "nested.yml"
    path.write_text(_nested_pipeline(inner_max_steps).dumps())
    return str(path)


def test_nested_agent_across_providers_is_priced_as_its_own_provider(openai_server, anthropic_server, tmp_path):
    _script_nested(openai_server, anthropic_server)
    result = cli("run", _nested_yaml(tmp_path), "--input",
                 'researcher.messages=[{"role": "user", "content": [{"text": "hi"}]}]', "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    llm = [(c["path"], c["provider"], c["model"], c["agent_step"], Decimal(c["cost"]))
           for c in out["components"] if c["span_kind"] == "agent_llm"]
    assert llm == [
        ("researcher/chat_generator", "openai", "gpt-4o-mini", 0, GPT_4O_MINI_STEP),
        ("researcher/tool:search_agent/search_agent/chat_generator", "anthropic", "claude-3-5-haiku-20241022", 0,
         HAIKU_STEP),
        ("researcher/tool:search_agent/search_agent/chat_generator", "anthropic", "claude-3-5-haiku-20241022", 1,
         HAIKU_STEP),
        ("researcher/chat_generator", "openai", "gpt-4o-mini", 1, GPT_4O_MINI_STEP),
    ]
    assert out["unpriced_models"] == []
    assert Decimal(out["total_cost"]) == 2 * GPT_4O_MINI_STEP + 2 * HAIKU_STEP == Decimal("0.00282")
    agents = {a["path"]: a for a in out["agents"]}
    assert set(agents) == {"researcher", "researcher/tool:search_agent/search_agent"}
    outer, inner = agents["researcher"], agents["researcher/tool:search_agent/search_agent"]
    assert (outer["steps"], outer["llm_calls"], Decimal(outer["cost"])) == (2, 2, 2 * GPT_4O_MINI_STEP)
    assert (inner["name"], inner["steps"], inner["llm_calls"], Decimal(inner["cost"])) == (
        "search_agent", 2, 2, 2 * HAIKU_STEP)
    assert outer["exit_reason"] == inner["exit_reason"] == "final_answer"
    assert out["agent_hit_max_steps"] is False
    # One vocabulary for where usage came from, on every record.
    assert {source for (source,) in ledger_rows("SELECT DISTINCT usage_source FROM calls")} <= {
        "reported", "estimated", "missing"}

    # The ledger keeps the same: each step belongs to its own agent instance.
    rows = ledger_rows("SELECT c.component_name, c.provider, c.agent_step, a.component_path, a.exit_reason "
                       "FROM calls c JOIN calls a ON a.call_id = c.agent_instance "
                       "WHERE c.span_kind = 'agent_llm' ORDER BY c.seq")
    assert rows == [("researcher", "openai", 0, "researcher", "final_answer"),
                    ("search_agent", "anthropic", 0, "researcher/tool:search_agent/search_agent", "final_answer"),
                    ("search_agent", "anthropic", 1, "researcher/tool:search_agent/search_agent", "final_answer"),
                    ("researcher", "openai", 1, "researcher", "final_answer")]


def test_agent_stopped_by_max_agent_steps_is_flagged_and_can_fail_the_run(openai_server, anthropic_server,
                                                                         tmp_path):
    _script_nested(openai_server, anthropic_server, inner_times=None)  # the inner agent never answers
    path = _nested_yaml(tmp_path, inner_max_steps=3)
    message = 'researcher.messages=[{"role": "user", "content": [{"text": "hi"}]}]'
    result = cli("run", path, "--input", message, "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert out["status"] == "ok" and out["agent_hit_max_steps"] is True
    inner = next(a for a in out["agents"] if a["name"] == "search_agent")
    assert (inner["steps"], inner["max_steps"], inner["exit_reason"], inner["hit_max_steps"]) == (
        3, 3, "max_agent_steps", True)
    assert Decimal(inner["cost"]) == 3 * HAIKU_STEP
    assert "max_agent_steps" in result.stderr and "search_agent" in result.stderr

    result = cli("run", path, "--input", message, "--json", "--fail-on-agent-cap")
    assert result.exit_code == 1, result.stderr
    [out] = json_lines(result.stdout)
    assert out["status"] == "error" and "max_agent_steps" in out["error"]
    # The spend before the verdict is kept: 2 outer steps + 3 inner steps.
    assert Decimal(out["total_cost"]) == 2 * GPT_4O_MINI_STEP + 3 * HAIKU_STEP

    (tmp_path / ".genops.yml").write_text("agents:\n  fail_on_cap: true\n")
    result = cli("run", path, "--input", message, "--json")
    assert result.exit_code == 1, result.stderr
    statuses = ledger_rows("SELECT status FROM runs ORDER BY started_at")
    assert [s for (s,) in statuses] == ["ok", "error", "error"]

    # Three runs, the inner agent never answered: a loop of the inner agent only (the outer one answered).
    recs = json.loads(cli("recommend", "--format", "json").stdout)["recommendations"]
    [loop] = [r for r in recs if r["kind"] == "agent_loop"]
    assert loop["component"] == "researcher/tool:search_agent/search_agent" and loop["provider"] == "anthropic"
    assert loop["parameters"]["verdict"] == "loops"
    assert Decimal(loop["potential_savings"]) == 9 * HAIKU_STEP


def _streaming_chain(tmp_path: Path, generation_kwargs: dict[str, Any] | None = None) -> str:
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.utils import print_streaming_chunk

    pipeline = Pipeline()
    pipeline.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")],
                                                       required_variables=["q"]))
    pipeline.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini", streaming_callback=print_streaming_chunk,
                                                      generation_kwargs=generation_kwargs))
    pipeline.connect("prompt.prompt", "llm.messages")
    path = tmp_path / "stream.yml"
    path.write_text(pipeline.dumps())
    return str(path)


def test_openai_stream_is_asked_for_usage_and_measured(openai_server, tmp_path):
    openai_server.usage = dict(OPENAI_USAGE)
    result = cli("run", _streaming_chain(tmp_path, {"max_tokens": 64}), "--input", "prompt.q=hello", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout.splitlines()[-1])
    [body] = openai_server.bodies("/chat/completions")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 64  # the user's generation_kwargs are kept
    llm = next(c for c in out["components"] if c["name"] == "llm")
    assert (llm["usage_source"], llm["input_tokens"], llm["output_tokens"]) == ("reported", 1000, 100)
    assert Decimal(llm["cost"]) == GPT_4O_MINI_STEP
    assert out["usage_sources"]["estimated_calls"] == 0 and out["usage_sources"]["estimated_share"] == "0.0000"
    assert "estimated" not in result.stderr


def test_stream_configured_without_usage_is_estimated_and_says_so(openai_server, tmp_path):
    openai_server.usage = dict(OPENAI_USAGE)
    path = _streaming_chain(tmp_path, {"stream_options": {"include_usage": False}})
    result = cli("run", path, "--input", "prompt.q=hello", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout.splitlines()[-1])
    [body] = openai_server.bodies("/chat/completions")
    assert body["stream_options"] == {"include_usage": False}  # configured not to: left alone
    llm = next(c for c in out["components"] if c["name"] == "llm")
    assert llm["usage_source"] == "estimated" and Decimal(llm["cost"]) > 0
    assert out["usage_sources"]["estimated_calls"] == 1 and out["usage_sources"]["estimated_share"] == "1.0000"
    assert "'llm'" in result.stderr and "include_usage" in result.stderr
    assert json.loads(json.dumps(out))  # stdout stayed JSON only


def test_nested_agents_are_separate_in_insights_and_no_false_loop(openai_server, anthropic_server, tmp_path,
                                                                  ledger_path):
    from genops_cli.analysis.insights import get_agent_insights

    path = _nested_yaml(tmp_path)
    message = 'researcher.messages=[{"role": "user", "content": [{"text": "hi"}]}]'
    run_ids = []
    for _ in range(3):
        _script_nested(openai_server, anthropic_server)
        result = cli("run", path, "--input", message, "--json")
        assert result.exit_code == 0, result.stderr
        run_ids.append(json_lines(result.stdout)[0]["run_id"])

    # What the guide passes: a ledger path (or an adapter) and a pipeline name or a run id.
    insights = get_agent_insights(str(ledger_path), "nested")
    agents = {a["path"]: a for a in insights["agents"]}
    outer, inner = agents["researcher"], agents["researcher/tool:search_agent/search_agent"]
    assert (outer["runs"], outer["steps_per_run"], outer["provider"], outer["verdict"]) == (3, 2.0, "openai", "ok")
    assert (inner["runs"], inner["steps_per_run"], inner["provider"], inner["verdict"]) == (3, 2.0, "anthropic", "ok")
    assert inner["exit_reasons"] == {"final_answer": 3} and inner["max_agent_steps"] == 3
    assert inner["cost"] == 6 * HAIKU_STEP and outer["cost"] == 6 * GPT_4O_MINI_STEP
    one = get_agent_insights(str(ledger_path), run_ids[0])
    assert one["runs"] == 1 and {a["runs"] for a in one["agents"]} == {1}

    recs = json.loads(cli("recommend", "--format", "json").stdout)["recommendations"]
    assert not [r for r in recs if r["kind"] == "agent_loop"]


def test_insights_reject_what_is_not_a_ledger():
    from genops_cli.analysis.insights import get_agent_insights, get_rag_insights

    with pytest.raises(TypeError, match="get_agent_insights: expected a GenOpsHaystackAdapter"):
        get_agent_insights(42, "agent")
    with pytest.raises(TypeError, match="get_rag_insights: expected"):
        get_rag_insights(None, "rag")


def test_estimated_share_in_analyze_bill_and_focus(openai_server, tmp_path):
    import csv
    import io

    openai_server.usage = dict(OPENAI_USAGE)
    measured = str(tmp_path / "measured.yml")
    Path(measured).write_text(Path(_streaming_chain(tmp_path, {"max_tokens": 64})).read_text())
    estimated = _streaming_chain(tmp_path, {"stream_options": {"include_usage": False}})
    for path in (measured, estimated):
        result = cli("run", path, "--input", "prompt.q=hello", "--customer", "acme", "--json")
        assert result.exit_code == 0, result.stderr
    [(estimated_cost,)] = ledger_rows("SELECT cost FROM calls WHERE usage_source = 'estimated'")
    total = GPT_4O_MINI_STEP + estimated_cost

    analysis = json.loads(cli("analyze", "--format", "json").stdout)
    sources = analysis["usage_sources"]
    assert (sources["calls"], sources["estimated_calls"]) == (2, 1)
    assert Decimal(sources["estimated_cost"]) == estimated_cost
    assert Decimal(sources["estimated_share"]) == (estimated_cost / total).quantize(Decimal("0.0001"))
    assert "rest on estimated usage" in cli("analyze").stdout

    bill = json.loads(cli("report", "--tenant", "acme", "--format", "json").stdout)
    assert Decimal(bill["usage_sources"]["estimated_cost"]) == estimated_cost
    focus = cli("report", "--tenant", "acme", "--format", "focus")
    assert focus.exit_code == 0, focus.stderr
    rows = list(csv.DictReader(io.StringIO(focus.stdout)))
    assert sum(Decimal(r["x_EstimatedCost"]) for r in rows if r["x_EstimatedCost"]) == estimated_cost
    assert sum(Decimal(r["BilledCost"]) for r in rows) == total


def _failing_chain() -> Pipeline:
    from haystack.components.builders import ChatPromptBuilder

    pipeline = Pipeline(metadata={"name": "failing"})
    pipeline.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")],
                                                       required_variables=["q"]))
    pipeline.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini", max_retries=0))
    pipeline.connect("prompt.prompt", "llm.messages")
    return pipeline


def test_failed_call_has_the_same_usage_source_under_the_adapter_and_auto_instrument(openai_server, ledger_path):
    from haystack.core.errors import PipelineRuntimeError

    from genops_cli import auto_instrument, flush, uninstrument
    from genops_cli.api import GenOpsHaystackAdapter

    openai_server.failures = [{"status": 400, "message": "bad prompt"}, {"status": 400, "message": "bad prompt"}]
    adapter = GenOpsHaystackAdapter(team="ml")
    with pytest.raises(PipelineRuntimeError), adapter.track_pipeline("failing"):
        _failing_chain().run({"prompt": {"q": "hi"}})
    adapter.flush()
    assert auto_instrument(team="ml")
    try:
        with pytest.raises(PipelineRuntimeError):
            _failing_chain().run({"prompt": {"q": "hi"}})
        flush()
    finally:
        uninstrument()
    rows = ledger_rows("SELECT usage_source, status FROM calls WHERE component_name = 'llm'")
    assert rows == [("missing", "error"), ("missing", "error")]


def test_api_results_carry_agent_outcomes_and_prices_nested_agents(openai_server, anthropic_server, ledger_path):
    from genops_cli.api import GenOpsHaystackAdapter, get_agent_insights

    _script_nested(openai_server, anthropic_server, inner_times=None)  # the inner agent hits its cap
    adapter = GenOpsHaystackAdapter(team="research")
    with adapter.track_pipeline("nested-api") as context:
        _nested_pipeline(inner_max_steps=2).run({"researcher": _messages("hi")})
    adapter.flush()
    [result] = adapter.get_recent_pipeline_results(limit=1)
    assert result.pipeline_id == context.pipeline_id
    assert result.cost_by_provider == {"openai": 2 * GPT_4O_MINI_STEP, "anthropic": 2 * HAIKU_STEP}
    inner = next(a for a in result.agents if a.name == "search_agent")
    assert (inner.steps, inner.max_steps, inner.exit_reason, inner.cost) == (2, 2, "max_agent_steps",
                                                                             2 * HAIKU_STEP)
    assert result.agent_hit_max_steps and result.usage_sources.estimated_calls == 0
    # The guide's call: the adapter's monitor and the run id.
    insights = get_agent_insights(adapter.monitor, context.pipeline_id)
    assert insights["decisions_made"] == 4 and insights["agent_hit_max_steps"] is True
    agents = {a["path"]: a for a in insights["agents"]}
    assert agents["researcher/tool:search_agent/search_agent"]["exit_reasons"] == {"max_agent_steps": 1}
    assert agents["researcher"]["exit_reasons"] == {"final_answer": 1}


@pytest.mark.parametrize(("config", "named"), [("agents:\n  fail_on_cap: sometimes\n", "agents.fail_on_cap"),
                                               ("agents:\n  fail_on_caps: true\n", "fail_on_caps")])
def test_bad_agents_config_exits_2_naming_the_key(tmp_path, config, named):
    (tmp_path / ".genops.yml").write_text(config)
    result = cli("run", str(tmp_path / "missing.yml"), "--input", "a.b=c")
    assert result.exit_code == 2
    assert named in result.stderr and "Traceback" not in result.stderr


def test_failing_tool_that_stops_the_agent_is_its_exit_reason(openai_server):
    from haystack.tools import Tool

    def broken(query: str) -> str:
        raise ValueError("search backend down")

    openai_server.usage = dict(OPENAI_USAGE)
    openai_server.responder = ToolLoop("web_search", times=1, arguments={"query": "x"})
    tool = Tool(name="web_search", description="Search.", function=broken,
                parameters={"type": "object", "properties": {"query": {"type": "string"}}})
    pipeline = Pipeline()
    pipeline.add_component("agent", Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), tools=[tool],
                                          raise_on_tool_invocation_failure=True))
    capture = RunCapture("run-tool-error", profile_from_pipeline(pipeline, "agents"), pricer=_pricer)
    with capture_run(capture), pytest.raises(Exception, match="search backend down"):
        pipeline.run({"agent": _messages()})
    [outcome] = agent_outcomes(capture.calls)
    assert (outcome.exit_reason, outcome.status, outcome.llm_calls, outcome.cost) == (
        "tool_error", "error", 1, GPT_4O_MINI_STEP)
    [tool_row] = [c for c in capture.calls if c.span_kind == "tool"]
    assert tool_row.status == "error" and tool_row.component_path == "agent/tool:web_search"


def test_agent_inside_a_pipeline_tool_uses_its_own_generator_settings(openai_server, anthropic_server):
    from haystack.components.builders import ChatPromptBuilder
    from haystack.tools import PipelineTool

    openai_server.usage, anthropic_server.usage = dict(OPENAI_USAGE), dict(ANTHROPIC_USAGE)
    openai_server.responder = ToolLoop("research", times=1, arguments={"question": "find"}, final="done")
    anthropic_server.responder = ToolLoop("web_search", times=1, arguments={"query": "q"}, final="found")
    inner = Pipeline()
    inner.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ question }}")],
                                                    required_variables=["question"]))
    inner.add_component("inner_agent", Agent(
        chat_generator=AnthropicChatGenerator(model="claude-3-5-haiku-20241022", generation_kwargs={"max_tokens": 77}),
        tools=[_search_tool()], max_agent_steps=3))
    inner.connect("prompt.prompt", "inner_agent.messages")
    tool = PipelineTool(pipeline=inner, name="research", description="Research a question.",
                        input_mapping={"question": ["prompt.question"]},
                        output_mapping={"inner_agent.last_message": "answer"})
    pipeline = Pipeline()
    pipeline.add_component("researcher", Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), tools=[tool]))
    capture = _capture(pipeline, {"researcher": _messages("hi")})

    inner_steps = [c for c in capture.sorted_calls() if c.component_path == "researcher/tool:research/inner_agent/"
                   "chat_generator"]
    assert [(c.provider, c.max_tokens, c.cost) for c in inner_steps] == [("anthropic", 77, HAIKU_STEP)] * 2
    outcomes = {o.path: o for o in agent_outcomes(capture.calls)}
    assert outcomes["researcher/tool:research/inner_agent"].exit_reason == "final_answer"
    assert outcomes["researcher/tool:research/inner_agent"].cost == 2 * HAIKU_STEP
    assert capture.cost == 2 * HAIKU_STEP + 2 * GPT_4O_MINI_STEP


def test_generator_inside_a_pipeline_tool_is_profiled_from_that_pipeline(openai_server):
    from haystack.components.builders import ChatPromptBuilder
    from haystack.tools import PipelineTool

    openai_server.usage = dict(OPENAI_USAGE)
    openai_server.responder = ToolLoop("summarize", times=1, arguments={"text": "long text"}, final="ok")
    inner = Pipeline()
    inner.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("Summarize {{ text }}")],
                                                    required_variables=["text"]))
    inner.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_tokens": 33}))
    inner.connect("prompt.prompt", "llm.messages")
    tool = PipelineTool(pipeline=inner, name="summarize", description="Summarize a text.",
                        input_mapping={"text": ["prompt.text"]}, output_mapping={"llm.replies": "summary"})
    pipeline = Pipeline()
    pipeline.add_component("llm", Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), tools=[tool]))
    capture = _capture(pipeline, {"llm": _messages("summarize it")})

    [summary] = [c for c in capture.calls if c.component_path == "llm/tool:summarize/llm"]
    # The outer component is also named "llm" (an Agent): its profile must not be taken for the inner one.
    assert (summary.span_kind, summary.provider, summary.max_tokens, summary.cost) == (
        "component", "openai", 33, GPT_4O_MINI_STEP)
    assert summary.agent_instance == next(c.call_id for c in capture.calls if c.component_path == "llm"
                                          and c.span_kind == "component")


def test_streaming_agent_steps_are_measured(openai_server, tmp_path):
    from haystack.components.generators.utils import print_streaming_chunk

    openai_server.usage = dict(OPENAI_USAGE)
    openai_server.responder = ToolLoop("web_search", times=2, arguments={"query": "x"}, final="answer")
    pipeline = Pipeline()
    pipeline.add_component("agent", Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"),
                                          tools=[_search_tool()], streaming_callback=print_streaming_chunk))
    path = tmp_path / "streaming_agent.yml"
    path.write_text(pipeline.dumps())
    result = cli("run", str(path), "--input", 'agent.messages=[{"role": "user", "content": [{"text": "hi"}]}]',
                 "--json")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout.splitlines()[-1])
    bodies = openai_server.bodies("/chat/completions")
    assert len(bodies) == 3 and all(b["stream"] and b["stream_options"] == {"include_usage": True} for b in bodies)
    steps = [c for c in out["components"] if c["span_kind"] == "agent_llm"]
    assert [(c["usage_source"], Decimal(c["cost"])) for c in steps] == [("reported", GPT_4O_MINI_STEP)] * 3
    assert out["usage_sources"]["estimated_calls"] == 0


@pytest.mark.parametrize("where", ["agent_run", "generator", "agent_init"])
def test_a_stream_started_at_run_time_outside_a_pipeline_is_measured(openai_server, ledger_path, where):
    """`agent.run(..., streaming_callback=cb)` or `generator.run(..., streaming_callback=cb)` called directly in
    `track_pipeline` (no Pipeline to configure at load): the call itself asks the stream for usage, so every
    step is reported and priced exactly, not estimated."""
    from haystack.tools import Tool

    from genops_cli import GenOpsHaystackAdapter

    openai_server.usage = dict(OPENAI_USAGE)
    openai_server.responder = ToolLoop("weather", times=1, arguments={"city": "Paris"}, final="sunny")
    weather = Tool(name="weather", description="Weather.", function=lambda city: f"sunny in {city}",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    chunks: list[Any] = []
    adapter = GenOpsHaystackAdapter(team="t", project="p", daily_budget_limit=None)
    with adapter.track_pipeline("direct-stream") as ctx:
        if where == "generator":
            OpenAIChatGenerator(model="gpt-4o-mini").run(messages=[ChatMessage.from_user("hi")],
                                                         streaming_callback=chunks.append)
        else:
            agent = Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), tools=[weather],
                          streaming_callback=chunks.append if where == "agent_init" else None)
            agent.run(messages=[ChatMessage.from_user("hi")],
                      streaming_callback=chunks.append if where == "agent_run" else None)
    assert adapter.flush()
    assert chunks
    assert all(body.get("stream") and body["stream_options"] == {"include_usage": True}
               for body in openai_server.bodies("/chat/completions"))
    calls = ledger_rows("SELECT usage_source, input_tokens, output_tokens, cost FROM calls WHERE run_id = ? "
                        "AND model IS NOT NULL ORDER BY seq", [ctx.pipeline_id])
    steps = 1 if where == "generator" else 2
    assert calls == [("reported", 1000, 100, GPT_4O_MINI_STEP)] * steps
    assert ledger_rows("SELECT total_cost FROM runs") == [(GPT_4O_MINI_STEP * steps,)]


def test_parallel_tool_calls_and_a_tool_that_raises_are_attributed(openai_server, anthropic_server, ledger_path):
    """One reply asking for two tools at once, one of which raises (the Agent hands the error back to the model):
    both tool calls are recorded under the step that asked for them, the failing one with its error (secrets
    masked), and the guide's agent insights count them."""
    from fakeproviders import ScriptedReply, ToolCallSpec, tool_calls_in_history
    from haystack.tools import Tool, Toolset

    from genops_cli import GenOpsHaystackAdapter
    from genops_cli.api import get_agent_insights

    def respond(body: dict[str, Any]) -> Any:
        if tool_calls_in_history(body) >= 2:
            return "done"
        return ScriptedReply(tool_calls=[ToolCallSpec("weather", {"city": "Paris"}),
                                         ToolCallSpec("boom", {"city": "Rome"})])

    def boom(city: str) -> str:
        raise RuntimeError("upstream refused key sk-ant-test-not-a-real-key")

    spec = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    tools = Toolset([Tool(name="weather", description="w", parameters=spec, function=lambda city: "sunny"),
                     Tool(name="boom", description="b", parameters=spec, function=boom)])
    anthropic_server.usage = dict(ANTHROPIC_USAGE)
    anthropic_server.responder = respond
    agent = Agent(chat_generator=AnthropicChatGenerator(model="claude-3-5-haiku-20241022"), tools=tools)
    adapter = GenOpsHaystackAdapter(team="t", project="p", daily_budget_limit=None)
    with adapter.track_pipeline("parallel-tools") as ctx:
        agent.run(messages=[ChatMessage.from_user("weather?")])
    assert adapter.flush()
    rows = ledger_rows("SELECT span_kind, tool_name, agent_step, status, error, cost FROM calls WHERE run_id = ? "
                       "AND span_kind IN ('agent_llm', 'tool') ORDER BY seq", [ctx.pipeline_id])
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("agent_llm", None, 0, "ok"), ("tool", "weather", 0, "ok"), ("tool", "boom", 0, "error"),
        ("agent_llm", None, 1, "ok")]
    assert "upstream refused" in rows[2][4] and "sk-ant-test" not in rows[2][4]
    assert sum(r[5] for r in rows) == 2 * HAIKU_STEP
    insights = get_agent_insights(adapter.monitor, ctx.pipeline_id)
    assert (insights["decisions_made"], insights["tools_used"], insights["tool_calls"],
            insights["tool_success_rate"]) == (2, ["weather", "boom"], 2, 0.5)
    assert insights["total_cost"] == 2 * HAIKU_STEP


def test_an_agent_run_called_directly_under_auto_instrument_is_a_run_of_its_own(openai_server, ledger_path):
    """`agent.run(messages=...)` with no Pipeline around it: auto_instrument tracks it as a run named "agent",
    each LLM step and tool call recorded and priced, the steps admitted one by one against an enforcing budget
    (none is sent once the budget is spent). The budget comes from a second auto_instrument in the same process:
    the first one's budget lease (it had no budget) must not answer for it."""
    from haystack.tools import Tool

    from genops_cli import auto_instrument, flush, uninstrument
    from genops_cli.errors import BudgetExceededError

    openai_server.usage = dict(OPENAI_USAGE)
    openai_server.responder = ToolLoop("weather", times=2, arguments={"city": "Paris"}, final="sunny")
    weather = Tool(name="weather", description="Weather.", function=lambda city: f"sunny in {city}",
                   parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})
    agent = Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), tools=[weather])
    assert auto_instrument(team="agents", cost_summary=False, daily_budget_limit=None)
    try:
        agent.run(messages=[ChatMessage.from_user("weather?")])
        assert flush()
    finally:
        uninstrument()
    [(run_id, name, status, total)] = ledger_rows("SELECT run_id, pipeline_name, status, total_cost FROM runs")
    assert (name, status, total) == ("agent", "ok", 3 * GPT_4O_MINI_STEP)
    rows = ledger_rows("SELECT span_kind, tool_name, agent_step, model, cost FROM calls WHERE run_id = ? "
                       "AND span_kind IN ('agent_llm', 'tool') ORDER BY seq", [run_id])
    assert rows == [("agent_llm", None, 0, "gpt-4o-mini", GPT_4O_MINI_STEP), ("tool", "weather", 0, None, 0),
                    ("agent_llm", None, 1, "gpt-4o-mini", GPT_4O_MINI_STEP), ("tool", "weather", 1, None, 0),
                    ("agent_llm", None, 2, "gpt-4o-mini", GPT_4O_MINI_STEP)]

    # An enforcing daily limit the recorded run has used up: the next direct agent run sends nothing.
    sent = len(openai_server.requests)
    assert auto_instrument(team="agents", cost_summary=False, daily_budget_limit=str(3 * GPT_4O_MINI_STEP),
                           governance_policy="enforcing")
    try:
        with pytest.raises(BudgetExceededError):
            agent.run(messages=[ChatMessage.from_user("weather again?")])
        flush()
    finally:
        uninstrument()
    assert len(openai_server.requests) == sent
    assert ledger_rows("SELECT status, total_cost FROM runs WHERE run_id <> ?", [run_id]) == [("blocked", 0)]
