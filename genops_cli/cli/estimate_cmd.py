"""`genops estimate PIPELINE --inputs FILE [--model MODEL]`: forecast a run or a batch before spending."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer

from genops_cli.cli.common import handle_errors, load_cli_settings, money, open_cli_ledger, print_json, stdout_console
from genops_cli.money import UNPRICED


@handle_errors
def estimate(
    pipeline: str = typer.Argument(..., help="Haystack pipeline YAML."),
    inputs: str = typer.Option(None, "--inputs", "-i", help="JSON object (one run), JSONL (a batch), or - for stdin."),
    input_values: list[str] = typer.Option(None, "--input", help="component.socket=value (repeatable)."),
    model: str = typer.Option(None, "--model", "-m", help="Estimate with this model in every LLM component."),
    documents: str = typer.Option(None, "--documents", help="JSONL of Documents for the in-memory stores."),
    allow_module: list[str] = typer.Option(None, "--allow-module", help="Trust another module for component types."),
    team: str = typer.Option(None, "--team", help="Attribution (selects the budgets shown)."),
    project: str = typer.Option(None, "--project", help="Attribution: project (genops.project)."),
    customer: str = typer.Option(None, "--customer", help="Customer / tenant (contracted prices, budgets)."),
    environment: str = typer.Option(None, "--environment", help="Attribution: environment, e.g. production."),
    user: str = typer.Option(None, "--user", help="Attribution: the end user (selects user:ID budgets)."),
    json_output: bool = typer.Option(False, "--json", help="JSON only on stdout."),
    allow_unpriced: bool = typer.Option(False, "--allow-unpriced",
                                        help="Estimate even when a model has no price (its calls are left out)."),
) -> None:
    """Low / expected / worst-case cost of the inputs, per component, and the budget share it would consume.

    Nothing is sent to a provider: input tokens are counted offline, expected output comes from the ledger's
    recorded outputs of this pipeline and model (else the configured simulation output, else max_tokens)."""
    from genops_cli.errors import UsageError
    from genops_cli.execution.documents import read_documents
    from genops_cli.execution.forecast import forecast_batch
    from genops_cli.execution.inputs import read_inputs
    from genops_cli.execution.loading import check_pipeline_path, load_for_estimate

    settings = load_cli_settings(team=team, project=project, customer_id=customer, environment=environment,
                                 user_id=user)
    check_pipeline_path(pipeline)
    runs = read_inputs(inputs, input_values)
    if not runs:
        raise UsageError("no inputs: pass --inputs FILE (JSON or JSONL), --inputs - for stdin, or --input c.s=v")
    loaded, load_note = load_for_estimate(pipeline, allow_modules=list(allow_module or []),
                                          model_overrides={"*": model} if model else None)
    docs = read_documents(documents) if documents else None
    history = open_cli_ledger(settings, notice=False)  # read only: a missing ledger means no history yet
    result = forecast_batch(settings, history, loaded, runs, documents=docs, model=model)
    if load_note:
        result.notes.append(load_note)
    if result.unpriced_models and not allow_unpriced:
        raise UsageError(f"no price for {', '.join(result.unpriced_models)}: the estimate would leave those calls out; "
                         "check the model id (genops pricing list), add it to a pricing overlay, or pass "
                         "--allow-unpriced")
    if json_output:
        print_json(result.to_json())
        return
    _render(result, stdout_console())


def _pct(value: Decimal | None) -> str:
    return "-" if value is None else f"{value}%"


def _render(result: Any, console: Any) -> None:
    from rich.table import Table

    console.print(f"{result.pipeline}: {result.runs} run(s)" + (f" with {result.model}" if result.model else "")
                  + f", estimated {money(result.low)} low / {money(result.expected)} expected / "
                    f"{money(result.high)} worst case"
                  + (f" + unpriced: {', '.join(result.unpriced_models)}" if result.unpriced_models else ""),
                  markup=False)
    table = Table(title="Per component (all runs)", title_justify="left")
    for name in ("component", "model", "calls", "input tok", "output tok (worst)", "output basis", "expected basis",
                 "low", "expected", "high"):
        table.add_column(name, justify="left" if name in ("component", "model", "output basis", "expected basis")
                         else "right")
    for line in result.lines:
        table.add_row(line["component"], line["model"] or "-", str(line["calls"]), f"{line['input_tokens']:,}",
                      f"{line['output_tokens']:,}", line["output_basis"], line["expected_basis"],
                      *((money(line[k]) if line["priced"] else UNPRICED) for k in ("low", "expected", "high")))
    console.print(table)
    if result.budgets:
        budgets = Table(title="Budgets it would consume", title_justify="left")
        for name in ("scope", "period", "limit", "spent", "reserved", "remaining", "expected uses",
                     "worst case uses", "verdict"):
            budgets.add_column(name, justify="left" if name in ("scope", "period", "verdict") else "right")
        for b in result.budgets:
            verdict = ("would exceed (worst case)" if b.exceeds_worst else "fits")
            if b.exceeds_expected:
                verdict = "would exceed"
            budgets.add_row(b.scope, b.period, money(b.limit), money(b.spent), money(b.reserved), money(b.remaining),
                            _pct(b.expected_share), _pct(b.worst_share), verdict)
        console.print(budgets)
    else:
        console.print("no budget applies to these runs (genops budget set ...)", markup=False)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
