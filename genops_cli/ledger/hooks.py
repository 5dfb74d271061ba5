"""Run hooks: what happens to every run as it enters the ledger, whichever process ingests it.

A hook sees each newly inserted run exactly once: `on_insert` inside the group's write transaction (after the
group's rows are in), `after_commit` once the transaction committed (network work: OTel export, webhooks).
Runs already in the ledger (a spool file replayed) are skipped, so a run's hooks never run twice.

The registry is explicit: the audit hook is part of the ledger (registered when the registry is created, first,
so the chain covers a run before anything else is written for it); compliance, alerts and OTel export are
registered at start-up by `genops_cli.startup.install_hooks(settings)`, which every entry point calls (the CLI,
the Python API's engine, the spool ingester process). Nothing registers a hook by being imported.

    class MyHook(RunHook):
        name = "mine"
        def on_insert(self, batch: InsertBatch) -> None: ...
    REGISTRY.register(MyHook())
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genops_cli.ledger.store import Ledger, Tx
    from genops_cli.models import RunRecord

_log = logging.getLogger("genops.hooks")


@dataclass
class InsertedRun:
    """A run inserted in this transaction with the row values written for it (audit payloads use them)."""

    run: RunRecord
    run_row: tuple[Any, ...]
    call_rows: list[tuple[Any, ...]]
    event_rows: list[tuple[Any, ...]]


@dataclass
class InsertBatch:
    """The runs inserted by one write transaction (one run, or a group of up to a few hundred)."""

    tx: Tx
    ledger: Ledger | None
    inserted: Sequence[InsertedRun]

    @property
    def runs(self) -> list[RunRecord]:
        return [item.run for item in self.inserted]


class RunHook:
    """Base class: override what you need. `on_insert` may write in the transaction (an exception rolls the group
    back: the runs stay in the spool); `after_commit` must never raise into accounting (errors are logged)."""

    name = "hook"

    def on_insert(self, batch: InsertBatch) -> None:
        """Inside the write transaction, after all of the batch's rows are inserted."""

    def after_commit(self, runs: Sequence[RunRecord]) -> None:
        """After the transaction committed (quick: enqueue, never block on the network)."""


class AuditHook(RunHook):
    """One hash-chained audit entry per policy event and per run, from the inserted values (no read back)."""

    name = "audit"

    def on_insert(self, batch: InsertBatch) -> None:
        from genops_cli.ledger import audit
        from genops_cli.ledger.serialize import CALL_COLUMNS, EVENT_COLUMNS, RUN_COLUMNS

        entries: list[tuple[str, str, list[dict[str, Any]], str | None]] = []
        for item in batch.inserted:
            actor = item.run.actor  # who ran it, not the process that happens to ingest it
            for event in item.event_rows:
                entries.append(("policy", event[0], audit.inserted_payload(
                    "policy", {"policy_events": [dict(zip(EVENT_COLUMNS, event, strict=True))]}), actor))
            entries.append(("run", item.run.run_id, audit.inserted_payload("run", {
                "runs": [dict(zip(RUN_COLUMNS, item.run_row, strict=True))],
                "calls": [dict(zip(CALL_COLUMNS, c, strict=True)) for c in item.call_rows],
            }), actor))
        audit.append_many(batch.tx, entries)


class HookRegistry:
    """Ordered hooks by name; registering a name again replaces that hook in place (start-up is idempotent)."""

    def __init__(self) -> None:
        self._hooks: list[RunHook] = [AuditHook()]
        self._lock = threading.Lock()

    def register(self, hook: RunHook) -> None:
        with self._lock:
            for index, existing in enumerate(self._hooks):
                if existing.name == hook.name:
                    self._hooks[index] = hook
                    return
            self._hooks.append(hook)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._hooks = [h for h in self._hooks if h.name != name]

    def names(self) -> list[str]:
        return [h.name for h in self._hooks]

    def get(self, name: str) -> RunHook | None:
        return next((h for h in self._hooks if h.name == name), None)

    def on_insert(self, batch: InsertBatch) -> None:
        if not batch.inserted:
            return
        for hook in list(self._hooks):
            hook.on_insert(batch)

    def after_commit(self, runs: Sequence[RunRecord]) -> None:
        if not runs:
            return
        for hook in list(self._hooks):
            try:
                hook.after_commit(runs)
            except Exception as exc:  # observability must never break accounting
                _log.warning("genops hook %s failed after commit: %s", hook.name, exc)


#: The process's hooks (see the module docstring for who registers what).
REGISTRY = HookRegistry()
