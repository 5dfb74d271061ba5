"""The integration guide's API Reference and import path: signatures and defaults as documented, every name the
guide imports from `genops.providers.haystack`, `genops.__version__`, the reference snippets, and settings that
take effect after construction. Runs against the loopback fakes."""

from __future__ import annotations

import dataclasses
import inspect
import os
import re
import subprocess
import sys
from decimal import Decimal

import pytest
from conftest import REPO, ledger_rows
from guide_support import GPT4_RUN, GPT35_RUN, fixed_usage, qa_pipeline

GUIDE_NAMES = ("auto_instrument", "GenOpsHaystackAdapter", "GenOpsComponentMixin", "create_rag_adapter",
               "create_agent_adapter", "get_rag_insights", "get_agent_insights", "analyze_pipeline_costs",
               "validate_haystack_setup", "print_validation_result", "HaystackPipelineResult",
               "HaystackComponentResult", "HaystackPipelineContext")


def test_every_name_the_guide_imports_comes_from_its_import_path():
    import genops.providers.haystack as guide

    import genops_cli.api as api

    for name in GUIDE_NAMES:
        assert hasattr(guide, name), name
    # One implementation: the guide's path re-exports genops_cli.api (no second copy of its state).
    assert guide.GenOpsHaystackAdapter is api.GenOpsHaystackAdapter
    assert guide.auto_instrument is api.auto_instrument
    assert set(GUIDE_NAMES) <= set(guide.__all__)


def test_genops_version_is_the_distribution_version():
    from importlib.metadata import version

    import genops

    assert genops.__version__ == version("genops-cli")
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", genops.__version__)


def test_guide_import_path_in_a_fresh_interpreter():
    """What a user's script does first, in a process of its own (the installed mapping, not this test's path)."""
    code = ("from genops.providers.haystack import auto_instrument, GenOpsHaystackAdapter; import genops; "
            "print(genops.__version__, auto_instrument.__module__, GenOpsHaystackAdapter.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/",
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    version, instrument_module, adapter_module = proc.stdout.split()
    assert (instrument_module, adapter_module) == ("genops_cli.api.instrument", "genops_cli.api.adapter")


def test_adapter_signature_and_defaults_as_documented():
    from genops.providers.haystack import GenOpsHaystackAdapter

    params = inspect.signature(GenOpsHaystackAdapter).parameters
    documented = {"team": "default-team", "project": "haystack-integration", "environment": "development",
                  "daily_budget_limit": 100.0, "monthly_budget_limit": None, "governance_policy": "advisory",
                  "enable_cost_alerts": True, "enable_component_tracking": True, "enable_pipeline_caching": True}
    assert list(params)[:len(documented)] == list(documented)
    assert {name: params[name].default for name in documented} == documented
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())

    adapter = GenOpsHaystackAdapter()
    assert (adapter.team, adapter.project, adapter.environment) == (
        "default-team", "haystack-integration", "development")
    assert (adapter.daily_budget_limit, adapter.monthly_budget_limit, adapter.governance_policy) == (
        100.0, None, "advisory")
    assert (adapter.enable_cost_alerts, adapter.enable_component_tracking, adapter.enable_pipeline_caching) == (
        True, True, True)


def test_documented_environment_variables_set_the_defaults(monkeypatch):
    """GENOPS_ENVIRONMENT / GENOPS_DAILY_BUDGET_LIMIT / GENOPS_GOVERNANCE_POLICY (the guide's table) replace the
    documented defaults; an argument given in code still wins, even one equal to the default."""
    monkeypatch.setenv("GENOPS_ENVIRONMENT", "staging")
    monkeypatch.setenv("GENOPS_DAILY_BUDGET_LIMIT", "7.5")
    monkeypatch.setenv("GENOPS_GOVERNANCE_POLICY", "enforcing")
    monkeypatch.setenv("GENOPS_TEAM", "env-team")
    from genops.providers.haystack import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter()
    assert (adapter.team, adapter.environment, adapter.daily_budget_limit, adapter.governance_policy) == (
        "env-team", "staging", 7.5, "enforcing")
    explicit = GenOpsHaystackAdapter(team="ml", environment="development", daily_budget_limit=100.0,
                                     governance_policy="advisory")
    assert (explicit.team, explicit.environment, explicit.daily_budget_limit, explicit.governance_policy) == (
        "ml", "development", 100.0, "advisory")


def test_config_file_haystack_section_sets_the_defaults(tmp_path):
    """The guide's `.genops.yml` (haystack: default_team, default_project, daily_budget_limit, governance_policy,
    plus providers: and observability:) is read as written."""
    (tmp_path / ".genops.yml").write_text(
        "haystack:\n  default_team: \"ai-research\"\n  default_project: \"haystack-app\"\n"
        "  daily_budget_limit: 100.0\n  governance_policy: \"advisory\"\n\n"
        "providers:\n  openai:\n    default_model: \"gpt-3.5-turbo\"\n    timeout: 30\n"
        "  anthropic:\n    default_model: \"claude-3-haiku\"\n    timeout: 60\n\n"
        "observability:\n  export_to: \"datadog\"\n  sampling_rate: 1.0\n")
    from genops.providers.haystack import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter()
    assert (adapter.team, adapter.project, adapter.daily_budget_limit, adapter.governance_policy) == (
        "ai-research", "haystack-app", 100.0, "advisory")


def test_limits_and_policy_set_after_construction_apply_to_the_next_run(openai_server):
    """The guide's "adapter.daily_budget_limit = 200.0" / "adapter.governance_policy = ...": an enforcing limit
    set on a running adapter stops the next run before any provider request, and lifting it lets runs through."""
    fixed_usage(openai_server)
    from genops.providers.haystack import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="ops", project="limits")
    pipeline = qa_pipeline(model="gpt-4")
    with adapter.track_pipeline("expensive"):
        pipeline.run({"prompt_builder": {"question": "q"}})
    adapter.daily_budget_limit = 0.0001
    adapter.governance_policy = "enforcing"
    requests = openai_server.count("/chat/completions")
    with pytest.raises(RuntimeError, match="budget limit"):
        with adapter.track_pipeline("expensive"):
            pipeline.run({"prompt_builder": {"question": "q"}})
    assert openai_server.count("/chat/completions") == requests
    assert adapter.get_cost_summary()["daily_budget_limit"] == Decimal("0.0001")
    adapter.governance_policy = "advisory"
    with adapter.track_pipeline("expensive") as context:
        pipeline.run({"prompt_builder": {"question": "q"}})
    assert context.get_metrics().total_cost == GPT4_RUN
    from genops_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="governance_policy: unknown policy 'strictest'"):
        adapter.governance_policy = "strictest"


def test_track_pipeline_and_track_session_reference(openai_server):
    fixed_usage(openai_server)
    from genops.providers.haystack import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="ref", project="reference")
    pipeline = qa_pipeline()
    inputs = {"prompt_builder": {"question": "q"}}
    items = [inputs, inputs]

    with adapter.track_pipeline("rag-qa", customer_id="acme-corp") as context:
        result = pipeline.run(inputs)
        metrics = context.get_metrics()

    with adapter.track_session("batch-processing") as session:
        # Execute multiple pipelines
        for item in items:
            with adapter.track_pipeline("item-pipeline") as ctx:
                result = pipeline.run(item)
            session.add_pipeline_result(ctx.get_metrics())

    assert result["llm"]["replies"]
    assert metrics.total_cost == GPT35_RUN and context.customer_id == "acme-corp"
    assert (session.total_pipelines, session.total_cost) == (2, 2 * GPT35_RUN)


def test_get_cost_summary_reference_keys(openai_server):
    fixed_usage(openai_server)
    from genops.providers.haystack import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="ref", project="summary")
    with adapter.track_pipeline("qa"):
        qa_pipeline().run({"prompt_builder": {"question": "q"}})
    summary = adapter.get_cost_summary()
    assert {"daily_costs", "monthly_costs", "daily_budget_utilization", "cost_by_provider",
            "total_pipelines_executed"} <= set(summary)
    assert (summary["daily_costs"], summary["daily_budget_utilization"]) == (GPT35_RUN, Decimal("0.0012"))
    assert summary["cost_by_provider"] == {"openai": GPT35_RUN}
    assert summary["total_pipelines_executed"] == 1


def test_pipeline_context_reference_methods(openai_server):
    fixed_usage(openai_server)
    from genops.providers.haystack import GenOpsHaystackAdapter, HaystackComponentResult

    adapter = GenOpsHaystackAdapter(team="ref", project="context")
    with adapter.track_pipeline("ctx") as context:
        qa_pipeline().run({"prompt_builder": {"question": "q"}})
        context.add_custom_metric("answers", 1)
        context.add_component_result(HaystackComponentResult(
            component_name="post_processor", component_type="Custom", execution_time_seconds=0.25,
            cost=Decimal(0), provider_name="none"))
    metrics = context.get_metrics()
    assert metrics.custom_metrics == {"answers": 1}
    assert {c.component_name for c in metrics.component_results} == {"prompt_builder", "llm", "post_processor"}


def test_result_dataclasses_have_the_documented_fields():
    from genops.providers.haystack import HaystackComponentResult, HaystackPipelineResult

    pipeline_fields = [f.name for f in dataclasses.fields(HaystackPipelineResult)]
    assert pipeline_fields[:10] == ["pipeline_name", "total_cost", "total_components",
                                    "total_execution_time_seconds", "cost_by_provider", "cost_by_component",
                                    "start_time", "end_time", "success", "error_message"]
    component_fields = [f.name for f in dataclasses.fields(HaystackComponentResult)]
    assert component_fields[:9] == ["component_name", "component_type", "execution_time_seconds", "cost",
                                    "provider_name", "model_name", "tokens_used", "success", "error_message"]


def test_utility_function_reference(openai_server, capsys):
    fixed_usage(openai_server)
    from genops.providers.haystack import (
        analyze_pipeline_costs,
        auto_instrument,
        create_agent_adapter,
        create_rag_adapter,
        get_agent_insights,
        get_rag_insights,
        validate_haystack_setup,
    )

    from genops_cli.api import uninstrument

    success = auto_instrument(
        team="ml-team",
        project="rag-chatbot",
        daily_budget_limit=50.0
    )
    uninstrument()
    assert success is True

    result = validate_haystack_setup()
    if result.is_valid:
        print("✅ Setup ready!")
    else:
        print(f"❌ {result.get_error_count()} errors found")

    rag_adapter = create_rag_adapter(
        team="research-team",
        project="document-qa",
        daily_budget_limit=200.0
    )
    agent_adapter = create_agent_adapter(
        team="ai-agents",
        project="research-assistant",
        daily_budget_limit=300.0
    )
    assert (rag_adapter.daily_budget_limit, agent_adapter.daily_budget_limit) == (200.0, 300.0)
    with rag_adapter.track_pipeline("document-qa") as context:
        qa_pipeline().run({"prompt_builder": {"question": "q"}})
    pipeline_id = context.pipeline_id

    analysis = analyze_pipeline_costs(rag_adapter, time_period_hours=24)
    print(f"Total cost: ${analysis['total_cost']:.2f}")
    for rec in analysis['recommendations']:
        print(f"💡 {rec['reasoning']}")

    insights = get_rag_insights(rag_adapter.monitor, pipeline_id)
    print(f"Retrieval latency: {insights['retrieval_latency']:.2f}s")
    print(f"Generation latency: {insights['generation_latency']:.2f}s")

    insights = get_agent_insights(agent_adapter.monitor, pipeline_id)  # same ledger: any run id works
    print(f"Decisions made: {insights['decisions_made']}")
    print(f"Tools used: {insights['tools_used']}")

    out = capsys.readouterr().out.splitlines()
    assert out[1] == "Total cost: $0.00"
    assert out[-2:] == ["Decisions made: 1", "Tools used: []"]


def test_enable_cost_alerts_controls_budget_alerts(openai_server):
    """enable_cost_alerts=True (documented: alerts at 80 % utilization) records an alert when spend crosses a
    threshold of the adapter's budget; False records none."""
    fixed_usage(openai_server)
    from genops.providers.haystack import GenOpsHaystackAdapter

    pipeline = qa_pipeline(model="gpt-4")
    quiet = GenOpsHaystackAdapter(team="quiet", project="alerts", daily_budget_limit=0.07, enable_cost_alerts=False)
    for _ in range(2):
        with quiet.track_pipeline("answer"):
            pipeline.run({"prompt_builder": {"question": "q"}})
    loud = GenOpsHaystackAdapter(team="loud", project="alerts", daily_budget_limit=0.07, enable_cost_alerts=True)
    for _ in range(2):
        with loud.track_pipeline("answer"):
            pipeline.run({"prompt_builder": {"question": "q"}})
    quiet.flush()
    loud.flush()
    from genops_cli.policy import alerts

    alerts.flush()
    fired = ledger_rows("SELECT scope, threshold FROM alerts ORDER BY threshold")
    assert {scope for scope, _ in fired} == {"team:loud"}
    assert [t for _, t in fired] == [50, 80, 95, 100]


def test_enable_component_tracking_false_keeps_only_provider_calls(openai_server):
    fixed_usage(openai_server)
    from genops.providers.haystack import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="lean", project="calls", enable_component_tracking=False)
    with adapter.track_pipeline("qa") as context:
        qa_pipeline().run({"prompt_builder": {"question": "q"}})
    assert [c.component_name for c in context.get_metrics().component_results] == ["llm"]
    assert context.get_metrics().total_cost == GPT35_RUN
    adapter.flush()
    assert ledger_rows("SELECT component_name FROM calls") == [("llm",)]


def test_enable_pipeline_caching_false_reads_a_changed_pipeline_every_run(openai_server):
    """Caching keeps what genops learned about a pipeline object (components, models, limits: its profile and
    hash) between runs; with it off, a pipeline changed in place is read again at every run."""
    fixed_usage(openai_server)
    from genops.providers.haystack import GenOpsHaystackAdapter

    hashes = {}
    for caching in (True, False):
        adapter = GenOpsHaystackAdapter(team="cache", project=str(caching), enable_pipeline_caching=caching)
        pipeline = qa_pipeline(model="gpt-4")
        for model in ("gpt-4", "gpt-3.5-turbo"):
            pipeline.get_component("llm").model = model  # changed in place: same object, same components
            with adapter.track_pipeline("qa", pipeline=pipeline):
                pipeline.run({"prompt_builder": {"question": "q"}})
        adapter.flush()
        hashes[caching] = [r[0] for r in ledger_rows(
            "SELECT pipeline_hash FROM runs WHERE project = ? ORDER BY started_at", [str(caching)])]
    assert hashes[True][0] == hashes[True][1]
    assert hashes[False][0] != hashes[False][1]


def test_a_limit_lowered_inside_a_tracked_block_stops_the_next_call(openai_server):
    """Set on a running adapter, an enforcing limit applies to the very next LLM call, in the same run."""
    fixed_usage(openai_server)
    from genops.providers.haystack import BudgetExceededError, GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="ops", project="mid-run", governance_policy="enforcing")
    pipeline = qa_pipeline(model="gpt-4")
    with pytest.raises(BudgetExceededError, match="budget limit"):
        with adapter.track_pipeline("two-calls") as context:
            pipeline.run({"prompt_builder": {"question": "first"}})
            adapter.daily_budget_limit = 0.07  # $0.06 spent: the next call's worst case does not fit
            pipeline.run({"prompt_builder": {"question": "second"}})
    assert openai_server.count("/chat/completions") == 1
    assert context.get_metrics().total_cost == GPT4_RUN
    adapter.flush()
    assert ledger_rows("SELECT status, total_cost FROM runs") == [("blocked", GPT4_RUN)]


def test_analyze_pipeline_costs_of_an_adapter_covers_its_team_and_project(openai_server):
    fixed_usage(openai_server)
    from genops.providers.haystack import analyze_pipeline_costs, create_agent_adapter, create_rag_adapter

    rag_adapter = create_rag_adapter(team="research", project="kb")
    agent_adapter = create_agent_adapter(team="agents", project="assistant")
    with rag_adapter.track_pipeline("qa"):
        qa_pipeline().run({"prompt_builder": {"question": "q"}})
    with agent_adapter.track_pipeline("plan"):
        qa_pipeline(model="gpt-4").run({"prompt_builder": {"question": "q"}})
    agent_adapter.flush()
    assert analyze_pipeline_costs(rag_adapter, time_period_hours=24)["total_cost"] == GPT35_RUN
    assert analyze_pipeline_costs(agent_adapter, time_period_hours=24)["total_cost"] == GPT4_RUN
    everything = analyze_pipeline_costs(str(rag_adapter.ledger.location), time_period_hours=24)
    assert everything["total_cost"] == GPT35_RUN + GPT4_RUN
    assert analyze_pipeline_costs(rag_adapter, team=None, project=None)["total_cost"] == GPT35_RUN + GPT4_RUN


def test_packaging_ships_every_package_and_the_guide_path():
    """pyproject.toml lists packages explicitly: every genops_cli package (so a wheel install has the API) and
    `genops` mapped onto genops_cli/alias/genops (the guide's import path, no extra top-level folder)."""
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "genops_cli").rglob("__init__.py")
               if "alias" not in p.parts}
    assert on_disk - {"genops_cli.pricing_overlays"} <= listed
    assert {"genops", "genops.providers"} <= listed
    assert config["package-dir"]["genops"] == "genops_cli/alias/genops"
    assert (REPO / "genops_cli/alias/genops/providers/haystack.py").is_file()


def test_rag_and_agent_adapter_tracking_switches(openai_server):
    """create_rag_adapter / create_agent_adapter take the adapter's defaults; enable_retrieval_tracking=False
    leaves retriever visits out of the records; the switches of cost-bearing calls cannot be turned off."""
    fixed_usage(openai_server)
    from genops.providers.haystack import create_agent_adapter, create_rag_adapter
    from guide_support import rag_pipeline

    assert (create_rag_adapter().team, create_agent_adapter().daily_budget_limit) == ("default-team", 100.0)
    rag_adapter = create_rag_adapter(team="kb", project="lean", enable_retrieval_tracking=False)
    with rag_adapter.track_pipeline("rag") as context:
        rag_pipeline().run({"retriever": {"query": "RAG"}, "prompt_builder": {"question": "RAG?"}})
    assert [c.component_name for c in context.get_metrics().component_results] == ["prompt_builder", "llm"]
    assert context.get_metrics().total_cost == GPT35_RUN
    with pytest.raises(ValueError, match="enable_generation_tracking=False: LLM calls carry the run's cost"):
        create_rag_adapter(enable_generation_tracking=False)
    with pytest.raises(ValueError, match="enable_decision_tracking=False"):
        create_agent_adapter(enable_decision_tracking=False)


def test_tracked_calls_keeps_cost_bearing_and_failed_calls():
    from datetime import datetime, timezone

    from genops_cli.api.adapter import tracked_calls
    from genops_cli.models import CallRecord

    now = datetime.now(timezone.utc)

    def call(call_id, kind, parent=None, model=None, status="ok", docs=None):
        return CallRecord(call_id=call_id, run_id="r", seq=0, span_kind=kind, component_name=call_id,
                          component_type="T", started_at=now, parent_call_id=parent, model=model, status=status,
                          documents_retrieved=docs)

    calls = [call("agent", "component"), call("step", "agent_llm", "agent", model="gpt-4"),
             call("tool", "tool", "agent"), call("bad_tool", "tool", "agent", status="error"),
             call("retriever", "component", docs=3), call("builder", "component")]
    assert [c.call_id for c in tracked_calls(calls, tools=False)] == [
        "agent", "step", "bad_tool", "retriever", "builder"]
    lean = tracked_calls(calls, components=False)
    assert [c.call_id for c in lean] == ["step", "tool", "bad_tool"]
    assert {c.parent_call_id for c in lean} == {None}  # their Agent row was dropped
