"""Spool: every run's records reach disk before the ledger, so a crash or a locked/unreachable ledger loses
nothing. Files are written to a temp name, fsynced and renamed (atomic on POSIX); ingestion is idempotent by
run_id, and every writing invocation drains what is left.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from genops_cli.ledger.serialize import dumps_run, run_from_json
from genops_cli.models import RunRecord


class Spool:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, run: RunRecord) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"{run.run_id}.{run.attempt}.json"
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(dumps_run(run))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return final

    def pending(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.json") if not p.name.startswith(".tmp-"))

    def __len__(self) -> int:
        return len(self.pending())

    def items(self) -> Iterator[tuple[Path, RunRecord | None]]:
        """(path, run) for each pending file; run is None for an unreadable file (kept, reported)."""
        for path in self.pending():
            try:
                yield path, run_from_json(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError):
                yield path, None

    @staticmethod
    def remove(path: Path) -> None:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
