"""Settings: `.genops.yml` + GENOPS_* environment + flags, validated into one object.

Precedence is flags > environment > file > defaults. Errors name the file, the key and its line:

    settings = load_settings(config_path=None, overrides={"team": "ml"})
    settings.attribution.team, settings.ledger, settings.budgets.daily_limit

The file schema (all keys optional)::

    ledger: ~/.genops/ledger.duckdb          # or postgresql://user@host/db
    haystack:                                # the guide's section, kept compatible
      default_team: ml
      default_project: search
      environment: production
      daily_budget_limit: 50.00
      monthly_budget_limit: 1000.00
      governance_policy: advisory            # advisory | enforcing | monitoring (aliases: enforced, strict)
    attribution: {team, project, environment, customer_id, feature, cost_center, user_id, data_classification}
    budgets:
      timezone: Europe/Berlin                # calendar periods reset in this zone
      alert_at: [50, 80, 95, 100]
      scopes:
        "team:ml": {daily: 10, monthly: 200, policy: enforcing}
    reservation: {max_tokens_cap: 4096, ttl_minutes: 60}
    alerts: {webhook_url: https://hooks.example/genops, webhook_format: slack, timeout_seconds: 3,
             spool_minutes: 15}             # webhook_format: generic | slack | teams | teams-messagecard
    compliance: {...}                        # see genops_cli/policy/compliance.py
    simulation: {output_tokens: 200}
    pricing: {dirs: [./pricing]}
    observability: {capture_content: false, otlp_endpoint: null, service_name: genops}
    limits: {pipeline_bytes: 4MB, depth: 100, lock_timeout_seconds: 30}   # genops_cli/safe_load.py
    redact: {env_vars: [VENDOR_CREDENTIAL]}  # values masked everywhere (genops_cli/redact.py)
    agents: {fail_on_cap: false}             # true: a run whose agent hit max_agent_steps fails (exit 1)
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from genops_cli.errors import ConfigError
from genops_cli.models import DEFAULT_ALERT_THRESHOLDS, Attribution, Budget

CONFIG_FILENAMES = (".genops.yml", ".genops.yaml")
POLICY_ALIASES = {"enforced": "enforcing", "strict": "enforcing", "advisory": "advisory", "enforcing": "enforcing",
                  "monitoring": "monitoring", "monitor": "monitoring", "warn": "advisory"}
CLASSIFICATIONS = ("public", "internal", "confidential", "restricted")


def normalize_policy(value: str, where: str) -> str:
    policy = POLICY_ALIASES.get(str(value).strip().lower())
    if policy is None:
        raise ConfigError(f"{where}: unknown policy {value!r}; use advisory, enforcing or monitoring")
    return policy


#: Largest amount a budget or cost limit may take (the ledger's DECIMAL(18,10) columns hold less than 10^8).
MAX_AMOUNT = Decimal(100_000_000)


def parse_money(value: Any, where: str) -> Decimal:
    try:
        amount = Decimal(str(value).strip().lstrip("$"))
    except (InvalidOperation, ValueError):
        raise ConfigError(f"{where}: {value!r} is not an amount in USD (e.g. 25 or 12.50)") from None
    if not amount.is_finite() or amount < 0:
        raise ConfigError(f"{where}: {value!r} must be a non-negative amount in USD")
    if amount >= MAX_AMOUNT:  # the ledger stores limits as DECIMAL(18,10)
        raise ConfigError(f"{where}: {str(value)[:40]!r} is too large; amounts stay below {MAX_AMOUNT:,} USD")
    return amount


@dataclass
class BudgetSettings:
    timezone: str = "UTC"
    alert_at: tuple[int, ...] = DEFAULT_ALERT_THRESHOLDS
    scopes: list[Budget] = field(default_factory=list)
    default_policy: str = "advisory"


#: compliance rule name -> what it checks (`compliance.rule_modes` keys)
COMPLIANCE_RULES = ("providers", "models", "regions", "max_cost", "attribution")
ATTRIBUTION_FIELDS = ("team", "project", "environment", "customer_id", "feature", "cost_center", "user_id")


@dataclass
class ClassificationRules:
    """Compliance rules for one data classification; None means "no restriction"."""

    allowed_providers: tuple[str, ...] | None = None
    allowed_models: tuple[str, ...] | None = None  # fnmatch patterns, e.g. "gpt-4o*"
    allowed_regions: tuple[str, ...] | None = None
    max_cost_per_operation: Decimal | None = None


@dataclass
class ComplianceSettings:
    """The validated `compliance:` section (plus `providers:` regions). Evaluated by genops_cli.policy.compliance."""

    mode: str | None = None  # enforcing | advisory | monitoring; None: the governance policy (budgets default)
    rule_modes: dict[str, str] = field(default_factory=dict)  # per-rule override (COMPLIANCE_RULES)
    required_attribution: tuple[str, ...] = ()
    defaults: ClassificationRules = field(default_factory=ClassificationRules)
    classifications: dict[str, ClassificationRules] = field(default_factory=dict)
    provider_regions: dict[str, str] = field(default_factory=dict)
    #: customer id -> regions its runs may send data to (checked per call, on the endpoint called)
    customer_regions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: rules whose enforcing mode a run's --policy may weaken (True: every rule; empty: none)
    allow_override: tuple[str, ...] | bool = ()

    def allows_override(self, rule: str) -> bool:
        return self.allow_override is True or (isinstance(self.allow_override, tuple) and rule in self.allow_override)

    def rules_for(self, classification: str | None) -> ClassificationRules:
        """Classification-specific rules, each key falling back to the section-wide default."""
        specific = self.classifications.get(classification or "")
        if specific is None:
            return self.defaults
        return ClassificationRules(**{
            name: getattr(specific, name) if getattr(specific, name) is not None else getattr(self.defaults, name)
            for name in ("allowed_providers", "allowed_models", "allowed_regions", "max_cost_per_operation")
        })

    @property
    def configured(self) -> bool:
        rules = [self.defaults, *self.classifications.values()]
        return bool(self.required_attribution) or any(
            r.allowed_providers is not None or r.allowed_models is not None or r.allowed_regions is not None
            or r.max_cost_per_operation is not None for r in rules)


@dataclass
class Settings:
    ledger: str | None = None
    config_path: Path | None = None
    attribution: Attribution = field(default_factory=Attribution)
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    max_tokens_cap: int = 4096
    reservation_ttl_minutes: int = 60
    webhook_url: str | None = None
    webhook_timeout: float = 3.0
    webhook_format: str = "generic"  # generic | slack | teams | teams-messagecard (policy/alerts.py)
    spool_alert_minutes: int = 15  # alert when runs wait in the spool longer than this (0: never)
    compliance: ComplianceSettings = field(default_factory=ComplianceSettings)
    simulation_output_tokens: int | None = None
    #: LLM steps of simulated Agents: a number for all, or {agent or AgentTool name | "default": steps}
    simulation_agent_steps: int | dict[str, int] | None = None
    pricing_dirs: list[Path] = field(default_factory=list)
    capture_content: bool = False
    #: who the runs of this process are recorded as (audit entries): the Python API's `principal=`; None: the OS
    #: user@host (or GENOPS_ACTOR)
    actor: str | None = None
    otlp_endpoint: str | None = None
    service_name: str = "genops"
    log_level: str = "WARNING"
    fail_on_agent_cap: bool = False  # `agents.fail_on_cap` / `genops run --fail-on-agent-cap`
    raw: dict[str, Any] = field(default_factory=dict)


class _Loader:
    """Reads YAML keeping each key's line, so errors can say `.genops.yml:12 budgets.timezone: ...`."""

    def __init__(self, path: Path) -> None:
        from genops_cli.safe_load import parse_yaml_document, read_text

        self.path = path
        self.lines: dict[str, int] = {}
        if path.is_dir():
            raise ConfigError(f"{path}: is a directory; pass the .genops.yml file")
        text = read_text(path, "config", ConfigError)
        # Bounded (size, aliases, depth) and strict: a key given twice is an error naming its line.
        data, node = parse_yaml_document(text, str(path), "config", ConfigError, strict_keys=True)
        self.data = data if data is not None else {}
        if not isinstance(self.data, dict):
            raise ConfigError(f"{path}: the config must be a mapping of keys (e.g. 'ledger: ...')")
        if node is not None:
            self._index(node, "")

    def _index(self, node: Any, prefix: str) -> None:
        import yaml

        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                dotted = f"{prefix}{key.value}"
                self.lines[dotted] = key.start_mark.line + 1
                self._index(value, dotted + ".")

    def where(self, key: str) -> str:
        line = self.lines.get(key)
        return f"{self.path}:{line} {key}" if line else f"{self.path} {key}"


def _config_path(value: str | Path, source: str) -> Path:
    path = Path(value).expanduser()
    try:
        exists = path.exists()
    except OSError as exc:  # a name too long for the file system
        raise ConfigError(f"{source}: {exc.strerror or exc}; pass the path of an existing .genops.yml") from None
    if not exists:
        raise ConfigError(f"{source}: file not found; pass an existing .genops.yml")
    return path


def find_config(explicit: str | Path | None = None) -> Path | None:
    if explicit:
        return _config_path(explicit, f"--config {explicit}")
    env = os.environ.get("GENOPS_CONFIG")
    if env:
        return _config_path(env, f"GENOPS_CONFIG={env}")
    for name in CONFIG_FILENAMES:
        path = Path.cwd() / name
        if path.exists():
            return path
    return None


def _section(loader: _Loader, data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{loader.where(key)}: must be a mapping")
    return value


def _thresholds(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    try:
        out = tuple(sorted({int(str(v).strip().rstrip("%")) for v in value}))
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: alert thresholds are percentages like 50,80,95,100") from None
    if not out or any(t <= 0 or t > 1000 for t in out):
        raise ConfigError(f"{where}: alert thresholds must be between 1 and 1000 (percent)")
    return out


def parse_thresholds(value: Any, where: str = "--alert-at") -> tuple[int, ...]:
    return _thresholds(value, where)


def _apply_file(settings: Settings, loader: _Loader) -> None:
    """Apply a parsed `.genops.yml` to `settings`, section by section; errors name the file, line and key."""
    data = loader.data
    known = {"ledger", "haystack", "attribution", "budgets", "reservation", "alerts", "compliance", "simulation",
             "pricing", "observability", "providers", "logging", "limits", "redact", "billing", "agents"}
    for key in data:
        if key not in known:
            raise ConfigError(f"{loader.where(key)}: unknown key; expected one of {', '.join(sorted(known))}")
    if data.get("ledger") is not None:
        settings.ledger = str(data["ledger"])
    _apply_safety_sections(loader, data)
    _apply_attribution(settings, loader, data)
    _apply_budgets(settings, loader, data)
    _apply_reservation_and_alerts(settings, loader, data)
    settings.compliance = _compliance(loader, data)
    _apply_simulation_and_pricing(settings, loader, data)
    _apply_observability(settings, loader, data)
    _known_keys(loader, "haystack", _section(loader, data, "haystack"), HAYSTACK_KEYS)
    _apply_logging_and_agents(settings, loader, data)


def _apply_attribution(settings: Settings, loader: _Loader, data: dict[str, Any]) -> None:
    hay = _section(loader, data, "haystack")
    attr = _section(loader, data, "attribution")
    a = settings.attribution
    a.team = attr.get("team") or hay.get("default_team") or hay.get("team") or a.team
    a.project = attr.get("project") or hay.get("default_project") or hay.get("project") or a.project
    a.environment = attr.get("environment") or hay.get("environment") or a.environment
    a.customer_id = attr.get("customer_id") or a.customer_id
    a.feature = attr.get("feature") or a.feature
    a.cost_center = attr.get("cost_center") or hay.get("cost_center") or a.cost_center
    a.user_id = attr.get("user_id") or a.user_id
    classification = attr.get("data_classification") or hay.get("data_classification")
    if classification is not None:
        if classification not in CLASSIFICATIONS:
            where = loader.where("attribution.data_classification")
            raise ConfigError(f"{where}: use one of {', '.join(CLASSIFICATIONS)}")
        a.data_classification = classification


def _apply_budgets(settings: Settings, loader: _Loader, data: dict[str, Any]) -> None:
    """`budgets:` (and the guide's `haystack:` limits): the global budget and `budgets.scopes`."""
    hay = _section(loader, data, "haystack")
    budgets = _section(loader, data, "budgets")
    b = settings.budgets
    if "timezone" in budgets:
        b.timezone = _timezone(str(budgets["timezone"]), loader.where("budgets.timezone"))
    if "alert_at" in budgets:
        b.alert_at = _thresholds(budgets["alert_at"], loader.where("budgets.alert_at"))
    policy_value = budgets.get("governance_policy") or hay.get("governance_policy")
    if policy_value:
        key = "budgets.governance_policy" if budgets.get("governance_policy") else "haystack.governance_policy"
        b.default_policy = normalize_policy(policy_value, loader.where(key))
    global_budget = Budget(source="config", scope="global", policy=b.default_policy, alert_at=b.alert_at)
    for period, key in (("daily", "daily_budget_limit"), ("monthly", "monthly_budget_limit"),
                        ("weekly", "weekly_budget_limit")):
        for section_name, section in (("budgets", budgets), ("haystack", hay)):
            if section.get(key) is not None:
                setattr(global_budget, period,
                        parse_money(section[key], loader.where(f"{section_name}.{key}")))
    if global_budget.daily or global_budget.monthly or global_budget.weekly:
        b.scopes.append(global_budget)
    _apply_scope_budgets(settings, loader, budgets)


def _apply_scope_budgets(settings: Settings, loader: _Loader, budgets: dict[str, Any]) -> None:
    b = settings.budgets
    scopes = budgets.get("scopes") or {}
    if not isinstance(scopes, dict):
        raise ConfigError(f"{loader.where('budgets.scopes')}: must map a scope (e.g. 'team:ml') to limits")
    from genops_cli.policy.scopes import parse_scope

    for scope, spec in scopes.items():
        where = loader.where(f"budgets.scopes.{scope}")
        parse_scope(str(scope), where)
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: must be a mapping with daily/weekly/monthly/policy")
        sb = Budget(source="config", scope=str(scope), policy=b.default_policy, alert_at=b.alert_at)
        for period in ("daily", "weekly", "monthly"):
            if spec.get(period) is not None:
                setattr(sb, period, parse_money(spec[period], f"{where}.{period}"))
        if spec.get("policy"):
            sb.policy = normalize_policy(spec["policy"], f"{where}.policy")
        if spec.get("alert_at") is not None:
            sb.alert_at = _thresholds(spec["alert_at"], f"{where}.alert_at")
        _budget_webhook(sb, spec, where)
        b.scopes.append(sb)


def _apply_reservation_and_alerts(settings: Settings, loader: _Loader, data: dict[str, Any]) -> None:
    reservation = _section(loader, data, "reservation")
    if "max_tokens_cap" in reservation:
        settings.max_tokens_cap = _positive_int(reservation["max_tokens_cap"],
                                                loader.where("reservation.max_tokens_cap"))
    if "ttl_minutes" in reservation:
        settings.reservation_ttl_minutes = _positive_int(reservation["ttl_minutes"],
                                                         loader.where("reservation.ttl_minutes"))

    alerts = _section(loader, data, "alerts")
    if alerts.get("webhook_url"):
        settings.webhook_url = _http_url(alerts["webhook_url"], loader.where("alerts.webhook_url"))
    if alerts.get("webhook_format"):
        from genops_cli.policy.alerts import check_webhook_format

        settings.webhook_format = check_webhook_format(str(alerts["webhook_format"]),
                                                       loader.where("alerts.webhook_format"))
    if "spool_minutes" in alerts:
        settings.spool_alert_minutes = _minutes(alerts["spool_minutes"], loader.where("alerts.spool_minutes"))
    if "timeout_seconds" in alerts:
        settings.webhook_timeout = _positive_number(alerts["timeout_seconds"], loader.where("alerts.timeout_seconds"))


def _apply_simulation_and_pricing(settings: Settings, loader: _Loader, data: dict[str, Any]) -> None:
    simulation = _section(loader, data, "simulation")
    if simulation.get("output_tokens") is not None:
        settings.simulation_output_tokens = _positive_int(simulation["output_tokens"],
                                                          loader.where("simulation.output_tokens"))
    steps = simulation.get("agent_steps")
    if isinstance(steps, dict):
        settings.simulation_agent_steps = {
            str(k): _positive_int(v, loader.where(f"simulation.agent_steps.{k}")) for k, v in steps.items()}
    elif steps is not None:
        settings.simulation_agent_steps = _positive_int(steps, loader.where("simulation.agent_steps"))
    pricing = _section(loader, data, "pricing")
    for d in pricing.get("dirs") or []:
        path = (loader.path.parent / str(d)).expanduser()
        if not path.is_dir():
            raise ConfigError(f"{loader.where('pricing.dirs')}: {d} is not a directory")
        settings.pricing_dirs.append(path)


def _apply_observability(settings: Settings, loader: _Loader, data: dict[str, Any]) -> None:
    obs = _section(loader, data, "observability")
    _known_keys(loader, "observability", obs, OBSERVABILITY_KEYS)
    if "capture_content" in obs:
        settings.capture_content = parse_bool(obs["capture_content"], loader.where("observability.capture_content"))
    if obs.get("otlp_endpoint"):
        endpoint = str(obs["otlp_endpoint"])
        if not endpoint.startswith(("http://", "https://")):
            raise ConfigError(f"{loader.where('observability.otlp_endpoint')}: must be an http(s) URL of an OTLP/HTTP "
                              "endpoint, e.g. http://localhost:4318")
        settings.otlp_endpoint = endpoint
    settings.service_name = str(obs.get("service_name") or settings.service_name)
    if obs.get("sampling_rate") is not None:
        rate = _positive_number(obs["sampling_rate"], loader.where("observability.sampling_rate"))
        if rate > 1:
            raise ConfigError(f"{loader.where('observability.sampling_rate')}: must be between 0 and 1")


def _apply_logging_and_agents(settings: Settings, loader: _Loader, data: dict[str, Any]) -> None:
    logging_section = _section(loader, data, "logging")
    if logging_section.get("level"):
        settings.log_level = parse_log_level(logging_section["level"], loader.where("logging.level"))
    agents_section = _section(loader, data, "agents")
    _known_keys(loader, "agents", agents_section, ("fail_on_cap",))
    if "fail_on_cap" in agents_section:
        settings.fail_on_agent_cap = parse_bool(agents_section["fail_on_cap"], loader.where("agents.fail_on_cap"))


def _apply_safety_sections(loader: _Loader, data: dict[str, Any]) -> None:
    """`limits:` (input caps, lock wait) and `redact:` (environment variables whose values are secrets)."""
    from genops_cli import redact, safe_load

    safe_load.configure_from_file(_section(loader, data, "limits"), loader.where)
    section = _section(loader, data, "redact")
    _known_keys(loader, "redact", section, ("env_vars",))
    names = _names(section.get("env_vars") or [], loader.where("redact.env_vars"), lower=False)
    redact.register_env_vars(names)


#: Keys of the guide's `haystack:` section (the adapter's arguments) and of `observability:`.
HAYSTACK_KEYS = ("default_team", "default_project", "team", "project", "environment", "daily_budget_limit",
                 "monthly_budget_limit", "weekly_budget_limit", "governance_policy", "cost_center",
                 "data_classification", "enable_cost_alerts", "enable_component_tracking", "enable_pipeline_caching")
OBSERVABILITY_KEYS = ("capture_content", "otlp_endpoint", "service_name", "export_to", "sampling_rate")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _known_keys(loader: _Loader, section_name: str, section: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in section:
        if key not in known:
            raise ConfigError(f"{loader.where(f'{section_name}.{key}')}: unknown key; expected one of "
                              f"{', '.join(known)}")


def parse_bool(value: Any, where: str) -> bool:
    """true/false, yes/no, on/off, 1/0 (YAML booleans or strings)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{where}: {value!r} is not true or false")


def parse_log_level(value: Any, where: str) -> str:
    level = str(value).strip().upper()
    if level == "WARN":
        level = "WARNING"
    if level not in LOG_LEVELS:
        raise ConfigError(f"{where}: unknown log level {value!r}; use one of {', '.join(LOG_LEVELS)}")
    return level


def _positive_number(value: Any, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a number") from None
    if not number > 0 or number != number:
        raise ConfigError(f"{where}: must be a positive number")
    return number


def _names(value: Any, where: str, lower: bool = True) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str | int | float) for v in value):
        raise ConfigError(f"{where}: must be a list of names, e.g. [openai, anthropic]")
    return tuple(str(v).strip().lower() if lower else str(v).strip() for v in value)


_RULE_KEYS = ("allowed_providers", "allowed_models", "allowed_regions", "max_cost_per_operation")


def _check_rule_names(loader: _Loader, prefix: str, rules: ClassificationRules,
                      defaults: ClassificationRules) -> None:
    """Names in allow lists must exist: a typo would silently deny (or, in a list meant to narrow, silently allow)
    what was meant. Providers and models are checked against the price book and the providers genops knows,
    regions against known region shapes; a model list that no allowed provider can serve is contradictory."""
    from genops_cli.policy.compliance import rule_name_problems

    providers = rules.allowed_providers if rules.allowed_providers is not None else defaults.allowed_providers
    for key, message in rule_name_problems(rules.allowed_providers, rules.allowed_models, rules.allowed_regions,
                                           providers):
        raise ConfigError(f"{loader.where(f'{prefix}.{key}')}: {message}")


def _customer_regions(loader: _Loader, section: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    spec = section.get("customer_regions")
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{loader.where('compliance.customer_regions')}: must map a customer id to regions, "
                          "e.g. {acme-corp: [eu]}")
    out = {}
    for customer, regions in spec.items():
        where = loader.where(f"compliance.customer_regions.{customer}")
        names = _names(regions, where, lower=True)
        if not names:
            raise ConfigError(f"{where}: an empty region list would deny every call of this customer; list at "
                              "least one region (eu, us, apac, local or an exact region)")
        from genops_cli.policy.compliance import rule_name_problems

        for _key, message in rule_name_problems(None, None, names, None):
            raise ConfigError(f"{where}: {message}")
        out[str(customer)] = names
    return out


def _allow_override(loader: _Loader, section: dict[str, Any]) -> tuple[str, ...] | bool:
    value = section.get("allow_override")
    if value is None or value is False:
        return ()
    if value is True:
        return True
    where = loader.where("compliance.allow_override")
    names = _names(value, where)
    bad = [n for n in names if n not in COMPLIANCE_RULES]
    if bad:
        raise ConfigError(f"{where}: unknown rule {bad[0]!r}; use true or a list of {', '.join(COMPLIANCE_RULES)}")
    return names


def _classification_rules(loader: _Loader, spec: dict[str, Any], prefix: str) -> ClassificationRules:
    rules = ClassificationRules()
    for key in ("allowed_providers", "allowed_models", "allowed_regions"):
        if spec.get(key) is not None:
            where = loader.where(f"{prefix}.{key}")
            names = _names(spec[key], where, lower=key != "allowed_models")
            if not names:
                raise ConfigError(f"{where}: an empty allow list denies everything; remove the key to allow any, "
                                  "or list what is allowed")
            setattr(rules, key, names)
    if spec.get("max_cost_per_operation") is not None:
        rules.max_cost_per_operation = parse_money(spec["max_cost_per_operation"],
                                                   loader.where(f"{prefix}.max_cost_per_operation"))
    return rules


def _compliance(loader: _Loader, data: dict[str, Any]) -> ComplianceSettings:
    """Validate `compliance:` and `providers:`; every error names the key and its line."""
    section = _section(loader, data, "compliance")
    out = ComplianceSettings()
    known = {"mode", "rule_modes", "required_attribution", "classifications", "customer_regions", "allow_override",
             *_RULE_KEYS}
    for key in section:
        if key not in known:
            raise ConfigError(f"{loader.where(f'compliance.{key}')}: unknown key; expected one of "
                              f"{', '.join(sorted(known))}")
    if section.get("mode") is not None:
        out.mode = normalize_policy(section["mode"], loader.where("compliance.mode"))
    modes = section.get("rule_modes") or {}
    if not isinstance(modes, dict):
        raise ConfigError(f"{loader.where('compliance.rule_modes')}: must map a rule to a mode, "
                          "e.g. {regions: enforcing}")
    for rule, mode in modes.items():
        where = loader.where(f"compliance.rule_modes.{rule}")
        if rule not in COMPLIANCE_RULES:
            raise ConfigError(f"{where}: unknown rule; use one of {', '.join(COMPLIANCE_RULES)}")
        out.rule_modes[str(rule)] = normalize_policy(mode, where)
    if section.get("required_attribution") is not None:
        where = loader.where("compliance.required_attribution")
        names = tuple("customer_id" if n == "customer" else n for n in _names(section["required_attribution"], where))
        bad = [n for n in names if n not in ATTRIBUTION_FIELDS]
        if bad:
            raise ConfigError(f"{where}: unknown attribution field {bad[0]!r}; use {', '.join(ATTRIBUTION_FIELDS)}")
        out.required_attribution = names
    out.customer_regions = _customer_regions(loader, section)
    out.allow_override = _allow_override(loader, section)
    out.defaults = _classification_rules(loader, section, "compliance")
    _check_rule_names(loader, "compliance", out.defaults, out.defaults)
    classes = section.get("classifications") or {}
    if not isinstance(classes, dict):
        raise ConfigError(f"{loader.where('compliance.classifications')}: must map a classification "
                          f"({', '.join(CLASSIFICATIONS)}) to rules")
    for level, spec in classes.items():
        prefix = f"compliance.classifications.{level}"
        if level not in CLASSIFICATIONS:
            raise ConfigError(f"{loader.where(prefix)}: unknown classification; use {', '.join(CLASSIFICATIONS)}")
        spec = spec or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{loader.where(prefix)}: must be a mapping of rules ({', '.join(_RULE_KEYS)})")
        for key in spec:
            if key not in _RULE_KEYS:
                raise ConfigError(f"{loader.where(f'{prefix}.{key}')}: unknown rule; use {', '.join(_RULE_KEYS)}")
        out.classifications[str(level)] = _classification_rules(loader, spec, prefix)
        _check_rule_names(loader, prefix, out.classifications[str(level)], out.defaults)
    providers = _section(loader, data, "providers")
    for name, spec in providers.items():
        where = loader.where(f"providers.{name}")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: must be a mapping, e.g. {{region: us}}")
        if spec.get("region") is not None:
            out.provider_regions[str(name).lower()] = str(spec["region"]).strip().lower()
    return out


def _positive_int(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a whole number") from None
    if number <= 0:
        raise ConfigError(f"{where}: must be positive")
    return number


def _budget_webhook(budget: Budget, spec: dict[str, Any], where: str) -> None:
    """`webhook_url` / `webhook_format` of one `budgets.scopes` entry: where that budget's alerts are posted."""
    if spec.get("webhook_url"):
        budget.webhook_url = _http_url(spec["webhook_url"], f"{where}.webhook_url")
    if spec.get("webhook_format"):
        from genops_cli.policy.alerts import check_webhook_format

        budget.webhook_format = check_webhook_format(str(spec["webhook_format"]), f"{where}.webhook_format")


def _http_url(value: Any, where: str) -> str:
    url = str(value).strip()
    if not url.lower().startswith(("http://", "https://")) or len(url) <= len("https://"):
        raise ConfigError(f"{where}: must be an http(s) URL, e.g. https://hooks.example.com/genops")
    return url


def _minutes(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: {value!r} is not a whole number of minutes (0 switches it off)") from None
    if number < 0:
        raise ConfigError(f"{where}: must be 0 (off) or a positive number of minutes")
    return number


def _timezone(name: str, where: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a name too long for a file name
        raise ConfigError(f"{where}: unknown timezone {name!r}; use an IANA name like UTC or Europe/Berlin") from None
    return name


def _apply_env(settings: Settings) -> None:
    env = os.environ
    a = settings.attribution
    a.team = env.get("GENOPS_TEAM") or a.team
    a.project = env.get("GENOPS_PROJECT") or a.project
    a.environment = env.get("GENOPS_ENVIRONMENT") or a.environment
    a.customer_id = env.get("GENOPS_CUSTOMER_ID") or a.customer_id
    a.cost_center = env.get("GENOPS_COST_CENTER") or a.cost_center
    a.user_id = env.get("GENOPS_USER") or a.user_id
    settings.ledger = env.get("GENOPS_LEDGER") or settings.ledger
    if env.get("GENOPS_LOG_LEVEL"):
        settings.log_level = parse_log_level(env["GENOPS_LOG_LEVEL"], "GENOPS_LOG_LEVEL")
    if env.get("GENOPS_BUDGET_TIMEZONE"):
        settings.budgets.timezone = _timezone(env["GENOPS_BUDGET_TIMEZONE"], "GENOPS_BUDGET_TIMEZONE")
    if env.get("GENOPS_GOVERNANCE_POLICY"):
        settings.budgets.default_policy = normalize_policy(env["GENOPS_GOVERNANCE_POLICY"], "GENOPS_GOVERNANCE_POLICY")
        for sb in settings.budgets.scopes:
            if sb.scope == "global":
                sb.policy = settings.budgets.default_policy
    for var, period in (("GENOPS_DAILY_BUDGET_LIMIT", "daily"), ("GENOPS_MONTHLY_BUDGET_LIMIT", "monthly")):
        if env.get(var):
            amount = parse_money(env[var], var)
            glob = next((sb for sb in settings.budgets.scopes if sb.scope == "global"), None)
            if glob is None:
                glob = Budget(source="config", scope="global", policy=settings.budgets.default_policy,
                                   alert_at=settings.budgets.alert_at)
                settings.budgets.scopes.append(glob)
            setattr(glob, period, amount)
    if env.get("GENOPS_WEBHOOK_FORMAT"):
        from genops_cli.policy.alerts import check_webhook_format

        settings.webhook_format = check_webhook_format(env["GENOPS_WEBHOOK_FORMAT"], "GENOPS_WEBHOOK_FORMAT")
    if env.get("GENOPS_SPOOL_ALERT_MINUTES"):
        settings.spool_alert_minutes = _minutes(env["GENOPS_SPOOL_ALERT_MINUTES"], "GENOPS_SPOOL_ALERT_MINUTES")
    if env.get("GENOPS_WEBHOOK_URL"):
        settings.webhook_url = _http_url(env["GENOPS_WEBHOOK_URL"], "GENOPS_WEBHOOK_URL")
    if env.get("GENOPS_CAPTURE_CONTENT"):
        settings.capture_content = parse_bool(env["GENOPS_CAPTURE_CONTENT"], "GENOPS_CAPTURE_CONTENT")
    if env.get("GENOPS_PRICING_DIR"):
        settings.pricing_dirs.append(Path(env["GENOPS_PRICING_DIR"]))


def load_settings(config_path: str | Path | None = None, ledger_flag: str | None = None,
                  attribution: Attribution | None = None,
                  observe: Callable[[str, Settings], None] | None = None) -> Settings:
    """Build the Settings for one invocation (flags given here win over env, which wins over the file).

    `observe(stage, settings)` is called after each layer ("default", "file", "env", "flag"), so `genops config
    show` can tell where each effective value came from (config_sources.py)."""
    settings = Settings()
    if observe is not None:
        observe("default", settings)
    from genops_cli.safe_load import reset_file_limits

    reset_file_limits()  # a previous load's `limits:` must not leak into this one (tests, the API)
    path = find_config(config_path)
    if path is not None:
        loader = _Loader(path)
        settings.config_path = path
        settings.raw = loader.data
        _apply_file(settings, loader)
    if observe is not None:
        observe("file", settings)
    _apply_env(settings)
    if observe is not None:
        observe("env", settings)
    if ledger_flag:
        settings.ledger = ledger_flag
    if attribution is not None:
        settings.attribution = settings.attribution.merged(attribution)
    if observe is not None:
        observe("flag", settings)
    if settings.attribution.data_classification is None:
        settings.attribution.data_classification = "internal"
    _register_secret_urls(settings)
    return settings


def _register_secret_urls(settings: Settings) -> None:
    """Webhook URLs carry their token in the path (Slack, Teams): masked wherever an error might echo them."""
    from genops_cli.redact import register_url

    for url in [settings.webhook_url, *(getattr(b, "webhook_url", None) for b in settings.budgets.scopes)]:
        if url:
            register_url(url)
