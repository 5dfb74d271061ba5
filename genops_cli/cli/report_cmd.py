"""`genops report`: a tenant's bill for a period (table, JSON, CSV, Markdown, HTML or FOCUS), or one file per
tenant for a monthly cron (`--all-tenants --period YYYY-MM --out-dir DIR`)."""

from __future__ import annotations

import csv
import io
import os
import tempfile
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


def _render(bill: Any, fmt: str, focus_version: str, issuer: str, width: int | None = None) -> str:
    import json

    from genops_cli.analysis import billing, focus

    if fmt == "json":
        return json.dumps(bill.to_json(), ensure_ascii=False, indent=2) + "\n"
    if fmt in ("md", "html"):
        return billing.render_bill(bill, fmt, issuer)
    buffer = io.StringIO()
    if fmt == "focus":
        focus.write_focus_csv(bill, buffer, focus_version, issuer)
    elif fmt == "csv":
        writer = csv.DictWriter(buffer, fieldnames=billing.LINE_CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(billing.bill_csv_rows(bill))
    else:
        _print_table(bill, buffer, width or 160)
    return buffer.getvalue()


def _print_table(bill: Any, file: Any, width: int | None, console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    from genops_cli.analysis.billing import usd

    console = console or Console(file=file, width=width, highlight=False, no_color=True)
    data = bill.to_json()
    table = Table(title=f"{bill.tenant} - {bill.period.label} ({bill.currency})", title_justify="left")
    for name, justify in (("Description", "left"), ("Provider", "left"), ("Quantity", "right"), ("Unit", "left"),
                          ("Unit price", "right"), ("List unit price", "right"), ("Amount", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for line in bill.lines:
        quantity = f"{line.tokens} tok" if line.tokens is not None else format(line.quantity.normalize(), "f")
        table.add_row(line.description, line.provider, quantity, line.unit, usd(line.unit_price),
                      usd(line.list_unit_price) if line.list_unit_price is not None else "-", usd(line.cost))
    table.add_section()
    table.add_row("Total", "", "", "", "", "", usd(bill.total_cost), style="bold")
    console.print(table)
    trend = data["trend"]
    peak = data["peak_day"]
    console.print(f"runs {bill.runs} | list price {usd(bill.list_cost)} | previous period "
                  f"{usd(bill.previous_period_cost)} ({trend['direction']}"
                  f"{' ' + trend['change_pct'] + '%' if trend['change_pct'] is not None else ''}) | peak day "
                  f"{peak['date'] + ' ' + usd(peak['cost']) if peak else '-'}")
    if data["budget"]:
        b = data["budget"]
        console.print(f"budget {b['scope']}: limit {usd(b['limit'])}"
                      + (f", used {b['used_pct']}%, remaining {usd(b['remaining'])}" if "spent" in b else ""))
    for u in data["unpriced_calls"]:
        console.print(f"unpriced: {u['provider']}:{u['model']} ({u['calls']} calls billed at 0)")


def _write(path: Path, text: str) -> None:
    """Atomic write: a cron job never leaves a half-written invoice behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
    issuer: str = typer.Option("genops", "--issuer", help="Invoice issuer name (HTML header, FOCUS "
                                                          "InvoiceIssuerName)."),
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
    ledger = open_cli_reader_ledger(settings)

    if all_tenants:
        directory = Path(out_dir)
        if directory.exists() and not directory.is_dir():
            raise UsageError(f"--out-dir {out_dir}: not a directory")
        with ledger.read() as tx:
            tenants = billing.billed_tenants(tx, bill_period)
            bills = [billing.tenant_bill(tx, t, bill_period, settings) for t in tenants]
        for bill in bills:
            stem = f"{billing.safe_filename(bill.tenant)}-{billing.safe_filename(bill_period.label)}"
            path = directory / f"{stem}{_SUFFIX[fmt]}"
            _write(path, _render(bill, fmt, focus_version, issuer))
            _warn_unpriced(bill)
        info(f"wrote {len(bills)} tenant report(s) for {bill_period.label} to {directory}")
        return

    with ledger.read() as tx:
        bill = billing.tenant_bill(tx, tenant, bill_period, settings)
    _warn_unpriced(bill)
    if bill.runs == 0:
        warn(f"tenant {tenant!r} has no runs in {bill_period.label} (is the customer id right?)")
    if out:
        _write(Path(out), _render(bill, fmt, focus_version, issuer))
        info(f"wrote {fmt} report for {tenant} ({bill_period.label}, {billing.usd(bill.total_cost)}) to {out}")
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
        typer.echo(_render(bill, fmt, focus_version, issuer), nl=False)


def _breakdown(ledger: Any, tenant: str, bill_period: Any, by: str) -> Any:
    """The tenant's billed runs in the period grouped `by` one dimension (simulated runs excluded, as in the bill)."""
    from genops_cli.analysis.analyze import analyze_costs
    from genops_cli.analysis.filters import Filters

    return analyze_costs(ledger, bill_period.as_period(), Filters(customer=tenant), by=by)


def _print_breakdown(result: Any) -> None:
    from rich.markup import escape
    from rich.table import Table

    from genops_cli.analysis.billing import usd

    table = Table(title=f"cost by {result.by}", title_justify="left")
    for name, justify in ((result.by, "left"), ("cost", "right"), ("share", "right"), ("runs", "right"),
                          ("calls", "right")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for g in result.groups:
        table.add_row(escape(g.key) if g.key is not None else "(none)", usd(g.cost), f"{g.share * 100:.1f}%",
                      str(g.runs), str(g.calls))
    stdout_console().print(table)


def _warn_unpriced(bill: Any) -> None:
    for u in bill.unpriced:
        warn(f"{bill.tenant}: {u['calls']} call(s) to {u['provider']}:{u['model']} have no price and are billed at 0; "
             "add the model to a pricing overlay and reprice")
