"""The compliance report an auditor gets: operations, violations, cost, providers, classifications, GenOps spec
conformance and the audit-chain status, from the ledger only.

    report = compliance_report(tx, days=30, settings=settings)
    report.to_json()            # the `genops compliance report --format json` object
    render_compliance(report, "html")    # or "md", or "csv" (one row per operation)

An operation is a non-simulated run that started in the window. A violation is a `policy_events` row whose
result is not ALLOWED (compliance and budget rules alike, enforced or only recorded); a compliant operation has
none. Spec conformance checks, per run, the attributes the GenOps spec v0.1 requires of a governed step:

    genops.team / .project / .environment          runs.team, project, environment set
    genops.operation.name                          runs.pipeline_name set
    genops.operation.type                          every recorded call has a component type
    genops.accounting.reserved                     runs.reserved_cost recorded
    genops.accounting.actual                       total_cost recorded and every model call priced
    genops.accounting.unit                         runs.currency set
    genops.policy.result                           ALLOWED | WARNING | BLOCKED | RATE_LIMITED
    genops.policy.reason_code                      set whenever the result is not ALLOWED
    genops.spec.version                            written by genops (runs.genops_version set)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from genops_cli.analysis.analyze import ratio
from genops_cli.analysis.filters import Filters, build_where
from genops_cli.analysis.periods import Period, window_before
from genops_cli.errors import UsageError
from genops_cli.ledger import audit
from genops_cli.ledger.store import Tx
from genops_cli.money import money_json

if TYPE_CHECKING:
    from genops_cli.config import Settings

SPEC_VERSION = "0.1"
ZERO = Decimal(0)
POLICY_RESULTS = ("ALLOWED", "WARNING", "BLOCKED", "RATE_LIMITED")

#: spec attribute -> test on a run dict (with `calls`, `untyped_calls`, `unpriced_calls` from the calls table)
SPEC_ATTRIBUTES: dict[str, Callable[[dict[str, Any]], bool]] = {
    "genops.team": lambda r: bool(r["team"]),
    "genops.project": lambda r: bool(r["project"]),
    "genops.environment": lambda r: bool(r["environment"]),
    "genops.operation.name": lambda r: bool(r["pipeline_name"]),
    "genops.operation.type": lambda r: r["untyped_calls"] == 0,
    "genops.accounting.reserved": lambda r: r["reserved_cost"] is not None,
    "genops.accounting.actual": lambda r: r["total_cost"] is not None and r["unpriced_calls"] == 0,
    "genops.accounting.unit": lambda r: bool(r["currency"]),
    "genops.policy.result": lambda r: r["policy_result"] in POLICY_RESULTS,
    "genops.policy.reason_code": lambda r: r["policy_result"] == "ALLOWED" or bool(r["policy_reason_code"]),
    "genops.spec.version": lambda r: bool(r["genops_version"]),
}


def days_period(days: int, now: datetime | None = None) -> Period:
    if days <= 0:
        raise UsageError(f"--days {days}: must be a positive number of days")
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    if days > timedelta.max.days:
        raise UsageError(f"--days {days}: out of range; use at most {timedelta.max.days}")
    return Period(window_before(now, timedelta(days=days), "--days", days), now, f"last {days} days")


@dataclass
class ComplianceReport:
    period: Period
    data: dict[str, Any] = field(default_factory=dict)
    #: one row per operation (the CSV form), not part of the JSON summary
    operations: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return self.data


def compliance_report(tx: Tx, days: int = 30, settings: Settings | None = None, now: datetime | None = None,
                      period: Period | None = None,
                      verify_audit: bool = True) -> ComplianceReport:
    """Build the report for the last `days` days, or for `period` when given (simulated runs excluded)."""
    period = period or days_period(days, now)
    where, params = build_where(Filters(), period, alias="r", simulated=False)
    runs = tx.query_dicts(
        "SELECT r.run_id, r.team, r.project, r.environment, r.pipeline_name, r.data_classification, r.status, "
        "r.policy_result, r.policy_reason_code, r.reserved_cost, r.total_cost, r.currency, r.genops_version, "
        "r.started_at, r.customer_id, r.policy_hash, r.policy_override "
        f"FROM runs r WHERE {where} ORDER BY r.started_at, r.run_id", params)
    call_stats = {row[0]: row[1:] for row in tx.query(
        "SELECT c.run_id, COUNT(*), "
        "SUM(CASE WHEN c.component_type IS NULL OR c.component_type = '' THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN c.model IS NOT NULL AND NOT c.priced THEN 1 ELSE 0 END) "
        f"FROM calls c JOIN runs r ON r.run_id = c.run_id WHERE {where} GROUP BY c.run_id", params)}
    events = tx.query_dicts(
        "SELECT e.event_id, e.run_id, e.recorded_at, e.rule, e.result, e.reason_code, e.message, e.enforced "
        f"FROM policy_events e JOIN runs r ON r.run_id = e.run_id WHERE {where} AND e.result <> 'ALLOWED' "
        "ORDER BY e.recorded_at DESC, e.event_id", params)
    providers = tx.query(
        "SELECT c.provider, COUNT(DISTINCT c.run_id), COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens), "
        "SUM(c.cost) FROM calls c JOIN runs r ON r.run_id = c.run_id "
        f"WHERE {where} AND c.model IS NOT NULL GROUP BY c.provider", params)

    violating = {e["run_id"] for e in events}
    currency = sorted({r["currency"] for r in runs if r["currency"]}) or ["USD"]
    total_cost = sum((Decimal(r["total_cost"] or 0) for r in runs), ZERO)

    by_reason: dict[str, dict[str, Any]] = {}
    for e in events:
        code = e["reason_code"] or "UNSPECIFIED"
        entry = by_reason.setdefault(code, {"reason_code": code, "count": 0, "enforced": 0, "runs": set(),
                                            "rules": set()})
        entry["count"] += 1
        entry["enforced"] += 1 if e["enforced"] else 0
        entry["runs"].add(e["run_id"])
        entry["rules"].add(e["rule"])
    violations = {
        "total": len(events),
        "runs_with_violations": len(violating),
        "by_reason_code": [
            {"reason_code": v["reason_code"], "count": v["count"], "enforced": v["enforced"], "runs": len(v["runs"]),
             "rules": sorted(v["rules"])}
            for v in sorted(by_reason.values(), key=lambda v: (-v["count"], v["reason_code"]))
        ],
        "recent": [
            {"run_id": e["run_id"], "recorded_at": e["recorded_at"].isoformat() + "Z", "rule": e["rule"],
             "result": e["result"], "reason_code": e["reason_code"], "enforced": bool(e["enforced"]),
             "message": e["message"]}
            for e in events[:50]
        ],
    }

    classes: dict[str, dict[str, Any]] = {}
    for r in runs:
        level = r["data_classification"] or "unclassified"
        entry = classes.setdefault(level, {"classification": level, "runs": 0, "compliant": 0, "blocked": 0,
                                           "cost": ZERO})
        entry["runs"] += 1
        entry["compliant"] += 0 if r["run_id"] in violating else 1
        entry["blocked"] += 1 if r["status"] == "blocked" else 0
        entry["cost"] += Decimal(r["total_cost"] or 0)
    regions = settings.compliance.provider_regions if settings is not None else {}
    provider_usage = [
        {"provider": p or "unknown", "region": regions.get((p or "").lower()), "runs": int(n_runs),
         "calls": int(n_calls), "input_tokens": int(inp or 0), "output_tokens": int(out or 0),
         "cost": money_json(Decimal(cost or 0))}
        for p, n_runs, n_calls, inp, out, cost in sorted(providers, key=lambda row: (-(row[5] or 0), row[0] or ""))
    ]

    present = dict.fromkeys(SPEC_ATTRIBUTES, 0)
    conforming = 0
    for r in runs:
        stats = call_stats.get(r["run_id"], (0, 0, 0))
        r.update(calls=int(stats[0] or 0), untyped_calls=int(stats[1] or 0), unpriced_calls=int(stats[2] or 0))
        ok = True
        for name, test in SPEC_ATTRIBUTES.items():
            if test(r):
                present[name] += 1
            else:
                ok = False
        conforming += 1 if ok else 0
    spec = {
        "spec": f"GenOps spec v{SPEC_VERSION}",
        "runs_checked": len(runs),
        "conforming_runs": conforming,
        "share": ratio(conforming, len(runs)),
        "attributes": [{"attribute": name, "present": n, "share": ratio(n, len(runs))} for name, n in present.items()],
    }

    data: dict[str, Any] = {
        "period": {**period.to_json(), "days": (period.end - period.start).days},
        "generated_at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
        "total_operations": len(runs),
        "compliant_operations": len(runs) - len(violating),
        "compliance_rate": ratio(len(runs) - len(violating), len(runs)),
        "blocked_operations": sum(1 for r in runs if r["status"] == "blocked"),
        "violations": violations,
        "cost_summary": {
            "total_cost": money_json(total_cost),
            "currency": currency[0] if len(currency) == 1 else ",".join(currency),
            "cost_of_runs_with_violations": money_json(sum(
                (Decimal(r["total_cost"] or 0) for r in runs if r["run_id"] in violating), ZERO)),
            "by_team": _sum_by(runs, "team"),
            "by_environment": _sum_by(runs, "environment"),
        },
        "provider_usage": provider_usage,
        "data_classification_breakdown": [
            {**c, "cost": money_json(c["cost"])} for c in sorted(classes.values(), key=lambda c: c["classification"])
        ],
        "spec_conformance": spec,
        "rules": _rules_summary(settings),
        "rules_in_force": _rules_in_force(tx, runs),
        "overrides": [{"run_id": r["run_id"], "override": json.loads(r["policy_override"])}
                      for r in runs if r["policy_override"]],
        "simulated_runs_excluded": True,
    }
    if verify_audit:
        checked, problems = audit.verify(tx)
        seq, head = audit.chain_head(tx)
        data["audit"] = {"entries": checked, "intact": not problems, "problems": len(problems),
                         "first_problem": problems[0].message if problems else None, "head_seq": seq,
                         "head_hash": head}
    return ComplianceReport(period, data, _operations(runs, events))


def _rules_in_force(tx: Tx, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The policies the window's runs were admitted under (from policy_snapshots), most used first; runs recorded
    before genops kept policy hashes are counted under `null`."""
    counts: dict[str | None, int] = {}
    for r in runs:
        counts[r["policy_hash"]] = counts.get(r["policy_hash"], 0) + 1
    hashes = sorted(h for h in counts if h)
    bodies = {h: (seen, body) for h, seen, body in tx.query(
        "SELECT policy_hash, first_seen_at, body FROM policy_snapshots WHERE policy_hash IN "
        f"({', '.join('?' for _ in hashes)})", hashes)} if hashes else {}
    out = []
    for policy_hash, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] or "")):
        seen, body = bodies.get(policy_hash, (None, None)) if policy_hash else (None, None)
        out.append({"policy_hash": policy_hash, "runs": n,
                    "first_seen_at": seen.isoformat() + "Z" if seen is not None else None,
                    "policy": json.loads(body) if body else None})
    return out


#: Columns of the CSV form: one row per operation.
OPERATION_COLUMNS = ["run_id", "started_at", "pipeline", "team", "project", "environment", "customer_id",
                     "data_classification", "status", "policy_result", "policy_reason_code", "violations",
                     "enforced_violations", "total_cost", "currency", "policy_hash", "policy_override"]


def _operations(runs: list[dict[str, Any]], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    per_run: dict[str, list[int]] = {}
    for e in events:
        counts = per_run.setdefault(e["run_id"], [0, 0])
        counts[0] += 1
        counts[1] += 1 if e["enforced"] else 0
    return [{
        "run_id": r["run_id"], "started_at": r["started_at"].isoformat() + "Z", "pipeline": r["pipeline_name"],
        "team": r["team"], "project": r["project"], "environment": r["environment"], "customer_id": r["customer_id"],
        "data_classification": r["data_classification"], "status": r["status"], "policy_result": r["policy_result"],
        "policy_reason_code": r["policy_reason_code"], "violations": per_run.get(r["run_id"], [0, 0])[0],
        "enforced_violations": per_run.get(r["run_id"], [0, 0])[1],
        "total_cost": money_json(Decimal(r["total_cost"] or 0)), "currency": r["currency"],
        "policy_hash": r["policy_hash"], "policy_override": r["policy_override"],
    } for r in runs]


def _sum_by(runs: list[dict[str, Any]], key: str) -> dict[str, str]:
    totals: dict[str, Decimal] = {}
    for r in runs:
        name = r[key] or "unattributed"
        totals[name] = totals.get(name, ZERO) + Decimal(r["total_cost"] or 0)
    return {k: money_json(v) for k, v in sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))}


def _rules_summary(settings: Settings | None) -> dict[str, Any] | None:
    """The configured rules, so the auditor sees what was checked."""
    if settings is None:
        return None
    cfg = settings.compliance

    def rules(r: Any) -> dict[str, Any]:
        return {
            "allowed_providers": list(r.allowed_providers) if r.allowed_providers is not None else None,
            "allowed_models": list(r.allowed_models) if r.allowed_models is not None else None,
            "allowed_regions": list(r.allowed_regions) if r.allowed_regions is not None else None,
            "max_cost_per_operation": money_json(r.max_cost_per_operation)
            if r.max_cost_per_operation is not None else None,
        }

    return {
        "mode": cfg.mode or settings.budgets.default_policy,
        "rule_modes": dict(cfg.rule_modes),
        "required_attribution": list(cfg.required_attribution),
        "default": rules(cfg.defaults),
        "classifications": {k: rules(cfg.rules_for(k)) for k in sorted(cfg.classifications)},
        "provider_regions": dict(cfg.provider_regions),
    }


def render_compliance(report: ComplianceReport, fmt: str) -> str:
    """The report as `md` or `html` (jinja2 templates shipped in the package), or `csv`: one row per operation,
    spreadsheet-safe."""
    from genops_cli.analysis.billing import template_env

    if fmt == "csv":
        import io

        from genops_cli.safe_output import csv_writer

        buffer = io.StringIO()
        writer = csv_writer(buffer)
        writer.writerow(OPERATION_COLUMNS)
        for row in report.operations:
            writer.writerow(["" if row[c] is None else row[c] for c in OPERATION_COLUMNS])
        return buffer.getvalue()
    name = {"md": "compliance_report.md.j2", "html": "compliance_report.html.j2"}[fmt]
    return template_env().get_template(name).render(r=report.to_json())
