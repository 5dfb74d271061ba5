"""Compliance rules evaluated in preflight, before any provider call (GenOps spec `genops.policy.*`).

Rules come from `.genops.yml` (validated into `config.ComplianceSettings`) and depend on the run's data
classification (`--classification`, default `attribution.data_classification`, else `internal`):

    providers:
      openai: {region: us}
      anthropic: {region: eu}
    compliance:
      mode: enforcing                  # enforcing | advisory | monitoring (default: the governance policy)
      rule_modes: {max_cost: advisory} # per-rule override: providers, models, regions, max_cost, attribution
      required_attribution: [team, project]
      classifications:
        restricted: {allowed_providers: [anthropic], allowed_regions: [eu], max_cost_per_operation: 0.05}
        confidential: {allowed_models: ["gpt-4o*", "claude-*"]}

    decision, run_cap = evaluate(settings, profile, run, policy_mode)   # a PolicyEvent per violation on the run

Modes: `enforcing` blocks the run before it spends (BLOCKED, exit 3; reason POLICY_DENY_MODEL for a provider or
model, POLICY_DENY_REGION for a region); `advisory` lets it run with WARNING; `monitoring` only records. Every
violation is recorded in `policy_events`, enforced or not. `--policy` on the command line replaces the
section-wide mode for that run; explicit `rule_modes` always apply.

`max_cost_per_operation` is enforced as a run cost cap (`evaluate` returns it; per-call admission stops the run
before a call whose worst case would cross it, as `--max-cost`) and checked after the run against the recorded
cost: a run that cost more gets a violation event in the same ledger transaction as the run.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from genops_cli.config import ClassificationRules, ComplianceSettings, Settings
from genops_cli.ledger import audit
from genops_cli.ledger.hooks import InsertBatch, RunHook
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Tx
from genops_cli.models import CostCheck, PolicyDecision, PolicyEvent, RunRecord

if TYPE_CHECKING:
    from genops_cli.tracking.capture import PipelineProfile

#: rule -> reason code (GenOps spec codes where one fits, `x_` custom codes otherwise)
REASON_CODES = {
    "providers": "POLICY_DENY_MODEL",
    "models": "POLICY_DENY_MODEL",
    "regions": "POLICY_DENY_REGION",
    "max_cost": "x_MAX_COST_PER_OPERATION",
    "attribution": "x_ATTRIBUTION_MISSING",
}
DEFAULT_CLASSIFICATION = "internal"

class _Violation:
    def __init__(self, rule: str, message: str) -> None:
        self.rule = rule
        self.message = message


def _mode(cfg: ComplianceSettings, base_mode: str, rule: str) -> str:
    return cfg.rule_modes.get(rule, base_mode)


def _where(classification: str, cfg: ComplianceSettings, key: str) -> str:
    specific = cfg.classifications.get(classification)
    if specific is not None and getattr(specific, key) is not None:
        return f"compliance.classifications.{classification}.{key}"
    return f"compliance.{key}"


def check_targets(cfg: ComplianceSettings, rules: ClassificationRules, classification: str,
                  targets: list[tuple[str, str | None, str | None]]) -> list[_Violation]:
    """Provider, model and region rules for (component, provider, model) targets."""
    out: list[_Violation] = []
    for component, provider, model in targets:
        prov = (provider or "").lower() or None
        if rules.allowed_providers is not None and prov not in rules.allowed_providers:
            out.append(_Violation("providers", (
                f"component '{component}' uses provider {prov or 'unknown'}; classification {classification} "
                f"allows {', '.join(rules.allowed_providers) or 'none'} "
                f"({_where(classification, cfg, 'allowed_providers')})")))
        if rules.allowed_models is not None and (
                model is None or not any(fnmatchcase(model.lower(), p.lower()) for p in rules.allowed_models)):
            out.append(_Violation("models", (
                f"component '{component}' uses model {model or 'unknown'}; classification {classification} "
                f"allows {', '.join(rules.allowed_models) or 'none'} "
                f"({_where(classification, cfg, 'allowed_models')})")))
        if rules.allowed_regions is not None:
            region = cfg.provider_regions.get(prov or "")
            if region is None:
                out.append(_Violation("regions", (
                    f"component '{component}': provider {prov or 'unknown'} has no region configured "
                    f"(set providers.{prov or 'NAME'}.region); classification {classification} allows regions "
                    f"{', '.join(rules.allowed_regions) or 'none'}")))
            elif region not in rules.allowed_regions:
                out.append(_Violation("regions", (
                    f"component '{component}' sends data to {prov} in region {region}; classification "
                    f"{classification} allows regions {', '.join(rules.allowed_regions) or 'none'} "
                    f"({_where(classification, cfg, 'allowed_regions')})")))
    return out


def _targets(profile: PipelineProfile) -> list[tuple[str, str | None, str | None]]:
    """(component, provider, model) of every component that sends data to a model (Agents: their generator)."""
    out = []
    for name, comp in profile.components.items():
        target = comp if (comp.is_llm or comp.is_embedder) else comp.inner
        if target is not None:
            out.append((name, target.provider, target.model))
    return out


def _event(rule: str, message: str, mode: str) -> PolicyEvent:
    enforced = mode == "enforcing"
    return PolicyEvent(
        event_id=str(uuid.uuid4()),
        rule=f"compliance:{rule}",
        result="BLOCKED" if enforced else "WARNING",
        reason_code=REASON_CODES[rule],
        message=message + ("" if mode != "monitoring" else " [monitoring]"),
        enforced=enforced,
    )


def evaluate(settings: Settings, profile: PipelineProfile, run: RunRecord,
             policy_mode: str | None = None) -> tuple[PolicyDecision, Decimal | None]:
    """Check the run against the compliance rules of its classification; record a PolicyEvent per violation.

    Returns the decision (BLOCKED: first enforcing violation, WARNING: first advisory one, else ALLOWED) and the
    enforcing run cost cap (`max_cost_per_operation`) or None.
    """
    cfg = settings.compliance
    classification = run.attribution.data_classification or DEFAULT_CLASSIFICATION
    base_mode = policy_mode or cfg.mode or settings.budgets.default_policy
    rules = cfg.rules_for(classification)

    violations = check_targets(cfg, rules, classification, _targets(profile))
    missing = [f for f in cfg.required_attribution if not getattr(run.attribution, f, None)]
    if missing:
        flags = ", ".join("--customer" if f == "customer_id" else f"--{f.replace('_', '-')}" for f in missing)
        violations.append(_Violation("attribution", (
            f"required attribution missing: {', '.join(missing)} (compliance.required_attribution); "
            f"pass {flags} or set them under attribution: in .genops.yml")))

    decision = PolicyDecision(result="ALLOWED")
    for v in violations:
        mode = _mode(cfg, base_mode, v.rule)
        event = _event(v.rule, v.message, mode)
        run.policy_events.append(event)
        if mode == "enforcing" and decision.result != "BLOCKED":
            decision = PolicyDecision(result="BLOCKED", reason_code=event.reason_code,
                                      message=f"compliance: {v.message}")
        elif mode == "advisory" and decision.result == "ALLOWED":
            decision = PolicyDecision(result="WARNING", reason_code=event.reason_code,
                                      message=f"compliance: {v.message}")

    limit = rules.max_cost_per_operation
    run_cap = None
    if limit is not None and decision.result != "BLOCKED" and not run.simulated:
        mode = _mode(cfg, base_mode, "max_cost")
        if mode == "enforcing":
            run_cap = limit  # per-call admission stops the run before a call that would cross it
        run.cost_checks.append(CostCheck("compliance:max_cost", limit, mode, classification))
    return decision, run_cap


class ComplianceHook(RunHook):
    """Ledger hook (registered at start-up): checks each inserted run's recorded cost against the cost limits
    it carries (`run.cost_checks`, set in preflight), so a run ingested later from the spool is checked too."""

    name = "compliance"

    def on_insert(self, batch: InsertBatch) -> None:
        for run in batch.runs:
            for check in run.cost_checks:
                if check.rule == "compliance:max_cost":
                    _check_actual_cost(batch.tx, run, check)


def _check_actual_cost(tx: Tx, run: RunRecord, check: CostCheck) -> None:
    """A run that cost more than its classification's max_cost_per_operation gets a violation event (and its
    audit entry) in the run's own write transaction."""
    limit, mode, classification = check.limit, check.mode, check.classification
    if run.total_cost <= limit:
        return
    capped = run.status == "blocked" and mode == "enforcing"
    event = PolicyEvent(
        event_id=str(uuid.uuid4()),
        rule="compliance:max_cost",
        result="BLOCKED" if capped else "WARNING",
        reason_code=REASON_CODES["max_cost"],
        message=(f"run cost ${run.total_cost} exceeds max_cost_per_operation ${limit} for classification "
                 f"{classification}" + (" (stopped at the cap)" if capped else f" [{mode}]")),
        enforced=capped,
    )
    tx.execute(
        "INSERT INTO policy_events (event_id, run_id, recorded_at, rule, result, reason_code, message, enforced) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        [event.event_id, run.run_id, to_naive_utc(run.ended_at or run.started_at), event.rule, event.result,
         event.reason_code, event.message, event.enforced],
    )
    audit.append(tx, "policy", event.event_id)
    run.policy_events.append(event)

