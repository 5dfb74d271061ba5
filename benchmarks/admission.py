"""Per-call admission cost on the caller's thread: the check genops makes before every LLM/embedding call.

    python benchmarks/admission.py [--calls 2000] [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

Measures, in one process and one run, what the tracer does around each provider call (`RunCapture.before_llm_call`
with the call's rendered messages, the priced cost handed to admission, `after_llm_call`), for:
- `no admission`: a capture without a gate (the floor);
- `no budget`: a run session whose scopes have no budget (the common case: must cost nothing measurable);
- `budget, in hold`: an enforcing budget applies and the call fits in the run's reservation (the normal case once
  a run is preflighted: token count + worst-case price, in memory);
- `budget, growing hold`: the run reserved nothing up front (an Agent looping past its preflight estimate), so its
  hold must grow: a ledger top-up holds the call plus 1, 2, 4, then 8 more like it when they fit, so most calls
  are still admitted in memory;
- `ledger top-up`: one such top-up alone (a write transaction under the scope locks).
Prints p50 / p99 in microseconds and each case's p50 ratio to `no budget`. The goal: `budget, in hold` p99 <= 1 ms.

`--requests N` also times whole tracked requests through the Python API (`track_pipeline` around a two-call
pipeline of Haystack's MockChatGenerator, no network) with no budget and with an enforcing budget: the latter
adds the run's preflight (a simulated pass counting its input tokens, one ledger transaction reserving its worst
case) to each request.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")


def _messages() -> list[Any]:
    from haystack.dataclasses import ChatMessage

    context = " ".join(f"Document {i}: quarterly support volume rose in region {i % 7}." for i in range(40))
    return [ChatMessage.from_system("Answer from the documents only."),
            ChatMessage.from_user(f"{context}\n\nQuestion: which region grew most, and why?")]


def _session(ledger_location: str, *, budget: bool, estimate: Decimal) -> Any:
    from genops_cli.config import load_settings
    from genops_cli.execution.loading import LoadedPipeline
    from genops_cli.execution.runner import Engine, RunOptions
    from genops_cli.execution.session import RunSession
    from genops_cli.ledger.store import open_ledger
    from genops_cli.models import Attribution, Budget
    from genops_cli.tracking.capture import ComponentProfile, PipelineProfile

    settings = load_settings(None, ledger_location, Attribution(team="bench"))
    if budget:
        settings.budgets.scopes.append(Budget(scope="team:bench", daily=Decimal("1000"), policy="enforcing",
                                              source="config"))
    engine = Engine(settings, open_ledger(ledger_location))
    profile = PipelineProfile(name="bench", path="<bench>", pipeline_hash="bench", components={
        "llm": ComponentProfile("llm", "OpenAIChatGenerator", "haystack.OpenAIChatGenerator", provider="openai",
                                model="gpt-4o-mini", max_tokens=256, is_llm=True)})
    session = RunSession(engine, LoadedPipeline(pipeline=None, profile=profile, path=Path("<bench>"), data={}),
                         RunOptions(attribution=Attribution(team="bench")))
    session.preflight({}, estimate=lambda: estimate)
    session.open_capture()
    return session


#: CPU time of the calling thread as well as wall time: on a shared machine the wall-clock tail includes time the
#: thread was not scheduled, which is not work the check does.
CPU: dict[int, list[float]] = {}


def _time_calls(capture: Any, calls: int, inputs: dict[str, Any]) -> list[float]:
    cost = Decimal("0.00002")
    out, cpu = [], []
    for _ in range(calls):
        t0, c0 = time.perf_counter(), time.thread_time()
        ticket = capture.before_llm_call("llm", provider="openai", model="gpt-4o-mini", inputs=inputs,
                                         max_tokens=256)
        if capture.admission is not None:
            capture.admission.spend(cost)
        capture.after_llm_call(ticket)
        out.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    CPU[id(out)] = cpu
    return out


def _time_top_ups(session: Any, calls: int) -> list[float]:
    hold = session.admission.budgets
    out, cpu = [], []
    for i in range(1, calls + 1):
        t0, c0 = time.perf_counter(), time.thread_time()
        assert hold.ensure(Decimal("0.0001") * i) is None
        out.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
    CPU[id(out)] = cpu
    return out


def _requests(ledger_location: str, count: int, budget: bool) -> list[float]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from overhead import build_pipeline

    from genops_cli import GenOpsHaystackAdapter

    adapter = GenOpsHaystackAdapter(team="bench", project="requests", ledger=ledger_location,
                                    daily_budget_limit="1000" if budget else None, governance_policy="enforcing")
    pipeline = build_pipeline()
    out, cpu = [], []
    for i in range(count + 5):
        t0, c0 = time.perf_counter(), time.thread_time()
        with adapter.track_pipeline("request", pipeline=pipeline):
            pipeline.run({"draft_prompt": {"request": f"announce the tagging rule ({i})"}})
        if i >= 5:  # the first runs build the simulated copy and warm caches
            out.append(time.perf_counter() - t0)
            cpu.append(time.thread_time() - c0)
    adapter.flush()
    CPU[id(out)] = cpu
    return out


def _floor(calls: int, inputs: dict[str, Any]) -> list[float]:
    from genops_cli.tracking.capture import RunCapture

    return _time_calls(RunCapture("floor"), calls, inputs)


def _p(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--topup-calls", type=int, default=200)
    parser.add_argument("--postgres", default=None, help="also measure top-ups on this PostgreSQL ledger")
    parser.add_argument("--requests", type=int, default=0, help="also time N whole API requests per case")
    args = parser.parse_args()
    inputs = {"messages": _messages(), "generation_kwargs": {"max_tokens": 256}}
    with tempfile.TemporaryDirectory() as tmp:
        duck = str(Path(tmp) / "ledger.duckdb")
        _time_calls(_session(duck, budget=True, estimate=Decimal("10")).capture, 50, inputs)  # warm-up
        results: dict[str, list[float]] = {
            "no admission": _floor(args.calls, inputs),
            "no budget": _time_calls(_session(duck, budget=False, estimate=Decimal(0)).capture, args.calls, inputs),
            "budget, in hold": _time_calls(_session(duck, budget=True, estimate=Decimal("10")).capture, args.calls,
                                           inputs),
            "budget, growing hold": _time_calls(_session(duck, budget=True, estimate=Decimal(0)).capture,
                                                args.topup_calls, inputs),
            "ledger top-up (DuckDB)": _time_top_ups(_session(duck, budget=True, estimate=Decimal(0)),
                                                    args.topup_calls),
        }
        if args.postgres:
            results["ledger top-up (PostgreSQL)"] = _time_top_ups(
                _session(args.postgres, budget=True, estimate=Decimal(0)), args.topup_calls)
        if args.requests:
            for budget in (False, True):
                name = f"API request, {'enforcing budget' if budget else 'no budget'}"
                results[name] = _requests(str(Path(tmp) / f"requests-{budget}.duckdb"), args.requests, budget)
    base = _p(results["no budget"], 0.99)
    print(f"{'case':28} {'calls':>6} {'p50 us':>9} {'p99 us':>9} {'mean us':>9} {'cpu p99 us':>11} "
          f"{'p50/no budget':>14}")
    base50 = _p(results["no budget"], 0.5)
    for name, samples in results.items():
        print(f"{name:28} {len(samples):6d} {_p(samples, 0.5):9.1f} {_p(samples, 0.99):9.1f} "
              f"{statistics.fmean(samples) * 1e6:9.1f} {_p(CPU[id(samples)], 0.99):11.1f} "
              f"{_p(samples, 0.5) / base50:14.2f}")
    in_hold = results["budget, in hold"]
    print(f"budget applicable, call within the run's hold: p99 {_p(in_hold, 0.99):.1f} us wall, "
          f"{_p(CPU[id(in_hold)], 0.99):.1f} us CPU on the caller's thread (goal <= 1000 us); "
          f"no budget: p99 {base:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
