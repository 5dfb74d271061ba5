"""Concurrent `genops run` processes against one enforcing budget: the admitted runs never exceed what the
budget allows and no run is lost (each process's run is recorded, ok or blocked).

The loopback provider bills every call exactly the estimator's worst case (counted input tokens, max_tokens
output), so each admitted run costs exactly what it reserved: with a limit of 2.5 runs, exactly 2 are admitted
whatever the timing. Without the atomic check + reservation, runs that start together would all see an empty
budget (the race users of other gateways report) and all 5 would run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from conftest import cli, genops_subprocess, json_lines, ledger_rows, sample

PROCESSES = 5


@pytest.mark.slow
def test_concurrent_runs_cannot_race_past_an_enforcing_budget(openai_server, backend):
    from genops_cli.config import load_settings
    from genops_cli.execution.estimate import estimate_run
    from genops_cli.execution.inputs import prepare_run_data, read_inputs
    from genops_cli.execution.loading import load_pipeline

    loaded = load_pipeline(sample("rag"))
    data = prepare_run_data(loaded.pipeline, read_inputs(sample("rag", "inputs.json"), None)[0])
    estimate = estimate_run(loaded, data, load_settings())
    [line] = estimate.lines
    per_run = estimate.high
    openai_server.usage = {"prompt_tokens": line.worst_input_tokens, "completion_tokens": line.output_tokens}
    openai_server.latency = 0.5  # runs overlap: each holds its reservation while the provider answers
    limit = per_run * Decimal("2.5")
    assert cli("budget", "set", "global", "--daily", str(limit), "--policy", "enforcing").exit_code == 0

    args = ("run", sample("rag"), "--inputs", sample("rag", "inputs.json"), "--json")
    with ThreadPoolExecutor(PROCESSES) as pool:
        procs = list(pool.map(lambda _: genops_subprocess(*args, timeout=180), range(PROCESSES)))

    outputs = []
    for proc in procs:
        assert proc.returncode in (0, 3), proc.stderr
        [out] = json_lines(proc.stdout)
        assert out["status"] == ("ok" if proc.returncode == 0 else "blocked")
        outputs.append(out)
    admitted = [o for o in outputs if o["status"] == "ok"]
    assert len(admitted) == 2
    assert all(Decimal(o["total_cost"]) == per_run for o in admitted)
    assert all(o["policy"]["reason_code"] == "BUDGET_EXCEEDED" for o in outputs if o["status"] == "blocked")
    assert openai_server.count("/chat/completions") == 2

    # none lost: every process's run is in the ledger with the status it printed
    rows = dict(ledger_rows("SELECT run_id, status FROM runs"))
    assert rows == {o["run_id"]: o["status"] for o in outputs}
    [(spent,)] = ledger_rows("SELECT SUM(total_cost) FROM runs WHERE status = 'ok'")
    assert spent == 2 * per_run <= limit
    # every admitted run's reservation was released with its actual cost; blocked runs reserved nothing
    assert ledger_rows("SELECT COUNT(*), SUM(actual_cost) FROM reservations WHERE released_at IS NOT NULL") == [
        (2, 2 * per_run)]
    assert ledger_rows("SELECT COUNT(*) FROM reservations WHERE released_at IS NULL") == [(0,)]
