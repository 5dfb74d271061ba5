"""`genops run PIPELINE --inputs FILE`: run a serialized pipeline under governance and record it."""

from __future__ import annotations

import contextlib
import os
import sys
from decimal import Decimal
from typing import Any

import typer

from genops_cli.cli import common
from genops_cli.cli.common import (
    handle_errors,
    info,
    load_cli_settings,
    open_cli_ledger,
    print_json,
    report_stale_spool,
    warn,
)


def _parse_tags(tags: list[str] | None) -> dict[str, str]:
    from genops_cli.errors import UsageError

    out: dict[str, str] = {}
    for item in tags or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--tag {item!r}: use KEY=VALUE")
        out[key.strip()] = value
    return out


def _parse_money_flag(value: str | None, flag: str) -> Decimal | None:
    from genops_cli.config import parse_money

    return parse_money(value, flag) if value is not None else None


def _parse_ttl(value: str) -> Any:
    from genops_cli.analysis.periods import parse_duration

    return parse_duration(value, "--cache-ttl")


@handle_errors
def run(
    pipeline: str = typer.Argument(..., help="Haystack pipeline YAML (Pipeline.dumps() format)."),
    inputs: str = typer.Option(None, "--inputs", "-i", help="JSON object (one run), JSONL (a batch), or - for stdin."),
    input_values: list[str] = typer.Option(None, "--input", help="component.socket=value (repeatable)."),
    documents: str = typer.Option(None, "--documents", help="JSONL of Documents for the in-memory stores."),
    team: str = typer.Option(None, "--team", help="Attribution: team (genops.team)."),
    project: str = typer.Option(None, "--project", help="Attribution: project (genops.project)."),
    customer: str = typer.Option(None, "--customer", help="Attribution: customer / tenant id."),
    environment: str = typer.Option(None, "--environment", help="Attribution: environment, e.g. production."),
    feature: str = typer.Option(None, "--feature", help="Attribution: product feature (genops.feature)."),
    cost_center: str = typer.Option(None, "--cost-center", help="Attribution: cost center to charge."),
    user: str = typer.Option(None, "--user", help="Attribution: the end user the run is for (user_id; budgets "
                             "per user:ID)."),
    tag: list[str] = typer.Option(None, "--tag", help="KEY=VALUE tag on the run (repeatable)."),
    classification: str = typer.Option(None, "--classification",
                                       help="Data classification: public|internal|confidential|restricted."),
    policy: str = typer.Option(None, "--policy", help="advisory|enforcing|monitoring for this run."),
    max_cost: str = typer.Option(None, "--max-cost", help="Stop before the next LLM call once this USD is spent "
                                 "(a batch: the whole batch's total; no new line starts)."),
    simulate: bool = typer.Option(False, "--simulate", help="No provider calls: simulators with real prices."),
    allow_module: list[str] = typer.Option(None, "--allow-module", help="Trust another module for component types."),
    concurrency: int = typer.Option(1, "--concurrency", min=1, max=256, help="Batch: runs in flight."),
    resume: bool = typer.Option(False, "--resume", help="Batch: skip lines already recorded as ok."),
    retries: int = typer.Option(0, "--retries", min=0, max=20, help="Retry transient provider errors N times."),
    fail_fast: bool = typer.Option(False, "--fail-fast", help="Batch: stop at the first failed run."),
    cache: bool = typer.Option(False, "--cache", help="Reuse recorded results for identical inputs."),
    cache_ttl: str = typer.Option("1h", "--cache-ttl", help="With --cache: how old a cached result may be."),
    fail_on_agent_cap: bool = typer.Option(False, "--fail-on-agent-cap",
                                           help="A run whose agent hit max_agent_steps fails (exit 1)."),
    json_output: bool = typer.Option(False, "--json", help="JSON only on stdout (one object per run)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or summary on stderr."),
    log_format: str = typer.Option("text", "--log-format", help="text|json for stderr lines (cron)."),
) -> None:
    """Run PIPELINE under a tracked context, price every call and append the records to the ledger."""
    from genops_cli.cli.batch_view import ConsoleBatchView
    from genops_cli.config import CLASSIFICATIONS, normalize_policy
    from genops_cli.errors import UsageError
    from genops_cli.execution.batch import BatchOptions, run_batch
    from genops_cli.execution.inputs import read_inputs
    from genops_cli.execution.loading import check_pipeline_path
    from genops_cli.logging_setup import EventLog, configure_logging

    if classification is not None and classification not in CLASSIFICATIONS:
        raise UsageError(f"--classification {classification!r}: use one of {', '.join(CLASSIFICATIONS)}")
    if log_format not in ("text", "json"):
        raise UsageError(f"--log-format {log_format!r}: use text or json")
    ttl = _parse_ttl(cache_ttl) if cache else None
    policy_mode = normalize_policy(policy, "--policy") if policy else None
    settings = load_cli_settings(team=team, project=project, customer_id=customer, environment=environment,
                                 feature=feature, cost_center=cost_center, user_id=user, tags=_parse_tags(tag),
                                 data_classification=classification)
    configure_logging(settings.log_level, log_format)
    if str(settings.log_level).upper() not in ("DEBUG", "INFO"):
        # Third-party progress bars (tqdm in embedders, converters) only when verbose.
        os.environ.setdefault("TQDM_DISABLE", "1")
    if fail_on_agent_cap:
        settings.fail_on_agent_cap = True
    check_pipeline_path(pipeline)
    runs = read_inputs(inputs, input_values)
    if not runs:
        raise UsageError("no inputs: pass --inputs FILE (JSON or JSONL), --inputs - for stdin, or --input c.s=v")
    options = BatchOptions(
        simulate=simulate,
        allow_modules=list(allow_module or []),
        documents_path=documents,
        max_cost=_parse_money_flag(max_cost, "--max-cost"),
        policy_mode=policy_mode,
        concurrency=concurrency,
        resume=resume,
        retries=retries,
        fail_fast=fail_fast,
        cache=cache,
        json_output=json_output,
        quiet=quiet,
        log_format=log_format,
    )
    if ttl is not None:
        options.cache_ttl = ttl
    ledger = open_cli_ledger(settings)
    report_stale_spool(ledger, settings)
    real_stdout = sys.stdout

    def emit(obj: dict[str, Any]) -> None:
        print_json(obj, stream=real_stdout)

    # With --json, stdout carries JSON only: whatever the pipeline prints (a streaming callback such as
    # print_streaming_chunk, a tool's print) goes to stderr while it runs.
    events = EventLog(log_format, quiet)
    common.EVENTS = events  # the new-ledger notice follows --quiet and --log-format too
    with contextlib.redirect_stdout(sys.stderr) if json_output else contextlib.nullcontext():
        code = run_batch(settings, ledger, pipeline, runs, options, emit=emit, warn=warn, info=info,
                         events=events, view=ConsoleBatchView)
    raise typer.Exit(code)
