"""`genops report`: a tenant's bill for a period (table, JSON, CSV, Markdown, HTML or FOCUS), or one file per
tenant for a monthly cron (`--all-tenants --period YYYY-MM --out-dir DIR`)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import typer

from genops_cli.cli.common import (
    handle_errors,
    info,
    load_cli_settings,
    open_cli_reader_ledger,
    print_json,
    stdout_console,
    warn,
)
from genops_cli.errors import UsageError
from genops_cli.money import total_text

FORMATS = ("table", "json", "csv", "md", "html", "focus")
_SUFFIX = {"table": ".txt", "json": ".json", "csv": ".csv", "md": ".md", "html": ".html", "focus": ".focus.csv"}
EPILOG = """[bold]Examples[/bold]
  genops report --tenant acme-corp --period 2026-10 --out acme.html     (the format follows the extension)
  genops report --tenant acme-corp --since 7d --by feature --json
  genops report --all-tenants --period 2026-10 --format focus --out-dir bills/"""


def format_for_out(out: str | None) -> str | None:
    """The report format a file name asks for (`acme.html` -> html), or None for an unknown extension."""
    if not out:
        return None
    name = out.lower()
    if name.endswith(".focus.csv"):
        return "focus"
    for suffix, fmt in ((".html", "html"), (".htm", "html"), (".md", "md"), (".markdown", "md"), (".csv", "csv"),
                        (".json", "json"), (".txt", "table")):
        if name.endswith(suffix):
            return fmt
    return None


def _since_days(since: str) -> tuple[str, str]:
    """`--since 7d` as the billing days it covers: (first day, today), both inclusive."""
    from datetime import datetime, timezone

    from genops_cli.analysis.periods import parse_duration

    now = datetime.now(timezone.utc).replace(tzinfo=None)
    return (now - parse_duration(since, "--since")).date().isoformat(), now.date().isoformat()


def _render(bill: Any, fmt: str, focus_version: str, issuer: Any, width: int | None = None,
            perspective: str = "resale") -> str:
    import json

    from genops_cli.analysis import billing, focus

    if fmt == "json":
        return json.dumps(bill.to_json(), ensure_ascii=False, indent=2) + "\n"
    if fmt in ("md", "html"):
        return billing.render_bill(bill, fmt, issuer)
    buffer = io.StringIO()
    if fmt == "focus":
        focus.write_focus_csv(bill, buffer, focus_version, issuer.name, perspective)
    elif fmt == "csv":
        from genops_cli.safe_output import CsvDictWriter

        writer = CsvDictWriter(buffer, fieldnames=billing.LINE_CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(billing.bill_csv_rows(bill))
    else:
        _print_table(bill, buffer, width or 160)
    return buffer.getvalue()


def _print_table(bill: Any, file: Any, width: int | None, console: Any = None) -> None:
    from rich.table import Table

    from genops_cli.analysis.billing import usd
    from genops_cli.cli.common import console_class
    from genops_cli.money import quantity, total_text, unit_price_text

    console = console or console_class()(file=file, width=width, highlight=False, no_color=True, markup=False,
                                         emoji=False)
    data = bill.to_json()
    table = Table(title=f"{bill.tenant} - {bill.period.label} ({bill.currency})", title_justify="left")
    for name, justify in (("Description", "left"), ("Provider", "left"), ("Quantity", "right"), ("Unit", "left"),
                          ("Unit price", "right"), ("List unit price", "right"), ("Amount", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for line in bill.lines:
        amount = f"{quantity(line.tokens)} tokens" if line.tokens is not None else quantity(line.quantity)
        table.add_row(line.description, line.provider, amount, line.unit, unit_price_text(line.unit_price),
                      unit_price_text(line.list_unit_price) if line.list_unit_price is not None else "-",
                      usd(line.cost))
    table.add_section()
    table.add_row("Total", "", "", "", "", "", total_text(bill.total_cost, bill.unpriced_calls), style="bold")
    console.print(table)
    trend = data["trend"]
    peak = data["peak_day"]
    previous = (f"{usd(bill.previous_period_cost)} ({trend['direction']}"
                f"{' ' + trend['change_pct'] + '%' if trend['change_pct'] is not None else ''})"
                if bill.previous_period_runs else "no usage")
    console.print(f"runs {quantity(bill.runs)} | list price {usd(bill.list_cost)} | previous period {previous} | "
                  f"peak day {peak['date'] + ' ' + usd(peak['cost']) if peak else '-'}")
    if data["budget"]:
        b = data["budget"]
        console.print(f"budget {b['scope']}: limit {usd(b['limit'])}"
                      + (f", used {b['used_pct']}%, remaining {usd(b['remaining'])}" if "spent" in b else ""))
    for u in data["unpriced_calls"]:
        console.print(f"unpriced: {u['provider']}:{u['model']} ({quantity(u['calls'])} calls, not in the total)")


def _write(path: Path, text: str) -> None:
    from genops_cli.safe_output import write_output_file

    write_output_file(path, text)


@handle_errors
def report(
    tenant: str = typer.Option(None, "--tenant", "--customer", help="Tenant (customer id) to bill."),
    all_tenants: bool = typer.Option(False, "--all-tenants", help="One report per tenant (needs --out-dir)."),
    period: str = typer.Option(None, "--period", help="Calendar month YYYY-MM (default: the current month)."),
    from_: str = typer.Option(None, "--from", help="First day YYYY-MM-DD (with --to)."),
    to: str = typer.Option(None, "--to", help="Last day YYYY-MM-DD, inclusive (with --from)."),
    since: str = typer.Option(None, "--since", help="The days of a window ending now, e.g. 7d (today included)."),
    fmt: str = typer.Option(None, "--format", help="table|json|csv|md|html|focus (default: from --out's extension, "
                                                   "else table; json with --all-tenants)."),
    by: str = typer.Option(None, "--by", help="Add the tenant's cost grouped by feature, cost_center, user, team, "
                                              "pipeline, model, ... or tag:KEY (table and json)."),
    focus_version: str = typer.Option("1.4", "--focus-version", help="FOCUS version for --format focus: 1.2|1.3|1.4."),
    out: str = typer.Option(None, "--out", help="Write to this file instead of stdout."),
    out_dir: str = typer.Option(None, "--out-dir", help="Directory for --all-tenants (one file per tenant)."),
    issuer: str = typer.Option(None, "--issuer", help="Invoice issuer name (default billing.issuer.name in "
                                                       ".genops.yml, else genops)."),
    perspective: str = typer.Option("resale", "--focus-perspective",
                                    help="FOCUS parties: resale (the issuer resells to the tenant) or own (your "
                                         "own spend, billed by each model provider)."),
) -> None:
    """Bill a tenant for a period from the ledger: line items, totals, daily cost, trend and budget."""
    from genops_cli.analysis import billing, focus

    explicit = fmt
    fmt = (fmt or format_for_out(out) or ("json" if all_tenants else "table")).lower()
    if explicit and out and format_for_out(out) not in (None, fmt):
        warn(f"--out {out}: the extension does not match --format {fmt}; writing {fmt}")
    if by is not None:
        from genops_cli.analysis.analyze import dimension

        dimension(by)
        if all_tenants or fmt not in ("table", "json"):
            raise UsageError("--by adds a breakdown to one tenant's table or json report; drop --by or use "
                             "--format table|json")
    if since:
        if period or from_ or to:
            raise UsageError("--since cannot be combined with --period or --from/--to; use one of them")
        from_, to = _since_days(since)
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "focus":
        focus.focus_columns(focus_version)  # validates --focus-version
        if perspective not in focus.PERSPECTIVES:
            raise UsageError(f"--focus-perspective {perspective!r}: use one of {', '.join(focus.PERSPECTIVES)}")
    if bool(tenant) == all_tenants:
        raise UsageError("give either --tenant ID or --all-tenants (with --out-dir)")
    if all_tenants and not out_dir:
        raise UsageError("--all-tenants writes one file per tenant: add --out-dir DIR")
    if all_tenants and not (period or from_ or to):
        raise UsageError("--all-tenants needs the period to bill: add --period YYYY-MM")
    if out_dir and not all_tenants:
        raise UsageError("--out-dir is for --all-tenants; use --out FILE with --tenant")
    if out and all_tenants:
        raise UsageError("--out is for one tenant; --all-tenants writes into --out-dir")
    bill_period = billing.parse_billing_period(period, from_, to)
    settings = load_cli_settings()
    bill_issuer = billing.issuer_from_settings(settings, issuer)
    ledger = open_cli_reader_ledger(settings, complete=True)  # a bill never silently misses spooled runs

    if all_tenants:
        directory = Path(out_dir)
        if directory.exists() and not directory.is_dir():
            raise UsageError(f"--out-dir {out_dir}: not a directory")
        with ledger.read() as tx:
            bills = billing.tenant_bills(tx, bill_period, settings)
        paths = _tenant_paths(directory, [b.tenant for b in bills], bill_period.label, fmt)
        for bill in bills:
            path = paths[bill.tenant]
            if path.exists():  # a re-run for the same period: say so, never replace a file silently
                warn(f"replacing {path} (written by an earlier run)")
            _write(path, _render(bill, fmt, focus_version, bill_issuer, perspective=perspective))
            _warn_unpriced(bill)
        info(f"wrote {len(bills)} tenant report(s) for {bill_period.label} to {directory}")
        return

    with ledger.read() as tx:
        bill = billing.tenant_bill(tx, tenant, bill_period, settings)
    _warn_unpriced(bill)
    if bill.runs == 0:
        warn(f"tenant {tenant!r} has no runs in {bill_period.label} (is the customer id right?)")
    if out:
        _write(Path(out), _render(bill, fmt, focus_version, bill_issuer, perspective=perspective))
        flagged = "; unpriced calls flagged x_Unpriced=true" if fmt == "focus" and bill.unpriced_calls else ""
        info(f"wrote {fmt} report for {tenant} ({bill_period.label}, "
             f"{total_text(bill.total_cost, bill.unpriced_calls)}) to {out}{flagged}")
    elif fmt == "json":
        data = bill.to_json()
        if by is not None:
            data["breakdown"] = _breakdown(ledger, tenant, bill_period, by).to_json()
        print_json(data)
    elif fmt == "table":
        _print_table(bill, None, None, console=stdout_console())
        if by is not None:
            _print_breakdown(_breakdown(ledger, tenant, bill_period, by))
    else:
        from genops_cli.safe_output import terminal_text

        # on stdout (a terminal, often): control characters in tenant names or line items shown as escapes
        typer.echo(terminal_text(_render(bill, fmt, focus_version, bill_issuer, perspective=perspective)), nl=False)


def _breakdown(ledger: Any, tenant: str, bill_period: Any, by: str) -> Any:
    """The tenant's billed runs in the period grouped `by` one dimension (simulated runs excluded, as in the bill)."""
    from genops_cli.analysis.analyze import analyze_costs
    from genops_cli.analysis.filters import Filters

    return analyze_costs(ledger, bill_period.as_period(), Filters(customer=tenant), by=by)


def _print_breakdown(result: Any) -> None:
    from rich.table import Table

    from genops_cli.analysis.billing import usd

    table = Table(title=f"cost by {result.by}", title_justify="left")
    for name, justify in ((result.by, "left"), ("cost", "right"), ("share", "right"), ("runs", "right"),
                          ("calls", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for g in result.groups:
        table.add_row(g.key if g.key is not None else "(none)", usd(g.cost), f"{g.share * 100:.1f}%",
                      str(g.runs), str(g.calls))
    stdout_console().print(table)


def _tenant_paths(directory: Path, tenants: list[str], label: str, fmt: str) -> dict[str, Path]:
    """One distinct file per tenant: tenant ids are free text (`globex/eu`, `globex_eu`, `Acme`, `acme`)."""
    from genops_cli.safe_output import distinct_file_stems, tenant_file_stem

    period = tenant_file_stem(label)
    return {t: directory / f"{stem}-{period}{_SUFFIX[fmt]}" for t, stem in distinct_file_stems(tenants).items()}


def _warn_unpriced(bill: Any) -> None:
    for u in bill.unpriced:
        warn(f"{bill.tenant}: {u['calls']} call(s) to {u['provider']}:{u['model']} have no price and are not in the "
             "total; add the model to a pricing overlay and reprice")
