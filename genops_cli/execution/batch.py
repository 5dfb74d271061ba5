"""Running one input or a JSONL batch through the engine: N runs in flight, retries, resume, cache, batch budget.

    code = run_batch(settings, ledger, "pipeline.yml", read_inputs("batch.jsonl"),
                     BatchOptions(concurrency=16, retries=3, resume=True), emit=print_json)

How a batch runs:
- one loaded Pipeline is shared by worker threads (Haystack's `Pipeline.run` keeps its state per call, and the
  provider clients are thread-safe); it is warmed up once before the workers start. Each worker thread opens its
  own run capture (a ContextVar), so the tracer never mixes two runs' calls.
- each line has a deterministic id from the pipeline hash, the line's content and its position
  (`runner.batch_run_id`). Attempt n of a line is recorded as its own run: attempt 1 under the line id, later
  attempts under ids derived from it (`attempt_run_id`). Attempt numbers continue across invocations, so running
  the same file again records new runs instead of colliding with old ones; `--resume` skips lines that already
  have an ok run (a cache hit counts).
- a finished attempt is handed to the recorder by its worker (`ledger.recorder`: its spool file, no fsync). With
  lines running concurrently the recorder's ingester process puts them in the ledger as the batch goes (the
  ledger work stays off the GIL the workers share); otherwise the main thread flushes the recorder every
  FLUSH_INTERVAL_S. Either way the batch ends with a flush, and the finished runs go in groups of up to 200, one
  writer lock hold, one connection and ONE transaction per group (`records.insert_runs`: a few multi-row
  statements; each run still all-or-nothing and idempotent by run id).
- transient provider errors (429, 5xx, timeouts, connection resets) are retried with exponential backoff and
  jitter, honouring Retry-After; with `retries > 0` the SDKs' own retries are switched off (`max_retries: 0`) so
  that every provider attempt is a genops attempt, visible and recorded.
- `--max-cost` over a batch is a shared budget: once the batch has spent it, no new line starts and runs in flight
  stop before their next LLM call (status blocked, exit 3).

Exit code: 0 all ran, 1 some failed, 3 blocked (policy or batch budget), 4 ledger not written (records kept in the
spool and ingested by the next genops command).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from genops_cli.config import Settings
from genops_cli.errors import EXIT_BLOCKED, EXIT_LEDGER, EXIT_OK, EXIT_RUN_FAILED, LedgerError
from genops_cli.execution.inputs import RunInput
from genops_cli.ledger.recorder import Recorder
from genops_cli.ledger.records import RecordResult, rekeyed_run_id
from genops_cli.ledger.store import Ledger
from genops_cli.logging_setup import EventLog
from genops_cli.models import RunRecord, quantize_money
from genops_cli.money import money_json, money_text


@dataclass
class BatchOptions:
    simulate: bool = False
    allow_modules: list[str] = field(default_factory=list)
    documents_path: str | None = None
    max_cost: Decimal | None = None  # one run: per-run cap; a batch: the whole batch's budget
    policy_mode: str | None = None
    concurrency: int = 1
    resume: bool = False
    retries: int = 0
    fail_fast: bool = False
    cache: bool = False
    cache_ttl: timedelta = timedelta(hours=1)
    json_output: bool = False
    quiet: bool = False
    log_format: str = "text"
    model_overrides: dict[str, str] | None = None
    extra_tags: dict[str, str] = field(default_factory=dict)
    retry_base_delay: float = 0.5
    retry_max_delay: float = 30.0
    progress_interval: float = 10.0  # seconds between plain progress lines (not on a TTY)


@dataclass
class BatchSummary:
    runs: int = 0  # lines that ran (or were answered from the cache), final attempt counted
    ok: int = 0
    failed: int = 0
    blocked: int = 0
    skipped: int = 0  # --resume: already recorded as ok
    not_started: int = 0  # stopped by --fail-fast or the batch budget before they began
    attempts: int = 0  # run records written, retries included
    cache_hits: int = 0
    saved_cost: Decimal = Decimal(0)
    total_cost: Decimal = Decimal(0)  # every attempt's spend
    elapsed_s: float = 0.0
    stopped: str | None = None  # fail_fast | max_cost
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
            "not_started": self.not_started,
            "attempts": self.attempts,
            "cache_hits": self.cache_hits,
            "saved_cost": money_json(self.saved_cost),
            "total_cost": money_json(self.total_cost),
            "currency": "USD",
            "elapsed_s": round(self.elapsed_s, 3),
            "stopped": self.stopped,
            "unpriced_models": sorted(self.unpriced_models),
            "ledger_error": self.ledger_error,
        }

    @property
    def exit_code(self) -> int:
        if self.ledger_error:
            return EXIT_LEDGER
        if self.failed:
            return EXIT_RUN_FAILED
        if self.blocked or self.stopped == "max_cost":
            return EXIT_BLOCKED
        return EXIT_OK


def attempt_run_id(line_id: str, attempt: int) -> str:
    """Run id of attempt `attempt` of a batch line: the line's own id first, then ids derived from it."""
    if attempt <= 1:
        return line_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"genops:{line_id}:attempt:{attempt}"))


@dataclass
class LineJob:
    index: int
    run_input: RunInput
    data: dict[str, Any]
    line_id: str | None = None  # None for a single (non-batch) run
    next_attempt: int = 1
    done: bool = False  # an ok run is already recorded


@dataclass
class LineResult:
    job: LineJob
    run: RunRecord | None = None  # the final attempt; None when the line never started
    attempts: list[RunRecord] = field(default_factory=list)


def line_history(ledger: Ledger, jobs: list[LineJob], pipeline_hash: str, simulated: bool) -> None:
    """Set each job's next attempt number and whether an ok run is recorded for it, from the ledger."""
    lines = {job.run_input.line: job for job in jobs if job.line_id and job.run_input.line is not None}
    if not lines:
        return
    with ledger.read() as tx:
        rows = tx.query(
            "SELECT run_id, attempt, status, started_at, batch_line FROM runs "
            "WHERE pipeline_hash = ? AND simulated = ? AND batch_line BETWEEN ? AND ?",
            [pipeline_hash, simulated, min(lines), max(lines)],
        )
    for run_id, attempt, status, started_at, line in rows:
        job = lines.get(line)
        if job is None or job.line_id is None:
            continue
        expected = attempt_run_id(job.line_id, attempt)
        if run_id != expected and run_id != rekeyed_run_id(expected, started_at):
            continue  # another file's line at this position
        job.next_attempt = max(job.next_attempt, attempt + 1)
        if status == "ok":
            job.done = True


#: While a batch runs, the main thread ingests the runs finished so far this often (the ledger follows the batch).
FLUSH_INTERVAL_S = 0.5


class _Recording:
    """The batch's view of the recorder: results of the flushes made while it runs, merged."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        self.result = RecordResult()
        self._last = time.monotonic()

    def flush_if_due(self) -> None:
        # An ingester process ingests on its own (every INGEST_INTERVAL_S): only inline ingestion is driven here.
        if self.recorder.mode == "inline" and time.monotonic() - self._last >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self) -> RecordResult:
        step = self.recorder.flush()
        self._last = time.monotonic()
        self.result.inserted += step.inserted
        self.result.duplicates += step.duplicates
        self.result.unreadable += step.unreadable
        self.result.spooled = step.spooled
        self.result.error = step.error  # a later flush that got through clears an earlier failure
        return self.result


class BatchView:
    """What a batch shows while it runs, on stderr through `events` (plain periodic progress lines, or JSON events)
    and on stdout through `emit` (one JSON object per run with --json). `genops run` uses the CLI's subclass
    (`cli/batch_view.py`: a progress bar and the run table on a terminal); library callers get this one."""

    def __init__(self, total: int, is_batch: bool, options: BatchOptions, events: EventLog,
                 emit: Callable[[dict[str, Any]], None]) -> None:
        self.total = total
        self.is_batch = is_batch
        self.options = options
        self.events = events
        self.emit = emit
        self.enabled = is_batch and not options.quiet and total > 0
        self.started = time.monotonic()
        self.last = self.started

    def line(self, text: str, fields: dict[str, Any], ok: bool) -> None:
        """A finished batch line: ok lines only as JSON log events, the others as warnings."""
        if not ok:
            self.events.warning("run.finished", text, **fields)
        elif self.options.log_format == "json":
            self.events.info("run.finished", text, **fields)

    def render_run(self, run: RunRecord) -> None:
        """A single run's human summary (the CLI draws a table; library callers read the returned records)."""

    def progress(self, done: int, summary: BatchSummary, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < self.options.progress_interval:
            return
        self.last = now
        elapsed = now - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else None
        self.events.info(
            "batch.progress",
            f"progress: {done}/{self.total} lines ({summary.ok} ok, {summary.failed} failed, {summary.blocked} "
            f"blocked), {money_text(summary.total_cost)} spent, {rate:.2f} runs/s"
            + (f", ETA {_duration(eta)}" if eta is not None else ""),
            done=done, total=self.total, ok=summary.ok, failed=summary.failed, blocked=summary.blocked,
            total_cost=money_json(summary.total_cost), runs_per_s=round(rate, 3),
            eta_s=round(eta, 1) if eta is not None else None,
        )

    def close(self) -> None:
        """The batch is over (a progress bar stops here)."""


#: Builds the view once the number of lines is known: `view(total, is_batch, options, events, emit)`.
ViewFactory = Callable[[int, bool, "BatchOptions", EventLog, Callable[[dict[str, Any]], None]], BatchView]


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class _BatchRunner:
    """The workers' side: cache lookup, attempts with retries, spooling each attempt."""

    def __init__(self, engine: Any, loaded: Any, options: BatchOptions, recorder: Recorder, events: EventLog,
                 is_batch: bool, batch_id: str | None, documents: list[Any] | None) -> None:
        from genops_cli.execution.cache import ResultCache
        from genops_cli.execution.retry import RetryPolicy
        from genops_cli.policy.admission import SharedBudget

        self.engine = engine
        self.loaded = loaded
        self.options = options
        self.recorder = recorder
        self.events = events
        self.is_batch = is_batch
        self.batch_id = batch_id
        self.documents = documents
        self.stop = threading.Event()
        self.budget = SharedBudget(options.max_cost) if is_batch and options.max_cost is not None else None
        self.policy = RetryPolicy(options.retries, options.retry_base_delay, options.retry_max_delay)
        self.cache = ResultCache.for_ledger(engine.ledger, options.cache_ttl) if options.cache else None

    def _stores_empty(self) -> bool:
        from genops_cli.execution.documents import in_memory_stores

        return any(store.count_documents() == 0 for _name, store, _emb in in_memory_stores(self.loaded))

    def process(self, job: LineJob) -> LineResult:
        result = LineResult(job)
        if self.stop.is_set() or (self.budget is not None and self.budget.exhausted):
            return result
        cache_key = None
        if self.cache is not None:
            from genops_cli.execution.cache import cache_key as make_key

            cache_key = make_key(self.loaded.profile.pipeline_hash, job.run_input.data, self.loaded.simulated)
            entry = self.cache.get(cache_key)
            if entry is not None:
                run = self._cache_hit(job, entry)
                self.recorder.submit(run)
                result.run = run
                result.attempts.append(run)
                return result
        for attempt_index in range(self.policy.retries + 1):
            run, exc = self._attempt(job)
            result.attempts.append(run)
            result.run = run
            info = None
            if exc is not None and run.status == "error":
                from genops_cli.execution.retry import classify

                info = classify(exc)
                if not info.transient:
                    self._add_hint(run, exc, info)
            retry = (info is not None and info.transient and attempt_index < self.policy.retries
                     and not self.stop.is_set() and not (self.budget is not None and self.budget.exhausted))
            self.recorder.submit(run)  # spooled now; the main thread's flushes put it in the ledger
            if not retry:
                break
            from genops_cli.execution.retry import backoff_delay

            assert info is not None
            delay = backoff_delay(attempt_index + 1, info.retry_after, self.policy)
            where = f"line {job.run_input.line}" if self.is_batch else "run"
            self.events.warning(
                "run.retry",
                f"{where}: attempt {run.attempt} failed ({info.kind}"
                + (f" {info.status}" if info.status else "") + f"); retrying in {delay:.2f}s",
                run_id=run.run_id, line=job.run_input.line, attempt=run.attempt, status=info.status,
                kind=info.kind, retry_after=info.retry_after, delay_s=round(delay, 3), error=run.error,
            )
            job.next_attempt += 1
            if self.stop.wait(delay):
                break
        if result.run is not None and result.run.status == "error" and self.options.fail_fast and self.is_batch:
            self.stop.set()  # here, not in the main thread, so this worker does not start another line first
        if (self.cache is not None and cache_key is not None and result.run is not None
                and result.run.status == "ok"):
            try:
                self.cache.put(cache_key, result.run)
            except OSError as exc:
                self.events.warning("cache.write_failed", f"cache: cannot write entry ({exc})")
        return result

    def _attempt(self, job: LineJob) -> tuple[RunRecord, BaseException | None]:
        from genops_cli.execution.runner import RunOptions

        documents = None
        if self.documents is not None and job.index == 0 and self._stores_empty():
            documents = self.documents
        options = RunOptions(
            max_cost=None if self.is_batch else self.options.max_cost,
            policy_mode=self.options.policy_mode,
            run_id=attempt_run_id(job.line_id, job.next_attempt) if job.line_id else None,
            batch_id=self.batch_id,
            batch_line=job.run_input.line,
            attempt=job.next_attempt,
            documents=documents,
            extra_tags=self.options.extra_tags,
            record=False,  # submitted to the recorder by process(), flushed by the main thread
            budget=self.budget,
        )
        outcome = self.engine.run(self.loaded, job.data, options)
        return outcome.run, outcome.exception

    def _add_hint(self, run: RunRecord, exc: BaseException, info: Any) -> None:
        from genops_cli.execution.retry import failing_component, fix_hint

        component = failing_component(exc)
        profile = self.loaded.profile.components.get(component) if component else None
        model = None
        if profile is not None:
            model = profile.model or (profile.inner.model if profile.inner else None)
        hint = fix_hint(info, sorted(self.loaded.secret_env_vars), model)
        if hint and run.error and hint not in run.error:
            run.error = f"{run.error}; {hint}"

    def _cache_hit(self, job: LineJob, entry: Any) -> RunRecord:
        from genops_cli.execution.runner import RunOptions
        from genops_cli.models import utcnow

        options = RunOptions(run_id=attempt_run_id(job.line_id, job.next_attempt) if job.line_id else None,
                             batch_id=self.batch_id, batch_line=job.run_input.line, attempt=job.next_attempt,
                             extra_tags=self.options.extra_tags)
        run = self.engine.new_record(self.loaded, options)
        run.cache_hit = True
        run.saved_cost = quantize_money(entry.total_cost)
        run.outputs = entry.outputs
        run.policy.message = f"cache hit: outputs of run {entry.run_id}"
        run.ended_at = utcnow()
        return run


def _run_warnings(run: Any, simulated: bool) -> list[tuple[str, str]]:
    """Warnings a run's records call for: usage genops had to estimate (named component and fix), agents that
    stopped at max_agent_steps."""
    from genops_cli.tracking.agents import cap_message, capped_agents
    from genops_cli.tracking.usage import estimated_usage_warnings

    out = [] if simulated else [("usage.estimated", w) for w in estimated_usage_warnings(run.calls)]
    capped = capped_agents(run.calls)
    if capped:
        out.append(("agent.max_steps", cap_message(capped)))
    return out


def run_batch(
    settings: Settings,
    ledger: Ledger,
    pipeline_path: str,
    runs: list[RunInput],
    options: BatchOptions,
    emit: Callable[[dict[str, Any]], None],
    warn: Callable[[str], None] | None = None,
    info: Callable[..., None] | None = None,
    events: EventLog | None = None,
    view: ViewFactory = BatchView,
) -> int:
    """Run every input (a batch when there are several or they come from JSONL) and report; returns the exit
    code. `warn`/`info` are kept for callers of the single-run API; stderr lines go through `events`, what the
    user sees while it runs through `view` (the CLI passes its console view)."""
    from genops_cli.execution.runner import Engine, new_run_id

    events = events or EventLog(options.log_format, options.quiet)
    _ingest_leftovers(ledger, options, events)
    loaded, documents, jobs, summary, is_batch = _prepare(settings, ledger, pipeline_path, runs, options, events)
    # Concurrent lines: ledger ingestion (transactions, hooks) runs in the ingester process on the other core,
    # not on this process's GIL, which the worker threads need; a single line or sequential lines ingest inline.
    separate = is_batch and options.concurrency > 1 and len(jobs) > 1
    engine = Engine(settings, ledger, record_mode="process" if separate else "inline")
    engine.recorder.ensure_writable()  # nothing spends unless it can be recorded (exit 4, zero requests)
    recording = _Recording(engine.recorder)
    runner = _BatchRunner(engine, loaded, options, engine.recorder, events, is_batch,
                          new_run_id() if is_batch else None, documents)
    shown = view(len(jobs), is_batch, options, events, emit)
    tally = _Tally(summary, runner, shown, recording, loaded.simulated)
    started = time.monotonic()
    try:
        _execute(runner, jobs, documents is not None, options, tally)
    finally:
        shown.close()
        recorded = recording.flush()
        if engine.recorder.mode == "process":
            engine.recorder.stop_ingester()  # its work is done: a library caller's next batch starts its own
    if runner.budget is not None and runner.budget.exhausted and summary.stopped is None and summary.not_started:
        summary.stopped = "max_cost"
    summary.elapsed_s = time.monotonic() - started
    if recorded.error:
        summary.ledger_error = recorded.error
        events.error("ledger.error", f"{recorded.error}; records are kept in the spool and ingested by the next "
                     "genops command")
    _report_summary(summary, tally.warnings, options, events, emit, is_batch)
    return summary.exit_code


def _ingest_leftovers(ledger: Ledger, options: BatchOptions, events: EventLog) -> None:
    """Leftovers from a crashed or ledger-less earlier invocation go in first (exactly once)."""
    from genops_cli.ledger.records import drain

    leftover = drain(ledger)
    if leftover.inserted:
        events.info("spool.ingested", f"ingested {len(leftover.inserted)} spooled run(s) left by an earlier "
                    "invocation", runs=len(leftover.inserted))
    if leftover.error:
        if options.resume:
            raise LedgerError(f"{leftover.error}; --resume needs the ledger to know which lines are done")
        events.warning("spool.pending", f"{leftover.error}; spooled runs stay pending")


def _prepare(settings: Settings, ledger: Ledger, pipeline_path: str, runs: list[RunInput], options: BatchOptions,
             events: EventLog) -> tuple[Any, list[Any] | None, list[LineJob], BatchSummary, bool]:
    """Load the pipeline, check every input before anything is spent (a bad line exits 2 with its file:line),
    number the lines, skip the ones --resume finds done, warm the pipeline up once."""
    from genops_cli.execution.documents import read_documents
    from genops_cli.execution.inputs import prepare_run_data
    from genops_cli.execution.loading import load_pipeline
    from genops_cli.execution.runner import batch_run_id
    from genops_cli.execution.simulate import prepare_run

    init_overrides: dict[str, Any] = {"max_retries": 0} if options.retries > 0 else {}
    if str(settings.log_level).upper() not in ("DEBUG", "INFO"):
        init_overrides["progress_bar"] = False  # components' own tqdm bars only when verbose
    loaded = load_pipeline(pipeline_path, allow_modules=options.allow_modules, simulate=options.simulate,
                           simulation_output_tokens=settings.simulation_output_tokens,
                           model_overrides=options.model_overrides, init_overrides=init_overrides)
    documents = read_documents(options.documents_path) if options.documents_path else None
    is_batch = len(runs) > 1 or runs[0].line is not None
    namespace = "simulated" if loaded.simulated else ""
    jobs = [
        LineJob(index, run_input, prepare_run_data(loaded.pipeline, run_input, loaded.declared_inputs),
                batch_run_id(loaded.profile.pipeline_hash, run_input.line, run_input.raw, namespace)
                if is_batch and run_input.line is not None else None)
        for index, run_input in enumerate(runs)
    ]
    prepare_run(loaded, settings, ledger, documents is not None, events)  # after the inputs are known to be good
    summary = BatchSummary()
    if is_batch:
        line_history(ledger, jobs, loaded.profile.pipeline_hash, loaded.simulated)
        if options.resume:
            summary.skipped = sum(1 for job in jobs if job.done)
            jobs = [job for job in jobs if not job.done]
            if summary.skipped:
                events.info("batch.resume", f"--resume: {summary.skipped} line(s) already recorded as ok, skipped",
                            skipped=summary.skipped)
    try:
        loaded.pipeline.warm_up()  # once, before the workers share it (clients are created here)
    except Exception:  # noqa: S110 - a warm-up failure (e.g. a missing key) is reported by the run itself
        pass
    return loaded, documents, jobs, summary, is_batch


class _Tally:
    """The main thread's side: counts each finished line into the summary and shows it."""

    def __init__(self, summary: BatchSummary, runner: _BatchRunner, view: BatchView, recording: _Recording,
                 simulated: bool) -> None:
        self.summary = summary
        self.runner = runner
        self.view = view
        self.recording = recording
        self.simulated = simulated
        self.done = 0
        self.warnings: dict[tuple[str, str], None] = {}  # estimated usage, agents at their step cap (once each)

    def __call__(self, result: LineResult) -> None:
        summary, options = self.summary, self.runner.options
        self.done += 1
        if result.run is not None:
            for key in _run_warnings(result.run, self.simulated):
                self.warnings.setdefault(key)
        for attempt in result.attempts:
            summary.attempts += 1
            summary.total_cost += attempt.total_cost
            summary.unpriced_models.update(attempt.unpriced_models)
        run = result.run
        if run is None:
            summary.not_started += 1
            return
        summary.runs += 1
        if run.cache_hit:
            summary.cache_hits += 1
            summary.saved_cost += run.saved_cost
        if run.status == "ok":
            summary.ok += 1
        elif run.status == "blocked":
            summary.blocked += 1
        else:
            summary.failed += 1
            if options.fail_fast and self.runner.is_batch and summary.stopped is None:
                summary.stopped = "fail_fast"
        if self.runner.budget is not None and self.runner.budget.exhausted and summary.stopped is None:
            summary.stopped = "max_cost"
        _report_run(result, self.view)
        self.view.progress(self.done, summary)
        self.recording.flush_if_due()


def _execute(runner: _BatchRunner, jobs: list[LineJob], fills_stores: bool, options: BatchOptions,
             tally: _Tally) -> None:
    """N lines in flight on a thread pool; the main thread tallies each as it finishes."""
    with ThreadPoolExecutor(max_workers=max(1, options.concurrency), thread_name_prefix="genops-run") as pool:
        queue_jobs = list(jobs)
        if fills_stores and queue_jobs:
            # The first run fills the in-memory stores (its embedding calls are recorded with it); the others
            # start once the stores are filled.
            tally(pool.submit(runner.process, queue_jobs.pop(0)).result())
        order: dict[Future[LineResult], int] = {pool.submit(runner.process, job): i for i, job in enumerate(queue_jobs)}
        pending: set[Future[LineResult]] = set(order)
        try:
            while pending:
                finished, pending = wait(pending, timeout=min(1.0, options.progress_interval),
                                         return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=order.__getitem__):  # lines done together: in input order
                    tally(future.result())
                if not finished:
                    tally.view.progress(tally.done, tally.summary)
        except BaseException:
            runner.stop.set()  # no new line starts; runs in flight finish and are recorded
            for future in pending:
                future.cancel()
            raise


def _report_summary(summary: BatchSummary, warnings: dict[tuple[str, str], None], options: BatchOptions,
                    events: EventLog, emit: Callable[[dict[str, Any]], None], is_batch: bool) -> None:
    for code, message in warnings:
        events.warning(code, message)
    if summary.unpriced_models:
        events.warning("pricing.unpriced",
                       f"unpriced model(s) {', '.join(sorted(summary.unpriced_models))}: recorded with "
                       "priced=false, cost not included; add a price to pricing/*.yml or check the model name")
    if summary.stopped == "max_cost":
        events.warning("batch.max_cost", f"batch cost cap ${options.max_cost} reached (spent "
                       f"{money_text(summary.total_cost)}); {summary.not_started} line(s) not started")
    elif summary.stopped == "fail_fast":
        events.warning("batch.fail_fast", f"--fail-fast: stopped after a failed run; {summary.not_started} "
                       "line(s) not started")
    if not is_batch:
        return
    out = summary.to_output()
    if options.json_output:
        emit(out)
    events.info(
        "batch.summary",
        f"{summary.runs} runs: {summary.ok} ok, {summary.failed} failed, {summary.blocked} blocked"
        + (f", {summary.skipped} skipped (--resume)" if summary.skipped else "")
        + (f", {summary.not_started} not started" if summary.not_started else "")
        + (f", {summary.cache_hits} cache hits saving {money_text(summary.saved_cost)}"
           if summary.cache_hits else "")
        + f"; {summary.attempts} attempts; total {money_text(summary.total_cost)} in {summary.elapsed_s:.1f}s",
        **{k: v for k, v in out.items() if k != "summary"},
    )


def _report_run(result: LineResult, view: BatchView) -> None:
    from genops_cli.views import run_to_output

    run = result.run
    assert run is not None
    options, events = view.options, view.events
    if run.policy.result == "WARNING":
        # Advisory policies let the run go ahead; say so on stderr even when stdout carries JSON.
        events.warning("policy.warning", f"policy WARNING {run.policy.reason_code or ''}: "
                       f"{run.policy.message or 'a policy was exceeded'} (run {run.run_id})",
                       run_id=run.run_id, reason_code=run.policy.reason_code)
    if run.status == "blocked" and options.json_output and not view.is_batch:
        # stdout carries only JSON; stderr (the cron log) still says in one line why nothing was spent.
        events.warning("run.blocked", f"run {run.run_id} BLOCKED {run.policy.reason_code or ''}: "
                       f"{run.error or run.policy.message or 'blocked by policy'}",
                       run_id=run.run_id, reason_code=run.policy.reason_code)
    if options.json_output:
        out = run_to_output(run)
        # Attempt numbers continue across invocations (a re-run's first try is attempt 2): "attempts" counts them
        # the same way, so the two never disagree; "retries" is what this invocation added after its first try.
        out["attempt"] = run.attempt
        out["attempts"] = max(run.attempt, len(result.attempts))
        out["retries"] = len(result.attempts) - 1
        if run.batch_line is not None:  # lines finish in any order under --concurrency: say which input it was
            out["line"] = run.batch_line
        view.emit(out)
    elif not view.is_batch and not options.quiet:
        view.render_run(run)
    if not view.is_batch:
        return
    text = (f"line {run.batch_line}: {run.status} {money_text(run.total_cost)} run {run.run_id}"
            + (" (cache hit)" if run.cache_hit else "")
            + (f" after {len(result.attempts)} attempts" if len(result.attempts) > 1 else "")
            + (f" ({run.error})" if run.error else ""))
    fields = dict(run_id=run.run_id, line=run.batch_line, status=run.status, attempt=run.attempt,
                  attempts=max(run.attempt, len(result.attempts)), total_cost=money_json(run.total_cost),
                  cache_hit=run.cache_hit, error=run.error)
    view.line(text, fields, ok=run.status == "ok")
