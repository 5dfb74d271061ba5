"""`genops config show`: the effective settings and where each came from (library: config_sources.py)."""

from __future__ import annotations

import typer

from genops_cli.cli.common import GLOBAL, check_output_format, handle_errors, print_json, stdout_console

app = typer.Typer(no_args_is_help=True)

SHOW_EPILOG = """[bold]Examples[/bold]
  genops config show
  genops config show --json
  GENOPS_TEAM=ml genops config show --config ./prod.genops.yml"""


@app.command("show", epilog=SHOW_EPILOG)
@handle_errors
def show(
    output_format: str = typer.Option("table", "--format", help="table | json."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout; the same as --format json."),
) -> None:
    """Effective settings (flags > GENOPS_* environment > .genops.yml > defaults), each with its source; secrets
    (webhook URLs, database passwords) masked."""
    from genops_cli.config_sources import explain_settings

    fmt = check_output_format(output_format, json_output, ("table", "json"))
    items = explain_settings(GLOBAL.config, GLOBAL.ledger)
    if fmt == "json":
        print_json({item.key: {"value": item.value, "source": item.source} for item in items})
        return
    from rich.table import Table

    table = Table(title="genops settings (flag > env > file > default)", title_justify="left")
    for name in ("setting", "value", "source"):
        table.add_column(name)
    for item in items:
        table.add_row(item.key, item.value if item.value is not None else "-", item.source)
    stdout_console().print(table)
