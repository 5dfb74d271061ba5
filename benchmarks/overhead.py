"""Instrumentation overhead: the same local pipeline run bare and under genops, in one process.

    python benchmarks/overhead.py [--runs 300] [--rounds 5] [--mode auto|track] [--budget none|default]
                                  [--latency-ms 20] [--latency-runs 60]

The pipeline is ChatPromptBuilder -> MockChatGenerator (Haystack's own mock: no network, replies carry a model
name and OpenAI-shaped usage, so genops prices every call) -> ChatPromptBuilder -> MockChatGenerator. Bare runs
have no tracer. Instrumented runs use the Python API (`auto_instrument`, or `track_pipeline` with `--mode track`)
and its recorder (spool on the caller's thread, ingestion in the ingester process); the clock stops only after
`flush()`, when every run is in the DuckDB ledger, and the script checks that the ledger holds all of them.
`--budget none` instruments without a budget (attribution and pricing only); `--budget default` keeps the API's
default daily budget, so every run also passes the budget admission. Bare and instrumented rounds alternate;
each round's instrumented/bare ratio is computed pair by pair and the min and median over rounds are printed
(goals: <= 1.10 with the zero-latency mock, genops' fixed per-run cost against ~1.5-4 ms of local Haystack work;
<= 1.02 with each mock call taking `--latency-ms`, a fast real LLM; 0 skips this part).
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


LATENCY_S = 0.0  # set by --latency-ms for the slow pipeline's mock calls


def _slow_draft(messages):  # noqa: ANN001, ANN202 - MockChatGenerator response_fn
    time.sleep(LATENCY_S)
    return "a first draft"


def _slow_final(messages):  # noqa: ANN001, ANN202
    time.sleep(LATENCY_S)
    return "the final text"


def build_pipeline(slow: bool = False):  # noqa: ANN201
    from haystack import Pipeline
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import MockChatGenerator
    from haystack.dataclasses import ChatMessage

    usage = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500}
    draft = {"response_fn": _slow_draft} if slow else {"responses": "a first draft"}
    final = {"response_fn": _slow_final} if slow else {"responses": "the final text"}
    p = Pipeline()
    p.add_component("draft_prompt", ChatPromptBuilder(template=[ChatMessage.from_user("Draft: {{ request }}")],
                                                      required_variables=["request"]))
    p.add_component("drafter", MockChatGenerator(**draft, model="gpt-4o-mini", meta={"usage": usage}))
    p.add_component("review_prompt", ChatPromptBuilder(template=[ChatMessage.from_user("Review: {{ draft[0].text }}")],
                                                       required_variables=["draft"]))
    p.add_component("reviewer", MockChatGenerator(**final, model="gpt-4o", meta={"usage": usage}))
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


def measure(pipeline, runs: int, rounds: int, mode: str, adapter, saved) -> dict[str, float]:  # noqa: ANN001
    """Alternating bare / instrumented rounds of `runs` runs each; medians in seconds per round."""
    from haystack import tracing

    import genops_cli

    data = {"draft_prompt": {"request": "announce the new on-call rota"}}

    def bare(i: int) -> None:
        pipeline.run(data)

    def instrumented(i: int) -> None:
        if mode == "auto":
            pipeline.run(data)
        else:
            with adapter.track_pipeline("overhead"):
                pipeline.run(data)

    bare_times: list[float] = []
    inst_times: list[float] = []
    loop_times: list[float] = []  # the runs alone, before waiting for the ledger
    ratios: list[float] = []  # per round, instrumented (incl. flush) / bare
    for _round in range(rounds):
        tracing.disable_tracing()
        t0 = time.perf_counter()
        timed(bare, runs)
        bare_times.append(time.perf_counter() - t0)
        tracing.enable_tracing(saved)
        t0 = time.perf_counter()
        timed(instrumented, runs)
        loop_times.append(time.perf_counter() - t0)
        genops_cli.flush()
        inst_times.append(time.perf_counter() - t0)
        ratios.append(inst_times[-1] / bare_times[-1])
    return {"bare": statistics.median(bare_times), "inst": statistics.median(inst_times),
            "loop": statistics.median(loop_times), "ratio_min": min(ratios),
            "ratio_median": statistics.median(ratios)}


def report(label: str, runs: int, m: dict[str, float], goal: float) -> float:
    ratio = m["ratio_median"]
    print(f"[{label}] bare:         {m['bare'] / runs * 1000:.3f} ms/run (median round {m['bare']:.3f} s)")
    print(f"[{label}] instrumented: {m['inst'] / runs * 1000:.3f} ms/run (median round {m['inst']:.3f} s, "
          "incl. flush)")
    print(f"[{label}]   of which the runs themselves: {m['loop'] / runs * 1000:.3f} ms/run (ratio "
          f"{m['loop'] / m['bare']:.3f}); ledger ingestion after them: {(m['inst'] - m['loop']) / runs * 1000:.3f} "
          "ms/run")
    print(f"[{label}] ratio instrumented/bare per round: min {m['ratio_min']:.3f}, median {ratio:.3f} "
          f"(goal <= {goal:.2f}: {'met' if ratio <= goal else 'NOT met'})")
    return ratio


def main() -> int:
    global LATENCY_S
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5, help="alternating bare/instrumented rounds")
    parser.add_argument("--mode", choices=("auto", "track"), default="auto")
    parser.add_argument("--budget", choices=("none", "default"), default="none",
                        help="none: no budget applies; default: the API's default daily budget")
    parser.add_argument("--latency-ms", type=float, default=20.0,
                        help="also measure with each mock LLM call taking this long (0: skip)")
    parser.add_argument("--latency-runs", type=int, default=60, help="runs per round with --latency-ms")
    args = parser.parse_args()
    LATENCY_S = args.latency_ms / 1000

    tmp = Path(tempfile.mkdtemp(prefix="genops-bench-"))
    os.environ["GENOPS_LEDGER"] = str(tmp / "ledger.duckdb")
    os.chdir(tmp)  # no stray .genops.yml

    from haystack import tracing

    pipeline = build_pipeline()
    slow = build_pipeline(slow=True) if args.latency_ms > 0 else None
    data = {"draft_prompt": {"request": "announce the new on-call rota"}}

    # Warm up both paths (imports, price-book cache, ledger creation) outside the clock.
    for _ in range(20):
        pipeline.run(data)

    import genops_cli

    limit = {} if args.budget == "default" else {"daily_budget_limit": None}
    adapter = genops_cli.GenOpsHaystackAdapter(team="bench", project="overhead", **limit)
    if args.mode == "auto":
        # cost_summary off: the one-line summary per run is a log line to the terminal, not instrumentation.
        genops_cli.auto_instrument(team="bench", project="overhead", cost_summary=False, **limit)
    saved = tracing.tracer.actual_tracer
    for _ in range(20):
        if args.mode == "auto":
            pipeline.run(data)
        else:
            with adapter.track_pipeline("overhead"):
                pipeline.run(data)
    genops_cli.flush()

    fast = measure(pipeline, args.runs, args.rounds, args.mode, adapter, saved)
    slow_m = measure(slow, args.latency_runs, args.rounds, args.mode, adapter, saved) if slow is not None else None

    from genops_cli.ledger.store import open_ledger

    with open_ledger(os.environ["GENOPS_LEDGER"]).read() as tx:
        recorded = tx.scalar("SELECT COUNT(*) FROM runs WHERE team = 'bench'")
        total = tx.scalar("SELECT SUM(total_cost) FROM runs WHERE team = 'bench'")
    expected = 20 + args.rounds * args.runs + (args.rounds * args.latency_runs if slow is not None else 0)
    print(f"mode={args.mode} budget={args.budget} rounds={args.rounds}; ledger: {recorded}/{expected} runs recorded, "
          f"total cost ${total}")
    report(f"zero-latency mock, {args.runs} runs/round", args.runs, fast, 1.10)
    if slow_m is not None:
        report(f"mock calls {args.latency_ms:g} ms, {args.latency_runs} runs/round", args.latency_runs, slow_m, 1.02)
    return 0 if recorded == expected else 1


if __name__ == "__main__":
    sys.exit(main())
