"""One run lifecycle on every entry point: an exhausted enforcing budget makes zero provider requests whichever way
a run starts (CLI run, batch, compare, the Python API's track_pipeline with and without `pipeline=`,
track_session, auto_instrument, the component mixin; spend still in the spool counts too), and per-call admission
keeps a looping Agent and 20 concurrent API requests under an enforcing limit (exact Decimal sums)."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import SAMPLES, cli, ledger_rows
from fakeproviders import ToolLoop
from ledger_factory import make_run, record

from genops_cli.models import utcnow

CHAIN = str(SAMPLES / "chain" / "pipeline.yml")
CHAIN_INPUTS = str(SAMPLES / "chain" / "inputs.json")
LIMIT = Decimal("0.001")


def _ledger() -> Any:
    from genops_cli.ledger.store import open_ledger

    return open_ledger(os.environ["GENOPS_LEDGER"])


def _exhaust(where: str = "ledger") -> None:
    """An enforcing global daily budget of $0.001 with $0.0035 already spent today (in the ledger, or still in the
    spool as a run finished by a process whose ingestion has not happened yet)."""
    from genops_cli.ledger.records import record_run
    from genops_cli.ledger.spool import Spool

    result = cli("budget", "set", "global", "--daily", str(LIMIT), "--policy", "enforcing")
    assert result.exit_code == 0, result.stderr
    spent = make_run(None, utcnow(), [{"model": "gpt-4o", "input": 1000, "output": 100}])
    assert spent.total_cost == Decimal("0.0035")
    if where == "spool":
        Spool(_ledger().spool_dir()).write(spent)
    else:
        assert record_run(_ledger(), spent).ok


def _chat_pipeline(model: str = "gpt-4o-mini", max_tokens: int = 50) -> Any:
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    p = Pipeline()
    p.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")], required_variables=["q"]))
    p.add_component("llm", OpenAIChatGenerator(model=model, generation_kwargs={"max_tokens": max_tokens}))
    p.connect("prompt.prompt", "llm.messages")
    return p


QUESTION = "Which of our regions had the highest support ticket volume last quarter, and why did it change?"


def _blocked_runs() -> list[tuple[str, str | None]]:
    return ledger_rows("SELECT status, policy_reason_code FROM runs WHERE status = 'blocked'")


# -- an exhausted enforcing budget: zero provider requests on every entry point --------------------------------


@pytest.mark.parametrize("where", ["ledger", "spool"])
def test_cli_run(openai_server, where):
    _exhaust(where)
    result = cli("run", CHAIN, "--inputs", CHAIN_INPUTS, "--json")
    assert result.exit_code == 3, result.stderr
    assert json.loads(result.stdout)["policy"]["reason_code"] == "BUDGET_EXCEEDED"
    assert openai_server.request_count == 0
    assert _blocked_runs() == [("blocked", "BUDGET_EXCEEDED")]


def test_cli_batch(openai_server, tmp_path):
    _exhaust()
    batch = tmp_path / "b.jsonl"
    line = json.loads(Path(CHAIN_INPUTS).read_text())
    batch.write_text("\n".join(json.dumps(line) for _ in range(3)) + "\n")
    result = cli("run", CHAIN, "--inputs", str(batch), "--concurrency", "3", "--json")
    assert result.exit_code == 3, result.stderr
    assert openai_server.request_count == 0
    assert len(_blocked_runs()) == 3


def test_cli_compare(openai_server):
    _exhaust()
    result = cli("compare", CHAIN, "--inputs", CHAIN_INPUTS, "--model", "gpt-4o-mini", "--model", "gpt-4.1-mini",
                 "--json")
    assert result.exit_code == 3, result.stderr
    assert openai_server.request_count == 0
    assert len(_blocked_runs()) == 2


@pytest.mark.parametrize("with_pipeline", [True, False])
def test_api_track_pipeline(openai_server, with_pipeline):
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    _exhaust()
    adapter = GenOpsHaystackAdapter(team="ml", project="p", daily_budget_limit=None)
    pipeline = _chat_pipeline()
    with pytest.raises(BudgetExceededError, match="budget limit"):
        with adapter.track_pipeline("chat", **({"pipeline": pipeline} if with_pipeline else {})):
            pipeline.run({"prompt": {"q": QUESTION}})
    assert openai_server.request_count == 0
    assert adapter.flush()
    assert _blocked_runs() == [("blocked", "BUDGET_EXCEEDED")]


def test_api_track_session(openai_server):
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    _exhaust()
    adapter = GenOpsHaystackAdapter(team="ml", project="p", daily_budget_limit=None)
    pipeline = _chat_pipeline()
    with adapter.track_session("s") as session:
        with pytest.raises(BudgetExceededError):
            with adapter.track_pipeline("chat"):
                pipeline.run({"prompt": {"q": QUESTION}})
    assert openai_server.request_count == 0
    assert adapter.flush()
    assert ledger_rows("SELECT status, session_id FROM runs WHERE status = 'blocked'") == [
        ("blocked", session.session_id)]


def test_api_auto_instrument(openai_server):
    from genops_cli import BudgetExceededError, auto_instrument, uninstrument

    _exhaust()
    auto_instrument(team="ml", project="p", daily_budget_limit=None)
    try:
        pipeline = _chat_pipeline()
        with pytest.raises(BudgetExceededError, match="budget limit"):
            pipeline.run({"prompt": {"q": QUESTION}})
    finally:
        uninstrument()
    assert openai_server.request_count == 0
    assert _blocked_runs() == [("blocked", "BUDGET_EXCEEDED")]


def test_api_component_mixin(openai_server):
    from haystack import component
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    from genops_cli import BudgetExceededError, GenOpsComponentMixin, GenOpsHaystackAdapter

    @component
    class InstrumentedGenerator(GenOpsComponentMixin):
        def __init__(self, model: str) -> None:
            self.model = model
            self.generator = OpenAIChatGenerator(model=model, generation_kwargs={"max_tokens": 50})

        @component.output_types(replies=list[ChatMessage])
        def run(self, messages: list[ChatMessage]) -> dict:
            with self.track_execution("instrumented") as ctx:
                result = self.generator.run(messages)
                ctx.record_output(result)
                return result

    _exhaust()
    generator = InstrumentedGenerator(model="gpt-4o-mini")
    generator.genops_adapter = GenOpsHaystackAdapter(team="ml", project="p", daily_budget_limit=None)
    with pytest.raises(BudgetExceededError):
        generator.run([ChatMessage.from_user(QUESTION)])
    assert openai_server.request_count == 0
    assert generator.genops_adapter.flush()
    assert _blocked_runs() == [("blocked", "BUDGET_EXCEEDED")]


# -- per-call admission: loops and concurrency never cross an enforcing limit ---------------------------------


def _agent_pipeline(max_steps: int = 100) -> Any:
    from haystack import Pipeline
    from haystack.components.agents import Agent
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.tools import ComponentTool

    tool = ComponentTool(component=InMemoryBM25Retriever(document_store=InMemoryDocumentStore()), name="web_search",
                         description="Keyword search.", outputs_to_string={"source": "documents"})
    agent = Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_tokens": 50}),
                  tools=[tool], max_agent_steps=max_steps)
    pipeline = Pipeline()
    pipeline.add_component("agent", agent)
    return pipeline


# Replies as a real provider bills them: the prompt is at least this long, the reply at most max_tokens.
AGENT_STEP_USAGE = {"prompt_tokens": 20, "completion_tokens": 50}
# gpt-4o-mini 0.15 / 0.60 per 1M: 20 x 0.15e-6 + 50 x 0.60e-6
AGENT_STEP = Decimal("0.000033")


def test_looping_agent_stops_before_the_step_that_would_cross(openai_server):
    from haystack.dataclasses import ChatMessage

    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.responder = ToolLoop("web_search", times=None, arguments={"query": "x"}, usage=AGENT_STEP_USAGE)
    limit = Decimal("0.0005")
    adapter = GenOpsHaystackAdapter(team="agents", project="p", daily_budget_limit=limit,
                                    governance_policy="enforcing")
    pipeline = _agent_pipeline()
    with pytest.raises(BudgetExceededError, match="budget limit"):
        with adapter.track_pipeline("looping-agent"):
            pipeline.run({"agent": {"messages": [ChatMessage.from_user("find it")]}})
    assert adapter.flush()
    [(status, total, reason)] = ledger_rows("SELECT status, total_cost, policy_reason_code FROM runs")
    steps = openai_server.count("/chat/completions")
    assert (status, reason) == ("blocked", "BUDGET_EXCEEDED")
    assert total == AGENT_STEP * steps <= limit  # every step that ran was paid; none crossed the limit
    assert steps >= 5  # it looped, and was stopped by the budget, not by max_agent_steps
    assert ledger_rows("SELECT COUNT(*) FROM calls WHERE span_kind = 'agent_llm' AND status = 'blocked'") == [(1,)]


def test_looping_agent_on_the_cli_stops_before_the_step_that_would_cross(openai_server, tmp_path):
    openai_server.responder = ToolLoop("web_search", times=None, arguments={"query": "x"}, usage=AGENT_STEP_USAGE)
    limit = Decimal("0.0005")
    assert cli("budget", "set", "global", "--daily", str(limit), "--policy", "enforcing").exit_code == 0
    path = tmp_path / "agent.yml"
    path.write_text(_agent_pipeline().dumps())
    result = cli("run", str(path), "--input", 'agent.messages=[{"role": "user", "content": [{"text": "find"}]}]',
                 "--json")
    assert result.exit_code == 3, result.stderr
    out = json.loads(result.stdout)
    steps = openai_server.count("/chat/completions")
    assert (out["status"], out["policy"]["reason_code"]) == ("blocked", "BUDGET_EXCEEDED")
    assert Decimal(out["total_cost"]) == AGENT_STEP * steps <= limit
    assert steps >= 5


def _concurrently(request: Any, count: int) -> None:
    """request(0) ... request(count - 1), each on its own thread, all started before any is joined."""
    threads = [threading.Thread(target=request, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def test_twenty_concurrent_looping_agents_never_cross_the_limit_in_sum(openai_server):
    """20 requests, each an Agent that would loop until max_agent_steps, against one enforcing daily limit: every
    step is admitted on its worst case, so the steps of all agents together stop before the one that would cross."""
    from haystack.dataclasses import ChatMessage

    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.responder = ToolLoop("web_search", times=None, arguments={"query": "x"}, usage=AGENT_STEP_USAGE)
    openai_server.latency = 0.01
    limit = Decimal("0.0015")
    adapter = GenOpsHaystackAdapter(team="agents", project="p", daily_budget_limit=limit,
                                    governance_policy="enforcing")
    pipeline = _agent_pipeline(max_steps=20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def request(i: int) -> None:
        try:
            with adapter.track_pipeline("agent-request", pipeline=pipeline):
                pipeline.run({"agent": {"messages": [ChatMessage.from_user(f"find it ({i})")]}})
            outcome = "ok"
        except BudgetExceededError:
            outcome = "blocked"
        with lock:
            outcomes.append(outcome)

    _concurrently(request, 20)
    assert adapter.flush()
    steps = openai_server.count("/chat/completions")
    [(spent, runs)] = ledger_rows("SELECT SUM(total_cost), COUNT(*) FROM runs")
    assert runs == 20 and "blocked" in outcomes
    assert spent == AGENT_STEP * steps <= limit  # every step that ran was paid; together they never crossed
    assert steps > 20  # the agents looped: most runs made several steps before the budget stopped them


def test_twenty_concurrent_requests_never_cross_the_limit_in_sum(openai_server):
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}  # at most the worst case of each call
    openai_server.latency = 0.02
    per_run = Decimal("0.0000315")  # 10 x 0.15e-6 + 50 x 0.60e-6
    limit = Decimal("0.0002")
    adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=limit,
                                    governance_policy="enforcing")
    pipeline = _chat_pipeline()
    outcomes: list[str] = []
    reasons: list[str] = []
    lock = threading.Lock()

    def request(i: int) -> None:
        try:
            with adapter.track_pipeline("request", pipeline=pipeline):
                pipeline.run({"prompt": {"q": f"{QUESTION} ({i})"}})
            outcome = "ok"
        except BudgetExceededError as exc:
            outcome = "blocked"
            reasons.append(str(exc))
        with lock:
            outcomes.append(outcome)

    _concurrently(request, 20)
    assert adapter.flush()
    assert len(outcomes) == 20 and "blocked" in outcomes and "ok" in outcomes, reasons[:2]
    [(spent,)] = ledger_rows("SELECT SUM(total_cost) FROM runs")
    ok = outcomes.count("ok")
    assert spent == per_run * ok <= limit
    assert openai_server.count("/chat/completions") == ok
    assert ledger_rows("SELECT COUNT(*) FROM runs WHERE status = 'blocked'") == [(outcomes.count("blocked"),)]
    # the process's runs drew on one lease (one row, not one per request); released at exit, nothing stays held
    assert ledger_rows("SELECT COUNT(*) FROM reservations WHERE run_id LIKE 'lease:%'") == [(1,)]
    from genops_cli.policy.leases import release_all

    release_all()
    assert ledger_rows("SELECT COUNT(*) FROM reservations WHERE released_at IS NULL") == [(0,)]


def test_a_budget_set_by_another_process_applies_to_the_next_call(openai_server):
    """No cache window: `genops budget set` in another process touches the ledger's budget stamp, and this
    process's next call re-reads the budgets (DuckDB; a server ledger re-reads at most 1 s later)."""
    import subprocess
    import sys

    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}
    adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=None)
    pipeline = _chat_pipeline()
    with adapter.track_pipeline("request"):
        pipeline.run({"prompt": {"q": QUESTION}})  # no budget yet: the "no budgets" answer is now cached
    assert openai_server.request_count == 1
    genops = str(Path(sys.executable).with_name("genops"))
    proc = subprocess.run([genops, "budget", "set", "global", "--daily", "0.00001", "--policy", "enforcing"],
                          capture_output=True, text=True, env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(BudgetExceededError):
        with adapter.track_pipeline("request"):
            pipeline.run({"prompt": {"q": QUESTION}})
    assert openai_server.request_count == 1


def test_nested_agent_is_admitted_call_by_call(openai_server, anthropic_server):
    """An Agent used as a tool (AgentTool) that loops: its own steps, on another provider, are admitted one by one."""
    from haystack import Pipeline
    from haystack.components.agents import Agent
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage
    from haystack.tools import AgentTool
    from haystack_integrations.components.generators.anthropic import AnthropicChatGenerator

    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    inner_tool = _agent_pipeline().get_component("agent").tools[0]
    # No max_tokens on the inner generator: each inner step's worst case is the model's output limit (8192 tokens);
    # genops reads the model from the inner Agent itself (the pipeline's profile does not see inside a tool).
    inner = Agent(chat_generator=AnthropicChatGenerator(model="claude-3-5-haiku-20241022"),
                  tools=[inner_tool], max_agent_steps=100)
    outer = Agent(chat_generator=OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_tokens": 50}),
                  tools=[AgentTool(agent=inner, name="search_agent", description="Searches.")], max_agent_steps=5)
    pipeline = Pipeline()
    pipeline.add_component("researcher", outer)
    openai_server.responder = ToolLoop("search_agent", times=1, usage=AGENT_STEP_USAGE,
                                       arguments={"messages": [{"role": "user", "content": "search"}]})
    # The fake bills close to that limit.
    anthropic_server.responder = ToolLoop("web_search", times=None, arguments={"query": "q"},
                                          usage={"input_tokens": 20, "output_tokens": 8000})
    limit = Decimal("0.2")
    adapter = GenOpsHaystackAdapter(team="agents", project="p", daily_budget_limit=limit,
                                    governance_policy="enforcing")
    # The inner step that would cross is denied inside the tool: Haystack's ToolInvoker hands the outer Agent a
    # tool error and the outer Agent may still answer (its own step fits). Either way the limit holds.
    with contextlib.suppress(BudgetExceededError):
        with adapter.track_pipeline("nested", pipeline=pipeline):
            pipeline.run({"researcher": {"messages": [ChatMessage.from_user("find it")]}})
    assert adapter.flush()
    [(total,)] = ledger_rows("SELECT total_cost FROM runs")
    # claude-3-5-haiku 0.80 / 4.00 per 1M: 20 x 0.8e-6 + 8000 x 4e-6 per inner step
    inner_steps = anthropic_server.count("/messages")
    assert 3 <= inner_steps < 100  # stopped by the budget, not by max_agent_steps
    assert ledger_rows("SELECT COUNT(*) FROM policy_events WHERE rule LIKE 'budget:%' AND enforced") == [(1,)]
    outer_steps = openai_server.count("/chat/completions")
    assert total == AGENT_STEP * outer_steps + Decimal("0.032016") * inner_steps <= limit


# -- across processes ----------------------------------------------------------------------------------------


SERVICE = """
import json, sys, threading
from haystack import Pipeline
from haystack.components.builders import ChatPromptBuilder
from haystack.components.generators.chat import OpenAIChatGenerator
from haystack.dataclasses import ChatMessage
from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

def build():
    p = Pipeline()
    p.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")], required_variables=["q"]))
    p.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_tokens": 50}))
    p.connect("prompt.prompt", "llm.messages")
    return p

adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=None)
outcomes = []

def request(i):
    pipeline = build()
    try:
        with adapter.track_pipeline("request"):  # the pipeline is found when it runs
            pipeline.run({"prompt": {"q": "Which region grew most last quarter, and why? (%d)" % i}})
        outcomes.append("ok")
    except BudgetExceededError:
        outcomes.append("blocked")

threads = [threading.Thread(target=request, args=(i,)) for i in range(int(sys.argv[1]))]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert adapter.flush()
print(json.dumps(outcomes))
"""


@pytest.mark.slow
def test_concurrent_requests_in_four_processes_never_cross_the_limit_in_sum(openai_server, backend, tmp_path):
    """4 service processes x 5 concurrent requests (pipelines the API learns when they run) against one enforcing
    budget set from the CLI: the ledger's spend never exceeds it, and every request made was paid and recorded."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}  # at most each call's worst case
    openai_server.latency = 0.05
    per_run = Decimal("0.0000315")  # 10 x 0.15e-6 + 50 x 0.60e-6
    limit = Decimal("0.0002")
    assert cli("budget", "set", "global", "--daily", str(limit), "--policy", "enforcing").exit_code == 0
    script = tmp_path / "service.py"
    script.write_text(SERVICE)

    def service(_: int) -> list[str]:
        proc = subprocess.run([sys.executable, str(script), "5"], capture_output=True, text=True, timeout=240,
                              env=dict(os.environ), cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(4) as pool:
        outcomes = [o for result in pool.map(service, range(4)) for o in result]
    assert len(outcomes) == 20 and "blocked" in outcomes and "ok" in outcomes
    [(spent,)] = ledger_rows("SELECT SUM(total_cost) FROM runs")
    assert spent == per_run * outcomes.count("ok") <= limit
    assert openai_server.count("/chat/completions") == outcomes.count("ok")
    assert ledger_rows("SELECT COUNT(*) FROM runs") == [(20,)]


def test_an_admission_check_sees_every_call_and_can_stop_one(openai_server):
    """The per-call hook: a registered check receives each call's component, provider, model and worst case before
    the request, and a Denial stops the run there (no request; the run is blocked with the check's reason)."""
    from genops_cli.policy.admission import (
        CallRequest,
        Denial,
        RunAdmission,
        register_admission_check,
        unregister_admission_check,
    )

    seen: list[CallRequest] = []

    def no_gpt4o(request: CallRequest, run: RunAdmission) -> Denial | None:
        seen.append(request)
        if request.model == "gpt-4o":
            return Denial("POLICY_DENY_MODEL", f"{request.component}: gpt-4o is not allowed here", "test:no-gpt-4o")
        return None

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}
    register_admission_check(no_gpt4o)
    try:
        result = cli("run", CHAIN, "--inputs", CHAIN_INPUTS, "--json")
    finally:
        unregister_admission_check(no_gpt4o)
    assert result.exit_code == 3, result.stderr
    out = json.loads(result.stdout)
    assert (out["status"], out["policy"]["reason_code"]) == ("blocked", "POLICY_DENY_MODEL")
    assert openai_server.count("/chat/completions") == 1  # the drafter ran; the reviewer was never called
    assert [(r.component, r.provider, r.model, r.output_tokens, r.output_basis) for r in seen] == [
        ("drafter", "openai", "gpt-4o-mini", 512, "max_tokens"), ("reviewer", "openai", "gpt-4o", 512, "max_tokens")]
    assert all(r.input_tokens > 0 and r.worst_case > 0 and r.priced for r in seen)
    # gpt-4o: 2.50 / 10.00 per 1M
    reviewer = seen[1]
    assert reviewer.worst_case == (Decimal(reviewer.input_tokens) * Decimal("2.50")
                                   + Decimal(512) * Decimal("10.00")) / Decimal(1_000_000)


def test_a_budget_tightened_by_another_process_applies_to_the_next_request(openai_server):
    """The process's lease had room for more requests; a lower limit set from another shell is checked at the
    next draw (the budget list changed), not after the room is used up."""
    import subprocess
    import sys

    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}
    genops = str(Path(sys.executable).with_name("genops"))

    def budget(daily: str) -> None:
        proc = subprocess.run([genops, "budget", "set", "global", "--daily", daily, "--policy", "enforcing"],
                              capture_output=True, text=True, env=dict(os.environ))
        assert proc.returncode == 0, proc.stderr

    budget("1")
    adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=None)
    pipeline = _chat_pipeline()
    with adapter.track_pipeline("request"):
        pipeline.run({"prompt": {"q": QUESTION}})
    budget("0.00001")
    with pytest.raises(BudgetExceededError):
        with adapter.track_pipeline("request"):
            pipeline.run({"prompt": {"q": QUESTION}})
    assert openai_server.request_count == 1


def test_a_process_lease_holds_what_its_runs_may_spend_and_settles_against_ingested_runs():
    from types import SimpleNamespace

    from genops_cli.config import load_settings
    from genops_cli.ledger.records import record_run
    from genops_cli.models import Attribution, Budget, RunRecord
    from genops_cli.policy.leases import LeaseBudgetHold, lease_for

    settings = load_settings()
    settings.budgets.scopes.append(Budget(scope="global", daily=Decimal("1"), policy="enforcing", source="config"))
    ctx = SimpleNamespace(settings=settings, ledger=_ledger())

    def new_run(i: int) -> RunRecord:
        return RunRecord(run_id=f"run-{i}", pipeline_name="p", pipeline_hash="h", started_at=utcnow(),
                         attribution=Attribution(), genops_version="test")

    def held() -> list[tuple[Any, ...]]:
        return ledger_rows("SELECT amount FROM reservations WHERE run_id LIKE 'lease:%' AND released_at IS NULL")

    first = new_run(1)
    hold = LeaseBudgetHold(lease_for(ctx, first), first)
    assert hold.ensure(Decimal("0.1")) is None
    # room for 4 more draws like it (0.5 held), since as much again (0.4) stays free for other processes
    assert held() == [(Decimal("0.5"),)]
    hold.finished(Decimal("0.06"))  # 0.04 of its hold goes back; 0.06 stays held until the run is in the ledger
    lease = hold.lease
    assert (lease.used, lease.pending) == (Decimal("0.06"), {"run-1": Decimal("0.06")})
    first.total_cost, first.ended_at = Decimal("0.06"), utcnow()
    assert record_run(ctx.ledger, first).ok
    second = new_run(2)
    big = LeaseBudgetHold(lease_for(ctx, second), second)
    assert big.lease is lease
    assert big.ensure(Decimal("0.5")) is None  # grows: run-1 now counts as spent, so it leaves the lease
    assert lease.pending == {} and lease.used == Decimal("0.5")
    assert held() == [(Decimal("0.5"),)]  # 0.06 spent + 0.5 held; 4 more draws of 0.5 do not fit, so no spare
    third = new_run(3)
    denial = LeaseBudgetHold(lease_for(ctx, third), third).ensure(Decimal("0.5"))
    assert denial is not None and denial.reason_code == "BUDGET_EXCEEDED"  # 0.06 + 0.5 + 0.5 > 1


def test_a_run_bigger_than_the_pipelines_earlier_runs_is_admitted_on_its_own_calls(openai_server):
    """A service's runs draw their up-front hold from the process's lease without a simulated pass each (the
    largest worst case seen for the pipeline); a run with a much longer input is still stopped before the call
    whose own worst case does not fit, with zero requests for it."""
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}
    per_run = Decimal("0.0000315")  # 10 x 0.15e-6 + 50 x 0.60e-6
    limit = Decimal("0.0002")
    adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=limit, governance_policy="enforcing")
    pipeline = _chat_pipeline()
    outcomes = []
    for i in range(8):
        long = i == 3  # about 4,000 input tokens: its worst case alone is over the limit
        question = " ".join([QUESTION] * 200) if long else f"{QUESTION} ({i})"
        try:
            with adapter.track_pipeline("request", pipeline=pipeline):
                pipeline.run({"prompt": {"q": question}})
            outcomes.append("ok")
        except BudgetExceededError:
            outcomes.append("blocked")
    assert adapter.flush()
    assert outcomes[:4] == ["ok", "ok", "ok", "blocked"] and "blocked" in outcomes[4:], outcomes
    ok = outcomes.count("ok")
    assert openai_server.count("/chat/completions") == ok
    [(spent,)] = ledger_rows("SELECT SUM(total_cost) FROM runs")
    assert spent == per_run * ok <= limit


def test_a_lease_shrinks_with_the_runs_the_ledger_has_counted(openai_server, monkeypatch):
    """A process's runs drew on its lease and were ingested; then a draw is denied (another process spent the
    rest). The lease's room must shrink by the costs the ledger now counts as spent, or the next request would
    be admitted in memory on money counted twice."""
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    monkeypatch.setenv("GENOPS_INGEST", "inline")  # ingestion at flush(), when the test says
    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}
    limit = Decimal("0.0002")
    adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=limit,
                                    governance_policy="enforcing")
    pipeline = _chat_pipeline()

    def request(i: int) -> None:
        with adapter.track_pipeline("request", pipeline=pipeline):
            pipeline.run({"prompt": {"q": f"{QUESTION} ({i})"}})

    for i in range(5):
        request(i)
    assert adapter.flush()
    record(make_run(None, utcnow(), [{"model": "gpt-4o-mini", "output": 34}], team="svc"))  # another process
    for i in range(5, 8):
        with pytest.raises(BudgetExceededError):
            request(i)
    assert openai_server.count("/chat/completions") == 5
    assert adapter.flush()
    [(spent,)] = ledger_rows("SELECT SUM(total_cost) FROM runs")
    assert spent == 5 * Decimal("0.0000315") + Decimal("0.0000204") <= limit


def test_a_budget_raised_after_requests_were_denied_applies_to_the_next_request(openai_server):
    """Denied draws are remembered for a moment (blocked requests of a busy service skip the ledger), but a
    budget changed anywhere ends that at once: the next request is checked against the new limit."""
    from genops_cli import BudgetExceededError, GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}
    assert cli("budget", "set", "global", "--daily", "0.00001", "--policy", "enforcing").exit_code == 0
    adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=None)
    pipeline = _chat_pipeline()
    for _ in range(3):
        with pytest.raises(BudgetExceededError):
            with adapter.track_pipeline("request"):
                pipeline.run({"prompt": {"q": QUESTION}})
    assert openai_server.request_count == 0
    assert cli("budget", "set", "global", "--daily", "1", "--policy", "enforcing").exit_code == 0
    with adapter.track_pipeline("request"):
        pipeline.run({"prompt": {"q": QUESTION}})
    assert openai_server.request_count == 1
    assert adapter.flush()
    assert ledger_rows("SELECT status, COUNT(*) FROM runs GROUP BY 1 ORDER BY 1") == [("blocked", 3), ("ok", 1)]


def test_runs_of_another_pipeline_name_are_not_charged_for_the_first_ones_hold(openai_server):
    """Leases are per scope set, and a run's scopes name its pipeline. Once the runs of one pipeline name are in
    the ledger, that lease's hold must not count them a second time (nor keep its spare room) against the runs
    of the next name (the guide tracks "research-step-1", "research-step-2", ...): they are admitted while
    they fit."""
    from genops_cli import GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 10, "completion_tokens": 50}
    per_run = Decimal("0.0000315")  # 10 x 0.15e-6 + 50 x 0.60e-6
    limit = Decimal("0.0002")
    adapter = GenOpsHaystackAdapter(team="svc", project="p", daily_budget_limit=limit,
                                    governance_policy="enforcing")
    pipeline = _chat_pipeline()
    for _ in range(3):
        with adapter.track_pipeline("research-step-1"):
            pipeline.run({"prompt": {"q": QUESTION}})
    assert adapter.flush()
    for _ in range(2):  # 3 + 2 runs' spend, and one more run's worst case, fit the limit
        with adapter.track_pipeline("research-step-2"):
            pipeline.run({"prompt": {"q": QUESTION}})
    assert adapter.flush()
    assert openai_server.count("/chat/completions") == 5
    [(spent,)] = ledger_rows("SELECT SUM(total_cost) FROM runs")
    assert spent == per_run * 5 <= limit


def test_a_budget_change_seen_by_many_threads_is_read_from_the_ledger_once(ledger_path):
    """After `budget set` in another process, a busy service's request threads all see the new stamp at once:
    one of them re-reads the budget list, the others wait for its copy (not one ledger read each)."""
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import DuckDBLedger
    from genops_cli.policy import budgets

    class CountingLedger(DuckDBLedger):
        reads = 0

        @contextlib.contextmanager
        def read(self) -> Any:
            type(self).reads += 1
            with super().read() as tx:
                yield tx

    assert cli("budget", "set", "global", "--daily", "1", "--policy", "enforcing").exit_code == 0
    ledger = CountingLedger(str(ledger_path))
    assert [b.scope for b in budgets.cached_ledger_budgets(ledger)] == ["global"]
    budgets.set_budget(_ledger(), load_settings(None, str(ledger_path)), "team:ml", daily=Decimal("2"),
                       policy="enforcing")  # as another process: the stamp changes
    budgets._stamps_seen.clear()  # the stamp is looked at again now, not up to 0.2 s later
    CountingLedger.reads = 0
    barrier = threading.Barrier(20)
    seen: list[list[str]] = []

    def request() -> None:
        barrier.wait()
        seen.append(sorted(b.scope for b in budgets.cached_ledger_budgets(ledger)))

    threads = [threading.Thread(target=request) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [["global", "team:ml"]] * 20
    assert CountingLedger.reads == 1
