"""`genops budget set|list|status|remove`: budgets per scope and calendar period (library: policy/budgets.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import typer

from genops_cli.cli.common import (
    handle_errors,
    info,
    load_cli_settings,
    money,
    open_cli_reader_ledger,
    open_cli_writer_ledger,
    print_json,
    stdout_console,
)
from genops_cli.money import exact_money_text

app = typer.Typer(no_args_is_help=True)

SET_EPILOG = """[bold]Examples[/bold]
  genops budget set global --daily 50 --monthly 1000 --policy enforcing
  genops budget set team:ml --weekly 200 --webhook https://hooks.slack.com/services/... --webhook-format slack
  genops budget set user:alice --daily 5 --policy enforcing"""
LIST_EPILOG = """[bold]Examples[/bold]
  genops budget list
  genops budget list --json"""
STATUS_EPILOG = """[bold]Examples[/bold]
  genops budget status
  genops budget status team:ml --json"""
REMOVE_EPILOG = """[bold]Examples[/bold]
  genops budget remove team:ml
  genops budget remove user:alice --json"""


def _limit(value: str | None, flag: str) -> Decimal | str | None:
    from genops_cli.config import parse_money
    from genops_cli.policy.budgets import CLEAR

    if value is None:
        return None
    if value.strip().lower() in ("none", "off", "clear"):
        return CLEAR
    return parse_money(value, flag)


def _webhook(value: str | None) -> str | None:
    from genops_cli.policy.budgets import CLEAR

    if value is None:
        return None
    return CLEAR if value.strip().lower() in ("none", "off", "clear") else value


def _timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from genops_cli.errors import UsageError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise UsageError(f"--timezone {value!r}: unknown timezone; use an IANA name like Europe/Berlin") from None
    return value


@app.command("set", epilog=SET_EPILOG)
@handle_errors
def set_cmd(
    scope: str = typer.Argument(..., help="global, team:NAME, project:NAME, customer:ID, environment:NAME, "
                                          "pipeline:NAME or user:ID."),
    daily: str = typer.Option(None, "--daily", help="Daily limit in USD ('none' clears it)."),
    weekly: str = typer.Option(None, "--weekly", help="Weekly (ISO week, Monday) limit in USD."),
    monthly: str = typer.Option(None, "--monthly", help="Calendar-month limit in USD."),
    policy: str = typer.Option(None, "--policy", help="advisory | enforcing | monitoring (aliases enforced, strict)."),
    alert_at: str = typer.Option(None, "--alert-at", help="Alert thresholds in percent, e.g. 50,80,95,100."),
    timezone: str = typer.Option(None, "--timezone", help="IANA timezone the periods reset in (default: config)."),
    webhook: str = typer.Option(None, "--webhook", help="Post this budget's alerts to this URL (instead of "
                                "alerts.webhook_url); 'none' removes it."),
    webhook_format: str = typer.Option(None, "--webhook-format",
                                       help="Body of the webhook: generic | slack | teams | teams-messagecard."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Create or update the budget of SCOPE (only the given fields change)."""
    from genops_cli.config import normalize_policy, parse_thresholds
    from genops_cli.policy.budgets import set_budget
    from genops_cli.policy.scopes import parse_scope

    parse_scope(scope, "budget set SCOPE")
    settings = load_cli_settings()
    budget = set_budget(
        open_cli_writer_ledger(settings), settings, scope,
        daily=_limit(daily, "--daily"), weekly=_limit(weekly, "--weekly"), monthly=_limit(monthly, "--monthly"),
        policy=normalize_policy(policy, "--policy") if policy else None,
        alert_at=parse_thresholds(alert_at, "--alert-at") if alert_at else None,
        timezone=_timezone(timezone) if timezone else None,
        webhook_url=_webhook(webhook), webhook_format=webhook_format,
    )
    if json_output:
        print_json(budget.to_json())
    else:
        limits = ", ".join(f"{p} {exact_money_text(v)}" for p, v in budget.limits())
        info(f"budget {budget.scope}: {limits}; policy {budget.policy}; alerts at "
             f"{','.join(str(t) for t in budget.alert_at)}%; periods in {budget.timezone}")


@app.command("list", epilog=LIST_EPILOG)
@handle_errors
def list_cmd(json_output: bool = typer.Option(False, "--json", help="JSON on stdout.")) -> None:
    """Every budget: set with `budget set` (source cli) or in .genops.yml / GENOPS_* (source config)."""
    from genops_cli.policy.budgets import effective_budgets

    settings = load_cli_settings()
    with open_cli_reader_ledger(settings).read() as tx:
        budgets = effective_budgets(tx, settings)
    if json_output:
        print_json([b.to_json() for b in budgets])
        return
    from rich.table import Table

    table = Table(title="budgets")
    for col in ("scope", "daily", "weekly", "monthly", "policy", "alerts at", "webhook", "timezone", "source"):
        table.add_column(col, justify="right" if col in ("daily", "weekly", "monthly") else "left")
    for b in budgets:
        hook = b.to_json()["webhook"]  # host and format only: the URL carries the channel's token
        table.add_row(b.scope, *(exact_money_text(v) if v is not None else "-" for v in (b.daily, b.weekly, b.monthly)),
                      b.policy,
                      ",".join(str(t) for t in b.alert_at), f"{hook['format']} @ {hook['host']}" if hook else "-",
                      b.timezone, b.source)
    if not budgets:
        info("no budgets; set one with: genops budget set global --daily 50 --policy enforcing")
        return
    stdout_console().print(table)


def _pct(value: Any) -> str:
    return f"{value}%" if value is not None else "-"


@app.command("status", epilog=STATUS_EPILOG)
@handle_errors
def status_cmd(
    scope: str = typer.Argument(None, help="Only this scope (default: every budget)."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
) -> None:
    """Spent, reserved, limit, utilization and burn-rate projection to the period's end, and the alerts fired."""
    from genops_cli.policy.budgets import status

    settings = load_cli_settings()
    rows = status(open_cli_reader_ledger(settings), settings, scope)
    if json_output:
        print_json([r.to_json() for r in rows])
        return
    if not rows:
        info(f"no budget for {scope}" if scope else "no budgets; set one with: genops budget set global --daily 50")
        return
    from rich.table import Table

    table = Table(title="budget status")
    for col in ("scope", "period", "spent", "reserved", "limit", "used", "projected", "policy", "alerts fired"):
        table.add_column(col, justify="right" if col in ("spent", "reserved", "limit", "used", "projected")
                         else "left")
    for r in rows:
        fired = ",".join(f"{a['threshold']}%" for a in r.alerts_fired) or "-"
        projected = f"{money(r.projected)} ({_pct(r.projected_utilization)})" if r.projected is not None else "-"
        table.add_row(r.budget.scope, f"{r.period} {r.window.key}", money(r.spent), money(r.reserved),
                      exact_money_text(r.limit), _pct(r.utilization), projected, r.budget.policy, fired)
    stdout_console().print(table)


@app.command("remove", epilog=REMOVE_EPILOG)
@handle_errors
def remove_cmd(
    scope: str = typer.Argument(..., help="The scope whose (CLI-set) budget to delete."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout: {\"scope\": ..., \"removed\": true}."),
) -> None:
    """Delete a budget set with `budget set` (budgets from .genops.yml are removed by editing the file)."""
    from genops_cli.errors import UsageError
    from genops_cli.policy.budgets import remove_budget
    from genops_cli.policy.scopes import parse_scope

    parse_scope(scope, "budget remove SCOPE")
    settings = load_cli_settings()
    if not remove_budget(open_cli_writer_ledger(settings), settings, scope):
        raise UsageError(f"budget remove {scope}: no budget is set for this scope (see genops budget list)")
    if json_output:
        print_json({"scope": scope, "removed": True})
    else:
        info(f"budget {scope} removed")
