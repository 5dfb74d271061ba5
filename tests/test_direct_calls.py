"""A generator's or embedder's run() called directly (no Pipeline) inside a tracked run is admitted, priced and
recorded like a pipeline's call; calls that already have a span (Pipeline, super().run, Agent) are recorded once;
direct calls outside a tracked run are left alone. Against the loopback OpenAI and Anthropic fakes."""

from __future__ import annotations

import asyncio
import functools
from decimal import Decimal
from typing import Any

import pytest
from conftest import ledger_rows

# gpt-4o-mini: 0.15 / 0.60 USD per 1M input / output tokens; gpt-4o: 2.50 / 10.00; text-embedding-3-small: 0.02.
MINI = (Decimal(1000) * Decimal("0.15") + Decimal(500) * Decimal("0.60")) / 1_000_000
GPT4O = (Decimal(1000) * Decimal("2.50") + Decimal(500) * Decimal("10.00")) / 1_000_000


@pytest.fixture
def fixed(openai_server: Any) -> Any:
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    return openai_server


def _messages() -> dict[str, Any]:
    from haystack.dataclasses import ChatMessage

    return {"messages": [ChatMessage.from_user("What is the capital of France?")]}


def counting_generator() -> Any:
    """The guide's mixin shape: a generator subclass whose run() wraps super().run() (not a registered class)."""
    from haystack.components.generators.chat import OpenAIChatGenerator

    class CountingGenerator(OpenAIChatGenerator):
        runs = 0

        @functools.wraps(OpenAIChatGenerator.run)  # Haystack wants run and run_async to keep one signature
        def run(self, *args: Any, **kwargs: Any) -> Any:
            CountingGenerator.runs += 1
            return super().run(*args, **kwargs)

    return CountingGenerator


def _calls() -> list[tuple[Any, ...]]:
    return ledger_rows("SELECT component_name, model, cost FROM calls WHERE model IS NOT NULL ORDER BY seq")


def test_direct_generator_call_in_track_pipeline_is_priced_and_recorded(fixed):
    """The guide's routing example: `generator.run(...)` inside `track_pipeline`, no Pipeline: the context's
    metrics and the ledger carry the call's exact cost."""
    from haystack.components.generators.chat import OpenAIChatGenerator

    from genops_cli.api import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="platform", project="router")
    generator = OpenAIChatGenerator(model="gpt-4o-mini")
    with adapter.track_pipeline("intelligent-routing") as context:
        result = generator.run(**_messages())
        assert context.get_metrics().total_cost == MINI
    assert result["replies"][0].text
    adapter.flush()
    assert _calls() == [("OpenAIChatGenerator", "gpt-4o-mini", MINI)]
    assert ledger_rows("SELECT pipeline_name, team, total_cost FROM runs") == [
        ("intelligent-routing", "platform", MINI)]


def test_direct_calls_are_admitted_before_they_are_made(fixed):
    """An enforcing limit the first direct call already used up: the second is refused before any request."""
    from haystack.components.generators.chat import OpenAIChatGenerator

    from genops_cli.api import GenOpsHaystackAdapter
    from genops_cli.errors import BudgetExceededError

    adapter = GenOpsHaystackAdapter(team="platform", project="router", daily_budget_limit=float(MINI * 3 / 2),
                                    governance_policy="enforcing")
    generator = OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_tokens": 500})
    with adapter.track_pipeline("first"):
        generator.run(**_messages())
    assert fixed.count("/chat/completions") == 1
    with pytest.raises(BudgetExceededError), adapter.track_pipeline("second"):
        generator.run(**_messages())
    assert fixed.count("/chat/completions") == 1  # refused before the request
    adapter.flush()
    assert ledger_rows("SELECT pipeline_name, status FROM runs ORDER BY started_at") == [
        ("first", "ok"), ("second", "blocked")]


def test_direct_embedder_and_async_generator_calls_are_recorded(fixed):
    """An embedder's run() and a generator's run_async() called directly are recorded with their usage."""
    from haystack.components.embedders import OpenAITextEmbedder
    from haystack.components.generators.chat import OpenAIChatGenerator

    from genops_cli.api import GenOpsHaystackAdapter

    fixed.embedding_tokens = 50_000
    adapter = GenOpsHaystackAdapter(team="search")
    embedder = OpenAITextEmbedder(model="text-embedding-3-small")
    generator = OpenAIChatGenerator(model="gpt-4o")

    async def both() -> None:
        embedder.run(text="what is genops?")
        await generator.run_async(**_messages())

    with adapter.track_pipeline("embed-and-answer"):
        asyncio.run(both())
    adapter.flush()
    rows = ledger_rows("SELECT component_name, model, input_tokens, cost FROM calls WHERE model IS NOT NULL "
                       "ORDER BY seq")
    assert rows == [("OpenAITextEmbedder", "text-embedding-3-small", 50_000, Decimal(50_000) * Decimal("0.02")
                     / 1_000_000),
                    ("OpenAIChatGenerator", "gpt-4o", 1000, GPT4O)]


def test_calls_that_have_a_span_are_recorded_once(fixed):
    """A Pipeline's generator, a subclass whose run() calls super().run(), and a custom component that calls its
    own generator directly: each provider request is one call row, priced once."""
    from haystack import Pipeline, component
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    from genops_cli.api import GenOpsHaystackAdapter

    CountingGenerator = counting_generator()
    @component
    class Summarizer:
        def __init__(self) -> None:
            self.llm = OpenAIChatGenerator(model="gpt-4o")

        @component.output_types(summary=str)
        def run(self, text: str) -> dict[str, Any]:
            reply = self.llm.run(messages=[ChatMessage.from_user(f"Summarize: {text}")])["replies"][0]
            return {"summary": reply.text}

    pipeline = Pipeline()
    pipeline.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini"))
    pipeline.add_component("counting", CountingGenerator(model="gpt-4o-mini"))
    pipeline.add_component("summarizer", Summarizer())
    adapter = GenOpsHaystackAdapter(team="platform")
    with adapter.track_pipeline("mixed", pipeline=pipeline):
        pipeline.run({"llm": _messages(), "counting": _messages(), "summarizer": {"text": "genops"}})
    adapter.flush()
    assert fixed.count("/chat/completions") == 3 and CountingGenerator.runs == 1
    rows = _calls()
    assert sorted((m, c) for _name, m, c in rows) == [("gpt-4o", GPT4O), ("gpt-4o-mini", MINI), ("gpt-4o-mini", MINI)]
    assert ledger_rows("SELECT total_cost FROM runs") == [(GPT4O + 2 * MINI,)]


def test_direct_calls_outside_a_tracked_run_are_left_alone(fixed):
    """No tracked run: the call goes through untouched and nothing is recorded."""
    from haystack.components.generators.chat import OpenAIChatGenerator

    from genops_cli.api import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="platform")
    with adapter.track_pipeline("before"):
        pass  # wraps the registered generator classes
    result = OpenAIChatGenerator(model="gpt-4o-mini").run(**_messages())
    assert result["replies"][0].text and fixed.count("/chat/completions") == 1
    adapter.flush()
    assert _calls() == []


def test_a_subclass_whose_run_calls_super_run_called_directly_is_recorded_once(fixed):
    """The mixin shape called directly in a tracked run: one call row, named after the subclass."""
    from genops_cli.api import GenOpsHaystackAdapter

    CountingGenerator = counting_generator()
    adapter = GenOpsHaystackAdapter(team="platform")
    with adapter.track_pipeline("direct-subclass"):
        CountingGenerator(model="gpt-4o-mini").run(**_messages())
    adapter.flush()
    assert CountingGenerator.runs == 1 and fixed.count("/chat/completions") == 1
    assert _calls() == [("CountingGenerator", "gpt-4o-mini", MINI)]


def test_a_generator_behind_a_component_tool_is_recorded_under_the_tool(openai_server, anthropic_server):
    """An Agent's ComponentTool whose component is a chat generator: Haystack calls that generator's run()
    without a component span; its provider call is part of the run's spend, recorded once, inside the tool."""
    from fakeproviders import ToolLoop
    from haystack import Pipeline
    from haystack.components.agents import Agent
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.tools import ComponentTool
    from haystack_integrations.components.generators.anthropic import AnthropicChatGenerator

    from genops_cli.api import GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    anthropic_server.usage = {"input_tokens": 1000, "output_tokens": 500}
    openai_server.responder = ToolLoop("second_opinion", times=1,
                                       arguments={"messages": [{"role": "user", "content": "check this"}]},
                                       final="Both agree.")
    helper = ComponentTool(component=AnthropicChatGenerator(model="claude-3-5-haiku-20241022"),
                           name="second_opinion", description="Asks another model.")
    pipeline = Pipeline()
    pipeline.add_component("agent", Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"),
                                          tools=[helper], max_agent_steps=5))
    adapter = GenOpsHaystackAdapter(team="agents")
    with adapter.track_pipeline("with-helper", pipeline=pipeline):
        pipeline.run({"agent": _messages()})
    adapter.flush()
    haiku = (Decimal(1000) * Decimal("0.80") + Decimal(500) * Decimal("4.00")) / 1_000_000
    assert anthropic_server.count("/messages") == 1 and openai_server.count("/chat/completions") == 2
    rows = ledger_rows("SELECT span_kind, model, cost FROM calls WHERE model IS NOT NULL ORDER BY seq")
    assert sorted((m, c) for _kind, m, c in rows) == sorted([("claude-3-5-haiku-20241022", haiku),
                                                              ("gpt-4o-mini", MINI), ("gpt-4o-mini", MINI)])
    assert ledger_rows("SELECT total_cost FROM runs") == [(haiku + 2 * MINI,)]


def test_auto_instrument_records_a_generator_behind_a_component_tool(openai_server, anthropic_server):
    """The same Agent under auto_instrument (no tracked block): the tool's generator call is in the run."""
    from fakeproviders import ToolLoop
    from haystack import Pipeline
    from haystack.components.agents import Agent
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.tools import ComponentTool
    from haystack_integrations.components.generators.anthropic import AnthropicChatGenerator

    import genops_cli
    from genops_cli.api import auto_instrument, uninstrument

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    anthropic_server.usage = {"input_tokens": 1000, "output_tokens": 500}
    openai_server.responder = ToolLoop("second_opinion", times=1,
                                       arguments={"messages": [{"role": "user", "content": "check this"}]},
                                       final="Both agree.")
    pipeline = Pipeline()
    pipeline.add_component("agent", Agent(
        chat_generator=OpenAIChatGenerator(model="gpt-4o-mini"), max_agent_steps=5,
        tools=[ComponentTool(component=AnthropicChatGenerator(model="claude-3-5-haiku-20241022"),
                             name="second_opinion", description="Asks another model.")]))
    auto_instrument(team="agents", cost_summary=False)
    try:
        pipeline.run({"agent": _messages()})
        genops_cli.flush()
    finally:
        uninstrument()
    haiku = (Decimal(1000) * Decimal("0.80") + Decimal(500) * Decimal("4.00")) / 1_000_000
    assert ledger_rows("SELECT total_cost FROM runs") == [(haiku + 2 * MINI,)]


def test_a_component_that_returns_its_inner_generators_replies_is_priced_once(fixed):
    """A custom component whose run() calls a generator directly and returns its replies (usage in their meta):
    the provider call is counted once, on the generator's row, not again on the component that passed it on.
    Under a budget the run's worst case comes from a simulated pass of the pipeline, which runs the custom
    component: its generator is answered by a stand-in there, so the provider sees one request, not two."""
    from haystack import Pipeline, component
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    from genops_cli.api import GenOpsHaystackAdapter

    @component
    class Answerer:
        def __init__(self) -> None:
            self.llm = OpenAIChatGenerator(model="gpt-4o-mini")

        @component.output_types(replies=list[ChatMessage])
        def run(self, question: str) -> dict[str, Any]:
            return self.llm.run(messages=[ChatMessage.from_user(question)])

    pipeline = Pipeline()
    pipeline.add_component("answerer", Answerer())
    adapter = GenOpsHaystackAdapter(team="platform", daily_budget_limit=1.0)
    with adapter.track_pipeline("pass-through", pipeline=pipeline):
        pipeline.run({"answerer": {"question": "hi"}})
    adapter.flush()
    assert fixed.count("/chat/completions") == 1
    assert _calls() == [("OpenAIChatGenerator", "gpt-4o-mini", MINI)]
    assert ledger_rows("SELECT total_cost FROM runs") == [(MINI,)]
