"""The one recorder: durability (os._exit right after pipeline.run(), SIGTERM mid-run), the same hooks for a run
recorded directly and one ingested later from the spool, nothing spent when the spool cannot be written, and
reads that see every record (or say which they miss)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, genops_subprocess, json_lines, ledger_lock_held, ledger_rows, sample

CHAIN = sample("chain")
CHAIN_INPUTS = sample("chain", "inputs.json")
# The chain's two calls at 1000 input / 200 output tokens: drafter gpt-4o-mini (0.15/0.60 per 1M), reviewer gpt-4o
# (2.50/10.00 per 1M).
DRAFTER = (Decimal(1000) * Decimal("0.15") + Decimal(200) * Decimal("0.60")) / 1_000_000
REVIEWER = (Decimal(1000) * Decimal("2.50") + Decimal(200) * Decimal("10.00")) / 1_000_000


def _python(script: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ))


def _spooled(ledger: str) -> list[str]:
    """Run ids waiting in the ledger's spool."""
    from genops_cli.ledger.spool import Spool

    return Spool(Path(ledger + ".spool")).pending_run_ids()


def test_api_run_survives_os_exit_right_after_pipeline_run(openai_server):
    """auto_instrument: os._exit(0) as soon as pipeline.run() returns; the run is in the ledger after the next
    command (here `genops ledger drain`), priced exactly from the provider's usage."""
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    script = f"""
import json, os
from haystack import Pipeline
from genops_cli.api import auto_instrument
auto_instrument(team="ml", cost_summary=False)
pipe = Pipeline.loads(open({CHAIN!r}).read())
pipe.run(json.load(open({CHAIN_INPUTS!r})))
os._exit(0)
"""
    proc = _python(script)
    assert proc.returncode == 0, proc.stderr
    drained = cli("ledger", "drain")
    assert drained.exit_code == 0, drained.stderr
    rows = ledger_rows("SELECT status, team, total_cost FROM runs")
    calls = ledger_rows("SELECT COUNT(*) FROM calls WHERE model IS NOT NULL")[0][0]
    assert [(s, t) for s, t, _ in rows] == [("ok", "ml")] and calls == 2
    assert rows[0][2] == DRAFTER + REVIEWER
    assert _spooled(os.environ["GENOPS_LEDGER"]) == []


def _engine_run_then_exit() -> subprocess.CompletedProcess[str]:
    """A process that runs the chain through the engine, hands the run to the recorder and dies at once."""
    return _python(f"""
import json, os
from genops_cli.config import load_settings
from genops_cli.execution.loading import load_pipeline
from genops_cli.execution.runner import Engine, RunOptions
from genops_cli.ledger.store import open_ledger
from genops_cli.models import Attribution
settings = load_settings()
engine = Engine(settings, open_ledger(os.environ["GENOPS_LEDGER"]))
loaded = load_pipeline({CHAIN!r})
outcome = engine.run(loaded, json.load(open({CHAIN_INPUTS!r})), RunOptions(attribution=Attribution(team="ml"),
                                                                           record=False))
engine.recorder.submit(outcome.run)
os._exit(0)
""")


@pytest.fixture
def memory_spans():
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from genops_cli.ledger.hooks import REGISTRY
    from genops_cli.otel import OtelRunExporter

    spans = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(spans))
    exporter = OtelRunExporter(provider, None, name="otel:test-recorder")
    REGISTRY.register(exporter)
    try:
        yield spans
    finally:
        REGISTRY.unregister(exporter.name)


def _hook_effects(spans: Any) -> dict[str, Any]:
    alerts = ledger_rows("SELECT scope, period, threshold FROM alerts ORDER BY threshold")
    events = ledger_rows("SELECT rule, result, reason_code FROM policy_events ORDER BY rule")
    names = sorted(s.name for s in spans.get_finished_spans())
    with_cost = sorted(str(s.attributes.get("genops.cost.total")) for s in spans.get_finished_spans())
    audit = ledger_rows("SELECT kind, COUNT(*) FROM audit_log GROUP BY kind ORDER BY kind")
    return {"alerts": alerts, "events": events, "spans": names, "span_costs": with_cost, "audit": audit}


def test_drained_run_goes_through_the_same_hooks_as_a_direct_one(openai_server, memory_spans, tmp_path,
                                                                 monkeypatch):
    """Same budget alerts, compliance violation, OTel spans and audit entries whether the run is recorded by
    `genops run` or ingested later from the spool by `genops ledger drain` (after its process died)."""
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    (tmp_path / ".genops.yml").write_text(
        "compliance:\n  mode: advisory\n  classifications:\n    internal: {max_cost_per_operation: 0.0001}\n")
    effects = []
    for name in ("direct", "drained"):
        monkeypatch.setenv("GENOPS_LEDGER", str(tmp_path / f"{name}.duckdb"))
        memory_spans.clear()
        assert cli("budget", "set", "team:ml", "--daily", "0.0004", "--policy", "advisory").exit_code == 0
        if name == "direct":
            result = cli("run", CHAIN, "--inputs", CHAIN_INPUTS, "--team", "ml", "--json")
            assert result.exit_code == 0, result.stderr
        else:
            proc = _engine_run_then_exit()
            assert proc.returncode == 0, proc.stderr
            assert len(_spooled(os.environ["GENOPS_LEDGER"])) == 1  # died before ingesting: left in the spool
            assert ledger_rows("SELECT COUNT(*) FROM runs") == [(0,)]
            drained = cli("ledger", "drain")
            assert drained.exit_code == 0, drained.stderr
        from genops_cli.policy import alerts

        alerts.flush(10)
        effects.append(_hook_effects(memory_spans))
    direct, drained = effects
    assert [t for _s, _p, t in direct["alerts"]] == [50, 80, 95, 100]
    assert ("compliance:max_cost", "WARNING") in [(rule, result) for rule, result, _code in direct["events"]]
    assert "invoke_workflow chain" in direct["spans"]
    assert drained == direct


def test_sigterm_mid_run_records_the_run_in_flight_as_interrupted(openai_server, tmp_path):
    """A batch at concurrency 1; SIGTERM while line 2's second LLM call is in flight: line 1 is kept (ok), line 2
    is recorded as interrupted with the spend of its first call and the call in flight (its request was sent: the
    provider bills its input, counted offline); the process ends by SIGTERM as usual."""
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    hang = threading.Event()
    seen = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(1)
        if len(seen) == 4:  # line 2, second call: hold it until the test is done
            hang.wait(30)
        return "ok"

    openai_server.responder = responder
    batch = tmp_path / "two.jsonl"
    lines = Path(sample("chain", "batch.jsonl")).read_text().splitlines()[:2]
    batch.write_text("\n".join(lines) + "\n")
    exe = Path(sys.executable).with_name("genops")
    proc = subprocess.Popen([str(exe), "run", CHAIN, "--inputs", str(batch), "--concurrency", "1", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert len(seen) == 4, proc.stderr.read() if proc.poll() is not None else "timeout"
        time.sleep(0.2)  # the request is on the wire; the pipeline waits for the reply
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    finally:
        hang.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGTERM
    cli("ledger", "drain")  # whatever the handler could not ingest (nothing, normally)
    rows = ledger_rows("SELECT run_id, status, total_cost, error FROM runs ORDER BY started_at")
    [(status, source, tokens_in, tokens_out, cost, error)] = ledger_rows(
        "SELECT status, usage_source, input_tokens, output_tokens, cost, error FROM calls WHERE run_id = ? "
        "AND component_name = 'reviewer'", [rows[1][0]])
    assert (status, source, tokens_out) == ("error", "estimated", 0) and tokens_in > 0
    assert cost == Decimal(tokens_in) * Decimal("2.5") / 1_000_000  # gpt-4o input, USD per 1M tokens
    assert "in flight" in error and "SIGTERM" in error
    assert [(s, c) for _r, s, c, _e in rows] == [("ok", DRAFTER + REVIEWER), ("interrupted", DRAFTER + cost)]
    assert "SIGTERM" in rows[1][3]
    assert ledger_rows("SELECT COUNT(*) FROM reservations WHERE released_at IS NULL") == [(0,)]


def test_unwritable_spool_exits_4_before_any_provider_request(openai_server, tmp_path, monkeypatch):
    """Nothing spends unless it can be recorded: a spool folder that cannot be created -> exit 4, zero requests."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder would go")
    monkeypatch.setenv("GENOPS_SPOOL_DIR", str(blocker / "spool"))
    result = cli("run", CHAIN, "--inputs", CHAIN_INPUTS, "--json")
    assert result.exit_code == 4
    assert "spool" in result.stderr and "not writable" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout.strip() == "" or all("run_id" not in line for line in json_lines(result.stdout))
    assert openai_server.request_count == 0


def _leave_runs_in_spool(count: int) -> None:
    for _ in range(count):
        proc = _engine_run_then_exit()
        assert proc.returncode == 0, proc.stderr


def test_reads_ingest_pending_spool_runs_first(openai_server):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    assert cli("run", CHAIN, "--inputs", CHAIN_INPUTS, "--team", "ml").exit_code == 0
    _leave_runs_in_spool(2)
    result = cli("analyze", "--since", "1d", "--json")
    assert result.exit_code == 0, result.stderr
    assert "ingested 2 spooled run(s) first" in result.stderr
    assert ledger_rows("SELECT COUNT(*) FROM runs") == [(3,)]
    assert _spooled(os.environ["GENOPS_LEDGER"]) == []


def test_reads_that_cannot_ingest_say_what_they_miss_and_a_bill_refuses(openai_server, tmp_path):
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    assert cli("run", CHAIN, "--inputs", CHAIN_INPUTS, "--customer", "acme").exit_code == 0
    _leave_runs_in_spool(3)
    # Another process reads the ledger for a long time (a shared lock, as `genops serve` or a big report holds):
    # readers go on, nothing can be written meanwhile.
    with ledger_lock_held(os.environ["GENOPS_LEDGER"], "shared"):
        env = {"GENOPS_LOCK_TIMEOUT": "2"}
        analyzed = genops_subprocess("analyze", "--since", "1d", "--json", env=env)
        assert analyzed.returncode == 0, analyzed.stderr
        assert "3 run(s) wait in the spool" in analyzed.stderr and "another process holds the ledger lock" \
            in analyzed.stderr
        json.loads(analyzed.stdout)  # the answer itself is still JSON only
        period = time.strftime("%Y-%m", time.gmtime())
        for fmt in ("json", "focus"):
            bill = genops_subprocess("report", "--tenant", "acme", "--period", period, "--format", fmt, env=env)
            assert bill.returncode == 4, bill.stderr
            assert "3 run(s) wait in the spool" in bill.stderr and "refusing to bill" in bill.stderr
            assert bill.stdout.strip() == ""
    bill = cli("report", "--tenant", "acme", "--period", time.strftime("%Y-%m", time.gmtime()), "--format", "json")
    assert bill.exit_code == 0, bill.stderr
    assert ledger_rows("SELECT COUNT(*) FROM runs") == [(4,)]


def test_sigterm_under_an_application_handler_lets_the_run_finish_and_records_it_whole(openai_server):
    """A service with its own SIGTERM handler (graceful shutdown: requests finish): genops chains to it, the run
    in flight goes on, and it is recorded once, whole (status ok, both calls), not as interrupted."""
    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    release = threading.Event()
    seen = []

    def responder(body: dict[str, Any]) -> str:
        seen.append(1)
        if len(seen) == 2:
            release.wait(30)
        return "ok"

    openai_server.responder = responder
    script = f"""
import json, os, signal
stopping = []
signal.signal(signal.SIGTERM, lambda signum, frame: stopping.append(signum))
from haystack import Pipeline
from genops_cli.api import auto_instrument
auto_instrument(team="ml", cost_summary=False)
pipe = Pipeline.loads(open({CHAIN!r}).read())
pipe.run(json.load(open({CHAIN_INPUTS!r})))
print("graceful" if stopping else "no signal", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while len(seen) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert len(seen) == 2, proc.stderr.read() if proc.poll() is not None else "timeout"
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        release.set()
        out, err = proc.communicate(timeout=60)
    finally:
        release.set()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and out.strip() == "graceful", err
    cli("ledger", "drain")
    assert ledger_rows("SELECT status, total_cost FROM runs") == [("ok", DRAFTER + REVIEWER)]


def test_ingester_ingests_while_runs_arrive_and_readers_get_their_turn(openai_server):
    """A process tracking runs back to back (the ingester keeps the ledger's writer session open while runs keep
    arriving): runs reach the ledger while the process still runs, before any flush, and a reader waiting for
    the ledger's lock gets it every time within a second; at the end every run is there, exactly once."""
    from genops_cli.ledger.locking import hold_file_lock

    openai_server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
    script = f"""
import json, sys, time
from haystack import Pipeline
from genops_cli.api import auto_instrument
auto_instrument(team="ml", cost_summary=False)
pipe = Pipeline.loads(open({CHAIN!r}).read())
inputs = json.load(open({CHAIN_INPUTS!r}))
end = time.monotonic() + 4.0
while time.monotonic() < end:
    pipe.run(inputs)
    print("run", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=dict(os.environ))
    assert proc.stdout is not None
    assert proc.stdout.readline() == "run\n", proc.stderr.read() if proc.stderr else ""
    lock = Path(os.environ["GENOPS_LEDGER"] + ".lock")
    ledger = Path(os.environ["GENOPS_LEDGER"])
    waits: list[float] = []
    seen_during: list[int] = []
    while proc.poll() is None:
        started = time.monotonic()
        with hold_file_lock(lock, exclusive=False, timeout=1.0):  # raises LockTimeout if starved
            waits.append(time.monotonic() - started)
            if ledger.exists():
                import duckdb

                with duckdb.connect(str(ledger), read_only=True) as conn:
                    seen_during.append(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])
        time.sleep(0.05)
    printed = 1 + proc.stdout.read().count("run\n")
    assert proc.wait() == 0
    assert len(waits) >= 10 and max(waits) < 1.0
    assert max(seen_during, default=0) > 0, "runs were ingested only when the process ended"
    drained = cli("ledger", "drain")  # whatever the ingester's last drain left (none expected)
    assert drained.exit_code == 0, drained.stderr
    rows = ledger_rows("SELECT COUNT(*), COUNT(DISTINCT run_id), SUM(total_cost) FROM runs")
    assert rows == [(printed, printed, printed * (DRAFTER + REVIEWER))]
