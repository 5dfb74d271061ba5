"""Writing runs into the ledger: spooled runs -> one transaction per group (run rows + call rows + reservation
releases + policy events + the hooks: audit entries, compliance, alerts, ...), idempotent by run_id. Callers go
through `ledger.recorder.Recorder`; this module is the ingestion it uses (and `genops ledger drain`).

    drain(ledger)                        # every pending spool file, exactly once
    ingest(ledger, items, spool)         # given (spool file, run) items

`insert_runs` writes a group of runs in ONE transaction with a handful of multi-row statements. Within a group
each run is still all-or-nothing (the group commits or rolls back whole, and stays in the spool then) and
idempotent (runs already recorded are skipped, without hooks). Hooks run inside the group's transaction, after
all of the group's rows are in: a budget alert crossed inside a group is attributed to the first run evaluated
after the crossing, with the group's total spend.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genops_cli.errors import LedgerError
from genops_cli.ledger.hooks import REGISTRY, HookRegistry, InsertBatch, InsertedRun
from genops_cli.ledger.serialize import CALL_COLUMNS, EVENT_COLUMNS, RUN_COLUMNS, call_row, run_row, to_naive_utc
from genops_cli.ledger.spool import Spool
from genops_cli.ledger.store import Ledger, Tx, WriteSession
from genops_cli.models import RunRecord, quantize_money
from genops_cli.redact import redact


def rekeyed_run_id(run_id: str, started_at: datetime) -> str:
    """The id a batch run takes when its deterministic id is already used by another execution."""
    stamp = to_naive_utc(started_at).isoformat()  # type: ignore[union-attr]
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"genops:rekey:{run_id}:{stamp}"))


def _claim(run: RunRecord, stored_start: Callable[[str], datetime | None]) -> bool:
    """True when the run may be inserted under run.run_id. A replay of the same execution (same id and start
    time: a spool file ingested again) is a duplicate. A batch run whose deterministic id was taken by another
    execution (two processes on the same line) is re-keyed deterministically from its own start time, so both
    charges are kept and a replay of the re-keyed run is still recognised. `stored_start(run_id)` is the
    started_at stored under an id, None when the id is free."""
    for _ in range(2):
        started = stored_start(run.run_id)
        if started is None:
            return True
        if run.batch_line is None or started == to_naive_utc(run.started_at):
            return False
        new_id = rekeyed_run_id(run.run_id, run.started_at)
        run.run_id = new_id
        for call in run.calls:
            call.run_id = new_id
    return False


def _event_rows(run: RunRecord) -> list[tuple[Any, ...]]:
    return [(e.event_id, run.run_id, to_naive_utc(run.started_at), e.rule, e.result, e.reason_code,
             redact(e.message), e.enforced) for e in run.policy_events]


def _release(run: RunRecord) -> tuple[str, datetime, Any] | None:
    """(reservation id, released_at, actual cost) for a run that holds a budget reservation."""
    if not run.policy.reservation_id:
        return None
    released = to_naive_utc(run.ended_at or datetime.now(timezone.utc))
    return run.policy.reservation_id, released, quantize_money(run.total_cost)


def insert_run(tx: Tx, run: RunRecord, hooks: HookRegistry = REGISTRY, ledger: Ledger | None = None) -> bool:
    """Insert a run and its calls; False when the run is already recorded (nothing changes then)."""
    return insert_runs(tx, [run], hooks, ledger)[0]


def _stored_starts(tx: Tx, ids: Iterable[str]) -> dict[str, datetime]:
    """run_id -> stored started_at for those of `ids` already in the ledger, in one statement (the ids travel
    as one array parameter: see `Tx.insert_rows` for why not one parameter each)."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = tx.query("SELECT run_id, started_at FROM runs WHERE run_id IN (SELECT UNNEST(CAST(? AS VARCHAR[])))",
                    [wanted])
    return {r[0]: r[1] for r in rows}


def _release_many(tx: Tx, releases: list[tuple[str, datetime, Any]]) -> None:
    """Release many reservations in one statement (UPDATE ... FROM arrays, on both engines)."""
    if not releases:
        return
    ids, released, costs = (list(column) for column in zip(*releases, strict=True))
    tx.execute(
        "UPDATE reservations SET released_at = v.released, actual_cost = v.cost "
        "FROM (SELECT UNNEST(CAST(? AS VARCHAR[])) AS rid, UNNEST(CAST(? AS TIMESTAMP[])) AS released, "
        "UNNEST(CAST(? AS DECIMAL(38,18)[])) AS cost) AS v "
        "WHERE reservations.reservation_id = v.rid AND reservations.released_at IS NULL",
        [ids, released, costs],
    )


def insert_runs(tx: Tx, runs: Sequence[RunRecord], hooks: HookRegistry = REGISTRY,
                ledger: Ledger | None = None) -> list[bool]:
    """Insert many runs in the caller's ONE transaction with a few multi-row statements; returns, per run,
    False when it was already recorded (skipped, no audit entry) and True when inserted.

    Run by run and in order: the run-id claim (duplicates and re-keying, also between runs of the same group),
    reservation release, policy events, then the hooks (`ledger.hooks`: the audit entries first, computed from
    the inserted values, then compliance, alerts, ...) for the newly inserted runs, in the same transaction.

        with ledger.write() as tx:
            flags = insert_runs(tx, runs)
    """
    tx.memo.clear()
    candidates = [r.run_id for r in runs]
    candidates += [rekeyed_run_id(r.run_id, r.started_at) for r in runs if r.batch_line is not None]
    stored = _stored_starts(tx, candidates)
    flags: list[bool] = []
    accepted: list[RunRecord] = []
    for run in runs:
        claimed = _claim(run, stored.get)
        if claimed:
            stored[run.run_id] = to_naive_utc(run.started_at)  # type: ignore[assignment]
            accepted.append(run)
        flags.append(claimed)
    if not accepted:
        return flags
    run_rows = [run_row(r) for r in accepted]
    call_rows = [[call_row(c) for c in r.calls] for r in accepted]
    event_rows = [_event_rows(r) for r in accepted]
    tx.insert_rows("runs", RUN_COLUMNS, run_rows, on_conflict="(run_id) DO NOTHING")
    tx.insert_rows("calls", CALL_COLUMNS, [row for rows in call_rows for row in rows],
                   on_conflict="(call_id) DO NOTHING")
    tx.insert_rows("policy_events", EVENT_COLUMNS, [row for rows in event_rows for row in rows],
                   on_conflict="(event_id) DO NOTHING")
    _release_many(tx, [r for r in map(_release, accepted) if r is not None])
    hooks.on_insert(InsertBatch(tx, ledger, [InsertedRun(*item) for item in zip(
        accepted, run_rows, call_rows, event_rows, strict=True)]))
    return flags


@dataclass
class RecordResult:
    inserted: list[str] = field(default_factory=list)  # run ids written now (incl. drained leftovers)
    duplicates: list[str] = field(default_factory=list)  # already in the ledger
    spooled: list[str] = field(default_factory=list)  # still in the spool (ledger not writable)
    error: str | None = None
    unreadable: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None


#: Runs per transaction for grouped ingestion.
GROUP_SIZE = 200


def _groups(items: list[tuple[Path, RunRecord | None]], size: int) -> list[list[tuple[Path, RunRecord | None]]]:
    """Consecutive groups of about `size` runs that never split one spool file (a file is removed only after
    all of its runs are committed)."""
    groups: list[list[tuple[Path, RunRecord | None]]] = []
    current: list[tuple[Path, RunRecord | None]] = []
    for index, item in enumerate(items):
        current.append(item)
        next_path = items[index + 1][0] if index + 1 < len(items) else None
        if len(current) >= size and next_path != item[0]:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def ingest(ledger: Ledger, items: list[tuple[Path, RunRecord | None]], spool: Spool,
           result: RecordResult | None = None, grouped: bool = True,
           hooks: HookRegistry = REGISTRY, session: WriteSession | None = None) -> RecordResult:
    """Write spooled runs under one writer lock hold, removing each spool file once all of its runs are
    committed (a crash in between re-ingests them as duplicates: exactly once). One transaction per GROUP_SIZE
    runs (`insert_runs`), or per run without `grouped`. The hooks' `after_commit` runs after each commit.
    `session`: a writer session the caller already holds (the ingester process keeps one open while runs keep
    arriving); by default one is opened for these runs.

        ingest(ledger, [(spool.write(run), run) for run in finished], spool)
    """
    result = result or RecordResult()
    if not items:
        return result
    remaining: dict[Path, int] = {}
    released: dict[Path, list[str]] = {}
    spooled_as = {id(run): run.run_id for _path, run in items if run is not None}  # before any re-keying
    for path, _run in items:
        remaining[path] = remaining.get(path, 0) + 1

    def done(path: Path, run: RunRecord) -> None:
        remaining[path] -= 1
        released.setdefault(path, []).append(spooled_as[id(run)])
        if remaining[path] == 0:
            spool.release(path, released.pop(path))

    try:
        with nullcontext(session) if session is not None else ledger.session() as active:
            for group in (_groups(items, GROUP_SIZE) if grouped else [[item] for item in items]):
                runs = [run for _path, run in group if run is not None]
                if runs:
                    with active.transaction() as tx:
                        flags = insert_runs(tx, runs, hooks, ledger)
                    for run, inserted in zip(runs, flags, strict=True):
                        (result.inserted if inserted else result.duplicates).append(run.run_id)
                    hooks.after_commit([run for run, inserted in zip(runs, flags, strict=True) if inserted])
                for path, run in group:
                    if run is None:
                        result.unreadable.append(path.name)
                    else:
                        done(path, run)
    except LedgerError as exc:
        result.error = str(exc)
        result.spooled = spool.pending_run_ids()
    return result


def drain(ledger: Ledger, spool: Spool | None = None, result: RecordResult | None = None,
          grouped: bool = True, hooks: HookRegistry = REGISTRY, session: WriteSession | None = None
          ) -> RecordResult:
    """Ingest every pending spool file exactly once (one transaction per group of runs, or per run without
    `grouped`), through the same hooks as a run recorded directly (in `session` when one is held)."""
    spool = spool or Spool(ledger.spool_dir())
    return ingest(ledger, list(spool.items()), spool, result, grouped, hooks, session)


def record_run(ledger: Ledger, run: RunRecord) -> RecordResult:
    """Spool the run, then drain the spool into the ledger (this run and any leftovers)."""
    spool = Spool(ledger.spool_dir())
    spool.write(run)
    return drain(ledger, spool)
