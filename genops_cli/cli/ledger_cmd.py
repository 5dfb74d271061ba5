"""`genops ledger info|drain|export`: look after the ledger itself."""

from __future__ import annotations

import typer

from genops_cli.cli.common import handle_errors, load_cli_settings, open_cli_ledger, print_json, stdout_console

app = typer.Typer(no_args_is_help=True)


@app.command("info")
@handle_errors
def info_cmd(json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Backend, location, size, schema version, row counts and pending spool files."""
    from genops_cli.ledger.maintenance import ledger_info

    settings = load_cli_settings()
    info = ledger_info(open_cli_ledger(settings))
    if json_output:
        print_json(info)
        return
    console = stdout_console()
    for key, value in info.items():
        console.print(f"{key:>16}: {value}")


@app.command("drain")
@handle_errors
def drain_cmd(json_output: bool = typer.Option(False, "--json")) -> None:
    """Ingest spooled runs left by crashed or ledger-less invocations (exactly once)."""
    from genops_cli.errors import EXIT_LEDGER
    from genops_cli.ledger.records import drain

    result = drain(open_cli_ledger(load_cli_settings()))
    out = {"inserted": len(result.inserted), "duplicates": len(result.duplicates),
           "still_spooled": len(result.spooled), "unreadable": result.unreadable, "error": result.error}
    if json_output:
        print_json(out)
    else:
        stdout_console().print(f"ingested {out['inserted']}, already recorded {out['duplicates']}, "
                               f"still spooled {out['still_spooled']}")
    if result.error:
        raise typer.Exit(EXIT_LEDGER)
