"""DuckDB ledger write rate under concurrent writer processes.

    python benchmarks/ledger_writes.py [--procs 8] [--runs 40] [--calls 10]

Each of `--procs` processes records `--runs` runs of `--calls` call records into one DuckDB ledger, two ways:
- per run: `record_run` (spool, then one writer lock hold and one connection per run), what a single
  `genops run` does;
- grouped: `ingest` of 16 spooled runs per lock hold and connection, one transaction per run, what the batch
  writer thread does.
Prints records (run + call rows) per second for both and grouped/per-run; checks that every run landed once.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import tempfile
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path


def make_run(calls: int):  # noqa: ANN201
    from genops_cli.models import CallRecord, RunRecord, TokenUsage, utcnow

    started = utcnow()
    run_id = str(uuid.uuid4())
    run = RunRecord(run_id=run_id, pipeline_name="bench", pipeline_hash="bench", started_at=started,
                    ended_at=started + timedelta(milliseconds=5))
    for seq in range(calls):
        call = CallRecord(call_id=str(uuid.uuid4()), run_id=run_id, seq=seq + 1, span_kind="component",
                          component_name=f"llm{seq}", component_type="OpenAIChatGenerator", started_at=started,
                          latency_ms=1.0, provider="openai", model="gpt-4o-mini",
                          usage=TokenUsage(input_tokens=100, output_tokens=10, source="reported"))
        call.cost = Decimal("0.000021")
        run.calls.append(call)
    run.recompute_total()
    return run


def writer(ledger_path: str, runs: int, calls: int, mode: str, spool_dir: str) -> None:
    os.environ["GENOPS_SPOOL_DIR"] = spool_dir  # each process its own spool: measure the ledger, not other drains
    from genops_cli.ledger.records import ingest, record_run
    from genops_cli.ledger.spool import Spool
    from genops_cli.ledger.store import open_ledger

    ledger = open_ledger(ledger_path)
    if mode == "per-run":
        for _ in range(runs):
            result = record_run(ledger, make_run(calls))
            assert result.ok, result.error
        return
    spool = Spool(Path(spool_dir))
    for start in range(0, runs, 16):
        group = [make_run(calls) for _ in range(min(16, runs - start))]
        result = ingest(ledger, [(spool.write(run), run) for run in group], spool)
        assert result.ok, result.error


def measure(mode: str, procs: int, runs: int, calls: int, workdir: Path) -> float:
    from genops_cli.ledger.store import open_ledger

    ledger_path = str(workdir / f"{mode}.duckdb")
    with open_ledger(ledger_path).write():
        pass  # schema created before the clock starts
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=writer, args=(ledger_path, runs, calls, mode, str(workdir / f"{mode}-spool{i}")))
               for i in range(procs)]
    t0 = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - t0
    assert all(w.exitcode == 0 for w in workers), "a writer process failed"
    with open_ledger(ledger_path).read() as tx:
        counts = tx.query("SELECT (SELECT COUNT(*) FROM runs), (SELECT COUNT(*) FROM calls)")[0]
    assert counts == (procs * runs, procs * runs * calls), counts
    return procs * runs * (calls + 1) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--runs", type=int, default=40, help="runs per process")
    parser.add_argument("--calls", type=int, default=10, help="call records per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        per_run = measure("per-run", args.procs, args.runs, args.calls, Path(tmp))
        grouped = measure("grouped", args.procs, args.runs, args.calls, Path(tmp))
    total = args.procs * args.runs
    print(f"DuckDB ledger, {args.procs} writer processes x {args.runs} runs x {args.calls} calls "
          f"({total} runs, {total * (args.calls + 1)} records), {os.cpu_count()} cores")
    print(f"per run (record_run):          {per_run:8.0f} records/s  {per_run / (args.calls + 1):7.1f} runs/s")
    print(f"grouped (ingest, 16 per hold): {grouped:8.0f} records/s  {grouped / (args.calls + 1):7.1f} runs/s")
    print(f"grouped / per run: x{grouped / per_run:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
