"""`genops runs`, `runs show` and `runs tail` through the CLI: listing with filters, one run as a tree (component
visit -> agent steps -> LLM and tool calls), unique prefixes, and following new runs from another process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

from conftest import cli, json_lines, sample

AGENT = ("run", sample("agent"), "--inputs", sample("agent", "inputs.json"), "--simulate", "--json")
CHAIN = ("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")


def _run(*args: str) -> dict:
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    return json_lines(result.stdout)[0]


def test_runs_lists_newest_first_with_filters_and_formats():
    first = _run(*CHAIN, "--team", "ml", "--tag", "env=prod", "--user", "alice", "--feature", "search")
    second = _run(*AGENT, "--team", "ops", "--tag", "env=dev", "--user", "bob", "--cost-center", "cc-7")

    listed = json.loads(cli("runs", "--json").stdout)
    assert [r["run_id"] for r in listed] == [second["run_id"], first["run_id"]]
    assert Decimal(listed[1]["total_cost"]) == Decimal(first["total_cost"])
    assert Decimal(listed[0]["total_cost"]) == Decimal(second["total_cost"])
    assert listed[1]["attribution"]["user_id"] == "alice"
    assert listed[1]["attribution"]["tags"] == {"env": "prod"}

    def ids(*flags: str) -> list[str]:
        result = cli("runs", *flags, "--json")
        assert result.exit_code == 0, result.stderr
        return [r["run_id"] for r in json.loads(result.stdout)]

    assert ids("--team", "ml") == [first["run_id"]]
    assert ids("--tag", "env=dev") == [second["run_id"]]
    assert ids("--user", "alice") == [first["run_id"]]
    assert ids("--feature", "search") == [first["run_id"]]
    assert ids("--cost-center", "cc-7") == [second["run_id"]]
    assert ids("--pipeline", "agent") == [second["run_id"]]
    assert ids("--status", "ok", "--limit", "1") == [second["run_id"]]
    assert ids("--since", "1h") == [second["run_id"], first["run_id"]]
    assert ids("--status", "error") == []
    assert ids("--real-only") == []  # both runs were simulated

    assert ids("--user", "bob") == [r["run_id"] for r in json.loads(cli("runs", "list", "--user", "bob",
                                                                     "--json").stdout)]
    table = cli("runs")
    assert table.exit_code == 0
    assert first["run_id"][:13] in table.stdout and "chain" in table.stdout and "env=prod" in table.stdout

    csv_out = cli("runs", "--format", "csv").stdout.splitlines()
    assert csv_out[0].startswith("run_id,started_at,pipeline,status,total_cost")
    assert csv_out[2].startswith(first["run_id"] + ",")
    assert f",{Decimal(first['total_cost']).normalize():f}," in csv_out[2]


def test_runs_bad_filters_exit_2():
    _run(*CHAIN)
    for args, needle in ((("--status", "done"), "--status"), (("--tag", "env"), "--tag"),
                         (("--since", "yesterday"), "--since"), (("--format", "xml"), "--format")):
        result = cli("runs", *args)
        assert result.exit_code == 2, args
        assert needle in result.stderr and "Traceback" not in result.stderr


def test_runs_show_agent_tree_json_and_table():
    run = _run(*AGENT, "--team", "ml")
    result = cli("runs", "show", run["run_id"][:18], "--json")
    assert result.exit_code == 0, result.stderr
    detail = json.loads(result.stdout)
    assert detail["run_id"] == run["run_id"]
    assert Decimal(detail["total_cost"]) == Decimal(run["total_cost"])
    assert detail["policy"]["result"] == "ALLOWED"
    assert detail["price_snapshots"] and detail["price_snapshots"][0].startswith("genai-prices@")

    roots = detail["tree"]
    agent = next(node for node in roots if node["type"] == "Agent")
    assert agent["steps"], "the Agent visit groups its LLM and tool calls by step"
    step0 = agent["steps"][0]
    kinds = [call["span_kind"] for call in step0["calls"]]
    assert kinds[0] == "agent_llm" and "tool" in kinds
    tool = next(call for call in step0["calls"] if call["span_kind"] == "tool")
    assert tool["tool_name"] == "search_model_catalog"
    llm_calls = [c for step in agent["steps"] for c in step["calls"] if c["span_kind"] == "agent_llm"]
    assert sum(Decimal(c["cost"]) for c in llm_calls) == Decimal(agent["total_cost"]) == Decimal(run["total_cost"])
    for key in ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens"):
        assert key in llm_calls[0]
    assert llm_calls[0]["unit_prices"]["input_mtok"] == "0.15"
    assert detail["tokens"]["input_tokens"] == sum(c["input_tokens"] for c in llm_calls)

    table = cli("runs", "show", run["run_id"])
    assert table.exit_code == 0, table.stderr
    for text in ("step 0", "tool search_model_catalog", "agent_llm", "openai:gpt-4o-mini", "policy: ALLOWED",
                 "price snapshot: genai-prices@"):
        assert text in table.stdout, text


def test_runs_show_prefix_rules():
    a = _run(*CHAIN)
    b = _run(*CHAIN)
    common = os.path.commonprefix([a["run_id"], b["run_id"]])
    ambiguous = cli("runs", "show", common)
    assert ambiguous.exit_code == 2
    assert "ambiguous" in ambiguous.stderr
    assert a["run_id"] in ambiguous.stderr and b["run_id"] in ambiguous.stderr
    missing = cli("runs", "show", "zzzz")
    assert missing.exit_code == 2 and "no recorded run" in missing.stderr
    assert cli("runs", "show", b["run_id"][: len(common) + 1], "--json").exit_code == 0


def test_runs_show_blocked_run_shows_policy_decision(openai_server):
    assert cli("budget", "set", "global", "--daily", "0", "--policy", "enforcing").exit_code == 0
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json")
    assert result.exit_code == 3
    run = json_lines(result.stdout)[0]
    assert "BLOCKED" in result.stderr and run["run_id"] in result.stderr  # one line on stderr, JSON on stdout
    detail = json.loads(cli("runs", "show", run["run_id"], "--json").stdout)
    assert detail["status"] == "blocked"
    assert detail["policy"]["result"] == "BLOCKED" and detail["policy"]["reason_code"] == "BUDGET_EXCEEDED"
    shown = cli("runs", "show", run["run_id"]).stdout
    assert "policy: BLOCKED BUDGET_EXCEEDED" in shown


def test_runs_tail_once_prints_the_backlog_oldest_first():
    first = _run(*CHAIN)
    second = _run(*AGENT)
    result = cli("runs", "tail", "--once", "--backlog", "5", "--json")
    assert result.exit_code == 0, result.stderr
    assert [r["run_id"] for r in json_lines(result.stdout)] == [first["run_id"], second["run_id"]]
    only_last = cli("runs", "tail", "--once", "--backlog", "1", "--json")
    assert [r["run_id"] for r in json_lines(only_last.stdout)] == [second["run_id"]]


def test_runs_tail_follows_runs_recorded_by_another_process(isolated: Path):
    _run(*CHAIN)  # history: not shown with --backlog 0
    exe = Path(sys.executable).with_name("genops")
    follower = subprocess.Popen(
        [str(exe), "runs", "tail", "--backlog", "0", "--limit", "1", "--interval", "0.1", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        time.sleep(1.5)  # the follower has taken its starting point
        new = _run(*AGENT)
        out, err = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert [r["run_id"] for r in json_lines(out)] == [new["run_id"]]


def test_run_attributes_user_and_user_budget_blocks_only_that_user(openai_server):
    assert cli("budget", "set", "user:alice", "--daily", "0", "--policy", "enforcing").exit_code == 0
    args = ("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json")
    blocked = cli(*args, "--user", "alice")
    assert blocked.exit_code == 3, blocked.stderr
    assert json_lines(blocked.stdout)[0]["policy"]["reason_code"] == "BUDGET_EXCEEDED"
    allowed = cli(*args, "--user", "bob")
    assert allowed.exit_code == 0, allowed.stderr
    assert json_lines(allowed.stdout)[0]["attribution"]["user_id"] == "bob"
    listed = json.loads(cli("runs", "--user", "bob", "--json").stdout)
    assert [r["attribution"]["user_id"] for r in listed] == ["bob"]


def test_api_user_id_is_listed_and_counts_toward_the_user_budget(openai_server):
    """`user_id=` in the Python API attributes the run like `--user` does: listed by `genops runs --user` and
    counted toward a `user:ID` budget."""
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.dataclasses import ChatMessage

    from genops_cli import GenOpsHaystackAdapter

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    pipeline = Pipeline()
    pipeline.add_component("prompt", ChatPromptBuilder(template=[ChatMessage.from_user("{{ q }}")],
                                                       required_variables=["q"]))
    pipeline.add_component("llm", OpenAIChatGenerator(model="gpt-4o-mini"))
    pipeline.connect("prompt.prompt", "llm.messages")
    adapter = GenOpsHaystackAdapter(team="support")
    with adapter.track_pipeline("helpdesk", user_id="carol") as ctx:
        pipeline.run({"prompt": {"q": "Where is my invoice?"}})
    assert adapter.flush()

    listed = json.loads(cli("runs", "--user", "carol", "--json").stdout)
    assert [r["run_id"] for r in listed] == [ctx.pipeline_id]
    assert listed[0]["attribution"]["user_id"] == "carol" and listed[0]["total_cost"].startswith("0.00045")
    status = json.loads(cli("budget", "set", "user:carol", "--daily", "0.001", "--json").stdout)
    assert status["scope"] == "user:carol"
    [row] = json.loads(cli("budget", "status", "user:carol", "--json").stdout)
    assert Decimal(row["spent"]) == Decimal("0.00045")


def test_runs_and_tag_grouping_on_postgresql(monkeypatch):
    """The run list, the run tree, tag filters and `--by tag:KEY` use SQL both engines run unchanged."""
    import uuid

    import pytest

    base = os.environ.get("GENOPS_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("GENOPS_TEST_POSTGRES_URL is not set (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    import psycopg

    schema = f"genops_test_runs_{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("GENOPS_LEDGER", f"{base}{'&' if '?' in base else '?'}schema={schema}")
    try:
        prod = _run(*AGENT, "--tag", "env=prod", "--user", "alice")
        dev = _run(*CHAIN, "--tag", "env=dev")
        listed = json.loads(cli("runs", "--tag", "env=prod", "--json").stdout)
        assert [r["run_id"] for r in listed] == [prod["run_id"]]
        detail = json.loads(cli("runs", "show", prod["run_id"][:20], "--json").stdout)
        assert any(node["steps"] for node in detail["tree"])
        grouped = json.loads(cli("analyze", "--by", "tag:env", "--include-simulated", "--json").stdout)
        assert {g["key"]: Decimal(g["cost"]) for g in grouped["groups"]} == {
            "prod": Decimal(prod["total_cost"]), "dev": Decimal(dev["total_cost"])}
        tail = cli("runs", "tail", "--once", "--backlog", "1", "--json")
        assert [r["run_id"] for r in json_lines(tail.stdout)] == [dev["run_id"]]
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def test_run_table_shows_tool_names_in_brackets_as_text():
    result = cli(*AGENT[:-1])  # the table view, not --json
    assert result.exit_code == 0, result.stderr
    assert "[search_model_catalog]" in result.stdout


def test_failed_run_shows_the_component_error_in_list_and_tree(openai_server):
    openai_server.failures = [{"status": 400, "message": "bad prompt for the test"}]
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json")
    assert result.exit_code == 1, result.stderr
    run = json_lines(result.stdout)[0]
    listed = json.loads(cli("runs", "--status", "error", "--json").stdout)
    assert [r["run_id"] for r in listed] == [run["run_id"]] and "bad prompt" in listed[0]["error"]
    detail = json.loads(cli("runs", "show", run["run_id"], "--json").stdout)
    failed = [n for n in detail["tree"] if n["status"] == "error"]
    assert failed and "bad prompt" in failed[0]["error"]
    shown = cli("runs", "show", run["run_id"]).stdout
    assert "error" in shown and "bad prompt" in shown
    assert f"{failed[0]['name']} {failed[0]['type']}" in shown  # a pipeline component shows its own name


def test_runs_tail_stops_cleanly_on_ctrl_c():
    import signal

    _run(*CHAIN)
    exe = Path(sys.executable).with_name("genops")
    follower = subprocess.Popen([str(exe), "runs", "tail", "--interval", "0.1"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        time.sleep(1.5)
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert "chain" in out and "Traceback" not in err


def test_runs_show_completes_run_ids_in_the_shell():
    first = _run(*CHAIN)
    result = subprocess.run([str(Path(sys.executable).with_name("genops"))], capture_output=True, text=True,
                            env={**os.environ, "_GENOPS_COMPLETE": "complete_bash",
                                 "COMP_WORDS": f"genops runs show {first['run_id'][:10]}", "COMP_CWORD": "3"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [first["run_id"]]
