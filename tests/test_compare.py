"""`genops compare`: the same inputs through each model, recorded and tagged, side by side with ratios."""

from __future__ import annotations

import json
from decimal import Decimal

from conftest import cli, ledger_rows, sample


def _compare(*args: str) -> tuple[int, dict]:
    result = cli("compare", *args, "--json")
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else {}


def test_models_substituted_everywhere_recorded_and_tagged(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    code, out = _compare(sample("chain"), "--inputs", sample("chain", "batch.jsonl"),
                         "--model", "gpt-4o", "--model", "gpt-4o-mini")
    assert code == 0
    gpt4o, mini = out["models"]
    # 6 inputs x 2 LLM components x one call each: gpt-4o 0.0075 a call, gpt-4o-mini 0.00045
    assert (gpt4o["model"], Decimal(gpt4o["cost"]), gpt4o["runs"], gpt4o["ok"]) == ("gpt-4o", Decimal("0.09"), 6, 6)
    assert (mini["model"], Decimal(mini["cost"])) == ("gpt-4o-mini", Decimal("0.0054"))
    assert (gpt4o["input_tokens"], gpt4o["output_tokens"]) == (12000, 6000)
    assert (gpt4o["cost_ratio"], mini["cost_ratio"], mini["tokens_ratio"]) == (1.0, 0.06, 1.0)
    assert out["baseline"] == "gpt-4o" and out["inputs"] == 6
    requested = [r.body["model"] for r in openai_server.requests if r.path.endswith("/chat/completions")]
    assert requested == ["gpt-4o"] * 12 + ["gpt-4o-mini"] * 12
    rows = ledger_rows("SELECT tags, total_cost FROM runs ORDER BY started_at")
    tags = [json.loads(t) for t, _ in rows]
    assert len(rows) == 12 and {t["compare_id"] for t in tags} == {out["compare_id"]}
    assert [t["compare_model"] for t in tags] == ["gpt-4o"] * 6 + ["gpt-4o-mini"] * 6
    assert sum(c for _, c in rows) == Decimal("0.0954")


def test_one_component_only(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    code, out = _compare(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--component", "reviewer",
                         "--model", "gpt-4o", "--model", "gpt-4.1")
    assert code == 0
    base, other = out["models"]
    # drafter stays gpt-4o-mini (0.00045); reviewer gpt-4o 0.0075 vs gpt-4.1 0.006
    assert Decimal(base["cost"]) == Decimal("0.00795") and Decimal(other["cost"]) == Decimal("0.00645")
    assert other["cost_ratio"] == round(0.00645 / 0.00795, 4)
    models = ledger_rows("SELECT DISTINCT component_name, model FROM calls WHERE model IS NOT NULL ORDER BY 1, 2")
    assert models == [("drafter", "gpt-4o-mini"), ("reviewer", "gpt-4.1"), ("reviewer", "gpt-4o")]


def test_simulated_compare_calls_no_provider(openai_server):
    code, out = _compare(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate",
                         "--model", "gpt-4o", "--model", "gpt-4o-mini")
    assert code == 0 and out["simulated"] is True
    assert openai_server.count("/chat/completions") == 0
    gpt4o, mini = out["models"]
    assert Decimal(mini["cost"]) < Decimal(gpt4o["cost"])
    assert ledger_rows("SELECT COUNT(*), MIN(CAST(simulated AS INTEGER)) FROM runs") == [(2, 1)]


def test_table_output(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    result = cli("compare", sample("chain"), "--inputs", sample("chain", "inputs.json"),
                 "--model", "gpt-4o", "--model", "gpt-4o-mini")
    assert result.exit_code == 0, result.stderr
    assert "gpt-4o-mini" in result.stdout and "0.06x" in result.stdout and "compare_id=" in result.stdout


def test_usage_errors():
    for args, message in (
        (["--model", "gpt-4o"], "at least two models"),
        (["--model", "gpt-4o", "--model", "gpt-4o"], "each model once"),
        (["--model", "a", "--model", "b", "--component", "nope"], "--component 'nope'"),
    ):
        result = cli("compare", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate", *args)
        assert result.exit_code == 2, result.stderr
        assert result.stderr.startswith("error: ") and message in result.stderr


def test_unpriceable_model_is_refused_before_anything_runs(openai_server):
    result = cli("compare", sample("chain"), "--inputs", sample("chain", "inputs.json"),
                 "--model", "gpt-4o", "--model", "gpt-9-ultra", "--json")
    assert result.exit_code == 2 and result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "--allow-unpriced" in errors[0]
    assert errors[0].startswith("error: --model gpt-9-ultra: no price for openai:gpt-9-ultra")
    assert openai_server.count("/chat/completions") == 0


def test_model_of_another_provider_is_refused(openai_server):
    result = cli("compare", sample("chain"), "--inputs", sample("chain", "inputs.json"),
                 "--model", "gpt-4o", "--model", "claude-3-haiku-20240307")
    assert result.exit_code == 2
    assert "calls openai, and claude-3-haiku-20240307 is a anthropic model" in result.stderr
    assert openai_server.count("/chat/completions") == 0


def test_allowed_unpriced_model_has_an_unknown_cost_and_no_ratio(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    result = cli("compare", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--component", "reviewer",
                 "--model", "gpt-4o", "--model", "gpt-9-ultra", "--allow-unpriced", "--json")
    assert result.exit_code == 0, result.stderr
    base, unknown = json.loads(result.stdout)["models"]
    assert (base["priced"], base["cost"]) == (True, "0.00795")
    # The drafter (gpt-4o-mini) is priced, the reviewer is not: the run's cost is unknown, never $0 or 0.00x.
    assert (unknown["priced"], unknown["cost"], unknown["cost_ratio"]) == (False, None, None)
    assert unknown["priced_cost"] == "0.00045" and unknown["unpriced_models"] == ["openai:gpt-9-ultra"]
    assert "no price for openai:gpt-9-ultra" in result.stderr
