"""`genops runs [list] | show RUN_ID | tail`: recorded runs one at a time (queries: analysis/runs.py)."""

from __future__ import annotations

import time
from typing import Any

import typer

from genops_cli.cli.common import (
    check_output_format,
    finite,
    handle_errors,
    load_cli_settings,
    money,
    open_cli_ledger,
    open_cli_reader_ledger,
    print_json,
    stdout_console,
    styled,
)

app = typer.Typer(no_args_is_help=False, invoke_without_command=True)

LIST_EPILOG = """[bold]Examples[/bold]
  genops runs --since 24h --status error
  genops runs --team ml --tag env=prod --limit 20 --json
  genops runs --customer acme-corp --from 2026-11-01 --to 2026-11-30 --format csv"""
SHOW_EPILOG = """[bold]Examples[/bold]
  genops runs show 01a2b3         (a unique prefix of the run id is enough)
  genops runs show 01a2b3c4-... --json"""
TAIL_EPILOG = """[bold]Examples[/bold]
  genops runs tail                (the last 10 runs, then new ones as they are recorded; Ctrl-C stops)
  genops runs tail --team ml --status error --json
  genops runs tail --once --backlog 5"""

LIST_FORMATS = ("table", "json", "csv")
STATUS_HELP = "Only runs with this status: ok | error | blocked."


def _filters(team: str | None, project: str | None, customer: str | None, pipeline: str | None,
             environment: str | None, feature: str | None, cost_center: str | None, user: str | None,
             tags: list[str] | None, real_only: bool) -> Any:
    from genops_cli.analysis.filters import Filters, parse_tag_filters

    return Filters(team=team, project=project, customer=customer, pipeline=pipeline, environment=environment,
                   feature=feature, cost_center=cost_center, user=user, tags=parse_tag_filters(tags),
                   include_simulated=not real_only)


# Filter options shared by `runs` and `runs tail`.
TEAM = typer.Option(None, "--team", help="Only runs of this team.")
PROJECT = typer.Option(None, "--project", help="Only runs of this project.")
CUSTOMER = typer.Option(None, "--customer", "--tenant", help="Only runs of this customer / tenant.")
PIPELINE = typer.Option(None, "--pipeline", help="Only runs of this pipeline (name as recorded).")
ENVIRONMENT = typer.Option(None, "--environment", help="Only runs in this environment.")
FEATURE = typer.Option(None, "--feature", help="Only runs of this feature.")
COST_CENTER = typer.Option(None, "--cost-center", help="Only runs of this cost center.")
USER = typer.Option(None, "--user", help="Only runs of this user.")
TAG = typer.Option(None, "--tag", help="Only runs with tag KEY=VALUE (repeatable: all must match).")
REAL_ONLY = typer.Option(False, "--real-only", help="Leave out simulated runs (listed by default, marked 'sim').")


@app.callback()
@handle_errors
def list_runs(
    ctx: typer.Context,
    since: str = typer.Option(None, "--since", help="Window ending now: 30m, 24h, 7d, 2w (default: all history)."),
    from_: str = typer.Option(None, "--from", help="Start date YYYY-MM-DD or ISO datetime (UTC)."),
    to: str = typer.Option(None, "--to", help="End date (inclusive day) or ISO datetime (UTC); default now."),
    team: str = TEAM,
    project: str = PROJECT,
    customer: str = CUSTOMER,
    pipeline: str = PIPELINE,
    environment: str = ENVIRONMENT,
    feature: str = FEATURE,
    cost_center: str = COST_CENTER,
    user: str = USER,
    tag: list[str] = TAG,
    status: str = typer.Option(None, "--status", help=STATUS_HELP),
    real_only: bool = REAL_ONLY,
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=1_000_000_000, help="At most N runs, newest first."),
    output_format: str = typer.Option("table", "--format", help="table | json | csv."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout; the same as --format json."),
) -> None:
    """List recorded runs, newest first, with cost, tokens, status and policy decision (filters combine)."""
    if ctx.invoked_subcommand is not None:
        return
    from genops_cli.analysis.periods import parse_period
    from genops_cli.analysis.runs import list_runs as query

    fmt = check_output_format(output_format, json_output, LIST_FORMATS)
    period = parse_period(since, from_, to, default=None)
    filters = _filters(team, project, customer, pipeline, environment, feature, cost_center, user, tag, real_only)
    runs = query(open_cli_reader_ledger(load_cli_settings()), period, filters, status=status, limit=limit)
    if fmt == "json":
        print_json([r.to_json() for r in runs])
    elif fmt == "csv":
        _csv(runs)
    else:
        _table(runs)


# `genops runs list ...` is the same as `genops runs ...` (people type both).
app.command("list", epilog=LIST_EPILOG)(list_runs)


def _csv(runs: list[Any]) -> None:
    import sys

    from genops_cli.safe_output import csv_writer

    columns = ["run_id", "started_at", "pipeline", "status", "total_cost", "currency", "simulated", "model_calls",
               "input_tokens", "output_tokens", "duration_ms", "team", "project", "customer_id", "feature",
               "cost_center", "user_id", "tags", "policy_result", "policy_reason_code", "error"]
    writer = csv_writer(sys.stdout)  # formula-looking cells neutralised
    writer.writerow(columns)
    for r in runs:
        row = r.to_json()
        row.update({k: v for k, v in r.attribution.items() if k != "tags"})
        row["tags"] = ";".join(f"{k}={v}" for k, v in sorted(r.attribution["tags"].items()))
        row["policy_result"], row["policy_reason_code"] = r.policy_result, r.policy_reason_code
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])


def _status_text(status: str) -> str:
    colour = {"ok": "green", "error": "red", "blocked": "yellow"}.get(status, "white")
    return f"[{colour}]{status}[/{colour}]"


def _who(attribution: dict[str, Any]) -> str:
    names = {"team": "team", "customer_id": "customer", "user_id": "user"}
    parts = [f"{label}={attribution[key]}" for key, label in names.items() if attribution.get(key)]
    parts += [f"{k}={v}" for k, v in sorted((attribution.get("tags") or {}).items())]
    return " ".join(parts)


def _table(runs: list[Any]) -> None:
    from rich.table import Table

    console = stdout_console()
    if not runs:
        console.print("no runs match (widen --since or drop a filter)", markup=False)
        return
    table = Table(title=f"{len(runs)} run(s), newest first", title_justify="left")
    for name, justify in (("run", "left"), ("started (UTC)", "left"), ("pipeline", "left"), ("status", "left"),
                          ("cost", "right"), ("tokens in/out", "right"), ("time", "right"), ("policy", "left"),
                          ("attribution", "left")):
        table.add_column(name, justify=justify, no_wrap=name != "attribution")  # type: ignore[arg-type]
    for r in runs:
        policy = r.policy_result or "-"
        if r.policy_reason_code:
            policy += f" {r.policy_reason_code}"
        duration = f"{r.duration_ms / 1000:.2f}s" if r.duration_ms is not None else "-"
        table.add_row(
            r.run_id[:13], r.started_at.strftime("%Y-%m-%d %H:%M"), r.pipeline,  # cells print literally
            styled(_status_text(r.status) + (" sim" if r.simulated else "")), money(r.total_cost),
            f"{r.input_tokens:,}/{r.output_tokens:,}", duration, policy, _who(r.attribution),
        )
    console.print(table)


def _complete_run_id(incomplete: str) -> list[str]:
    """Shell completion: the newest run ids starting with what was typed (GENOPS_LEDGER / .genops.yml ledger)."""
    try:
        from genops_cli.analysis.runs import list_runs as query

        ledger = open_cli_ledger(load_cli_settings(), notice=False)  # quietly: no spool catch-up, no notices
        if not ledger.exists():
            return []
        return [r.run_id for r in query(ledger, None, None, limit=200) if r.run_id.startswith(incomplete)][:20]
    except Exception:  # completion must never print an error into the user's shell
        return []


@app.command("show", epilog=SHOW_EPILOG)
@handle_errors
def show(
    run_id: str = typer.Argument(..., help="A run id, or a unique prefix of one (see genops runs).",
                                 autocompletion=_complete_run_id),
    output_format: str = typer.Option("table", "--format", help="table (a tree) | json."),
    json_output: bool = typer.Option(False, "--json", help="JSON on stdout; the same as --format json."),
) -> None:
    """One run as a tree (visits, agent steps, LLM and tool calls): tokens, cost, latency, errors, policy, prices."""
    from genops_cli.analysis.runs import run_detail

    fmt = check_output_format(output_format, json_output, ("table", "json"))
    detail = run_detail(open_cli_reader_ledger(load_cli_settings()), run_id)
    if fmt == "json":
        print_json(detail.to_json())
        return
    render_run_tree(detail, stdout_console())


def _tokens(node: Any) -> str:
    if node.model is None:
        return ""
    parts = [f"in {node.input_tokens:,}"]
    if node.cache_read_tokens:
        parts.append(f"cache read {node.cache_read_tokens:,}")
    if node.cache_write_tokens:
        parts.append(f"cache write {node.cache_write_tokens:,}")
    parts.append(f"out {node.output_tokens:,}")
    if node.reasoning_tokens:
        parts.append(f"reasoning {node.reasoning_tokens:,}")
    if node.usage_source and node.usage_source != "reported":
        parts.append(f"usage {node.usage_source}")
    return ", ".join(parts)


def _node_label(node: Any) -> str:
    from rich.markup import escape

    if node.span_kind == "tool":
        name = f"tool [bold]{escape(node.tool_name or node.component_name)}[/bold]"
    elif node.span_kind != "component":  # a call inside a component: an agent step's LLM call, an inner generator
        name = f"{escape(node.span_kind)} {escape(node.component_type)}"
    else:
        visit = f" (visit {node.visit})" if node.visit and node.visit > 1 else ""
        name = f"[bold]{escape(node.component_name)}[/bold] {escape(node.component_type)}{visit}"
    if node.model:
        name += f"  {escape(node.provider or '?')}:{escape(node.model)}"
    facts = [_tokens(node)]
    cost = node.subtree_cost
    if node.model and not node.priced:
        facts.append("[red]unpriced[/red]")
    elif cost or node.model:
        facts.append(money(cost))
    facts.append(f"{node.latency_ms:,.0f} ms")
    if node.status != "ok":
        facts.append(_status_text(node.status))
    facts.extend(_extra_facts(node))
    label = name + "  " + "  ".join(f for f in facts if f)
    if node.error:
        label += f"\n[red]error:[/red] {escape(node.error)}"
    return label


# Extra call columns (newer schemas) that the tree leaves to --json: ids and billing views, not what happened.
_TREE_HIDDEN = {"agent_instance", "contracted_cost", "max_tokens", "documents_retrieved"}


def _extra_facts(node: Any) -> list[str]:
    """Facts from call columns the query does not know by name (agent paths, step counts, exit reasons...)."""
    from rich.markup import escape

    extra = dict(node.extra)
    facts = []
    path = extra.pop("component_path", None)
    if path and path != node.component_name:
        facts.append(f"path {escape(str(path))}")
    steps, max_steps = extra.pop("agent_steps", None), extra.pop("agent_max_steps", None)
    if steps is not None:
        facts.append(f"{steps}{f'/{max_steps}' if max_steps is not None else ''} steps")
    reason = extra.pop("exit_reason", None)
    if reason:
        facts.append(f"exit {escape(str(reason))}")
    if node.extra.get("documents_retrieved") is not None:
        facts.append(f"{node.extra['documents_retrieved']} documents")
    facts += [f"{escape(k)} {escape(str(v))}" for k, v in extra.items() if k not in _TREE_HIDDEN]
    return facts


def _add_node(tree: Any, node: Any) -> None:
    branch = tree.add(styled(_node_label(node)))
    for step in node.steps:
        step_branch = branch.add(f"step {step.step}  {money(step.cost)}  {step.latency_ms:,.0f} ms")
        for call in step.calls:
            _add_node(step_branch, call)
    for child in node.children:
        _add_node(branch, child)


def render_run_tree(detail: Any, console: Any) -> None:
    """The `runs show` tree, then the policy decision and the price snapshots."""
    from rich.markup import escape
    from rich.tree import Tree

    s = detail.summary
    head = (f"[bold]run {s.run_id}[/bold]  {escape(s.pipeline)}  {_status_text(s.status)}"
            f"{'  (simulated)' if s.simulated else ''}  {money(s.total_cost)} {s.currency}")
    if s.duration_ms is not None:
        head += f"  {s.duration_ms:,.0f} ms"
    tree = Tree(styled(head))
    for node in detail.tree:
        _add_node(tree, node)
    console.print(tree)
    t = detail.totals()
    console.print(f"started {s.started_at.isoformat()}Z  attempt {s.attempt}"
                  + (f"  batch {s.batch_id} line {detail.batch_line}" if s.batch_id else ""), markup=False)
    console.print(f"tokens: in {t['input_tokens']:,} (cache read {t['cache_read_tokens']:,}, cache write "
                  f"{t['cache_write_tokens']:,}), out {t['output_tokens']:,} (reasoning {t['reasoning_tokens']:,})",
                  markup=False)
    who = ", ".join(f"{k} {v}" for k, v in s.attribution.items() if v and k != "tags")
    tags = ", ".join(f"{k}={v}" for k, v in sorted(s.attribution["tags"].items()))
    console.print(f"attribution: {who or '-'}" + (f"; tags {tags}" if tags else "")
                  + (f"; classification {detail.data_classification}" if detail.data_classification else ""),
                  markup=False)
    policy = f"policy: {s.policy_result or '-'}"
    if s.policy_reason_code:
        policy += f" {s.policy_reason_code}"
    policy += f", reserved {money(detail.reserved_cost)}"
    console.print(policy, markup=False)
    for event in detail.policy_events:
        if event.result != "ALLOWED" or event.message:
            console.print(f"  {event.rule}: {event.result} {event.reason_code or ''} {event.message or ''}".rstrip()
                          + (" (enforced)" if event.enforced else ""), markup=False)
    console.print(f"price snapshot: {', '.join(detail.price_snapshots) or '-'}", markup=False)
    if s.error:
        console.print(f"[red]error:[/red] {escape(s.error)}", markup=True)


@app.command("tail", epilog=TAIL_EPILOG)
@handle_errors
def tail(
    team: str = TEAM,
    project: str = PROJECT,
    customer: str = CUSTOMER,
    pipeline: str = PIPELINE,
    environment: str = ENVIRONMENT,
    feature: str = FEATURE,
    cost_center: str = COST_CENTER,
    user: str = USER,
    tag: list[str] = TAG,
    status: str = typer.Option(None, "--status", help=STATUS_HELP),
    real_only: bool = REAL_ONLY,
    backlog: int = typer.Option(10, "--backlog", min=0, max=1_000_000_000,
                                help="Show the last N recorded runs first (0: only new)."),
    interval: float = typer.Option(1.0, "--interval", min=0.05, max=3600,
                                  callback=finite, help="Seconds between two looks at the ledger."),
    once: bool = typer.Option(False, "--once", help="Print the backlog and exit (no following)."),
    limit: int = typer.Option(None, "--limit", "-n", min=1, max=1_000_000_000,
                              help="Exit after printing N runs (backlog included)."),
    output_format: str = typer.Option("table", "--format", help="table (one line per run) | json (JSON lines)."),
    json_output: bool = typer.Option(False, "--json", help="JSON lines on stdout; the same as --format json."),
) -> None:
    """Follow runs as they are recorded (the ledger is only read, every --interval seconds); Ctrl-C stops."""
    from datetime import datetime, timezone

    from genops_cli.analysis.runs import RUN_STATUSES, RunFollower
    from genops_cli.errors import UsageError

    fmt = check_output_format(output_format, json_output, ("table", "json"))
    if status is not None and status not in RUN_STATUSES:
        raise UsageError(f"--status {status!r}: use one of {', '.join(RUN_STATUSES)}")
    filters = _filters(team, project, customer, pipeline, environment, feature, cost_center, user, tag, real_only)
    follower = RunFollower(open_cli_reader_ledger(load_cli_settings()), filters, status)
    console = stdout_console()
    printed = 0
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    batch = follower.start(backlog, now)
    try:
        while True:
            for run in batch:
                _tail_line(run, fmt, console)
                printed += 1
                if limit is not None and printed >= limit:
                    return
            if once:
                return
            time.sleep(interval)
            batch = follower.poll()
    except KeyboardInterrupt:
        return
    except RuntimeError as exc:  # Ctrl-C inside a DuckDB query surfaces as "Query interrupted"
        if "interrupt" not in str(exc).lower():
            raise


def _tail_line(run: Any, fmt: str, console: Any) -> None:
    from rich.markup import escape

    if fmt == "json":
        print_json(run.to_json())
        return
    policy = f" {run.policy_result} {run.policy_reason_code}" if run.policy_reason_code else ""
    console.print(f"{run.started_at.strftime('%Y-%m-%d %H:%M:%S')}  {run.run_id}  {escape(run.pipeline)}  "
                  f"{_status_text(run.status)}{' sim' if run.simulated else ''}  {money(run.total_cost)}  "
                  f"{run.model_calls} calls  in {run.input_tokens:,} out {run.output_tokens:,}"
                  f"{escape(policy)}  {escape(_who(run.attribution))}".rstrip(), markup=True)
    if run.error:
        console.print(f"    [red]error:[/red] {escape(run.error)}", markup=True)
