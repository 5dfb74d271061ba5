"""Build priced runs and write them through the real recording path (spool -> ledger transaction -> audit).

Used by the billing, FOCUS, compliance and audit tests, which need runs on chosen dates with chosen usage;
prices come from the real price book (`runner.make_pricer`), never from the test.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone

from genops_cli.execution.runner import make_pricer
from genops_cli.ledger.records import record_run
from genops_cli.ledger.store import open_ledger
from genops_cli.models import Attribution, CallRecord, RunRecord, TokenUsage


def at(day: str, hour: int = 12) -> datetime:
    y, m, d = (int(x) for x in day.split("-"))
    return datetime(y, m, d, hour, tzinfo=timezone.utc)


def make_run(tenant: str | None, when: datetime, calls: list[dict], pipeline: str = "rag",
             simulated: bool = False, **attribution: str) -> RunRecord:
    """A run of `tenant` at `when`; each call dict: model, provider, input, cache_read, cache_write, output."""
    run_id = str(uuid.uuid4())
    run = RunRecord(run_id=run_id, pipeline_name=pipeline, pipeline_hash="test", started_at=when,
                    attribution=Attribution(customer_id=tenant, **attribution), simulated=simulated,
                    genops_version="test")
    pricer = make_pricer(tenant)
    for seq, spec in enumerate(calls, start=1):
        call = CallRecord(
            call_id=str(uuid.uuid4()), run_id=run_id, seq=seq, span_kind="component", component_name=f"llm{seq}",
            component_type="OpenAIChatGenerator", started_at=when, latency_ms=spec.get("latency_ms", 100.0),
            provider=spec.get("provider", "openai"), model=spec["model"],
            usage=TokenUsage(input_tokens=spec.get("input", 0), cache_read_tokens=spec.get("cache_read", 0),
                             cache_write_tokens=spec.get("cache_write", 0), output_tokens=spec.get("output", 0),
                             source="reported"))
        pricer(call)
        run.calls.append(call)
    run.recompute_total()
    run.ended_at = when
    return run


def record(*runs: RunRecord) -> None:
    ledger = open_ledger(os.environ["GENOPS_LEDGER"])
    for run in runs:
        result = record_run(ledger, run)
        assert result.ok, result.error
