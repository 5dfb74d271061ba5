"""Tail protection: the audit chain's head, written outside the ledger, so that deleting the newest entries (or
rewriting the whole chain) is detected.

    cp = take_checkpoint(ledger)                        # after verifying the chain
    append_checkpoint(Path("/mnt/worm/genops.checkpoints.jsonl"), cp)   # and/or post_checkpoint(url, cp)
    problems = check_checkpoints(ledger, read_checkpoints(Path(...)))   # [] when every head is still there

A checkpoint is one JSON line: the ledger's id (the hash of its first audit entry), the head's seq and entry
hash, the head's time and when the checkpoint was taken. `check_checkpoints` requires, for every checkpoint of
this ledger, an entry at that seq with that hash: a chain cut back below a checkpoint, or rebuilt, fails. Keep the
file where the ledger's writers cannot rewrite it (another machine, object storage with retention, a webhook
into your log system); run `genops compliance checkpoint` from cron.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from genops_cli.errors import UsageError
from genops_cli.ledger import audit
from genops_cli.ledger.store import Ledger
from genops_cli.models import utcnow


@dataclass(frozen=True)
class Checkpoint:
    ledger_id: str
    ledger: str  # masked location, for people
    seq: int
    entry_hash: str
    head_recorded_at: str | None
    taken_at: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def take_checkpoint(ledger: Ledger) -> Checkpoint:
    with ledger.read() as tx:
        first = tx.scalar("SELECT entry_hash FROM audit_log WHERE seq = 1")
        seq, head = audit.chain_head(tx)
        at = tx.scalar("SELECT recorded_at FROM audit_log WHERE seq = ?", [seq]) if seq else None
    return Checkpoint(ledger_id=first or audit.GENESIS, ledger=ledger.display, seq=seq, entry_hash=head,
                      head_recorded_at=at.isoformat() if at is not None else None,
                      taken_at=utcnow().isoformat(timespec="seconds"))


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """Append one line and fsync it (a checkpoint that is not on disk protects nothing)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(checkpoint.to_json(), sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        raise UsageError(f"--out {path}: cannot write the checkpoint ({exc.strerror}); pick a writable path") from exc


def post_checkpoint(url: str, checkpoint: Checkpoint, timeout: float = 5.0) -> int:
    """POST the checkpoint as JSON; returns the HTTP status (raises UsageError when it cannot be delivered)."""
    import urllib.error
    import urllib.request

    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--webhook {url!r}: use an http(s) URL")
    body = json.dumps({"genops_checkpoint": checkpoint.to_json()}).encode()
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        raise UsageError(f"--webhook: the endpoint answered HTTP {exc.code}; the checkpoint was not stored") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise UsageError(f"--webhook: cannot reach the endpoint ({getattr(exc, 'reason', exc)})") from exc


def read_checkpoints(path: Path) -> list[Checkpoint]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UsageError(f"--checkpoints {path}: no such file; write one with genops compliance checkpoint --out") \
            from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"--checkpoints {path}: cannot read it ({exc})") from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
            out.append(Checkpoint(ledger_id=str(doc["ledger_id"]), ledger=str(doc.get("ledger", "")),
                                  seq=int(doc["seq"]), entry_hash=str(doc["entry_hash"]),
                                  head_recorded_at=doc.get("head_recorded_at"), taken_at=str(doc["taken_at"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"--checkpoints {path}:{number}: not a genops checkpoint line ({exc})") from exc
    return out


@dataclass
class CheckpointResult:
    checked: int
    other_ledgers: int
    problems: list[str]
    latest: Checkpoint | None

    def to_json(self) -> dict[str, Any]:
        return {"checked": self.checked, "other_ledgers": self.other_ledgers, "problems": self.problems,
                "latest": self.latest.to_json() if self.latest else None}


def check_checkpoints(ledger: Ledger, checkpoints: list[Checkpoint]) -> CheckpointResult:
    """Every checkpoint of this ledger must still be in its chain, at its seq, with its hash."""
    with ledger.read() as tx:
        ledger_id = tx.scalar("SELECT entry_hash FROM audit_log WHERE seq = 1") or audit.GENESIS
        head_seq, _head = audit.chain_head(tx)
        mine = [c for c in checkpoints if c.ledger_id == ledger_id]
        stored = {int(s): h for s, h in tx.query(
            "SELECT seq, entry_hash FROM audit_log WHERE seq IN (" + ", ".join("?" for _ in mine) + ")",
            [c.seq for c in mine])} if mine else {}
    problems = []
    for c in sorted(mine, key=lambda c: c.seq):
        if c.seq > head_seq:
            problems.append(f"checkpoint of {c.taken_at} saw entry {c.seq} but the chain now ends at {head_seq}: "
                            f"the newest {c.seq - head_seq} or more entries were deleted")
        elif stored.get(c.seq) != c.entry_hash:
            problems.append(f"checkpoint of {c.taken_at}: entry {c.seq} has another hash than checkpointed "
                            "(the chain was rewritten)")
    if checkpoints and not mine:
        problems.append("no checkpoint in the file belongs to this ledger (its first entry differs): the chain was "
                        "rebuilt, or the file is another ledger's")
    latest = max(mine, key=lambda c: c.seq, default=None)
    return CheckpointResult(checked=len(mine), other_ledgers=len(checkpoints) - len(mine), problems=problems,
                            latest=latest)
