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
        from genops_cli.runner import genops_version

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
    import importlib

    from genops_cli.cli import ledger_cmd, run_cmd

    app.command("run")(run_cmd.run)
    app.add_typer(ledger_cmd.app, name="ledger", help="Ledger info, export, drain the spool.")
    app.command("report")(importlib.import_module("genops_cli.cli.report_cmd").report)
    app.add_typer(importlib.import_module("genops_cli.cli.compliance_cmd").app, name="compliance", help="Audit.")
    app.add_typer(importlib.import_module("genops_cli.cli.budget_cmd").app, name="budget", help="Budgets per scope.")
    app.command("analyze")(importlib.import_module("genops_cli.cli.analyze_cmd").analyze)
    app.command("recommend")(importlib.import_module("genops_cli.cli.recommend_cmd").recommend)
    app.command("estimate")(importlib.import_module("genops_cli.cli.estimate_cmd").estimate)
    app.command("compare")(importlib.import_module("genops_cli.cli.compare_cmd").compare)
    app.command("validate")(importlib.import_module("genops_cli.cli.validate_cmd").validate)
    try:
        pricing_cmd = importlib.import_module("genops_cli.cli.pricing_cmd")
        app.add_typer(pricing_cmd.app, name="pricing", help="Look up prices: show, list, check a pipeline.")
    except ImportError:
        pass


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
