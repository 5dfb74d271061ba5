"""`genops run` end to end: real Haystack components against loopback providers, exact money, exit codes."""

from __future__ import annotations

import json
from decimal import Decimal

from conftest import cli, genops_subprocess, json_lines, ledger_rows, sample


def test_rag_run_prices_generator_exactly_and_records_it(openai_server, tmp_path):
    openai_server.model_map = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18"}
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"),
                 "--documents", sample("rag", "corpus.jsonl"), "--team", "ml", "--customer", "acme-corp", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert out["status"] == "ok"
    llm = next(c for c in out["components"] if c["model"])
    assert llm["model"] == "gpt-4o-mini-2024-07-18"
    assert llm["provider"] == "openai"
    assert (llm["input_tokens"], llm["output_tokens"]) == (1000, 500)
    # gpt-4o-mini: 0.15 / 0.60 USD per 1M tokens
    assert Decimal(llm["cost"]) == Decimal("0.000450")
    assert Decimal(out["total_cost"]) == Decimal("0.000450")
    assert out["policy"]["result"] == "ALLOWED"
    [(total, team, customer, simulated)] = ledger_rows(
        "SELECT total_cost, team, customer_id, simulated FROM runs WHERE run_id = ?", [out["run_id"]])
    assert (total, team, customer, simulated) == (Decimal("0.000450"), "ml", "acme-corp", False)
    calls = ledger_rows("SELECT component_name, cost, usage_source FROM calls WHERE run_id = ? ORDER BY seq",
                        [out["run_id"]])
    assert [c[0] for c in calls] == ["retriever", "prompt_builder", "llm"]
    assert calls[2][1:] == (Decimal("0.000450"), "reported")
    assert openai_server.count("/chat/completions") == 1


def test_json_output_is_json_only(openai_server):
    result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json")
    assert result.exit_code == 0
    for line in result.stdout.splitlines():
        json.loads(line)


def test_simulate_needs_no_key_and_marks_records(tmp_path):
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", "--json")
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert out["simulated"] is True
    models = [c["model"] for c in out["components"] if c["model"]]
    assert models == ["gpt-4o-mini", "gpt-4o"]
    assert all(c["usage_source"] == "estimated" for c in out["components"] if c["model"])
    assert Decimal(out["total_cost"]) > 0
    [(simulated,)] = ledger_rows("SELECT simulated FROM runs")
    assert simulated is True


def test_provider_failure_mid_pipeline_records_spend_before_it(openai_server):
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    openai_server.failures = [{"delay": 0}, {"status": 400, "message": "bad request from test"}]
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json")
    assert result.exit_code == 1
    [out] = json_lines(result.stdout)
    assert out["status"] == "error"
    drafter, reviewer = [c for c in out["components"] if c["name"] in ("drafter", "reviewer")]
    assert drafter["status"] == "ok" and Decimal(drafter["cost"]) == Decimal("0.000021")
    assert reviewer["status"] == "error"
    [(status, total)] = ledger_rows("SELECT status, total_cost FROM runs")
    assert (status, total) == ("error", Decimal("0.000021"))


def test_bad_inputs_exit_2_with_one_line(tmp_path):
    bad = tmp_path / "in.json"
    bad.write_text('{"retriever": {"query": "x"}}')
    result = cli("run", sample("rag"), "--inputs", str(bad), "--simulate")
    assert result.exit_code == 2
    assert "prompt_builder.question" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_malformed_yaml_names_file_and_line(tmp_path):
    broken = tmp_path / "p.yml"
    broken.write_text("components:\n  llm:\n    type: [unclosed\n")
    result = cli("run", str(broken), "--input", "x=1")
    assert result.exit_code == 2
    assert str(broken) in result.stderr and "malformed YAML" in result.stderr
    assert "Traceback" not in result.stderr


def test_unset_api_key_is_a_clear_error():
    result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"))
    assert result.exit_code == 2
    assert "OPENAI_API_KEY" in result.stderr and "'llm'" in result.stderr


def test_subprocess_run_and_exit_code(openai_server):
    proc = genops_subprocess("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json")
    assert proc.returncode == 0, proc.stderr
    [out] = json_lines(proc.stdout)
    assert out["status"] == "ok"


def test_provider_error_echoing_the_api_key_never_reaches_ledger_or_output(openai_server, monkeypatch):
    secret = "sk-proj-SECRETSECRET1234567890"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    openai_server.failures = [{"status": 401, "message": f"Incorrect API key provided: {secret}"}]
    result = cli("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json")
    assert result.exit_code == 1
    assert "SECRETSECRET" not in result.stdout + result.stderr
    [out] = json_lines(result.stdout)
    assert "Incorrect API key provided" in out["error"]
    for table in ("runs", "calls"):
        assert "SECRETSECRET" not in repr(ledger_rows(f"SELECT * FROM {table}"))


def test_inputs_from_stdin_and_flat_sockets(openai_server):
    flat = json.dumps({"query": "What is chargeback?", "question": "What is chargeback?"})
    result = cli("run", sample("rag"), "--inputs", "-", "--json", input=flat)
    assert result.exit_code == 0, result.stderr
    [out] = json_lines(result.stdout)
    assert out["status"] == "ok"
    prompt = openai_server.bodies("/chat/completions")[0]["messages"]
    assert "What is chargeback?" in json.dumps(prompt)
