"""`genops compare PIPELINE --inputs FILE --model A --model B`: same inputs, other models, side by side."""

from __future__ import annotations

from typing import Any

import typer

from genops_cli.cli.common import (
    handle_errors,
    info,
    load_cli_settings,
    money,
    open_cli_writer_ledger,
    print_json,
    stdout_console,
    warn,
)
from genops_cli.money import UNPRICED, quantity, total_text


@handle_errors
def compare(
    pipeline: str = typer.Argument(..., help="Haystack pipeline YAML."),
    inputs: str = typer.Option(None, "--inputs", "-i", help="JSON object (one run) or JSONL (a batch)."),
    model: list[str] = typer.Option(None, "--model", "-m", help="A model to compare (repeat; the first is the "
                                                                "baseline for ratios)."),
    component: str = typer.Option(None, "--component", help="Substitute only in this component (default: every "
                                                            "LLM component)."),
    documents: str = typer.Option(None, "--documents", help="JSONL of Documents for the in-memory stores."),
    simulate: bool = typer.Option(False, "--simulate", help="No provider calls: simulators with real prices."),
    allow_module: list[str] = typer.Option(None, "--allow-module", help="Trust another module for component types."),
    team: str = typer.Option(None, "--team", help="Attribution: team."),
    project: str = typer.Option(None, "--project", help="Attribution: project (genops.project)."),
    customer: str = typer.Option(None, "--customer", help="Attribution: customer / tenant id."),
    environment: str = typer.Option(None, "--environment", help="Attribution: environment, e.g. production."),
    user: str = typer.Option(None, "--user", help="Attribution: the end user (selects user:ID budgets)."),
    json_output: bool = typer.Option(False, "--json", help="JSON only on stdout."),
    allow_unpriced: bool = typer.Option(False, "--allow-unpriced",
                                        help="Run models genops cannot price (their cost is reported as unknown)."),
) -> None:
    """Run the same inputs once per model, record each run (tagged compare_id/compare_model), compare."""
    from genops_cli.errors import UsageError
    from genops_cli.execution.compare import compare_models
    from genops_cli.execution.documents import read_documents
    from genops_cli.execution.inputs import read_inputs

    if not inputs:
        raise UsageError("--inputs FILE is required (JSON object or JSONL batch)")
    settings = load_cli_settings(team=team, project=project, customer_id=customer, environment=environment,
                                 user_id=user)
    runs = read_inputs(inputs)
    docs = read_documents(documents) if documents else None
    ledger = open_cli_writer_ledger(settings)

    def progress(name: str, run: Any) -> None:
        if not json_output:
            unpriced = sum(1 for c in run.calls if c.model and not c.priced)
            info(f"{name}: {run.status} {total_text(run.total_cost, unpriced)} run {run.run_id}"
                 + (f" ({run.error})" if run.error else ""))

    result = compare_models(settings, ledger, pipeline, runs, list(model or []), component=component,
                            simulate=simulate, allow_modules=list(allow_module or []), documents=docs,
                            on_run=progress, allow_unpriced=allow_unpriced, on_warning=warn)
    for row in result.rows:
        if row.unpriced_models:
            warn(f"{row.model}: unpriced model(s) {', '.join(sorted(row.unpriced_models))}: cost not included")
    if json_output:
        print_json(result.to_json())
    else:
        _table(result, stdout_console())
    raise typer.Exit(result.exit_code)


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def _table(result: Any, console: Any) -> None:
    from rich.table import Table

    where = f"component {result.component}" if result.component else "every LLM component"
    table = Table(title=f"{result.pipeline}: {result.inputs} input(s), model substituted in {where}"
                        + (" (simulated)" if result.simulated else ""), title_justify="left")
    for name in ("model", "runs ok", "cost", "cost ratio", "input tok", "output tok", "tokens ratio", "latency ms",
                 "latency ratio"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for r in result.rows:
        cost = money(r.cost) if not r.unpriced_models else f"{UNPRICED} ({money(r.cost)} priced)"
        table.add_row(r.model, f"{r.ok}/{r.runs}", cost, _ratio(r.cost_ratio), quantity(r.input_tokens),
                      quantity(r.output_tokens), _ratio(r.tokens_ratio), f"{r.latency_ms:,.1f}",
                      _ratio(r.latency_ratio))
    console.print(table)
    console.print(f"runs recorded with tag compare_id={result.compare_id}", markup=False)
