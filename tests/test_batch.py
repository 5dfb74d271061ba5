"""Batches: N runs in flight on one shared pipeline, deterministic ids, resume, batch budget, fail-fast, cron logs."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from conftest import cli, genops_subprocess, json_lines, ledger_rows, sample

from genops_cli.execution.runner import batch_run_id


def _last_user_text(body: dict) -> str:
    content = body["messages"][-1]["content"]
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def _echo(body: dict) -> str:
    return "ECHO " + _last_user_text(body)


def _write_batch(path: Path, requests: list[str]) -> Path:
    path.write_text("".join(json.dumps({"draft_prompt": {"request": r, "audience": "engineers"}}) + "\n"
                            for r in requests))
    return path


def test_concurrent_runs_keep_their_own_calls_and_outputs(openai_server, tmp_path):
    # Latency makes the runs overlap; each reply echoes its prompt, so a mixed-up run would show another line's text.
    openai_server.latency = 0.15
    openai_server.responder = _echo
    openai_server.usage = {"prompt_tokens": 100, "completion_tokens": 10}
    requests = [f"request number {i} about topic-{i}" for i in range(8)]
    batch = _write_batch(tmp_path / "b.jsonl", requests)
    result = cli("run", sample("chain"), "--inputs", str(batch), "--concurrency", "8", "--json")
    assert result.exit_code == 0, result.stderr
    *runs, summary = json_lines(result.stdout)
    assert summary["summary"] is True and (summary["runs"], summary["ok"], summary["failed"]) == (8, 8, 0)
    assert len(runs) == 8 and len({r["run_id"] for r in runs}) == 8
    for run in runs:
        line = run["batch_line"]
        reply = run["outputs"]["reviewer"]["replies"][0]["content"][0]["text"]
        assert f"topic-{line - 1}" in reply  # the final output went through this line's own drafter call
        assert [c["name"] for c in run["components"]] == ["draft_prompt", "drafter", "review_prompt", "reviewer"]
    # In the ledger every run owns exactly its 4 calls, and the money adds up exactly.
    rows = ledger_rows("SELECT r.run_id, COUNT(c.call_id), SUM(c.cost), MAX(r.total_cost) FROM runs r "
                       "JOIN calls c ON c.run_id = r.run_id GROUP BY r.run_id")
    assert len(rows) == 8
    per_run = Decimal("0.000021") + Decimal("0.00035")  # gpt-4o-mini 100/10 + gpt-4o 100/10
    for _run_id, calls, cost, total in rows:
        assert calls == 4 and cost == per_run and total == per_run
    assert Decimal(summary["total_cost"]) == per_run * 8
    assert openai_server.count("/chat/completions") == 16


def test_run_ids_are_deterministic_per_line_and_rerun_records_new_attempts(openai_server, tmp_path):
    from genops_cli.execution.batch import attempt_run_id
    from genops_cli.execution.loading import load_pipeline

    batch = _write_batch(tmp_path / "b.jsonl", ["alpha", "beta"])
    first = cli("run", sample("chain"), "--inputs", str(batch), "--json")
    assert first.exit_code == 0, first.stderr
    pipeline_hash = load_pipeline(sample("chain")).profile.pipeline_hash
    lines = batch.read_text().splitlines()
    expected = {batch_run_id(pipeline_hash, i + 1, raw.strip()) for i, raw in enumerate(lines)}
    assert {r["run_id"] for r in json_lines(first.stdout)[:-1]} == expected
    # The same file again without --resume: a real second execution, recorded as attempt 2 (nothing dropped).
    second = cli("run", sample("chain"), "--inputs", str(batch), "--json")
    assert second.exit_code == 0, second.stderr
    second_ids = {r["run_id"] for r in json_lines(second.stdout)[:-1]}
    assert second_ids == {attempt_run_id(i, 2) for i in expected}
    assert ledger_rows("SELECT attempt, COUNT(*) FROM runs GROUP BY attempt ORDER BY attempt") == [(1, 2), (2, 2)]


def test_resume_skips_lines_recorded_ok_and_runs_the_rest(openai_server, tmp_path):
    batch = _write_batch(tmp_path / "b.jsonl", ["one", "two", "three"])
    # Line 2's drafter call fails permanently the first time (400), the others succeed.
    openai_server.responder = _echo
    openai_server.failures = [{"status": 400, "message": "bad", "path": "/chat/completions"}]
    first = cli("run", sample("chain"), "--inputs", str(batch), "--json")
    assert first.exit_code == 1
    assert json_lines(first.stdout)[-1]["failed"] == 1
    calls_before = openai_server.count("/chat/completions")
    resumed = cli("run", sample("chain"), "--inputs", str(batch), "--resume", "--json")
    assert resumed.exit_code == 0, resumed.stderr
    *runs, summary = json_lines(resumed.stdout)
    assert (summary["skipped"], summary["runs"], summary["ok"]) == (2, 1, 1)
    assert openai_server.count("/chat/completions") == calls_before + 2  # only the failed line ran again
    # Exactly one ok run per line in the ledger.
    assert ledger_rows("SELECT batch_line, COUNT(*) FROM runs WHERE status = 'ok' GROUP BY batch_line "
                       "ORDER BY batch_line") == [(1, 1), (2, 1), (3, 1)]
    again = cli("run", sample("chain"), "--inputs", str(batch), "--resume", "--json")
    assert json_lines(again.stdout)[-1]["skipped"] == 3
    assert openai_server.count("/chat/completions") == calls_before + 2


def test_batch_max_cost_stops_new_runs_and_exits_3(openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 1000}
    batch = _write_batch(tmp_path / "b.jsonl", [f"r{i}" for i in range(6)])
    # One run costs 0.00075 (gpt-4o-mini) + 0.0125 (gpt-4o) = 0.01325. In the second run the drafter's worst case
    # (~$0.0003) still fits under the cap; after it, the reviewer's (gpt-4o, max_tokens 512: ~$0.0053) does not.
    result = cli("run", sample("chain"), "--inputs", str(batch), "--max-cost", "0.014", "--json")
    assert result.exit_code == 3, result.stderr
    *runs, summary = json_lines(result.stdout)
    assert summary["stopped"] == "max_cost"
    assert (summary["ok"], summary["blocked"], summary["not_started"]) == (1, 1, 4)
    blocked = next(r for r in runs if r["status"] == "blocked")
    # The second run spent its drafter call, then stopped before the reviewer (never called).
    assert Decimal(blocked["total_cost"]) == Decimal("0.00075")
    assert Decimal(summary["total_cost"]) == Decimal("0.01325") + Decimal("0.00075")
    assert openai_server.count("/chat/completions") == 3
    assert "batch cost cap" in blocked["error"]


def test_fail_fast_stops_starting_lines(openai_server, tmp_path):
    batch = _write_batch(tmp_path / "b.jsonl", [f"r{i}" for i in range(5)])
    openai_server.failures = [{"status": 400, "message": "broken"}]
    result = cli("run", sample("chain"), "--inputs", str(batch), "--fail-fast", "--json")
    assert result.exit_code == 1
    summary = json_lines(result.stdout)[-1]
    assert (summary["failed"], summary["not_started"], summary["stopped"]) == (1, 4, "fail_fast")


def test_log_format_json_gives_one_object_per_stderr_line(openai_server, tmp_path):
    batch = _write_batch(tmp_path / "b.jsonl", ["a", "b"])
    openai_server.failures = [{"status": 400, "message": "nope"}]
    result = cli("run", sample("chain"), "--inputs", str(batch), "--log-format", "json")
    assert result.exit_code == 1
    events = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert all({"ts", "level", "event"} <= set(e) for e in events)
    finished = [e for e in events if e["event"] == "run.finished"]
    assert sorted(e["line"] for e in finished) == [1, 2]
    assert all(e["run_id"] for e in finished)
    [summary] = [e for e in events if e["event"] == "batch.summary"]
    assert (summary["ok"], summary["failed"]) == (1, 1)


def test_quiet_prints_nothing_for_a_good_batch(openai_server, tmp_path):
    batch = _write_batch(tmp_path / "b.jsonl", ["a", "b"])
    result = cli("run", sample("chain"), "--inputs", str(batch), "--quiet")
    assert result.exit_code == 0
    assert result.stderr.strip() == ""


def test_plain_progress_lines_when_not_a_tty(openai_server, tmp_path, ledger_path):
    import io

    from genops_cli.config import load_settings
    from genops_cli.execution.batch import BatchOptions, run_batch
    from genops_cli.execution.inputs import read_inputs
    from genops_cli.ledger.store import open_ledger
    from genops_cli.logging_setup import EventLog

    openai_server.latency = 0.1
    batch = _write_batch(tmp_path / "b.jsonl", ["a", "b", "c", "d"])
    stream = io.StringIO()
    code = run_batch(load_settings(), open_ledger(str(ledger_path)), sample("chain"), read_inputs(str(batch)),
                     BatchOptions(progress_interval=0.05), emit=lambda obj: None, events=EventLog(stream=stream))
    assert code == 0
    text = stream.getvalue()
    assert "progress: " in text and " lines (" in text and "ETA" in text
    assert "4 runs: 4 ok, 0 failed, 0 blocked" in text


@pytest.mark.slow
def test_several_batch_processes_share_one_ledger(openai_server, tmp_path):
    openai_server.latency = 0.05
    procs = []
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("genops")
    for p in range(3):
        batch = _write_batch(tmp_path / f"b{p}.jsonl", [f"proc {p} line {i}" for i in range(6)])
        procs.append(subprocess.Popen([str(exe), "run", sample("chain"), "--inputs", str(batch), "--concurrency",
                                       "4", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    # Another genops command writing to the same ledger at the same time.
    single = genops_subprocess("run", sample("chain"), "--inputs", sample("chain", "inputs.json"), "--json")
    outs = [p.communicate(timeout=180) for p in procs]
    assert single.returncode == 0, single.stderr
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        assert json_lines(out)[-1]["ok"] == 6
    assert ledger_rows("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs") == [(19, 19)]
    assert ledger_rows("SELECT COUNT(*) FROM calls") == [(19 * 4,)]
    from genops_cli.ledger.spool import Spool

    assert Spool(Path(str(tmp_path / "ledger.duckdb") + ".spool")).pending_run_ids() == []
