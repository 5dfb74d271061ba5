"""`genops`: the command-line entry point. Each command group lives in its own module; this file wires them.

Importing this module must stay cheap (no haystack, no duckdb): `genops --help` runs on every cron call.
"""

from __future__ import annotations

import typer

from genops_cli.cli import common

app = typer.Typer(
    name="genops",
    help="Governance runner and analyzer for Haystack pipelines: exact cost per component, budgets, billing, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from genops_cli.execution.runner import genops_version

        typer.echo(f"genops {genops_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    ledger: str = typer.Option(None, "--ledger", envvar="GENOPS_LEDGER",
                               help="Ledger path (DuckDB) or postgresql:// URL. Default ~/.genops/ledger.duckdb."),
    config: str = typer.Option(None, "--config", help="Path of .genops.yml (default: ./.genops.yml)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    common.GLOBAL.ledger = ledger
    common.GLOBAL.config = config


def _register() -> None:
    """Wire the command modules, in the order of the data flow: run, then the questions asked of the ledger."""
    from genops_cli.cli import (
        analyze_cmd,
        budget_cmd,
        compare_cmd,
        compliance_cmd,
        estimate_cmd,
        ledger_cmd,
        pricing_cmd,
        recommend_cmd,
        report_cmd,
        run_cmd,
        serve_cmd,
        validate_cmd,
    )

    app.command("run")(run_cmd.run)
    app.command("estimate")(estimate_cmd.estimate)
    app.command("compare")(compare_cmd.compare)
    app.command("validate")(validate_cmd.validate)
    app.command("analyze")(analyze_cmd.analyze)
    app.command("recommend")(recommend_cmd.recommend)
    app.command("report")(report_cmd.report)
    app.add_typer(compliance_cmd.app, name="compliance", help="Compliance report and audit-chain verification.")
    app.add_typer(budget_cmd.app, name="budget", help="Budgets per scope: set, list, status, remove.")
    app.add_typer(pricing_cmd.app, name="pricing", help="Look up prices: show, list, check a pipeline.")
    app.add_typer(ledger_cmd.app, name="ledger", help="Ledger info, export, migrate, drain the spool.")
    app.command("serve")(serve_cmd.serve)


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
