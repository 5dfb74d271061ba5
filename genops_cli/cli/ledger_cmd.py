"""`genops ledger info|drain|migrate|export|purge|hold`: look after the ledger itself."""

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
from genops_cli.cli.root import CommandGroup

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
    batch: int = typer.Option(2000, "--batch", min=1, max=1_000_000,
                              help="Runs per target transaction (bounds memory and how long other writers wait)."),
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
    table: str = typer.Option(..., "--table", help="runs | calls | audit_log | policy_events | budgets | alerts | "
                                                   "ledger_merges | purges | legal_holds"),
    fmt: str = typer.Option("csv", "--format", help="csv | jsonl | parquet (--json: jsonl)."),
    out: str = typer.Option(..., "--out", help="Output file."),
) -> None:
    """Write a ledger table to a file (money exact, timestamps naive UTC), from either backend."""
    from pathlib import Path

    from genops_cli.ledger.maintenance import EXPORT_FORMATS, EXPORT_TABLES, export_table

    if fmt == "json":  # the --json alias every command takes: JSON lines for a table export
        fmt = "jsonl"
    settings = load_cli_settings()
    if table in EXPORT_TABLES and fmt in EXPORT_FORMATS and Path(out).parent.exists():
        ledger = open_cli_reader_ledger(settings, complete=True)  # good arguments: now the ledger must exist
    else:
        ledger = open_cli_ledger(settings, notice=False)  # export_table names the bad argument first
    count = export_table(ledger, table, fmt, Path(out))
    info(f"wrote {count} {table} rows to {out}")


PURGE_EPILOG = """[bold]Examples[/bold]
  genops ledger purge --customer acme-corp --reason "erasure request 2026-118" --yes
  genops ledger purge --before 2025-01-01 --dry-run
  genops ledger purge --before 2025-01-01 --reason "retention: 24 months" --yes --json"""


@app.command("purge", epilog=PURGE_EPILOG)
@handle_errors
def purge_cmd(
    customer: str = typer.Option(None, "--customer", "--tenant", help="Remove every run of this customer (erasure)."),
    before: str = typer.Option(None, "--before", help="Remove runs started before this date (YYYY-MM-DD, UTC) or "
                                                      "ISO datetime (retention)."),
    reason: str = typer.Option(None, "--reason", help="Why (kept in the tombstone, e.g. the request id)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be removed; change nothing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do it without asking (cron, scripts)."),
    json_output: bool = typer.Option(False, "--json", help="JSON summary on stdout."),
) -> None:
    """Delete runs (with their calls and policy events) for an erasure request or a retention period. The audit
    chain stays verifiable: a tombstone records what was purged (a customer only as a hash). Runs under a legal
    hold are never purged (exit 3)."""
    from genops_cli.analysis.periods import parse_when
    from genops_cli.errors import UsageError
    from genops_cli.ledger.retention import PurgeCriteria, purge

    criteria = PurgeCriteria(customer=customer, before=parse_when(before, "--before") if before else None)
    ledger = open_cli_reader_ledger(load_cli_settings())
    preview = purge(ledger, criteria, reason=reason, dry_run=True)
    if dry_run or preview.runs == 0:
        _print_purge(preview, json_output)
        return
    if not yes:
        import sys

        if not sys.stdin.isatty():
            raise UsageError(f"purge would remove {preview.runs} run(s): pass --yes to confirm (or --dry-run)")
        if not typer.confirm(f"Remove {preview.runs} run(s) and {sum(preview.rows.values()) - preview.runs} "
                             "related rows from the ledger?", err=True):
            raise typer.Exit(1)
    _print_purge(purge(ledger, criteria, reason=reason), json_output)


def _print_purge(result: object, json_output: bool) -> None:
    doc = result.to_json()  # type: ignore[attr-defined]
    if json_output:
        print_json(doc)
        return
    verb = "would remove" if doc["dry_run"] else "removed"
    rows = ", ".join(f"{n} {t}" for t, n in doc["rows_removed"].items() if n)
    stdout_console().print(f"{verb} {doc['runs_removed']} run(s) ({rows or 'nothing else'})"
                           + (f"; tombstone {doc['purge_id']}" if doc["purge_id"] else ""), markup=False)


hold_app = typer.Typer(no_args_is_help=True, help="Legal holds: runs in a held scope are never purged.")
app.add_typer(hold_app, name="hold", cls=CommandGroup)


@hold_app.command("set")
@handle_errors
def hold_set_cmd(
    scope: str = typer.Argument(..., help="global, customer:ID, team:NAME, project:NAME, environment:NAME, "
                                          "pipeline:NAME or user:ID"),
    reason: str = typer.Option(..., "--reason", help="Case, request or regulation the hold is for."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Place a legal hold (audited with who placed it)."""
    from genops_cli.ledger.retention import place_hold

    hold = place_hold(open_cli_ledger(load_cli_settings()), scope, reason)
    if json_output:
        print_json(hold.to_json())
    else:
        stdout_console().print(f"hold {hold.hold_id} placed on {hold.scope}", markup=False)


@hold_app.command("release")
@handle_errors
def hold_release_cmd(
    hold: str = typer.Argument(..., help="Hold id (a unique prefix is enough) or scope."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Release a legal hold (audited, with the hold as it was)."""
    from genops_cli.ledger.retention import release_hold

    released = release_hold(open_cli_ledger(load_cli_settings()), hold)
    if json_output:
        print_json([h.to_json() for h in released])
    else:
        for h in released:
            stdout_console().print(f"hold {h.hold_id} on {h.scope} released", markup=False)


@hold_app.command("list")
@handle_errors
def hold_list_cmd(
    include_released: bool = typer.Option(False, "--all", help="Released holds too."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Legal holds in force (or all of them)."""
    from genops_cli.ledger.retention import list_holds

    holds = list_holds(open_cli_reader_ledger(load_cli_settings()), include_released)
    if json_output:
        print_json([h.to_json() for h in holds])
        return
    console = stdout_console()
    if not holds:
        console.print("no legal holds", markup=False)
    for h in holds:
        state = f"released {h.released_at:%Y-%m-%d}" if h.released_at else "in force"
        console.print(f"{h.hold_id}  {h.scope}  {state}  {h.reason}", markup=False)
