"""Pipelines built in code, tracked through the Python API: runs unchanged on Haystack 3.x and on the last 2.x
(`.ci/run` runs this module in a second environment with haystack-ai 2.x), where an Agent ran its generator and
ToolInvoker as nested `haystack.component.run` spans instead of `haystack.agent.step.*` spans."""

from __future__ import annotations

from decimal import Decimal

from fakeproviders import tool_call
from haystack import Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage
from haystack.tools import Tool

from genops_cli import GenOpsHaystackAdapter

# gpt-4o-mini: 0.15 / 0.60 USD per 1M input / output tokens
STEP_COST = Decimal("0.000027")  # 100 input + 20 output tokens


def _adapter(ledger_path) -> GenOpsHaystackAdapter:
    return GenOpsHaystackAdapter(team="ml", project="compat", ledger=str(ledger_path))


def test_chain_built_in_code_is_priced_per_generator(openai_server, ledger_path):
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 20}
    pipe = Pipeline()
    pipe.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("Summarize: {{ text }}")],
                                                   required_variables=["text"]))
    pipe.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini"))
    pipe.connect("prompt.prompt", "llm.messages")
    adapter = _adapter(ledger_path)
    with adapter.track_pipeline("compat-chain", pipeline=pipe) as ctx:
        pipe.run({"prompt": {"text": "genops prices every call"}})
    metrics = ctx.get_metrics()
    assert metrics.total_cost == STEP_COST
    llm = [c for c in metrics.component_results if c.model_name]
    assert [(c.component_name, c.provider_name) for c in llm] == [("llm", "openai")]


def test_agent_usage_is_counted_once_per_llm_call_whatever_the_span_shape(openai_server, ledger_path):
    from haystack.components.agents import Agent

    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 20}
    openai_server.script = [tool_call("lookup", {"term": "FOCUS"}), "FOCUS is a billing data standard."]
    lookup = Tool(name="lookup", description="Look a term up.",
                  parameters={"type": "object", "properties": {"term": {"type": "string"}}, "required": ["term"]},
                  function=lambda term: f"{term}: FinOps Open Cost and Usage Specification")
    agent = Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), tools=[lookup])
    pipe = Pipeline()
    pipe.add_component("agent", agent)
    adapter = _adapter(ledger_path)
    with adapter.track_pipeline("compat-agent", pipeline=pipe) as ctx:
        pipe.run({"agent": {"messages": [ChatMessage.from_user("What is FOCUS?")]}})
    metrics = ctx.get_metrics()
    billable = [c for c in metrics.component_results if c.model_name]
    assert len(billable) == 2, [(c.component_name, c.component_type) for c in metrics.component_results]
    assert all(c.cost == STEP_COST for c in billable)
    assert metrics.total_cost == 2 * STEP_COST
    assert openai_server.count("/chat/completions") == 2


def test_simulated_2x_text_generator_pipeline_keeps_its_sockets(tmp_path, monkeypatch):
    """A Haystack 2.x RAG file (PromptBuilder -> OpenAIGenerator -> AnswerBuilder) runs under simulation on both
    versions: the stand-in keeps `prompt` and `replies: list[str]` / `meta` (from the real class on 2.x)."""
    from pathlib import Path

    from genops_cli.execution.loading import load_pipeline

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    wild = Path(__file__).resolve().parent / "fixtures" / "wild" / "openai_generator_rag.yml"
    loaded = load_pipeline(wild, simulate=True)
    out = loaded.pipeline.run({"retriever": {"query": "q"}, "prompt_builder": {"query": "q"},
                               "answer_builder": {"query": "q"}})
    [answer] = out["answer_builder"]["answers"]
    assert answer.data.startswith("[simulated gpt-4o-mini reply")
    assert [s.stand_in for s in loaded.simulated_components] == ["SimulatedTextGenerator"]
