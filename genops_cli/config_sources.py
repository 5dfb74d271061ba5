"""Where each effective setting came from (`genops config show`): flag, env, file or default, secrets masked.

    for item in explain_settings(config_path=None, ledger_flag=None):
        print(item.key, item.value, item.source)

Settings are built in layers (defaults, .genops.yml, GENOPS_* environment, flags); the source of a value is the
last layer that changed it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from genops_cli.config import Settings, load_settings
from genops_cli.models import Attribution


@dataclass
class SettingSource:
    key: str
    value: str | None
    source: str  # flag | env | file | default

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value, "source": self.source}


def mask_url(url: str | None) -> str | None:
    """Keep what identifies the endpoint (scheme, host, port), hide what authenticates (user, password, path
    tokens such as Slack's /services/T../B../secret, query strings)."""
    if not url:
        return url
    if "://" not in url:
        return url  # a file path, not a secret
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    if parts.username:
        host = f"{parts.username}:***@{host}" if parts.password else f"{parts.username}@{host}"
    if parts.scheme.startswith("postgres"):
        # A database name is not a secret; a password is (masked above).
        return urlunsplit((parts.scheme, host, parts.path, "***" if parts.query else "", ""))
    return urlunsplit((parts.scheme, host, "/***" if parts.path not in ("", "/") else parts.path,
                       "***" if parts.query else "", ""))


def _budgets(settings: Settings) -> str:
    out = []
    for b in settings.budgets.scopes:
        limits = " ".join(f"{p}={v}" for p, v in b.limits())
        out.append(f"{b.scope} {limits} policy={b.policy}".strip())
    return "; ".join(out)


def _snapshot(settings: Settings) -> dict[str, Any]:
    from genops_cli.ledger.store import DEFAULT_LEDGER

    a: Attribution = settings.attribution
    c = settings.compliance
    out: dict[str, Any] = {
        "ledger": mask_url(settings.ledger or DEFAULT_LEDGER),
        "config": str(settings.config_path) if settings.config_path else None,
    }
    for name in ("team", "project", "environment", "customer_id", "feature", "cost_center", "user_id",
                 "data_classification"):
        out[f"attribution.{name}"] = getattr(a, name)
    out["attribution.tags"] = ",".join(f"{k}={v}" for k, v in sorted(a.tags.items())) or None
    out.update({
        "budgets.timezone": settings.budgets.timezone,
        "budgets.alert_at": ",".join(str(t) for t in settings.budgets.alert_at),
        "budgets.governance_policy": settings.budgets.default_policy,
        "budgets.scopes": _budgets(settings) or None,
        "reservation.max_tokens_cap": settings.max_tokens_cap,
        "reservation.ttl_minutes": settings.reservation_ttl_minutes,
        "alerts.webhook_url": mask_url(settings.webhook_url),
        "alerts.webhook_format": settings.webhook_format,
        "alerts.timeout_seconds": settings.webhook_timeout,
        "alerts.spool_minutes": settings.spool_alert_minutes,
        "compliance.mode": c.mode,
        "compliance.required_attribution": ",".join(c.required_attribution) or None,
        "simulation.output_tokens": settings.simulation_output_tokens,
        "pricing.dirs": ",".join(str(p) for p in settings.pricing_dirs) or None,
        "observability.capture_content": settings.capture_content,
        "observability.otlp_endpoint": mask_url(settings.otlp_endpoint),
        "observability.service_name": settings.service_name,
        "logging.level": settings.log_level,
    })
    return {k: None if v is None else str(v) for k, v in out.items()}


def _config_source(config_flag: str | None) -> str:
    if config_flag:
        return "flag"
    if os.environ.get("GENOPS_CONFIG"):
        return "env"
    return "default"  # ./.genops.yml found in the working directory, or none


def explain_settings(config_path: str | Path | None = None, ledger_flag: str | None = None,
                     attribution: Attribution | None = None) -> list[SettingSource]:
    """Every displayed setting with its effective value (secrets masked) and the layer it came from."""
    from genops_cli.redact import redact

    snapshots: list[tuple[str, dict[str, Any]]] = []
    settings = load_settings(config_path, ledger_flag, attribution,
                             observe=lambda stage, s: snapshots.append((stage, _snapshot(s))))
    final = _snapshot(settings)
    out = []
    for key, value in final.items():
        source = "default"
        previous = snapshots[0][1].get(key)
        for stage, snap in snapshots[1:]:
            if snap.get(key) != previous:
                source = stage
            previous = snap.get(key)
        if key == "config" and value is not None:
            source = _config_source(str(config_path) if config_path else None)
        out.append(SettingSource(key, redact(value) if value is not None else None, source))
    return out
