"""`genops compliance report|verify`: what an auditor gets, and the tamper check of the audit chain."""

from __future__ import annotations

import re
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
)
from genops_cli.errors import UsageError

app = typer.Typer(no_args_is_help=True)
FORMATS = ("table", "json", "md", "html", "csv")


REPORT_EPILOG = """[bold]Examples[/bold]
  genops compliance report --since 30d
  genops compliance report --from 2026-10-01 --to 2026-10-31 --format html --out audit.html
  genops compliance report --json"""
VERIFY_EPILOG = """[bold]Examples[/bold]
  genops compliance verify
  genops compliance verify --checkpoints /mnt/audit/genops.checkpoints.jsonl
  genops compliance verify --ledger postgresql://genops@db/genops --json"""
CHECKPOINT_EPILOG = """[bold]Examples[/bold]
  genops compliance checkpoint --out /mnt/audit/genops.checkpoints.jsonl
  genops compliance checkpoint --webhook https://logs.example/ingest/genops --json
  */15 * * * * genops compliance checkpoint --out /mnt/audit/genops.checkpoints.jsonl   (cron)"""


@app.command("report", epilog=REPORT_EPILOG)
@handle_errors
def report_cmd(
    since: str = typer.Option(None, "--since", help="Window ending now: 24h, 7d, 2w (default 30d)."),
    from_: str = typer.Option(None, "--from", help="Start date YYYY-MM-DD or ISO datetime (UTC)."),
    to: str = typer.Option(None, "--to", help="End date (inclusive day) or ISO datetime (UTC); default now."),
    days: int = typer.Option(None, "--days", help="The last N days (the same as --since Nd)."),
    fmt: str = typer.Option("table", "--format", help="table|json|md|html|csv (csv: one row per operation)"),
    out: str = typer.Option(None, "--out", help="Write to this file instead of stdout."),
) -> None:
    """Operations, violations (reason codes), cost, providers, classifications, GenOps spec conformance, audit."""
    from genops_cli.analysis.compliance_report import compliance_report, render_compliance
    from genops_cli.analysis.periods import parse_period

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if days is not None and (since or from_ or to):
        raise UsageError("--days is the same as --since Nd; give one of --days, --since or --from/--to")
    period = parse_period(since, from_, to, default=None) if (since or from_ or to) else None
    settings = load_cli_settings()
    with open_cli_reader_ledger(settings).read() as tx:
        report = compliance_report(tx, days if days is not None else 30, settings, period=period,
                                   with_operations=fmt == "csv")
    if fmt in ("md", "html", "csv"):
        text = render_compliance(report, fmt)
    elif fmt == "json" and out:
        import json

        text = json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"
    else:
        text = None
    if out:
        if text is None:
            raise UsageError("--out needs --format json, md, html or csv")
        from genops_cli.safe_output import write_output_file

        write_output_file(Path(out), text)
        info(f"wrote compliance report to {out}")
    elif fmt == "json":
        print_json(report.to_json())
    elif text is not None:
        from genops_cli.safe_output import terminal_text

        typer.echo(terminal_text(text), nl=False)
    else:
        _print_table(report.to_json())


def _print_table(r: dict[str, Any]) -> None:
    from rich.table import Table

    from genops_cli.analysis.billing import usd

    console = stdout_console()
    console.print(f"Compliance report, {r['period']['label']} (simulated runs excluded)")
    console.print(f"operations {r['total_operations']}, compliant {r['compliant_operations']} "
                  f"({r['compliance_rate'] * 100:.1f}%), blocked {r['blocked_operations']}, violations "
                  f"{r['violations']['total']}, cost {usd(r['cost_summary']['total_cost'])}")
    spec = r["spec_conformance"]
    console.print(f"GenOps spec v0.1 conformance: {spec['conforming_runs']}/{spec['runs_checked']} runs "
                  f"({spec['share'] * 100:.1f}%)")
    if "audit" in r:
        a = r["audit"]
        console.print(f"audit chain: {'intact' if a['intact'] else 'BROKEN: ' + a['first_problem']} "
                      f"({a['entries']} entries)", markup=False)
    policies = r.get("rules_in_force") or []
    if policies:
        described = ", ".join(f"{(p['policy_hash'] or 'not recorded')[:12]} ({p['runs']} runs)" for p in policies)
        console.print(f"policies in force: {described}; overrides: {len(r.get('overrides') or [])}", markup=False)
    table = Table(title="Violations by reason code", title_justify="left")
    for col in ("Reason code", "Events", "Enforced", "Runs", "Rules"):
        table.add_column(col)
    for v in r["violations"]["by_reason_code"]:
        table.add_row(v["reason_code"], str(v["count"]), str(v["enforced"]), str(v["runs"]), ", ".join(v["rules"]))
    console.print(table)
    table = Table(title="Data classification", title_justify="left")
    for col in ("Classification", "Runs", "Compliant", "Blocked", "Cost"):
        table.add_column(col)
    for c in r["data_classification_breakdown"]:
        table.add_row(c["classification"], str(c["runs"]), str(c["compliant"]), str(c["blocked"]), usd(c["cost"]))
    console.print(table)
    table = Table(title="Provider usage", title_justify="left")
    for col in ("Provider", "Region", "Runs", "Calls", "Cost"):
        table.add_column(col)
    for p in r["provider_usage"]:
        table.add_row(p["provider"], p["region"] or "-", str(p["runs"]), str(p["calls"]), usd(p["cost"]))
    console.print(table)
    table = Table(title="GenOps spec attributes", title_justify="left")
    for col in ("Attribute", "Runs with it", "Share"):
        table.add_column(col)
    for a in spec["attributes"]:
        table.add_row(a["attribute"], str(a["present"]), f"{a['share'] * 100:.1f}%")
    console.print(table)


def _echo_err(line: str) -> None:
    """A line on stderr; subject ids (budget scopes, tenants) in it cannot drive the terminal."""
    from genops_cli.safe_output import terminal_text

    typer.echo(terminal_text(line), err=True)


@app.command("verify", epilog=VERIFY_EPILOG)
@handle_errors
def verify_cmd(
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout."),
    expect_head: str = typer.Option(None, "--expect-head", help="Fail unless the chain head hash is this value "
                                                                "(recorded earlier, outside the ledger)."),
    checkpoints: Path = typer.Option(None, "--checkpoints", envvar="GENOPS_CHECKPOINT_FILE",
                                     help="Checkpoint file written by `genops compliance checkpoint`: every "
                                          "checkpointed head must still be in the chain (detects deleted tails)."),
) -> None:
    """Recompute the audit hash chain from the stored rows; exit 1 naming the first altered, inserted or deleted
    run or row."""
    from genops_cli.ledger import audit
    from genops_cli.ledger.checkpoints import check_checkpoints, read_checkpoints

    if expect_head is not None and not re.fullmatch(r"[0-9a-f]{64}", expect_head.strip().lower()):
        raise UsageError(f"--expect-head {expect_head!r}: expected the 64 hex digits of a chain head, as "
                         "`genops compliance verify --json` prints in head_hash")
    settings = load_cli_settings()
    ledger = open_cli_reader_ledger(settings)
    with ledger.read() as tx:
        checked, problems = audit.verify(tx)
        seq, head = audit.chain_head(tx)
    anchored = expect_head is None or expect_head.strip().lower() == head
    tail = check_checkpoints(ledger, read_checkpoints(checkpoints)) if checkpoints else None
    ok = not problems and anchored and not (tail and tail.problems)
    if json_output:
        print_json({"ok": ok, "entries": checked, "head_seq": seq, "head_hash": head,
                    "expected_head": expect_head, "problems": [p.to_json() for p in problems],
                    "checkpoints": tail.to_json() if tail else None})
    else:
        for message in (tail.problems if tail else []):
            _echo_err(f"audit chain tail: {message}")
        if problems:
            first = problems[0]
            _echo_err(f"audit chain BROKEN: {first.message}")
            for p in problems[1:20]:
                _echo_err(f"  also: {p.message}")
            if len(problems) > 20:
                _echo_err(f"  ... {len(problems) - 20} more")
        if not anchored:
            _echo_err(f"audit chain head {head} (entry {seq}) is not the expected {expect_head}: the log was "
                      "rewritten or truncated since that head was recorded")
        if ok:
            against = f"; {tail.checked} checkpoint(s) matched" if tail else ""
            stdout_console().print(f"audit chain intact: {checked} entries verified; head {head} (entry {seq})"
                                   f"{against}", markup=False)
    if not ok:
        raise typer.Exit(1)


@app.command("checkpoint", epilog=CHECKPOINT_EPILOG)
@handle_errors
def checkpoint_cmd(
    out: Path = typer.Option(None, "--out", envvar="GENOPS_CHECKPOINT_FILE",
                             help="Append the checkpoint to this JSONL file (keep it outside the ledger's reach)."),
    webhook: str = typer.Option(None, "--webhook", help="POST the checkpoint as JSON to this URL."),
    json_output: bool = typer.Option(False, "--json", help="Print the checkpoint as JSON on stdout."),
    skip_verify: bool = typer.Option(False, "--no-verify", help="Checkpoint without verifying the chain first "
                                                               "(faster on very large ledgers)."),
) -> None:
    """Record the audit chain's head outside the ledger, so that later deletion of the newest records or a
    rewritten chain is detected by `compliance verify --checkpoints`. The chain is verified first: a broken chain
    is never checkpointed (exit 1)."""
    from genops_cli.ledger import audit
    from genops_cli.ledger.checkpoints import append_checkpoint, post_checkpoint, take_checkpoint

    if out is None and webhook is None and not json_output:
        raise UsageError("checkpoint: give --out FILE and/or --webhook URL (or --json to print it)")
    ledger = open_cli_reader_ledger(load_cli_settings())
    if not skip_verify:
        with ledger.read() as tx:
            _checked, problems = audit.verify(tx)
        if problems:
            _echo_err(f"not checkpointed: audit chain BROKEN: {problems[0].message}")
            raise typer.Exit(1)
    checkpoint = take_checkpoint(ledger)
    if out is not None:
        append_checkpoint(out, checkpoint)
        info(f"checkpoint: entry {checkpoint.seq} {checkpoint.entry_hash[:16]}... appended to {out}")
    if webhook is not None:
        status = post_checkpoint(webhook, checkpoint)
        info(f"checkpoint: entry {checkpoint.seq} posted (HTTP {status})")
    if json_output:
        print_json(checkpoint.to_json())
