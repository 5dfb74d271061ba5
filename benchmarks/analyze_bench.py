"""Benchmark: `genops analyze` on a synthetic ledger vs the same aggregate in raw DuckDB SQL.

    .venv/bin/python benchmarks/analyze_bench.py                  # 10 million calls (a few minutes to build)
    .venv/bin/python benchmarks/analyze_bench.py --calls 1000000  # quicker
    .venv/bin/python benchmarks/analyze_bench.py --ledger /tmp/big.duckdb --keep   # reuse the ledger next time

The ledger is created by genops (same schema and migrations), then filled with DuckDB `range()` INSERT ... SELECT:
4 calls per run (retriever, prompt_builder, llm on gpt-4o-mini, reviewer on gpt-4o), runs spread over 30 days,
1 % failed visits, 5 % simulated runs. Measured, each best of --repeat:
- raw SQL: a fresh read-only DuckDB connection running one hand-written GROUP BY component_name aggregate
  (cost, runs, calls, tokens, p50/p95 latency, failures) over the same window, excluding simulated runs;
- genops in-process: `analyze_costs(...)` (the library call behind the command);
- genops CLI: `genops analyze --by component --since 90d --format json` as a process, and `genops --version` as
  the start-up baseline.
Printed as ratios: goal "genops within 1.5x of raw SQL, plus start-up".
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAW_SQL = """
SELECT c.component_name, SUM(c.cost), COUNT(DISTINCT c.run_id),
       SUM(CASE WHEN c.model IS NOT NULL THEN 1 ELSE 0 END),
       SUM(c.input_tokens), SUM(c.cache_read_tokens), SUM(c.output_tokens),
       quantile_cont(c.latency_ms, 0.5), quantile_cont(c.latency_ms, 0.95),
       SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END)
FROM calls c JOIN runs r ON r.run_id = c.run_id
WHERE r.started_at >= ? AND NOT r.simulated
GROUP BY c.component_name
"""


def build(path: Path, calls: int) -> None:
    import duckdb

    from genops_cli.ledger.store import open_ledger

    with open_ledger(str(path)).write():
        pass  # schema + migrations, exactly as genops creates a ledger
    runs = calls // 4
    conn = duckdb.connect(str(path))
    started = time.perf_counter()
    conn.execute("SET preserve_insertion_order = false")
    conn.execute(f"""
        INSERT INTO runs (run_id, pipeline_name, pipeline_hash, started_at, ended_at, status, team, customer_id,
                          total_cost, simulated)
        SELECT 'r' || i, CASE WHEN i % 3 = 0 THEN 'chain' ELSE 'rag' END, 'h',
               CAST(now() AS TIMESTAMP) - to_seconds(CAST(i % 2592000 AS BIGINT)),
               CAST(now() AS TIMESTAMP) - to_seconds(CAST(i % 2592000 AS BIGINT)) + INTERVAL 2 SECOND,
               CASE WHEN i % 100 = 0 THEN 'error' ELSE 'ok' END,
               'team' || (i % 7), 'cust' || (i % 50), CAST(0.00795 AS DECIMAL(18,10)), i % 20 = 0
        FROM range({runs}) t(i)
    """)
    conn.execute(f"""
        INSERT INTO calls (call_id, run_id, seq, span_kind, component_name, component_type, provider, model,
                           input_tokens, output_tokens, usage_source, cost, priced, started_at, latency_ms, status)
        SELECT 'c' || i, 'r' || (i // 4), CAST(i % 4 AS INTEGER) + 1, 'component',
               ['retriever', 'prompt_builder', 'llm', 'reviewer'][i % 4 + 1],
               ['InMemoryBM25Retriever', 'ChatPromptBuilder', 'OpenAIChatGenerator', 'OpenAIChatGenerator'][i % 4 + 1],
               CASE WHEN i % 4 >= 2 THEN 'openai' END,
               CASE WHEN i % 4 = 2 THEN 'gpt-4o-mini' WHEN i % 4 = 3 THEN 'gpt-4o' END,
               CASE WHEN i % 4 >= 2 THEN 1000 + i % 500 ELSE 0 END,
               CASE WHEN i % 4 >= 2 THEN 100 + i % 400 ELSE 0 END,
               CASE WHEN i % 4 >= 2 THEN 'reported' ELSE 'none' END,
               CASE WHEN i % 4 = 2 THEN CAST(0.00045 AS DECIMAL(18,10))
                    WHEN i % 4 = 3 THEN CAST(0.0075 AS DECIMAL(18,10)) ELSE CAST(0 AS DECIMAL(18,10)) END,
               TRUE, CAST(now() AS TIMESTAMP) - to_seconds(CAST((i // 4) % 2592000 AS BIGINT)),
               (i % 997) * 1.5, CASE WHEN i % 101 = 0 THEN 'error' ELSE 'ok' END
        FROM range({runs * 4}) t(i)
    """)
    conn.execute("CHECKPOINT")
    conn.close()
    print(f"built {runs:,} runs / {runs * 4:,} calls in {time.perf_counter() - started:.1f} s "
          f"({path.stat().st_size / 1e9:.2f} GB)", file=sys.stderr)


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000)
    parser.add_argument("--ledger", default=None, help="Ledger path (built if missing).")
    parser.add_argument("--keep", action="store_true", help="Keep the ledger file afterwards.")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import duckdb

    from genops_cli.analysis.analyze import analyze_costs
    from genops_cli.analysis.filters import Filters
    from genops_cli.analysis.periods import parse_period
    from genops_cli.ledger.store import open_ledger

    tmpdir = None
    if args.ledger:
        path = Path(args.ledger)
    else:
        tmpdir = tempfile.mkdtemp(prefix="genops-bench-")
        path = Path(tmpdir) / "ledger.duckdb"
    if not path.exists():
        build(path, args.calls)
    period = parse_period(since="90d")

    def raw() -> None:
        conn = duckdb.connect(str(path), read_only=True)
        conn.execute(RAW_SQL, [period.start]).fetchall()
        conn.close()

    ledger = open_ledger(str(path))

    def library() -> None:
        analyze_costs(ledger, period, Filters(), by="component")

    exe = str(Path(sys.executable).with_name("genops"))
    env = {**os.environ, "GENOPS_LEDGER": str(path)}

    def cli() -> None:
        subprocess.run([exe, "analyze", "--by", "component", "--since", "90d", "--format", "json"], check=True,
                       env=env, stdout=subprocess.DEVNULL)

    def startup() -> None:
        subprocess.run([exe, "--version"], check=True, env=env, stdout=subprocess.DEVNULL)

    # Warm the OS page cache once so every contender reads from memory.
    raw()
    t_raw = best(raw, args.repeat)
    t_lib = best(library, args.repeat)
    t_start = best(startup, args.repeat)
    t_cli = best(cli, args.repeat)
    result = analyze_costs(ledger, period, Filters(), by="component")
    print(f"ledger: {path} ({result.calls:,} model calls, {result.runs:,} runs in the window)")
    print(f"raw DuckDB SQL          {t_raw:8.3f} s")
    print(f"genops analyze_costs()  {t_lib:8.3f} s   ratio {t_lib / t_raw:.2f}x raw SQL")
    print(f"genops --version        {t_start:8.3f} s   (start-up)")
    print(f"genops analyze (CLI)    {t_cli:8.3f} s   ratio {t_cli / (t_raw + t_start):.2f}x (raw SQL + start-up)")
    if tmpdir and not args.keep:
        for f in Path(tmpdir).iterdir():
            f.unlink()
        os.rmdir(tmpdir)


if __name__ == "__main__":
    main()
