"""Result cache for `genops run --cache`: identical inputs to an identical pipeline reuse the recorded outputs.

    cache = ResultCache.for_ledger(ledger, ttl=timedelta(hours=1))
    key = cache_key(loaded.profile.pipeline_hash, run_input.data, simulated=False)
    entry = cache.get(key)            # None when missing, expired or unreadable
    cache.put(key, run)               # after an ok run: its outputs and what it cost

Keyed by the pipeline hash and the normalized inputs (JSON with sorted keys), plus whether the run was
simulated, so simulated outputs never answer a real run. Entries are one JSON file each, written atomically,
beside the ledger (`<ledger>.cache/`); a PostgreSQL ledger caches in `~/.genops/cache/<ledger hash>/`, local to
the machine. A hit is recorded as a run with cost 0, `cache_hit = true` and `saved_cost` = the cost of the run
whose outputs it reused. Outputs are stored with Haystack's own schema serialization (ChatMessage, Document...).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from genops_cli.ledger.store import Ledger
from genops_cli.models import RunRecord

CACHE_FORMAT = 1


@dataclass
class CacheEntry:
    key: str
    created_at: datetime
    run_id: str
    total_cost: Decimal
    outputs: Any


def cache_key(pipeline_hash: str, data: dict[str, Any], simulated: bool) -> str:
    """sha256 of the pipeline hash and the inputs as written (key order and whitespace do not matter)."""
    normalized = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    text = f"{CACHE_FORMAT}:{pipeline_hash}:{'sim' if simulated else 'real'}:{normalized}"
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cache_dir_for(ledger: Ledger) -> Path:
    path = getattr(ledger, "path", None)
    if isinstance(path, Path):
        return path.with_name(path.name + ".cache")
    digest = hashlib.sha256(ledger.location.encode("utf-8")).hexdigest()[:16]
    return Path(os.path.expanduser("~/.genops/cache")) / digest


class ResultCache:
    def __init__(self, directory: Path, ttl: timedelta) -> None:
        self.directory = directory
        self.ttl = ttl

    @classmethod
    def for_ledger(cls, ledger: Ledger, ttl: timedelta) -> ResultCache:
        return cls(cache_dir_for(ledger), ttl)

    def _path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str, now: datetime | None = None) -> CacheEntry | None:
        from haystack.utils.base_serialization import _deserialize_value_with_schema

        path = self._path(key)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            created = datetime.fromisoformat(doc["created_at"])
            now = now or datetime.now(timezone.utc)
            if now - created > self.ttl:
                return None
            outputs = _deserialize_value_with_schema(doc["outputs"]) if doc.get("outputs") is not None else None
            return CacheEntry(key, created, doc["run_id"], Decimal(doc["total_cost"]), outputs)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
            return None  # an unreadable entry is a miss; the next ok run overwrites it

    def put(self, key: str, run: RunRecord) -> Path:
        from haystack.utils.base_serialization import _serialize_value_with_schema

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        doc = {
            "format": CACHE_FORMAT,
            "created_at": (run.ended_at or datetime.now(timezone.utc)).isoformat(),
            "run_id": run.run_id,
            "pipeline_hash": run.pipeline_hash,
            "total_cost": str(run.total_cost),
            "outputs": _serialize_value_with_schema(run.outputs) if run.outputs is not None else None,
        }
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, default=str)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path
