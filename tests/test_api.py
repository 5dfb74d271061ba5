"""The Python API (genops_cli.api) on the engine: exact Decimal costs against loopback providers, budgets
enforced before the run, sessions, ledger summaries, the component mixin."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal

import pytest
from conftest import ledger_rows


def _pipeline(model: str = "gpt-4o-mini", max_tokens: int = 100):
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    p = Pipeline()
    p.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")], required_variables=["q"]))
    p.add_component("llm", OpenAIChatGenerator(model=model, generation_kwargs={"max_tokens": max_tokens}))
    p.connect("prompt.prompt", "llm.messages")
    return p


def test_track_pipeline_prices_exactly_and_records(openai_server):
    from genops_cli import GenOpsHaystackAdapter

    openai_server.model_map = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    adapter = GenOpsHaystackAdapter(team="research", project="qa", environment="test")
    pipeline = _pipeline()
    with adapter.track_pipeline("document-qa", customer_id="acme-corp", document_id="d-1") as ctx:
        result = pipeline.run({"prompt": {"q": "What is FOCUS?"}})
        ctx.add_custom_metric("answers", 1)
    assert result["llm"]["replies"][0].text  # outputs are the pipeline's own, untouched
    metrics = ctx.get_metrics()
    # gpt-4o-mini: 0.15 / 0.60 USD per 1M tokens -> 1000 * 0.15e-6 + 500 * 0.60e-6
    assert metrics.total_cost == Decimal("0.000450")
    assert metrics.cost_by_provider == {"openai": Decimal("0.000450")}
    assert metrics.cost_by_component["llm"] == Decimal("0.000450")
    assert metrics.total_components == 2
    assert metrics.success is True
    assert metrics.pipeline_id == ctx.pipeline_id
    llm = next(c for c in metrics.component_results if c.model_name)
    assert (llm.model_name, llm.tokens_used, llm.cost) == ("gpt-4o-mini-2024-07-18", 1500, Decimal("0.000450"))
    assert adapter.flush()
    [(team, project, env, customer, total, tags)] = ledger_rows(
        "SELECT team, project, environment, customer_id, total_cost, tags FROM runs WHERE run_id = ?",
        [ctx.pipeline_id])
    assert (team, project, env, customer, total) == ("research", "qa", "test", "acme-corp", Decimal("0.000450"))
    assert '"document_id": "d-1"' in tags and '"metric.answers": "1"' in tags


def test_session_sums_pipelines_and_shares_session_id(openai_server):
    from genops_cli import GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 2000, "completion_tokens": 100}
    adapter = GenOpsHaystackAdapter(team="batch", project="docs")
    pipeline = _pipeline()
    with adapter.track_session("document-processing") as session:
        for i in range(3):
            with adapter.track_pipeline("extraction", document_id=str(i)) as ctx:
                pipeline.run({"prompt": {"q": f"doc {i}"}})
            session.add_pipeline_result(ctx.get_metrics())
    # each run: 2000 * 0.15e-6 + 100 * 0.60e-6 = 0.00036
    assert session.total_pipelines == 3
    assert session.total_cost == Decimal("0.00108")
    adapter.flush()
    rows = ledger_rows("SELECT DISTINCT session_id FROM runs")
    assert rows == [(session.session_id,)]
    assert sorted(session.pipeline_ids) == sorted(r[0] for r in ledger_rows("SELECT run_id FROM runs"))


def test_cost_summary_and_recent_results_from_the_ledger(openai_server):
    from genops_cli import GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    adapter = GenOpsHaystackAdapter(team="ml", project="bot", daily_budget_limit="0.01")
    other = GenOpsHaystackAdapter(team="other", project="bot")
    pipeline = _pipeline()
    for _ in range(2):
        with adapter.track_pipeline("chat"):
            pipeline.run({"prompt": {"q": "hi"}})
    with other.track_pipeline("chat"):
        pipeline.run({"prompt": {"q": "hi"}})
    summary = adapter.get_cost_summary()
    assert summary["daily_costs"] == Decimal("0.0009")
    assert summary["monthly_costs"] == Decimal("0.0009")
    assert summary["daily_budget_limit"] == Decimal("0.01")
    assert summary["daily_budget_utilization"] == Decimal("9.0000")  # percent of the daily limit
    assert summary["cost_by_provider"] == {"openai": Decimal("0.0009")}
    assert summary["total_pipelines_executed"] == 2
    recent = adapter.get_recent_pipeline_results(limit=1)
    assert len(recent) == 1 and recent[0].total_cost == Decimal("0.00045")
    assert recent[0].cost_by_component == {"prompt": Decimal(0), "llm": Decimal("0.00045")}


def test_enforcing_budget_blocks_before_any_provider_call(openai_server):
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    adapter = GenOpsHaystackAdapter(team="tight", project="p", daily_budget_limit="0.0005",
                                    governance_policy="enforcing")
    pipeline = _pipeline()
    with adapter.track_pipeline("chat"):
        pipeline.run({"prompt": {"q": "hi"}})  # spends 0.00045 of 0.0005
    adapter.flush()
    calls_before = openai_server.count("/chat/completions")
    with pytest.raises(BudgetExceededError, match="budget limit"):
        with adapter.track_pipeline("chat", pipeline=pipeline):  # worst case reserved: 100 output tokens
            pipeline.run({"prompt": {"q": "hi"}})
    assert openai_server.count("/chat/completions") == calls_before
    adapter.flush()
    statuses = ledger_rows("SELECT status, policy_result, policy_reason_code FROM runs ORDER BY started_at")
    assert statuses[-1] == ("blocked", "BLOCKED", "BUDGET_EXCEEDED")


def test_set_estimated_cost_is_checked_against_the_budget(openai_server):
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="est", daily_budget_limit="1.00", governance_policy="enforcing")
    with adapter.track_pipeline("chat") as ctx:
        ctx.set_estimated_cost("0.25")
    assert ctx.get_metrics().estimated_cost == Decimal("0.25")
    with pytest.raises(BudgetExceededError, match="budget limit"):
        with adapter.track_pipeline("chat") as ctx:
            ctx.set_estimated_cost("2.00")


def test_advisory_budget_warns_and_runs(openai_server, caplog):
    from genops_cli import GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    adapter = GenOpsHaystackAdapter(team="soft", daily_budget_limit="0.0001", governance_policy="advisory")
    pipeline = _pipeline()
    with adapter.track_pipeline("chat"):
        pipeline.run({"prompt": {"q": "hi"}})
    with adapter.track_pipeline("chat", pipeline=pipeline) as ctx:
        pipeline.run({"prompt": {"q": "hi"}})
    assert ctx.get_metrics().policy_result == "WARNING"
    assert ctx.get_metrics().total_cost == Decimal("0.00045")


def test_failed_run_keeps_spend_and_reraises(openai_server):
    from genops_cli import GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    adapter = GenOpsHaystackAdapter(team="err")
    pipeline = _pipeline()
    with pytest.raises(RuntimeError, match="after the call"):
        with adapter.track_pipeline("chat") as ctx:
            pipeline.run({"prompt": {"q": "hi"}})
            raise RuntimeError("user code failed after the call")
    metrics = ctx.get_metrics()
    assert metrics.success is False and "after the call" in metrics.error_message
    assert metrics.total_cost == Decimal("0.000021")  # 100 * 0.15e-6 + 10 * 0.60e-6
    adapter.flush()
    assert ledger_rows("SELECT status, total_cost FROM runs") == [("error", Decimal("0.000021"))]


def test_component_mixin_records_a_standalone_execution(openai_server):
    from haystack import component
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    from genops_cli import GenOpsComponentMixin, GenOpsHaystackAdapter

    @component
    class InstrumentedGenerator(GenOpsComponentMixin):
        def __init__(self, model: str) -> None:
            self.model = model
            self.generator = OpenAIChatGenerator(model=model)

        @component.output_types(replies=list[ChatMessage])
        def run(self, messages: list[ChatMessage]) -> dict:
            with self.track_execution("InstrumentedGenerator") as ctx:
                result = self.generator.run(messages)
                ctx.add_custom_metric("messages", len(messages))
                ctx.record_output(result)
                return result

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    gen = InstrumentedGenerator(model="gpt-4o-mini")
    gen.genops_adapter = GenOpsHaystackAdapter(team="mixin")
    gen.run([ChatMessage.from_user("hi")])
    gen.genops_adapter.flush()
    [(name, total, tags)] = ledger_rows("SELECT pipeline_name, total_cost, tags FROM runs")
    assert (name, total) == ("InstrumentedGenerator", Decimal("0.00045"))
    assert '"metric.InstrumentedGenerator.messages": "1"' in tags


def test_factories_tag_the_workflow(openai_server):
    from genops_cli import create_agent_adapter, create_rag_adapter

    rag = create_rag_adapter(team="r", project="kb", daily_budget_limit=5)
    agent = create_agent_adapter(team="a", project="assistant")
    assert rag.settings.attribution.tags["workflow"] == "rag"
    assert agent.settings.attribution.tags["workflow"] == "agent"
    assert rag._limits() == (Decimal("5"), None)


def test_api_arguments_beat_environment(monkeypatch):
    from genops_cli import GenOpsHaystackAdapter

    monkeypatch.setenv("GENOPS_TEAM", "env-team")
    monkeypatch.setenv("GENOPS_ENVIRONMENT", "staging")
    adapter = GenOpsHaystackAdapter(team="arg-team")
    assert adapter.team == "arg-team"
    assert adapter.settings.attribution.environment == "staging"


def test_import_is_lazy():
    code = "import sys, genops_cli; print('haystack' in sys.modules, 'duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
