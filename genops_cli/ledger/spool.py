"""Spool: every run's records reach disk before the ledger, so a crash or a locked/unreachable ledger loses
nothing. Files are written to a temp name, fsynced and renamed (atomic on POSIX); ingestion is idempotent by
run_id, and every writing invocation drains what is left.

Two file shapes: `<run_id>.<attempt>.json` holds one run (`write`, fsynced; `hand_off`, the recorder's cheap
path: one write and a rename on the caller's thread, fsync later and grouped); `group-<uuid>.<count>.json` holds
several runs written with ONE fsync (`write_many`). A group file is removed only after all
of its runs are in the ledger; a crash in between re-ingests the ones already recorded as duplicates.

    path = spool.write_many(runs)          # on disk (fsynced) before any ledger write
    for path, run in spool.items(): ...    # one item per run; run is None for an unreadable file
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from genops_cli.ledger.locking import fsync_directory
from genops_cli.ledger.serialize import SPOOL_FORMAT, dumps_run, run_from_json, run_to_json
from genops_cli.models import RunRecord

_GROUP_PREFIX = "group-"


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made = False

    def write(self, run: RunRecord) -> Path:
        return self._write(f"{run.run_id}.{run.attempt}.json", dumps_run(run))

    def hand_off(self, run: RunRecord) -> Path:
        """Spool one run cheaply, on the caller's thread: one write of the serialized run to a temp name, then a
        rename (atomic), NO fsync. Once this returns the run belongs to the operating system: it survives the
        process exiting in any way (os._exit, SIGKILL); it reaches stable storage when it is ingested (the
        ledger's commit is synced) or when `sync` is called for it (the recorder does when ingestion fails)."""
        if not self._made:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._made = True
        name = f"{run.run_id}.{run.attempt}.json"
        final = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, f".tmp-{os.getpid()}-{name}")
        data = dumps_run(run).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        os.close(fd)
        os.replace(tmp, final)
        return Path(final)

    def sync(self, paths: Sequence[Path]) -> None:
        """fsync spooled files (and the folder) that are to stay in the spool: grouped, one pass for many runs."""
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue  # ingested meanwhile (by another process)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        if paths and self.directory.is_dir():
            fsync_directory(self.directory)

    def check_writable(self) -> None:
        """Raise OSError unless a run can be spooled here (the folder is created if needed; a probe file is
        written and removed). Called before a run spends anything: nothing spends unless it can be recorded."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._made = True
        probe = self.directory / f".tmp-probe-{os.getpid()}-{uuid.uuid4().hex}"
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, b"{}")
        finally:
            os.close(fd)
            os.unlink(probe)

    def write_many(self, runs: Sequence[RunRecord]) -> Path:
        """Spool several runs as one file with one fsync (a single run gets the one-run file shape)."""
        if len(runs) == 1:
            return self.write(runs[0])
        body = json.dumps({"spool_format": SPOOL_FORMAT, "runs": [run_to_json(r) for r in runs]}, sort_keys=True)
        return self._write(f"{_GROUP_PREFIX}{uuid.uuid4().hex}.{len(runs)}.json", body)

    def _write(self, name: str, body: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(body)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            fsync_directory(self.directory)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return final

    def pending(self) -> list[Path]:
        """Pending spool files (one run or a group of runs each)."""
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.json") if not p.name.startswith(".tmp-"))

    def __len__(self) -> int:
        """Pending runs (a group file counts its runs, from its name)."""
        return sum(_runs_in(p) for p in self.pending())

    def pending_run_ids(self) -> list[str]:
        """Run ids still in the spool (group files are read; an unreadable one is named by its file name)."""
        ids: list[str] = []
        for path, run in self.items():
            ids.append(run.run_id if run is not None else path.name.split(".")[0])
        return ids

    def items(self) -> Iterator[tuple[Path, RunRecord | None]]:
        """(path, run) for each pending run; run is None for an unreadable file (kept, reported)."""
        for path in self.pending():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                runs = [run_from_json(r) for r in data["runs"]] if path.name.startswith(_GROUP_PREFIX) else [
                    run_from_json(data)]
            except (OSError, ValueError, KeyError, TypeError):
                yield path, None
                continue
            for run in runs:
                yield path, run

    @staticmethod
    def remove(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass


def _runs_in(path: Path) -> int:
    if path.name.startswith(_GROUP_PREFIX):
        try:
            return int(path.name.split(".")[1])
        except (IndexError, ValueError):
            return 1
    return 1
