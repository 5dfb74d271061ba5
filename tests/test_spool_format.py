"""The spool line format: a run survives the round trip bit for bit, and lines written by an earlier release
(format 1: calls as JSON objects) are still read."""

from __future__ import annotations

import json
from decimal import Decimal

from ledger_factory import at, make_run

from genops_cli.ledger.serialize import CALL_FIELDS, SPOOL_FORMAT, call_to_array, dumps_run, run_from_json, run_to_json


def _awkward_run():
    run = make_run("acme", at("2026-05-03", 9), [
        {"model": "gpt-4o-mini", "input": 1201, "cache_read": 1000, "output": 7},
        {"model": "claude-3-haiku-20240307", "provider": "anthropic", "input": 999, "cache_write": 100, "output": 77},
        {"model": "gpt-9-ultra", "input": 10, "output": 10},  # unpriced
    ], team="ml", feature="search")
    run.calls[0].usage.raw = {"prompt_tokens": 1201, "nested": {"cached_tokens": 1000}, "odd": Decimal("1.5")}
    run.calls[1].error = "RuntimeError: boom with sk-proj-abcdefghijklmnopqrstuvwxyz0123456789"
    run.calls[1].status = "error"
    run.calls[2].parent_call_id = run.calls[0].call_id
    return run


def test_a_spooled_run_reads_back_equal_to_the_run():
    run = _awkward_run()
    line = dumps_run(run)
    data = json.loads(line)
    assert data["spool_format"] == SPOOL_FORMAT == 2
    assert all(isinstance(c, list) for c in data["calls"])
    back = run_from_json(data)
    assert back.total_cost == run.total_cost and isinstance(back.total_cost, Decimal)
    for original, read in zip(run.calls, back.calls, strict=True):
        assert (read.cost, read.list_cost, read.contracted_cost, read.unit_prices, read.priced) == (
            original.cost, original.list_cost, original.contracted_cost, original.unit_prices, original.priced)
        assert (read.usage.input_tokens, read.usage.cache_read_tokens, read.usage.cache_write_tokens,
                read.usage.output_tokens, read.usage.source) == (
            original.usage.input_tokens, original.usage.cache_read_tokens, original.usage.cache_write_tokens,
            original.usage.output_tokens, original.usage.source)
        assert (read.call_id, read.run_id, read.seq, read.started_at, read.parent_call_id, read.model) == (
            original.call_id, original.run_id, original.seq, original.started_at, original.parent_call_id,
            original.model)
    assert back.calls[0].usage.raw == {"prompt_tokens": 1201, "nested": {"cached_tokens": 1000}, "odd": "1.5"}
    assert "sk-proj-abcdefghijklmnopqrstuvwxyz" not in line  # secrets echoed in errors are masked on the way in
    assert dumps_run(back) == line  # stable: a re-spooled run is the same line


_USAGE_FIELDS = {"input_tokens": "input_tokens", "cache_read_tokens": "cache_read_tokens",
                 "cache_write_tokens": "cache_write_tokens", "output_tokens": "output_tokens",
                 "reasoning_tokens": "reasoning_tokens", "usage_source": "source", "raw_usage": "raw"}


def _format_1_call(call) -> dict:  # noqa: ANN001
    """A call as an earlier release spooled it: one object, usage nested, with its run id."""
    values = dict(zip(CALL_FIELDS, call_to_array(call), strict=True))
    usage = {name: values.pop(field) for field, name in _USAGE_FIELDS.items()}
    return {**values, "run_id": call.run_id, "usage": usage}


def test_format_1_lines_of_an_earlier_release_are_still_read():
    run = _awkward_run()
    data = run_to_json(run)
    data["spool_format"] = 1
    data["calls"] = [_format_1_call(c) for c in run.calls]
    back = run_from_json(json.loads(json.dumps(data)))
    assert dumps_run(back) == dumps_run(run)
