"""Crash safety: a batch killed with SIGKILL mid-way and resumed ends with exactly one ok record per line; spooled
runs are ingested exactly once; two executions of one line are both kept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import genops_subprocess, json_lines, ledger_rows, sample

LINES = 12


@pytest.mark.slow
def test_sigkill_mid_batch_then_resume_records_each_line_once(openai_server, tmp_path, ledger_path):
    openai_server.latency = 0.25
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    batch = tmp_path / "b.jsonl"
    batch.write_text("".join(json.dumps({"draft_prompt": {"request": f"line {i}", "audience": "all"}}) + "\n"
                             for i in range(LINES)))
    exe = Path(sys.executable).with_name("genops")
    args = [str(exe), "run", sample("chain"), "--inputs", str(batch), "--concurrency", "3", "--json"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ})
    printed: list[dict] = []
    deadline = time.monotonic() + 120
    assert proc.stdout is not None
    while len(printed) < 4 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        printed.append(json.loads(line))
    os.kill(proc.pid, signal.SIGKILL)  # mid-batch: runs in flight, runs spooled but maybe not yet in the ledger
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert 4 <= len(printed) < LINES

    requests_before = openai_server.count("/chat/completions")
    resumed = genops_subprocess("run", sample("chain"), "--inputs", str(batch), "--concurrency", "3", "--resume",
                                "--json")
    assert resumed.returncode == 0, resumed.stderr
    *runs, summary = json_lines(resumed.stdout)
    assert summary["skipped"] + summary["runs"] == LINES
    assert summary["skipped"] >= len(printed)  # everything the killed process finished counts as done
    assert openai_server.count("/chat/completions") - requests_before == 2 * summary["runs"]
    # Exactly one ok record per line, each with its 4 calls, and every run the killed process reported is kept.
    per_line = ledger_rows("SELECT batch_line, COUNT(*) FROM runs WHERE status = 'ok' GROUP BY batch_line "
                           "ORDER BY batch_line")
    assert per_line == [(i, 1) for i in range(1, LINES + 1)]
    ids = {r for (r,) in ledger_rows("SELECT run_id FROM runs")}
    assert {p["run_id"] for p in printed} <= ids
    assert ledger_rows("SELECT COUNT(*) FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE r.status = 'ok'") \
        == [(LINES * 4,)]
    from genops_cli.ledger.spool import Spool

    # (a kill during a spool write may leave a .tmp- file: never ingested, as it was never complete)
    assert Spool(Path(str(ledger_path) + ".spool")).pending() == []
    # Resuming once more does nothing and pays nothing.
    again = genops_subprocess("run", sample("chain"), "--inputs", str(batch), "--resume", "--json")
    assert json_lines(again.stdout)[-1]["skipped"] == LINES


def _run(run_id: str, line: int | None = 1, cost: str = "0.5"):
    from genops_cli.models import CallRecord, RunRecord, TokenUsage, utcnow

    started = utcnow()
    run = RunRecord(run_id=run_id, pipeline_name="p", pipeline_hash="h", started_at=started, batch_line=line,
                    ended_at=started + timedelta(seconds=1))
    call = CallRecord(call_id=f"{run_id}-{started.timestamp()}", run_id=run_id, seq=1, span_kind="component",
                      component_name="llm", component_type="OpenAIChatGenerator", started_at=started,
                      latency_ms=1.0, status="ok", usage=TokenUsage(source="reported"))
    call.cost = Decimal(cost)
    run.calls = [call]
    run.recompute_total()
    return run


def test_spooled_leftovers_are_ingested_exactly_once(ledger_path):
    from genops_cli.ledger.records import drain, record_run
    from genops_cli.ledger.spool import Spool
    from genops_cli.ledger.store import open_ledger

    ledger = open_ledger(str(ledger_path))
    spool = Spool(ledger.spool_dir())
    run = _run("11111111-1111-1111-1111-111111111111")
    spool.write(run)  # a process died after spooling
    first = drain(ledger)
    assert first.inserted == [run.run_id]
    spool.write(run)  # ... or died after the commit but before removing the spool file
    second = drain(ledger)
    assert second.duplicates == [run.run_id] and not second.inserted
    assert not spool.pending()
    record_run(ledger, _run("22222222-2222-2222-2222-222222222222"))
    assert ledger_rows("SELECT COUNT(*), SUM(total_cost) FROM runs") == [(2, Decimal("1.0"))]


def test_two_executions_of_one_line_are_both_kept_and_replays_stay_idempotent(ledger_path):
    from genops_cli.ledger.records import drain, rekeyed_run_id
    from genops_cli.ledger.spool import Spool
    from genops_cli.ledger.store import open_ledger

    ledger = open_ledger(str(ledger_path))
    spool = Spool(ledger.spool_dir())
    line_id = "33333333-3333-3333-3333-333333333333"
    a = _run(line_id, cost="0.25")
    time.sleep(0.002)
    b = _run(line_id, cost="0.75")  # another process ran the same line at the same time
    spool.write(a)
    assert drain(ledger).inserted == [line_id]
    spool.write(b)
    result = drain(ledger)
    assert result.inserted == [rekeyed_run_id(line_id, b.started_at)]
    spool.write(b)  # replay of b's spool file
    assert drain(ledger).duplicates == [rekeyed_run_id(line_id, b.started_at)]
    rows = ledger_rows("SELECT run_id, total_cost FROM runs ORDER BY total_cost")
    assert rows == [(line_id, Decimal("0.25")), (rekeyed_run_id(line_id, b.started_at), Decimal("0.75"))]
    assert ledger_rows("SELECT COUNT(*), SUM(cost) FROM calls") == [(2, Decimal("1.00"))]
