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
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import threading
import time
from pathlib import Path

from genops_cli.ledger.records import RecordResult, drain
from genops_cli.ledger.spool import Spool


def _drain(ledger: object, spool: Spool, synced: set[str]) -> RecordResult:
    try:
        result = drain(ledger, spool)  # type: ignore[arg-type]
    except Exception as exc:  # keep serving: the runs stay in the spool
        result = RecordResult(error=f"ledger write failed ({type(exc).__name__}: {exc})")
    if result.error:
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
    spool = Spool(Path(args.spool))
    synced: set[str] = set()
    requests: queue.SimpleQueue[str] = queue.SimpleQueue()
    # A reader thread instead of select(): pipes cannot be select()ed on every platform.
    threading.Thread(target=_read_requests, args=(requests,), daemon=True).start()
    backoff = args.interval
    idle_since = time.monotonic()
    while True:
        try:
            line = requests.get(timeout=backoff)
        except queue.Empty:
            line = None
        waiting = bool(spool.pending())
        if line is not None or waiting:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > args.idle_exit:
            return 0
        if line is not None:
            if not line:  # the parent is gone
                _drain(ledger, spool, synced)
                return 0
            result = _drain(ledger, spool, synced)
            alerts.flush(10.0)  # deliveries of what this drain fired are done when the parent's flush returns
            sys.stdout.write(json.dumps({"inserted": result.inserted, "duplicates": result.duplicates,
                                         "spooled": result.spooled, "error": result.error,
                                         "unreadable": result.unreadable}) + "\n")
            sys.stdout.flush()
            continue
        if waiting:
            result = _drain(ledger, spool, synced)
            # A ledger that cannot be written (locked, unreachable): retry less often, up to 5 s.
            backoff = min(backoff * 2, 5.0) if result.error else args.interval


def _read_requests(requests: queue.SimpleQueue[str]) -> None:
    for line in sys.stdin:
        requests.put(line)
    requests.put("")  # end of input: the parent is gone


if __name__ == "__main__":
    sys.exit(main())
