"""Ledger writes per second with N concurrent writer processes: PostgreSQL vs DuckDB, side by side.

    .venv/bin/python benchmarks/ledger_pg_vs_duckdb.py                      # 8 writers x 100 runs each
    .venv/bin/python benchmarks/ledger_pg_vs_duckdb.py --writers 8 --runs 300 \
        --pg postgresql://postgres@127.0.0.1:5432/postgres

A "write" is what `genops run` does per pipeline run: one transaction inserting the run row, its call rows
(3 here), and its audit-chain entry (`records.insert_run`). Every writer is a separate process with its own
connection (DuckDB: its own open per transaction under the file lock; PostgreSQL: one pooled connection), all
released together. The PostgreSQL ledger goes to a throw-away schema, dropped at the end; the DuckDB ledger to
a temp dir. Both ledgers are checked afterwards (row count and audit chain), so a fast but wrong run shows.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from genops_cli.models import Attribution, CallRecord, RunRecord, TokenUsage  # noqa: E402


def synthetic_run(writer: int, index: int) -> RunRecord:
    now = datetime.now(timezone.utc)
    run_id = str(uuid.uuid4())
    run = RunRecord(run_id=run_id, pipeline_name="bench", pipeline_hash="bench", started_at=now, ended_at=now,
                    attribution=Attribution(team=f"team{writer % 3}", customer_id=f"c{index % 5}"))
    for seq in range(1, 4):
        run.calls.append(CallRecord(call_id=str(uuid.uuid4()), run_id=run_id, seq=seq, span_kind="component",
                                    component_name=f"llm{seq}", component_type="OpenAIGenerator", started_at=now,
                                    provider="openai", model="gpt-4o-mini", latency_ms=12.5,
                                    usage=TokenUsage(input_tokens=1000, output_tokens=500, source="provider"),
                                    cost=Decimal("0.0004500000"), list_cost=Decimal("0.0004500000")))
    run.total_cost = Decimal("0.0013500000")
    return run


def writer_process(location: str, writer: int, runs: int, start: mp.Event, done: mp.Queue) -> None:
    from genops_cli.ledger.records import insert_run
    from genops_cli.ledger.store import open_ledger

    ledger = open_ledger(location)
    prepared = [synthetic_run(writer, i) for i in range(runs)]
    start.wait()
    began = time.perf_counter()
    for run in prepared:
        with ledger.write() as tx:
            insert_run(tx, run)
    done.put((writer, time.perf_counter() - began))


def measure(location: str, writers: int, runs: int) -> tuple[float, float]:
    """(writes per second over the wall time of all writers, slowest writer's seconds)."""
    from genops_cli.ledger.store import open_ledger

    with open_ledger(location).write():
        pass  # schema created before the clock starts
    ctx = mp.get_context("spawn")
    start, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=writer_process, args=(location, w, runs, start, done)) for w in range(writers)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let every process import and build its runs
    began = time.perf_counter()
    start.set()
    for p in procs:
        p.join(timeout=900)
    wall = time.perf_counter() - began
    failed = [p.exitcode for p in procs if p.exitcode != 0]
    if failed:
        for p in procs:
            p.kill()
        raise SystemExit(f"{len(failed)} writer(s) failed on {location} (exit codes {failed})")
    results = [done.get(timeout=10) for _ in procs]
    check(location, writers * runs)
    return writers * runs / wall, max(s for _, s in results)


def check(location: str, expected: int) -> None:
    from genops_cli.ledger import audit
    from genops_cli.ledger.store import open_ledger

    with open_ledger(location).read() as tx:
        count = tx.scalar("SELECT COUNT(*) FROM runs")
        total = tx.scalar("SELECT SUM(total_cost) FROM runs")
        _, problems = audit.verify(tx)
    if count != expected or total != Decimal("0.0013500000") * expected or problems:
        raise SystemExit(f"{location}: {count} runs (expected {expected}), total {total}, "
                         f"{len(problems)} audit problems")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--runs", type=int, default=100, help="runs per writer")
    parser.add_argument("--only", choices=("duckdb", "postgresql"), help="measure one backend")
    parser.add_argument("--pg", default=os.environ.get("GENOPS_TEST_POSTGRES_URL",
                                                       "postgresql://postgres@127.0.0.1:5432/postgres"))
    args = parser.parse_args()

    import psycopg

    schema = f"genops_bench_{uuid.uuid4().hex[:8]}"
    pg_location = args.pg + ("&" if "?" in args.pg else "?") + f"schema={schema}"
    with tempfile.TemporaryDirectory(prefix="genops-bench-") as tmp:
        os.environ["GENOPS_SPOOL_DIR"] = tmp  # nothing is spooled here; keeps ~/.genops untouched regardless
        duck_location = str(Path(tmp) / "bench.duckdb")
        duck_rate = duck_slowest = pg_rate = pg_slowest = float("nan")
        try:
            if args.only != "postgresql":
                duck_rate, duck_slowest = measure(duck_location, args.writers, args.runs)
            if args.only != "duckdb":
                pg_rate, pg_slowest = measure(pg_location, args.writers, args.runs)
        finally:
            with psycopg.connect(args.pg.split("?")[0], autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    total = args.writers * args.runs
    print(f"ledger writes: {args.writers} concurrent writer processes x {args.runs} runs "
          f"(1 run row + 3 call rows + 1 audit entry per transaction), {total} runs per backend")
    print(f"{'backend':<12}{'writes/s':>12}{'slowest writer s':>20}")
    print(f"{'duckdb':<12}{duck_rate:>12.0f}{duck_slowest:>20.2f}")
    print(f"{'postgresql':<12}{pg_rate:>12.0f}{pg_slowest:>20.2f}")
    print(f"postgresql / duckdb: {pg_rate / duck_rate:.2f}x")


if __name__ == "__main__":
    main()
