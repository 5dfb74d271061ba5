"""auto_instrument: every Pipeline.run in a separate Python process is recorded; the records are read back from
the ledger after that process exits (flushed at exit by the background writer)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from decimal import Decimal

import pytest
from conftest import REPO, ledger_rows

SCRIPT = textwrap.dedent("""
    import sys
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage
    from genops_cli import auto_instrument

    assert auto_instrument(team="ml-team", project="rag-chatbot", customer_id="acme")
    p = Pipeline(metadata={"name": "support-bot"})
    p.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")], required_variables=["q"]))
    p.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini", generation_kwargs={"max_tokens": 50}))
    p.connect("prompt.prompt", "llm.messages")
    for i in range(int(sys.argv[1])):
        out = p.run({"prompt": {"q": f"question {i}"}})
        assert out["llm"]["replies"][0].text
    print("done")
""")


def _run_script(tmp_path, n: int, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "app.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), **(extra_env or {})}
    return subprocess.run([sys.executable, str(script), str(n)], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)


@pytest.mark.slow
def test_every_run_of_an_instrumented_process_reaches_the_ledger(openai_server, tmp_path):
    openai_server.model_map = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    proc = _run_script(tmp_path, 5)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "done"
    runs = ledger_rows("SELECT pipeline_name, team, project, customer_id, status, total_cost FROM runs")
    assert len(runs) == 5
    assert set(runs) == {("support-bot", "ml-team", "rag-chatbot", "acme", "ok", Decimal("0.000450"))}
    calls = ledger_rows("SELECT component_name, model, provider, input_tokens, output_tokens, cost, max_tokens "
                        "FROM calls WHERE model IS NOT NULL")
    assert len(calls) == 5
    assert set(calls) == {("llm", "gpt-4o-mini-2024-07-18", "openai", 1000, 500, Decimal("0.000450"), 50)}
    assert ledger_rows("SELECT COUNT(DISTINCT pipeline_hash) FROM runs") == [(1,)]
    assert openai_server.count("/chat/completions") == 5


@pytest.mark.slow
def test_enforcing_budget_stops_pipeline_run_in_instrumented_process(openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    env = {"GENOPS_DAILY_BUDGET_LIMIT": "0.0006", "GENOPS_GOVERNANCE_POLICY": "enforcing"}
    proc = _run_script(tmp_path, 3, env)
    assert proc.returncode != 0
    assert "BudgetExceededError" in proc.stderr and "budget limit" in proc.stderr
    statuses = ledger_rows("SELECT status FROM runs ORDER BY started_at")
    assert statuses[0] == ("ok",) and ("blocked",) in statuses
    # the blocked run never reached the provider
    assert openai_server.count("/chat/completions") == len([s for s in statuses if s == ("ok",)])
