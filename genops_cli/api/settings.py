"""The adapter's settings: the guide's documented defaults, below GENOPS_* variables and `.genops.yml`.

The guide documents `GenOpsHaystackAdapter(team="default-team", project="haystack-integration",
environment="development", daily_budget_limit=100.0, governance_policy="advisory", ...)`, and also that
GENOPS_TEAM, GENOPS_DAILY_BUDGET_LIMIT, GENOPS_GOVERNANCE_POLICY, ... set those defaults. So the signature's
defaults are marked values (a `float`/`str` subclass): an argument left at its default yields to the environment
and the config file; any value the caller passes, even an equal one, wins over both.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from genops_cli.config import Settings, load_settings, normalize_policy, parse_money
from genops_cli.models import Attribution, Budget


class _DefaultStr(str):
    """A documented default string: used only when neither the environment nor the config file sets one."""


class _DefaultFloat(float):
    """A documented default amount: used only when neither the environment nor the config file sets one."""


DEFAULT_TEAM = _DefaultStr("default-team")
DEFAULT_PROJECT = _DefaultStr("haystack-integration")
DEFAULT_ENVIRONMENT = _DefaultStr("development")
DEFAULT_DAILY_BUDGET_LIMIT = _DefaultFloat(100.0)
DEFAULT_GOVERNANCE_POLICY = _DefaultStr("advisory")


def is_default(value: Any) -> bool:
    """Whether an argument was left at its documented default."""
    return isinstance(value, (_DefaultStr, _DefaultFloat))


def _given(value: Any) -> Any:
    return None if is_default(value) else value


def build_settings(team: str | None = None, project: str | None = None, environment: str | None = None,
                   daily_budget_limit: Any = None, monthly_budget_limit: Any = None,
                   governance_policy: str | None = None, customer_id: str | None = None,
                   ledger: str | None = None, config: str | Path | None = None, **attributes: Any) -> Settings:
    """Settings for the API: arguments (like flags) > GENOPS_* > .genops.yml > documented defaults.

    Keyword arguments that are attribution fields (feature, cost_center, user_id, data_classification)
    attribute every run; other keywords become run tags."""
    attribution = Attribution(team=_given(team), project=_given(project), environment=_given(environment),
                              customer_id=customer_id)
    for key in ("feature", "cost_center", "user_id", "data_classification"):
        if attributes.get(key) is not None:
            setattr(attribution, key, str(attributes.pop(key)))
    attribution.tags = {k: str(v) for k, v in attributes.items() if v is not None}
    settings = load_settings(config, ledger, attribution)
    a = settings.attribution
    a.team = a.team or (str(team) if team else None)
    a.project = a.project or (str(project) if project else None)
    a.environment = a.environment or (str(environment) if environment else None)
    if governance_policy and not is_default(governance_policy):
        settings.budgets.default_policy = normalize_policy(governance_policy, "governance_policy")
        for scope in settings.budgets.scopes:
            scope.policy = settings.budgets.default_policy
    adapter_budget(settings, daily_budget_limit, monthly_budget_limit)
    return settings


def budget_scope_name(settings: Settings) -> str:
    """The scope the adapter's own limits apply to: `team:<team>`, or `global` without a team."""
    team = settings.attribution.team
    return f"team:{team}" if team else "global"


def adapter_budget(settings: Settings, daily: Any = None, monthly: Any = None) -> Budget:
    """The config Budget the adapter's `daily_budget_limit` / `monthly_budget_limit` read and write.

    Its own scope's budget when `.genops.yml` defines one; else, when the limits were left at their defaults,
    the global limits from GENOPS_DAILY_BUDGET_LIMIT / `haystack.daily_budget_limit`; else a new budget on its
    scope (the documented $100/day when no daily limit is given)."""
    scopes = settings.budgets.scopes
    name = budget_scope_name(settings)
    budget = next((s for s in scopes if s.scope == name), None)
    if budget is None and is_default(daily) and monthly is None:
        budget = next((s for s in scopes if s.scope == "global" and s.source == "config" and s.limits()), None)
    if budget is None:
        budget = Budget(scope=name, source="config", policy=settings.budgets.default_policy,
                        alert_at=settings.budgets.alert_at, timezone=settings.budgets.timezone)
        budget.daily = money_or_none(daily, "daily_budget_limit")
        scopes.append(budget)
    elif not is_default(daily):
        budget.daily = money_or_none(daily, "daily_budget_limit")
    if monthly is not None:
        budget.monthly = money_or_none(monthly, "monthly_budget_limit")
    return budget


def money_or_none(value: Any, where: str) -> Decimal | None:
    """A limit in USD as an exact Decimal (floats through their shortest repr: 0.1 -> Decimal('0.1'))."""
    return None if value is None else parse_money(value, where)
