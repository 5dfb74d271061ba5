"""Start-up wiring every entry point does once: the ledger hooks every recorded run goes through.

    install_hooks(settings)      # the CLI (each command), the Python API's engine, the spool ingester process
    ensure_hooks()               # a library entry point that may ingest (the insight functions given a ledger
                                 # path): the hooks of this directory's configuration, unless installed already

Registered, in order after the ledger's own audit hook: compliance (cost limits carried by the run), alerts
(budgets of these settings and of the ledger; delivery to stderr and the configured webhook), OpenTelemetry
export (when an OTLP endpoint is configured). Calling it again replaces the hooks with ones for the new settings.
"""

from __future__ import annotations

from genops_cli.config import Settings

_installed = False


def install_hooks(settings: Settings | None) -> None:
    global _installed
    from genops_cli import otel
    from genops_cli.ledger.hooks import REGISTRY
    from genops_cli.policy.alerts import AlertsHook
    from genops_cli.policy.compliance import ComplianceHook

    REGISTRY.register(ComplianceHook())
    REGISTRY.register(AlertsHook(settings))
    otel.ensure_configured(settings)
    _installed = True


def ensure_hooks() -> None:
    """install_hooks with the configuration found from here (.genops.yml, GENOPS_* variables) if no entry point
    installed them yet: a run ingested by any path goes through compliance, alerts and export."""
    if not _installed:
        from genops_cli.config import load_settings

        install_hooks(load_settings())
