"""`genops estimate`: offline forecast of a run or batch, expected output from the ledger, budget consumption."""

from __future__ import annotations

import json
import os
from decimal import Decimal

from conftest import cli, json_lines, sample

MTOK = Decimal(1_000_000)


def _estimate(*args: str) -> dict:
    result = cli("estimate", *args, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _record_chain(server, *extra: str) -> Decimal:
    server.usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json", *extra)
    assert result.exit_code == 0, result.stderr
    return Decimal(json_lines(result.stdout)[0]["total_cost"])


def test_expected_output_from_ledger_and_no_provider_call(openai_server):
    _record_chain(openai_server)
    before = openai_server.count()
    out = _estimate(sample("chain"), "--inputs", sample("chain", "inputs.json"))
    assert openai_server.count() == before  # estimating never calls the provider
    lines = {c["component"]: c for c in out["components"]}
    assert {c: (v["expected_basis"], v["expected_output_tokens"]) for c, v in lines.items()} == {
        "drafter": ("observed", 100), "reviewer": ("observed", 100)}
    assert {c: (v["output_basis"], v["output_tokens"]) for c, v in lines.items()} == {
        "drafter": ("max_tokens", 512), "reviewer": ("max_tokens", 512)}
    # low = counted input tokens only, at list prices (gpt-4o-mini 0.15, gpt-4o 2.50 per 1M)
    low = (lines["drafter"]["input_tokens"] * Decimal("0.15")
           + lines["reviewer"]["input_tokens"] * Decimal("2.5")) / MTOK
    assert Decimal(out["low"]) == low
    assert Decimal(out["low"]) < Decimal(out["expected"]) < Decimal(out["high"])
    assert out["runs"] == 1 and out["budgets"] == []


def test_budget_it_would_consume(openai_server):
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.policy.budgets import set_budget

    ledger = open_ledger(os.environ["GENOPS_LEDGER"])
    set_budget(ledger, load_settings(None, None), "team:ml", daily=Decimal("1.00"))
    spent = _record_chain(openai_server, "--team", "ml")
    assert spent == Decimal("0.00371")  # 1000 x 0.15 + 100 x 0.60 and 1000 x 2.50 + 100 x 10.00, per 1M
    out = _estimate(sample("chain"), "--inputs", sample("chain", "batch.jsonl"), "--team", "ml")
    assert out["runs"] == 6 and len(out["per_run"]) == 6
    assert Decimal(out["high"]) == sum(Decimal(r["high"]) for r in out["per_run"])
    [budget] = out["budgets"]
    expected, high = Decimal(out["expected"]), Decimal(out["high"])
    assert (budget["scope"], budget["period"]) == ("team:ml", "daily")
    assert (Decimal(budget["limit"]), Decimal(budget["spent"])) == (Decimal(1), spent)
    assert Decimal(budget["remaining"]) == Decimal(1) - spent
    assert Decimal(budget["remaining_after_expected"]) == Decimal(1) - spent - expected
    assert Decimal(budget["remaining_after_worst"]) == Decimal(1) - spent - high
    assert Decimal(budget["expected_share_pct"]) == (expected * 100).quantize(Decimal("0.01"))
    assert budget["would_exceed"] is False
    other_team = _estimate(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--team", "other")
    assert other_team["budgets"] == []


def test_budget_exceeded_is_reported(openai_server):
    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.policy.budgets import set_budget

    set_budget(open_ledger(os.environ["GENOPS_LEDGER"]), load_settings(None, None), "global", daily=Decimal("0.001"))
    out = _estimate(sample("chain"), "--inputs", sample("chain", "batch.jsonl"))
    [budget] = out["budgets"]
    assert budget["would_exceed"] is True and budget["would_exceed_worst_case"] is True
    table = cli("estimate", sample("chain"), "--inputs", sample("chain", "batch.jsonl"))
    assert table.exit_code == 0 and "would exceed" in table.stdout


def test_model_override(openai_server):
    _record_chain(openai_server)
    out = _estimate(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--model", "gpt-4o-mini")
    lines = {c["component"]: c for c in out["components"]}
    assert {c["model"] for c in out["components"]} == {"gpt-4o-mini"} and out["model"] == "gpt-4o-mini"
    # Only the drafter has recorded gpt-4o-mini outputs; the reviewer (recorded on gpt-4o) falls back to max_tokens.
    assert (lines["drafter"]["expected_basis"], lines["drafter"]["expected_output_tokens"]) == ("observed", 100)
    assert (lines["reviewer"]["expected_basis"], lines["reviewer"]["expected_output_tokens"]) == ("max_tokens", 512)


def test_estimate_needs_no_api_key_and_bad_input_is_exit_2():
    out = _estimate(sample("rag"), "--inputs", sample("rag", "batch.jsonl"),
                    "--documents", sample("rag", "corpus.jsonl"))
    assert out["runs"] == 8 and Decimal(out["high"]) > 0
    result = cli("estimate", sample("rag"))
    assert result.exit_code == 2 and result.stderr.startswith("error: no inputs")
    result = cli("estimate", "missing.yml", "--inputs", sample("rag", "inputs.json"))
    assert result.exit_code == 2 and "missing.yml" in result.stderr


def test_unpriceable_model_is_one_line_exit_2_unless_allowed():
    result = cli("estimate", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--model", "gpt-9-ultra",
                 "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith("error: no price for openai:gpt-9-ultra")
    assert len(result.stderr.strip().splitlines()) == 1 and "--allow-unpriced" in result.stderr
    out = _estimate(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--model", "gpt-9-ultra",
                    "--allow-unpriced")
    assert out["priced"] is False and out["unpriced_models"] == ["openai:gpt-9-ultra"]
    assert all((c["priced"], c["low"], c["expected"], c["high"]) == (False, None, None, None)
               for c in out["components"])
