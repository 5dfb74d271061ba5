"""`genops`: the command-line entry point. Each command group lives in its own module; this file wires them.

Importing this module must stay cheap (no haystack, no duckdb): `genops --help` runs on every cron call.
"""

from __future__ import annotations

import typer

from genops_cli.cli import common

TOP_EPILOG = """[bold]Exit codes[/bold]
  0 success
  1 a pipeline run failed
  2 bad usage, config, pipeline file or input (also: no ledger at PATH, for a read command)
  3 blocked by a budget or compliance policy
  4 the ledger could not be written (the run stays in the spool; the next command ingests it)

[bold]Environment[/bold] (flags > environment > .genops.yml > defaults; see genops config show)
  GENOPS_LEDGER, GENOPS_CONFIG: ledger path or postgresql:// URL; .genops.yml path
  GENOPS_TEAM, GENOPS_PROJECT, GENOPS_ENVIRONMENT, GENOPS_CUSTOMER_ID, GENOPS_COST_CENTER, GENOPS_USER: attribution
  GENOPS_DAILY_BUDGET_LIMIT, GENOPS_MONTHLY_BUDGET_LIMIT, GENOPS_GOVERNANCE_POLICY, GENOPS_BUDGET_TIMEZONE: budgets
  GENOPS_WEBHOOK_URL, GENOPS_WEBHOOK_FORMAT (generic|slack|teams), GENOPS_SPOOL_ALERT_MINUTES: alerts
  GENOPS_PRICING_DIR, GENOPS_SPOOL_DIR, GENOPS_CAPTURE_CONTENT, GENOPS_LOG_LEVEL
  GENOPS_LOCK_TIMEOUT (seconds a command waits for the ledger lock, default 30), GENOPS_MAX_PIPELINE_BYTES,
  GENOPS_MAX_INPUTS_BYTES, GENOPS_MAX_DEPTH, GENOPS_MAX_YAML_NODES ...: input limits (README, "Hostile input")
  GENOPS_DEBUG=1 shows tracebacks; NO_COLOR turns colours off

[bold]Examples[/bold]
  genops run pipeline.yml --inputs q.json --team ml --customer acme-corp
  genops runs --since 24h --status error
  genops analyze --since 7d --by tag:env --json"""

app = typer.Typer(
    name="genops",
    help="Governance runner and analyzer for Haystack pipelines: exact cost per component, budgets, billing, audit.",
    epilog=TOP_EPILOG,
    cls=common.GenopsGroup,
    rich_markup_mode="rich",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from genops_cli.versions import genops_version

        typer.echo(f"genops {genops_version()}")
        raise typer.Exit()


@app.callback()
def main_options(
    ledger: str = typer.Option(None, "--ledger", envvar="GENOPS_LEDGER",
                               help="Ledger path (DuckDB) or postgresql:// URL. Default ~/.genops/ledger.duckdb."),
    config: str = typer.Option(None, "--config",
                               help="Path of .genops.yml (default: ./.genops.yml; env GENOPS_CONFIG)."),
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
        config_cmd,
        estimate_cmd,
        ledger_cmd,
        pricing_cmd,
        recommend_cmd,
        report_cmd,
        run_cmd,
        runs_cmd,
        serve_cmd,
        validate_cmd,
    )

    app.command("run")(run_cmd.run)
    app.command("estimate")(estimate_cmd.estimate)
    app.command("compare")(compare_cmd.compare)
    app.command("validate")(validate_cmd.validate)
    app.add_typer(runs_cmd.app, name="runs", epilog=runs_cmd.LIST_EPILOG,
                  help="Recorded runs: list (filters), show one as a tree, tail new ones.")
    app.command("analyze")(analyze_cmd.analyze)
    app.command("recommend")(recommend_cmd.recommend)
    app.command("report", epilog=report_cmd.EPILOG)(report_cmd.report)
    app.add_typer(compliance_cmd.app, name="compliance", help="Compliance report and audit-chain verification.")
    app.add_typer(budget_cmd.app, name="budget", help="Budgets per scope: set, list, status, remove.")
    app.add_typer(pricing_cmd.app, name="pricing", help="Look up prices: show, list, check a pipeline.")
    app.add_typer(ledger_cmd.app, name="ledger", help="Ledger info, export, migrate, drain the spool.")
    app.command("serve")(serve_cmd.serve)
    app.add_typer(config_cmd.app, name="config", help="Effective settings and where each came from.")


_register()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
