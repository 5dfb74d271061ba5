"""Preflight: decide ALLOWED | WARNING | BLOCKED before any provider call."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from genops_cli.models import PolicyDecision, RunRecord

if TYPE_CHECKING:
    from genops_cli.loading import LoadedPipeline
    from genops_cli.runner import Engine, RunOptions


def preflight(engine: Engine, loaded: LoadedPipeline, data: dict[str, Any], run: RunRecord,
              options: RunOptions) -> PolicyDecision:
    return PolicyDecision(result="ALLOWED")
