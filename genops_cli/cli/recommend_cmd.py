"""`genops recommend`: what should change, each recommendation computed from recorded volumes and prices."""

from __future__ import annotations

from typing import Any

import typer

from genops_cli.cli.analyze_cmd import (
    COST_CENTER,
    CUSTOMER,
    ENVIRONMENT,
    FEATURE,
    FROM,
    PIPELINE,
    PROJECT,
    SIMULATED,
    SINCE,
    TAG,
    TEAM,
    TO,
    USER,
    check_format,
    scope_from_flags,
)
from genops_cli.cli.common import (
    handle_errors,
    load_cli_settings,
    money,
    open_cli_reader_ledger,
    print_json,
    stdout_console,
)


@handle_errors
def recommend(
    since: str = SINCE,
    from_: str = FROM,
    to: str = TO,
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
    output_format: str = typer.Option("table", "--format", help="table|json"),
) -> None:
    """Cheaper models, prompt caching, max_tokens, retriever top_k, failing components, agent loops."""
    from genops_cli.analysis.recommend import recommend as compute

    check_format(output_format, ("table", "json"))
    period, filters = scope_from_flags(since, from_, to, team, project, customer, pipeline, environment,
                                       include_simulated, feature, cost_center, user, tag)
    report = compute(open_cli_reader_ledger(load_cli_settings()), period, filters)
    if output_format == "json":
        print_json(report.to_json())
        return
    _table(report, stdout_console())


def _table(report: Any, console: Any) -> None:
    from rich.table import Table

    console.print(f"{report.runs} runs and {report.calls} model calls, {report.period.describe()}", markup=False)
    if not report.recommendations:
        console.print("no recommendations: nothing in the recorded data points to a change", markup=False)
        return
    table = Table(show_lines=True)
    for name in ("kind", "pipeline / component", "current", "recommended", "savings", "confidence", "why"):
        table.add_column(name, justify="right" if name == "savings" else "left",
                         overflow="fold", ratio=4 if name == "why" else None)
    for r in report.recommendations:
        table.add_row(
            r.kind, f"{r.pipeline} / {r.component}",
            f"{r.current_model or '-'}\n{money(r.current_cost)}",
            f"{r.recommended_model or '-'}\n{money(r.recommended_cost)}",
            money(r.potential_savings) + ("" if r.counted else "\n(alternative)"), r.confidence, r.reasoning,
        )
    console.print(table)
    console.print(f"potential savings {money(report.potential_savings)} of {money(report.spend)} spent in the window "
                  "(the best change per component; alternatives are not added)", markup=False)
