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
violation is recorded in `policy_events`, enforced or not. Explicit `rule_modes` always apply.

Two moments, the same rules:
- preflight (`evaluate`): the pipeline's configured components, before anything runs (the early check);
- per call (`ComplianceCallCheck`, registered on every run's admission): the provider, model and endpoint of the
  call about to be made, whatever the inputs changed (`generation_kwargs.model`), on every entry point, also
  when the pipeline was unknown up front (the Python API without `pipeline=`). Region comes from the endpoint
  called (policy.residency), a static `providers.NAME.region` overriding it; `customer_regions` binds a
  customer's runs to regions.

`max_cost_per_operation` holds per call: enforcing stops the run before the call whose worst case would cross
it (reason POLICY_MAX_COST, the run recorded as blocked with its spend so far); advisory records a WARNING. The
recorded cost is checked again when the run is ingested (the compliance hook).

Overrides: `--policy advisory|monitoring` (or the API's governance_policy) may weaken an enforcing rule only when
`compliance.allow_override` lists it (or is `true`); the override is stored on the run (`runs.policy_override`,
covered by the audit chain) with an event. A refused override leaves the rule enforcing and says so in an event.

Each run keeps the hash of the policy it was admitted under (`runs.policy_hash`); the policy itself (compliance
rules, mode, override, the budgets applicable to the run) is stored once in `policy_snapshots`, so a report shows
the rules in force when a run happened.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from genops_cli.config import ClassificationRules, ComplianceSettings, Settings
from genops_cli.ledger import audit
from genops_cli.ledger.hooks import InsertBatch, RunHook
from genops_cli.ledger.serialize import to_naive_utc
from genops_cli.ledger.store import Tx
from genops_cli.models import Budget, CostCheck, PolicyDecision, PolicyEvent, RunRecord
from genops_cli.policy.residency import region_allowed, region_of

if TYPE_CHECKING:
    from genops_cli.policy.admission import CallRequest, Denial, RunAdmission
    from genops_cli.tracking.capture import PipelineProfile

#: rule -> reason code (GenOps spec codes where one fits, `x_` custom codes otherwise)
REASON_CODES = {
    "providers": "POLICY_DENY_MODEL",
    "models": "POLICY_DENY_MODEL",
    "regions": "POLICY_DENY_REGION",
    "max_cost": "POLICY_MAX_COST",
    "attribution": "x_ATTRIBUTION_MISSING",
    "override": "x_POLICY_OVERRIDE",
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


@dataclass(frozen=True)
class Target:
    """What a call sends data to: the component, provider, model and endpoint (None: the provider default)."""

    component: str
    provider: str | None
    model: str | None
    endpoint: str | None = None


def check_targets(cfg: ComplianceSettings, rules: ClassificationRules, classification: str,
                  targets: Sequence[Target], customer: str | None = None) -> list[_Violation]:
    """Provider, model and region rules (and the customer's region binding) for each target."""
    out: list[_Violation] = []
    bound = cfg.customer_regions.get(customer or "") if customer else None
    for t in targets:
        prov = (t.provider or "").lower() or None
        if rules.allowed_providers is not None and prov not in rules.allowed_providers:
            out.append(_Violation("providers", (
                f"component '{t.component}' uses provider {prov or 'unknown'}; classification {classification} "
                f"allows {', '.join(rules.allowed_providers) or 'none'} "
                f"({_where(classification, cfg, 'allowed_providers')})")))
        if rules.allowed_models is not None and (
                t.model is None or not any(fnmatchcase(t.model.lower(), p.lower()) for p in rules.allowed_models)):
            out.append(_Violation("models", (
                f"component '{t.component}' uses model {t.model or 'unknown'}; classification {classification} "
                f"allows {', '.join(rules.allowed_models) or 'none'} "
                f"({_where(classification, cfg, 'allowed_models')})")))
        for allowed, rule_name in ((rules.allowed_regions, f"classification {classification}"),
                                   (bound, f"customer {customer}")):
            if allowed is None:
                continue
            region = region_of(prov, t.endpoint, cfg.provider_regions)
            if region.name is None:
                out.append(_Violation("regions", (
                    f"component '{t.component}': the region of provider {prov or 'unknown'} is unknown (endpoint "
                    f"{t.endpoint or 'default'}; set providers.{prov or 'NAME'}.region); {rule_name} allows "
                    f"regions {', '.join(allowed) or 'none'}")))
            elif not region_allowed(region.name, allowed):
                where = (_where(classification, cfg, "allowed_regions") if bound is not allowed
                         else f"compliance.customer_regions.{customer}")
                out.append(_Violation("regions", (
                    f"component '{t.component}' sends data to {prov} in region {region.name} (from the "
                    f"{region.basis}); {rule_name} allows regions {', '.join(allowed) or 'none'} ({where})")))
    return out


def _targets(profile: PipelineProfile) -> list[Target]:
    """Every component that sends data to a model (Agents: their generator), as configured in the pipeline."""
    out = []
    for name, comp in profile.components.items():
        target = comp if (comp.is_llm or comp.is_embedder) else comp.inner
        if target is not None:
            out.append(Target(name, target.provider, target.model, getattr(target, "endpoint", None)))
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


def configured_mode(settings: Settings, rule: str) -> str:
    """A rule's mode from the configuration alone (no command-line override)."""
    cfg = settings.compliance
    return cfg.rule_modes.get(rule) or cfg.mode or settings.budgets.default_policy


@dataclass
class RuleModes:
    """Each rule's effective mode for one run, after a governed `--policy` override."""

    modes: dict[str, str]
    weakened: list[str]  # enforcing rules the override was allowed to weaken
    refused: list[str]  # enforcing rules the override asked to weaken but may not

    def of(self, rule: str) -> str:
        return self.modes[rule]


def rule_modes(settings: Settings, policy_mode: str | None) -> RuleModes:
    """Apply `--policy` to every rule: explicit rule_modes always win; weakening an enforcing rule needs
    `compliance.allow_override` to list it."""
    from genops_cli.config import COMPLIANCE_RULES

    cfg = settings.compliance
    modes, weakened, refused = {}, [], []
    for rule in COMPLIANCE_RULES:
        configured = configured_mode(settings, rule)
        wanted = cfg.rule_modes.get(rule) or policy_mode or configured
        if configured == "enforcing" and wanted != "enforcing":
            if cfg.allows_override(rule):
                weakened.append(rule)
            else:
                refused.append(rule)
                wanted = "enforcing"
        modes[rule] = wanted
    return RuleModes(modes, weakened, refused)


def _override_events(run: RunRecord, modes: RuleModes, policy_mode: str | None) -> None:
    from genops_cli.ledger.audit import current_actor

    if modes.weakened:
        run.policy.override = json.dumps({"policy": policy_mode, "weakened": modes.weakened,
                                          "actor": current_actor()}, sort_keys=True)
        run.policy_events.append(PolicyEvent(
            event_id=str(uuid.uuid4()), rule="compliance:override", result="WARNING",
            reason_code=REASON_CODES["override"], enforced=False,
            message=(f"--policy {policy_mode} weakened enforcing rule(s) {', '.join(modes.weakened)} for this "
                     f"run (allowed by compliance.allow_override; by {current_actor()})")))
    if modes.refused:
        run.policy_events.append(PolicyEvent(
            event_id=str(uuid.uuid4()), rule="compliance:override", result="WARNING",
            reason_code=REASON_CODES["override"], enforced=True,
            message=(f"--policy {policy_mode} may not weaken enforcing rule(s) {', '.join(modes.refused)}: they "
                     "stay enforcing (list them in compliance.allow_override to permit it)")))


def evaluate(settings: Settings, profile: PipelineProfile, run: RunRecord,
             policy_mode: str | None = None) -> PolicyDecision:
    """Check the run's configured components against the rules of its classification (the early check); record
    a PolicyEvent per violation; note any governed override. BLOCKED: first enforcing violation; WARNING: first
    advisory one; else ALLOWED. The same rules are checked again before every call (`call_checks`)."""
    cfg = settings.compliance
    classification = run.attribution.data_classification or DEFAULT_CLASSIFICATION
    modes = rule_modes(settings, policy_mode)
    _override_events(run, modes, policy_mode)
    rules = cfg.rules_for(classification)

    violations = check_targets(cfg, rules, classification, _targets(profile), run.attribution.customer_id)
    missing = [f for f in cfg.required_attribution if not getattr(run.attribution, f, None)]
    if missing:
        flags = ", ".join("--customer" if f == "customer_id" else f"--{f.replace('_', '-')}" for f in missing)
        violations.append(_Violation("attribution", (
            f"required attribution missing: {', '.join(missing)} (compliance.required_attribution); "
            f"pass {flags} or set them under attribution: in .genops.yml")))

    decision = PolicyDecision(result="ALLOWED")
    for v in violations:
        mode = modes.of(v.rule)
        event = _event(v.rule, v.message, mode)
        run.policy_events.append(event)
        if mode == "enforcing" and decision.result != "BLOCKED":
            decision = PolicyDecision(result="BLOCKED", reason_code=event.reason_code,
                                      message=f"compliance: {v.message}")
        elif mode == "advisory" and decision.result == "ALLOWED":
            decision = PolicyDecision(result="WARNING", reason_code=event.reason_code,
                                      message=f"compliance: {v.message}")
    limit = rules.max_cost_per_operation
    if limit is not None and not run.simulated:
        run.cost_checks.append(CostCheck("compliance:max_cost", limit, modes.of("max_cost"), classification))
    return decision


def policy_snapshot(settings: Settings, run: RunRecord, policy_mode: str | None,
                    budgets: Sequence[Budget]) -> tuple[str, str]:
    """(hash, JSON body) of the policy a run is admitted under: its classification's compliance rules with
    their effective modes, the override, and the budgets applicable to the run. Equal policies hash equal."""
    cfg = settings.compliance
    classification = run.attribution.data_classification or DEFAULT_CLASSIFICATION
    rules = cfg.rules_for(classification)
    body = {
        "classification": classification,
        "modes": rule_modes(settings, policy_mode).modes,
        "policy_override": policy_mode,
        "rules": {name: (sorted(v) if isinstance(v, tuple | list) else (str(v) if v is not None else None))
                  for name, v in vars(rules).items()},
        "required_attribution": list(cfg.required_attribution),
        "provider_regions": dict(sorted(cfg.provider_regions.items())),
        "customer_regions": sorted(cfg.customer_regions.get(run.attribution.customer_id or "", []) or []),
        "budgets": sorted((b.to_json() for b in budgets), key=lambda b: b["scope"]),
    }
    text = json.dumps(body, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest(), text


class ComplianceCallCheck:
    """The per-call admission check of one run: provider, model and region rules on the call that is about to
    happen, and `max_cost_per_operation` on the run's spend plus this call's worst case."""

    def __init__(self, settings: Settings, run: RunRecord, policy_mode: str | None) -> None:
        cfg = settings.compliance
        self.cfg = cfg
        self.run = run
        self.classification = run.attribution.data_classification or DEFAULT_CLASSIFICATION
        self.rules = cfg.rules_for(self.classification)
        self.modes = rule_modes(settings, policy_mode)
        self._seen: set[tuple[str, str, str]] = set()
        self._lock = threading.Lock()

    def __call__(self, request: CallRequest, admission: RunAdmission) -> Denial | None:
        from genops_cli.policy.admission import Denial

        target = Target(request.component, request.provider, request.model, request.endpoint)
        for v in check_targets(self.cfg, self.rules, self.classification, [target],
                               self.run.attribution.customer_id):
            mode = self.modes.of(v.rule)
            if not self._found_in_preflight(v):
                self._record(v.rule, f"at call time: {v.message}", mode, (v.rule, request.component,
                                                                         request.model or ""))
            if mode == "enforcing":
                return Denial(REASON_CODES[v.rule], f"compliance: {v.message}", f"compliance:{v.rule}")
        limit = self.rules.max_cost_per_operation
        if limit is not None and not self.run.simulated:
            return self._max_cost(request, admission, limit)
        return None

    def _max_cost(self, request: CallRequest, admission: RunAdmission, limit: Decimal) -> Denial | None:
        """Enforcing: stop before a call whose worst case would take the run over the cap. Advisory and
        monitoring: a warning once the run's actual spend is over it (never on a worst case that may not come)."""
        from genops_cli.money import money_text
        from genops_cli.policy.admission import Denial

        mode = self.modes.of("max_cost")
        where = f"max_cost_per_operation {money_text(limit)} for classification {self.classification}"
        if mode == "enforcing" and admission.spent + admission.held + request.worst_case > limit:
            message = (f"{where}: spent {money_text(admission.spent)}, the next call to {request.component} may "
                       f"cost up to {money_text(request.worst_case)}; stopped before the call")
            self._record("max_cost", message, mode, ("max_cost", request.component, ""))
            return Denial(REASON_CODES["max_cost"], f"compliance: {message}", "compliance:max_cost")
        if mode != "enforcing" and admission.spent > limit:
            self._record("max_cost", f"run cost {money_text(admission.spent)} exceeds {where} [{mode}]", mode,
                         ("max_cost", "", ""))
        return None

    def _found_in_preflight(self, violation: _Violation) -> bool:
        """The same violation was already recorded by the preflight check of the configured pipeline."""
        rule = f"compliance:{violation.rule}"
        return any(e.rule == rule and e.message.startswith(violation.message) for e in list(self.run.policy_events))

    def _record(self, rule: str, message: str, mode: str, key: tuple[str, str, str]) -> None:
        """One event per rule, component and model (a looping Agent does not repeat it), and the run's decision
        becomes WARNING for an advisory violation found only at call time."""
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
            event = _event(rule, message, mode)
            self.run.policy_events.append(event)
            if mode == "advisory" and self.run.policy.result == "ALLOWED":
                self.run.policy.result = "WARNING"
                self.run.policy.reason_code = event.reason_code
                self.run.policy.message = f"compliance: {message}"


def call_checks(settings: Settings, run: RunRecord, policy_mode: str | None) -> list[Any]:
    """The per-call checks a run needs (none when its classification has no rule that applies to calls)."""
    cfg = settings.compliance
    rules = cfg.rules_for(run.attribution.data_classification or DEFAULT_CLASSIFICATION)
    if not _rules_apply_to_calls(cfg, rules, run.attribution.customer_id):
        return []  # the common case, decided before the rule modes are worked out (once per run)
    return [ComplianceCallCheck(settings, run, policy_mode)]


def _rules_apply_to_calls(cfg: Any, rules: Any, customer_id: str | None) -> bool:
    return (rules.allowed_providers is not None or rules.allowed_models is not None
            or rules.allowed_regions is not None or rules.max_cost_per_operation is not None
            or bool(cfg.customer_regions.get(customer_id or "")))


class ComplianceHook(RunHook):
    """Ledger hook (registered at start-up): checks each inserted run's recorded cost against the cost limits
    it carries (`run.cost_checks`, set in preflight), so a run ingested later from the spool is checked too."""

    name = "compliance"

    def on_insert(self, batch: InsertBatch) -> None:
        for run in batch.runs:
            for check in run.cost_checks:
                if check.rule == "compliance:max_cost":
                    _check_actual_cost(batch.tx, run, check)
        _store_snapshots(batch.tx, batch.runs)


def _check_actual_cost(tx: Tx, run: RunRecord, check: CostCheck) -> None:
    """A run that cost more than its classification's max_cost_per_operation gets a violation event (and its
    audit entry) in the run's own write transaction."""
    limit, mode, classification = check.limit, check.mode, check.classification
    if run.total_cost <= limit:
        return
    from genops_cli.money import money_text

    if any(e.rule == "compliance:max_cost" for e in run.policy_events):
        return  # already recorded when the call was stopped or warned about
    capped = run.status == "blocked" and mode == "enforcing"
    event = PolicyEvent(
        event_id=str(uuid.uuid4()),
        rule="compliance:max_cost",
        result="BLOCKED" if capped else "WARNING",
        reason_code=REASON_CODES["max_cost"],
        message=(f"run cost {money_text(run.total_cost)} exceeds max_cost_per_operation {money_text(limit)} for "
                 f"classification {classification}" + (" (stopped at the cap)" if capped else f" [{mode}]")),
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



def _store_snapshots(tx: Tx, runs: Sequence[RunRecord]) -> None:
    """Each distinct policy a run was admitted under, stored once (and audited) in policy_snapshots."""
    wanted = {r.policy.policy_hash: r for r in runs if r.policy.policy_hash and r.policy.snapshot}
    if not wanted:
        return
    hashes = sorted(wanted)
    known = {row[0] for row in tx.query(
        f"SELECT policy_hash FROM policy_snapshots WHERE policy_hash IN ({', '.join('?' for _ in hashes)})", hashes)}
    for policy_hash in hashes:
        if policy_hash in known:
            continue
        run = wanted[policy_hash]
        tx.execute("INSERT INTO policy_snapshots (policy_hash, first_seen_at, body) VALUES (?, ?, ?)",
                   [policy_hash, to_naive_utc(run.started_at), run.policy.snapshot])
        audit.append(tx, "policy_snapshot", policy_hash)


def _known_providers() -> set[str]:
    from genops_cli.pricing import get_price_book
    from genops_cli.tracking import usage

    known = set(get_price_book().providers()) | set(usage.LOCAL_PROVIDERS)
    known |= set(usage._INTEGRATION_PROVIDERS.values()) | {p for _c, p in usage._CLASS_PREFIX_PROVIDERS}
    known |= {p for _h, p in usage._HOST_PROVIDERS}
    return {p.lower() for p in known}


def _closest(name: str, candidates: Sequence[str]) -> str:
    import difflib

    found = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {found[0]!r}?" if found else ""


def rule_name_problems(providers: Sequence[str] | None, models: Sequence[str] | None,
                       regions: Sequence[str] | None, effective_providers: Sequence[str] | None
                       ) -> list[tuple[str, str]]:
    """(rule key, message) for every name in allow lists that genops does not know, and for model patterns no
    allowed provider can serve. Empty when the lists are sound."""
    from genops_cli.policy.residency import known_region

    problems: list[tuple[str, str]] = []
    if providers:
        known = _known_providers()
        for name in providers:
            if name.lower() not in known:
                hint = _closest(name.lower(), sorted(known))
                problems.append(("allowed_providers", f"unknown provider {name!r}{hint}"))
    if models:
        from genops_cli.pricing import get_price_book

        catalogue = [(r.provider.lower(), r.model.split("@")[0]) for r in get_price_book().list_models()]
        names = sorted({m for _p, m in catalogue})
        for pattern in models:
            matching = {p for p, m in catalogue if fnmatchcase(m.lower(), pattern.lower())}
            if not matching:
                problems.append(("allowed_models", f"{pattern!r} matches no model genops can price"
                                                   f"{_closest(pattern.lower(), names)}"))
            elif effective_providers is not None and not matching & {p.lower() for p in effective_providers}:
                problems.append(("allowed_models", (
                    f"{pattern!r} matches only models of {', '.join(sorted(matching))}, none of which "
                    f"allowed_providers ({', '.join(effective_providers)}) allows: the rule can never be met")))
    for name in regions or ():
        if not known_region(name):
            problems.append(("allowed_regions", f"unknown region {name!r}; use a zone (eu, us, apac, local) or a "
                                                "provider region such as eu-central-1, westeurope, europe-west4"))
    return problems
