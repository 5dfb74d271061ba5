"""`genops ledger info|drain|migrate|export`: look after the ledger itself."""

from __future__ import annotations

import typer

from genops_cli.cli.common import (
    GLOBAL,
    handle_errors,
    info,
    load_cli_settings,
    open_cli_ledger,
    open_cli_reader_ledger,
    print_json,
    stdout_console,
)

app = typer.Typer(no_args_is_help=True)


@app.command("info")
@handle_errors
def info_cmd(json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Backend, location, size, schema version, row counts and pending spool files."""
    from genops_cli.ledger.maintenance import ledger_info

    settings = load_cli_settings()
    info = ledger_info(open_cli_ledger(settings, notice=False))
    if json_output:
        print_json(info)
        return
    console = stdout_console()
    for key, value in info.items():
        console.print(f"{key:>16}: {value}")


@app.command("drain")
@handle_errors
def drain_cmd(json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
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


@app.command("migrate")
@handle_errors
def migrate_cmd(
    to: str = typer.Option(..., "--to", help="Target ledger: postgresql://user@host:5432/db[?schema=S] or a .duckdb "
                                             "path. It may already hold other machines' runs: they are merged."),
    source: str = typer.Option(None, "--from", help="Ledger to copy (path or URL; default: the configured ledger)."),
    batch: int = typer.Option(2000, "--batch", min=1, help="Runs per target transaction (bounds memory and how "
                                                         "long other writers wait)."),
    json_output: bool = typer.Option(False, "--json", help="JSON summary on stdout."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress on stderr."),
) -> None:
    """Merge a ledger into another, exactly: runs by id, the source's audit chain kept with its provenance,
    counts and money sums verified. Safe to re-run (a no-op) and to resume after an interruption.

    Examples:

      genops ledger migrate --to postgresql://genops@db:5432/genops

      genops ledger migrate --from /var/lib/genops/host-b.duckdb --to postgresql://genops@db/genops --json

      genops ledger migrate --from postgresql://genops@db/genops --to ./offline-copy.duckdb
    """
    from genops_cli.ledger.migrate import migrate_ledger
    from genops_cli.ledger.store import open_ledger, resolve_ledger_location

    settings = load_cli_settings()
    location = source or resolve_ledger_location(GLOBAL.ledger, settings.ledger)
    result = migrate_ledger(open_ledger(location), open_ledger(to), report=lambda m: info(m, quiet=quiet),
                            batch_runs=batch)
    out = result.to_dict()
    if json_output:
        print_json(out)
        return
    console = stdout_console()
    console.print(f"merged {result.source} -> {result.target}: {result.runs_copied} runs copied "
                  f"({result.copied} rows)", markup=False)
    for table in result.tables:
        sums = ", ".join(f"{c} {format(s, 'f')} = {format(t, 'f')}" for c, (s, t) in table.sums.items()
                         if table.source_rows)
        kept = f"; target kept for {', '.join(table.kept_target)}" if table.kept_target else ""
        console.print(f"  {table.table:<14} {table.source_rows:>8} rows, {table.copied:>8} copied, "
                      f"{table.source_rows - table.copied:>8} already there" + (f"; {sums}" if sums else "") + kept,
                      markup=False)
    console.print(f"  source chain {result.source_id[:12]} head {result.source_head[0]}: "
                  f"{result.audit_imported} entries imported; target chain: {result.audit_entries} entries verified"
                  + (f" ({result.audit_problems_source} problem(s) carried over from the source)"
                     if result.audit_problems_source else ""), markup=False)


@app.command("export")
@handle_errors
def export_cmd(
    table: str = typer.Option(..., "--table", help="runs | calls"),
    fmt: str = typer.Option("csv", "--format", help="csv | jsonl | parquet (--json: jsonl)."),
    out: str = typer.Option(..., "--out", help="Output file."),
) -> None:
    """Write a ledger table to a file (money exact, timestamps naive UTC), from either backend."""
    from pathlib import Path

    from genops_cli.ledger.maintenance import export_table

    if fmt == "json":  # the --json alias every command takes: JSON lines for a table export
        fmt = "jsonl"
    count = export_table(open_cli_reader_ledger(load_cli_settings()), table, fmt, Path(out))
    info(f"wrote {count} {table} rows to {out}")
