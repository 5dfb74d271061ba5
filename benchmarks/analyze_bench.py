"""Benchmark: every read command on a large generated ledger, on DuckDB and PostgreSQL, each against one
hand-written query that gives the same answer, side by side.

    .venv/bin/python benchmarks/analyze_bench.py --calls 1000000                 # DuckDB only
    .venv/bin/python benchmarks/analyze_bench.py --calls 1000000 \\
        --postgres postgresql://postgres@127.0.0.1:5432/postgres                 # + PostgreSQL (own schema, dropped)
    .venv/bin/python benchmarks/analyze_bench.py --calls 10000000 --ledger /tmp/big.duckdb --keep   # the 10M run

The ledgers are created by genops (same schema and migrations) and filled with one INSERT ... SELECT per table
(DuckDB range(), PostgreSQL generate_series(), then VACUUM ANALYZE): 4 calls per run (retriever, prompt_builder,
llm on gpt-4o-mini, reviewer on gpt-4o) with real unit prices and exact costs, runs spread over the last 30 days,
50 customers, 7 teams, 5 projects, 3 environments, 3 pipelines, 1 % failed visits, 5 % simulated runs, a monthly
budget per team.

Measured in-process (the library call behind each command, inside one read transaction, as the command runs
it), best of --repeat, against a fresh connection running one hand-written SQL statement:
  analyze --by <each dimension>, report --tenant, report --all-tenants, recommend, compliance report,
  budget status.
Printed as ratios; goals: genops <= 1.5x its raw query on each backend, PostgreSQL within 2x of DuckDB.
Process start-up (`genops --version`) is printed once: add it to every ratio for the command-line time.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

DIMENSIONS = ("component", "provider", "model", "pipeline", "team", "project", "customer", "environment", "day")
RUN_KEYS = {"pipeline": "r.pipeline_name", "team": "r.team", "project": "r.project", "customer": "r.customer_id",
            "environment": "r.environment", "day": "CAST(r.started_at AS DATE)"}
CALL_KEYS = {"component": "c.component_name", "provider": "c.provider", "model": "c.model"}
PRICES = {"gpt-4o-mini": ("0.15", "0.6"), "gpt-4o": ("2.5", "10")}


# ---------------------------------------------------------------------------------------------------- build


def _ts(backend: str, seconds_expr: str) -> str:
    if backend == "duckdb":
        return f"(CAST(now() AS TIMESTAMP) - to_seconds(CAST({seconds_expr} AS BIGINT)))"
    return f"(CAST(now() AT TIME ZONE 'UTC' AS TIMESTAMP) - make_interval(secs => {seconds_expr}))"


def _series(backend: str, n: int) -> str:
    return f"range({n}) t(i)" if backend == "duckdb" else f"generate_series(0, {n - 1}) t(i)"


def _cost(model: str, inp: str, out: str) -> str:
    """Exact cost in SQL: tokens x (USD per token) as DECIMAL(38,18), the ledger's money type."""
    i, o = (Decimal(p) / 1_000_000 for p in PRICES[model])
    return f"({inp} * CAST('{i:f}' AS DECIMAL(38,18)) + {out} * CAST('{o:f}' AS DECIMAL(38,18)))"


def build(ledger: Any, calls: int) -> None:
    """Fill an empty genops ledger (either backend) with `calls` generated calls in two INSERT ... SELECT."""
    backend = ledger.backend
    runs = calls // 4
    span = 30 * 86400
    inp, out = "(1000 + (i / 4) % 500)", "(100 + (i / 4) % 400)"
    if backend == "duckdb":
        inp, out = "(1000 + (i // 4) % 500)", "(100 + (i // 4) % 400)"
    run_of = "i // 4" if backend == "duckdb" else "i / 4"
    mini_doc = '{"input_mtok": "0.15", "output_mtok": "0.6"}'
    big_doc = '{"input_mtok": "2.5", "output_mtok": "10"}'
    per_run = f"({_cost('gpt-4o-mini', inp, out)} + {_cost('gpt-4o', inp, out)})".replace("i / 4", "i").replace(
        "i // 4", "i")
    started = time.perf_counter()
    with ledger.write() as tx:
        tx.execute(f"""
            INSERT INTO runs (run_id, pipeline_name, pipeline_hash, started_at, ended_at, status, team, project,
                              environment, customer_id, total_cost, simulated, currency, policy_result,
                              genops_version, data_classification)
            SELECT 'r' || i, CASE i % 3 WHEN 0 THEN 'chain' WHEN 1 THEN 'rag' ELSE 'agent' END, 'h',
                   {_ts(backend, f'i % {span}')}, {_ts(backend, f'i % {span}')} + INTERVAL '2 seconds',
                   CASE WHEN i % 100 = 0 THEN 'error' ELSE 'ok' END, 'team' || (i % 7), 'proj' || (i % 5),
                   CASE i % 3 WHEN 0 THEN 'production' WHEN 1 THEN 'staging' ELSE 'dev' END, 'cust' || (i % 50),
                   {per_run}, i % 20 = 0, 'USD', 'ALLOWED', 'bench', 'internal'
            FROM {_series(backend, runs)}""")
        tx.execute(f"""
            INSERT INTO calls (call_id, run_id, seq, span_kind, component_name, component_type, provider, model,
                               input_tokens, output_tokens, usage_source, unit_prices, cost, list_cost,
                               contracted_cost, priced, started_at, latency_ms, status)
            SELECT 'c' || i, 'r' || ({run_of}), CAST(i % 4 AS INTEGER) + 1, 'component',
                   CASE i % 4 WHEN 0 THEN 'retriever' WHEN 1 THEN 'prompt_builder' WHEN 2 THEN 'llm'
                        ELSE 'reviewer' END,
                   CASE i % 4 WHEN 0 THEN 'InMemoryBM25Retriever' WHEN 1 THEN 'ChatPromptBuilder'
                        ELSE 'OpenAIChatGenerator' END,
                   CASE WHEN i % 4 >= 2 THEN 'openai' END,
                   CASE i % 4 WHEN 2 THEN 'gpt-4o-mini' WHEN 3 THEN 'gpt-4o' END,
                   CASE WHEN i % 4 >= 2 THEN {inp} ELSE 0 END, CASE WHEN i % 4 >= 2 THEN {out} ELSE 0 END,
                   CASE WHEN i % 4 >= 2 THEN 'reported' ELSE 'none' END,
                   CASE i % 4 WHEN 2 THEN '{mini_doc}' WHEN 3 THEN '{big_doc}' END,
                   c.cost, c.cost, c.cost, TRUE, {_ts(backend, f'({run_of}) % {span}')},
                   (i % 997) * 1.5, CASE WHEN i % 101 = 0 THEN 'error' ELSE 'ok' END
            FROM {_series(backend, runs * 4)},
                 LATERAL (SELECT CASE i % 4 WHEN 2 THEN {_cost('gpt-4o-mini', inp, out)}
                                            WHEN 3 THEN {_cost('gpt-4o', inp, out)}
                                            ELSE CAST(0 AS DECIMAL(38,18)) END AS cost) c""")
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for team in range(7):
            tx.execute("INSERT INTO budgets (scope, monthly_limit, policy, created_at, updated_at) "
                       "VALUES (?, ?, 'advisory', ?, ?)", [f"team:team{team}", Decimal(1000), now, now])
        if backend == "postgresql":
            tx.execute("ANALYZE runs")
            tx.execute("ANALYZE calls")
    print(f"{backend}: built {runs:,} runs / {runs * 4:,} calls in {time.perf_counter() - started:.1f} s",
          file=sys.stderr)


# ---------------------------------------------------------------------------------------------------- raw SQL


def raw_queries(backend: str) -> dict[str, tuple[str, int]]:
    """Command -> (one hand-written statement giving the same answer, number of times the window is bound)."""
    p50 = "quantile_cont({}, 0.5)" if backend == "duckdb" else "percentile_cont(0.5) WITHIN GROUP (ORDER BY {})"
    p95 = "quantile_cont({}, 0.95)" if backend == "duckdb" else "percentile_cont(0.95) WITHIN GROUP (ORDER BY {})"
    window = "r.started_at >= ? AND r.started_at < ? AND NOT r.simulated"
    out: dict[str, tuple[str, int]] = {}
    for dim, key in CALL_KEYS.items():
        out[f"analyze --by {dim}"] = (f"""
            SELECT {key}, SUM(c.cost), COUNT(DISTINCT c.run_id), COUNT(c.model), SUM(c.input_tokens),
                   SUM(c.cache_read_tokens), SUM(c.output_tokens), {p50.format('c.latency_ms')},
                   {p95.format('c.latency_ms')}, SUM(CASE WHEN c.status = 'error' THEN 1 ELSE 0 END),
                   SUM(CASE WHEN NOT c.priced THEN 1 ELSE 0 END)
            FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {window} GROUP BY {key}""", 1)
    for dim, key in RUN_KEYS.items():
        out[f"analyze --by {dim}"] = (f"""
            SELECT {key}, SUM(rc.cost), COUNT(*), SUM(rc.calls), SUM(rc.inp), SUM(rc.cr), SUM(rc.outp),
                   {p50.format('rc.ms')}, {p95.format('rc.ms')},
                   SUM(CASE WHEN r.status = 'error' THEN 1 ELSE 0 END), SUM(rc.unpriced)
            FROM runs r JOIN (SELECT c.run_id, SUM(c.cost) AS cost, COUNT(c.model) AS calls,
                                     SUM(c.input_tokens) AS inp, SUM(c.cache_read_tokens) AS cr,
                                     SUM(c.output_tokens) AS outp, SUM(c.latency_ms) AS ms,
                                     SUM(CASE WHEN NOT c.priced THEN 1 ELSE 0 END) AS unpriced
                              FROM calls c GROUP BY c.run_id) rc ON rc.run_id = r.run_id
            WHERE {window} GROUP BY {key}""", 1)
    bill = f"""
        SELECT {{extra}}CAST(r.started_at AS DATE), r.pipeline_name, c.provider, c.model, c.unit_prices,
               COUNT(*), SUM(c.input_tokens - c.cache_read_tokens - c.cache_write_tokens), SUM(c.cache_read_tokens),
               SUM(c.cache_write_tokens), SUM(c.output_tokens), SUM(c.cost), SUM(c.list_cost)
        FROM calls c JOIN runs r ON r.run_id = c.run_id
        WHERE {window} {{tenant}}AND c.model IS NOT NULL
        GROUP BY {{extra}}CAST(r.started_at AS DATE), r.pipeline_name, c.provider, c.model, c.unit_prices"""
    out["report --tenant"] = (bill.format(extra="", tenant="AND r.customer_id = 'cust7' "), 1)
    out["report --all-tenants"] = (bill.format(extra="r.customer_id, ", tenant=""), 1)
    out["recommend"] = (f"""
        SELECT r.pipeline_name, c.component_name, c.provider, c.model, COUNT(*), COUNT(DISTINCT c.run_id),
               MIN(c.input_tokens), MAX(c.output_tokens), {p95.format('c.output_tokens')}, MIN(c.max_tokens),
               SUM(c.cost), SUM(c.input_tokens), SUM(c.cache_read_tokens), SUM(c.output_tokens)
        FROM calls c JOIN runs r ON r.run_id = c.run_id
        WHERE {window} AND c.model IS NOT NULL AND c.priced
        GROUP BY r.pipeline_name, c.component_name, c.provider, c.model""", 1)
    # The report's summary: runs and cost per team / environment / classification / status with the per-run call
    # checks its spec conformance needs (untyped components, unpriced calls: only runs having one need a row), and
    # model calls per provider.
    out["compliance report"] = (f"""
        WITH x AS (SELECT c.run_id, SUM(CASE WHEN c.component_type = '' THEN 1 ELSE 0 END) AS untyped,
                          SUM(CASE WHEN NOT c.priced THEN 1 ELSE 0 END) AS unpriced
                   FROM calls c WHERE c.component_type = '' OR NOT c.priced GROUP BY c.run_id)
        SELECT r.team, r.environment, r.data_classification, r.status, COUNT(*), SUM(r.total_cost),
               SUM(CASE WHEN r.project IS NULL OR x.untyped > 0 OR x.unpriced > 0 THEN 1 ELSE 0 END),
               NULL, NULL, NULL
        FROM runs r LEFT JOIN x ON x.run_id = r.run_id
        WHERE {window} GROUP BY r.team, r.environment, r.data_classification, r.status
        UNION ALL
        SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, c.provider, COUNT(DISTINCT c.run_id), SUM(c.cost)
        FROM calls c JOIN runs r ON r.run_id = c.run_id
        WHERE {window} AND c.model IS NOT NULL GROUP BY c.provider""", 2)
    out["budget status"] = ("""
        SELECT r.team, SUM(r.total_cost) FROM runs r
        WHERE r.started_at >= ? AND r.started_at < ? AND NOT r.simulated GROUP BY r.team""", 1)
    return out


# ---------------------------------------------------------------------------------------------------- genops side


def genops_commands(ledger: Any) -> dict[str, Callable[[], Any]]:
    from genops_cli.analysis import billing
    from genops_cli.analysis.analyze import analyze_costs
    from genops_cli.analysis.compliance_report import compliance_report
    from genops_cli.analysis.filters import Filters
    from genops_cli.analysis.periods import parse_period
    from genops_cli.analysis.recommend import recommend
    from genops_cli.config import Settings
    from genops_cli.policy.budgets import status

    period = parse_period(since="30d")
    month = billing.parse_billing_period(None)
    settings = Settings()

    def bill_one() -> Any:
        with ledger.read() as tx:
            return billing.tenant_bill(tx, "cust7", month)

    def bill_all() -> Any:
        with ledger.read() as tx:
            return billing.tenant_bills(tx, month)

    def compliance() -> Any:
        # As `genops compliance report` runs it in every format but csv (which also lists each run); the audit
        # chain check is left out (it reads the audit log, not the runs and calls measured here).
        with ledger.read() as tx:
            return compliance_report(tx, days=30, verify_audit=False, with_operations=False)

    out: dict[str, Callable[[], Any]] = {
        f"analyze --by {dim}": (lambda d=dim: analyze_costs(ledger, period, Filters(), by=d)) for dim in DIMENSIONS
    }
    out["report --tenant"] = bill_one
    out["report --all-tenants"] = bill_all
    out["recommend"] = lambda: recommend(ledger, period, Filters())
    out["compliance report"] = compliance
    out["budget status"] = lambda: status(ledger, settings)
    return out


def windows() -> dict[str, list[Any]]:
    from genops_cli.analysis import billing
    from genops_cli.analysis.periods import parse_period

    period = parse_period(since="30d")
    month = billing.parse_billing_period(None)
    return {"default": [period.start, period.end], "report --tenant": [month.start, month.end],
            "report --all-tenants": [month.start, month.end], "budget status": [month.start, month.end]}


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(ledger: Any, raw_connect: Callable[[], Any], repeat: int) -> dict[str, tuple[float, float]]:
    """Command -> (raw seconds, genops seconds)."""
    raws = raw_queries(ledger.backend)
    bounds = windows()
    results: dict[str, tuple[float, float]] = {}
    for name, fn in genops_commands(ledger).items():
        sql, times = raws[name]
        params = bounds.get(name, bounds["default"]) * times

        def raw(sql: str = sql, params: list[Any] = params) -> None:
            conn = raw_connect()
            try:
                cur = conn.execute(sql.replace("?", "%s") if ledger.backend == "postgresql" else sql, params)
                cur.fetchall()
            finally:
                conn.close()

        raw()  # warm caches once for both contenders
        fn()
        results[name] = (best(raw, repeat), best(fn, repeat))
        print(f"  {ledger.backend:10s} {name:28s} raw {results[name][0]:7.3f} s  genops {results[name][1]:7.3f} s",
              file=sys.stderr)
    return results


# ---------------------------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=10_000_000, help="Calls to generate (4 per run).")
    parser.add_argument("--ledger", default=None, help="DuckDB ledger path (built if missing).")
    parser.add_argument("--keep", action="store_true", help="Keep the DuckDB ledger file afterwards.")
    parser.add_argument("--postgres", default=os.environ.get("GENOPS_BENCH_POSTGRES_URL"),
                        help="PostgreSQL server URL: also measure there (a schema of its own, dropped afterwards).")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import duckdb

    from genops_cli.ledger.store import open_ledger

    tmpdir = None
    if args.ledger:
        path = Path(args.ledger)
    else:
        tmpdir = tempfile.mkdtemp(prefix="genops-bench-")
        path = Path(tmpdir) / "ledger.duckdb"
    built = path.exists()
    duck = open_ledger(str(path))
    if not built:
        build(duck, args.calls)
    table: dict[str, dict[str, tuple[float, float]]] = {
        "duckdb": measure(duck, lambda: duckdb.connect(str(path), read_only=True), args.repeat)}

    schema = None
    if args.postgres:
        import psycopg

        schema = f"genops_bench_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in args.postgres else "?"
        pg = open_ledger(f"{args.postgres}{sep}schema={schema}")
        try:
            build(pg, args.calls)
            # As autovacuum does on a live ledger after a bulk load: the visibility map lets index-only scans
            # (budget spend, a tenant's runs) skip the heap. VACUUM cannot run inside a transaction.
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'SET search_path TO "{schema}"')
                conn.execute("VACUUM (ANALYZE) runs")
                conn.execute("VACUUM (ANALYZE) calls")

            def pg_connect() -> Any:
                conn = psycopg.connect(args.postgres)
                conn.execute(f'SET search_path TO "{schema}"')
                return conn

            table["postgresql"] = measure(pg, pg_connect, args.repeat)
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    exe = str(Path(sys.executable).with_name("genops"))
    startup = best(lambda: subprocess.run([exe, "--version"], check=True, stdout=subprocess.DEVNULL), args.repeat)
    _print(table, args.calls, startup)
    if tmpdir and not args.keep:
        for f in Path(tmpdir).iterdir():
            f.unlink()
        os.rmdir(tmpdir)


def _print(table: dict[str, dict[str, tuple[float, float]]], calls: int, startup: float) -> None:
    backends = list(table)
    print(f"{calls:,} calls; genops process start-up {startup:.3f} s (add to each genops time for the CLI)")
    head = f"{'command':28s}" + "".join(f" | {b:>10s} raw  genops  ratio" for b in backends)
    if "postgresql" in table:
        head += " | pg/duckdb"
    print(head)
    for name in table[backends[0]]:
        row = f"{name:28s}"
        for b in backends:
            raw, ours = table[b][name]
            row += f" | {raw:13.3f} {ours:7.3f} {ours / raw:5.2f}x"
        if "postgresql" in table:
            row += f" | {table['postgresql'][name][1] / table['duckdb'][name][1]:8.2f}x"
        print(row)


if __name__ == "__main__":
    main()
