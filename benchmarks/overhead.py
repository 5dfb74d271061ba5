"""Instrumentation overhead: the same local pipeline run bare and under genops, in one process.

    python benchmarks/overhead.py [--runs 300] [--mode auto|track]

The pipeline is ChatPromptBuilder -> MockChatGenerator (Haystack's own mock: no network, replies carry a model
name and OpenAI-shaped usage, so genops prices every call) -> ChatPromptBuilder -> MockChatGenerator. Bare runs
have no tracer. Instrumented runs use the Python API (`auto_instrument`, or `track_pipeline` with `--mode track`)
with the background writer; the clock stops only after `flush()`, when every run is in the DuckDB ledger, and the
script checks that the ledger holds all of them. Prints instrumented/bare (goal: <= 1.10).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


def build_pipeline():  # noqa: ANN201
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import MockChatGenerator
    from haystack.dataclasses import ChatMessage

    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
    p = Pipeline()
    p.add_component("draft_prompt", ChatPromptBuilder(template=[ChatMessage.from_user("Draft: {{ request }}")],
                                                      required_variables=["request"]))
    p.add_component("drafter", MockChatGenerator(responses="a first draft", model="gpt-4o-mini",
                                                 meta={"usage": usage}))
    p.add_component("review_prompt", ChatPromptBuilder(template=[ChatMessage.from_user("Review: {{ draft[0].text }}")],
                                                       required_variables=["draft"]))
    p.add_component("reviewer", MockChatGenerator(responses="the final text", model="gpt-4o",
                                                  meta={"usage": usage}))
    p.connect("draft_prompt.prompt", "drafter.messages")
    p.connect("drafter.replies", "review_prompt.draft")
    p.connect("review_prompt.prompt", "reviewer.messages")
    return p


def timed(fn, runs: int) -> list[float]:  # noqa: ANN001
    out = []
    for i in range(runs):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/instrumented rounds")
    parser.add_argument("--mode", choices=("auto", "track"), default="auto")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="genops-bench-"))
    os.environ["GENOPS_LEDGER"] = str(tmp / "ledger.duckdb")
    os.chdir(tmp)  # no stray .genops.yml

    from haystack import tracing

    pipeline = build_pipeline()
    data = {"draft_prompt": {"request": "announce the new on-call rota"}}

    def bare(i: int) -> None:
        pipeline.run(data)

    # Warm up both paths (imports, price-book cache, ledger creation) outside the clock.
    for _ in range(20):
        bare(0)

    import genops_cli

    adapter = genops_cli.GenOpsHaystackAdapter(team="bench", project="overhead")
    if args.mode == "auto":
        genops_cli.auto_instrument(team="bench", project="overhead")

    def instrumented(i: int) -> None:
        if args.mode == "auto":
            pipeline.run(data)
        else:
            with adapter.track_pipeline("overhead"):
                pipeline.run(data)

    saved = tracing.tracer.actual_tracer
    for _ in range(20):
        instrumented(0)
    genops_cli.flush()

    bare_times: list[float] = []
    inst_times: list[float] = []
    loop_times: list[float] = []  # the runs alone, before waiting for the ledger
    for _round in range(args.rounds):
        tracing.disable_tracing()
        t0 = time.perf_counter()
        timed(bare, args.runs)
        bare_times.append(time.perf_counter() - t0)
        tracing.enable_tracing(saved)
        t0 = time.perf_counter()
        timed(instrumented, args.runs)
        loop_times.append(time.perf_counter() - t0)
        genops_cli.flush()
        inst_times.append(time.perf_counter() - t0)

    from genops_cli.ledger.store import open_ledger

    with open_ledger(os.environ["GENOPS_LEDGER"]).read() as tx:
        recorded = tx.scalar("SELECT COUNT(*) FROM runs WHERE team = 'bench'")
        total = tx.scalar("SELECT SUM(total_cost) FROM runs WHERE team = 'bench'")
    expected = 20 + args.rounds * args.runs
    bare_s = statistics.median(bare_times)
    inst_s = statistics.median(inst_times)
    ratio = inst_s / bare_s
    print(f"mode={args.mode} runs/round={args.runs} rounds={args.rounds}")
    print(f"bare:         {bare_s / args.runs * 1000:.3f} ms/run (median round {bare_s:.3f} s)")
    print(f"instrumented: {inst_s / args.runs * 1000:.3f} ms/run (median round {inst_s:.3f} s, incl. flush)")
    print(f"ledger: {recorded}/{expected} runs recorded, total cost ${total}")
    loop_s = statistics.median(loop_times)
    print(f"  of which the runs themselves: {loop_s / args.runs * 1000:.3f} ms/run "
          f"(ratio {loop_s / bare_s:.3f}); ledger ingestion after them: {(inst_s - loop_s) / args.runs * 1000:.3f} "
          "ms/run")
    print(f"ratio instrumented/bare: {ratio:.3f} (goal <= 1.10)")
    return 0 if recorded == expected else 1


if __name__ == "__main__":
    sys.exit(main())
