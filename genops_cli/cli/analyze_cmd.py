"""`genops analyze`: where the money and the time go, from the ledger (table, JSON or CSV)."""

from __future__ import annotations

from typing import Any

import typer

from genops_cli.cli.common import (
    handle_errors,
    load_cli_settings,
    money,
    open_cli_reader_ledger,
    print_json,
    stdout_console,
)
from genops_cli.money import quantity, total_text

FORMATS = ("table", "json", "csv")

# Shared by analyze and recommend: the report filters.
SINCE = typer.Option(None, "--since", help="Window ending now: 30m, 24h, 7d, 2w (default 30d).")
FROM = typer.Option(None, "--from", help="Start date YYYY-MM-DD or ISO datetime (UTC).")
TO = typer.Option(None, "--to", help="End date (inclusive day) or ISO datetime (UTC); default now.")
TEAM = typer.Option(None, "--team", help="Only runs of this team.")
PROJECT = typer.Option(None, "--project", help="Only runs of this project.")
CUSTOMER = typer.Option(None, "--customer", help="Only runs of this customer / tenant.")
PIPELINE = typer.Option(None, "--pipeline", help="Only runs of this pipeline (name as recorded).")
ENVIRONMENT = typer.Option(None, "--environment", help="Only runs in this environment.")
SIMULATED = typer.Option(False, "--include-simulated", help="Count simulated runs too (excluded by default).")
FEATURE = typer.Option(None, "--feature", help="Only runs of this feature.")
COST_CENTER = typer.Option(None, "--cost-center", help="Only runs of this cost center.")
USER = typer.Option(None, "--user", help="Only runs of this user (user_id).")
TAG = typer.Option(None, "--tag", help="Only runs with tag KEY=VALUE (repeatable: all must match).")
BY_HELP = ("component|provider|model|pipeline|team|project|customer|environment|feature|cost_center|user|day, or "
           "tag:KEY (the value of the run tag KEY).")


def scope_from_flags(since: str | None, from_: str | None, to: str | None, team: str | None, project: str | None,
                     customer: str | None, pipeline: str | None, environment: str | None,
                     include_simulated: bool, feature: str | None = None, cost_center: str | None = None,
                     user: str | None = None, tags: list[str] | None = None) -> tuple[Any, Any]:
    """(Period, Filters) from the common report flags; bad values raise UsageError naming the flag."""
    from genops_cli.analysis.filters import Filters, parse_tag_filters
    from genops_cli.analysis.periods import parse_period

    period = parse_period(since, from_, to, default="30d")
    filters = Filters(team=team, project=project, customer=customer, pipeline=pipeline, environment=environment,
                      include_simulated=include_simulated, feature=feature, cost_center=cost_center, user=user,
                      tags=parse_tag_filters(tags))
    return period, filters


def check_format(value: str, allowed: tuple[str, ...] = FORMATS) -> str:
    from genops_cli.errors import UsageError

    if value not in allowed:
        raise UsageError(f"--format {value!r}: use one of {', '.join(allowed)}")
    return value


@handle_errors
def analyze(
    since: str = SINCE,
    from_: str = FROM,
    to: str = TO,
    by: str = typer.Option("component", "--by", help=BY_HELP),
    team: str = TEAM,
    project: str = PROJECT,
    customer: str = CUSTOMER,
    pipeline: str = PIPELINE,
    environment: str = ENVIRONMENT,
    feature: str = FEATURE,
    cost_center: str = COST_CENTER,
    user: str = USER,
    tag: list[str] = TAG,
    include_simulated: bool = SIMULATED,
    performance: bool = typer.Option(False, "--performance",
                                     help="Add run-time shares, bottlenecks, success rates and cache savings."),
    insights: bool = typer.Option(False, "--insights", help="RAG and agent insights for --pipeline NAME."),
    output_format: str = typer.Option("table", "--format", help="table|json|csv"),
) -> None:
    """Cost, volume, latency and failures grouped by one dimension, computed from recorded runs."""
    from genops_cli.analysis.analyze import analyze_costs, dimension
    from genops_cli.errors import UsageError

    check_format(output_format)
    dimension(by)  # a bad --by exits 2 before the ledger is opened
    period, filters = scope_from_flags(since, from_, to, team, project, customer, pipeline, environment,
                                       include_simulated, feature, cost_center, user, tag)
    if insights and not pipeline:
        raise UsageError("--insights needs --pipeline NAME (the pipeline name as recorded in the ledger)")
    if insights and output_format == "csv":
        raise UsageError("--insights: use --format table or json")
    ledger = open_cli_reader_ledger(load_cli_settings())
    if insights:
        _insights(ledger, pipeline, period, filters, output_format)
        return
    result = analyze_costs(ledger, period, filters, by=by, with_daily=output_format == "table")
    perf = None
    if performance:
        from genops_cli.analysis.performance import analyze_performance

        perf = analyze_performance(ledger, period, filters)
    if output_format == "json":
        out = result.to_json()
        if perf is not None:
            out["performance"] = perf.to_json()
        print_json(out)
    elif output_format == "csv":
        _csv(result)
    else:
        console = stdout_console()
        _table(result, console)
        if perf is not None:
            _performance_table(perf, console)


def _csv(result: Any) -> None:
    import sys

    from genops_cli.safe_output import csv_writer

    writer = csv_writer(sys.stdout)
    columns = ["key", "cost", "priced", "unpriced_calls", "runs", "calls", "input_tokens", "cache_read_tokens",
               "output_tokens", "share", "latency_p50_ms", "latency_p95_ms", "failure_rate"]
    writer.writerow([result.by if c == "key" else c for c in columns])
    for group in result.groups:
        row = group.to_json()
        writer.writerow(["" if row[c] is None else row[c] for c in columns])


def _table(result: Any, console: Any) -> None:
    from rich.table import Table

    from genops_cli.analysis.analyze import sparkline

    table = Table(title=f"Cost by {result.by}, {result.period.describe()}", title_justify="left")
    for name, justify in ((result.by, "left"), ("cost", "right"), ("share", "right"), ("runs", "right"),
                          ("calls", "right"), ("input tok", "right"), ("cached", "right"), ("output tok", "right"),
                          ("p50 ms", "right"), ("p95 ms", "right"), ("failed", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for g in result.groups:
        table.add_row(
            g.key if g.key is not None else "(none)", total_text(g.known_cost, g.unpriced_calls),
            f"{g.share * 100:.1f}%", quantity(g.runs), quantity(g.calls), quantity(g.input_tokens),
            quantity(g.cache_read_tokens), quantity(g.output_tokens),
            _num(g.latency_p50_ms), _num(g.latency_p95_ms), f"{g.failure_rate * 100:.1f}%",
        )
    console.print(table)
    console.print(f"total {total_text(result.total_cost, result.unpriced_calls)} over {quantity(result.runs)} runs "
                  f"and {quantity(result.calls)} model calls"
                  + (f"; most expensive component: {result.most_expensive_component}"
                     if result.most_expensive_component else ""), markup=False)
    if result.daily:
        line = sparkline([cost for _day, cost in result.daily])
        console.print(f"cost per day {result.daily[0][0]} .. {result.daily[-1][0]}: {line} "
                      f"(max {money(max(cost for _d, cost in result.daily))})", markup=False)
    if result.unpriced_calls:
        console.print(f"{result.unpriced_calls} call(s) of unpriced models are not in the totals "
                      "(genops pricing check)", markup=False)
    if result.simulated_excluded:
        console.print(f"{result.simulated_excluded} simulated run(s) excluded (--include-simulated to count them)",
                      markup=False)
    sources = result.usage_sources
    if sources.estimated_calls:
        share = sources.estimated_share
        console.print(f"{sources.estimated_calls} of {sources.calls} model call(s) rest on estimated usage "
                      f"({money(sources.estimated_cost)}"
                      + (f", {share * 100:.1f}% of cost" if share is not None else "")
                      + "): the provider did not report it (streams without stream_options.include_usage)",
                      markup=False)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _performance_table(perf: Any, console: Any) -> None:
    from rich.table import Table

    table = Table(title="Run time by component", title_justify="left")
    for name in ("pipeline", "component", "visits", "avg ms", "p95 ms", "share of run time", "success"):
        table.add_column(name, justify="left" if name in ("pipeline", "component") else "right")
    for c in perf.components:
        table.add_row(c.pipeline, c.component + (" (bottleneck)" if c.bottleneck else ""), str(c.visits),
                      _num(c.avg_ms), _num(c.p95_ms), f"{c.share_of_run_time * 100:.1f}%",
                      f"{c.success_rate * 100:.1f}%")
    console.print(table)
    for c in perf.bottlenecks:
        console.print(f"bottleneck: {c.pipeline}/{c.component} takes {c.share_of_run_time * 100:.0f}% of run time",
                      markup=False)
    cached = [s for s in perf.prompt_cache if s.cache_read_tokens]
    console.print(f"prompt cache: saved {money(perf.prompt_cache_saved)}"
                  + "".join(f"; {s.component} ({s.model}) {s.token_hit_rate * 100:.1f}% of input tokens cached"
                            for s in cached), markup=False)
    rc = perf.result_cache
    console.print(f"result cache: {rc.hits} of {rc.runs} runs served from cache, saved {money(rc.saved)}",
                  markup=False)


def _insights(ledger: Any, pipeline: str, period: Any, filters: Any, output_format: str) -> None:
    from genops_cli.analysis.insights import get_agent_insights, get_rag_insights

    rag = get_rag_insights(ledger, pipeline, period, filters)
    agent = get_agent_insights(ledger, pipeline, period, filters)
    out = {
        "pipeline": pipeline,
        "period": period.to_json(),
        "runs": rag["runs"],
        "rag": rag if rag["retrieval"]["calls"] else None,
        "agent": agent if agent["agents"] or agent["tools"] else None,
    }
    if output_format == "json":
        from genops_cli.analysis.analyze import jsonable

        print_json(jsonable(out))
        return
    console = stdout_console()
    console.print(f"{pipeline}: {rag['runs']} runs, {period.describe()}, total {money(rag['total_cost'])}, "
                  f"per run {money(rag['cost_per_run'])}", markup=False)
    e2e = rag["end_to_end"]
    console.print(f"end to end: p50 {_num(e2e['p50_ms'])} ms, p95 {_num(e2e['p95_ms'])} ms", markup=False)
    if out["rag"]:
        docs = rag["documents_retrieved"]
        console.print(f"retrieval: {docs['total']} documents in {docs['retrievals']} retrievals "
                      f"({docs['per_retrieval']} each), p50 {_num(rag['retrieval']['p50_ms'])} ms, "
                      f"p95 {_num(rag['retrieval']['p95_ms'])} ms", markup=False)
        if rag["embedding"]["calls"]:
            console.print(f"embedding: {rag['embedding']['calls']} calls, p50 {_num(rag['embedding']['p50_ms'])} ms,"
                          f" cost {money(rag['embedding']['cost'])}", markup=False)
        gen = rag["generation"]
        console.print(f"generation: {gen['calls']} calls, p50 {_num(gen['p50_ms'])} ms, p95 {_num(gen['p95_ms'])} ms,"
                      f" avg {gen['avg_input_tokens']} in / {gen['avg_output_tokens']} out tokens, "
                      f"cost {money(gen['cost'])}", markup=False)
        if rag["context"]:
            ctx = rag["context"]
            console.print(f"context: about {ctx['tokens_per_document']} input tokens per document, "
                          f"{ctx['context_share'] * 100:.0f}% of generation input", markup=False)
    if out["agent"]:
        from rich.table import Table

        console.print(f"LLM calls per run: {agent['llm_calls_per_run']}", markup=False)
        for a in agent["agents"]:
            reasons = ", ".join(f"{k} {v}" for k, v in a["exit_reasons"].items())
            loop = {"loops": " LOOPS: every run hit max_agent_steps", "sometimes_capped": " (some runs hit "
                    "max_agent_steps)"}.get(a["verdict"], "")
            console.print(f"agent {a['path']}: {a['runs']} run(s), {a['steps_per_run']} steps per run (max "
                          f"{a['max_steps']}, cap {a['max_agent_steps']}), exits: {reasons}{loop}; "
                          f"{a['tool_calls_per_run']} tool calls per run, cost per step {money(a['cost_per_step'])}",
                          markup=False)
        table = Table(title="Tools", title_justify="left")
        for name in ("agent", "tool", "calls", "success", "avg ms"):
            table.add_column(name, justify="left" if name in ("agent", "tool") else "right")
        for t in agent["tools"]:
            table.add_row(t["component"], t["tool"], str(t["calls"]), f"{t['success_rate'] * 100:.1f}%",
                          _num(t["avg_latency_ms"]))
        console.print(table)
    if not out["rag"] and not out["agent"]:
        console.print("no retrieval or agent calls recorded for this pipeline in the period", markup=False)
