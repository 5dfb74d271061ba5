"""The spool ingester process (started by `Recorder` in `process` mode): moves spooled runs into the ledger
off the recording process's GIL, through the same hooks as any other ingestion (installed at its start-up from
the same configuration and environment).

    GENOPS_INGEST_LEDGER=PATH_OR_URL python -m genops_cli.ledger.ingester --spool DIR [--config FILE] [--interval 1]

(The ledger location travels in the environment, not on the command line: a PostgreSQL URL may carry a
password, and every user can read a process's arguments.)

Protocol on stdin/stdout: each "flush" line is answered, once everything in the spool at that moment was
ingested (or could not be), with one JSON line {inserted, duplicates, spooled, error, unreadable}. Between
requests it ingests whatever appears in the spool every `--interval` seconds. End of stdin (the parent ended,
however) -> a last drain, then exit. Idle for `--idle-exit` seconds (nothing spooled, no request) -> exit too:
the recorder starts a new ingester with its next run, so a process that tracked a few runs long ago does not
keep one alive.

While runs keep arriving, the ledger's writer session stays open (`HeldSession`) and the spool is looked at
every ACTIVE_POLL_S: opening and closing a DuckDB file costs more than ingesting a few runs, and a flush then
finds at most the last few runs to ingest. The session is closed when another process waits for the ledger
(waiters touch `locking.wait_marker`), when nothing arrived for LINGER_S, after MAX_HOLD_S, or after a flush is
answered (a flush usually precedes a read). Closed for a waiter or after MAX_HOLD_S, it stays closed for
RELEASE_GAP_S, so the process waiting (it retries every <= 0.1 s) gets its turn.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from genops_cli.ledger.locking import someone_waits
from genops_cli.ledger.records import RecordResult, drain
from genops_cli.ledger.spool import Spool

if TYPE_CHECKING:
    from genops_cli.ledger.store import Ledger, WriteSession

#: While the writer session is held: how often the spool is looked at (seconds).
ACTIVE_POLL_S = 0.02
#: Close the held session after this long with nothing to ingest.
LINGER_S = 0.2
#: ... or after holding it this long (or at once when a process waits for it), and then leave the ledger to
#: others for at least RELEASE_GAP_S.
MAX_HOLD_S = 1.0
RELEASE_GAP_S = 0.15


class HeldSession:
    """The ledger's writer session, kept open across drains while runs keep arriving (see the module doc)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger
        self._lock_path = ledger.writer_lock_path()  # None: the backend locks inside the database (PostgreSQL)
        self._stack: contextlib.ExitStack | None = None
        self._session: WriteSession | None = None
        self._opened = 0.0
        self._opened_ns = 0
        self._waited_on = False
        self._used = 0.0
        self._released = float("-inf")
        self._gap = False

    @property
    def held(self) -> bool:
        return self._session is not None

    def get(self, now: float, urgent: bool = False) -> WriteSession | None:
        """The open session (opened now if needed); None while other processes get their turn (unless
        `urgent`: a flush the parent waits for)."""
        if self._session is None:
            if self._gap and now - self._released < RELEASE_GAP_S and not urgent:
                return None
            stack = contextlib.ExitStack()
            self._session = stack.enter_context(self.ledger.session())
            self._stack, self._opened, self._opened_ns = stack, now, time.time_ns()
        self._used = now
        return self._session

    def due(self, now: float) -> bool:
        """Time to close: another process waits for the ledger, idle for LINGER_S, or held for MAX_HOLD_S."""
        if self._session is None:
            return False
        self._waited_on = self._lock_path is not None and someone_waits(self._lock_path, self._opened_ns)
        return self._waited_on or now - self._used >= LINGER_S or now - self._opened >= MAX_HOLD_S

    def close(self, now: float) -> None:
        stack, self._stack, self._session = self._stack, None, None
        if stack is None:
            return
        self._gap = self._waited_on or now - self._opened >= MAX_HOLD_S
        self._waited_on = False
        self._released = now
        with contextlib.suppress(Exception):  # a broken connection: the runs stay in the spool either way
            stack.close()


def _drain(ledger: Ledger, spool: Spool, synced: set[str], held: HeldSession | None = None,
           urgent: bool = True) -> RecordResult | None:
    """Ingest the spool (in the held session when given); None when the ledger is left to others for now."""
    try:
        session = held.get(time.monotonic(), urgent) if held is not None else None
        if held is not None and session is None:
            return None
        result = drain(ledger, spool, session=session)
    except Exception as exc:  # keep serving: the runs stay in the spool
        result = RecordResult(error=f"ledger write failed ({type(exc).__name__}: {exc})")
    if result.error:
        if held is not None:
            held.close(time.monotonic())  # it may be broken: the next drain opens a new one
        # Runs that wait in the spool are made durable, grouped; a segment again when it has grown.
        kept = [(p, _size(p)) for p in spool.pending()]
        kept = [(p, size) for p, size in kept if f"{p.name}:{size}" not in synced]
        spool.sync([p for p, _size_now in kept])
        synced.update(f"{p.name}:{size}" for p, size in kept)
    return result


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="genops-ingester")
    parser.add_argument("--spool", required=True)
    parser.add_argument("--config")
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("--idle-exit", type=float, default=60.0)
    args = parser.parse_args(argv)

    from genops_cli.config import load_settings
    from genops_cli.ledger.store import open_ledger
    from genops_cli.policy import alerts
    from genops_cli.startup import install_hooks

    location = os.environ["GENOPS_INGEST_LEDGER"]
    settings = load_settings(args.config, location)
    install_hooks(settings)
    ledger = open_ledger(location)
    if hasattr(ledger, "writer_threads"):
        ledger.writer_threads = 1  # small transactions: leave the cores to the application it serves
    spool = Spool(Path(args.spool))
    synced: set[str] = set()
    requests: queue.SimpleQueue[str] = queue.SimpleQueue()
    # A reader thread instead of select(): pipes cannot be select()ed on every platform.
    threading.Thread(target=_read_requests, args=(requests,), daemon=True).start()
    held = HeldSession(ledger)
    backoff = args.interval
    poll = backoff
    idle_since = time.monotonic()
    while True:
        try:
            line = requests.get(timeout=poll)
        except queue.Empty:
            line = None
        waiting = bool(spool.pending())
        now = time.monotonic()
        if line is not None or waiting:
            idle_since = now
        elif now - idle_since > args.idle_exit:
            held.close(now)
            return 0
        if line is not None:
            if not line:  # the parent is gone
                if waiting:
                    _drain(ledger, spool, synced, held)
                held.close(time.monotonic())
                return 0
            # Nothing pending: answered without opening the ledger.
            result = (_drain(ledger, spool, synced, held) if waiting else None) or RecordResult()
            alerts.flush(10.0)  # deliveries of what this drain fired are done when the parent's flush returns
            sys.stdout.write(json.dumps({"inserted": result.inserted, "duplicates": result.duplicates,
                                         "spooled": result.spooled, "error": result.error,
                                         "unreadable": result.unreadable}) + "\n")
            sys.stdout.flush()
            held.close(time.monotonic())  # after answering: a flush usually comes before a read of the ledger
            continue
        poll = backoff
        if waiting:
            result = _drain(ledger, spool, synced, held, urgent=False)
            if result is not None and result.error:
                # A ledger that cannot be written (locked, unreachable): retry less often, up to 5 s.
                backoff = poll = min(backoff * 2, 5.0)
            else:
                backoff, poll = args.interval, ACTIVE_POLL_S  # runs are arriving: look again soon
        if held.due(time.monotonic()):
            held.close(time.monotonic())
        if held.held:
            poll = ACTIVE_POLL_S

def _read_requests(requests: queue.SimpleQueue[str]) -> None:
    for line in sys.stdin:
        requests.put(line)
    requests.put("")  # end of input: the parent is gone


if __name__ == "__main__":
    sys.exit(main())
