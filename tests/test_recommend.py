"""`genops recommend`: each recommendation computed from recorded runs (loopback providers) and the price book.

Prices (USD per 1M tokens): gpt-4o 2.50 / 10.00; gpt-4.1 2.00 / 8.00; gpt-4o-mini 0.15 / 0.60 (cached 0.075).
"""

from __future__ import annotations

import json
from decimal import Decimal

from conftest import cli, json_lines, sample


def _run(*args: str) -> list[dict]:
    result = cli("run", *args, "--json")
    assert result.exit_code in (0, 1), result.stderr
    return json_lines(result.stdout)


def _recommend(*args: str) -> dict:
    result = cli("recommend", *args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def _find(out: dict, kind: str, component: str) -> dict:
    return next(r for r in out["recommendations"] if r["kind"] == kind and r["component"] == component)


def test_cheaper_model_same_family_savings_from_observed_tokens(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    _run(sample("chain"), "--inputs", sample("chain", "batch.jsonl"))
    out = _recommend()
    assert (out["runs"], out["calls"]) == (6, 12)
    reviewer = [r for r in out["recommendations"] if r["kind"] == "model_switch" and r["component"] == "reviewer"]
    # One switch per component: the same-tier candidate; cheaper lower-tier ones are listed, not added.
    assert len(reviewer) == 1
    same = reviewer[0]
    # 6 calls x (1000 in, 500 out) on gpt-4o = 0.045; the same tokens on gpt-4.1 = 0.036, on gpt-4o-mini = 0.0027
    assert (same["recommended_model"], same["current_model"], same["pipeline"]) == ("gpt-4.1", "gpt-4o", "chain")
    assert same["parameters"]["tier"] == "same" and same["counted_in_total"] is True
    assert Decimal(same["current_cost"]) == Decimal("0.045")
    assert Decimal(same["recommended_cost"]) == Decimal("0.036")
    assert Decimal(same["potential_savings"]) == Decimal("0.009")
    assert same["parameters"]["alternatives"] == [
        {"model": "gpt-4o-mini", "tier": "lower", "cost": "0.0027", "potential_savings": "0.0423"}]
    assert same["confidence"] == "medium"  # 6 calls, same tier
    assert "6 call(s) in 6 run(s), last 30d" in same["reasoning"]
    assert (same["basis"]["calls"], same["basis"]["input_tokens"], same["basis"]["output_tokens"]) == (6, 6000, 3000)
    # The total never exceeds what the window spent, and counts one recommendation per component.
    assert Decimal(out["potential_savings"]) <= Decimal(out["spend"])
    counted = [r for r in out["recommendations"] if r["counted_in_total"]]
    assert len({(r["pipeline"], r["component"]) for r in counted}) == len(counted)
    assert Decimal(out["potential_savings"]) == sum(Decimal(r["potential_savings"]) for r in counted)
    table = cli("recommend")
    assert table.exit_code == 0 and "model_switch" in table.stdout and "gpt-4o-mini" in table.stdout


def test_no_recommendation_without_data():
    _run(sample("chain"), "--inputs", sample("chain", "inputs.json"), "--simulate")  # a ledger, no evidence
    out = _recommend()
    assert out["recommendations"] == [] and out["potential_savings"] == "0"
    assert "no recommendations" in cli("recommend").stdout


def test_simulated_runs_are_not_evidence(openai_server):
    _run(sample("chain"), "--inputs", sample("chain", "batch.jsonl"), "--simulate")
    assert _recommend()["recommendations"] == []
    assert _recommend("--include-simulated")["recommendations"]


def test_prompt_caching_when_large_prompts_never_hit_the_cache(openai_server):
    openai_server.usage = {"prompt_tokens": 2000, "completion_tokens": 300}
    _run(sample("rag"), "--inputs", sample("rag", "batch.jsonl"), "--documents", sample("rag", "corpus.jsonl"))
    rec = _find(_recommend(), "prompt_caching", "llm")
    # 7 later calls x 2000 shared tokens x (0.15 - 0.075) per 1M
    assert Decimal(rec["potential_savings"]) == Decimal("0.00105")
    assert rec["parameters"] == {"shared_prefix_tokens_assumed": 2000}
    assert Decimal(rec["recommended_cost"]) == Decimal(rec["current_cost"]) - Decimal("0.00105")


def test_no_prompt_caching_when_cache_already_read(openai_server):
    openai_server.usage = {"prompt_tokens": 2000, "completion_tokens": 300, "cached_tokens": 1024}
    _run(sample("rag"), "--inputs", sample("rag", "batch.jsonl"), "--documents", sample("rag", "corpus.jsonl"))
    assert not [r for r in _recommend()["recommendations"] if r["kind"] == "prompt_caching"]


def test_lower_max_tokens_when_output_stays_far_below(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 100}
    _run(sample("rag"), "--inputs", sample("rag", "batch.jsonl"), "--documents", sample("rag", "corpus.jsonl"))
    rec = _find(_recommend(), "max_tokens", "llm")
    # max_tokens 512 in the sample; 100 x 1.25 rounded up to a multiple of 64 = 128
    assert rec["parameters"]["max_tokens"] == {"current": 512, "recommended": 128, "max_output_observed": 100}
    assert Decimal(rec["potential_savings"]) == 0
    assert "$0.000230" in rec["reasoning"]  # (512 - 128) x 0.60 per 1M less reserved per call


def test_reduce_top_k_when_documents_dominate_input(openai_server):
    openai_server.usage = {}  # the fake counts ceil(chars / 4) of the prompt: more documents, more tokens
    lines = [json.dumps({"retriever": {"query": "budget alerts tags gateway", "top_k": k},
                         "prompt_builder": {"question": "What happens?"}}) for k in (1, 2, 3, 4, 5, 5)]
    inputs = "batch.jsonl"
    with open(inputs, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    _run(sample("rag"), "--inputs", inputs, "--documents", sample("rag", "corpus.jsonl"))
    rec = _find(_recommend(), "retriever_top_k", "retriever")
    params = rec["parameters"]
    avg = Decimal(str(params["top_k"]["current_avg_documents"]))
    assert avg == Decimal("3.333")
    assert params["top_k"]["recommended"] == 1
    per_doc = Decimal(str(params["tokens_per_document"]))
    assert per_doc > 0
    expected = (6 * per_doc * (avg - 1) * Decimal("0.15") / Decimal(1_000_000)).quantize(Decimal("1E-10"))
    assert Decimal(rec["potential_savings"]) == expected


def test_failing_component_retry_or_fallback(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    openai_server.failures = [{"status": 400, "message": "invalid prompt"}]
    _run(sample("chain"), "--inputs", sample("chain", "inputs.json"))
    _run(sample("chain"), "--inputs", sample("chain", "inputs.json"))
    rec = _find(_recommend(), "failing_component", "drafter")
    assert rec["basis"]["visits"] == 2 and rec["basis"]["errors"] == 1
    assert rec["parameters"]["transient"] is False and "fallback" in rec["reasoning"]
    assert Decimal(rec["potential_savings"]) == 0  # the failed call reported no usage: nothing was spent


def _agent_runs(openai_server, steps_per_run: list[int | None]) -> None:
    """One sample agent run per entry: N steps ending in an answer, or None for a run that never answers (it
    stops at the sample's max_agent_steps, 5)."""
    from fakeproviders import tool_call

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 500}
    for steps in steps_per_run:
        calls = 5 if steps is None else steps - 1
        openai_server.script = [tool_call("search_model_catalog", {"query": f"q{i}"}) for i in range(calls)]
        if steps is not None:
            openai_server.script.append("done")
        _run(sample("agent"), "--inputs", sample("agent", "inputs.json"),
             "--documents", sample("agent", "corpus.jsonl"))


STEP = Decimal("0.00045")  # gpt-4o-mini: 1000 x 0.15 + 500 x 0.60 per 1M


def test_agent_loop_saving_counts_only_steps_the_cap_would_cut(openai_server):
    _agent_runs(openai_server, [2, 3, None, None])
    rec = _find(_recommend(), "agent_loop", "agent")
    assert rec["parameters"]["max_agent_steps"] == {"current": 5, "recommended": 3}
    assert rec["parameters"]["exit_reasons"] == {"final_answer": 2, "max_agent_steps": 2}
    assert rec["parameters"]["verdict"] == "sometimes_capped"
    # Cap at the longest answered run (3): the two capped runs lose steps 3 and 4; answers are never cut.
    assert Decimal(rec["potential_savings"]) == 4 * STEP
    assert Decimal(rec["current_cost"]) == 15 * STEP


def test_agent_that_never_answers_is_a_loop(openai_server):
    _agent_runs(openai_server, [None, None])
    rec = _find(_recommend(), "agent_loop", "agent")
    assert rec["parameters"]["verdict"] == "loops"
    assert rec["parameters"]["max_agent_steps"] == {"current": 5, "recommended": None}
    assert Decimal(rec["potential_savings"]) == 10 * STEP  # everything was spent without an answer


def test_long_answered_runs_are_not_a_loop(openai_server):
    _agent_runs(openai_server, [3, 4, 5, 5])  # many steps, but every run answered
    assert not [r for r in _recommend()["recommendations"] if r["kind"] == "agent_loop"]


def test_model_family_matching():
    from genops_cli.analysis.recommend import model_family

    assert model_family("openai", "gpt-4o-2024-08-06") == ("openai", "gpt-4o")
    assert model_family("openai", "gpt-4o-mini-2024-07-18") == ("openai", "gpt-4o-mini")
    assert model_family("openai", "gpt-4.1-nano") is None
    assert model_family("anthropic", "claude-sonnet-4-5-20250929") == ("anthropic", "claude-sonnet-4")
    assert model_family("anthropic", "claude-3-haiku-20240307") is None
    assert model_family("openai", "o3-mini") is None
