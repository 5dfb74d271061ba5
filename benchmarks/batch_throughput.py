"""Batch throughput against a loopback OpenAI with fixed latency, as a fraction of the physical limit.

    python benchmarks/batch_throughput.py [--latency 0.2] [--concurrency 16 64] [--lines-per-worker 10]
                                          [--repeats 3]

The loopback provider runs in a child process (a real provider's work is not in our process). The sample chain
pipeline (2 LLM calls per run) runs a JSONL batch through `genops run`'s engine (`run_batch`:
shared pipeline, worker threads, runs handed to the recorder and ingested by the main thread, DuckDB ledger). The
limit is concurrency / (calls per run x latency) runs per second; the script prints measured runs/s / limit, min
and median over `--repeats` (goals: >= 0.9 at concurrency 16, >= 0.8 at 64) and, as the baseline measured in the
same run, the same fraction at concurrency 1, and plain Haystack's own fraction (the same pipeline on a thread pool
without genops: what the provider SDK allows) with genops / plain pair by pair. It checks that the ledger holds
every run. It also times
`load_pipeline`, the cost a pool of per-thread pipelines would pay once per worker (genops shares one pipeline
instead).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the loopback fake providers
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")

CALLS_PER_RUN = 2


def run_once(server: None, workdir: Path, concurrency: int, lines: int, repeat: int = 0) -> tuple[float, int]:  # noqa: ANN001
    from genops_cli.config import load_settings
    from genops_cli.execution.batch import BatchOptions, run_batch
    from genops_cli.execution.inputs import read_inputs
    from genops_cli.ledger.store import open_ledger
    from genops_cli.logging_setup import EventLog

    ledger_path = workdir / f"ledger-c{concurrency}-r{repeat}.duckdb"
    batch = workdir / f"batch-c{concurrency}-r{repeat}.jsonl"
    batch.write_text("".join(json.dumps({"draft_prompt": {"request": f"request {i}", "audience": "all"}}) + "\n"
                             for i in range(lines)))
    ledger = open_ledger(str(ledger_path))
    summaries: list[dict] = []
    options = BatchOptions(concurrency=concurrency, json_output=True, quiet=True)
    t0 = time.perf_counter()
    code = run_batch(load_settings(ledger_flag=str(ledger_path)), ledger,
                     str(REPO / "sample_pipelines/chain/pipeline.yml"), read_inputs(str(batch)), options,
                     emit=lambda obj: summaries.append(obj) if obj.get("summary") else None,
                     events=EventLog(quiet=True))
    wall = time.perf_counter() - t0
    assert code == 0, f"batch failed with exit {code}"
    with ledger.read() as tx:
        recorded = tx.scalar("SELECT COUNT(*) FROM runs")
    assert recorded == lines, f"ledger holds {recorded} runs, expected {lines}"
    # summary elapsed_s: from the first run to the last record written (pipeline load excluded)
    return summaries[-1]["elapsed_s"], int(wall * 1000)


def run_bare(concurrency: int, lines: int) -> float:
    """The same pipeline, lines and provider without genops (no tracer, no ledger): plain Haystack on a thread
    pool, what the provider SDK and Haystack reach by themselves. Returns runs per second."""
    from concurrent.futures import ThreadPoolExecutor

    from haystack import Pipeline, tracing

    pipeline = Pipeline.loads((REPO / "sample_pipelines/chain/pipeline.yml").read_text())
    pipeline.warm_up()
    saved = tracing.tracer.actual_tracer if tracing.is_tracing_enabled() else None
    tracing.disable_tracing()
    try:
        pipeline.run({"draft_prompt": {"request": "warm-up", "audience": "all"}})
        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(lambda i: pipeline.run({"draft_prompt": {"request": f"request {i}", "audience": "all"}}),
                          range(lines)))
        return lines / (time.perf_counter() - t0)
    finally:
        if saved is not None:
            tracing.enable_tracing(saved)


def _serve(conn, latency: float) -> None:  # noqa: ANN001
    """Child process: the loopback provider, so its CPU time does not compete with genops for one GIL."""
    from fakeproviders import FakeOpenAI

    with FakeOpenAI() as server:
        server.latency = latency
        server.usage = {"prompt_tokens": 1000, "completion_tokens": 200}
        conn.send(server.base_url)
        conn.recv()  # until the parent is done
        conn.send(server.count("/chat/completions"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per provider call")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--lines-per-worker", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-lines", type=int, default=12)
    args = parser.parse_args()

    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    provider = ctx.Process(target=_serve, args=(child, args.latency), daemon=True)
    provider.start()
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OPENAI_API_KEY"] = "sk-bench-not-a-real-key"
        os.environ["OPENAI_BASE_URL"] = parent.recv()
        workdir = Path(tmp)
        os.chdir(workdir)

        from genops_cli.execution.loading import load_pipeline

        t0 = time.perf_counter()
        load_pipeline(REPO / "sample_pipelines/chain/pipeline.yml")
        load_ms = (time.perf_counter() - t0) * 1000
        t0 = time.perf_counter()
        load_pipeline(REPO / "sample_pipelines/chain/pipeline.yml")
        reload_ms = (time.perf_counter() - t0) * 1000

        run_once(server, workdir, 2, 4)  # warm-up: imports, price book, tokenizer files
        results = []
        bare: dict[int, list[float]] = {}  # concurrency -> plain Haystack's fractions of the limit
        plan = [(1, args.baseline_lines)] + [(c, c * args.lines_per_worker) for c in args.concurrency]
        served_lines = 4
        for repeat in range(args.repeats):
            for concurrency, lines in plan:
                limit = concurrency / (CALLS_PER_RUN * args.latency)
                if concurrency > 1:
                    bare.setdefault(concurrency, []).append(run_bare(concurrency, lines) / limit)
                    served_lines += lines + 1
                elapsed, wall_ms = run_once(server, workdir, concurrency, lines, repeat)
                rate = lines / elapsed
                results.append((concurrency, lines, elapsed, rate, limit, rate / limit, wall_ms))
                served_lines += lines
    parent.send("done")
    served = parent.recv()
    provider.join(timeout=10)
    expected_calls = CALLS_PER_RUN * served_lines
    assert served == expected_calls, f"provider saw {served} calls, expected {expected_calls}"
    print(f"loopback latency {args.latency * 1000:.0f} ms/call, {CALLS_PER_RUN} calls/run, DuckDB ledger, "
          f"{os.cpu_count()} cores")
    print(f"load_pipeline: first {load_ms:.0f} ms, again {reload_ms:.0f} ms "
          "(a per-thread pool would pay this per worker; genops shares one warmed-up pipeline)")
    print(f"{'concurrency':>11} {'lines':>6} {'elapsed s':>9} {'runs/s':>8} {'limit':>7} {'fraction':>8}")
    for concurrency, lines, elapsed, rate, limit, fraction, _wall in results:
        print(f"{concurrency:>11} {lines:>6} {elapsed:>9.2f} {rate:>8.2f} {limit:>7.2f} {fraction:>8.2f}")
    goals = {16: 0.9, 64: 0.8}
    for concurrency, _lines in plan:
        fractions = [r[5] for r in results if r[0] == concurrency]
        goal = goals.get(concurrency)
        verdict = "" if goal is None else f" (goal >= {goal:.2f}: {'met' if median(fractions) >= goal else 'NOT met'})"
        print(f"fraction of limit at concurrency {concurrency}: min {min(fractions):.2f}, median "
              f"{median(fractions):.2f}{verdict}")
        if concurrency in bare:
            ratios = [g / b for g, b in zip(fractions, bare[concurrency], strict=True)]
            plain = bare[concurrency]
            print(f"  plain Haystack (no genops) at concurrency {concurrency}: fraction min {min(plain):.2f}, "
                  f"median {median(plain):.2f}; genops / plain, pair by pair: min {min(ratios):.2f}, "
                  f"median {median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
