"""`genops`: the command-line entry point. Each command group lives in its own module; this file wires them.

Importing this module must stay cheap: `genops --help` runs on every cron call. It imports no command module:
each command is registered by name below and built on first use (cli/root.py); tests/test_cli_startup.py keeps
the top-level help equal to the one of the fully built tree and checks what it imports.
"""

from __future__ import annotations

import typer

from genops_cli.cli.root import GenopsGroup, LazyCommand

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

# In the order of the data flow: run, then the questions asked of the ledger; the command groups after the single
# commands, as typer lists them. (name, first paragraph of its help, module, command function or Typer app, epilog)
COMMANDS = tuple(LazyCommand(*entry) for entry in (
    ("run", "Run PIPELINE under a tracked context, price every call and append the records to the ledger.",
     "genops_cli.cli.run_cmd", "run"),
    ("estimate", "Low / expected / worst-case cost of the inputs, per component, and the budget share it would "
     "consume.", "genops_cli.cli.estimate_cmd", "estimate"),
    ("compare", "Run the same inputs once per model, record each run (tagged compare_id/compare_model), compare.",
     "genops_cli.cli.compare_cmd", "compare"),
    ("validate", "Check Python, packages, API keys, .genops.yml, the ledger and optionally a pipeline; suggest "
     "fixes.", "genops_cli.cli.validate_cmd", "validate"),
    ("analyze", "Cost, volume, latency and failures grouped by one dimension, computed from recorded runs.",
     "genops_cli.cli.analyze_cmd", "analyze"),
    ("recommend", "Cheaper models, prompt caching, max_tokens, retriever top_k, failing components, agent loops.",
     "genops_cli.cli.recommend_cmd", "recommend"),
    ("report", "Bill a tenant for a period from the ledger: line items, totals, daily cost, trend and budget.",
     "genops_cli.cli.report_cmd", "report", "EPILOG"),
    ("serve", "Serve /health, /ready, /metrics (Prometheus) and /v1/costs, /v1/runs (JSON) from the ledger, "
     "read-only.", "genops_cli.cli.serve_cmd", "serve"),
    ("runs", "Recorded runs: list (filters), show one as a tree, tail new ones.",
     "genops_cli.cli.runs_cmd", "app", "LIST_EPILOG"),
    ("compliance", "Compliance report and audit-chain verification.", "genops_cli.cli.compliance_cmd", "app"),
    ("budget", "Budgets per scope: set, list, status, remove.", "genops_cli.cli.budget_cmd", "app"),
    ("pricing", "Look up prices: show, list, check a pipeline.", "genops_cli.cli.pricing_cmd", "app"),
    ("ledger", "Ledger info, export, migrate, drain the spool.", "genops_cli.cli.ledger_cmd", "app"),
    ("config", "Effective settings and where each came from.", "genops_cli.cli.config_cmd", "app"),
))


class RootGroup(GenopsGroup):
    lazy_commands = COMMANDS


app = typer.Typer(
    name="genops",
    help="Governance runner and analyzer for Haystack pipelines: exact cost per component, budgets, billing, audit.",
    epilog=TOP_EPILOG,
    cls=RootGroup,
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
    from genops_cli.cli import common  # runs only with a command, whose module imported it already

    common.GLOBAL.ledger = ledger
    common.GLOBAL.config = config


def main() -> None:
    app()


if __name__ == "__main__":
    main()
