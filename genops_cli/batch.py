"""Running one input or a JSONL batch of inputs through the engine, with the CLI's reporting contract.

    code = run_batch(settings, ledger, "pipeline.yml", read_inputs("batch.jsonl"), BatchOptions(), emit=print)

Exit code: 0 all ran, 1 some failed, 2 bad input, 3 blocked, 4 ledger not written (records kept in the spool).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.errors import EXIT_BLOCKED, EXIT_LEDGER, EXIT_OK, EXIT_RUN_FAILED
from genops_cli.inputs import RunInput, prepare_run_data
from genops_cli.ledger.store import Ledger
from genops_cli.models import quantize_money


@dataclass
class BatchOptions:
    simulate: bool = False
    allow_modules: list[str] = field(default_factory=list)
    documents_path: str | None = None
    max_cost: Decimal | None = None
    policy_mode: str | None = None
    concurrency: int = 1
    resume: bool = False
    retries: int = 0
    fail_fast: bool = False
    cache: bool = False
    cache_ttl: str = "1h"
    json_output: bool = False
    quiet: bool = False
    log_format: str = "text"
    model_overrides: dict[str, str] | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)


@dataclass
class BatchSummary:
    runs: int = 0
    ok: int = 0
    failed: int = 0
    blocked: int = 0
    skipped: int = 0
    total_cost: Decimal = Decimal(0)
    elapsed_s: float = 0.0
    ledger_error: str | None = None
    unpriced_models: set[str] = field(default_factory=set)

    def to_output(self) -> dict[str, Any]:
        return {
            "summary": True,
            "runs": self.runs,
            "ok": self.ok,
            "failed": self.failed,
            "blocked": self.blocked,
            "skipped": self.skipped,
            "total_cost": str(quantize_money(self.total_cost)),
            "currency": "USD",
            "elapsed_s": round(self.elapsed_s, 3),
            "unpriced_models": sorted(self.unpriced_models),
            "ledger_error": self.ledger_error,
        }

    @property
    def exit_code(self) -> int:
        if self.ledger_error:
            return EXIT_LEDGER
        if self.failed:
            return EXIT_RUN_FAILED
        if self.blocked:
            return EXIT_BLOCKED
        return EXIT_OK


def run_batch(
    settings: Settings,
    ledger: Ledger,
    pipeline_path: str,
    runs: list[RunInput],
    options: BatchOptions,
    emit: Callable[[dict[str, Any]], None],
    warn: Callable[[str], None] = lambda m: None,
    info: Callable[..., None] = lambda m, quiet=False: None,
) -> int:
    from genops_cli.cli.common import stdout_console
    from genops_cli.documents import read_documents
    from genops_cli.ledger.records import drain
    from genops_cli.loading import load_pipeline
    from genops_cli.runner import Engine, RunOptions, batch_run_id
    from genops_cli.views import render_run_table, run_to_output

    # Leftovers from a crashed or ledger-less earlier invocation go in first (exactly once).
    leftover = drain(ledger)
    if leftover.inserted:
        info(f"ingested {len(leftover.inserted)} spooled run(s) left by an earlier invocation", quiet=options.quiet)
    loaded = load_pipeline(pipeline_path, allow_modules=options.allow_modules, simulate=options.simulate,
                           simulation_output_tokens=settings.simulation_output_tokens,
                           model_overrides=options.model_overrides)
    documents = read_documents(options.documents_path) if options.documents_path else None
    prepared = [(run, prepare_run_data(loaded.pipeline, run)) for run in runs]
    engine = Engine(settings, ledger)
    is_batch = len(runs) > 1 or runs[0].line is not None
    summary = BatchSummary()
    started = time.monotonic()
    for index, (run_input, data) in enumerate(prepared):
        run_options = RunOptions(
            max_cost=options.max_cost,
            policy_mode=options.policy_mode,
            run_id=batch_run_id(loaded.profile.pipeline_hash, run_input.line, run_input.raw) if is_batch else None,
            batch_line=run_input.line,
            documents=documents if index == 0 else None,
            extra_tags=options.extra_tags,
        )
        outcome = engine.run(loaded, data, run_options)
        run = outcome.run
        summary.runs += 1
        summary.total_cost += run.total_cost
        summary.unpriced_models.update(run.unpriced_models)
        if run.status == "ok":
            summary.ok += 1
        elif run.status == "blocked":
            summary.blocked += 1
        else:
            summary.failed += 1
        if outcome.recorded is not None and not outcome.recorded.ok:
            summary.ledger_error = outcome.recorded.error
        if options.json_output:
            emit(run_to_output(run))
        elif not options.quiet:
            if is_batch:
                info(f"line {run_input.line}: {run.status} ${run.total_cost} run {run.run_id}"
                     + (f" ({run.error})" if run.error else ""))
            else:
                render_run_table(run, stdout_console())
        if run.unpriced_models:
            warn(f"unpriced model(s) {', '.join(run.unpriced_models)}: recorded with priced=false, cost not "
                 "included; add a price to pricing/*.yml or check the model name")
        if run.status == "error" and options.fail_fast and is_batch:
            break
    summary.elapsed_s = time.monotonic() - started
    if summary.ledger_error:
        warn(f"{summary.ledger_error}; records are kept in the spool and ingested by the next genops command")
    if is_batch:
        if options.json_output:
            emit(summary.to_output())
        elif not options.quiet:
            info(json.dumps(summary.to_output()) if options.log_format == "json" else
                 f"{summary.runs} runs: {summary.ok} ok, {summary.failed} failed, {summary.blocked} blocked; "
                 f"total ${quantize_money(summary.total_cost)}")
    return summary.exit_code
