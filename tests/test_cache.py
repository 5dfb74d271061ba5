"""--cache: identical inputs to an identical pipeline reuse the outputs, recorded as cost 0 with the cost saved."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from conftest import cli, json_lines, ledger_rows, sample

COST = Decimal("0.000021") + Decimal("0.00035")  # chain: gpt-4o-mini + gpt-4o at 100 in / 10 out


def _inputs(tmp_path, name, data):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_hit_returns_cached_outputs_costs_nothing_and_records_the_saving(openai_server, tmp_path, ledger_path):
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    first = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--cache", "--json")
    assert first.exit_code == 0, first.stderr
    [real] = json_lines(first.stdout)
    assert Decimal(real["total_cost"]) == COST
    calls = openai_server.count("/chat/completions")
    second = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--cache", "--json")
    assert second.exit_code == 0, second.stderr
    [hit] = json_lines(second.stdout)
    assert openai_server.count("/chat/completions") == calls  # no provider call
    assert hit["cache_hit"] is True and Decimal(hit["total_cost"]) == 0 and Decimal(hit["saved_cost"]) == COST
    assert hit["outputs"] == real["outputs"]
    assert hit["components"] == []
    rows = ledger_rows("SELECT cache_hit, total_cost, saved_cost FROM runs ORDER BY started_at")
    assert rows == [(False, COST, Decimal(0)), (True, Decimal(0), COST)]
    assert ledger_rows("SELECT COUNT(*) FROM calls WHERE run_id = ?", [hit["run_id"]]) == [(0,)]
    assert list((ledger_path.parent / (ledger_path.name + ".cache")).rglob("*.json"))


def test_key_ignores_key_order_but_not_values(openai_server, tmp_path):
    a = _inputs(tmp_path, "a.json", {"draft_prompt": {"request": "x", "audience": "y"}})
    b = _inputs(tmp_path, "b.json", {"draft_prompt": {"audience": "y", "request": "x"}})
    c = _inputs(tmp_path, "c.json", {"draft_prompt": {"request": "x", "audience": "z"}})
    assert cli("run", sample("chain"), "--inputs", a, "--cache").exit_code == 0
    assert json_lines(cli("run", sample("chain"), "--inputs", b, "--cache", "--json").stdout)[0].get("cache_hit")
    out = json_lines(cli("run", sample("chain"), "--inputs", c, "--cache", "--json").stdout)[0]
    assert "cache_hit" not in out
    assert openai_server.count("/chat/completions") == 4


def test_without_cache_flag_nothing_is_reused(openai_server):
    assert cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--cache").exit_code == 0
    out = json_lines(cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json").stdout)[0]
    assert "cache_hit" not in out
    assert openai_server.count("/chat/completions") == 4


def test_expired_entries_miss(tmp_path):
    from genops_cli.execution.cache import ResultCache, cache_key
    from genops_cli.models import RunRecord, utcnow

    cache = ResultCache(tmp_path / "c", ttl=timedelta(hours=1))
    run = RunRecord(run_id="r1", pipeline_name="p", pipeline_hash="h", started_at=utcnow(), ended_at=utcnow(),
                    total_cost=Decimal("0.25"), outputs={"llm": {"replies": ["hello"]}})
    key = cache_key("h", {"q": 1}, simulated=False)
    cache.put(key, run)
    entry = cache.get(key)
    assert entry is not None and entry.total_cost == Decimal("0.25") and entry.outputs == run.outputs
    later = datetime.now(timezone.utc) + timedelta(hours=1, seconds=5)
    assert cache.get(key, now=later) is None
    assert cache_key("h", {"q": 1}, simulated=True) != key  # simulated outputs never answer real runs


def test_batch_lines_hit_the_cache_and_resume_counts_hits_as_done(openai_server, tmp_path):
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join(json.dumps({"draft_prompt": {"request": f"r{i}", "audience": "a"}}) + "\n"
                             for i in range(3)))
    assert cli("run", sample("chain"), "--inputs", str(batch), "--cache").exit_code == 0
    other = tmp_path / "other.jsonl"  # same inputs at other positions: other line ids, same cache keys
    other.write_text("\n" + batch.read_text())
    result = cli("run", sample("chain"), "--inputs", str(other), "--cache", "--json")
    summary = json_lines(result.stdout)[-1]
    assert (summary["cache_hits"], summary["ok"]) == (3, 3)
    assert Decimal(summary["saved_cost"]) > 0 and Decimal(summary["total_cost"]) == 0
    assert openai_server.count("/chat/completions") == 6


def test_bad_cache_ttl_is_a_usage_error(tmp_path):
    result = cli("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--cache", "--cache-ttl",
                 "soon", "--simulate")
    assert result.exit_code == 2
    assert "--cache-ttl" in result.stderr and len(result.stderr.strip().splitlines()) == 1
