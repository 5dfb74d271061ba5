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


#: SQL for each spec attribute, over runs r joined with per-run call stats x (untyped, unpriced).
SPEC_SQL: dict[str, str] = {
    "genops.team": "COALESCE(r.team, '') <> ''",
    "genops.project": "COALESCE(r.project, '') <> ''",
    "genops.environment": "COALESCE(r.environment, '') <> ''",
    "genops.operation.name": "COALESCE(r.pipeline_name, '') <> ''",
    "genops.operation.type": "COALESCE(x.untyped, 0) = 0",
    "genops.accounting.reserved": "r.reserved_cost IS NOT NULL",
    "genops.accounting.actual": "r.total_cost IS NOT NULL AND COALESCE(x.unpriced, 0) = 0",
    "genops.accounting.unit": "COALESCE(r.currency, '') <> ''",
    "genops.policy.result": f"r.policy_result IN ({', '.join(repr(v) for v in POLICY_RESULTS)})",
    "genops.policy.reason_code": "r.policy_result = 'ALLOWED' OR COALESCE(r.policy_reason_code, '') <> ''",
    "genops.spec.version": "COALESCE(r.genops_version, '') <> ''",
}
_CLASS_SQL = "CASE WHEN COALESCE(r.data_classification, '') = '' THEN 'unclassified' ELSE r.data_classification END"
# GROUPING(r.team, r.environment, class, r.policy_hash) of each grouping set.
_BY_TEAM, _BY_ENV, _BY_CLASS, _BY_POLICY, _ALL = 7, 11, 13, 14, 15
_PROVIDER = -1  # the provider rows of the statement behind the report
# Typed: PostgreSQL resolves UNION ALL column types from the branches, and untyped NULLs would become text.
_NO_PROVIDER = ("CAST(NULL AS VARCHAR), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), CAST(NULL AS BIGINT), "
                "CAST(NULL AS BIGINT), CAST(NULL AS DECIMAL(38,18))")


def _run_groups(tx: Tx, where: str, params: list[Any]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Per team, environment, classification and policy hash, and in total: runs, cost, violating runs and their
    cost, blocked runs and spec-attribute counts (rows shaped like GROUPING SETS rows, grouping id first); and the
    model calls per provider. One statement: the runs grouped once by all four keys (every figure is a sum, so the
    five roll-ups are added up here, exactly), the per-run call checks, the provider usage."""
    flag = "CASE WHEN {} THEN 1 ELSE 0 END"
    spec = ", ".join(f"SUM({flag.format(cond)})" for cond in SPEC_SQL.values())
    conforming = " AND ".join(f"({cond})" for cond in SPEC_SQL.values())
    # Only runs with an untyped component or an unpriced model call need a row in x (the others count as 0): the
    # calls are filtered before they are grouped by run.
    untyped, unpriced = "(c.component_type IS NULL OR c.component_type = '')", "(c.model IS NOT NULL AND NOT c.priced)"
    rows = tx.query(
        f"""WITH x AS (
                SELECT c.run_id, SUM(CASE WHEN {untyped} THEN 1 ELSE 0 END) AS untyped,
                       SUM(CASE WHEN {unpriced} THEN 1 ELSE 0 END) AS unpriced
                FROM calls c JOIN runs r ON r.run_id = c.run_id
                WHERE {where} AND ({untyped} OR {unpriced})
                GROUP BY c.run_id),
            v AS (SELECT DISTINCT e.run_id FROM policy_events e JOIN runs r ON r.run_id = e.run_id
                  WHERE {where} AND e.result <> 'ALLOWED')
            SELECT 0, r.team, r.environment, {_CLASS_SQL}, r.policy_hash, COUNT(*), SUM(r.total_cost),
                   SUM(CASE WHEN v.run_id IS NOT NULL THEN 1 ELSE 0 END),
                   SUM(CASE WHEN v.run_id IS NOT NULL THEN r.total_cost END),
                   SUM(CASE WHEN r.status = 'blocked' THEN 1 ELSE 0 END), {spec}, SUM({flag.format(conforming)}),
                   {_NO_PROVIDER}
            FROM runs r LEFT JOIN x ON x.run_id = r.run_id LEFT JOIN v ON v.run_id = r.run_id
            WHERE {where}
            GROUP BY r.team, r.environment, {_CLASS_SQL}, r.policy_hash
            UNION ALL
            SELECT {_PROVIDER}, {', '.join('NULL' for _ in range(10 + len(SPEC_SQL)))},
                   c.provider, COUNT(DISTINCT c.run_id), COUNT(*), SUM(c.input_tokens), SUM(c.output_tokens),
                   SUM(c.cost)
            FROM calls c JOIN runs r ON r.run_id = c.run_id
            WHERE {where} AND c.model IS NOT NULL
            GROUP BY c.provider""",
        params * 4)
    fine = [r[:-6] for r in rows if r[0] != _PROVIDER]
    groups: list[tuple[Any, ...]] = []
    for grouping in (_BY_TEAM, _BY_ENV, _BY_CLASS, _BY_POLICY, _ALL):
        # GROUPING() bits, highest first: team 8, environment 4, classification 2, policy hash 1 (1 = rolled up).
        kept = [i for i, bit in ((1, 8), (2, 4), (3, 2), (4, 1)) if not grouping & bit]
        rolled: dict[tuple[Any, ...], list[Any]] = {}
        for row in fine:
            key = tuple(row[i] for i in kept)
            sums = rolled.get(key)
            rolled[key] = list(row[5:]) if sums is None else [_add(a, b) for a, b in zip(sums, row[5:], strict=True)]
        for key, sums in rolled.items():
            names = dict(zip(kept, key, strict=True))
            groups.append((grouping, *(names.get(i) for i in (1, 2, 3, 4)), *sums))
    if not fine:  # no runs: SQL's grand total row still exists (COUNT 0, NULL sums)
        groups.append((_ALL, None, None, None, None, 0, *(None for _ in range(5 + len(SPEC_SQL)))))
    return groups, [r[-6:] for r in rows if r[0] == _PROVIDER]


def _add(a: Any, b: Any) -> Any:
    """SUM semantics: NULL plus NULL stays NULL."""
    if a is None:
        return b
    return a if b is None else a + b


def _violations(tx: Tx, where: str, params: list[Any], runs_with: int) -> dict[str, Any]:
    """Counts per reason code (rules, enforced, distinct runs) and the 50 most recent violations, in SQL."""
    reason = "COALESCE(e.reason_code, 'UNSPECIFIED')"
    scope = f"FROM policy_events e JOIN runs r ON r.run_id = e.run_id WHERE {where} AND e.result <> 'ALLOWED'"
    rows = tx.query(f"""SELECT GROUPING(e.rule), {reason}, e.rule, COUNT(*),
                               SUM(CASE WHEN e.enforced THEN 1 ELSE 0 END), COUNT(DISTINCT e.run_id)
                        {scope} GROUP BY GROUPING SETS (({reason}, e.rule), ({reason}))""", params)
    by_reason: dict[str, dict[str, Any]] = {}
    for coarse, code, rule, count, enforced, runs in rows:
        entry = by_reason.setdefault(code, {"reason_code": code, "count": 0, "enforced": 0, "runs": 0, "rules": []})
        if coarse:
            entry.update(count=int(count), enforced=int(enforced or 0), runs=int(runs))
        else:
            entry["rules"].append(rule)
    recent = tx.query_dicts(f"""SELECT e.run_id, e.recorded_at, e.rule, e.result, e.reason_code, e.enforced,
                                       e.message {scope} ORDER BY e.recorded_at DESC, e.event_id LIMIT 50""", params)
    return {
        "total": sum(v["count"] for v in by_reason.values()),
        "runs_with_violations": runs_with,
        "by_reason_code": [{**v, "rules": sorted(v["rules"])}
                           for v in sorted(by_reason.values(), key=lambda v: (-v["count"], v["reason_code"]))],
        "recent": [
            {"run_id": e["run_id"], "recorded_at": e["recorded_at"].isoformat() + "Z", "rule": e["rule"],
             "result": e["result"], "reason_code": e["reason_code"], "enforced": bool(e["enforced"]),
             "message": e["message"]}
            for e in recent
        ],
    }


def compliance_report(tx: Tx, days: int = 30, settings: Settings | None = None, now: datetime | None = None,
                      period: Period | None = None, verify_audit: bool = True,
                      with_operations: bool = True) -> ComplianceReport:
    """Build the report for the last `days` days, or for `period` when given (simulated runs excluded).

    The summary is computed in SQL (memory does not grow with the number of runs); `with_operations` adds the
    per-operation rows of the CSV form."""
    period = period or days_period(days, now)
    where, params = build_where(Filters(), period, alias="r", simulated=False)
    groups, providers = _run_groups(tx, where, params)
    total = next((g for g in groups if g[0] == _ALL), None)
    n_runs = int(total[5]) if total else 0
    violating = int(total[7] or 0) if total else 0
    spec_counts = [int(v or 0) for v in total[10:-1]] if total else [0] * len(SPEC_SQL)
    currency = [str(c[0]) for c in tx.query(
        f"SELECT DISTINCT r.currency FROM runs r WHERE {where} AND r.currency IS NOT NULL AND r.currency <> '' "
        "ORDER BY r.currency", params)] or ["USD"]
    regions = settings.compliance.provider_regions if settings is not None else {}
    provider_usage = [
        {"provider": p or "unknown", "region": regions.get((p or "").lower()), "runs": int(n_runs_p),
         "calls": int(n_calls), "input_tokens": int(inp or 0), "output_tokens": int(out or 0),
         "cost": money_json(Decimal(cost or 0))}
        for p, n_runs_p, n_calls, inp, out, cost in sorted(providers, key=lambda row: (-(row[5] or 0), row[0] or ""))
    ]
    classes = [{"classification": g[3], "runs": int(g[5]), "compliant": int(g[5]) - int(g[7] or 0),
                "blocked": int(g[9] or 0), "cost": money_json(Decimal(g[6] or 0))}
               for g in sorted((g for g in groups if g[0] == _BY_CLASS), key=lambda g: g[3])]
    data: dict[str, Any] = {
        "period": {**period.to_json(), "days": (period.end - period.start).days},
        "generated_at": datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z",
        "total_operations": n_runs,
        "compliant_operations": n_runs - violating,
        "compliance_rate": ratio(n_runs - violating, n_runs),
        "blocked_operations": int(total[9] or 0) if total else 0,
        "violations": _violations(tx, where, params, violating),
        "cost_summary": {
            "total_cost": money_json(Decimal(total[6] or 0) if total else ZERO),
            "currency": currency[0] if len(currency) == 1 else ",".join(currency),
            "cost_of_runs_with_violations": money_json(Decimal(total[8] or 0) if total else ZERO),
            "by_team": _sum_by(groups, _BY_TEAM, 1),
            "by_environment": _sum_by(groups, _BY_ENV, 2),
        },
        "provider_usage": provider_usage,
        "data_classification_breakdown": classes,
        "spec_conformance": {
            "spec": f"GenOps spec v{SPEC_VERSION}",
            "runs_checked": n_runs,
            "conforming_runs": int(total[-1] or 0) if total else 0,
            "share": ratio(int(total[-1] or 0) if total else 0, n_runs),
            "attributes": [{"attribute": name, "present": n, "share": ratio(n, n_runs)}
                           for name, n in zip(SPEC_SQL, spec_counts, strict=True)],
        },
        "rules": _rules_summary(settings),
        "rules_in_force": _rules_in_force(tx, {g[4]: int(g[5]) for g in groups if g[0] == _BY_POLICY}),
        "overrides": [{"run_id": run_id, "override": json.loads(override)} for run_id, override in tx.query(
            f"SELECT r.run_id, r.policy_override FROM runs r WHERE {where} AND r.policy_override IS NOT NULL "
            "ORDER BY r.started_at, r.run_id", params)],
        "simulated_runs_excluded": True,
    }
    if verify_audit:
        checked, problems = audit.verify(tx)
        seq, head = audit.chain_head(tx)
        data["audit"] = {"entries": checked, "intact": not problems, "problems": len(problems),
                         "first_problem": problems[0].message if problems else None, "head_seq": seq,
                         "head_hash": head}
    return ComplianceReport(period, data, _operations(tx, where, params) if with_operations else [])


def _rules_in_force(tx: Tx, counts: dict[str | None, int]) -> list[dict[str, Any]]:
    """The policies the window's runs were admitted under (from policy_snapshots), most used first; runs recorded
    before genops kept policy hashes are counted under `null`."""
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


def _operations(tx: Tx, where: str, params: list[Any]) -> list[dict[str, Any]]:
    """One row per operation (the CSV form), with its violation counts."""
    rows = tx.query_dicts(
        "SELECT r.run_id, r.started_at, r.pipeline_name, r.team, r.project, r.environment, r.customer_id, "
        "r.data_classification, r.status, r.policy_result, r.policy_reason_code, r.total_cost, r.currency, "
        "r.policy_hash, r.policy_override, COALESCE(v.n, 0) AS violations, COALESCE(v.enforced, 0) AS enforced "
        "FROM runs r LEFT JOIN (SELECT e.run_id, COUNT(*) AS n, SUM(CASE WHEN e.enforced THEN 1 ELSE 0 END) "
        "AS enforced FROM policy_events e WHERE e.result <> 'ALLOWED' GROUP BY e.run_id) v ON v.run_id = r.run_id "
        f"WHERE {where} ORDER BY r.started_at, r.run_id", params)
    return [{
        "run_id": r["run_id"], "started_at": r["started_at"].isoformat() + "Z", "pipeline": r["pipeline_name"],
        "team": r["team"], "project": r["project"], "environment": r["environment"], "customer_id": r["customer_id"],
        "data_classification": r["data_classification"], "status": r["status"], "policy_result": r["policy_result"],
        "policy_reason_code": r["policy_reason_code"], "violations": int(r["violations"]),
        "enforced_violations": int(r["enforced"] or 0),
        "total_cost": money_json(Decimal(r["total_cost"] or 0)), "currency": r["currency"],
        "policy_hash": r["policy_hash"], "policy_override": r["policy_override"],
    } for r in rows]


def _sum_by(groups: list[tuple[Any, ...]], grouping: int, column: int) -> dict[str, str]:
    """Cost per team / environment from the grouping-set rows (unset and empty names are "unattributed")."""
    totals: dict[str, Decimal] = {}
    for g in groups:
        if g[0] == grouping:
            name = g[column] or "unattributed"
            totals[name] = totals.get(name, ZERO) + Decimal(g[6] or 0)
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
