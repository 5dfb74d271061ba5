"""Ledger housekeeping shared by `genops ledger` and `genops validate`."""

from __future__ import annotations

from typing import Any

from genops_cli.ledger.schema import CURRENT_VERSION
from genops_cli.ledger.spool import Spool
from genops_cli.ledger.store import Ledger


def ledger_info(ledger: Ledger) -> dict[str, Any]:
    info: dict[str, Any] = {
        "backend": ledger.backend,
        "location": ledger.display,
        "exists": ledger.exists(),
        "size_bytes": ledger.size_bytes(),
        "schema_version": None,
        "current_schema_version": CURRENT_VERSION,
        "runs": 0,
        "calls": 0,
        "spool_dir": str(ledger.spool_dir()),
        "spool_pending": len(Spool(ledger.spool_dir())),
    }
    if ledger.exists():
        with ledger.read() as tx:
            info["schema_version"] = tx.scalar("SELECT MAX(version) FROM schema_version")
            info["runs"] = tx.scalar("SELECT COUNT(*) FROM runs")
            info["calls"] = tx.scalar("SELECT COUNT(*) FROM calls")
    return info
