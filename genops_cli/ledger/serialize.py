"""RunRecord <-> JSON (the spool format) and RunRecord -> ledger rows.

Money travels as decimal strings, timestamps as ISO 8601 UTC, so a spooled run is re-ingested bit for bit.
"""

from __future__ import annotations

import functools
import json
from dataclasses import fields
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from genops_cli.models import (
    Attribution,
    CallRecord,
    CostCheck,
    PolicyDecision,
    PolicyEvent,
    RunRecord,
    TokenUsage,
    UnitPrices,
    quantize_money,
)
from genops_cli.redact import redact

#: 2: calls as positional arrays in `CALL_FIELDS` order (a run's calls are most of its line, and arrays encode
#: and decode in about half the time of objects). Readers take both formats.
SPOOL_FORMAT = 2


def _ts(value: datetime | None) -> str | None:
    return value.astimezone(timezone.utc).isoformat() if value else None


def _parse_ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def to_naive_utc(value: datetime | None) -> datetime | None:
    """The ledger stores naive UTC timestamps (no timezone module needed in either engine)."""
    if value is None:
        return None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def json_safe(value: Any) -> Any:
    """A JSON-serializable copy: Decimals as strings, datetimes ISO, unknown objects as their repr."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _fields_of(obj: Any, skip: str = "") -> dict[str, Any]:
    """A flat dataclass as a dict (what asdict gives for flat records, without its recursive deep copy)."""
    return {name: getattr(obj, name) for name in _field_names(type(obj)) if name != skip}


#: The order of a call's values in a format-2 spool line.
CALL_FIELDS = (
    "call_id", "seq", "span_kind", "component_name", "component_type", "started_at", "latency_ms", "status",
    "error", "visit", "agent_step", "tool_name", "parent_call_id", "provider", "model", "input_tokens",
    "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens", "usage_source", "raw_usage",
    "unit_prices", "cost", "list_cost", "contracted_cost", "priced", "price_snapshot", "documents_retrieved",
    "max_tokens", "component_path", "agent_instance", "agent_steps", "agent_max_steps", "exit_reason",
)  # fmt: skip


def call_to_array(call: CallRecord) -> list[Any]:
    """A call as a format-2 spool array (`CALL_FIELDS`; the run id is the run's)."""
    u = call.usage
    return [
        call.call_id, call.seq, call.span_kind, call.component_name, call.component_type, _ts(call.started_at),
        call.latency_ms, call.status, redact(call.error) if call.error else None, call.visit, call.agent_step,
        call.tool_name, call.parent_call_id, call.provider, call.model, u.input_tokens, u.cache_read_tokens,
        u.cache_write_tokens, u.output_tokens, u.reasoning_tokens, u.source,
        json_safe(u.raw) if u.raw is not None else None,
        call.unit_prices.to_json() if call.unit_prices else None, str(call.cost), str(call.list_cost),
        str(call.contracted_cost) if call.contracted_cost is not None else None, call.priced, call.price_snapshot,
        call.documents_retrieved, call.max_tokens, call.component_path, call.agent_instance, call.agent_steps,
        call.agent_max_steps, call.exit_reason,
    ]  # fmt: skip


def call_from_array(values: list[Any], run_id: str) -> CallRecord:
    if len(values) != len(CALL_FIELDS):
        raise ValueError(f"spooled call has {len(values)} values, format 2 has {len(CALL_FIELDS)}")
    d = dict(zip(CALL_FIELDS, values, strict=True))
    return CallRecord(
        call_id=d["call_id"], run_id=run_id, seq=d["seq"], span_kind=d["span_kind"],
        component_name=d["component_name"], component_type=d["component_type"],
        started_at=_parse_ts(d["started_at"]) or datetime.now(timezone.utc), latency_ms=d["latency_ms"],
        status=d["status"], error=d["error"], visit=d["visit"], agent_step=d["agent_step"],
        tool_name=d["tool_name"], parent_call_id=d["parent_call_id"], provider=d["provider"], model=d["model"],
        usage=TokenUsage(input_tokens=d["input_tokens"], cache_read_tokens=d["cache_read_tokens"],
                         cache_write_tokens=d["cache_write_tokens"], output_tokens=d["output_tokens"],
                         reasoning_tokens=d["reasoning_tokens"], source=d["usage_source"], raw=d["raw_usage"]),
        unit_prices=UnitPrices.from_json(d["unit_prices"]) if d["unit_prices"] else None,
        cost=Decimal(d["cost"]), list_cost=Decimal(d["list_cost"]),
        contracted_cost=Decimal(d["contracted_cost"]) if d["contracted_cost"] is not None else None,
        priced=d["priced"], price_snapshot=d["price_snapshot"], documents_retrieved=d["documents_retrieved"],
        max_tokens=d["max_tokens"], component_path=d["component_path"], agent_instance=d["agent_instance"],
        agent_steps=d["agent_steps"], agent_max_steps=d["agent_max_steps"], exit_reason=d["exit_reason"],
    )  # fmt: skip


def call_from_json(data: dict[str, Any]) -> CallRecord:
    usage = dict(data.get("usage") or {})
    return CallRecord(
        call_id=data["call_id"],
        run_id=data["run_id"],
        seq=data["seq"],
        span_kind=data["span_kind"],
        component_name=data["component_name"],
        component_type=data["component_type"],
        started_at=_parse_ts(data["started_at"]) or datetime.now(timezone.utc),
        latency_ms=data.get("latency_ms", 0.0),
        status=data.get("status", "ok"),
        error=data.get("error"),
        visit=data.get("visit"),
        agent_step=data.get("agent_step"),
        tool_name=data.get("tool_name"),
        parent_call_id=data.get("parent_call_id"),
        provider=data.get("provider"),
        model=data.get("model"),
        usage=TokenUsage(**usage),
        unit_prices=UnitPrices.from_json(data["unit_prices"]) if data.get("unit_prices") else None,
        cost=Decimal(data.get("cost", "0")),
        list_cost=Decimal(data.get("list_cost", data.get("cost", "0"))),
        contracted_cost=Decimal(data["contracted_cost"]) if data.get("contracted_cost") is not None else None,
        priced=data.get("priced", True),
        price_snapshot=data.get("price_snapshot"),
        documents_retrieved=data.get("documents_retrieved"),
        max_tokens=data.get("max_tokens"),
        component_path=data.get("component_path"),
        agent_instance=data.get("agent_instance"),
        agent_steps=data.get("agent_steps"),
        agent_max_steps=data.get("agent_max_steps"),
        exit_reason=data.get("exit_reason"),
    )


def run_to_json(run: RunRecord) -> dict[str, Any]:
    return {
        "spool_format": SPOOL_FORMAT,
        "run_id": run.run_id,
        "pipeline_name": run.pipeline_name,
        "pipeline_hash": run.pipeline_hash,
        "started_at": _ts(run.started_at),
        "ended_at": _ts(run.ended_at),
        "status": run.status,
        "error": redact(run.error),
        "batch_id": run.batch_id,
        "batch_line": run.batch_line,
        "attempt": run.attempt,
        "session_id": run.session_id,
        "actor": run.actor,
        "attribution": {**_fields_of(run.attribution), "tags": dict(run.attribution.tags)},
        "policy": {
            "result": run.policy.result,
            "reason_code": run.policy.reason_code,
            "message": redact(run.policy.message),
            "reserved_cost": str(run.policy.reserved_cost),
            "budget_scope": run.policy.budget_scope,
            "policy_hash": run.policy.policy_hash,
            "snapshot": run.policy.snapshot,
            "override": run.policy.override,
            "reservation_id": run.policy.reservation_id,
        },
        "total_cost": str(run.total_cost),
        "currency": run.currency,
        "simulated": run.simulated,
        "genops_version": run.genops_version,
        "haystack_version": run.haystack_version,
        "cache_hit": run.cache_hit,
        "saved_cost": str(run.saved_cost),
        "calls": [call_to_array(c) for c in run.calls],
        "policy_events": [{**_fields_of(e), "message": redact(e.message)} for e in run.policy_events],
        "cost_checks": [{**_fields_of(c), "limit": str(c.limit)} for c in run.cost_checks],
    }


def run_from_json(data: dict[str, Any]) -> RunRecord:
    policy = data.get("policy") or {}
    return RunRecord(
        run_id=data["run_id"],
        pipeline_name=data["pipeline_name"],
        pipeline_hash=data["pipeline_hash"],
        started_at=_parse_ts(data["started_at"]) or datetime.now(timezone.utc),
        ended_at=_parse_ts(data.get("ended_at")),
        status=data.get("status", "ok"),
        error=data.get("error"),
        batch_id=data.get("batch_id"),
        batch_line=data.get("batch_line"),
        attempt=data.get("attempt", 1),
        session_id=data.get("session_id"),
        actor=data.get("actor"),
        attribution=Attribution(**(data.get("attribution") or {})),
        policy=PolicyDecision(
            result=policy.get("result", "ALLOWED"),
            reason_code=policy.get("reason_code"),
            message=policy.get("message"),
            reserved_cost=Decimal(policy.get("reserved_cost", "0")),
            budget_scope=policy.get("budget_scope"),
            reservation_id=policy.get("reservation_id"),
            policy_hash=policy.get("policy_hash"),
            snapshot=policy.get("snapshot"),
            override=policy.get("override"),
        ),
        total_cost=Decimal(data.get("total_cost", "0")),
        currency=data.get("currency", "USD"),
        simulated=data.get("simulated", False),
        genops_version=data.get("genops_version", ""),
        haystack_version=data.get("haystack_version", ""),
        cache_hit=data.get("cache_hit", False),
        saved_cost=Decimal(data.get("saved_cost", "0")),
        calls=[call_from_json(c) if isinstance(c, dict) else call_from_array(c, data["run_id"])
               for c in data.get("calls", [])],
        policy_events=[PolicyEvent(**e) for e in data.get("policy_events", [])],
        cost_checks=[CostCheck(**{**c, "limit": Decimal(c["limit"])}) for c in data.get("cost_checks", [])],
    )


def dumps_run(run: RunRecord) -> str:
    return json.dumps(run_to_json(run), separators=(",", ":"))


RUN_COLUMNS = [
    "run_id", "batch_id", "session_id", "pipeline_name", "pipeline_hash", "started_at", "ended_at", "status",
    "error", "team", "project", "environment", "customer_id", "feature", "cost_center", "tags",
    "data_classification", "policy_result", "policy_reason_code", "reserved_cost", "total_cost", "currency",
    "simulated", "genops_version", "haystack_version", "cache_hit", "saved_cost", "batch_line", "attempt",
    "user_id", "policy_hash", "policy_override",
]  # fmt: skip

CALL_COLUMNS = [
    "call_id", "run_id", "seq", "parent_call_id", "span_kind", "component_name", "component_type", "visit",
    "agent_step", "tool_name", "provider", "model", "input_tokens", "cache_read_tokens", "cache_write_tokens",
    "output_tokens", "reasoning_tokens", "usage_source", "raw_usage", "unit_prices", "cost", "list_cost", "priced",
    "price_snapshot", "started_at", "latency_ms", "status", "error", "documents_retrieved",
    "max_tokens", "contracted_cost", "component_path", "agent_instance", "agent_steps", "agent_max_steps",
    "exit_reason",
]  # fmt: skip


EVENT_COLUMNS = ["event_id", "run_id", "recorded_at", "rule", "result", "reason_code", "message", "enforced"]


def run_row(run: RunRecord) -> tuple[Any, ...]:
    a = run.attribution
    return (
        run.run_id, run.batch_id, run.session_id, run.pipeline_name, run.pipeline_hash,
        to_naive_utc(run.started_at), to_naive_utc(run.ended_at), run.status, redact(run.error),
        a.team, a.project, a.environment, a.customer_id, a.feature, a.cost_center,
        json.dumps(a.tags, sort_keys=True), a.data_classification, run.policy.result, run.policy.reason_code,
        quantize_money(run.policy.reserved_cost), quantize_money(run.total_cost), run.currency, run.simulated,
        run.genops_version, run.haystack_version, run.cache_hit, quantize_money(run.saved_cost), run.batch_line,
        run.attempt, a.user_id, run.policy.policy_hash, run.policy.override,
    )  # fmt: skip


def call_row(call: CallRecord) -> tuple[Any, ...]:
    u = call.usage
    return (
        call.call_id, call.run_id, call.seq, call.parent_call_id, call.span_kind, call.component_name,
        call.component_type, call.visit, call.agent_step, call.tool_name, call.provider, call.model,
        u.input_tokens, u.cache_read_tokens, u.cache_write_tokens, u.output_tokens, u.reasoning_tokens, u.source,
        json.dumps(json_safe(u.raw), sort_keys=True) if u.raw is not None else None,
        json.dumps(call.unit_prices.to_json(), sort_keys=True) if call.unit_prices else None,
        quantize_money(call.cost), quantize_money(call.list_cost), call.priced, call.price_snapshot,
        to_naive_utc(call.started_at), float(call.latency_ms), call.status, redact(call.error),
        call.documents_retrieved, call.max_tokens,
        quantize_money(call.contracted_cost) if call.contracted_cost is not None else None,
        call.component_path, call.agent_instance, call.agent_steps, call.agent_max_steps, call.exit_reason,
    )  # fmt: skip
